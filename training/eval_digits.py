"""Digits evaluation: a classifier trained on the real scans judges generated digits.

Accuracy = the classifier agrees with the digit the prompt asked for. Frechet distance is
measured in the classifier's hidden-layer features (FID's recipe with a domain classifier in
place of Inception); the distance between two disjoint halves of the real scans is printed
beside it as the floor that "as real as the real data" would reach.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import linalg
from sklearn.datasets import load_digits
from sklearn.neural_network import MLPClassifier

from .world.digits import caption


def to_features_grid(images: np.ndarray) -> np.ndarray:
    """(B, H, W, 3) uint8 or (B, 8, 8) in [0, 16] -> (B, 64) in sklearn digits' scale."""
    if images.ndim == 4:  # generated RGB: grey, pooled down to 8 x 8, back to 0..16
        grey = torch.tensor(images, dtype=torch.float32).mean(-1)[:, None] / 255.0
        images = torch.nn.functional.adaptive_avg_pool2d(grey, 8)[:, 0].numpy() * 16.0
    return images.reshape(len(images), -1)


@dataclass
class DigitJudge:
    clf: MLPClassifier
    real_a: np.ndarray  # features of one half of the real scans
    real_b: np.ndarray
    heldout_accuracy: float  # on real scans it never trained on

    def features(self, x: np.ndarray) -> np.ndarray:
        """Hidden-layer (ReLU) activations: the space the Frechet distance lives in."""
        return np.maximum(0, x @ self.clf.coefs_[0] + self.clf.intercepts_[0])

    def accuracy(self, x: np.ndarray, labels: np.ndarray) -> float:
        return float((self.clf.predict(x) == labels).mean())


def real_as_trained(size: int) -> np.ndarray:
    """The real scans as a model trained on them sees them: upsampled to ``size`` (as the
    training data is), stored as uint8 RGB, then mapped back like a generated image. The
    Frechet reference must take that same round trip, or its blur alone reads as distance."""
    from .data import DigitsSource

    images = DigitsSource(size, seed=0).images  # (N, 3, size, size) in [-1, 1]
    rgb = ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    return to_features_grid(rgb.numpy())


def train_judge(seed: int = 0, size: int | None = None) -> DigitJudge:
    """``size``: the real reference as trained at that size (see real_as_trained); None: the
    raw 8 x 8 scans."""
    digits = load_digits()
    x, y = digits.images.reshape(len(digits.images), -1), digits.target
    order = np.random.default_rng(seed).permutation(len(x))
    train, test = order[: len(x) * 3 // 4], order[len(x) * 3 // 4 :]
    clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=600, random_state=seed)
    clf.fit(x[train], y[train])
    acc = float((clf.predict(x[test]) == y[test]).mean())
    judge = DigitJudge(clf, np.empty(0), np.empty(0), acc)
    half = order[: len(x) // 2], order[len(x) // 2 :]
    if size is not None:
        x = real_as_trained(size)
    judge.real_a, judge.real_b = judge.features(x[half[0]]), judge.features(x[half[1]])
    return judge


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(Sa + Sb - 2 (Sa Sb)^1/2) between two feature sets."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    # A small diagonal offset (as FID implementations do): dead ReLU units make the
    # covariances singular, and sqrtm of a singular product is ill-conditioned.
    eye = 1e-6 * np.eye(a.shape[1])
    sa, sb = np.cov(a, rowvar=False) + eye, np.cov(b, rowvar=False) + eye
    covmean = linalg.sqrtm(sa @ sb)
    covmean = covmean.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(sa + sb - 2 * covmean))


def evaluate_digits(
    pipe,
    n_per_digit: int = 50,
    steps: int | None = None,
    solver: str | None = None,
    guidance: float | None = None,
    batch: int = 16,
    phrasings: tuple[str, ...] = ("canonical",),
) -> dict[str, float]:
    """Generate ``n_per_digit`` of each digit per phrasing of the digits grammar (canonical:
    "a handwritten seven"; see ``world/digits.py``); score accuracy and Frechet distance."""
    judge = train_judge(size=pipe.spec.width)
    labels = np.repeat(np.arange(10), n_per_digit)
    out: dict[str, float] = {}
    for phrasing in phrasings:
        rng = np.random.default_rng(4321)
        prompts = [caption(int(d), rng, phrasing) for d in labels]
        images = pipe.generate_many(
            prompts,
            batch=batch,
            desc=f"eval digits {phrasing}",
            steps=steps,
            guidance=guidance,
            solver=solver,
        )
        x = to_features_grid(np.stack(images))
        label = "" if len(phrasings) == 1 else f"{phrasing} "
        out[f"{label}accuracy %"] = 100 * judge.accuracy(x, labels)
        out[f"{label}frechet generated-vs-real"] = frechet_distance(judge.features(x), judge.real_a)
    out["classifier accuracy on held-out real %"] = 100 * judge.heldout_accuracy
    out["frechet real-vs-real"] = frechet_distance(judge.real_b, judge.real_a)
    return out

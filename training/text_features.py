"""What a model's text encoder makes of its captions: linear probes of its features.

For single-event sound scenes of the training split, each caption is encoded by the model's
text encoder; a logistic regression per attribute (pitch: 21 notes, timbre: 4 pitched
timbres, count: 1-4) is fitted on 70% of the captions' features (the pooled vector, or the
mean of the token features) and scored on the other 30%. High accuracy means the attribute is
there, linearly, for the DiT to read; an attribute the text features hold but the generated
clips miss points at the generator, one they do not hold points at the text encoder.

    python -m training.text_features sounds-t2a [--captions 3000]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from .world.sounds import PITCHED, caption, sample_scene


def probe_accuracy(features: np.ndarray, labels: list, train_share: float = 0.7) -> float:
    """Held-out accuracy (%) of a logistic regression from ``features`` (N, D) to ``labels``:
    the first ``train_share`` of the rows fit it, the rest score it."""
    y = np.asarray(labels)
    cut = int(train_share * len(y))
    x = (features - features[:cut].mean(0)) / (features[:cut].std(0) + 1e-6)
    clf = LogisticRegression(max_iter=1000).fit(x[:cut], y[:cut])
    return 100.0 * float((clf.predict(x[cut:]) == y[cut:]).mean())


def sound_captions(n: int, seed: int = 0) -> tuple[list[str], dict[str, list]]:
    """``n`` captions (canonical and training phrasings alternating) of single pitched sound
    events named by their note, and their pitch, timbre and count."""
    rng = np.random.default_rng(seed)
    captions, labels = [], {"pitch": [], "timbre": [], "count": []}
    while len(captions) < n:
        scene = sample_scene(rng, "train", 3.0)
        e = scene.events[0]
        if len(scene.events) > 1 or e.timbre not in PITCHED or e.coarse:
            continue
        captions.append(caption(scene, rng, ("canonical", "train")[len(captions) % 2]))
        for key, value in (("pitch", e.pitch), ("timbre", e.timbre), ("count", e.count)):
            labels[key].append(value)
    return captions, labels


@torch.no_grad()
def text_features(encoder, captions: list[str], batch: int = 256) -> dict[str, np.ndarray]:
    """{"pooled": (N, P), "token mean": (N, D)} of the encoder's features of ``captions``."""
    pooled, means = [], []
    for i in range(0, len(captions), batch):
        emb = encoder.encode(captions[i : i + batch])
        m = emb.mask.float()[..., None]  # (B, L, 1)
        pooled.append(emb.pooled.float().numpy())
        means.append(((emb.tokens * m).sum(1) / m.sum(1)).float().numpy())
    return {"pooled": np.concatenate(pooled), "token mean": np.concatenate(means)}


def main(argv: list[str] | None = None) -> None:
    from pipelines.registry import load_pipeline

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a sounds model's name or folder")
    ap.add_argument("--captions", type=int, default=3000)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    pipe = load_pipeline(args.model)
    captions, labels = sound_captions(args.captions)
    feats = text_features(pipe.text_encoder, captions)
    print(f"{args.model}: {len(captions)} captions, 30% held out for scoring")
    print("| attribute | classes | chance | pooled | token mean |\n|---|---|---|---|---|")
    for key, y in labels.items():
        k = len(set(y))
        accs = [probe_accuracy(feats[f], y) for f in ("pooled", "token mean")]
        print(f"| {key} | {k} | {100 / k:.1f} | {accs[0]:.1f} | {accs[1]:.1f} |")


if __name__ == "__main__":
    main()

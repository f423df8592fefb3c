"""Training data as deterministic index -> (image, caption) sources.

Batches are a pure function of (seed, step): resuming at step s draws exactly the batches an
uninterrupted run would have drawn, with no data-loader state to checkpoint.
"""

from __future__ import annotations

import warnings
import wave
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from training.world.digits import NUMBER_WORDS  # noqa: F401 (re-exported)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
AUDIO_SUFFIXES = (".wav",)


class Source:
    """Items are (image (3, H, W) float in [-1, 1], caption). ``buckets`` groups indices whose
    images share a size, so a batch never mixes shapes."""

    def __len__(self) -> int:
        raise NotImplementedError

    def item(self, index: int) -> tuple[torch.Tensor, str]:
        raise NotImplementedError

    def buckets(self) -> list[np.ndarray]:
        return [np.arange(len(self))]


class _WorldSource(Source):
    """A procedural world's dataset (index -> dict), items rendered once and cached."""

    field = "image"  # the dataset's key holding the media tensor
    ds: torch.utils.data.Dataset

    def __len__(self) -> int:
        return len(self.ds)

    def item(self, index: int) -> tuple[torch.Tensor, str]:
        if index not in self.cache:
            d = self.ds[index]
            self.cache[index] = (d[self.field], d["caption"])
        return self.cache[index]


class ShapesSource(_WorldSource):
    def __init__(
        self, n: int, seed: int, size: int, split: str = "train", phrasing: str = "train"
    ) -> None:
        from training.world.shapes import ShapesDataset

        self.ds = ShapesDataset(n, seed=seed, size=size, split=split, phrasing=phrasing)
        self.cache: dict[int, tuple[torch.Tensor, str]] = {}


class DigitsSource(Source):
    """scikit-learn's 1,797 real handwritten digit scans (8x8, 16 grey levels), upsampled."""

    def __init__(self, size: int, seed: int) -> None:
        from sklearn.datasets import load_digits

        digits = load_digits()
        imgs = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0  # (N, 1, 8, 8)
        imgs = torch.nn.functional.interpolate(imgs, size=(size, size), mode="bilinear")
        self.images = (imgs.clamp(0, 1) * 2 - 1).expand(-1, 3, -1, -1).contiguous()
        self.labels = digits.target
        self.rng_seed = seed

    def __len__(self) -> int:
        return len(self.labels)

    def item(self, index: int) -> tuple[torch.Tensor, str]:
        from training.world.digits import caption

        rng = np.random.default_rng([self.rng_seed, index])
        return self.images[index], caption(int(self.labels[index]), rng)


class SoundsSource(Source):
    """The procedural sound world as mel tokens: items are (tokens (N, frames_per_token *
    n_mels), caption), encoded once and cached; buckets hold clips of one token count."""

    def __init__(
        self,
        n: int,
        seed: int,
        seconds: float,
        codec,
        split: str = "train",
        phrasing: str = "train",
    ) -> None:
        from training.world.sounds import SoundsDataset

        self.ds = SoundsDataset(n, seed=seed, split=split, max_duration=seconds, phrasing=phrasing)
        self.codec = codec
        self.cache: dict[int, tuple[torch.Tensor, str]] = {}
        lengths = np.array([codec.tokens_for(self.ds.scene(i).duration) for i in range(n)])
        self._buckets = [np.flatnonzero(lengths == k) for k in np.unique(lengths)]

    def __len__(self) -> int:
        return len(self.ds)

    def item(self, index: int) -> tuple[torch.Tensor, str]:
        if index not in self.cache:
            d = self.ds[index]
            tokens = self.codec.clip_tokens(torch.from_numpy(d["wave"]), d["scene"].duration)
            self.cache[index] = (tokens, d["caption"])
        return self.cache[index]

    def buckets(self) -> list[np.ndarray]:
        return self._buckets

    def labels(self, index: int) -> torch.Tensor:
        """(N, 3) long per-token ground truth of item ``index`` (training/ground_truth.py)."""
        from .ground_truth import sounds_labels

        n = self.item(index)[0].shape[0]
        scene = self.ds.scene(index)
        return torch.from_numpy(sounds_labels(scene, self.codec.seconds_per_token, n))


class MotionSource(_WorldSource):
    """The procedural video world: clips (F, 3, H, W) in [-1, 1] at the recipe's size, frame
    count and fps."""

    field = "video"

    def __init__(
        self, n: int, seed: int, size: int, seconds: float, fps: float, phrasing: str = "train"
    ) -> None:
        from training.world.motion import MotionDataset

        self.ds = MotionDataset(
            n, seed=seed, size=size, frames=round(seconds * fps), fps=fps, phrasing=phrasing
        )
        self.cache: dict[int, tuple[torch.Tensor, str]] = {}


class AudioVideoSource(Source):
    """The audio+video world: items are ({"video": (F, 3, H, W) in [-1, 1], "audio": mel tokens
    (N, D)}, caption) of one duration, made once and cached."""

    def __init__(
        self,
        n: int,
        seed: int,
        size: int,
        seconds: float,
        fps: float,
        codec,
        phrasing: str = "train",
    ) -> None:
        from training.world.audiovideo import AVDataset

        self.ds = AVDataset(
            n, seed=seed, size=size, seconds=seconds, fps=fps, split="train", phrasing=phrasing
        )
        self.codec, self.seconds = codec, seconds
        self.cache: dict[int, tuple[dict[str, torch.Tensor], str]] = {}

    def __len__(self) -> int:
        return len(self.ds)

    def item(self, index: int) -> tuple[dict[str, torch.Tensor], str]:
        if index not in self.cache:
            d = self.ds[index]
            audio = self.codec.clip_tokens(torch.from_numpy(d["wave"]), self.seconds)
            self.cache[index] = ({"video": d["video"], "audio": audio}, d["caption"])
        return self.cache[index]


class _FolderItems(Source):
    """Items read once from a user's folder: files with same-name ``.txt`` captions; items
    whose tensors share a shape are bucketed together."""

    items: list[tuple[torch.Tensor, str]]

    def __len__(self) -> int:
        return len(self.items)

    def item(self, index: int) -> tuple[torch.Tensor, str]:
        return self.items[index]

    def buckets(self) -> list[np.ndarray]:
        if not hasattr(self, "_buckets"):  # items never change after __init__
            shapes = [tuple(t.shape) for t, _ in self.items]
            self._buckets = [
                np.array([i for i, s in enumerate(shapes) if s == k]) for k in sorted(set(shapes))
            ]
        return self._buckets

    @staticmethod
    def captioned(folder: str | Path, suffixes: tuple[str, ...]):
        """(path, caption) for each file of ``folder`` (recursively) with one of ``suffixes``."""
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"data folder {folder} does not exist")
        for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in suffixes):
            caption_file = path.with_suffix(".txt")
            yield path, caption_file.read_text().strip() if caption_file.is_file() else ""


class FolderSource(_FolderItems):
    """The user's images with same-name ``.txt`` captions, resized into aspect buckets.

    Unreadable images are skipped with a warning naming them, at start-up, never mid-epoch.
    """

    def __init__(self, folder: str | Path, size: int, patch: int) -> None:
        self.items = []
        for path, caption in self.captioned(folder, IMAGE_SUFFIXES):
            try:
                with Image.open(path) as im:
                    rgb = im.convert("RGB")
            except Exception as e:  # any unreadable file: skip it, say which
                warnings.warn(f"skipping unreadable image {path}: {e}", stacklevel=2)
                continue
            w, h = _bucket(rgb.width, rgb.height, size, patch)
            arr = np.asarray(rgb.resize((w, h), Image.BICUBIC), dtype=np.float32) / 127.5 - 1
            self.items.append((torch.from_numpy(arr).permute(2, 0, 1).contiguous(), caption))
        if not self.items:
            raise ValueError(f"no readable images in {folder} ({', '.join(IMAGE_SUFFIXES)})")


class AudioFolderSource(_FolderItems):
    """The user's sounds: PCM ``.wav`` files with same-name ``.txt`` captions, as mel tokens;
    clips longer than ``seconds`` are cut there, buckets hold clips of one token count.

    Unreadable files are skipped with a warning naming them, at start-up.
    """

    def __init__(self, folder: str | Path, codec, seconds: float) -> None:
        self.items = []
        for path, caption in self.captioned(folder, AUDIO_SUFFIXES):
            try:
                samples = read_pcm_wav(path, codec.sample_rate)
            except (ValueError, EOFError, wave.Error) as e:
                warnings.warn(f"skipping unreadable sound {path}: {e}", stacklevel=2)
                continue
            duration = min(len(samples) / codec.sample_rate, seconds)
            self.items.append((codec.clip_tokens(samples, duration), caption))
        if not self.items:
            raise ValueError(f"no readable sounds in {folder} (PCM {', '.join(AUDIO_SUFFIXES)})")


def read_pcm_wav(path: str | Path, rate: int) -> torch.Tensor:
    """A PCM WAV (8, 16 or 32-bit, any channels) as mono float samples (S,) at ``rate`` Hz.

    Python's ``wave`` parses the container because ``torchaudio.load`` needs TorchCodec and
    FFmpeg's shared libraries, which this package does not require.
    """
    with wave.open(str(path)) as w:
        width, channels, sr = w.getsampwidth(), w.getnchannels(), w.getframerate()
        raw = w.readframes(w.getnframes())
    kinds = {1: np.uint8, 2: np.dtype("<i2"), 4: np.dtype("<i4")}
    if width not in kinds:
        raise ValueError(
            f"{8 * width}-bit samples: convert to 16-bit PCM (ffmpeg -i IN -c:a pcm_s16le OUT.wav)"
        )
    x = np.frombuffer(raw, kinds[width]).astype(np.float32)
    x = (x - 128) / 128 if width == 1 else x / 2 ** (8 * width - 1)
    mono = torch.from_numpy(x.reshape(-1, channels).mean(1))  # (S,)
    if len(mono) == 0:
        raise ValueError("no samples")
    if sr != rate:
        import torchaudio

        mono = torchaudio.functional.resample(mono, sr, rate)
    return mono


def _bucket(w: int, h: int, size: int, patch: int) -> tuple[int, int]:
    """The (w, h), multiples of ``patch`` with about size^2 pixels, nearest in aspect ratio."""
    aspect = w / h
    bw = max(patch, round(size * aspect**0.5 / patch) * patch)
    bh = max(patch, round(size / aspect**0.5 / patch) * patch)
    return bw, bh


class MixedSource(Source):
    """Items alternate between sources: index i is item i // k of source i % k."""

    def __init__(self, sources: list[Source]) -> None:
        self.sources = sources

    def __len__(self) -> int:
        return len(self.sources) * min(map(len, self.sources))

    def item(self, index: int):
        k = len(self.sources)
        return self.sources[index % k].item(index // k)

    def buckets(self) -> list[np.ndarray]:
        k, n = len(self.sources), min(map(len, self.sources))
        return [b[b < n] * k + j for j, s in enumerate(self.sources) for b in s.buckets()]


def make_source(recipe) -> Source:
    if recipe.data_split == "all":  # both splits' media, half each (autoencoders: no captions)
        from dataclasses import replace

        parts = [
            replace(recipe, data_split="train"),
            replace(recipe, data_split="heldout", seed=recipe.seed + 1),
        ]
        return MixedSource([make_source(r) for r in parts])
    if recipe.data_split != "train" and recipe.data not in ("shapes", "sounds"):
        raise ValueError(
            f"recipe data_split={recipe.data_split!r}: only the shapes and sounds "
            "worlds have held-out splits; use 'train'"
        )
    if recipe.data == "shapes":
        return ShapesSource(
            recipe.data_size, recipe.seed, recipe.size, recipe.data_split, recipe.phrasing
        )
    if recipe.data == "digits":
        return DigitsSource(recipe.size, recipe.seed)
    if recipe.data == "motion":
        return MotionSource(
            recipe.data_size, recipe.seed, recipe.size, recipe.seconds, recipe.fps, recipe.phrasing
        )
    if recipe.data == "bounce":
        from conditioning.mel import MelCodec

        return AudioVideoSource(
            recipe.data_size,
            recipe.seed,
            recipe.size,
            recipe.seconds,
            recipe.fps,
            MelCodec(**recipe.codec),
            recipe.phrasing,
        )
    if recipe.modality == "audio":
        from conditioning.mel import MelCodec

        codec = MelCodec(**recipe.codec)
        if recipe.data == "folder":
            return AudioFolderSource(recipe.data_path, codec, recipe.seconds)
        return SoundsSource(
            recipe.data_size, recipe.seed, recipe.seconds, codec, recipe.data_split, recipe.phrasing
        )
    return FolderSource(recipe.data_path, recipe.size, recipe.patch)


def batch_indices(source: Source, seed: int, step: int, batch: int) -> np.ndarray:
    """The global batch of ``step``: a pure function of (seed, step)."""
    rng = np.random.default_rng([seed, step])
    buckets = source.buckets()
    sizes = np.array([len(b) for b in buckets], dtype=np.float64)
    bucket = buckets[rng.choice(len(buckets), p=sizes / sizes.sum())]
    return bucket[rng.integers(0, len(bucket), size=batch)]

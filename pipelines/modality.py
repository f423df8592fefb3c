"""One definition per modality: how its media become the DiT's tokens, where each token sits,
and how tokens become media again.

The trainer (``training/media.py``) turns a batch of items into tokens and positions through
these classes, and the pipelines (``image.py``, ``audio.py``, ``video.py``, ``audio_video.py``)
lay out a request's streams and decode them through the same ones. Both build them from the
model's ``ModelSpec`` with :func:`streams_of` (the trainer from the spec its export will carry),
so training and inference cannot disagree on a token layout. A fifth modality is one class here
and one entry in ``MODALITIES``, plus its pipeline (file format, previews) and its world.

Positions are (N, 4) rows (time in seconds or 0, y, x, stream id 0) from ``dit/tokens.py``:
every stream that has time puts it on one axis in seconds, so streams of one clip align.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

from conditioning.mel import MelCodec
from dit.tokens import (
    audio_positions,
    image_positions,
    patchify,
    patchify_video,
    unpatchify,
    unpatchify_video,
    video_positions,
)

from .sampler import Layout
from .spec import ModelSpec


class StreamTokens(Protocol):
    """What every stream definition offers: its name and features per token."""

    stream: str
    dim: int


@dataclass(frozen=True)
class ImageTokens:
    """Images (B, C, H, W) in [-1, 1] as p x p pixel patches, row-major."""

    channels: int
    patch: int
    stream: str = "image"

    @property
    def dim(self) -> int:
        return self.channels * self.patch**2

    def layout(self, height: int, width: int) -> Layout:
        h, w = height // self.patch, width // self.patch
        return Layout(self.stream, h * w, self.dim, image_positions(h, w))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, N, C p p)."""
        return patchify(images, self.patch)

    def decode(self, tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """(B, N, C p p) -> (B, C, H, W)."""
        p = self.patch
        return unpatchify(tokens, p, height // p, width // p)


@dataclass(frozen=True)
class AudioTokens:
    """Sound as normalised log-mel tokens of ``codec.frames_per_token`` frames, each carrying
    its start time in seconds: a duration sets the token count."""

    codec: MelCodec
    stream: str = "audio"

    @property
    def dim(self) -> int:
        return self.codec.token_dim

    def layout(self, duration: float) -> Layout:
        return self.layout_of(self.codec.tokens_for(duration))

    def layout_of(self, n: int) -> Layout:
        """The layout of ``n`` tokens (training items come as tokens already)."""
        return Layout(self.stream, n, self.dim, audio_positions(n, self.codec.seconds_per_token))


@dataclass(frozen=True)
class VideoTokens:
    """Clips (B, F, C, H, W) in [-1, 1] as tpatch x p x p pixel tubelets, each carrying the
    time in seconds of its first frame at the clip's fps."""

    channels: int
    patch: int
    tpatch: int
    stream: str = "video"

    @property
    def dim(self) -> int:
        return self.channels * self.tpatch * self.patch**2

    def grid(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        """(tubelets in time, patches down, patches across)."""
        return frames // self.tpatch, height // self.patch, width // self.patch

    def layout(self, frames: int, height: int, width: int, fps: float) -> Layout:
        f, h, w = self.grid(frames, height, width)
        positions = video_positions(f * self.tpatch, h, w, fps, self.tpatch)
        return Layout(self.stream, f * h * w, self.dim, positions)

    def encode(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, F, C, H, W) -> (B, N, C q p p)."""
        return patchify_video(clips, self.patch, self.tpatch)

    def decode(self, tokens: torch.Tensor, frames: int, height: int, width: int) -> torch.Tensor:
        """(B, N, C q p p) -> (B, F, C, H, W)."""
        return unpatchify_video(tokens, self.patch, self.tpatch, *self.grid(frames, height, width))


def _codec(spec: ModelSpec) -> MelCodec:
    return MelCodec(**spec.extra.get("codec", {}))


def _video(spec: ModelSpec) -> VideoTokens:
    return VideoTokens(spec.channels, spec.patch, spec.tpatch)


# modality -> its generated streams, in the model's order
MODALITIES: dict[str, Callable[[ModelSpec], tuple[StreamTokens, ...]]] = {
    "image": lambda spec: (ImageTokens(spec.channels, spec.patch),),
    "audio": lambda spec: (AudioTokens(_codec(spec)),),
    "video": lambda spec: (_video(spec),),
    "audio+video": lambda spec: (_video(spec), AudioTokens(_codec(spec))),
}


def streams_of(spec: ModelSpec) -> dict[str, StreamTokens]:
    """A model's generated streams by name, in the model's order."""
    if spec.modality not in MODALITIES:
        raise ValueError(
            f"model {spec.name!r}: modality={spec.modality!r} is unknown; "
            f"known: {sorted(MODALITIES)}"
        )
    return {s.stream: s for s in MODALITIES[spec.modality](spec)}

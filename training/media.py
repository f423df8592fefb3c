"""What the trainer needs to know of a modality: its stream, how a batch of source items
becomes tokens with positions, and the model spec the export carries.

One adapter per modality; the trainer loop, the objective and the export are shared.
"""

from __future__ import annotations

import torch

from conditioning.mel import MelCodec
from dit.flow import logit_normal_t
from dit.tokens import audio_positions, image_positions, patchify, patchify_video, video_positions
from pipelines.spec import ModelSpec

from .recipe import Recipe


class Media:
    """One generated stream: its name and token size, and each step's flow times."""

    stream: str
    token_dim: int

    @property
    def streams(self) -> dict[str, int]:
        return {self.stream: self.token_dim}

    def times(self, b: int, g: torch.Generator) -> torch.Tensor:
        """(B,) training times of a step's global batch (SD3's logit-normal)."""
        return logit_normal_t(b, generator=g)


class ImageMedia(Media):
    """Items are images (3, H, W) in [-1, 1]; tokens are p x p pixel patches."""

    stream = "image"

    def __init__(self, recipe: Recipe) -> None:
        self.recipe, self.patch = recipe, recipe.patch
        self.token_dim = 3 * recipe.patch**2

    def tokens(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) -> tokens (B, N, 3 p p) and positions (N, 4)."""
        p = self.patch
        positions = image_positions(batch.shape[-2] // p, batch.shape[-1] // p)
        return patchify(batch, p), positions

    def spec(self) -> ModelSpec:
        r = self.recipe
        return ModelSpec(name=r.name, modality="image", objective=r.objective, channels=3,
                         patch=r.patch, width=r.size, height=r.size,
                         defaults=dict(r.defaults), extra={"data": r.data})  # fmt: skip


class AudioMedia(Media):
    """Items are mel tokens (N, frames_per_token * n_mels), already encoded by the source."""

    stream = "audio"

    def __init__(self, recipe: Recipe) -> None:
        self.recipe, self.codec = recipe, MelCodec(**recipe.codec)
        self.token_dim = self.codec.token_dim

    def tokens(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, N, D) tokens -> the same, and positions (N, 4) with time in seconds."""
        return batch, audio_positions(batch.shape[1], self.codec.seconds_per_token)

    def spec(self) -> ModelSpec:
        r = self.recipe
        return ModelSpec(name=r.name, modality="audio", objective=r.objective, channels=1,
                         patch=r.codec.get("frames_per_token", self.codec.frames_per_token),
                         seconds=r.seconds, sample_rate=self.codec.sample_rate,
                         defaults=dict(r.defaults),
                         extra={"data": r.data, "codec": self.codec.to_dict()})  # fmt: skip


class VideoMedia(Media):
    """Items are clips (F, 3, H, W) in [-1, 1]; tokens are tpatch x p x p pixel tubelets whose
    positions carry time in seconds at the recipe's fps."""

    stream = "video"

    def __init__(self, recipe: Recipe) -> None:
        self.recipe, self.patch, self.tpatch = recipe, recipe.patch, recipe.tpatch
        self.token_dim = 3 * recipe.tpatch * recipe.patch**2

    def tokens(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, F, 3, H, W) -> tokens (B, N, 3 q p p) and positions (N, 4)."""
        p, q = self.patch, self.tpatch
        f, h, w = batch.shape[1], batch.shape[-2] // p, batch.shape[-1] // p
        return patchify_video(batch, p, q), video_positions(f, h, w, self.recipe.fps, q)

    def spec(self) -> ModelSpec:
        r = self.recipe
        return ModelSpec(name=r.name, modality="video", objective=r.objective, channels=3,
                         patch=r.patch, width=r.size, height=r.size, seconds=r.seconds,
                         fps=r.fps, tpatch=r.tpatch, defaults=dict(r.defaults),
                         extra={"data": r.data})  # fmt: skip


MEDIA = {"image": ImageMedia, "audio": AudioMedia, "video": VideoMedia}


def media_of(recipe: Recipe) -> ImageMedia | AudioMedia | VideoMedia:
    return MEDIA[recipe.modality](recipe)

"""What the trainer needs to know of a modality: its stream, how a batch of source items
becomes tokens with positions, and the model spec the export carries.

One adapter per modality; the trainer loop, the objective and the export are shared.
"""

from __future__ import annotations

import torch

from conditioning.mel import MelCodec
from dit.tokens import audio_positions, image_positions, patchify
from pipelines.spec import ModelSpec

from .recipe import Recipe


class ImageMedia:
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


class AudioMedia:
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


def media_of(recipe: Recipe) -> ImageMedia | AudioMedia:
    return AudioMedia(recipe) if recipe.modality == "audio" else ImageMedia(recipe)

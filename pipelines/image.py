"""Text to image: pixel patches in, PNG out."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .base import Layout, Pipeline
from .outputs import png_bytes
from .request import Request


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) in [-1, 1] -> (B, H, W, C) uint8."""
    x = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


class TextToImagePipeline(Pipeline):
    class_name = "TextToImagePipeline"
    suffix = ".png"

    def layout(self, request: Request) -> Layout:
        return self.streams["image"].layout(request.height, request.width)

    def decode(self, x: torch.Tensor, request: Request) -> list[np.ndarray]:
        images = self.streams["image"].decode(x, request.height, request.width)  # (B, C, H, W)
        return list(to_uint8(images))

    def codes_to_tokens(self, codes: torch.Tensor, request: Request) -> torch.Tensor:
        """(B, N) codes -> (B, N, 3 p p) pixel patches (the autoencoder's factor is p)."""
        p = self.spec.patch
        grid = codes.view(-1, request.height // p, request.width // p)
        return self.streams["image"].encode(self.autoencoder.decode(grid))

    def encode_file(self, media: np.ndarray, settings: dict[str, Any]) -> bytes:
        return png_bytes(media, settings)

"""Text to video: pixel tubelets in, an H.264 MP4 out.

Each tubelet (``tpatch`` frames x ``patch`` x ``patch`` pixels) carries the time in seconds of
its first frame, so a request's fps and duration may differ from training: the frame count is
``duration x fps`` and the positions land on the same seconds axis the model learnt.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from dit.flow import frame_noise
from dit.temporal import frame_split

from .base import Layout, Pipeline
from .figures import enlarge, frame_grid
from .image import to_uint8
from .mp4 import mp4_bytes
from .request import Request

DISPLAY_SIDE = 192  # MP4 frames are upsampled (nearest) to about this side for players


def display_scale(width: int, height: int) -> int:
    """The integer nearest-neighbour upsampling that brings frames to about DISPLAY_SIDE."""
    return max(1, DISPLAY_SIDE // max(width, height))


class TextToVideoPipeline(Pipeline):
    class_name = "TextToVideoPipeline"
    suffix = ".mp4"
    stream = "video"

    def layout(self, request: Request) -> Layout:
        video = self.streams[self.stream]
        return video.layout(request.frames(), request.height, request.width, request.fps)

    def noise(self, lay: Layout, g: torch.Generator) -> torch.Tensor:
        """Frames share ``frame_noise_share`` of their noise when the model was trained so."""
        share = self.spec.extra.get("frame_noise_share", 0.0)
        if lay.stream != self.stream or not share:
            return super().noise(lay, g)
        frames = frame_split(lay.positions, lay.stream)[0]  # the core's own frame count
        return frame_noise((lay.tokens, lay.dim), frames, share, g)

    def frames_of(self, x: torch.Tensor, request: Request) -> np.ndarray:
        """(B, N, D) video tokens -> (B, F, H, W, 3) uint8."""
        video = self.streams[self.stream].decode(
            x, request.frames(), request.height, request.width
        )  # (B, F, C, H, W)
        b, f = video.shape[:2]
        return to_uint8(video.flatten(0, 1)).reshape(b, f, *video.shape[-2:], 3)

    def decode(self, x: torch.Tensor, request: Request) -> list[np.ndarray]:
        return list(self.frames_of(x, request))

    def preview(self, x: torch.Tensor, request: Request) -> list[np.ndarray]:
        return [enlarge(frame_grid(v), 384) for v in self.frames_of(x, request)]

    def encode_file(self, media: np.ndarray, settings: dict[str, Any]) -> bytes:
        scale = display_scale(media.shape[2], media.shape[1])
        return mp4_bytes(media, settings["fps"], settings, scale=scale)

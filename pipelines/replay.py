"""The settings a studio file carries, whatever its kind (PNG, WAV, MP4), for replay. Here, not
in ``outputs``: the MP4 code builds on ``outputs``, and this reads all three."""

from __future__ import annotations

import os
from typing import Any

from .mp4 import read_mp4_settings
from .outputs import read_png_settings, read_wav


def read_settings(path: str | os.PathLike) -> dict[str, Any]:
    """The settings any studio file carries (PNG, WAV or MP4), for replay."""
    with open(path, "rb") as f:
        head = f.read(12)
    if head[4:8] == b"ftyp":  # an ISO media file
        return read_mp4_settings(path)
    if head[:4] == b"RIFF":
        settings = read_wav(path)[2]
        if not settings:
            raise ValueError(
                "this WAV carries no dit-studio settings (was it written by the studio?)"
            )
        return settings
    return read_png_settings(path)

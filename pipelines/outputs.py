"""Writing outputs: atomic (temporary file, then rename) and carrying the settings that made them.

A crash or a kill mid-write never leaves a partial file under the final name: the bytes go
to a hidden temporary file in the same folder, are flushed to disk, then renamed over.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

SETTINGS_KEY = "dit-studio"  # the PNG text chunk (and WAV/MP4 tag) holding the settings JSON


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the final path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def png_bytes(image: np.ndarray, settings: dict[str, Any]) -> bytes:
    """(H, W, 3) uint8 -> PNG bytes with the settings as a JSON text chunk, plus one chunk
    per top-level setting so image viewers show them too."""
    info = PngImagePlugin.PngInfo()
    info.add_text(SETTINGS_KEY, json.dumps(settings, sort_keys=True))
    for key, value in settings.items():
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            info.add_text(str(key), str(value))
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def write_png(path: str | os.PathLike, image: np.ndarray, settings: dict[str, Any]) -> Path:
    return atomic_write_bytes(path, png_bytes(image, settings))


def read_png_settings(source: str | os.PathLike | bytes) -> dict[str, Any]:
    """The settings a studio PNG carries (for replay); a clear error for any other PNG."""
    img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    text = getattr(img, "text", {}) or {}
    if SETTINGS_KEY not in text:
        raise ValueError(
            "this image carries no dit-studio settings (was it written by the studio?)"
        )
    return json.loads(text[SETTINGS_KEY])

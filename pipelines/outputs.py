"""Writing outputs: atomic (temporary file, then rename) and carrying the settings that made them.

A crash or a kill mid-write never leaves a partial file under the final name: the bytes go
to a hidden temporary file in the same folder, are flushed to disk, then renamed over.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

SETTINGS_KEY = "dit-studio"  # the PNG text chunk (and WAV/MP4 tag) holding the settings JSON


def _write_temp(path: Path, data: bytes) -> str:
    """``data`` fully on disk in a hidden temporary file beside ``path``; returns its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (replacing it); returns the final path."""
    path = Path(path)
    tmp = _write_temp(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_new_file(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` atomically under ``path``'s name, or ``stem-1``, ``stem-2``, ... if that
    name is taken: never replaces a file (a second prompt with the same seed in the same folder
    keeps the first image). Returns the path written."""
    path = Path(path)
    tmp = _write_temp(path, data)
    try:
        for n in itertools.count():
            target = path if n == 0 else path.with_name(f"{path.stem}-{n}{path.suffix}")
            try:
                os.link(tmp, target)  # atomic, and fails if the name exists (unlike replace)
                return target
            except FileExistsError:
                continue
            except OSError:  # a filesystem without hard links: check, then rename
                if target.exists():
                    continue
                os.replace(tmp, target)
                return target
    finally:
        Path(tmp).unlink(missing_ok=True)
    raise AssertionError("unreachable")


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


# --- WAV -------------------------------------------------------------------------------------
# The standard library's `wave` writes 16-bit PCM but no metadata chunks, and torchaudio 2.11
# no longer writes files itself; so the RIFF container is assembled here: fmt + data (via
# `wave`), then a LIST/INFO chunk whose ICMT (comment) holds the settings JSON, which any
# tag reader shows and read_wav_settings reads back.


def wav_bytes(wave_f32: np.ndarray, sample_rate: int, settings: dict[str, Any]) -> bytes:
    """(T,) float in [-1, 1] -> 16-bit PCM mono WAV bytes carrying the settings."""
    import struct
    import wave

    pcm = (np.clip(wave_f32, -1.0, 1.0) * 32767.0).round().astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    riff = bytearray(buf.getvalue())
    text = json.dumps({SETTINGS_KEY: settings}, sort_keys=True).encode("utf-8") + b"\0"
    text += b"\0" * (len(text) % 2)  # RIFF chunks are word aligned
    info = b"INFO" + b"ICMT" + struct.pack("<I", len(text)) + text
    riff += b"LIST" + struct.pack("<I", len(info)) + info
    riff[4:8] = struct.pack("<I", len(riff) - 8)  # the RIFF size now covers the new chunk
    return bytes(riff)


def read_wav(source: str | os.PathLike | bytes) -> tuple[np.ndarray, int, dict[str, Any]]:
    """(samples float32 in [-1, 1], sample rate, settings or {}) of a WAV the studio wrote."""
    import struct

    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a WAV file (no RIFF/WAVE header)")
    pos, rate, samples, settings = 12, 0, None, {}
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = data[pos + 8 : pos + 8 + size]
        if cid == b"fmt ":
            fmt, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            if (fmt, channels, bits) != (1, 1, 16):
                raise ValueError("only 16-bit PCM mono WAVs are read here")
        elif cid == b"data":
            samples = np.frombuffer(body, dtype="<i2").astype(np.float32) / 32767.0
        elif cid == b"LIST" and body[:4] == b"INFO":
            sub = 4
            while sub + 8 <= len(body):
                sid, ssize = body[sub : sub + 4], struct.unpack("<I", body[sub + 4 : sub + 8])[0]
                if sid == b"ICMT":
                    text = body[sub + 8 : sub + 8 + ssize].rstrip(b"\0").decode("utf-8")
                    settings = json.loads(text).get(SETTINGS_KEY, {})
                sub += 8 + ssize + (ssize % 2)
        pos += 8 + size + (size % 2)
    if samples is None or not rate:
        raise ValueError("WAV file has no fmt or data chunk")
    return samples, rate, settings

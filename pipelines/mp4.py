"""MP4 outputs: H.264 video with an optional AAC audio track, carrying the settings that made it.

Encoding goes through `imageio_ffmpeg.write_frames`, which pipes raw frames into the ffmpeg
binary that imageio-ffmpeg ships and muxes an audio track from a file (`audio_path`): imageio's
ffmpeg plugin only forwards `audio_path` to this same function, and its pyav plugin writes no
audio. `write_frames` neither reports ffmpeg's exit status nor writes to a pipe (MP4 needs a
seekable output), so the file goes to a temporary folder and is checked before its bytes are
returned. Reading and probing run the same binary: imageio-ffmpeg ships no ffprobe, and one
code path gives the same answers on every machine.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import numpy as np

from pipelines.outputs import SETTINGS_KEY, atomic_write_bytes, wav_bytes

# The sample rates (Hz) ffmpeg's AAC encoder accepts.
AAC_HZ = (7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)

# Same inputs -> same bytes, across processes and machines with other core counts: bitexact
# leaves out version strings and creation times, -map_metadata -1 drops the temporary WAV's
# tags, and one x264 thread keeps the encoded stream from depending on how many cores there are.
# faststart puts the index first so players start before the download ends. CRF 18: the
# frames are small, so visually lossless costs little.
_ENCODE = [
    "-crf",
    "18",
    "-threads",
    "1",
    "-movflags",
    "+faststart",
    "-fflags",
    "+bitexact",
    "-flags:v",
    "+bitexact",
    "-flags:a",
    "+bitexact",
    "-map_metadata",
    "-1",
]


def mp4_bytes(
    frames: np.ndarray,
    fps: float,
    settings: dict[str, Any],
    audio: np.ndarray | None = None,
    sample_rate: int = 0,
    scale: int = 1,
) -> bytes:
    """(F, H, W, 3) uint8 frames -> MP4 bytes (H.264, yuv420p) carrying the settings in its
    comment tag, plus an AAC track when ``audio`` is given.

    audio: (T,) float in [-1, 1], mono, at ``sample_rate`` Hz; T / sample_rate must equal the
        video's F / fps within one frame period.
    scale: nearest-neighbour upsampling factor; raised by one where needed so both sides are
        even, as yuv420p requires.
    """
    frames = _upsample(_check_frames(frames), _check_scale(scale))
    fps = _check_fps(fps)
    if audio is not None:
        _check_audio(audio, sample_rate, len(frames), fps)
    comment = json.dumps({SETTINGS_KEY: settings}, sort_keys=True)
    _, height, width, _ = frames.shape
    with tempfile.TemporaryDirectory(prefix="dit-studio-mp4-") as tmp:
        out, wav = os.path.join(tmp, "out.mp4"), None
        if audio is not None:
            wav = os.path.join(tmp, "audio.wav")
            Path(wav).write_bytes(wav_bytes(audio, sample_rate, {}))
        writer = imageio_ffmpeg.write_frames(
            out,
            (width, height),
            fps=fps,
            codec="libx264",
            pix_fmt_out="yuv420p",
            quality=None,
            macro_block_size=1,  # sides are even already: no resize by imageio
            ffmpeg_log_level="error",
            audio_path=wav,
            audio_codec="aac" if wav else None,
            output_params=[*_ENCODE, "-metadata", f"comment={comment}"],
        )
        writer.send(None)
        for frame in frames:
            writer.send(frame)
        writer.close()
        data = Path(out).read_bytes() if os.path.exists(out) else b""
    if data[4:8] != b"ftyp" or b"moov" not in data:
        raise RuntimeError("ffmpeg did not write a complete MP4 (its messages are above)")
    return data


def write_mp4(
    path: str | os.PathLike, frames: np.ndarray, fps: float, settings: dict[str, Any], **kwargs: Any
) -> Path:
    """mp4_bytes, written atomically to ``path``."""
    return atomic_write_bytes(path, mp4_bytes(frames, fps, settings, **kwargs))


def read_mp4(
    source: str | os.PathLike | bytes,
) -> tuple[np.ndarray, float, np.ndarray | None, int, dict[str, Any]]:
    """(frames (F, H, W, 3) uint8 as stored, i.e. upsampled; fps; audio (T,) float32 in [-1, 1]
    or None; its sample rate or 0; settings or {}) of an MP4."""
    with _as_file(source) as path:
        info = probe_mp4(path)
        reader = imageio_ffmpeg.read_frames(path, pix_fmt="rgb24")
        width, height = next(reader)["size"]
        frames = np.stack([np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in reader])
        audio = _decode_audio(path) if info["audio_codec"] else None
        return frames, info["fps"], audio, info["sample_rate"], _read_settings(path)


def read_mp4_settings(source: str | os.PathLike | bytes) -> dict[str, Any]:
    """The settings a studio MP4 carries (for replay); a clear error for any other MP4."""
    with _as_file(source) as path:
        settings = _read_settings(path)
    if not settings:
        raise ValueError("this MP4 carries no dit-studio settings (was it written by the studio?)")
    return settings


def probe_mp4(path: str | os.PathLike) -> dict[str, Any]:
    """What the file holds: video_codec, pix_fmt, width, height, fps, frames, video_duration (s),
    audio_codec (None without audio), sample_rate (0 without), audio_duration (s, decoded, so
    after the AAC priming samples are trimmed; 0.0 without)."""
    # framecrc lists every packet with its pts and duration: the video is copied (its packets
    # are the frames), the audio decoded (its frames are the samples a player plays).
    run = _ffmpeg(
        "-hide_banner",
        "-i",
        str(path),
        "-map",
        "0:v:0",
        "-map",
        "0:a:0?",
        "-c:v",
        "copy",
        "-c:a",
        "pcm_s16le",
        "-f",
        "framecrc",
        "-",
    )
    header = run.stderr.decode("utf-8", "replace").split("Stream mapping:")[0]
    video = re.search(r"Stream #0:\d+\S*: Video: (.*)", header)
    if video is None:
        raise ValueError(f"{path}: no video stream")
    audio = re.search(r"Stream #0:\d+\S*: Audio: (.*)", header)
    tb, packets = {}, {0: [], 1: []}
    for line in run.stdout.decode().splitlines():
        if m := re.match(r"#tb (\d+): (\d+)/(\d+)", line):
            tb[int(m[1])] = Fraction(int(m[2]), int(m[3]))
        elif line and line[0].isdigit():
            stream, _, pts, duration = (int(v) for v in line.split(",")[:4])
            packets[stream].append((pts, duration))
    pts = packets[0]
    if not pts:
        raise ValueError(f"{path}: the video stream holds no frames")
    video_duration = (max(p + d for p, d in pts) - min(p for p, _ in pts)) * tb[0]
    codec, pix_fmt, size = _fields(video[1])[:3]
    width, height = (int(v) for v in re.match(r"(\d+)x(\d+)", size).groups())
    rate = re.search(r"(\d+) Hz", audio[1]) if audio else None
    return {
        "video_codec": codec.split()[0],
        "pix_fmt": pix_fmt.split("(")[0],
        "width": width,
        "height": height,
        "fps": float(len(pts) / video_duration),
        "frames": len(pts),
        "video_duration": float(video_duration),
        "audio_codec": _fields(audio[1])[0].split()[0] if audio else None,
        "sample_rate": int(rate[1]) if rate else 0,
        "audio_duration": float(sum(d for _, d in packets[1]) * tb[1]) if audio else 0.0,
    }


def parse_ffmetadata(text: str) -> dict[str, str]:
    """The global tags of ffmpeg's ffmetadata text: ``key=value`` lines where a backslash
    escapes the next character (``=``, ``;``, ``#``, ``\\`` or a newline); lines starting with
    ``;`` or ``#`` are comments; stream and chapter sections (``[STREAM]``) follow the tags."""
    tags: dict[str, str] = {}
    key, chars, escaped, at_start, comment = None, [], False, True, False
    for ch in text + "\n":
        if comment:
            comment = ch != "\n"
        elif escaped:
            chars.append(ch)
            escaped = False
        elif at_start and ch in ";#":
            comment = True
        elif at_start and ch == "[":
            break
        elif ch == "\\":
            escaped = True
        elif ch == "=" and key is None:
            key, chars = "".join(chars), []
        elif ch == "\n":
            if key is not None:
                tags.setdefault(key, "".join(chars))
            key, chars = None, []
        else:
            chars.append(ch)
        at_start = ch == "\n" and not escaped
    return tags


def _check_frames(frames: np.ndarray) -> np.ndarray:
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3:
        shape = getattr(frames, "shape", type(frames).__name__)
        raise ValueError(f"frames must be a (F, H, W, 3) array (RGB), got {shape}")
    if frames.dtype != np.uint8:
        raise ValueError(
            f"frames must be uint8, got {frames.dtype}: convert with "
            "(np.clip(x, 0, 1) * 255).round().astype(np.uint8)"
        )
    if 0 in frames.shape:
        raise ValueError(f"frames is empty {frames.shape}: an MP4 needs at least one 1x1 frame")
    return frames


def _check_scale(scale: int) -> int:
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"scale must be an integer >= 1, got {scale!r}")
    return int(scale)


def _check_fps(fps: float) -> float:
    number = isinstance(fps, (int, float, np.number)) and not isinstance(fps, bool)
    if not (number and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a finite number > 0 (frames per second), got {fps!r}")
    return float(fps)


def _check_audio(audio: np.ndarray, sample_rate: int, n_frames: int, fps: float) -> None:
    if not isinstance(audio, np.ndarray) or audio.ndim != 1 or len(audio) == 0:
        shape = getattr(audio, "shape", type(audio).__name__)
        raise ValueError(f"audio must be a non-empty (T,) mono array, got {shape}")
    if not np.issubdtype(audio.dtype, np.floating) or not np.isfinite(audio).all():
        raise ValueError(f"audio must be finite floats in [-1, 1], got {audio.dtype}")
    if sample_rate not in AAC_HZ:
        raise ValueError(
            f"sample_rate={sample_rate!r} with audio: give the audio's rate in Hz, "
            f"one AAC supports: {AAC_HZ}"
        )
    audio_seconds, video_seconds = len(audio) / sample_rate, n_frames / fps
    if abs(audio_seconds - video_seconds) > 1 / fps + 1e-9:
        raise ValueError(
            f"audio lasts {audio_seconds:.3f} s but the video {video_seconds:.3f} s (F / fps): "
            "they must match within one frame period; trim or pad the audio, or change fps"
        )


def _upsample(frames: np.ndarray, scale: int) -> np.ndarray:
    _, height, width, _ = frames.shape
    if (height * scale) % 2 or (width * scale) % 2:
        scale += 1  # scale was odd and a side odd: the next factor is even
    if scale > 1:
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    return np.ascontiguousarray(frames)


@contextlib.contextmanager
def _as_file(source: str | os.PathLike | bytes) -> Iterator[str]:
    if not isinstance(source, bytes):
        yield str(source)
        return
    with tempfile.TemporaryDirectory(prefix="dit-studio-mp4-") as tmp:
        path = os.path.join(tmp, "in.mp4")
        Path(path).write_bytes(source)
        yield path


def _decode_audio(path: str) -> np.ndarray:
    pcm = _ffmpeg("-v", "error", "-i", path, "-map", "0:a:0", "-ac", "1", "-f", "s16le", "-")
    return np.frombuffer(pcm.stdout, "<i2").astype(np.float32) / 32767.0


def _read_settings(path: str) -> dict[str, Any]:
    text = _ffmpeg("-v", "error", "-i", path, "-f", "ffmetadata", "-").stdout
    try:
        settings = json.loads(parse_ffmetadata(text.decode(errors="replace")).get("comment", "{}"))
    except json.JSONDecodeError:
        return {}  # another tool's comment
    return settings.get(SETTINGS_KEY, {}) if isinstance(settings, dict) else {}


def _ffmpeg(*args: str) -> subprocess.CompletedProcess:
    """Run imageio-ffmpeg's ffmpeg binary on an input file (``-i`` among ``args``)."""
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", *args]
    run = subprocess.run(cmd, capture_output=True, check=False)
    if run.returncode:
        tail = run.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise ValueError(f"ffmpeg could not read {args[args.index('-i') + 1]}: {' '.join(tail)}")
    return run


def _fields(description: str) -> list[str]:
    """Split ffmpeg's stream description at the commas outside brackets."""
    fields, depth, start = [], 0, 0
    for i, ch in enumerate(description):
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            fields.append(description[start:i].strip())
            start = i + 1
    return [*fields, description[start:].strip()]

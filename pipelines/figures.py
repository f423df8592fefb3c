"""Previews a person can read: frames in a grid, spectrograms with time and frequency axes.

What the app shows while a job samples and when it is done (pipelines' ``preview``). Pixels
are enlarged by whole factors (nearest neighbour: a 16 x 16 model's pixels stay crisp) and
axes are drawn with Pillow's own font, so no plotting library is needed for two tick rows.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

MIN_SIDE = 256  # a preview's longer side at least this many pixels
MARGIN_LEFT, MARGIN_BOTTOM = 60, 30  # room for the tick labels
MIN_TICK_GAP = 16  # pixels between two tick labels on the frequency axis
_INK, _PAPER = (40, 40, 40), (255, 255, 255)


def enlarge(image: np.ndarray, at_least: int = MIN_SIDE) -> np.ndarray:
    """(H, W, 3) -> the same, enlarged by the whole factor that brings its longer side to at
    least ``at_least`` pixels (nearest neighbour)."""
    k = max(1, math.ceil(at_least / max(image.shape[:2])))
    return image.repeat(k, axis=0).repeat(k, axis=1)


def frame_grid(video: np.ndarray, columns: int = 4, max_frames: int = 8) -> np.ndarray:
    """(F, H, W, 3) -> up to ``max_frames`` evenly spaced frames, ``columns`` to a row, each
    frame's edge a thin white line (worlds draw on grey and black, never white):
    (rows * (H + 1) - 1, cols * (W + 1) - 1, 3) uint8."""
    idx = np.linspace(0, len(video) - 1, min(max_frames, len(video))).round().astype(int)
    frames = video[idx]
    cols = min(columns, len(frames))
    rows = math.ceil(len(frames) / cols)
    _, h, w, c = frames.shape
    grid = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1, c), 255, np.uint8)
    for i, frame in enumerate(frames):
        r, k = divmod(i, cols)
        grid[r * (h + 1) : r * (h + 1) + h, k * (w + 1) : k * (w + 1) + w] = frame
    return grid


def hz_to_mel(hz: float) -> float:
    """HTK mel scale, the one torchaudio's MelSpectrogram uses by default."""
    return 2595.0 * math.log10(1.0 + hz / 700.0)


def frequency_ticks(f_min: float, f_max: float) -> list[tuple[float, str]]:
    """(share of the height from the bottom, label) at round frequencies on a mel axis."""
    lo, hi = hz_to_mel(f_min), hz_to_mel(f_max)
    ticks = []
    for hz in (100, 250, 500, 1000, 2000, 4000, 8000, 16000):
        if f_min <= hz <= f_max:
            label = f"{hz // 1000} kHz" if hz >= 1000 else f"{hz} Hz"
            ticks.append(((hz_to_mel(hz) - lo) / (hi - lo), label))
    return ticks


def time_ticks(seconds: float) -> list[tuple[float, str]]:
    """(share of the width, label) every 0.25 / 0.5 / 1 / 2 s, about five ticks."""
    step = next((s for s in (0.25, 0.5, 1.0, 2.0, 5.0) if seconds / s <= 6), 10.0)
    n = int(seconds / step + 1e-9)
    return [(i * step / seconds, f"{i * step:g} s") for i in range(n + 1)]


def with_axes(
    image: np.ndarray, x_ticks: list[tuple[float, str]], y_ticks: list[tuple[float, str]]
) -> np.ndarray:
    """(H, W, 3) uint8 -> the image on white paper with tick marks and labels below it
    (shares of the width) and left of it (shares of the height, from the bottom; a tick
    closer than ``MIN_TICK_GAP`` pixels to the one below it is left out, as on a mel axis's
    crowded low end)."""
    h, w = image.shape[:2]
    canvas = Image.new("RGB", (w + MARGIN_LEFT + 8, h + MARGIN_BOTTOM), _PAPER)
    canvas.paste(Image.fromarray(image), (MARGIN_LEFT, 0))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=12)
    for share, label in x_ticks:
        x = MARGIN_LEFT + round(share * (w - 1))
        draw.line([(x, h), (x, h + 4)], fill=_INK)
        width = draw.textlength(label, font=font)
        draw.text(
            (min(max(x - width / 2, MARGIN_LEFT - 10), canvas.width - width), h + 7),
            label,
            fill=_INK,
            font=font,
        )
    last = None
    for share, label in sorted(y_ticks):
        y = round((1 - share) * (h - 1))
        if last is not None and last - y < MIN_TICK_GAP:
            continue
        last = y
        draw.line([(MARGIN_LEFT - 4, y), (MARGIN_LEFT, y)], fill=_INK)
        width = draw.textlength(label, font=font)
        draw.text(
            (MARGIN_LEFT - 7 - width, min(max(y - 7, 0), h - 12)), label, fill=_INK, font=font
        )
    return np.asarray(canvas)


def waveform(samples: np.ndarray, width: int = 256, height: int = 128) -> np.ndarray:
    """(T,) samples in [-1, 1] -> (height, width, 3) uint8: each column's peak level drawn
    symmetrically about the middle (a history thumbnail for a sound)."""
    image = np.full((height, width, 3), 250, np.uint8)
    if samples.size == 0:
        return image
    cols = np.array_split(np.abs(samples.astype(np.float32)), width)
    peak = np.array([c.max() if c.size else 0.0 for c in cols])
    peak = peak / max(float(peak.max()), 1e-6)
    mid = height // 2
    for x, p in enumerate(peak):
        half = max(1, round(p * (mid - 4)))
        image[mid - half : mid + half, x] = (120, 40, 160)
    return image

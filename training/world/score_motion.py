"""Score a generated video against the Clip its prompt described, attribute by attribute.

Each frame is read by the shapes world's scorer (`score_shapes.detect`; the largest blob is the
object), exact on clean renders. The readings form a track in pixels against seconds (frame i
at i / fps), so a video is scored at whatever frame rate and length it was made.
"""

from __future__ import annotations

import itertools
from collections import Counter
from functools import lru_cache

import numpy as np
import torch
from scipy import ndimage

from training.world.motion import DIRECTIONS, RESIZE, SPEEDS, Clip, impact_times
from training.world.score_shapes import (
    FOREGROUND,
    Found,
    _centroid,
    background_colour,
    detect,
    to_uint8,
)
from training.world.shapes import COLOURS, SHAPES, SIZES, Geometry, coverage
from training.world.summary import summarise

CONSISTENT = 0.9  # share of frames that must agree on the object's shape (and colour)
NEAR_FLOOR = 0.2  # canvas: a contact's centre is at most this far above the lowest one seen
GROWTH = 1 / 3  # of the small -> large side difference: the least change "grow" must show
NUDGES = (-0.125, 0.0, 0.125)  # pixels: half a subpixel of shapes.render, either way
# Speeds a track is read as, canvas per second. Standing still is not slow: slow is 0.125 to
# 0.375, fast above.
PACES = SPEEDS | {"still": 0.0}
KEYS = ("direction", "speed", "colour", "shape", "consistent", "growth", "bounce")

summarise_motion = summarise  # percent right per key, over the clips where it applies


def _frames(video: np.ndarray | torch.Tensor) -> list[np.ndarray]:
    """uint8 (H, W, 3) frames from uint8 (F, H, W, 3) or float (F, 3, H, W) / (F, H, W, 3)."""
    if video.ndim != 4 or len(video) == 0:
        raise ValueError(f"expected a video (F, H, W, 3) or (F, 3, H, W), got {video.shape}")
    return [to_uint8(frame) for frame in video]


def read_video(frames: list[np.ndarray], background: str | None = None) -> list[Found | None]:
    """The object (largest blob) of each frame, None where a frame shows none."""
    return [next(iter(detect(f, background)), None) for f in frames]


@lru_cache(maxsize=16)
def _fill(shape: str) -> float:
    """Share of its box a large shape covers (circle pi / 4, triangle 1 / 2, cross 5 / 9)."""
    return float(coverage(shape, Geometry(32, 32, 48), 64).sum()) / 48**2


def _fit(shape: str, alpha: np.ndarray) -> tuple[float, float]:
    """(IoU, box side in pixels) of the shape drawn with the blob's area and centroid. As in
    score_shapes, the template's offset is measured on a centred render of the same side: small
    shapes cover more than `_fill` and sit off-centre by a fraction of a pixel (PIL's edges)."""
    canvas, area, (mx, my) = alpha.shape[0], float(alpha.sum()), _centroid(alpha)
    c, d = canvas / 2, np.sqrt(area / _fill(shape))
    for _ in range(3):
        centred = coverage(shape, Geometry(c, c, d), canvas)
        d *= np.sqrt(area / max(float(centred.sum()), 1e-6))
    cx, cy = _centroid(coverage(shape, Geometry(c, c, d), canvas))
    nudged = (  # PIL rounds vertices to its subpixels: try the neighbouring roundings too
        coverage(shape, Geometry(mx - cx + c + dx, my - cy + c + dy, d), canvas)
        for dx, dy in itertools.product(NUDGES, NUDGES)
    )
    return max(_iou(alpha, t) for t in nudged), float(d)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.minimum(a, b).sum() / np.maximum(a, b).sum())


def measure(frame: np.ndarray, found: Found) -> tuple[str, float]:
    """The object's shape and box side (canvas fractions) at any size: `detect` only fits the
    three SIZES, and grow and shrink pass between them. Each shape is drawn with the blob's
    area at its centroid; the best overlap names the shape."""
    bg = background_colour(frame)
    diff = frame.astype(np.float32) - bg
    direction = np.asarray(COLOURS[found.colour], np.float32) - bg
    alpha = np.clip(diff @ direction / max(float(direction @ direction), 1.0), 0.0, 1.0)
    blob = np.linalg.norm(diff, axis=-1) > FOREGROUND
    alpha = alpha * ndimage.binary_dilation(blob, np.ones((3, 3), bool))  # edges, not noise
    (_, d), shape = max((_fit(s, alpha), s) for s in SHAPES)
    return shape, d / frame.shape[0]


def contacts(times: np.ndarray, ys: np.ndarray, canvas: int) -> list[float]:
    """Seconds of the track's floor contacts: frames where the object is lower (y larger) than
    both neighbours, and within NEAR_FLOOR of the lowest it gets. Neither end frame can count:
    a video cannot show whether the object bounced there or kept on going."""
    floor = ys.max(initial=0.0)
    return [
        float(times[i])
        for i in range(1, len(ys) - 1)
        if ys[i] >= ys[i - 1] and ys[i] > ys[i + 1] and ys[i] >= floor - NEAR_FLOOR * canvas
    ]


def _track(seen: list[Found | None], fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Seconds and centre y (pixels) of the frames that show the object."""
    times = np.array([i / fps for i, f in enumerate(seen) if f], np.float64)
    return times, np.array([f.cy for f in seen if f], np.float64)


def impact_frames_from_video(
    frames: np.ndarray | torch.Tensor, fps: float, background: str | None = None
) -> list[float]:
    """Seconds at which the video's object touches the floor (frame i is at i / fps): for
    matching visual impacts to audio onsets."""
    images = _frames(frames)
    return contacts(*_track(read_video(images, background), fps), images[0].shape[0])


def _bounce_right(found_contacts: list[float], clip: Clip, n_frames: int, fps: float) -> bool:
    """Every true impact the frames can show is matched by one contact within a frame period,
    and no contact is left over. Impacts between the first two or the last two frames may be
    matched or not: no frame on their far side tells a contact from a pass."""
    period, last = 1 / fps, (n_frames - 1) / fps
    left = list(found_contacts)
    for tau in impact_times(clip, last):
        near = [c for c in left if abs(c - tau) <= period + 1e-9]
        if near:
            left.remove(min(near, key=lambda c: abs(c - tau)))
        elif period <= tau <= last - period:
            return False
    return not left


def _majority(values: list) -> object:
    return Counter(values).most_common(1)[0][0] if values else None


def _share(values: list, value: object) -> float:
    return sum(v == value for v in values) / len(values) if values else 0.0


def score_clip(frames: np.ndarray | torch.Tensor, clip: Clip, fps: float) -> dict[str, bool | None]:
    """Per-attribute correctness of a video for `clip`; None where a key does not apply.

    direction: the track's net displacement (first to last frame with the object) goes the asked
    way and is larger along that axis than across it. speed: that displacement per second, in
    canvas fractions, is nearest the asked one of PACES. colour, shape: the majority over frames
    is the asked one; for "change colour", the majority of the first quarter of frames is
    `colour` and of the last quarter `colour_to`. consistent: the object is in every frame and
    at least CONSISTENT of the frames show the majority shape and the majority colour ("change
    colour": the colour changes at most once, between neighbouring frames). growth: the box
    side's least-squares trend over the clip has the asked sign and changes by GROWTH of the
    small -> large difference. bounce: `contacts` match `impact_times` (see `_bounce_right`).
    """
    images = _frames(frames)
    n, canvas = len(images), images[0].shape[0]
    seen = read_video(images, clip.background)
    (times, ys), track = _track(seen, fps), [f for f in seen if f]
    colours = [f.colour for f in track]
    shapes = [f.shape for f in track]
    if clip.motion in RESIZE:  # between the SIZES, detect's shape can be wrong: refit it
        measured = [measure(img, f) for img, f in zip(images, seen, strict=True) if f]
        shapes, sides = [s for s, _ in measured], [d for _, d in measured]
    result: dict[str, bool | None] = dict.fromkeys(KEYS)

    if clip.motion == "change colour":
        q = max(1, n // 4)
        first = [f.colour for f in seen[:q] if f]
        last = [f.colour for f in seen[n - q :] if f]
        result["colour"] = _majority(first) == clip.colour and _majority(last) == clip.colour_to
        steady_colour = sum(a != b for a, b in itertools.pairwise(colours)) <= 1
    else:
        result["colour"] = _majority(colours) == clip.colour
        steady_colour = _share(colours, _majority(colours)) >= CONSISTENT
    result["shape"] = _majority(shapes) == clip.shape
    steady_shape = _share(shapes, _majority(shapes)) >= CONSISTENT
    result["consistent"] = len(track) == n and steady_shape and steady_colour

    moved = bool(len(track) >= 2 and times[-1] > times[0])
    if clip.motion in DIRECTIONS:
        along = across = speed = 0.0
        if moved:
            (dx, dy), first, last = DIRECTIONS[clip.motion], track[0], track[-1]
            shift_x, shift_y = (last.cx - first.cx) / canvas, (last.cy - first.cy) / canvas
            along, across = shift_x * dx + shift_y * dy, shift_x * dy + shift_y * dx
            speed = abs(along) / (times[-1] - times[0])
        result["direction"] = moved and along > abs(across)
        result["speed"] = moved and min(PACES, key=lambda s: abs(speed - PACES[s])) == clip.speed
    if clip.motion in RESIZE:
        a, b = (SIZES[s] for s in RESIZE[clip.motion])
        change = np.polyfit(times, sides, 1)[0] * (times[-1] - times[0]) if moved else 0.0
        result["growth"] = bool(np.sign(b - a) * change >= GROWTH * abs(b - a))
    if clip.motion == "bounce":
        result["bounce"] = _bounce_right(contacts(times, ys, canvas), clip, n, fps)
    return result

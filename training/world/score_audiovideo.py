"""Score the audio-video synchronisation of a clip: when its sounds start against when its
pictures show the events that make them.

Both streams are read without the scene's ground truth. The audio gives onsets from its energy
envelope; the video gives event times from the pixels: sub-frame impact times from a physics fit
of the ball's track, the time a light comes on to within half a frame, the moment two blocks
touch from where their outer span stops shrinking. `sync` pairs each visual event with the
nearest onset; mismatched pairs (`shuffled`) give the chance level the real pairs must beat.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from scipy.optimize import least_squares

from training.world.audiovideo import AVScene, event_times
from training.world.score_motion import _frames, _track, read_video
from training.world.score_shapes import FOREGROUND, background_colour
from training.world.sounds import SR

# Audio: energy in HOP windows, in dB against the clip's loudest window. An onset is the first
# window at ON_DB or more after at least QUIET seconds under OFF_DB (or the clip's start).
HOP = 0.005  # seconds
ON_DB, OFF_DB, QUIET, SILENT_DB = -16.0, -30.0, 0.03, -60.0  # SILENT_DB: dBFS of a mute clip
NOISE_MARGIN_DB = 6.0  # a noisy clip (a generated one) is quiet this far over its noise floor
# Video.
REST_TOL = 0.01  # canvas: trailing frames this close to the lowest place are at rest
MAX_TRIED = 5  # contacts up to which each contact frame's two sides are tried: 2^5 fits


def audio_onsets(wave: np.ndarray | torch.Tensor, sr: int = SR) -> list[float]:
    """Seconds of each sound onset in a mono wave: thuds, beeps, clacks. The window where the
    energy first rises is split by the next window's energy, for a sub-window onset."""
    x = wave.detach().cpu().numpy() if isinstance(wave, torch.Tensor) else np.asarray(wave)
    x = x.astype(np.float64).ravel()
    hop = max(1, round(HOP * sr))
    n = len(x) // hop
    energy = (x[: n * hop].reshape(n, hop) ** 2).mean(axis=1) + 1e-20
    db = 10 * np.log10(energy)
    if n == 0 or db.max() < SILENT_DB:
        return []
    db -= db.max()
    off = max(OFF_DB, np.percentile(db, 10) + NOISE_MARGIN_DB)  # quiet, above any noise floor
    on = max(ON_DB, off + NOISE_MARGIN_DB)
    armed, quiet, need = True, 0, QUIET * sr / hop
    onsets = []
    for j in range(n):
        quiet = quiet + 1 if db[j] < off else 0
        armed = armed or quiet >= need
        if db[j] >= on and armed:
            share = min(energy[j] / energy[min(j + 1, n - 1)], 1.0)  # of window j that sounds
            onsets.append((j + 1 - share) * hop / sr)
            armed = False
    return onsets


# --- video ----------------------------------------------------------------------------------


def _lows(ys: np.ndarray) -> list[int]:
    """Frames lower than both neighbours and in the lower half of the track: floor contacts.
    (score_motion.contacts asks for NEAR_FLOOR, which a fast ball misses between frames.)"""
    mid = (ys.min() + ys.max()) / 2
    return [
        i
        for i in range(1, len(ys) - 1)
        if ys[i] >= ys[i - 1] and ys[i] > ys[i + 1] and ys[i] >= mid
    ]


def _bounce_model(p: np.ndarray, t: np.ndarray, rests: bool) -> np.ndarray:
    """y of a ball whose floor is at y = p[0], gravity p[1] (pixels / s^2, y down), that meets
    the floor at p[2:] seconds (the first and, unless it rests, last being virtual)."""
    floor, g, taus = p[0], p[1], np.sort(p[2:])
    k = np.clip(np.searchsorted(taus, t) - 1, 0, len(taus) - 2)
    a, b = taus[k], taus[k + 1]
    y = floor - g / 2 * (t - a) * (b - t)
    return np.where(t >= taus[-1], floor, y) if rests else y


def bounce_impacts(times: np.ndarray, ys: np.ndarray, canvas: int) -> list[float]:
    """Seconds of each floor impact of a track (centre y in pixels at `times` seconds), to a
    fraction of a frame: every hop between impacts is a parabola of one shared gravity, so a
    least-squares fit of the impact times, the floor and gravity to all frames at once puts
    each impact where the parabolas on its two sides meet the floor. The impacts to fit are
    the contact frames (`_lows`) and, if the track ends at rest, the landing before it; each
    contact frame may show the ball just before or just after its impact: both are tried."""
    times, ys = np.asarray(times, np.float64), np.asarray(ys, np.float64)
    if len(ys) < 3:
        return []
    still = np.abs(ys - ys[-1]) <= REST_TOL * canvas
    r = len(ys) - int(np.argmin(still[::-1])) if not still.all() else 0  # the first still frame
    rests = 0 < r <= len(ys) - 2 and ys[-1] >= ys.max() - REST_TOL * canvas
    lows = _lows(ys[:r] if rests else ys)
    if not lows and not rests:
        return []
    # Bounds of each impact: a virtual one before the first frame; each contact next to its
    # frame; the landing next to the first still frame (which may be just before it, or just
    # after), or a virtual one after the last frame.
    first = lows[0] if lows else r
    top = int(np.argmin(ys[:first]))  # the first hop's apex
    ends = [(times[r - 1], times[r]), (times[r], times[r + 1])] if rests else [(times[-1], np.inf)]
    g = 8 * (ys.max() - ys[top]) / max(2 * (times[first] - times[top]), 1e-3) ** 2
    # The frames after the first still one count as one: their shared place is quantised by
    # the renderer like any one frame's, and would otherwise outweigh the moving frames.
    weight = np.where(np.arange(len(ys)) > r, (len(ys) - r - 1) ** -0.5, 1.0) if rests else 1.0
    best = None
    # Each contact frame shows the ball just before or just after its impact: both are tried,
    # unless a (noisy) track has so many contacts that one fit of wider bounds must do.
    options = [
        [(times[i - 1], times[i]), (times[i], times[i + 1])]
        if len(lows) <= MAX_TRIED
        else [(times[i - 1], times[i + 1])]
        for i in lows
    ]
    for *contacts, end in itertools.product(*options, ends):
        bounds = [(-np.inf, times[0]), *contacts]
        low, high = np.array([(-np.inf, np.inf), (0.0, np.inf), *bounds, end]).T
        middle = [(a + b) / 2 for a, b in bounds[1:]]
        x0 = [ys.max(), g, 2 * times[top] - times[first], *middle, min(end[0] + 0.1, end[1])]
        x0 = np.clip(x0, low + 1e-6, high - 1e-6)
        fit = least_squares(
            lambda p: (_bounce_model(p, times, rests) - ys) * weight, x0, bounds=(low, high)
        )
        if best is None or fit.cost < best.cost - 1e-12:
            best = fit
    return [float(t) for t in best.x[3 : 3 + len(lows) + rests]]


def _span(image: np.ndarray) -> float | None:
    """Pixels from the left edge of the leftmost object to the right edge of the rightmost,
    along the middle row of the foreground, to a fraction of a pixel: an edge pixel's colour is
    part way from the background to its inner neighbour's, as far as the edge covers it."""
    diff = image.astype(np.float32) - background_colour(image)
    fg = np.linalg.norm(diff, axis=-1) > FOREGROUND
    rows = np.flatnonzero(fg.any(axis=1))
    if len(rows) == 0:
        return None
    row, width = diff[rows[len(rows) // 2]], image.shape[1]
    cols = np.flatnonzero(fg[rows[len(rows) // 2]])
    if len(cols) < 3:
        return None

    def cover(col: int, inner: int) -> float:
        if not 0 <= col < width:
            return 0.0
        full = row[inner]
        return float(np.clip(row[col] @ full / max(float(full @ full), 1.0), 0.0, 1.0))

    left, right = cols[0], cols[-1]
    start = left + 1 - cover(left, left + 1) - cover(left - 1, left + 1)
    end = right + cover(right, right - 1) + cover(right + 1, right - 1)
    return end - start


def _hinge(times: np.ndarray, values: np.ndarray) -> float | None:
    """Where a line through the first frames meets a constant through (at least 2) last ones,
    for the split that fits best; None when the values never settle or never fall."""
    best, n = None, len(values)
    for j in range(1, n - 2):  # frames 0..j move, j + 1.. are still
        slope, offset = np.polyfit(times[: j + 1], values[: j + 1], 1)
        still = values[j + 1 :].mean()
        if slope >= 0 or still > values[0]:
            continue
        at = (still - offset) / slope
        if not times[j] - 1e-9 <= at <= times[j + 1] + 1e-9:
            continue
        model = np.where(times < at, offset + slope * times, still)
        cost = float(((model - values) ** 2).sum())
        if best is None or cost < best[0]:
            best = (cost, float(at))
    return None if best is None else best[1]


def visual_events(frames: np.ndarray | torch.Tensor, fps: float, kind: str) -> list[float]:
    """Seconds of each visual event, from the pixels alone (frame i shows i / fps seconds).

    bounce: `bounce_impacts` of the object's track. blink: the light coming on, halfway
    between the last dark frame and the first lit one (a lit first frame has no onset to see).
    collide: where the outer span of the blocks (`_span`) stops shrinking: a line through the
    frames in motion meets the level of the still ones (`_hinge`); none if it never settles."""
    images = _frames(frames)
    if kind == "bounce":
        return bounce_impacts(*_track(read_video(images), fps), images[0].shape[0])
    if kind == "blink":
        lit = [f is not None for f in read_video(images)]
        return [(i - 0.5) / fps for i in range(1, len(lit)) if lit[i] and not lit[i - 1]]
    if kind == "collide":
        spans = [_span(image) for image in images]
        seen = [i for i, w in enumerate(spans) if w is not None]
        at = _hinge(np.array(seen) / fps, np.array([spans[i] for i in seen])) if seen else None
        return [] if at is None else [at]
    raise ValueError(f"kind={kind!r}; choose one of ('bounce', 'blink', 'collide')")


# --- synchronisation ------------------------------------------------------------------------


def sync(visual: list[float], audio: list[float], frame_period: float) -> dict:
    """Each visual event's signed offset (seconds) to the nearest audio onset (audio later:
    positive), their median |offset| in ms, the share within one frame period, and whether the
    streams hold as many events. No onsets at all: every offset is infinite."""
    onsets = np.asarray(audio, np.float64)
    offsets = [
        float(onsets[np.argmin(np.abs(onsets - v))] - v) if len(onsets) else math.inf
        for v in visual
    ]
    size = np.abs(offsets)
    return {
        "offsets": offsets,
        "median_ms": float(np.median(size) * 1000) if offsets else math.nan,
        "within_frame": float(np.mean(size <= frame_period + 1e-9)) if offsets else math.nan,
        "counts_agree": len(visual) == len(audio),
        "n_visual": len(visual),
        "n_audio": len(audio),
        "frame_period": frame_period,
    }


def score_av(
    frames: np.ndarray | torch.Tensor, wave: np.ndarray | torch.Tensor, fps: float, scene: AVScene
) -> dict:
    """`sync` of one clip's video and audio, plus whether each stream shows as many events as
    the prompt's scene has (visual_count, audio_count)."""
    visual, audio = visual_events(frames, fps, scene.kind), audio_onsets(wave)
    truth = len(event_times(scene))
    out = sync(visual, audio, 1 / fps)
    return out | {"visual_count": len(visual) == truth, "audio_count": len(audio) == truth}


def summarise_av(results: list[dict]) -> dict[str, float]:
    """Median |offset| in ms over every visual event of every clip, the percent of events within
    one frame period of an onset, and the percent of clips whose counts agree (and, for
    `score_av` results, whose video and whose audio show the scene's count)."""
    sizes = [abs(o) for r in results for o in r["offsets"]]
    within = [abs(o) <= r["frame_period"] + 1e-9 for r in results for o in r["offsets"]]
    out = {
        "median_ms": float(np.median(sizes) * 1000) if sizes else math.nan,
        "within_frame_pct": 100.0 * float(np.mean(within)) if within else math.nan,
    }
    for key in ("counts_agree", "visual_count", "audio_count"):
        if results and all(key in r for r in results):
            out[f"{key}_pct"] = 100.0 * float(np.mean([r[key] for r in results]))
    return out


def shuffled(pairs: list[tuple[list[float], list[float]]], frame_period: float) -> list[dict]:
    """`sync` of deliberately mismatched clips: the video events of clip i against the audio
    onsets of clip i + 1 (cyclically), for the chance level of `summarise_av`."""
    n = len(pairs)
    return (
        [sync(pairs[i][0], pairs[(i + 1) % n][1], frame_period) for i in range(n)] if n > 1 else []
    )

"""A procedural video world: one shape of the shapes world moving on a plain background.

Motion is defined in seconds and canvas fractions, never in frames: frame i of a render shows
time i / fps, so a clip rendered at any frame rate and frame count shows the object in the same
place at the same time, and a model trained at one fps can be asked for another and still be
scored (see `score_motion.py`). A held-out set of (shape, motion) pairs measures compositional
generalisation: every shape and every motion is seen in training, only these pairs are not.

Captions (`caption`, the grammar of `grammar.py`): the forms of `_PHRASINGS` per kind of motion,
optionally framed (`FRAMES`), with the object words of the shapes world and the motion words of
`LEXICON`. Held out, for evaluation only: the second tuple of each `Words` and `Forms`
("gliding", "to the left", "expanding", "at a slow pace", "watch a ... as it ...", ...).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

from training.world.base import WorldDataset, to_tensor
from training.world.shapes import (
    BACKGROUNDS,
    COLOURS,
    EPS,
    MARGIN,
    SHAPES,
    SIZES,
    SPLITS,
    Geometry,
    _draw,
    _pick,
    _to_supersampled,
    check_choices,
)
from training.world.shapes import LEXICON as SHAPES_LEXICON

from .grammar import Forms, Lexicon, Words, check_phrasing, pick_form, rephrase, sampled_vocabulary

MOTIONS = ("left", "right", "up", "down", "grow", "shrink", "bounce", "change colour")
# Unit velocity (x, y) of each direction; y grows downwards.
DIRECTIONS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}
SPEEDS: dict[str, float] = {"slow": 0.25, "fast": 0.5}  # canvas per second, for a direction
# Canvas per second squared, for "bounce": slow bounces once in a second, fast two or three
# times, every hop at least 0.3 s long so 8 fps shows each contact (see score_motion).
GRAVITY: dict[str, float] = {"slow": 6.0, "fast": 16.0}
RESTITUTION = 0.8  # rebound speed / impact speed
MIN_HOP = 0.02  # seconds: a rebound shorter than this ends the bouncing, the ball rests
DROP_JITTER = 0.05  # a ball is dropped from its top-most place or at most this much lower
# grow and shrink run between these box sides over the clip; `size` names where they start.
RESIZE: dict[str, tuple[str, str]] = {"grow": ("small", "large"), "shrink": ("large", "small")}
WITH_SPEED = (*DIRECTIONS, "bounce")

DEFAULT_SECONDS = 1.0  # a clip's length in training: 8 frames at 8 fps
DEFAULT_FRAMES = 8
DEFAULT_FPS = 8.0
DEFAULT_SIZE = 24

# One pair per shape (5 of 40 pairs, 12.5%); four of the five are directions, the main metric.
HELDOUT_PAIRS: frozenset[tuple[str, str]] = frozenset(
    {
        ("triangle", "left"),
        ("square", "up"),
        ("circle", "right"),
        ("cross", "down"),
        ("diamond", "grow"),
    }
)


@dataclass(frozen=True)
class Clip:
    """One object's motion over `seconds`; `start` is its box centre (x, y) at t = 0, in canvas
    fractions. speed: for the directions and "bounce" only; colour_to: "change colour" only."""

    shape: str
    colour: str
    size: str
    background: str
    motion: str
    speed: str | None
    start: tuple[float, float]
    colour_to: str | None = None
    seconds: float = DEFAULT_SECONDS

    def __post_init__(self) -> None:
        check_choices(
            ("shape", self.shape, SHAPES),
            ("colour", self.colour, COLOURS),
            ("size", self.size, SIZES),
            ("background", self.background, BACKGROUNDS),
            ("motion", self.motion, MOTIONS),
        )
        if self.motion in WITH_SPEED and self.speed not in SPEEDS:
            raise ValueError(f"speed={self.speed!r}; choose one of {list(SPEEDS)}")
        if self.motion not in WITH_SPEED and self.speed is not None:
            raise ValueError(f"speed={self.speed!r}; a {self.motion!r} clip has none: use None")
        if self.motion == "change colour":
            if self.colour_to not in COLOURS or self.colour_to == self.colour:
                others = [c for c in COLOURS if c != self.colour]
                raise ValueError(f"colour_to={self.colour_to!r}; choose one of {others}")
        elif self.colour_to is not None:
            raise ValueError(f"colour_to={self.colour_to!r}; only 'change colour' has one: None")
        if self.background in (self.colour, self.colour_to):
            raise ValueError(f"background={self.background!r} equals the object's colour")
        first = RESIZE.get(self.motion, (self.size,))[0]
        if self.size != first:
            raise ValueError(f"size={self.size!r}; a {self.motion!r} clip starts {first!r}")
        if not self.seconds > 0:
            raise ValueError(f"seconds={self.seconds}; must be > 0")
        if len(self.start) != 2 or not _stays_inside(self):
            raise ValueError(
                f"start={self.start}; the object leaves the canvas (margin {MARGIN}) within "
                f"{self.seconds} s: move the start or pick a smaller size or slower speed"
            )


def _stays_inside(clip: Clip) -> bool:
    """The box keeps MARGIN from every edge. Every motion is linear or, for a bounce, between
    its start and the floor: checking both ends of the clip covers all of it."""
    if clip.motion == "bounce" and not clip.start[1] < _floor(clip) - EPS:
        return False
    places = [_place(clip, t) for t in (0.0, clip.seconds)]
    return all(
        min(x, y) - d / 2 >= MARGIN - EPS and max(x, y) + d / 2 <= 1 - MARGIN + EPS
        for x, y, d in places
    )


def is_heldout(clip: Clip) -> bool:
    return (clip.shape, clip.motion) in HELDOUT_PAIRS


# --- motion in seconds ----------------------------------------------------------------------


def _floor(clip: Clip) -> float:
    """The ball's centre y when it touches the floor (the canvas bottom, less MARGIN)."""
    return 1 - MARGIN - SIZES[clip.size] / 2


def _impacts(clip: Clip) -> list[float]:
    """Every floor contact of a dropped ball, in seconds, until it comes to rest."""
    g = GRAVITY[clip.speed]
    t = math.sqrt(2 * (_floor(clip) - clip.start[1]) / g)  # the drop from rest
    times, hop = [t], 2 * RESTITUTION * t  # a hop lasts 2 v / g; v falls by RESTITUTION each
    while hop >= MIN_HOP:
        t += hop
        times.append(t)
        hop *= RESTITUTION
    return times


def impact_times(clip: Clip, seconds: float | None = None) -> list[float]:
    """Seconds at which a "bounce" clip's ball hits the floor, up to `seconds` (default: the
    clip's length); empty for every other motion."""
    if clip.motion != "bounce":
        return []
    end = clip.seconds if seconds is None else seconds
    return [t for t in _impacts(clip) if t <= end]


def _bounce_y(clip: Clip, t: float) -> float:
    impacts, floor, g = _impacts(clip), _floor(clip), GRAVITY[clip.speed]
    if t < impacts[0]:
        return clip.start[1] + g * t * t / 2
    k = sum(tau <= t for tau in impacts) - 1
    if k == len(impacts) - 1:
        return floor  # at rest
    v, s = RESTITUTION ** (k + 1) * g * impacts[0], t - impacts[k]  # rebound speed, time since
    return floor - (v * s - g * s * s / 2)


def _place(clip: Clip, t: float) -> tuple[float, float, float]:
    """(x, y, side) in canvas fractions at t seconds."""
    x, y = clip.start
    if clip.motion in DIRECTIONS:
        (dx, dy), v = DIRECTIONS[clip.motion], SPEEDS[clip.speed]
        return x + dx * v * t, y + dy * v * t, SIZES[clip.size]
    if clip.motion in RESIZE:
        a, b = (SIZES[s] for s in RESIZE[clip.motion])
        return x, y, a + (b - a) * min(max(t / clip.seconds, 0.0), 1.0)
    if clip.motion == "bounce":
        return x, _bounce_y(clip, t), SIZES[clip.size]
    return x, y, SIZES[clip.size]


def colour_at(clip: Clip, t: float) -> str:
    """The object's colour name at t seconds: "change colour" switches at half the clip."""
    return clip.colour_to if clip.colour_to and t >= clip.seconds / 2 else clip.colour


@dataclass(frozen=True)
class State(Geometry):
    """Ground truth at one time: the object's box in pixels and its colour's name."""

    colour: str


def trajectory(clip: Clip, times_s: np.ndarray, size: int = DEFAULT_SIZE) -> list[State]:
    """The object's state at each time (seconds) on a size x size canvas."""
    states = []
    for t in np.asarray(times_s, dtype=np.float64).ravel():
        x, y, side = _place(clip, float(t))
        states.append(State(x * size, y * size, side * size, colour_at(clip, float(t))))
    return states


# --- sampling -------------------------------------------------------------------------------


def _start(
    rng: np.random.Generator, motion: str, speed: str | None, size: str, seconds: float
) -> tuple[float, float]:
    """A start from which the object stays inside the canvas for the whole clip."""
    side = SIZES["large" if motion in RESIZE else size]  # grow and shrink reach "large"
    lo, hi = MARGIN + side / 2, 1 - MARGIN - side / 2
    x, y = rng.uniform(lo, hi, size=2)
    if motion == "bounce":
        y = lo + rng.uniform(0, DROP_JITTER)
    elif motion in DIRECTIONS:
        (dx, dy), travel = DIRECTIONS[motion], SPEEDS[speed] * seconds
        along = rng.uniform(lo, hi - travel) + (travel if dx + dy < 0 else 0.0)
        x, y = (along, y) if dx else (x, along)
    return float(x), float(y)


def sample_clip(
    rng: np.random.Generator, split: str = "train", seconds: float = DEFAULT_SECONDS
) -> Clip:
    """A random clip; "train" never shows a HELDOUT_PAIRS pair, "heldout" always shows one.

    Motions are uniform in "train", so the four directions make half of all clips."""
    if split not in SPLITS:
        raise ValueError(f"split={split!r}; choose one of {SPLITS}")
    if split == "heldout":
        shape, motion = _pick(rng, sorted(HELDOUT_PAIRS))
    else:
        motion = _pick(rng, MOTIONS)
        shape = _pick(rng, [s for s in SHAPES if (s, motion) not in HELDOUT_PAIRS])
    speed = _pick(rng, SPEEDS) if motion in WITH_SPEED else None
    if motion in RESIZE:
        size = RESIZE[motion][0]
    else:  # a long fast clip has no room for the larger sizes
        travel = SPEEDS[speed] * seconds if motion in DIRECTIONS else DROP_JITTER
        fits = [s for s in SIZES if SIZES[s] + travel <= 1 - 2 * MARGIN + EPS]
        if not fits:
            raise ValueError(f"a {speed} {motion!r} clip of {seconds} s cannot fit the canvas")
        size = _pick(rng, fits)
    colour = _pick(rng, COLOURS)
    colour_to = None
    if motion == "change colour":
        colour_to = _pick(rng, [c for c in COLOURS if c != colour])
    background = _pick(rng, [b for b in BACKGROUNDS if b not in (colour, colour_to)])
    start = _start(rng, motion, speed, size, seconds)
    return Clip(shape, colour, size, background, motion, speed, start, colour_to, seconds)


# --- captions -------------------------------------------------------------------------------
# The grammar (see grammar.py): forms per kind of motion, written with canonical words, then
# words swapped for synonyms of the phrasing. The object words come from the shapes world.

ADVERBS = {"slow": "slowly", "fast": "fast"}
LEXICON = Lexicon(
    {k: SHAPES_LEXICON[k] for k in (*SHAPES, *COLOURS, "grey", *SIZES, "background")}
    | {
        "left": Words(("left", "leftwards"), ("to the left",)),
        "right": Words(("right", "rightwards"), ("to the right",)),
        "up": Words(("up", "upwards"), ("towards the top",)),
        "down": Words(("down", "downwards"), ("towards the bottom",)),
        "slow": Words(("slow",), ("unhurried",)),  # before "slowly": its words hold "slow"
        "slowly": Words(("slowly",), ("at a slow pace",)),
        "moving": Words(("moving", "travelling"), ("gliding",)),
        "moves": Words(("moves", "travels"), ("glides",)),
        "sliding": Words(("sliding",), ("drifting",)),
        "growing": Words(("growing", "getting bigger"), ("expanding",)),
        "grows": Words(("grows",), ("expands",)),
        "shrinking": Words(("shrinking", "getting smaller"), ("contracting",)),
        "shrinks": Words(("shrinks",), ("contracts",)),
        "bouncing": Words(("bouncing",), ("hopping",)),
        "bounces": Words(("bounces",), ("hops",)),
        "changing": Words(("changing",), ("turning",)),
        "changes": Words(("changes",), ("switches",)),
    }
)
_PHRASINGS: dict[str, Forms] = {
    "move": Forms(
        (
            "a {colour} {shape} moving {motion} {adverb}",  # canonical
            "a {size} {colour} {shape} moves {motion} {adverb} on a {background} background",
            "a {speed} {colour} {shape} heading {motion}",
            "{background} background, a {size} {colour} {shape} sliding {motion} {adverb}",
            "a {shape}, {colour}, moving {adverb} {motion}",
            "there is a {colour} {shape} moving {motion} {adverb}",
            "{colour} {shape} moving {motion}, {adverb}",
        ),
        (
            "{colour} {shape} that moves {motion} {adverb}",
            "watch a {size} {colour} {shape} as it moves {motion} {adverb}",
        ),
    ),
    "resize": Forms(
        (
            "a {colour} {shape} {ing}",
            "a {colour} {shape} {verb} {span} on a {background} background",
            "{background} background, a {colour} {shape} {ing} {span}",
            "there is a {colour} {shape} {ing}",
        ),
        ("a {colour} {shape} that keeps {ing}", "watch as a {colour} {shape} {verb}"),
    ),
    "bounce": Forms(
        (
            "a {colour} {shape} bouncing {adverb}",
            "a {size} {colour} {shape} bounces {adverb} on a {background} background",
            "a {colour} {shape} dropped from the top, bouncing {adverb} off the floor",
            "there is a {colour} {shape} bouncing {adverb}",
        ),
        (
            "a {colour} {shape} that bounces {adverb}",
            "watch a {colour} {shape} as it bounces {adverb}",
        ),
    ),
    "change colour": Forms(
        (
            "a {colour} {shape} changing from {colour} to {colour_to}",
            "a {size} {shape} that changes colour from {colour} to {colour_to}",
            "{background} background, a {shape} changing from {colour} to {colour_to}",
        ),
        (
            "a {shape} whose colour changes from {colour} to {colour_to}",
            "watch a {shape} as it changes from {colour} to {colour_to}",
        ),
    ),
}
FRAMES = Forms(
    ("a video of {}", "a clip of {}", "an animation of {}"), ("footage of {}", "a short film of {}")
)
FORMS = (*_PHRASINGS.values(), FRAMES)
_KINDS = dict.fromkeys(DIRECTIONS, "move") | dict.fromkeys(RESIZE, "resize")
_RESIZE_WORDS = {
    "grow": ("growing", "grows", "from small to large"),
    "shrink": ("shrinking", "shrinks", "from large to small"),
}


def caption(
    clip: Clip, rng: np.random.Generator | None = None, phrasing: str = "train", noisy: bool = True
) -> str:
    """A truthful description in one phrasing of the grammar (canonical without an rng).

    Every phrasing names the colour(s), the shape, the motion and, where it applies, the speed;
    a size word appears in some, never for grow and shrink, whose size changes."""
    check_phrasing(phrasing)
    template = pick_form(_PHRASINGS[_KINDS.get(clip.motion, clip.motion)], phrasing, rng)
    ing, verb, span = _RESIZE_WORDS.get(clip.motion, ("", "", ""))
    adverb = ADVERBS.get(clip.speed, "")
    text = template.format(**asdict(clip), adverb=adverb, ing=ing, verb=verb, span=span)
    return rephrase(text, LEXICON, FRAMES, phrasing, rng, noisy)


def text_vocabulary() -> dict[str, int]:
    """The vocabulary of a word-level text encoder for this world (grammar.sampled_vocabulary)."""
    return sampled_vocabulary(LEXICON, FORMS, sample_clip, caption)


# --- rendering ------------------------------------------------------------------------------


def draw_frame(shape: str, state: State, background: str, size: int = DEFAULT_SIZE) -> np.ndarray:
    """One object in any box, drawn exactly as `shapes.render` draws a Scene's objects (uint8
    (size, size, 3)): a Scene only knows the three SIZES, and grow and shrink need the rest."""
    supersample = 4  # shapes.render's default
    big = Image.new("RGB", (size * supersample,) * 2, BACKGROUNDS[background])
    fill = COLOURS[state.colour]
    _draw(ImageDraw.Draw(big), shape, *_to_supersampled(state, supersample), fill=fill)
    return np.asarray(big.resize((size, size), Image.BOX))


def render_clip(
    clip: Clip, frames: int = DEFAULT_FRAMES, fps: float = DEFAULT_FPS, size: int = DEFAULT_SIZE
) -> np.ndarray:
    """The clip as uint8 (frames, size, size, 3); frame i shows time i / fps seconds."""
    if frames < 1 or not fps > 0:
        raise ValueError(f"frames={frames}, fps={fps}; need frames >= 1 and fps > 0")
    states = trajectory(clip, np.arange(frames) / fps, size)
    return np.stack([draw_frame(clip.shape, s, clip.background, size) for s in states])


# --- dataset --------------------------------------------------------------------------------


class MotionDataset(WorldDataset):
    """n clips of frames / fps seconds, regenerated exactly from (seed, index)."""

    def __init__(
        self,
        n: int,
        seed: int = 0,
        size: int = DEFAULT_SIZE,
        frames: int = DEFAULT_FRAMES,
        fps: float = DEFAULT_FPS,
        split: str = "train",
        phrasing: str = "train",
    ) -> None:
        super().__init__(n, seed, split, phrasing)
        self.size, self.frames, self.fps = size, frames, fps

    def make(self, rng: np.random.Generator) -> dict:
        clip = sample_clip(rng, self.split, seconds=self.frames / self.fps)
        video = to_tensor(render_clip(clip, self.frames, self.fps, self.size))  # (F, 3, H, W)
        return {"video": video, "caption": caption(clip, rng, self.phrasing), "clip": clip}


def collate(batch: list[dict]) -> dict:
    """Stack videos (B, F, 3, H, W); keep captions and clips as lists."""
    return {
        "video": torch.stack([b["video"] for b in batch]),
        "caption": [b["caption"] for b in batch],
        "clip": [b["clip"] for b in batch],
    }

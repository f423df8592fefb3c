"""A procedural audio+video world: one visual event stream and the sound it makes, in sync.

Three scenes, each one object (or two blocks) drawn by the shapes/motion worlds' renderer, with a
mono SR waveform of exactly the clip's length: a ball bouncing on the floor thuds at each impact
(pitch from its size, loudness from its impact speed), a light beeps exactly while it is on, two
sliding blocks clack when they touch. Every event is timed in seconds, never in frames, so a clip
rendered at any fps shows the same events at the same times (see `score_audiovideo.py`). A
held-out set of (colour, kind) pairs measures compositional generalisation.

Captions (`caption`, the grammar of `grammar.py`): the forms of `_JOINT` per kind, optionally
framed (`FRAMES`), words swapped for synonyms of `LEXICON`. Held out, for evaluation only: the
second tuple of each `Words` and `Forms` ("thump", "bleep", "lamp", "brick", "clatter", ...).
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass

import numpy as np

from training.world import motion
from training.world.base import WorldDataset, to_tensor
from training.world.shapes import (
    BACKGROUNDS,
    COLOURS,
    MARGIN,
    SHAPES,
    SIZES,
    SPLITS,
    Obj,
    Scene,
    _pick,
    render,
)
from training.world.shapes import LEXICON as SHAPES_LEXICON
from training.world.sounds import COUNT_WORDS, LEVEL, SR, TIMES_WORDS, Event, _envelope
from training.world.sounds import render_sound as _render_sound

from .grammar import Forms, Lexicon, Words, check_phrasing, pick_form, rephrase, sampled_vocabulary

KINDS = ("bounce", "blink", "collide")
DEFAULT_SECONDS, DEFAULT_FPS, DEFAULT_SIZE = 2.0, 8.0, 16

# bounce: motion.py's physics, except that the ball rests at the first impact whose rebound
# would hop less than REST_HOP: shorter hops are too low to see and their thuds would overlap.
REST_HOP = 0.3  # seconds: over 2 frame periods at 8 fps, so every hop shows (see score_audiovideo)
END_GUARD = 0.35  # seconds: no event this close to the clip's end (>= 2 frames follow at 8 fps)
# The ball drops from this share of the highest drop its size allows: fast balls from high up,
# or they come to rest after a hop or two.
DROP_SHARE: dict[str, tuple[float, float]] = {"slow": (0.4, 1.0), "fast": (0.8, 1.0)}
THUD_PITCH: dict[str, float] = {"small": 600.0, "medium": 300.0, "large": 150.0}  # Hz
THUD_LENGTH, THUD_DROP_DB, THUD_ATTACK = 0.15, 40.0, 0.001  # s, dB lost over it, s
THUD_SPEED = 5.0  # canvas/s: an impact this fast (about the fastest) thuds at full level
TONE_PEAK = math.sqrt(2) * LEVEL  # a sine at the sound world's LEVEL (RMS)
# blink: flashes of ON_RANGE seconds (>= 1.5 frame periods at 7.5 fps or more) apart by MIN_OFF.
BEEP_PITCH, BEEP_ATTACK = 1000.0, 0.005  # Hz, s (the release is sounds.FADE)
ON_RANGE, MIN_OFF, LEAD, TAIL, MAX_FLASHES = (0.2, 0.3), 0.2, 0.15, 0.1, 4
LIGHT_SHAPES = ("circle", "square")
LIGHT_COLOURS = tuple(c for c in COLOURS if c != "black")  # a black light is no light
# collide: two square blocks close their gap at CLOSING canvas/s or more (fast enough that the
# renderer's 1/4 pixel steps move the contact little) and stop when they touch.
BLOCK_SIZES, CLOSING, EARLIEST_CONTACT = ("small", "medium"), 0.4, 0.5
CLACK = Event("click")  # sounds.py's 10 ms click, with a fixed noise draw: scenes have no seed

# One colour per kind (3 of 23 pairs); every colour is still seen in every kind but these.
HELDOUT_PAIRS: frozenset[tuple[str, str]] = frozenset(
    {("green", "bounce"), ("orange", "blink"), ("blue", "collide")}
)


@dataclass(frozen=True)
class AVScene:
    """Everything a clip shows and sounds. centre: canvas (x, y) of the ball's drop point, of
    the light, or of the left block at t = 0. speed (a motion.GRAVITY name): bounce only. flashes
    ((on, off) seconds): blink only. colour2, x2 (the right block's start x), contact (seconds):
    collide only, whose blocks are both `size` squares and slide at one speed each."""

    kind: str
    shape: str
    colour: str
    size: str
    background: str
    centre: tuple[float, float]
    seconds: float = DEFAULT_SECONDS
    speed: str | None = None
    flashes: tuple[tuple[float, float], ...] = ()
    colour2: str | None = None
    x2: float | None = None
    contact: float | None = None

    def __post_init__(self) -> None:
        shapes = {"bounce": SHAPES, "blink": LIGHT_SHAPES, "collide": ("square",)}
        for name, value, allowed in (
            ("kind", self.kind, KINDS),
            ("shape", self.shape, shapes.get(self.kind, SHAPES)),
            ("colour", self.colour, LIGHT_COLOURS if self.kind == "blink" else COLOURS),
            ("size", self.size, BLOCK_SIZES if self.kind == "collide" else SIZES),
            ("background", self.background, BACKGROUNDS),
        ):
            if value not in allowed:
                raise ValueError(f"{name}={value!r}; choose one of {list(allowed)}")
        if self.background in (self.colour, self.colour2):
            raise ValueError(f"background={self.background!r} equals an object's colour")
        if not self.seconds > 0:
            raise ValueError(f"seconds={self.seconds}; must be > 0")
        own = {"bounce": ("speed",), "blink": ("flashes",), "collide": ("colour2", "x2", "contact")}
        for name in ("speed", "flashes", "colour2", "x2", "contact"):
            if name not in own[self.kind] and getattr(self, name) not in (None, ()):
                raise ValueError(f"{name}={getattr(self, name)!r}; a {self.kind} has none")
        side, (x, y) = SIZES[self.size], self.centre
        lo, hi = MARGIN + side / 2, 1 - MARGIN - side / 2
        if not (lo - 1e-9 <= x <= hi + 1e-9 and lo - 1e-9 <= y <= hi + 1e-9):
            raise ValueError(f"centre={self.centre}; keep it in [{lo:.3f}, {hi:.3f}]")
        if self.kind == "bounce":
            _clip(self)  # motion.Clip checks speed and the drop ("start": our centre)
        else:
            (_check_blink if self.kind == "blink" else _check_collide)(self)

    def video_caption(self) -> str:
        """What the pictures show, without the sound."""
        return _words(_VIDEO[self.kind], self)

    def audio_caption(self) -> str:
        """What the sound holds, without the pictures."""
        return _words(_AUDIO[self.kind], self)


def _check_blink(s: AVScene) -> None:
    if not 1 <= len(s.flashes) <= MAX_FLASHES:
        raise ValueError(f"flashes={s.flashes}; give 1 to {MAX_FLASHES} (on, off) pairs")
    ends = [0.0, *(t for pair in s.flashes for t in pair), s.seconds]
    if any(b - a < -1e-9 for a, b in itertools.pairwise(ends)):
        raise ValueError(f"flashes={s.flashes}; need 0 <= on < off <= next on <= {s.seconds}")
    if min(off - on for on, off in s.flashes) < ON_RANGE[0] - 1e-9:
        raise ValueError(f"flashes={s.flashes}; each must last >= {ON_RANGE[0]} s to be seen")
    if any(b[0] - a[1] < MIN_OFF - 1e-9 for a, b in itertools.pairwise(s.flashes)):
        raise ValueError(f"flashes={s.flashes}; keep >= {MIN_OFF} s dark between them")


def _check_collide(s: AVScene) -> None:
    if s.colour2 not in COLOURS or s.colour2 == s.colour:
        raise ValueError(f"colour2={s.colour2!r}; choose a colour other than {s.colour!r}")
    side = SIZES[s.size]
    if s.x2 is None or not s.centre[0] + side < s.x2 <= 1 - MARGIN - side / 2 + 1e-9:
        raise ValueError(f"x2={s.x2}; the right block must start apart from the left, inside")
    if s.contact is None or not 0 < s.contact <= s.seconds:
        raise ValueError(f"contact={s.contact}; choose seconds in (0, {s.seconds}]")


def is_heldout(scene: AVScene) -> bool:
    return any((c, scene.kind) in HELDOUT_PAIRS for c in (scene.colour, scene.colour2))


# --- events in seconds ----------------------------------------------------------------------


def _clip(s: AVScene) -> motion.Clip:
    return motion.Clip(
        s.shape, s.colour, s.size, s.background, "bounce", s.speed, s.centre, None, s.seconds
    )


def _impacts(s: AVScene) -> list[float]:
    """Every impact of the ball, the last being where it comes to rest (see REST_HOP)."""
    every = motion.impact_times(_clip(s), math.inf)
    n = next((i + 1 for i, (a, b) in enumerate(itertools.pairwise(every)) if b - a < REST_HOP), 0)
    return every[: n or len(every)]


def event_times(scene: AVScene) -> list[float]:
    """Seconds of every sound onset, each a visual event: impacts, lights on, the contact."""
    if scene.kind == "bounce":
        return [t for t in _impacts(scene) if t <= scene.seconds]
    if scene.kind == "blink":
        return [on for on, _ in scene.flashes]
    return [scene.contact]


# --- sampling -------------------------------------------------------------------------------


def _spot(rng: np.random.Generator, size: str) -> tuple[float, float]:
    x, y = rng.uniform(MARGIN + SIZES[size] / 2, 1 - MARGIN - SIZES[size] / 2, size=2)
    return float(x), float(y)


def _bounce(rng, colour, background, seconds) -> AVScene:
    for _ in range(20):  # a short clip may fit no drop of the drawn speed and size: draw again
        shape, size, speed = _pick(rng, SHAPES), _pick(rng, SIZES), _pick(rng, motion.GRAVITY)
        top, floor = MARGIN + SIZES[size] / 2, 1 - MARGIN - SIZES[size] / 2
        for _ in range(100):  # drop heights whose impacts all keep END_GUARD from the end
            y = floor - (floor - top) * float(rng.uniform(*DROP_SHARE[speed]))
            s = AVScene(
                "bounce",
                shape,
                colour,
                size,
                background,
                (_spot(rng, size)[0], y),
                seconds,
                speed=speed,
            )
            if event_times(s) and max(event_times(s)) <= seconds - END_GUARD:
                return s
    raise ValueError(f"seconds={seconds}: no bounce keeps its impacts {END_GUARD} s from the end")


def _blink(rng, colour, background, seconds) -> AVScene:
    fits = [
        n
        for n in range(1, MAX_FLASHES + 1)
        if LEAD + n * ON_RANGE[0] + (n - 1) * MIN_OFF + TAIL <= seconds
    ]
    if not fits:
        raise ValueError(f"seconds={seconds}; a blink needs {LEAD + ON_RANGE[0] + TAIL} s")
    n = _pick(rng, fits)
    while True:
        lengths = rng.uniform(*ON_RANGE, size=n)
        slack = seconds - LEAD - lengths.sum() - (n - 1) * MIN_OFF - TAIL
        if slack >= 0:
            break
    waits = rng.dirichlet(np.ones(n + 1))[:n] * slack + np.r_[LEAD, np.full(n - 1, MIN_OFF)]
    ons = np.cumsum(waits + np.r_[0.0, lengths[:-1]])  # not frame-aligned: arbitrary seconds
    flashes = tuple((float(a), float(a + d)) for a, d in zip(ons, lengths, strict=True))
    shape, size = _pick(rng, LIGHT_SHAPES), _pick(rng, SIZES)
    return AVScene(
        "blink", shape, colour, size, background, _spot(rng, size), seconds, flashes=flashes
    )


def _collide(rng, colour, colour2, background, seconds) -> AVScene:
    if seconds - END_GUARD < EARLIEST_CONTACT:
        raise ValueError(f"seconds={seconds}; a collision needs {EARLIEST_CONTACT + END_GUARD} s")
    size = _pick(rng, BLOCK_SIZES)
    side = SIZES[size]
    room = 1 - 2 * MARGIN - 2 * side  # the widest start gap
    contact = float(rng.uniform(EARLIEST_CONTACT, min(seconds - END_GUARD, room / CLOSING)))
    gap = float(rng.uniform(CLOSING * contact, room))
    x = MARGIN + side / 2 + float(rng.uniform(0, room - gap))
    return AVScene(
        "collide",
        "square",
        colour,
        size,
        background,
        (x, _spot(rng, size)[1]),
        seconds,
        colour2=colour2,
        x2=x + side + gap,
        contact=contact,
    )


def sample_scene(
    rng: np.random.Generator, split: str = "train", seconds: float = DEFAULT_SECONDS
) -> AVScene:
    """A random scene; "train" never shows a HELDOUT_PAIRS pair, "heldout" always shows one."""
    if split not in SPLITS:
        raise ValueError(f"split={split!r}; choose one of {SPLITS}")
    allowed = {k: LIGHT_COLOURS if k == "blink" else tuple(COLOURS) for k in KINDS}
    if split == "heldout":
        colour, kind = _pick(rng, sorted(HELDOUT_PAIRS))
    else:
        kind = _pick(rng, KINDS)
        colour = _pick(rng, [c for c in allowed[kind] if (c, kind) not in HELDOUT_PAIRS])
    if kind != "collide":
        background = _pick(rng, [b for b in BACKGROUNDS if b != colour])
        sampler = _bounce if kind == "bounce" else _blink
        return sampler(rng, colour, background, seconds)
    held = set() if split == "heldout" else {c for c, k in HELDOUT_PAIRS if k == kind}
    colour2 = _pick(rng, [c for c in COLOURS if c not in {colour, *held}])
    background = _pick(rng, [b for b in BACKGROUNDS if b not in (colour, colour2)])
    return _collide(rng, colour, colour2, background, seconds)


# --- captions -------------------------------------------------------------------------------

THUD_WORDS = {"small": "high-pitched", "medium": "mid-pitched", "large": "deep"}
# The grammar (see grammar.py): forms written with canonical words, then words swapped.
LEXICON = Lexicon(
    {k: SHAPES_LEXICON[k] for k in (*COLOURS, "grey", *SIZES, "background")}
    | {k: SHAPES_LEXICON[k] for k in ("circle", "triangle", "diamond", "cross")}
    | {
        "ball": Words(("ball",), ("sphere",)),
        "thuds": Words(("thuds",), ("thumps",)),
        "thud": Words(("thud",), ("thump",)),
        "beeping": Words(("beeping",), ("bleeping",)),
        "beep": Words(("beep",), ("bleep",)),
        "blinks": Words(("blinks",), ("flickers",)),
        "blinking": Words(("blinking",), ("flickering",)),
        "light": Words(("light",), ("lamp",)),
        "clack": Words(("clack",), ("clatter",)),
        "collide": Words(("collide",), ("crash",)),
        "blocks": Words(("blocks",), ("bricks",)),
        "block": Words(("block",), ("brick",)),
        "twice": Words(("twice",), ("two times",)),
    }
)
_JOINT: dict[str, Forms] = {
    "bounce": Forms(
        (
            "a {colour} {noun} bouncing with a thud",
            "a {size} {colour} {noun} bounces {adverb} on a {background} background, "
            "with a {pitch} thud at each bounce",
            "a {colour} {noun} dropped onto the floor, bouncing {adverb}, each thud quieter",
            "{background} background, a {size} {colour} {noun} bouncing {adverb} "
            "with {pitch} thuds",
            "there is a {colour} {noun} bouncing {adverb} with a thud",
        ),
        (
            "watch a {colour} {noun} as it bounces, a thud every time it lands",
            "a {colour} {noun} that hits the ground with {pitch} thuds",
        ),
    ),
    "blink": Forms(
        (
            "a {colour} light blinks {times} with a beep",
            "a {size} {colour} {shape} light on a {background} background flashes {times}, "
            "beeping while it is on",
            "{background} background, a {colour} light blinking {times}, a beep each time",
            "a beeping {colour} light that blinks {times}",
            "there is a {colour} light blinking {times} with a beep",
        ),
        (
            "a {colour} light that comes on {times}, with a beep whenever it is lit",
            "watch a {colour} light as it blinks {times} and beeps",
        ),
    ),
    "collide": Forms(
        (
            "two blocks collide with a clack",
            "a {colour} block and a {colour2} block slide together and collide with a clack",
            "{background} background: a {colour} block and a {colour2} block meet with a clack",
            "two {size} blocks, {colour} and {colour2}, slide into each other, clack",
            "there are two blocks, {colour} and {colour2}, that collide with a clack",
        ),
        (
            "a {colour} block bumps into a {colour2} block: clack",
            "watch two blocks as they crash together with a clack",
        ),
    ),
}
FRAMES = Forms(
    ("a video of {}", "a clip with sound of {}", "an animation of {}"),
    ("footage of {}", "a short film of {}"),
)
FORMS = (*_JOINT.values(), FRAMES)
_VIDEO = {
    "bounce": "a {size} {colour} {noun} bouncing {adverb} on a {background} background",
    "blink": "a {size} {colour} {shape} light blinking {times}, {background} background",
    "collide": "a {colour} block and a {colour2} block slide together until they touch",
}
_AUDIO = {
    "bounce": "{pitch} thuds, each quieter than the last",
    "blink": "{count} beep{s}",
    "collide": "a single clack",
}


def _words(template: str, scene: AVScene) -> str:
    n = len(scene.flashes)
    text = template.format(
        colour=scene.colour,
        colour2=scene.colour2,
        size=scene.size,
        shape=scene.shape,
        background=scene.background,
        noun="ball" if scene.shape == "circle" else scene.shape,
        adverb=motion.ADVERBS.get(scene.speed, ""),
        pitch=THUD_WORDS[scene.size],
        times=TIMES_WORDS.get(n, ""),
        count=COUNT_WORDS.get(n, ""),
        s="s" * (n > 1),
    )
    return re.sub(r"\ba (?=[aeiou])", "an ", text)  # "an orange ball"


def caption(
    scene: AVScene,
    rng: np.random.Generator | None = None,
    phrasing: str = "train",
    noisy: bool = True,
) -> str:
    """A truthful joint description in one phrasing of the grammar (canonical without an rng):
    the objects, their colours and what they do, and the sound it makes."""
    check_phrasing(phrasing)
    text = _words(pick_form(_JOINT[scene.kind], phrasing, rng), scene)
    return rephrase(text, LEXICON, FRAMES, phrasing, rng, noisy)


def text_vocabulary() -> dict[str, int]:
    """The vocabulary of a word-level text encoder for this world (grammar.sampled_vocabulary)."""
    return sampled_vocabulary(LEXICON, FORMS, sample_scene, caption)


# --- rendering ------------------------------------------------------------------------------


def _frame(scene: AVScene, t: float, size: int) -> np.ndarray:
    """uint8 (size, size, 3) at t seconds."""
    if scene.kind == "collide":
        side, (x, y) = SIZES[scene.size], scene.centre
        shift = (scene.x2 - x - side) / 2 * min(t / scene.contact, 1.0)  # each block's travel
        objects = (
            Obj("square", scene.colour, scene.size, "left"),
            Obj("square", scene.colour2, scene.size, "right"),
        )
        centres = ((x + shift, y), (scene.x2 - shift, y))
        return render(Scene(objects, scene.background, "left of", centres), size)
    if scene.kind == "blink" and not any(on <= t < off for on, off in scene.flashes):
        return np.full((size, size, 3), BACKGROUNDS[scene.background], np.uint8)
    if scene.kind == "blink":
        x, y = scene.centre
        state = motion.State(x * size, y * size, SIZES[scene.size] * size, scene.colour)
    else:  # the ball stays where it lands last (see REST_HOP); motion.py would bounce on
        rest = _impacts(scene)[-1]
        state = motion.trajectory(_clip(scene), np.array([min(t, rest)]), size)[0]
    return motion.draw_frame(scene.shape, state, scene.background, size)


def render_video(
    scene: AVScene, frames: int, fps: float = DEFAULT_FPS, size: int = DEFAULT_SIZE
) -> np.ndarray:
    """The scene as uint8 (frames, size, size, 3); frame i shows time i / fps seconds."""
    if frames < 1 or not fps > 0:
        raise ValueError(f"frames={frames}, fps={fps}; need frames >= 1 and fps > 0")
    return np.stack([_frame(scene, i / fps, size) for i in range(frames)])


def _tone(hz: float, n: int, attack: float) -> np.ndarray:
    return np.sin(2 * np.pi * hz * np.arange(n) / SR) * _envelope(n, attack)


def sounds(scene: AVScene) -> list[tuple[float, np.ndarray]]:
    """(onset seconds, float64 samples at SR) of every sound the scene makes."""
    times = event_times(scene)
    if scene.kind == "blink":
        return [
            (on, TONE_PEAK * _tone(BEEP_PITCH, round((off - on) * SR), BEEP_ATTACK))
            for on, off in scene.flashes
        ]
    if scene.kind == "collide":
        return [(scene.contact, _render_sound(CLACK, np.random.default_rng(0)))]
    n = round(THUD_LENGTH * SR)
    decay = np.exp(-THUD_DROP_DB / 20 * np.log(10) * np.arange(n) / n)
    thud = _tone(THUD_PITCH[scene.size], n, THUD_ATTACK) * decay
    first = motion.GRAVITY[scene.speed] * _impacts(scene)[0]  # the drop from rest ends this fast
    return [
        (t, TONE_PEAK * min(first * motion.RESTITUTION**k / THUD_SPEED, 1.0) * thud)
        for k, t in enumerate(times)
    ]


def render_audio(scene: AVScene, seconds: float, sr: int = SR) -> np.ndarray:
    """The scene's sound as float32 (round(seconds * sr),) in [-1, 1]."""
    if sr != SR:
        raise ValueError(f"sr={sr}; the sound world renders at {SR} Hz")
    wave = np.zeros(round(seconds * sr))
    for t, x in sounds(scene):
        start = round(t * sr)
        part = wave[start : start + len(x)]
        part += x[: len(part)]
    return np.clip(wave, -1.0, 1.0).astype(np.float32)


# --- dataset --------------------------------------------------------------------------------


class AVDataset(WorldDataset):
    """n clips of `seconds`, video at `fps` and audio at SR, regenerated from (seed, index)."""

    def __init__(
        self,
        n: int,
        seed: int = 0,
        size: int = DEFAULT_SIZE,
        seconds: float = DEFAULT_SECONDS,
        fps: float = DEFAULT_FPS,
        split: str = "train",
        phrasing: str = "train",
    ) -> None:
        super().__init__(n, seed, split, phrasing)
        if round(seconds * fps) < 1:
            raise ValueError(f"seconds={seconds}, fps={fps}: not one frame")
        self.size, self.seconds, self.fps = size, seconds, fps

    def make(self, rng: np.random.Generator) -> dict:
        scene = sample_scene(rng, self.split, self.seconds)
        pixels = render_video(scene, round(self.seconds * self.fps), self.fps, self.size)
        wave = render_audio(scene, self.seconds)
        text = caption(scene, rng, self.phrasing)
        return {"video": to_tensor(pixels), "wave": wave, "caption": text, "scene": scene}

"""A procedural sound world: tones, plucks, bells, noise, clicks, chirps, with exact ground truth.

Every clip comes from a `SoundScene` that names its attributes (timbre, pitch, chord, count,
rhythm, length, order), so a text-to-audio model trained on it can be scored attribute by
attribute (see `score_sounds.py`), and a held-out set of (timbre, count) and (timbre, register)
pairs measures compositional generalisation: the model has heard every timbre, every count and
every register, but never these pairs together.

Timing is fixed by the words: a rhythm sets the onset interval and the length of each sound, a
lone sound is DEFAULT_LENGTH long unless its caption says otherwise, so the caption alone pins
down when every sound starts and stops. The clip is `duration` seconds, silence included.

Captions (`caption`, the grammar of `grammar.py`): events described with canonical words, joined
by the forms of `_THEN` and `_TOTAL`, optionally framed (`FRAMES`), then words swapped for
synonyms of `LEXICON`. Held out, for evaluation only: the second tuple of each `Words` and
`Forms` ("note", "chime", "tick", "rapidly", "in rapid succession", "and after that" ...).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from .grammar import (
    Forms,
    Lexicon,
    Words,
    check_phrasing,
    pick_form,
    rephrase,
    sampled_vocabulary,
)

SR = 16_000

TIMBRES = ("sine", "square", "string", "bell", "noise", "click", "chirp")
PITCHED = ("sine", "square", "string", "bell")  # pitch = a note; a chirp's pitch is a direction
DIRECTIONS = ("rising", "falling")

# Natural notes over three octaves (C3 131 Hz .. B5 988 Hz), equal temperament, A4 = 440 Hz:
# no sharps, so every note reads plainly in a caption ("A4", "C3").
LETTERS = "CDEFGAB"
OCTAVES = (3, 4, 5)
_SEMITONES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
NOTES: dict[str, float] = {
    f"{letter}{octave}": 440.0 * 2 ** ((_SEMITONES[letter] + 12 * (octave + 1) - 69) / 12)
    for octave in OCTAVES
    for letter in LETTERS
}
# Coarse words for an octave. Captions say "low" or "high" in place of a note name for some
# single notes; "middle" only names octave 4 in HELDOUT_PAIRS and is never captioned.
REGISTERS: dict[str, int] = {"low": 3, "middle": 4, "high": 5}
CHORDS: dict[str, tuple[int, int, int]] = {"major": (0, 4, 7), "minor": (0, 3, 7)}

# Seconds from one onset to the next, and the length of each sound, for repeated events. The
# silences (0.15 s and 0.4 s) outlast the 64 ms STFT window the model's mel frames use, so
# repetitions stay apart after a mel round trip.
RHYTHMS: dict[str, float] = {"fast": 0.35, "slow": 0.8}
RHYTHM_LENGTH: dict[str, float] = {"fast": 0.2, "slow": 0.4}
DEFAULT_LENGTH = 0.5  # a lone sound whose caption does not say how long it is
MIN_LENGTH, MAX_LENGTH = 0.3, 2.0  # a lone sound whose caption does say
CLICK_LENGTH = 0.01  # clicks are always this short, whatever the caption
THEN_GAP = 0.3  # silence between the two events of a "then" scene
LEAD = 0.1  # silence before the first sound
TAIL = 0.1  # least silence after the last sound, so its end is audible as an end

# Held out from training: a (timbre, count) or (timbre, register) pair never heard together.
# Every timbre, count and register is still heard in training, only these combinations are not.
# 3 of 28 (timbre, count) pairs and 2 of 12 (pitched timbre, register) pairs.
HELDOUT_PAIRS: frozenset[tuple[str, int | str]] = frozenset(
    {
        ("bell", 3),
        ("click", 4),
        ("chirp", 2),
        ("square", "high"),
        ("string", "low"),
    }
)
SPLITS = ("train", "heldout")


def octave(note: str) -> int:
    return int(note[-1])


def register(note: str) -> str:
    return next(word for word, o in REGISTERS.items() if o == octave(note))


def default_length(timbre: str, count: int, rhythm: str | None) -> float:
    """The length a caption implies when it names no length."""
    if timbre == "click":
        return CLICK_LENGTH
    return RHYTHM_LENGTH[rhythm] if count > 1 else DEFAULT_LENGTH


def _default(e: Event) -> bool:
    return abs(e.length - default_length(e.timbre, e.count, e.rhythm)) < 1e-9


@dataclass(frozen=True)
class Event:
    """One sound, repeated `count` times.

    pitch: a NOTES name for pitched timbres (a chord's root), "rising"/"falling" for a chirp,
    None for noise and clicks. coarse: the caption names only the register ("a low bell"), so a
    pitch anywhere in that octave is right. length: seconds of each repetition; None means the
    default, and only a lone sound (not a click) may have another.
    """

    timbre: str
    pitch: str | None = None
    count: int = 1
    rhythm: str | None = None
    length: float | None = None
    chord: str | None = None
    coarse: bool = False

    def __post_init__(self) -> None:
        if self.timbre not in TIMBRES:
            raise ValueError(f"timbre={self.timbre!r}; choose one of {list(TIMBRES)}")
        allowed = NOTES if self.timbre in PITCHED else DIRECTIONS if self.timbre == "chirp" else {}
        if self.pitch not in allowed if allowed else self.pitch is not None:
            raise ValueError(
                f"pitch={self.pitch!r} for a {self.timbre}; choose from {list(allowed)}"
            )
        if not 1 <= self.count <= 4:
            raise ValueError(f"count={self.count}; choose 1 to 4")
        if (self.rhythm is None) != (self.count == 1) or self.rhythm not in (None, *RHYTHMS):
            raise ValueError(f"rhythm={self.rhythm!r}: one of {list(RHYTHMS)} iff count > 1")
        if self.chord is not None and (self.chord not in CHORDS or self.timbre not in PITCHED):
            raise ValueError(f"chord={self.chord!r}: one of {list(CHORDS)}, on a pitched timbre")
        if self.coarse and (self.chord or self.timbre not in PITCHED or octave(self.pitch) == 4):
            raise ValueError("only a single note in octave 3 or 5 can be named by its register")
        fixed = self.timbre == "click" or self.count > 1
        wanted = default_length(self.timbre, self.count, self.rhythm)
        if self.length is None:
            object.__setattr__(self, "length", wanted)  # frozen: set once, here
        if fixed and abs(self.length - wanted) > 1e-9:
            raise ValueError(f"length={self.length}: this event is always {wanted} s long")
        if not fixed and not MIN_LENGTH - 1e-9 <= self.length <= MAX_LENGTH + 1e-9:
            raise ValueError(f"length={self.length}; choose {MIN_LENGTH} to {MAX_LENGTH} s")

    @property
    def frequencies(self) -> tuple[float, ...]:
        """Hz of every note sounding at once: one, or a chord's three."""
        if self.timbre not in PITCHED:
            return ()
        root = NOTES[self.pitch]
        steps = CHORDS[self.chord] if self.chord else (0,)
        return tuple(root * 2 ** (s / 12) for s in steps)

    @property
    def span(self) -> float:
        """Seconds from the first onset to the end of the last repetition."""
        ioi = RHYTHMS[self.rhythm] if self.rhythm else 0.0
        return (self.count - 1) * ioi + self.length


@dataclass(frozen=True)
class Sound:
    """Ground truth of one repetition: seconds from the clip's start, and its event's index."""

    start: float
    end: float
    event: int


@dataclass(frozen=True)
class SoundScene:
    """One event, or two in order ("a click, then a low bell"); `duration` seconds in all.

    seed fixes the noise in noise bursts, clicks and plucks, so `render` is a pure function.
    """

    events: tuple[Event, ...]
    duration: float
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.events) not in (1, 2):
            raise ValueError(f"a scene holds 1 or 2 events, got {len(self.events)}")
        if len(self.events) == 2:
            a, b = self.events
            if a.timbre == b.timbre:
                raise ValueError("the two events must differ in timbre (their order is heard)")
            if a.chord or b.chord or max(a.count, b.count) > 2:
                raise ValueError("events in a two-event scene are single sounds or pairs")
            if not all(_default(e) for e in (a, b)):
                raise ValueError("events in a two-event scene keep their default lengths")
        if self.duration < self.end + TAIL - 1e-9:
            raise ValueError(f"duration={self.duration} s; the sounds need {self.end + TAIL:.3f}")

    @property
    def chord(self) -> str | None:
        return self.events[0].chord

    @property
    def sounds(self) -> tuple[Sound, ...]:
        return timeline(self.events)

    @property
    def end(self) -> float:
        """Seconds from the clip's start to the end of the last sound."""
        return self.sounds[-1].end

    @property
    def extent(self) -> float:
        """Seconds from the first onset to the end of the last sound: what can be heard."""
        return self.end - LEAD

    @property
    def num_samples(self) -> int:
        return round(self.duration * SR)


def timeline(events: tuple[Event, ...]) -> tuple[Sound, ...]:
    """Every repetition of every event, in time order, starting LEAD seconds in."""
    sounds: list[Sound] = []
    t = LEAD
    for i, e in enumerate(events):
        if sounds:
            t = sounds[-1].end + THEN_GAP
        ioi = RHYTHMS[e.rhythm] if e.rhythm else 0.0
        sounds += [Sound(t + r * ioi, t + r * ioi + e.length, i) for r in range(e.count)]
    return tuple(sounds)


def pairs(event: Event) -> set[tuple[str, int | str]]:
    """The (timbre, count) and (timbre, register) pairs an event shows."""
    out: set[tuple[str, int | str]] = {(event.timbre, event.count)}
    if event.timbre in PITCHED:
        out.add((event.timbre, register(event.pitch)))
    return out


def is_heldout(scene: SoundScene) -> bool:
    return any(pairs(e) & HELDOUT_PAIRS for e in scene.events)


# --- sampling -------------------------------------------------------------------------------


def _pick(rng: np.random.Generator, options):
    options = list(options)
    return options[int(rng.integers(len(options)))]


def sample_event(
    rng: np.random.Generator,
    two: bool = False,
    forced: tuple[str, int | str] | None = None,
    max_length: float = MAX_LENGTH,
) -> Event:
    """A random event (for a two-event scene if `two`); `forced`, a (timbre, count) or
    (timbre, register) pair, fixes its timbre and its count or register. A lone sound whose
    length is drawn (its caption will say it) is at most max_length seconds."""
    timbre = forced[0] if forced else _pick(rng, TIMBRES)
    counts = (1, 2) if two else (1, 2, 3, 4)
    if forced and isinstance(forced[1], int):
        count = forced[1]
    else:  # two-event scenes are mostly single sounds: the order is what they test
        count = 1 if two and rng.random() < 0.7 else _pick(rng, counts)
    rhythm = _pick(rng, RHYTHMS) if count > 1 else None
    pitch, chord, coarse = None, None, False
    if timbre in PITCHED:
        octaves = [REGISTERS[forced[1]]] if forced and isinstance(forced[1], str) else OCTAVES
        pitch = f"{_pick(rng, LETTERS)}{_pick(rng, octaves)}"
        if not two and rng.random() < 0.25:
            chord = _pick(rng, CHORDS)
        elif octave(pitch) != 4 and rng.random() < 0.3:
            coarse = True
    elif timbre == "chirp":
        pitch = _pick(rng, DIRECTIONS)
    length = default_length(timbre, count, rhythm)
    top = int(np.floor(min(max_length, MAX_LENGTH) * 10 + 1e-6))
    if count == 1 and timbre != "click" and not two and rng.random() < 0.5:
        length = int(rng.integers(round(MIN_LENGTH * 10), max(top, 3) + 1)) / 10
    return Event(timbre, pitch, count, rhythm, length, chord, coarse)


def sample_scene(
    rng: np.random.Generator,
    split: str = "train",
    max_duration: float = 5.0,
    min_duration: float = 0.5,
) -> SoundScene:
    """A random scene; "train" never shows a HELDOUT_PAIRS pair, "heldout" always shows one.

    The duration is a whole number of tenths of a second in [min_duration, max_duration], at
    least TAIL longer than the sounds; events that do not fit are drawn again.
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r}; choose one of {SPLITS}")
    if min_duration > max_duration:
        raise ValueError(f"min_duration={min_duration} > max_duration={max_duration}")
    for _ in range(1000):
        two = rng.random() < 0.3
        n = 2 if two else 1
        forced_at = int(rng.integers(n)) if split == "heldout" else -1
        events: list[Event] = []
        for i in range(n):
            forced = None
            if i == forced_at:  # a two-event scene cannot repeat a sound three times
                fit = [p for p in HELDOUT_PAIRS if not (two and isinstance(p[1], int) and p[1] > 2)]
                forced = _pick(rng, sorted(fit, key=repr))
            e = sample_event(rng, two, forced, max_duration - LEAD - TAIL)
            if split == "train" and pairs(e) & HELDOUT_PAIRS:
                break
            if events and e.timbre == events[0].timbre:
                break
            events.append(e)
        if len(events) < n:
            continue
        lo = int(np.ceil(max(timeline(tuple(events))[-1].end + TAIL, min_duration) * 10 - 1e-6))
        hi = int(np.floor(max_duration * 10 + 1e-6))
        if lo > hi:
            continue
        # Up to 2 s of trailing silence: enough to teach "stop", without wasting the batch.
        duration = int(rng.integers(lo, min(hi, lo + 20) + 1)) / 10
        return SoundScene(tuple(events), duration, int(rng.integers(2**31)))
    raise ValueError(f"no {split} scene fits in {max_duration} s")


# --- captions -------------------------------------------------------------------------------

# (singular, plural) names of each timbre; every one contains the timbre's own word.
NOUNS: dict[str, tuple[tuple[str, str], ...]] = {
    "sine": (("sine tone", "sine tones"), ("sine wave", "sine waves")),
    "square": (("square wave", "square waves"), ("square tone", "square tones")),
    "string": (("plucked string", "plucked strings"), ("string pluck", "string plucks")),
    "bell": (("bell", "bells"), ("bell tone", "bell tones")),
    "noise": (("noise burst", "noise bursts"), ("burst of noise", "bursts of noise")),
    "click": (("click", "clicks"),),
    "chirp": (("chirp", "chirps"),),
}
INSTRUMENT = {"sine": "sine wave", "square": "square wave", "string": "string", "bell": "bell"}
COUNT_WORDS = {1: "one", 2: "two", 3: "three", 4: "four"}
TIMES_WORDS = {1: "once", 2: "twice", 3: "three times", 4: "four times"}
RHYTHM_ADJECTIVES = {"fast": ("fast", "quick"), "slow": ("slow",)}
RHYTHM_ADVERBS = {"fast": ("fast", "quickly", "in quick succession"), "slow": ("slowly",)}


def _choose(rng: np.random.Generator | None, options):
    """The first option without an rng: captions without one are deterministic."""
    return options[0] if rng is None else _pick(rng, options)


def _seconds(x: float) -> str:
    return f"{x:g}"


def _a(phrase: str) -> str:
    """'a' or 'an' before a phrase; note names A, E and F start with a vowel sound."""
    vowel = phrase[0] in "aeio" or (phrase[0] in "AEF" and phrase[1:2].isdigit())
    return ("an " if vowel else "a ") + phrase


def _what(e: Event, plural: bool, rng: np.random.Generator | None) -> str:
    """The event's timbre and pitch as a noun phrase without an article."""
    nouns = _choose(rng, NOUNS[e.timbre])
    noun = nouns[plural]
    if e.chord:
        chord = f"{e.pitch} {e.chord} chord" + ("s" if plural else "")
        return _choose(rng, (f"{chord} on the {INSTRUMENT[e.timbre]}", f"{chord} of {nouns[1]}"))
    if e.timbre == "chirp":
        return f"{e.pitch} {noun}"
    if e.coarse:
        word = register(e.pitch)
        return _choose(rng, (f"{word} {noun}", f"{word}-pitched {noun}"))
    if e.timbre in PITCHED:
        return _choose(rng, (f"{noun} at {e.pitch}", f"{e.pitch} {noun}"))
    return noun


def _describe(e: Event, rng: np.random.Generator | None, say_length: bool) -> str:
    """One event: timbre, pitch, and count with rhythm, or a lone sound's length."""
    if e.count == 1:
        what = _what(e, False, rng)
        if not say_length:
            return _a(what)
        s = _seconds(e.length)
        unit = "second" if e.length == 1 else "seconds"
        return _choose(
            rng,
            (
                f"{_a(s)} second {what}",
                f"{_a(what)} lasting {s} {unit}",
                f"{_a(what)}, held for {s} {unit}",
            ),
        )
    adjective = _choose(rng, RHYTHM_ADJECTIVES[e.rhythm])
    adverb = _choose(rng, RHYTHM_ADVERBS[e.rhythm])
    n, times = COUNT_WORDS[e.count], TIMES_WORDS[e.count]
    template = _choose(
        rng,
        (
            "{n} {adj} {many}",
            "{one} played {times}, {adv}",
            "{one}, {times}, {adv}",
            "{n} {many}, {adv}",
        ),
    )
    return template.format(
        n=n,
        adj=adjective,
        adv=adverb,
        times=times,
        many=_what(e, True, rng),
        one=_a(_what(e, False, rng)),
    )


_TOTAL = Forms(
    ("{t} seconds of audio: {d}", "{d}, in a {t} second clip", "{t} seconds: {d}"),
    ("a clip of {t} seconds with {d}", "{d} (the clip lasts {t} seconds)"),
)
_THEN = Forms(
    ("{a}, then {b}", "{a} followed by {b}", "first {a}, then {b}", "{b} after {a}"),
    ("{a}, and after that {b}", "{a}; next, {b}", "to begin {a}, later {b}"),
)
# The grammar (see grammar.py): captions are built with canonical words, then words swapped.
# Longer phrases come before the words inside them ("in quick succession" before "quick").
LEXICON = Lexicon(
    {
        "in quick succession": Words(("in quick succession",), ("in rapid succession",)),
        "quickly": Words(("quickly",), ("rapidly",)),
        "quick": Words(("quick",), ("brisk",)),
        "slowly": Words(("slowly",), ("at a slow pace",)),
        "tones": Words(("tones",), ("notes",)),
        "tone": Words(("tone",), ("note",)),
        "clicks": Words(("clicks",), ("ticks",)),
        "click": Words(("click",), ("tick",)),
        "bells": Words(("bells",), ("chimes",)),
        "bell": Words(("bell",), ("chime",)),
        "bursts": Words(("bursts",), ("blasts",)),
        "burst": Words(("burst",), ("blast",)),
        "plucked": Words(("plucked",), ("picked",)),
        "twice": Words(("twice",), ("two times",)),
        "lasting": Words(("lasting",), ("that lasts",)),
        "held for": Words(("held for",), ("sustained for",)),
        "seconds": Words(("seconds",), ("secs",)),
    }
)
FRAMES = Forms(
    ("the sound of {}", "audio of {}", "a recording of {}"),
    ("i want to hear {}", "an audio clip of {}"),
)
FORMS = (_THEN, _TOTAL, FRAMES)


def caption(
    scene: SoundScene,
    rng: np.random.Generator | None = None,
    phrasing: str = "train",
    noisy: bool = True,
) -> str:
    """A truthful description in one phrasing of the grammar (canonical without an rng).

    Every phrasing names every event's timbre, pitch (note, register, chord or direction),
    count and rhythm, and the length of a lone sound whenever it is not DEFAULT_LENGTH, so the
    caption pins down the timeline. Some phrasings also state the clip's total duration.
    """
    if phrasing == "canonical":
        rng = None  # the canonical caption is deterministic: first choices throughout
    described = []
    for e in scene.events:
        fixed = e.timbre == "click" or e.count > 1 or len(scene.events) == 2
        say_length = not _default(e) or (not fixed and rng is not None and rng.random() < 0.3)
        described.append(_describe(e, rng, say_length))
    if len(described) == 1:
        text = described[0]
    else:
        text = pick_form(_THEN, phrasing, rng).format(a=described[0], b=described[1])
    if rng is not None and rng.random() < 0.4:
        text = pick_form(_TOTAL, phrasing, rng).format(t=_seconds(scene.duration), d=text)
    return rephrase(text, LEXICON, FRAMES, phrasing, rng, noisy)


def text_vocabulary() -> dict[str, int]:
    """The vocabulary of a word-level text encoder for this world (grammar.sampled_vocabulary):
    every length a caption can state and every note name join the sampled captions."""
    numbers = [f"{k / 10:g}" for k in range(1, 101)] + list(NOTES)
    return sampled_vocabulary(LEXICON, FORMS, sample_scene, caption, numbers)


# --- rendering ------------------------------------------------------------------------------

LEVEL = 0.1  # RMS of each sound's loudest 64 ms: every timbre about equally loud
CLICK_LEVEL = 0.05  # a click is short: at LEVEL its peaks would dwarf the rest of the clip
FADE = 0.01  # seconds of release at every sound's end (and attack of the steady timbres)
PEAK = 0.95  # a clip louder than this is scaled down as a whole
CHIRP_RANGE = (250.0, 2500.0)  # Hz; a decade, swept exponentially
STRING_DROP_DB = 15.0  # a pluck is this much quieter at its end than at its start
BELL_DROP_DB = 20.0
# (frequency ratio, amplitude, decay rate relative to the fundamental's): an inharmonic free-bar
# spectrum whose lowest partial, at the note, is the loudest, so it is the heard pitch.
BELL_PARTIALS = ((1.0, 1.0, 1.0), (2.76, 0.5, 1.8), (5.40, 0.3, 3.0), (8.93, 0.15, 4.5))
MAX_PARTIAL = 7000.0  # Hz; partials above are dropped, below Nyquist with room to spare


def _envelope(n: int, attack: float) -> np.ndarray:
    env = np.ones(n)
    a, r = max(1, round(attack * SR)), max(1, round(FADE * SR))
    env[:a] *= np.linspace(0.0, 1.0, a, endpoint=False)
    env[-r:] *= np.linspace(1.0, 0.0, r)
    return env


def _karplus_strong(f: float, n: int, length: float, rng: np.random.Generator) -> np.ndarray:
    """A plucked string: a delay loop of one period with a lowpass in it (Karplus-Strong).

    The loop loses STRING_DROP_DB at the fundamental over `length`: the lowpass
    (1 - s) + s z^-1 takes what it can (s = 1/2 is the classic averaging filter, darkest), a
    loop gain under 1 the rest. Higher partials lose more per pass, so the pluck mellows as it
    decays. A first-order allpass supplies the fractional part of the period: the pitch is exact.
    """
    period = SR / f
    w = 2 * np.pi * f / SR
    loss = 10 ** (-STRING_DROP_DB / 20 / (length * f))  # per pass, at the fundamental
    g = 0.99999
    # |(1 - s) + s e^-jw|^2 = 1 - 2 s (1 - s) (1 - cos w): solve for s, or go darkest and lower g.
    need = (1 - (loss / g) ** 2) / (2 * (1 - np.cos(w)))
    if need <= 0.25:
        s = (1 - np.sqrt(1 - 4 * need)) / 2
    else:
        s, g = 0.5, loss / np.cos(w / 2)
    lowpass_delay = np.arctan2(s * np.sin(w), 1 - s + s * np.cos(w)) / w
    delay = int(np.floor(period - lowpass_delay - 0.1))  # whole samples
    d = period - lowpass_delay - delay  # in [0.1, 1.1): where a first-order allpass is accurate
    eta = (1 - d) / (1 + d)
    # y = x + g * lowpass(allpass(y delayed)), as one rational filter for lfilter.
    a = np.zeros(delay + 3)
    a[0], a[1] = 1.0, eta
    a[delay : delay + 3] -= g * np.array([(1 - s) * eta, 1 - s + s * eta, s])
    # A triangular pluck (the string pulled aside at one point) plus a little noise: harmonic
    # k starts at about 1/k^2, so the fundamental leads, as in a real pluck.
    p = round(period)
    at = rng.uniform(0.2, 0.35)
    shape = np.minimum(np.arange(p) / (at * p), (p - np.arange(p)) / ((1 - at) * p))
    burst = shape + 0.1 * rng.standard_normal(p)
    x = np.zeros(n)
    x[: min(p, n)] = (burst - burst.mean())[:n]
    return lfilter([1.0, eta], a, x)


def _bell(f: float, n: int, length: float) -> np.ndarray:
    t = np.arange(n) / SR
    rate = BELL_DROP_DB / 20 * np.log(10) / length
    return sum(
        amp * np.exp(-k * rate * t) * np.sin(2 * np.pi * ratio * f * t)
        for ratio, amp, k in BELL_PARTIALS
        if ratio * f < MAX_PARTIAL
    )


def _square(f: float, n: int) -> np.ndarray:
    """Band-limited: odd harmonics at 1/k up to MAX_PARTIAL, so nothing aliases."""
    t = np.arange(n) / SR
    return sum(np.sin(2 * np.pi * k * f * t) / k for k in range(1, int(MAX_PARTIAL / f) + 1, 2))


def _chirp(direction: str, n: int) -> np.ndarray:
    lo, hi = CHIRP_RANGE
    f0, f1 = (lo, hi) if direction == "rising" else (hi, lo)
    t = np.arange(n) / SR
    duration = n / SR
    k = np.log(f1 / f0) / duration  # f(t) = f0 * exp(k t)
    return np.sin(2 * np.pi * f0 * np.expm1(k * t) / k)


def _loudest_rms(x: np.ndarray, window: int = 1024) -> float:
    energy = np.concatenate([[0.0], np.cumsum(x * x)])
    w = min(window, len(x))
    return float(np.sqrt((energy[w:] - energy[:-w]).max() / window))


def render_sound(event: Event, rng: np.random.Generator) -> np.ndarray:
    """One repetition of `event`: float64, round(event.length * SR) samples, at LEVEL."""
    n = round(event.length * SR)
    if event.timbre == "click":  # broadband, about 2 ms long
        x = rng.standard_normal(n) * np.exp(-np.arange(n) / (0.002 * SR))
        return x * CLICK_LEVEL / _loudest_rms(x)
    if event.timbre == "noise":
        x = rng.standard_normal(n) * _envelope(n, FADE)
    elif event.timbre == "chirp":
        x = _chirp(event.pitch, n) * _envelope(n, FADE)
    else:
        tone = {
            "sine": lambda f: np.sin(2 * np.pi * f * np.arange(n) / SR),
            "square": lambda f: _square(f, n),
            "string": lambda f: _karplus_strong(f, n, event.length, rng),
            "bell": lambda f: _bell(f, n, event.length),
        }[event.timbre]
        attack = 0.002 if event.timbre in ("string", "bell") else FADE  # struck vs bowed
        x = sum(tone(f) for f in event.frequencies) * _envelope(n, attack)
    return x * LEVEL / _loudest_rms(x)


def render(scene: SoundScene) -> np.ndarray:
    """The scene as float32 mono in [-1, 1], exactly scene.num_samples long."""
    wave = np.zeros(scene.num_samples)
    for i, s in enumerate(scene.sounds):
        x = render_sound(scene.events[s.event], np.random.default_rng([scene.seed, i]))
        start = round(s.start * SR)
        wave[start : start + len(x)] += x
    peak = float(np.abs(wave).max())
    if peak > PEAK:
        wave *= PEAK / peak
    return wave.astype(np.float32)


# --- dataset --------------------------------------------------------------------------------


class SoundsDataset:
    """n scenes regenerated exactly from (seed, index): nothing is stored on disk.

    Map-style (len and getitem), so a torch DataLoader takes it; clips differ in length, so
    batch them with a collate that pads or crops.
    """

    def __init__(
        self,
        n: int,
        seed: int = 0,
        split: str = "train",
        max_duration: float = 5.0,
        phrasing: str = "train",
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split={split!r}; choose one of {SPLITS}")
        check_phrasing(phrasing)
        self.n, self.seed, self.split, self.max_duration = n, seed, split, max_duration
        self.phrasing = phrasing

    def __len__(self) -> int:
        return self.n

    def _draw(self, index: int) -> tuple[SoundScene, np.random.Generator]:
        if not 0 <= index < self.n:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, index])
        return sample_scene(rng, self.split, self.max_duration), rng

    def scene(self, index: int) -> SoundScene:
        """The scene of ``index``, without rendering it (for bucketing by duration)."""
        return self._draw(index)[0]

    def __getitem__(self, index: int) -> dict:
        scene, rng = self._draw(index)
        return {
            "wave": render(scene),
            "caption": caption(scene, rng, self.phrasing),
            "scene": scene,
        }

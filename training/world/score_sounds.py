"""Score a generated clip against the SoundScene its prompt described, attribute by attribute.

The scorer listens through the same log-mel frames the audio model generates (1024-point STFT,
hop 256, 80 HTK mel bands, 20 Hz to 8 kHz), so a mel -> Griffin-Lim round trip, which keeps
the mel frames and scrambles the phase, barely moves its answers:

- sounds are runs of frames within ACTIVE_DB of the loudest frame and clear of any steady noise
  floor (the world keeps them apart by at least 0.15 s of silence), which gives the count, the
  rhythm and the audible extent;
- the timbre of each sound comes from a small classifier trained, in-process, on the world's
  own renders (`timbre_classifier`);
- pitch comes from fitting the mel response of pure tones (or of a triad) to the lowest
  prominent peak of the sound's mean mel spectrum, a chirp's direction from its peak's path.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import ThreadpoolController

from training.world.sounds import (
    CHORDS,
    LEAD,
    NOTES,
    PITCHED,
    RHYTHMS,
    SR,
    TAIL,
    TIMBRES,
    SoundScene,
    octave,
    render,
    sample_event,
)
from training.world.summary import summarise  # noqa: F401 (re-exported)

N_FFT, HOP, N_MELS, F_MIN, F_MAX = 1024, 256, 80, 20.0, 8000.0
ACTIVE_DB = 35.0  # frames within this of the loudest frame are sound (a bell ends at -20 dB)
FLOOR_DB = -25.0  # frames below this absolute level (RMS ~1e-4) are silence, however quiet
NOISE_DB = 8.0  # ... and this far above the quietest three frames: the noise floor, if any
QUIET_DB = 25.0  # a run whose loudest frame is this far below the loudest is a smear, dropped
EDGE = 0.015  # seconds a run of frames starts before (ends after) its sound: measured
DURATION_TOL = 0.05  # the audible extent may be off by 5% ...
DURATION_SLACK = 0.05  # ... or by 50 ms, whichever is more: under one STFT window (64 ms)
PEAK_FRACTION = 0.1  # a mel peak at least this share of the loudest bin's power is prominent
SEMITONE_GRID = 20  # pitch candidates per semitone
ATTRIBUTES = ("pitch", "chord", "count", "rhythm", "timbre", "order", "duration")


# --- analysis -------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def _one_thread():
    """BLAS limited to one thread, within: the scorer's matrix products are small, and threads
    that wait on busy cores made them many times slower (30 s to train, not 5, on 2 busy cores)."""
    return _blas().limit(limits=1, user_api="blas")


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


@lru_cache(maxsize=1)
def mel_filterbank() -> np.ndarray:
    """(N_FFT // 2 + 1, N_MELS) HTK triangles without normalisation, as torchaudio builds them."""
    freqs = np.linspace(0, SR / 2, N_FFT // 2 + 1)
    points = _mel_to_hz(np.linspace(_hz_to_mel(F_MIN), _hz_to_mel(F_MAX), N_MELS + 2))
    slopes = points[None, :] - freqs[:, None]
    widths = np.diff(points)
    down = -slopes[:, :-2] / widths[:-1]
    up = slopes[:, 2:] / widths[1:]
    return np.maximum(0.0, np.minimum(down, up))


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    return np.hanning(N_FFT + 1)[:-1]  # periodic, as torch.hann_window


def mel_power(wave: np.ndarray) -> np.ndarray:
    """(frames, N_MELS) mel power of a mono wave: centred frames, reflect padding."""
    x = np.asarray(wave, dtype=np.float64).reshape(-1)
    x = np.pad(x, N_FFT // 2, mode="reflect" if len(x) > N_FFT // 2 else "constant")
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP]
    spectrum = np.abs(np.fft.rfft(frames * _window(), axis=1)) ** 2
    return spectrum @ mel_filterbank()


def _db(power: np.ndarray) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(power, 1e-12))


def frame_time(frame: float) -> float:
    return frame * HOP / SR


@dataclass(frozen=True)
class Segment:
    """A run of sounding frames, first..last inclusive, and the seconds it is heard from..to."""

    first: int
    last: int
    start: float
    end: float


def segments(mel: np.ndarray) -> list[Segment]:
    """Every separate sound: runs of frames within ACTIVE_DB of the loudest frame and NOISE_DB
    above the quietest stretch (a steady noise floor is not sound)."""
    energy = _db(mel.sum(axis=1))
    if len(energy) == 0 or energy.max() < FLOOR_DB:
        return []
    top = energy.max()
    quietest = (
        np.convolve(energy, np.ones(3) / 3, mode="valid").min() if len(energy) > 2 else -np.inf
    )
    active = energy >= max(top - ACTIVE_DB, quietest + NOISE_DB, FLOOR_DB)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], active.astype(np.int8), [0]])))
    out = []
    for first, stop in zip(edges[::2], edges[1::2], strict=True):
        if energy[first:stop].max() < top - QUIET_DB:
            continue
        # The window centred on frame t hears t +- 32 ms: a run starts a little before the
        # sound does and ends a little after.
        start = max(0.0, frame_time(first) + EDGE)
        out.append(Segment(int(first), int(stop - 1), start, frame_time(stop - 1) - EDGE))
    return out


# --- pitch ----------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _tones() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate frequencies, SEMITONE_GRID per semitone from 90 Hz to 7.8 kHz; the mel power of
    a pure tone at each, through the same window and filterbank; and the band where it peaks.

    The grid is uniform in semitones, so the note s semitones above candidate i is i + s * grid.
    """
    lo, hi = 12 * np.log2(90 / 440), 12 * np.log2(7800 / 440)
    freqs = 440 * 2 ** (np.arange(lo, hi, 1 / SEMITONE_GRID) / 12)
    n = np.arange(N_FFT)
    x = np.cos(2 * np.pi * freqs[:, None] * n[None, :] / SR) * _window()
    tones = (np.abs(np.fft.rfft(x, axis=1)) ** 2) @ mel_filterbank()
    return freqs, tones, tones.argmax(axis=1)


def _lowest_peak(spectrum: np.ndarray) -> int | None:
    loud = spectrum >= PEAK_FRACTION * spectrum.max()
    for b in range(1, len(spectrum) - 1):
        if loud[b] and spectrum[b] >= spectrum[b - 1] and spectrum[b] >= spectrum[b + 1]:
            return b
    return None


def estimate_pitch(spectrum: np.ndarray, chord: bool = False) -> tuple[float, str | None] | None:
    """(root Hz, chord quality or None) of a mean mel power spectrum, or None if it has no peak.

    The lowest prominent peak is the fundamental (every pitched timbre's loudest partial is its
    lowest) or, in a triad, the root. Among candidates peaking at or beside that band, the one
    whose modelled mel response (of a tone, or of a triad, major or minor) best matches the
    bands around it, by cosine similarity of amplitudes, gives the frequency to a fraction of a
    band: neighbouring triangles share a tone's power in proportion to where it falls.
    """
    b0 = _lowest_peak(spectrum)
    if b0 is None:
        return None
    freqs, tones, peaks = _tones()
    # A triad's root can merge with its third into one peak at the third's band.
    roots = np.flatnonzero((peaks >= b0 - (2 if chord else 1)) & (peaks <= b0 + 1))
    amplitude = np.sqrt(spectrum)
    bands = np.arange(N_MELS)
    best: tuple[float, float, str | None] = (-1.0, 0.0, None)
    for quality in CHORDS if chord else (None,):
        steps = np.array(CHORDS[quality] if quality else (0,)) * SEMITONE_GRID
        cand = roots[roots + steps[-1] < len(freqs)]
        if not len(cand):
            continue
        notes = cand[:, None] + steps[None, :]
        template = np.sqrt(tones[notes].sum(axis=1))  # (candidates, bands)
        lo, hi = peaks[notes[:, 0]] - 2, peaks[notes[:, -1]] + 2
        window = (bands >= lo[:, None]) & (bands <= hi[:, None])
        a, t = window * amplitude, window * template
        sim = (a * t).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(t, axis=1) + 1e-12)
        i = int(np.argmax(sim))
        if sim[i] > best[0]:
            best = (float(sim[i]), float(freqs[cand[i]]), quality)
    return None if best[0] < 0 else best[1:]


def semitones(f: float, g: float) -> float:
    return 12 * abs(np.log2(f / g))


# --- timbre ---------------------------------------------------------------------------------

# Griffin-Lim fills the valleys between partials, and ripples a steady tone's loudness, to
# about 30 dB under the peak: features ignore anything quieter than that.
FEATURE_FLOOR_DB = 30.0
ENVELOPE_POINTS = 8
# Partials above the fundamental where the timbres differ: a square has odd harmonics only, a
# string all of them, a bell its inharmonic 2.76 and 5.40, a sine none; 1.5 and 2.5 fall between.
RATIOS = (1.5, 2.0, 2.5, 2.76, 3.0, 4.0, 5.0, 5.4, 6.0, 7.0)


def _harmonics(mean: np.ndarray) -> np.ndarray:
    """Power at each of RATIOS times the fundamental, in dB against the fundamental's."""
    found = estimate_pitch(mean)
    if found is None:
        return np.zeros(len(RATIOS))
    freqs, tones, _ = _tones()
    wanted = found[0] * np.array((1.0, *RATIOS))
    idx = np.clip(np.searchsorted(freqs, wanted), 0, len(freqs) - 1)
    weights = tones[idx] / tones[idx].sum(axis=1, keepdims=True)
    level = _db(weights @ mean)
    heard = np.where(wanted[1:] < freqs[-1], level[1:] - level[0], -FEATURE_FLOOR_DB)
    return np.clip(heard, -FEATURE_FLOOR_DB, 10.0) / FEATURE_FLOOR_DB


def features(mel: np.ndarray, seg: Segment) -> np.ndarray:
    """What a timbre sounds like, in numbers that do not depend on loudness or pitch much.

    The mean spectrum (dB under its peak), the loudness envelope over the sound, its length,
    flatness (noise is flat), concentration (a sine is one peak), the path of the loudest band
    (a chirp's moves) and the partials' levels relative to the fundamental.
    """
    p = mel[seg.first : seg.last + 1] + 1e-12
    mean = p.mean(axis=0)
    spectrum = np.clip(_db(mean) - _db(mean.max()), -FEATURE_FLOOR_DB, 0.0)
    energy = _db(p.sum(axis=1))
    envelope = np.clip(energy - energy.max(), -FEATURE_FLOOR_DB, 0.0) / FEATURE_FLOOR_DB
    grid = np.linspace(0, len(envelope) - 1, ENVELOPE_POINTS)
    envelope = np.interp(grid, np.arange(len(envelope)), envelope)
    floored = 10 ** (spectrum / 10)
    flatness = np.exp(np.log(floored).mean()) / floored.mean()
    loud = energy >= energy.max() - 20.0
    path = p.argmax(axis=1)[loud].astype(np.float64)
    slope = np.polyfit(np.arange(len(path)), path, 1)[0] if len(path) > 1 else 0.0
    extra = [
        np.log(len(p)),
        flatness,
        np.sort(mean)[-3:].sum() / mean.sum(),
        np.clip(slope, -5.0, 5.0),
        (path[-1] - path[0]) / N_MELS,
        np.std(path) / N_MELS,
    ]
    return np.concatenate([spectrum / FEATURE_FLOOR_DB, envelope, extra, _harmonics(mean)])


TRAIN_PER_TIMBRE = 150
CLASSIFIER_SEED = 12345


def _training_scenes(per_timbre: int, seed: int) -> list[SoundScene]:
    """Single-event scenes of one or two sounds, per_timbre of each timbre, every pitch,
    chord, length and rhythm, held-out pairs included (they are the scorer's, not the model's)."""
    rng = np.random.default_rng(seed)
    scenes: list[SoundScene] = []
    for timbre in TIMBRES:
        for _ in range(per_timbre):
            e = sample_event(rng, False, (timbre, int(rng.integers(1, 3))))
            scenes.append(SoundScene((e,), e.span + LEAD + TAIL, int(rng.integers(2**31))))
    return scenes


def labelled_segments(scenes: list[SoundScene], waves=None) -> tuple[np.ndarray, np.ndarray]:
    """Features and true timbre of every heard sound, for scenes where the count is right."""
    with _one_thread():
        return _labelled_segments(scenes, waves)


def _labelled_segments(scenes: list[SoundScene], waves) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for k, s in enumerate(scenes):
        mel = mel_power(render(s) if waves is None else waves[k])
        segs = segments(mel)
        if len(segs) != len(s.sounds):
            continue
        for seg, sound in zip(segs, s.sounds, strict=True):
            xs.append(features(mel, seg))
            ys.append(s.events[sound.event].timbre)
    return np.array(xs), np.array(ys)


@lru_cache(maxsize=1)
def timbre_classifier() -> Pipeline:
    """Logistic regression on `features`, fitted to TRAIN_PER_TIMBRE renders per timbre with
    a fixed seed and a deterministic solver: the same classifier in every process, in seconds."""
    with _one_thread():
        x, y = _labelled_segments(_training_scenes(TRAIN_PER_TIMBRE, CLASSIFIER_SEED), None)
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
        return model.fit(x, y)


def classify(mel: np.ndarray, segs: list[Segment]) -> list[str]:
    """The timbre of each segment."""
    if not segs:
        return []
    return [str(t) for t in timbre_classifier().predict(np.array([features(mel, s) for s in segs]))]


def direction(mel: np.ndarray, seg: Segment) -> str:
    """'rising' or 'falling': the sign of the loudest band's path through the sound."""
    p = mel[seg.first : seg.last + 1]
    energy = _db(p.sum(axis=1))
    loud = energy >= energy.max() - 20.0
    peaks = p.argmax(axis=1)[loud]
    if len(peaks) < 2:
        return "rising" if len(peaks) and peaks[0] > N_MELS // 2 else "falling"
    return "rising" if np.polyfit(np.arange(len(peaks)), peaks, 1)[0] > 0 else "falling"


def _pitch_right(mel: np.ndarray, segs: list[Segment], scene: SoundScene):
    """(pitch right, chord quality right) for a single-event scene; None where not asked."""
    e = scene.events[0]
    if e.timbre == "chirp":
        heard = Counter(direction(mel, s) for s in segs).most_common(1)
        return bool(heard) and heard[0][0] == e.pitch, None
    if e.timbre not in PITCHED:
        return None, None
    if not segs:
        return False, (False if e.chord else None)
    frames = np.concatenate([mel[s.first : s.last + 1] for s in segs])
    found = estimate_pitch(frames.mean(axis=0), chord=e.chord is not None)
    if found is None:
        return False, (False if e.chord else None)
    f, quality = found
    if e.coarse:  # anywhere in the octave, to within a semitone of its ends
        o = octave(e.pitch)
        lo, hi = NOTES[f"C{o}"] * 2 ** (-1 / 12), NOTES[f"B{o}"] * 2 ** (1 / 12)
        right = lo <= f <= hi
    else:
        right = semitones(f, NOTES[e.pitch]) <= 1.0
    return right, (quality == e.chord if e.chord else None)


# --- scoring --------------------------------------------------------------------------------


def to_wave(wave) -> np.ndarray:
    """float64 mono from a numpy array or a torch tensor of shape (T,) or (1, T)."""
    if hasattr(wave, "detach"):
        wave = wave.detach().float().cpu().numpy()
    wave = np.asarray(wave, dtype=np.float64)
    if wave.ndim == 2 and 1 in wave.shape:
        wave = wave.reshape(-1)
    if wave.ndim != 1:
        raise ValueError(f"expected a mono wave, got shape {wave.shape}")
    return wave


def _rhythm(segs: list[Segment]) -> str:
    """The named rhythm nearest (on a log scale) the median onset interval."""
    interval = float(np.median(np.diff([s.start for s in segs])))
    return min(RHYTHMS, key=lambda r: abs(np.log(max(interval, 1e-3) / RHYTHMS[r])))


def score(wave, scene: SoundScene) -> dict[str, bool | None]:
    """Per-attribute correctness of `wave` (SR Hz mono) for `scene`.

    pitch: the (root) note within a semitone, inside the register for "low"/"high", or a
    chirp's direction; single-event scenes with a pitch, else None. chord: the triad's quality
    (major/minor), None without a chord. count: as many sounds as the scene has repetitions.
    rhythm: the median onset interval is nearest the asked rhythm's; single-event scenes with
    repetitions, else None. timbre: the first event's sounds are classified as its timbre.
    order: two-event scenes, the timbres heard in the asked order, else None. duration: the
    audible extent (first onset to last sound's end) within DURATION_TOL or DURATION_SLACK of
    scene.extent; None for a lone click, which is too short to time. all: every key that
    applies is right.
    """
    timbre_classifier()  # trained outside the thread limit below: it sets its own
    with _one_thread():
        return _score(to_wave(wave), scene)


def _score(wave: np.ndarray, scene: SoundScene) -> dict[str, bool | None]:
    mel = mel_power(wave)
    segs = segments(mel)
    heard = classify(mel, segs)
    events = scene.events
    total = sum(e.count for e in events)
    result: dict[str, bool | None] = {}
    if len(events) == 1:
        result["pitch"], result["chord"] = _pitch_right(mel, segs, scene)
    else:
        result["pitch"], result["chord"] = None, None
    result["count"] = len(segs) == total
    e = events[0]
    result["rhythm"] = None
    if len(events) == 1 and e.count > 1:
        result["rhythm"] = len(segs) >= 2 and _rhythm(segs) == e.rhythm
    # The first event's sounds, when the count is right; its first sound otherwise.
    first = heard[: e.count] if len(segs) == total else heard[:1]
    votes = Counter(first).most_common(1)
    result["timbre"] = bool(votes) and votes[0][0] == e.timbre
    result["order"] = None
    if len(events) == 2:
        runs = [t for i, t in enumerate(heard) if i == 0 or t != heard[i - 1]]
        result["order"] = runs == [x.timbre for x in events]
    result["duration"] = None
    if not (len(events) == 1 and e.timbre == "click" and e.count == 1):
        extent = segs[-1].end - segs[0].start if segs else 0.0
        tol = max(DURATION_TOL * scene.extent, DURATION_SLACK)
        result["duration"] = abs(extent - scene.extent) <= tol
    result = {k: None if v is None else bool(v) for k, v in result.items()}
    result["all"] = all(v for v in result.values() if v is not None)
    return result

import dataclasses
import re

import numpy as np
import pytest
import torch
import torchaudio
from torch.utils.data import DataLoader

from training.world.score_sounds import (
    ATTRIBUTES,
    labelled_segments,
    mel_power,
    score,
    segments,
    summarise,
    timbre_classifier,
)
from training.world.sounds import (
    CHORDS,
    DEFAULT_LENGTH,
    DIRECTIONS,
    HELDOUT_PAIRS,
    LEAD,
    LEXICON,
    NOTES,
    PITCHED,
    REGISTERS,
    RHYTHMS,
    SR,
    TAIL,
    TIMBRES,
    Event,
    SoundScene,
    SoundsDataset,
    caption,
    is_heldout,
    octave,
    pairs,
    register,
    render,
    sample_scene,
)


def scenes(n: int, seed: int, split: str, max_duration: float = 5.0) -> list[SoundScene]:
    return [sample_scene(np.random.default_rng([seed, i]), split, max_duration) for i in range(n)]


def both_splits(n: int, seed: int, max_duration: float = 5.0) -> list[SoundScene]:
    return [s for split in ("train", "heldout") for s in scenes(n, seed, split, max_duration)]


# --- the world ------------------------------------------------------------------------------


def test_same_seed_same_scene_wave_and_caption():
    for i in range(20):
        a, b = np.random.default_rng([5, i]), np.random.default_rng([5, i])
        sa, sb = sample_scene(a, "heldout"), sample_scene(b, "heldout")
        assert sa == sb
        assert render(sa).tobytes() == render(sb).tobytes()
        assert caption(sa, a) == caption(sb, b)
    assert sample_scene(np.random.default_rng(1)) != sample_scene(np.random.default_rng(2))


def test_dataset_regenerates_each_index_exactly():
    ds, again = SoundsDataset(8, seed=3), SoundsDataset(8, seed=3)
    for i in (0, 5, 7):
        x, y = ds[i], again[i]
        assert np.array_equal(x["wave"], y["wave"]) and x["caption"] == y["caption"]
        assert x["scene"] == y["scene"]
        assert x["wave"].dtype == np.float32 and x["wave"].shape == (x["scene"].num_samples,)
        assert np.array_equal(x["wave"], render(x["scene"]))
    assert not np.array_equal(ds[0]["wave"], SoundsDataset(8, seed=4)[0]["wave"])
    assert all(is_heldout(SoundsDataset(5, split="heldout")[i]["scene"]) for i in range(5))
    batch = next(iter(DataLoader(ds, batch_size=4, collate_fn=list)))
    assert len(batch) == 4 and isinstance(batch[0]["caption"], str)
    with pytest.raises(IndexError):
        ds[8]


def test_lengths_and_timeline_are_exact():
    for max_duration in (5.0, 2.0, 1.0):
        for s in both_splits(150, 2, max_duration):
            wave = render(s)
            assert 0.5 - 1e-9 <= s.duration <= max_duration + 1e-9
            assert abs(s.duration * 10 - round(s.duration * 10)) < 1e-9  # whole tenths
            assert len(wave) == round(s.duration * SR) == s.num_samples
            assert np.abs(wave).max() <= 1.0 and np.all(np.isfinite(wave))
            sounds = s.sounds
            assert sounds[0].start == LEAD and s.end + TAIL <= s.duration + 1e-9
            assert s.extent == pytest.approx(s.end - LEAD)
            # Silence exactly where the timeline says, sound in every repetition.
            edges = [
                (round(x.start * SR), round(x.start * SR) + round((x.end - x.start) * SR))
                for x in sounds
            ]
            quiet = np.ones(len(wave), bool)
            for a, b in edges:
                quiet[a:b] = False
                assert np.abs(wave[a:b]).max() > 0.01
            assert not wave[quiet].any()


def test_heldout_pairs_never_in_train_and_always_in_heldout():
    train = scenes(3000, 0, "train")
    assert not any(is_heldout(s) for s in train)
    seen = {p for s in train for e in s.events for p in pairs(e)}
    assert not seen & HELDOUT_PAIRS
    # Every timbre, count and register is still heard in training, only the pairs are not.
    assert {t for t, _ in seen} == set(TIMBRES)
    assert {x for _, x in seen} == {1, 2, 3, 4} | set(REGISTERS)
    everything = {(t, c) for t in TIMBRES for c in (1, 2, 3, 4)}
    everything |= {(t, r) for t in PITCHED for r in REGISTERS}
    assert seen == everything - HELDOUT_PAIRS
    held = scenes(400, 1, "heldout")
    assert all(is_heldout(s) for s in held)
    assert {p for s in held for e in s.events for p in pairs(e)} >= HELDOUT_PAIRS


def test_scenes_are_valid_and_varied():
    sample = both_splits(400, 3)
    events = [e for s in sample for e in s.events]
    assert {len(s.events) for s in sample} == {1, 2}
    assert {e.timbre for e in events} == set(TIMBRES)
    assert {e.count for e in events} == {1, 2, 3, 4}
    assert {e.rhythm for e in events} == {None, *RHYTHMS}
    assert {e.chord for e in events} == {None, *CHORDS}
    assert {e.pitch for e in events if e.timbre in PITCHED} == set(NOTES)
    assert {e.pitch for e in events if e.timbre == "chirp"} == set(DIRECTIONS)
    assert any(e.coarse for e in events)
    assert len({e.length for e in events if e.count == 1 and e.timbre != "click"}) > 10
    assert len({s.duration for s in sample}) > 20


def test_invalid_events_and_scenes_are_refused():
    with pytest.raises(ValueError, match="timbre"):
        Event("violin", "A4")
    with pytest.raises(ValueError, match="pitch"):
        Event("sine")
    with pytest.raises(ValueError, match="pitch"):
        Event("noise", "A4")
    with pytest.raises(ValueError, match="pitch"):
        Event("chirp", "A4")
    with pytest.raises(ValueError, match="rhythm"):
        Event("click", count=3)
    with pytest.raises(ValueError, match="count"):
        Event("click", count=5, rhythm="fast")
    with pytest.raises(ValueError, match="length"):
        Event("sine", "A4", 2, "fast", length=1.0)
    with pytest.raises(ValueError, match="length"):
        Event("sine", "A4", length=3.0)
    with pytest.raises(ValueError, match="chord"):
        Event("noise", chord="major")
    with pytest.raises(ValueError, match="register"):
        Event("sine", "A4", coarse=True)
    bell = Event("bell", "C4")
    with pytest.raises(ValueError, match="differ"):
        SoundScene((bell, Event("bell", "C5")), 3.0)
    with pytest.raises(ValueError, match="duration"):
        SoundScene((bell,), LEAD + DEFAULT_LENGTH)
    with pytest.raises(ValueError, match="1 or 2"):
        SoundScene((bell, Event("click"), Event("sine", "A4")), 4.0)
    assert Event("click").length == 0.01 and Event("sine", "A4", 2, "slow").length == 0.4


# --- captions -------------------------------------------------------------------------------


def test_captions_follow_the_examples():
    def first(*events, duration=3.0):
        return caption(SoundScene(tuple(events), duration))

    assert first(Event("click", count=3, rhythm="fast")) == "three fast clicks"
    assert first(Event("click"), Event("bell", "C3", coarse=True)) == "a click, then a low bell"
    assert first(Event("chirp", "rising", length=2.0)) == "a 2 second rising chirp"
    assert first(Event("sine", "A4", 2, "slow")) == "two slow sine tones at A4"
    chord = first(Event("string", "C4", chord="major"))
    assert chord == "a C4 major chord on the string"
    assert first(Event("bell", "E5")) == "a bell at E5"


NUMBER_WORDS = {2: ("two", "twice"), 3: ("three",), 4: ("four",)}
RHYTHM_STEMS = {"fast": ("fast", "quick"), "slow": ("slow",)}


def test_captions_name_every_attribute_and_nothing_false():
    for i in range(600):
        rng = np.random.default_rng([9, i])
        s = sample_scene(rng, "train" if i % 2 else "heldout")
        phrasing = ("train", "heldout")[i % 3 == 0]
        text = caption(s, rng, phrasing, noisy=False)
        text = re.sub(r"\b([a-g][3-5])\b", lambda m: m[1].upper(), LEXICON.canonicalise(text))
        assert set(re.findall(r"\b[A-G][3-5]\b", text)) <= {e.pitch for e in s.events}, text
        for e in s.events:
            assert e.timbre in text, text
            if e.timbre == "chirp" or (e.timbre in PITCHED and not e.coarse):
                assert re.search(rf"\b{e.pitch}\b", text), text
            if e.coarse:
                assert re.search(rf"\b{register(e.pitch)}\b", text), text
            if e.chord:
                assert e.chord in text, text
            if e.count > 1:
                assert any(w in text for w in NUMBER_WORDS[e.count]), text
                assert any(w in text for w in RHYTHM_STEMS[e.rhythm]), text
            if e.count == 1 and e.timbre != "click" and e.length != DEFAULT_LENGTH:
                assert re.search(rf"\b{e.length:g} second", text), text
        # Every number is a note's octave, a lone sound's length or the clip's duration.
        stated = {f"{s.duration:g}"} | {f"{e.length:g}" for e in s.events}
        assert set(re.findall(r"(?<![A-G\d.])\d+(?:\.\d+)?", text)) <= stated, text
    # The phrasings vary.
    texts = {caption(s, np.random.default_rng(k)) for k, s in enumerate(scenes(50, 7, "train"))}
    assert any("seconds" in t for t in texts) and any(" then " in t or "after" in t for t in texts)


# --- the scorer -----------------------------------------------------------------------------


def test_timbre_classifier_is_right_on_heldout_renders():
    # Seeds the classifier never trained on, both splits.
    x, y = labelled_segments(both_splits(150, 21))
    assert len(y) > 300 and set(y) == set(TIMBRES)
    accuracy = 100 * np.mean(timbre_classifier().predict(x) == y)
    assert accuracy >= 99.0, accuracy


def test_scorer_is_right_on_real_renders():
    results = [score(render(s), s) for s in both_splits(160, 6)]
    accuracy = summarise(results)
    assert set(accuracy) == {*ATTRIBUTES, "all"}
    assert min(accuracy.values()) >= 99.0, accuracy


def griffin_lim_round_trip(wave: np.ndarray) -> np.ndarray:
    """What the audio model's decoder does: mel frames back to a wave, with a made-up phase.
    Settings as conditioning/mel.py's codec (with f_min=0 some mel bands are empty, and the
    inverse is slow and ill-posed)."""
    bands = {"n_mels": 80, "sample_rate": SR, "f_min": 20.0, "f_max": 8000.0}
    mel = torchaudio.transforms.MelSpectrogram(n_fft=1024, hop_length=256, **bands)
    inverse = torchaudio.transforms.InverseMelScale(n_stft=513, **bands)
    griffin_lim = torchaudio.transforms.GriffinLim(n_fft=1024, hop_length=256)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small FFTs: a second thread only waits, slowly on busy cores
    try:
        torch.manual_seed(0)  # Griffin-Lim's starting phase
        out = griffin_lim(inverse(mel(torch.from_numpy(wave)[None])))[0].numpy()[: len(wave)]
    finally:
        torch.set_num_threads(threads)
    return np.pad(out, (0, len(wave) - len(out)))


def test_scorer_survives_a_mel_griffin_lim_round_trip():
    results = [score(griffin_lim_round_trip(render(s)), s) for s in both_splits(24, 13, 3.0)]
    accuracy = summarise(results)
    assert min(accuracy.values()) >= 95.0, accuracy


def test_scorer_survives_mild_noise():
    rng = np.random.default_rng(0)
    results = []
    for s in both_splits(40, 14):
        wave = render(s)
        results.append(score(wave + 0.003 * rng.standard_normal(len(wave)), s))  # 30 dB under
    assert min(summarise(results).values()) >= 95.0


def _other_note(note: str, rng: np.random.Generator) -> str:
    """A note at least two semitones away: neighbours E-F and B-C are only one apart."""
    far = [n for n in NOTES if abs(12 * np.log2(NOTES[n] / NOTES[note])) >= 2]
    return far[int(rng.integers(len(far)))]


def corrupt(scene: SoundScene, attribute: str, rng: np.random.Generator) -> SoundScene | None:
    """The same scene with `attribute` changed, or None where the attribute does not apply."""
    events = list(scene.events)
    e = events[0]
    new: Event | None = None
    if attribute == "order":
        return SoundScene(scene.events[::-1], 10.0) if len(events) == 2 else None
    if len(events) == 2 and attribute != "timbre" and attribute != "count":
        return None
    if attribute == "pitch" and e.timbre == "chirp":
        new = dataclasses.replace(e, pitch=next(d for d in DIRECTIONS if d != e.pitch))
    elif attribute == "pitch" and e.timbre in PITCHED:
        if e.coarse:  # the other register
            new = dataclasses.replace(e, pitch=f"{e.pitch[0]}{8 - octave(e.pitch)}")
        else:
            new = dataclasses.replace(e, pitch=_other_note(e.pitch, rng))
    elif attribute == "chord" and e.chord:
        new = dataclasses.replace(e, chord=next(c for c in CHORDS if c != e.chord))
    elif attribute == "rhythm" and e.count > 1:
        new = dataclasses.replace(e, rhythm=next(r for r in RHYTHMS if r != e.rhythm), length=None)
    elif attribute == "duration" and e.count == 1 and e.timbre != "click":
        new = dataclasses.replace(e, length=e.length / 1.5 if e.length > 0.6 else e.length * 1.5)
    elif attribute == "count":
        top = 2 if len(events) == 2 else 4
        count = next(c for c in rng.permutation(range(1, top + 1)) if c != e.count)
        rhythm = (e.rhythm or "fast") if count > 1 else None
        new = dataclasses.replace(e, count=int(count), rhythm=rhythm, length=None)
    elif attribute == "timbre":
        taken = {x.timbre for x in events}
        options = [t for t in TIMBRES if t not in taken]
        timbre = options[int(rng.integers(len(options)))]
        pitch = e.pitch if timbre in PITCHED and e.timbre in PITCHED else None
        if timbre in PITCHED and pitch is None:
            pitch = "A4"
        if timbre == "chirp":
            pitch = "rising"
        chord = e.chord if timbre in PITCHED else None
        coarse = e.coarse and timbre in PITCHED
        new = Event(timbre, pitch, e.count, e.rhythm, None, chord, coarse)
    if new is None:
        return None
    events[0] = new
    return SoundScene(tuple(events), 10.0)  # long enough for any change


@pytest.mark.parametrize(
    "attribute", ["pitch", "chord", "count", "rhythm", "timbre", "order", "duration"]
)
def test_scorer_fails_on_wrong_ground_truth(attribute):
    rng = np.random.default_rng(10)
    wrong = []
    for s in both_splits(300, 15):
        bad = corrupt(s, attribute, rng)
        if bad is not None:
            wrong.append(score(render(s), bad)[attribute] is False)
        if len(wrong) == 40:
            break
    assert len(wrong) == 40
    assert np.mean(wrong) >= 0.95, np.mean(wrong)


def test_silence_and_steady_noise_hold_no_sounds():
    s = SoundScene((Event("bell", "A4"),), 1.0)
    silence = np.zeros(s.num_samples, np.float32)
    noise = 0.1 * np.random.default_rng(0).standard_normal(s.num_samples)
    for wave in (silence, noise):
        assert segments(mel_power(wave)) == []
        result = score(wave, s)
        assert result["count"] is False and result["pitch"] is False and result["all"] is False


def test_score_reads_tensors_and_summarise_skips_none():
    s = sample_scene(np.random.default_rng(3))
    wave = render(s)
    assert score(torch.from_numpy(wave)[None], s) == score(wave, s)
    results = [{"pitch": True, "order": None}, {"pitch": False, "order": None}]
    assert summarise(results) == {"pitch": 50.0}


def test_eval_scenes_are_the_same_in_every_phrasing_and_only_the_words_differ():
    import pytest

    from training.eval_sounds import heldout_sound_scenes
    from training.world.sounds import caption

    runs = {p: heldout_sound_scenes(24, 3.0, phrasing=p) for p in ("canonical", "train", "heldout")}
    scenes = runs["canonical"][0]
    assert all(runs[p][0] == scenes for p in runs)
    assert runs["canonical"][1] == [caption(s) for s in scenes]  # canonical: deterministic
    assert runs["train"][1] != runs["canonical"][1] != runs["heldout"][1]
    with pytest.raises(ValueError, match="phrasing"):
        heldout_sound_scenes(2, 3.0, phrasing="poetic")

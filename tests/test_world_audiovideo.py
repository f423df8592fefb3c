import dataclasses
import itertools
import math

import numpy as np
import pytest
import torch

from conditioning.mel import MelCodec
from training.world.audiovideo import (
    BEEP_PITCH,
    COLOURS,
    END_GUARD,
    HELDOUT_PAIRS,
    KINDS,
    LEXICON,
    LIGHT_COLOURS,
    REST_HOP,
    SR,
    THUD_LENGTH,
    THUD_PITCH,
    AVDataset,
    AVScene,
    _clip,
    caption,
    event_times,
    is_heldout,
    render_audio,
    render_video,
    sample_scene,
)
from training.world.motion import RESTITUTION, impact_times
from training.world.score_audiovideo import (
    audio_onsets,
    bounce_impacts,
    score_av,
    shuffled,
    summarise_av,
    sync,
    visual_events,
)
from training.world.shapes import BACKGROUNDS


def scenes(n: int, seed: int, split: str = "train") -> list[AVScene]:
    return [sample_scene(np.random.default_rng([seed, i]), split) for i in range(n)]


def first_of(kind: str, seed: int = 0) -> AVScene:
    return next(s for s in scenes(30, seed) if s.kind == kind)


@pytest.fixture(scope="module")
def clips() -> list[tuple[AVScene, np.ndarray, np.ndarray]]:
    """100 random scenes rendered at the training defaults: 2 s, 8 fps, 16 px."""
    return [(s, render_video(s, 16, 8.0, 16), render_audio(s, 2.0)) for s in scenes(100, 7)]


def dominant_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x, n=16 * SR))  # zero-padded: 1 / 16 Hz bins
    return float(np.argmax(spectrum)) / 16


# --- the world ------------------------------------------------------------------------------


def test_dataset_is_deterministic_and_streams_last_equally_long():
    ds = AVDataset(5, seed=3)
    for i in (0, 4):
        a, b = ds[i], AVDataset(5, seed=3)[i]
        assert torch.equal(a["video"], b["video"]) and np.array_equal(a["wave"], b["wave"])
        assert a["caption"] == b["caption"] and a["scene"] == b["scene"]
        assert a["video"].shape == (16, 3, 16, 16) and a["video"].dtype == torch.float32
        assert a["wave"].shape == (32_000,) and a["wave"].dtype == np.float32
        assert a["video"].min() >= -1 and a["video"].max() <= 1 and np.abs(a["wave"]).max() <= 1
        frames = torch.from_numpy(render_video(a["scene"], 16, 8.0, 16)).permute(0, 3, 1, 2)
        assert torch.allclose(a["video"], frames / 127.5 - 1)
    assert ds[0]["scene"] != AVDataset(5, seed=4)[0]["scene"]
    other = AVDataset(2, seed=1, size=24, seconds=1.5, fps=12.0)[1]
    assert other["video"].shape == (18, 3, 24, 24) and other["wave"].shape == (24_000,)
    assert 18 / 12.0 == 24_000 / SR == other["scene"].seconds


def test_heldout_pairs_never_in_train_and_always_in_heldout():
    train = scenes(600, 0)
    assert not any(is_heldout(s) for s in train)
    seen = {(s.colour, s.kind) for s in train}
    wanted = {(c, k) for k in KINDS for c in (LIGHT_COLOURS if k == "blink" else COLOURS)}
    assert seen == wanted - HELDOUT_PAIRS
    held = scenes(60, 1, "heldout")
    assert all(is_heldout(s) for s in held)
    assert {(s.colour, s.kind) for s in held} == HELDOUT_PAIRS
    with pytest.raises(ValueError, match="split"):
        sample_scene(np.random.default_rng(0), "test")


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("bounce", "kind", "spin"),
        ("bounce", "shape", "hexagon"),
        ("blink", "shape", "triangle"),
        ("bounce", "colour", "pink"),
        ("blink", "colour", "black"),
        ("collide", "size", "large"),
        ("bounce", "background", "teal"),
        ("bounce", "seconds", 0.0),
        ("bounce", "speed", None),
        ("bounce", "centre", (0.5, 0.95)),
        ("blink", "centre", (0.01, 0.5)),
        ("bounce", "flashes", ((0.2, 0.5),)),
        ("blink", "speed", "fast"),
        ("blink", "flashes", ()),
        ("blink", "flashes", ((0.2, 0.5), (0.6, 0.9))),  # dark for under MIN_OFF
        ("blink", "flashes", ((0.2, 0.3),)),  # too short to be seen
        ("blink", "flashes", ((1.9, 2.2),)),  # past the clip's end
        ("collide", "colour2", None),
        ("collide", "x2", 0.3),
        ("collide", "contact", 0.0),
        ("collide", "contact", 2.5),
    ],
)
def test_invalid_scenes_raise_naming_the_field(kind, field, value):
    scene = first_of(kind)
    changes = {field: value}
    if field == "colour2":
        changes = {"colour2": scene.colour}
    if field == "background":
        changes = {"background": scene.colour if scene.colour in BACKGROUNDS else "teal"}
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(scene, **changes)


def test_events_are_in_seconds_whatever_the_fps():
    for s in scenes(12, 2):
        at8, at12 = render_video(s, 16, 8.0, 16), render_video(s, 24, 12.0, 16)
        assert np.array_equal(at8[::2], at12[::3])  # both show t = 0, 0.25, 0.5, ...
        assert min(event_times(s)) > 0 and max(event_times(s)) <= s.seconds


def test_bounce_reuses_motion_physics_and_rests_when_hops_get_short():
    bounces = [s for s in scenes(200, 3) if s.kind == "bounce"]
    for speed in ("slow", "fast"):
        counts = [len(event_times(s)) for s in bounces if s.speed == speed]
        assert min(counts) >= 2 and np.mean(counts) >= 2.5, (speed, counts)
    resting = 0
    for s in bounces[:20]:
        times, every = event_times(s), impact_times(_clip(s), math.inf)
        assert times == every[: len(times)] and times[-1] <= s.seconds - END_GUARD
        assert all(b - a >= REST_HOP for a, b in itertools.pairwise(times))
        rests = every[len(times)] - times[-1] < REST_HOP  # the next hop would be too short
        assert rests or every[len(times)] > s.seconds
        frames = render_video(s, 16, 8.0, 16)
        after = [frames[i] for i in range(16) if i / 8 >= times[-1]]
        assert rests == all(np.array_equal(f, after[0]) for f in after)
        resting += rests
    assert 0 < resting < 20


def test_thuds_are_pitched_by_size_and_quieter_at_each_rebound():
    for size in THUD_PITCH:
        s = next(s for s in scenes(200, 4) if s.kind == "bounce" and s.size == size)
        wave, times = render_audio(s, 2.0), event_times(s)
        starts = [round(t * SR) for t in times]
        thuds = [wave[a : a + round(THUD_LENGTH * SR)] for a in starts]
        assert abs(dominant_hz(thuds[0]) - THUD_PITCH[size]) < 3
        peaks = [np.abs(x).max() for x in thuds]
        assert np.allclose(np.array(peaks[1:]) / peaks[:-1], RESTITUTION, atol=0.01)
        sounding = np.zeros(len(wave), bool)
        for a in starts:
            sounding[a : a + len(thuds[0])] = True
        assert not wave[~sounding].any()  # silence between the thuds


def test_blink_beeps_exactly_while_the_light_is_on():
    s = first_of("blink", 5)
    wave = render_audio(s, 2.0)
    on = np.zeros(len(wave), bool)
    for a, b in s.flashes:
        on[round(a * SR) : round(b * SR)] = True
    assert not wave[~on].any() and np.count_nonzero(wave[on]) > 0.99 * on.sum()
    a, b = s.flashes[0]
    assert abs(dominant_hz(wave[round(a * SR) : round(b * SR)]) - BEEP_PITCH) < 3
    dark = np.full((16, 16, 3), BACKGROUNDS[s.background], np.uint8)
    for i, frame in enumerate(render_video(s, 24, 12.0, 16)):
        lit = any(a <= i / 12 < b for a, b in s.flashes)
        assert lit != np.array_equal(frame, dark)
    assert all(round(a * 8) != a * 8 for a, _ in s.flashes)  # not on frame times


def test_blocks_stop_at_contact_with_one_clack():
    s = first_of("collide")
    frames, wave = render_video(s, 24, 12.0, 16), render_audio(s, 2.0)
    after = [i for i in range(24) if i / 12 >= s.contact]
    assert all(np.array_equal(frames[i], frames[after[0]]) for i in after)
    assert not np.array_equal(frames[0], frames[after[0] - 1])
    sounding = np.flatnonzero(wave)
    assert sounding[0] == round(s.contact * SR) and sounding[-1] < sounding[0] + 0.01 * SR


def test_captions_name_the_objects_and_the_sound():
    for s in scenes(60, 6):
        rng = np.random.default_rng(0)
        texts = {
            LEXICON.canonicalise(caption(s, rng, phrasing, noisy=False))
            for phrasing in ("train", "heldout")
            for _ in range(5)
        }
        assert len(texts) > 1 and caption(s) == caption(s)
        sound = {"bounce": "thud", "blink": "beep", "collide": "clack"}[s.kind]
        assert all(sound in t and (s.kind == "collide" or s.colour in t) for t in texts)
        assert sound not in s.video_caption() and sound in s.audio_caption()
        assert s.colour in s.video_caption() and s.colour not in s.audio_caption()


# --- the scorer -----------------------------------------------------------------------------


def test_bounce_impacts_are_exact_on_an_ideal_track():
    floor, g, hits = 12.0, 300.0, [0.31, 0.77, 1.14, 1.44]  # px, px / s^2, s

    def y(t: float, rest: bool) -> float:
        edges = [-hits[0], *hits, 2.2]  # the last hop ends after the clip
        if rest and t >= hits[-1]:
            return floor
        k = max(i for i in range(len(edges) - 1) if edges[i] <= t)
        return floor - g / 2 * (t - edges[k]) * (edges[k + 1] - t)

    for fps in (8.0, 12.0):
        t = np.arange(round(2 * fps)) / fps
        for rest in (True, False):
            found = bounce_impacts(t, np.array([y(x, rest) for x in t]), 16)
            assert np.allclose(found, hits, atol=1e-5), (fps, rest, found)


@pytest.mark.parametrize("fps", [8.0, 12.0])
def test_visual_events_match_the_truth_from_pixels_alone(fps):
    tested = dict.fromkeys(KINDS, 0)
    for s in scenes(45, 8):
        found, truth = (
            visual_events(render_video(s, round(2 * fps), fps, 16), fps, s.kind),
            event_times(s),
        )
        assert len(found) == len(truth), (s, found, truth)
        error = np.abs(np.array(found) - truth)
        limit = {"bounce": 0.020, "blink": 0.5 / fps + 1e-9, "collide": 0.5 / 8}[s.kind]
        assert error.max() <= limit, (s, found, truth)
        tested[s.kind] += len(truth)
    assert min(tested.values()) >= 10
    blank = np.zeros((16, 16, 16, 3), np.uint8)
    assert all(visual_events(blank, 8.0, kind) == [] for kind in KINDS)


def test_audio_onsets_find_every_sound_within_10_ms(clips):
    hiss = np.random.default_rng(0).normal(0, 0.002, 32_000).astype(np.float32)  # -54 dBFS
    for k, (s, _, wave) in enumerate(clips):
        truth = event_times(s)
        for x in (wave, wave + hiss) if k < 30 else (wave,):  # a noise floor, as generated
            found = audio_onsets(x)
            assert len(found) == len(truth) and np.abs(np.array(found) - truth).max() <= 0.010
    assert audio_onsets(torch.zeros(SR)) == []


def test_audio_onsets_survive_the_mel_codec_within_20_ms(clips):
    codec = MelCodec(n_mels=64, frames_per_token=4)
    picked = [c for k in KINDS for c in [c for c in clips if c[0].kind == k][:2]]
    waves = torch.from_numpy(np.stack([w for _, _, w in picked]))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # Griffin-Lim's small FFTs crawl on two busy threads
    try:
        decoded = codec.decode(codec.encode(waves), waves.shape[1])
    finally:
        torch.set_num_threads(threads)
    for (s, _, _), wave in zip(picked, decoded, strict=True):
        found, truth = audio_onsets(wave), event_times(s)
        assert len(found) == len(truth) and np.abs(np.array(found) - truth).max() <= 0.020


def test_sync_reports_offsets_and_counts():
    out = sync([0.1, 0.5], [0.12, 0.45, 0.9], 0.125)
    assert np.allclose(out["offsets"], [0.02, -0.05]) and out["median_ms"] == pytest.approx(35)
    assert out["within_frame"] == 1.0 and not out["counts_agree"]
    assert sync([0.1], [0.4], 0.125)["within_frame"] == 0.0
    assert sync([0.1], [], 0.125)["offsets"] == [math.inf]
    summary = summarise_av([out, sync([0.3], [0.3], 0.125)])
    assert summary == {
        "median_ms": pytest.approx(20),
        "within_frame_pct": 100.0,
        "counts_agree_pct": 50.0,
    }


def test_real_pairs_are_in_sync_and_shuffled_pairs_are_not(clips):
    results = [score_av(frames, wave, 8.0, s) for s, frames, wave in clips]
    real = summarise_av(results)
    assert real["median_ms"] <= 20 and real["within_frame_pct"] == 100.0
    assert real["counts_agree_pct"] >= 95
    assert real["visual_count_pct"] >= 95 and real["audio_count_pct"] >= 95
    pairs = [(visual_events(f, 8.0, s.kind), audio_onsets(w)) for s, f, w in clips]
    chance = summarise_av(shuffled(pairs, 1 / 8))
    print(f"real {real}\nshuffled {chance}")
    assert chance["within_frame_pct"] < 60 and chance["median_ms"] > 3 * real["median_ms"]

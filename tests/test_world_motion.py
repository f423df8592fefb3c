import dataclasses
import re

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from training.world.motion import (
    BACKGROUNDS,
    COLOURS,
    DIRECTIONS,
    HELDOUT_PAIRS,
    LEXICON,
    MOTIONS,
    RESIZE,
    RESTITUTION,
    SHAPES,
    SIZES,
    SPEEDS,
    Clip,
    MotionDataset,
    caption,
    collate,
    draw_frame,
    impact_times,
    is_heldout,
    render_clip,
    sample_clip,
    trajectory,
)
from training.world.score_motion import KEYS, impact_frames_from_video, score_clip, summarise_motion
from training.world.shapes import MARGIN, Obj, Scene, render

BASE = Clip("circle", "red", "small", "black", "left", "slow", (0.6, 0.5))


def clips(n: int, seed: int, split: str = "train") -> list[Clip]:
    return [sample_clip(np.random.default_rng([seed, i]), split) for i in range(n)]


def every_motion(seed: int) -> list[Clip]:
    """The first sampled clip of each (motion, speed), both splits."""
    out: dict[tuple, Clip] = {}
    for c in clips(200, seed) + clips(40, seed, "heldout"):
        out.setdefault((c.motion, c.speed), c)
    assert {m for m, _ in out} == set(MOTIONS)
    return list(out.values())


def test_same_seed_same_clip_video_and_caption():
    for i in range(10):
        a, b = np.random.default_rng([5, i]), np.random.default_rng([5, i])
        ca, cb = sample_clip(a, "heldout"), sample_clip(b, "heldout")
        assert ca == cb and caption(ca, a) == caption(cb, b)
        assert np.array_equal(render_clip(ca), render_clip(cb))


def test_dataset_regenerates_each_index_exactly():
    ds, again = MotionDataset(6, seed=3), MotionDataset(6, seed=3)
    for i in (0, 5):
        x, y = ds[i], again[i]
        assert torch.equal(x["video"], y["video"]) and x["caption"] == y["caption"]
        assert x["video"].shape == (8, 3, 24, 24)
        assert x["video"].min() >= -1.0 and x["video"].max() <= 1.0
        frames = torch.from_numpy(render_clip(x["clip"])).permute(0, 3, 1, 2) / 127.5 - 1
        assert torch.allclose(x["video"], frames)
    assert not torch.equal(ds[0]["video"], MotionDataset(6, seed=4)[0]["video"])
    batch = next(iter(DataLoader(ds, batch_size=3, collate_fn=collate)))
    assert batch["video"].shape == (3, 8, 3, 24, 24) and len(batch["clip"]) == 3
    long = MotionDataset(2, frames=12, fps=12.0, size=32)[1]
    assert long["video"].shape == (12, 3, 32, 32) and long["clip"].seconds == 1.0


def test_heldout_pairs_never_in_train_and_always_in_heldout():
    assert {s for s, _ in HELDOUT_PAIRS} == set(SHAPES)  # every shape is still trained on
    train = clips(1500, 0)
    assert not any(is_heldout(c) for c in train)
    pairs = {(c.shape, c.motion) for c in train}
    assert pairs == {(s, m) for s in SHAPES for m in MOTIONS} - HELDOUT_PAIRS
    held = clips(200, 1, "heldout")
    assert all(is_heldout(c) for c in held)
    assert {(c.shape, c.motion) for c in held} == HELDOUT_PAIRS


def test_clips_are_varied_balanced_and_stay_inside_the_canvas():
    sample = clips(800, 2)
    directional = sum(c.motion in DIRECTIONS for c in sample) / len(sample)
    assert 0.45 <= directional <= 0.55  # direction is the main metric
    assert {c.background for c in sample} == set(BACKGROUNDS)
    assert {c.colour for c in sample} == set(COLOURS)
    assert {c.size for c in sample if c.motion in DIRECTIONS} == set(SIZES)
    assert {c.speed for c in sample if c.motion in DIRECTIONS} == set(SPEEDS)
    times = np.linspace(0, 1, 41)
    for c in sample[:200]:
        assert c.background not in (c.colour, c.colour_to)
        for s in trajectory(c, times, size=1):
            r = s.diameter / 2 - 1e-9
            assert min(s.cx, s.cy) - r >= MARGIN and max(s.cx, s.cy) + r <= 1 - MARGIN


@pytest.mark.parametrize(
    ("field", "changes"),
    [
        ("shape", {"shape": "hexagon"}),
        ("colour", {"colour": "pink"}),
        ("size", {"size": "huge"}),
        ("background", {"background": "pink"}),
        ("background", {"background": "black", "colour": "black"}),
        ("motion", {"motion": "spin"}),
        ("speed", {"speed": "medium"}),
        ("speed", {"speed": None}),
        ("speed", {"motion": "change colour", "colour_to": "blue"}),
        ("colour_to", {"colour_to": "blue"}),
        ("colour_to", {"motion": "change colour", "speed": None}),
        ("colour_to", {"motion": "change colour", "speed": None, "colour_to": "red"}),
        ("size", {"motion": "grow", "speed": None, "size": "large"}),
        ("seconds", {"seconds": 0.0}),
        ("start", {"start": (0.3, 0.5)}),  # 0.25 canvas left of 0.3 is past the edge
        ("start", {"start": (0.5, 0.02)}),
        ("start", {"motion": "bounce", "start": (0.5, 0.9)}),  # below the floor
    ],
)
def test_invalid_clips_are_refused_naming_the_field(field, changes):
    with pytest.raises(ValueError, match=rf"^{field}="):
        dataclasses.replace(BASE, **changes)


def test_captions_follow_the_examples():
    assert caption(BASE) == "a red circle moving left slowly"
    grow = Clip("triangle", "green", "small", "black", "grow", None, (0.5, 0.5))
    assert caption(grow) == "a green triangle growing"
    change = Clip("diamond", "white", "small", "black", "change colour", None, (0.5, 0.5), "orange")
    assert caption(change) == "a white diamond changing from white to orange"
    orange = dataclasses.replace(BASE, colour="orange", motion="up", speed="fast", start=(0.5, 0.8))
    assert caption(orange) == "an orange circle moving up fast"


def test_every_caption_names_colour_shape_motion_and_speed():
    stems = {m: m for m in DIRECTIONS} | {"grow": "grow", "shrink": "shrink", "bounce": "bounc"}
    rng = np.random.default_rng(0)
    for c in clips(300, 4) + clips(50, 5, "heldout"):
        phrasings = ("train", "heldout") * 4
        texts = {caption(c)} | {caption(c, rng, p, noisy=False) for p in phrasings}
        for text in map(LEXICON.canonicalise, texts):
            words = set(re.findall(r"[a-z]+", text))
            assert {c.colour, c.shape} <= words, text
            assert stems.get(c.motion, "chang") in text, text
            if c.speed:
                assert (c.speed if c.speed == "fast" else "slow") in text, text
            if c.colour_to:
                assert c.colour_to in words, text
            if c.motion not in RESIZE:  # a size word, where said, is the true one
                assert words & set(SIZES) <= {c.size}, text


def test_motion_is_in_seconds_not_frames():
    for c in every_motion(6):
        at8, at16 = render_clip(c, 8, 8.0), render_clip(c, 16, 16.0)
        assert np.array_equal(at8, at16[::2]), c.motion
        assert len({f.tobytes() for f in at8}) > 1  # something happens
    c = dataclasses.replace(BASE, motion="down", speed="fast", start=(0.5, 0.2))
    s = trajectory(c, np.array([0.0, 0.5]), size=100)
    assert (s[1].cx, s[1].cy - s[0].cy) == (50.0, pytest.approx(25.0))  # 0.5 canvas/s for 0.5 s
    grow = Clip("square", "red", "small", "black", "grow", None, (0.5, 0.5), seconds=2.0)
    sides = [s.diameter for s in trajectory(grow, np.array([0.0, 1.0, 2.0, 3.0]), size=1)]
    small, large = SIZES["small"], SIZES["large"]
    assert sides == pytest.approx([small, (small + large) / 2, large, large])
    change = dataclasses.replace(grow, motion="change colour", size="large", colour_to="blue")
    colours = [s.colour for s in trajectory(change, np.array([0.0, 0.99, 1.0, 1.5]))]
    assert colours == ["red", "red", "blue", "blue"]


def test_frames_are_drawn_as_the_shapes_world_draws_them():
    for c in clips(20, 7):
        if c.motion not in RESIZE:
            state = trajectory(c, np.array([0.3]), size=32)[0]
            obj = Obj(c.shape, state.colour, c.size, "centre")
            scene = Scene((obj,), c.background, None, ((state.cx / 32, state.cy / 32),))
            assert np.array_equal(draw_frame(c.shape, state, c.background, 32), render(scene))


def test_impact_times_are_where_the_ball_touches_the_floor():
    bounces = [c for c in clips(300, 8) if c.motion == "bounce"][:8]
    assert {c.speed for c in bounces} == set(SPEEDS)
    for c in bounces:
        taus = impact_times(c, seconds=10.0)
        hops = np.diff(taus)
        assert hops[1:] / hops[:-1] == pytest.approx(RESTITUTION)  # rebound speed falls by e
        lowest = [s.cy + s.diameter / 2 for s in trajectory(c, np.array(taus[:3]), size=1)]
        assert lowest == pytest.approx([1 - MARGIN] * 3)  # the box bottom is on the floor
        near = trajectory(c, np.array([t + d for t in taus[:3] for d in (-0.02, 0.02)]), size=1)
        assert all(s.cy + s.diameter / 2 < 1 - MARGIN - 1e-4 for s in near)
        assert impact_times(c) == [t for t in taus if t <= 1.0]
        seen = impact_frames_from_video(render_clip(c, 32, 32.0), 32.0)
        truth = impact_times(c, 31 / 32)  # the last frame's time
        assert all(any(abs(s - t) <= 1 / 32 for t in truth) for s in seen)
        shown = [t for t in truth if 1 / 32 <= t <= 30 / 32]  # between frames on both sides
        assert all(any(abs(s - t) <= 1 / 32 for s in seen) for t in shown) and shown
    assert impact_times(BASE) == []


@pytest.mark.parametrize(("frames", "fps", "size"), [(8, 8.0, 24), (12, 12.0, 32)])
def test_scorer_is_right_on_real_renders(frames, fps, size):
    results = []
    for c in clips(100, 9) + clips(100, 10, "heldout"):
        r = score_clip(render_clip(c, frames, fps, size), c, fps)
        assert (r["direction"] is None) == (c.motion not in DIRECTIONS)
        assert (r["growth"] is None) == (c.motion not in RESIZE)
        assert (r["bounce"] is None) == (c.motion != "bounce")
        results.append(r)
    summary = summarise_motion(results)
    assert set(summary) == set(KEYS)
    assert all(v == 100.0 for v in summary.values()), summary


def test_scorer_reads_dataset_tensors():
    ds = MotionDataset(8, seed=11)
    for i in range(len(ds)):
        item = ds[i]
        r = score_clip(item["video"], item["clip"], fps=8.0)
        assert all(v for v in r.values() if v is not None), (item["clip"], r)


def test_scorer_fails_on_wrong_videos():
    sample = clips(120, 12)
    directional = [c for c in sample if c.motion in DIRECTIONS][:30]
    for c in directional:  # backwards in time, or standing still
        video = render_clip(c)
        assert score_clip(video[::-1], c, 8.0)["direction"] is False
        still = score_clip(np.repeat(video[:1], 8, axis=0), c, 8.0)
        assert still["direction"] is False and still["speed"] is False
        assert score_clip(video.transpose(0, 2, 1, 3), c, 8.0)["direction"] is False  # x <-> y
        # A short `seconds` keeps the other speed valid from c's start; scoring ignores it.
        other = "fast" if c.speed == "slow" else "slow"
        other_speed = dataclasses.replace(c, speed=other, seconds=0.05)
        assert score_clip(video, other_speed, 8.0)["speed"] is False
    for c in [c for c in sample if c.motion in RESIZE][:6]:
        assert score_clip(render_clip(c)[::-1], c, 8.0)["growth"] is False
    for c in [c for c in sample if c.motion == "bounce"][:6]:
        video, other = render_clip(c), "fast" if c.speed == "slow" else "slow"
        assert score_clip(video, dataclasses.replace(c, speed=other), 8.0)["bounce"] is False
        assert score_clip(np.repeat(video[:1], 8, axis=0), c, 8.0)["bounce"] is False
    for c in sample[:20]:  # one frame of another colour, or another shape throughout
        video, state = render_clip(c), trajectory(c, np.array([3 / 8]))[0]
        other = next(k for k in COLOURS if k not in (c.background, c.colour, c.colour_to))
        video[3] = draw_frame(c.shape, dataclasses.replace(state, colour=other), c.background)
        assert score_clip(video, c, 8.0)["consistent"] is False
        reshaped = dataclasses.replace(c, shape=next(s for s in SHAPES if s != c.shape))
        assert score_clip(render_clip(c), reshaped, 8.0)["shape"] is False
    blank = np.zeros((8, 24, 24, 3), np.uint8)
    assert all(not any(score_clip(blank, c, 8.0).values()) for c in every_motion(13))


def test_change_colour_is_scored_by_quarters():
    c = Clip("square", "red", "medium", "grey", "change colour", None, (0.5, 0.5), "blue")
    video = render_clip(c)
    right = {"colour": True, "shape": True, "consistent": True}
    assert score_clip(video, c, 8.0) == dict.fromkeys(KEYS) | right
    swapped = dataclasses.replace(c, colour="blue", colour_to="red")
    assert score_clip(video, swapped, 8.0)["colour"] is False
    flicker = video[[0, 4, 0, 4, 0, 4, 0, 4]]
    assert score_clip(flicker, c, 8.0)["consistent"] is False


def test_summarise_motion_skips_none():
    results = [{"direction": True, "growth": None}, {"direction": False, "growth": True}]
    assert summarise_motion(results) == {"direction": 50.0, "growth": 100.0}


def test_canonical_phrasing_captions_the_same_clips_canonically():
    from training.world.motion import MotionDataset, caption

    free, canonical = MotionDataset(12, seed=3), MotionDataset(12, seed=3, phrasing="canonical")
    for i in range(12):
        a, b = free[i], canonical[i]
        assert a["clip"] == b["clip"] and torch.equal(a["video"], b["video"])
        assert b["caption"] == caption(b["clip"])
    assert any(free[i]["caption"] != canonical[i]["caption"] for i in range(12))
    with pytest.raises(ValueError, match="phrasing='held'"):
        MotionDataset(2, phrasing="held")

import dataclasses
import re

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from training.world.score_shapes import detect, score, summarise
from training.world.shapes import (
    BACKGROUNDS,
    COLOURS,
    HELDOUT_PAIRS,
    INVERSE,
    LEXICON,
    POSITIONS,
    RELATIONS,
    SHAPES,
    SIZES,
    Obj,
    Scene,
    ShapesDataset,
    caption,
    collate,
    geometry,
    is_heldout,
    make_scene,
    render,
    sample_scene,
)


def scenes(n: int, seed: int, split: str) -> list[Scene]:
    return [sample_scene(np.random.default_rng([seed, i]), split) for i in range(n)]


def test_same_seed_same_scene_image_and_caption():
    for i in range(20):
        a, b = np.random.default_rng([5, i]), np.random.default_rng([5, i])
        sa, sb = sample_scene(a, "heldout"), sample_scene(b, "heldout")
        assert sa == sb
        assert render(sa).tobytes() == render(sb).tobytes()
        assert caption(sa, a) == caption(sb, b)


def test_dataset_regenerates_each_index_exactly():
    ds, again = ShapesDataset(8, seed=3), ShapesDataset(8, seed=3)
    for i in (0, 5, 7):
        x, y = ds[i], again[i]
        assert torch.equal(x["image"], y["image"]) and x["caption"] == y["caption"]
        assert x["image"].shape == (3, 32, 32)
        assert x["image"].min() >= -1.0 and x["image"].max() <= 1.0
        expected = torch.from_numpy(render(x["scene"]).copy()).permute(2, 0, 1) / 127.5 - 1
        assert torch.allclose(x["image"], expected)
    assert not torch.equal(ds[0]["image"], ShapesDataset(8, seed=4)[0]["image"])
    batch = next(iter(DataLoader(ds, batch_size=4, collate_fn=collate)))
    assert batch["image"].shape == (4, 3, 32, 32) and len(batch["scene"]) == 4


def test_heldout_pairs_never_in_train_and_always_in_heldout():
    assert 0.10 <= len(HELDOUT_PAIRS) / (len(SHAPES) * len(COLOURS)) <= 0.15
    assert {s for s, _ in HELDOUT_PAIRS} == set(SHAPES)  # each shape is still seen in training
    train = scenes(2000, 0, "train")
    assert not any(is_heldout(s) for s in train)
    pairs = {(o.shape, o.colour) for s in train for o in s.objects}
    assert pairs == {(s, c) for s in SHAPES for c in COLOURS} - HELDOUT_PAIRS
    held = scenes(300, 1, "heldout")
    assert all(is_heldout(s) for s in held)
    assert {(o.shape, o.colour) for s in held for o in s.objects} >= HELDOUT_PAIRS


def test_scenes_are_valid_and_varied():
    sample = scenes(400, 2, "train")
    assert {len(s.objects) for s in sample} == {1, 2}
    assert {s.relation for s in sample} == {None, *RELATIONS}
    assert {s.background for s in sample} == set(BACKGROUNDS)
    assert {o.size for s in sample for o in s.objects} == set(SIZES)
    for s in sample:
        assert s.background not in {o.colour for o in s.objects}


def test_invalid_scenes_are_refused():
    red = Obj("circle", "red", "small", "left")
    with pytest.raises(ValueError, match="background"):
        Scene((dataclasses.replace(red, colour="white"),), "white")
    with pytest.raises(ValueError, match="differ"):
        Scene((red, dataclasses.replace(red, position="right")), "white", "left of")
    with pytest.raises(ValueError, match="positions"):
        Scene((red, Obj("square", "blue", "small", "top")), "white", "left of")
    with pytest.raises(ValueError, match="relation"):
        Scene((red,), "white", "above")
    with pytest.raises(ValueError, match="shape"):
        Obj("hexagon", "red", "small", "left")


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def test_captions_are_truthful():
    for i in range(300):
        rng = np.random.default_rng([9, i])
        s = sample_scene(rng, "train" if i % 2 else "heldout")
        phrasing = ("train", "heldout")[i % 3 == 0]
        text = LEXICON.canonicalise(caption(s, rng, phrasing, noisy=False))
        named = {o.colour for o in s.objects} | {s.background}
        assert words(text) & (set(COLOURS) | set(BACKGROUNDS)) <= named, text
        for o in s.objects:
            assert {o.shape, o.colour, o.size} <= words(text), text
        if len(s.objects) == 1:
            assert s.objects[0].position in words(text), text


def test_sizes_and_positions_are_distinct_at_32px():
    widths = []
    for size in SIZES:
        img = render(Scene((Obj("square", "red", size, "centre"),), "white"))
        cols = np.flatnonzero((np.abs(img.astype(int) - 245).sum(-1) > 120).any(0))
        widths.append(cols[-1] - cols[0] + 1)
    assert widths[0] + 3 <= widths[1] and widths[1] + 3 <= widths[2], widths
    anchors = np.array(list(POSITIONS.values())) * 32
    gaps = np.linalg.norm(anchors[:, None] - anchors[None], axis=-1)
    assert gaps[~np.eye(len(anchors), dtype=bool)].min() >= 7.5


def test_ground_truth_geometry_matches_the_render():
    for s in scenes(60, 4, "train"):
        found = detect(render(s), s.background)
        assert len(found) == len(s.objects)
        for g in geometry(s):  # every true centre is read back within a quarter pixel
            assert min(np.hypot(f.cx - g.cx, f.cy - g.cy) for f in found) < 0.25


def test_scorer_is_right_on_real_renders():
    results = [score(render(s), s) for split in ("train", "heldout") for s in scenes(200, 6, split)]
    accuracy = summarise(results)
    assert set(accuracy) == {"colour", "shape", "size", "position", "count", "relation", "both"}
    assert min(accuracy.values()) >= 99.0, accuracy


def test_scorer_reads_dataset_tensors():
    ds = ShapesDataset(20, seed=8, split="heldout")
    results = [score(ds[i]["image"], ds[i]["scene"]) for i in range(len(ds))]
    assert min(summarise(results).values()) == 100.0


def corrupt(scene: Scene, attribute: str, rng: np.random.Generator) -> Scene:
    """The same scene with `attribute` of one object (or the count) changed."""
    objs = list(scene.objects)
    k = int(rng.integers(len(objs)))
    other = {(o.shape, o.colour) for j, o in enumerate(objs) if j != k}
    if attribute == "count":
        if len(objs) == 2:
            return Scene((objs[0],), scene.background, None, scene.centres[:1])
        while len(scene.objects) == 1:
            scene = sample_scene(rng)
        return scene
    if attribute == "position" and scene.relation:
        relation = INVERSE[scene.relation]
        objs = [
            dataclasses.replace(o, position=p)
            for o, p in zip(objs, RELATIONS[relation], strict=True)
        ]
        return make_scene(tuple(objs), scene.background, relation, rng)
    choices = {
        "colour": [c for c in COLOURS if c != scene.background],
        "shape": SHAPES,
        "size": SIZES,
        "position": POSITIONS,
    }[attribute]
    options = [v for v in choices if v != getattr(objs[k], attribute)]
    while True:
        changed = dataclasses.replace(objs[k], **{attribute: options[rng.integers(len(options))]})
        if (changed.shape, changed.colour) not in other:
            break
    objs[k] = changed
    if attribute in ("colour", "shape"):  # same layout, only the drawing changes
        return dataclasses.replace(scene, objects=tuple(objs))
    return make_scene(tuple(objs), scene.background, scene.relation, rng)


@pytest.mark.parametrize("attribute", ["colour", "shape", "size", "position", "count"])
def test_scorer_fails_on_wrong_renders(attribute):
    rng = np.random.default_rng(10)
    wrong = []
    for split in ("train", "heldout"):
        for s in scenes(80, 12, split):
            wrong.append(not score(render(corrupt(s, attribute, rng)), s)[attribute])
    assert np.mean(wrong) >= 0.95, np.mean(wrong)


def test_blank_and_noise_images_hold_no_objects():
    s = Scene((Obj("circle", "red", "large", "centre"),), "white")
    noise = [
        np.random.default_rng(k).integers(0, 256, (32, 32, 3), dtype=np.uint8) for k in range(5)
    ]
    for img in [np.full((32, 32, 3), 245, np.uint8), *noise]:
        assert detect(img) == []
        assert not any(score(img, s).values())

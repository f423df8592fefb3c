"""A procedural image world: coloured shapes on plain backgrounds, with exact ground truth.

Every image comes from a `Scene` that names its attributes, so a text-to-image model trained
on it can be scored attribute by attribute (see `score_shapes.py`), and a held-out set of
(shape, colour) pairs measures compositional generalisation: the model has seen every shape
and every colour, but never these pairs together.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image, ImageDraw

from .base import SPLITS, WorldDataset, to_tensor

SHAPES = ("circle", "square", "triangle", "diamond", "cross")

# Saturated and far apart in RGB, so the nearest named colour survives blur and model error.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 30, 30),
    "green": (30, 175, 45),
    "blue": (35, 70, 230),
    "yellow": (245, 225, 30),
    "purple": (145, 40, 185),
    "orange": (250, 135, 10),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
}
# "grey" is background only; white and black double as backgrounds when no object uses them.
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": COLOURS["white"],
    "black": COLOURS["black"],
    "grey": (128, 128, 128),
}

# Bounding-box side as a fraction of the canvas: about 6, 10 and 13.5 px at 32x32. "large"
# stops at 0.42 so two large objects side by side still leave GAP between them.
SIZES: dict[str, float] = {"small": 0.19, "medium": 0.31, "large": 0.42}

# Anchor centres (x, y) as fractions of the canvas; y grows downwards.
POSITIONS: dict[str, tuple[float, float]] = {
    "left": (0.25, 0.5),
    "right": (0.75, 0.5),
    "top": (0.5, 0.25),
    "bottom": (0.5, 0.75),
    "centre": (0.5, 0.5),
}

# Scene.objects[0] <relation> Scene.objects[1]; the relation fixes both positions.
RELATIONS: dict[str, tuple[str, str]] = {
    "left of": ("left", "right"),
    "right of": ("right", "left"),
    "above": ("top", "bottom"),
    "below": ("bottom", "top"),
}
INVERSE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}

# One pair per shape and five distinct colours (5 of 40 pairs, 12.5%): every shape and every
# colour is still seen in training, only these combinations are not.
HELDOUT_PAIRS: frozenset[tuple[str, str]] = frozenset(
    {
        ("triangle", "red"),
        ("cross", "blue"),
        ("circle", "green"),
        ("square", "yellow"),
        ("diamond", "purple"),
    }
)

JITTER = 0.05  # max centre offset from the anchor, fraction of the canvas (1.6 px at 32)
MARGIN = 0.04  # min gap between an object's box and the canvas edge (1.3 px at 32)
GAP = 0.08  # min gap between the two objects' boxes (2.6 px at 32): no merging after blur
EPS = 1e-9  # the anchors sit exactly on these limits for large objects


def check_choices(*checks: tuple[str, object, object]) -> None:
    """Each (field name, value, allowed values): a ValueError naming the field and the
    choices for the first value that is not allowed."""
    for name, value, allowed in checks:
        if value not in allowed:
            raise ValueError(f"{name}={value!r}; choose one of {list(allowed)}")


@dataclass(frozen=True)
class Obj:
    shape: str
    colour: str
    size: str
    position: str

    def __post_init__(self) -> None:
        check_choices(
            ("shape", self.shape, SHAPES),
            ("colour", self.colour, COLOURS),
            ("size", self.size, SIZES),
            ("position", self.position, POSITIONS),
        )


@dataclass(frozen=True)
class Scene:
    """One or two objects; `centres` are exact (x, y) canvas fractions, empty = anchors."""

    objects: tuple[Obj, ...]
    background: str
    relation: str | None = None
    centres: tuple[tuple[float, float], ...] = field(default=())

    def __post_init__(self) -> None:
        if len(self.objects) not in (1, 2):
            raise ValueError(f"a scene holds 1 or 2 objects, got {len(self.objects)}")
        if self.background not in BACKGROUNDS:
            raise ValueError(f"background={self.background!r}; choose one of {list(BACKGROUNDS)}")
        if self.background in {o.colour for o in self.objects}:
            raise ValueError(f"background {self.background!r} equals an object's colour")
        if self.centres and len(self.centres) != len(self.objects):
            raise ValueError("give one centre per object, or none to use the anchors")
        if len(self.objects) == 1:
            if self.relation is not None:
                raise ValueError("a one-object scene has no relation")
            return
        if self.relation not in RELATIONS:
            raise ValueError(f"relation={self.relation!r}; choose one of {list(RELATIONS)}")
        if tuple(o.position for o in self.objects) != RELATIONS[self.relation]:
            raise ValueError(f"positions must be {RELATIONS[self.relation]} for {self.relation!r}")
        a, b = self.objects
        if (a.shape, a.colour) == (b.shape, b.colour):
            raise ValueError("the two objects must differ in shape or colour")


@dataclass(frozen=True)
class Geometry:
    """Ground truth of one object in pixels: box centre and box side (the diameter)."""

    cx: float
    cy: float
    diameter: float


def geometry(scene: Scene, size: int = 32) -> tuple[Geometry, ...]:
    centres = scene.centres or tuple(POSITIONS[o.position] for o in scene.objects)
    return tuple(
        Geometry(x * size, y * size, SIZES[o.size] * size)
        for o, (x, y) in zip(scene.objects, centres, strict=True)
    )


def is_heldout(scene: Scene) -> bool:
    return any((o.shape, o.colour) in HELDOUT_PAIRS for o in scene.objects)


def _fits(objects: tuple[Obj, ...], centres: list[tuple[float, float]]) -> bool:
    """Inside the canvas with MARGIN, and (for two) separated by GAP along some axis."""
    boxes = []
    for o, (x, y) in zip(objects, centres, strict=True):
        r = SIZES[o.size] / 2
        if min(x, y) - r < MARGIN - EPS or max(x, y) + r > 1 - MARGIN + EPS:
            return False
        boxes.append((x - r, y - r, x + r, y + r))
    if len(boxes) == 2:
        (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = boxes
        gap = max(bx0 - ax1, ax0 - bx1, by0 - ay1, ay0 - by1)
        return gap >= GAP - EPS
    return True


def make_scene(
    objects: tuple[Obj, ...], background: str, relation: str | None, rng: np.random.Generator
) -> Scene:
    """Place objects near their anchors with random jitter; falls back to the anchors."""
    anchors = [POSITIONS[o.position] for o in objects]
    for _ in range(20):
        jitter = rng.uniform(-JITTER, JITTER, size=(len(objects), 2))
        centres = [(x + dx, y + dy) for (x, y), (dx, dy) in zip(anchors, jitter, strict=True)]
        if _fits(objects, centres):
            break
    else:  # large objects near an edge rarely fit jittered: the anchors always fit
        centres = anchors
    centres = [(round(float(x), 4), round(float(y), 4)) for x, y in centres]
    return Scene(tuple(objects), background, relation, tuple(centres))


def _pick(rng: np.random.Generator, options) -> str:
    options = list(options)
    return options[int(rng.integers(len(options)))]


def sample_scene(rng: np.random.Generator, split: str = "train") -> Scene:
    """A random scene; "train" never shows a HELDOUT_PAIRS pair, "heldout" always shows one."""
    if split not in SPLITS:
        raise ValueError(f"split={split!r}; choose one of {SPLITS}")
    n = 1 + int(rng.integers(2))
    all_pairs = [(s, c) for s in SHAPES for c in COLOURS]
    train_pairs = [p for p in all_pairs if p not in HELDOUT_PAIRS]
    pairs: list[tuple[str, str]] = []
    forced = int(rng.integers(n)) if split == "heldout" else -1
    for i in range(n):
        if i == forced:
            pool = sorted(HELDOUT_PAIRS)
        else:  # a heldout scene's other object may be any pair
            pool = all_pairs if split == "heldout" else train_pairs
        pairs.append(_pick(rng, [p for p in pool if p not in pairs]))
    relation = _pick(rng, RELATIONS) if n == 2 else None
    positions = RELATIONS[relation] if relation else (_pick(rng, POSITIONS),)
    objects = tuple(
        Obj(s, c, _pick(rng, SIZES), pos) for (s, c), pos in zip(pairs, positions, strict=True)
    )
    background = _pick(rng, [b for b in BACKGROUNDS if b not in {c for _, c in pairs}])
    return make_scene(objects, background, relation, rng)


# --- captions -------------------------------------------------------------------------------

PLACE = {
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "centre": "in the centre",
}
RELATION_WORDS = {"left of": "to the left of", "right of": "to the right of"} | {
    r: r for r in ("above", "below")
}
_SINGLE = (
    "a {size} {colour} {shape} {place}",
    "a {colour} {shape}, {size}, {place} on a {bg} background",
    "{Place}: a {size} {colour} {shape}",
    "a {size} {shape} coloured {colour}, {place}",
    "{size} {colour} {shape} {place}, {bg} background",
)
_DOUBLE = (
    "a {a} {rel} a {b}",
    "a {a} {rel} a {b} on a {bg} background",
    "{bg} background, a {a} {rel} a {b}",
)


def caption(scene: Scene, rng: np.random.Generator | None = None) -> str:
    """A truthful description in one of several phrasings (the first when rng is None).

    Every phrasing names every scored attribute: shape, colour, size, and place or relation.
    """
    pick = 0 if rng is None else None
    if len(scene.objects) == 1:
        o = scene.objects[0]
        template = _SINGLE[pick if pick is not None else int(rng.integers(len(_SINGLE)))]
        place = PLACE[o.position]
        return template.format(
            size=o.size,
            colour=o.colour,
            shape=o.shape,
            place=place,
            Place=place[0].upper() + place[1:],
            bg=scene.background,
        )
    a, b = scene.objects
    relation = scene.relation
    if rng is not None and rng.random() < 0.5:  # "B below A" says the same as "A above B"
        a, b, relation = b, a, INVERSE[relation]
    template = _DOUBLE[pick if pick is not None else int(rng.integers(len(_DOUBLE)))]
    return template.format(
        a=f"{a.size} {a.colour} {a.shape}",
        b=f"{b.size} {b.colour} {b.shape}",
        rel=RELATION_WORDS[relation],
        bg=scene.background,
    )


# --- rendering ------------------------------------------------------------------------------


def _draw(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, d: float, fill) -> None:
    """Draw one shape filling the d x d box centred at (cx, cy), in supersampled pixels."""
    r = d / 2
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=fill)
    elif shape == "diamond":
        draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill)
    elif shape == "cross":
        w = r / 3
        draw.rectangle([cx - r, cy - w, cx + r, cy + w], fill=fill)
        draw.rectangle([cx - w, cy - r, cx + w, cy + r], fill=fill)
    else:
        raise ValueError(f"shape={shape!r}; choose one of {SHAPES}")


def _to_supersampled(g: Geometry, ss: int) -> tuple[float, float, float]:
    # PIL's pixel i covers [i, i + 1): a continuous coordinate u maps to u * ss - 0.5.
    return g.cx * ss - 0.5, g.cy * ss - 0.5, g.diameter * ss


def render(scene: Scene, size: int = 32, supersample: int = 4) -> np.ndarray:
    """The scene as an anti-aliased uint8 image (size, size, 3): drawn big, box-downsampled."""
    big = Image.new("RGB", (size * supersample,) * 2, BACKGROUNDS[scene.background])
    draw = ImageDraw.Draw(big)
    for o, g in zip(scene.objects, geometry(scene, size), strict=True):
        _draw(draw, o.shape, *_to_supersampled(g, supersample), fill=COLOURS[o.colour])
    return np.asarray(big.resize((size, size), Image.BOX))


def coverage(shape: str, g: Geometry, size: int = 32, supersample: int = 4) -> np.ndarray:
    """Fraction of each pixel the shape covers, float32 (size, size) in [0, 1]: the same
    drawing as `render`, so a clean render's alpha matches it exactly (used by the scorer)."""
    big = Image.new("L", (size * supersample,) * 2, 0)
    _draw(ImageDraw.Draw(big), shape, *_to_supersampled(g, supersample), fill=255)
    return np.asarray(big.resize((size, size), Image.BOX), dtype=np.float32) / 255.0


# --- dataset --------------------------------------------------------------------------------


class ShapesDataset(WorldDataset):
    """n scenes regenerated exactly from (seed, index): nothing is stored on disk."""

    def __init__(self, n: int, seed: int = 0, size: int = 32, split: str = "train") -> None:
        super().__init__(n, seed, split)
        self.size = size

    def make(self, rng: np.random.Generator) -> dict:
        scene = sample_scene(rng, self.split)
        image = to_tensor(render(scene, self.size))  # (3, H, W) in [-1, 1]
        return {"image": image, "caption": caption(scene, rng), "scene": scene}


def collate(batch: list[dict]) -> dict:
    """Stack images; keep captions and scenes as lists (the default collate rejects Scene)."""
    return {
        "image": torch.stack([b["image"] for b in batch]),
        "caption": [b["caption"] for b in batch],
        "scene": [b["scene"] for b in batch],
    }

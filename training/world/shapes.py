"""A procedural image world: coloured shapes on plain backgrounds, with exact ground truth.

Every image comes from a `Scene` that names its attributes, so a text-to-image model trained
on it can be scored attribute by attribute (see `score_shapes.py`), and a held-out set of
(shape, colour) pairs measures compositional generalisation: the model has seen every shape
and every colour, but never these pairs together.

Captions (`caption`, the grammar of `grammar.py`): `SINGLE` and `DOUBLE` sentence forms over
noun phrases (`NOUN_PHRASES`) and place phrases (`PLACES`), optionally framed (`FRAMES`), with
the words of `LEXICON`. Held out, for evaluation only: the second tuple of each `Words` and
`Forms` ("big", "little", "disc", "plus sign", "rhombus", "crimson", "upper", "left-hand",
"two shapes: A (left) and B (right)", "we see ...", ...). The canonical caption is the first
form of earlier rounds (`legacy_caption`), which the bundled model was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image, ImageDraw

from .base import SPLITS, WorldDataset, to_tensor
from .grammar import Forms, Lexicon, Words, check_phrasing, finish, frame, vocabulary

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
# The grammar (see grammar.py): concepts with train / held-out words, forms with train /
# held-out templates. Slots: {np} an object's noun phrase, {place} a place phrase, {bg} the
# background colour, {a} {b} the objects of a two-object scene, {rel} their relation.

LEXICON = Lexicon(
    {
        "circle": Words(("circle", "disk"), ("disc",)),
        "square": Words(("square", "box"), ("block",)),
        "triangle": Words(("triangle",), ("triangular shape",)),
        "diamond": Words(("diamond", "lozenge"), ("rhombus",)),
        "cross": Words(("cross", "plus"), ("plus sign",)),
        "red": Words(("red", "scarlet"), ("crimson",)),
        "green": Words(("green",), ("emerald",)),
        "blue": Words(("blue",), ("cobalt",)),
        "yellow": Words(("yellow",), ("lemon",)),
        "purple": Words(("purple", "violet"), ("magenta",)),
        "orange": Words(("orange",), ("amber",)),
        "white": Words(("white",), ("snow-white",)),
        "black": Words(("black",), ("jet-black",)),
        "grey": Words(("grey", "gray"), ("silver",)),
        "small": Words(("small", "tiny"), ("little",)),
        "medium": Words(("medium", "medium-sized"), ("mid-sized",)),
        "large": Words(("large", "huge"), ("big",)),
        "left": Words(("left",), ("left-hand",)),
        "right": Words(("right",), ("right-hand",)),
        "top": Words(("top",), ("upper",)),
        "bottom": Words(("bottom",), ("lower",)),
        "centre": Words(("centre", "center"), ("middle",)),
        "background": Words(("background",), ("backdrop",)),
        "left of": Words(("to the left of", "left of"), ("further left than",)),
        "right of": Words(("to the right of", "right of"), ("further right than",)),
        "above": Words(("above", "over"), ("higher than",)),
        "below": Words(("below", "under"), ("beneath",)),
    }
)
# {w}: the place's word. Edges read "top edge"; sides "left side"; the centre neither.
PLACES = {
    "side": Forms(
        ("on the {w}", "at the {w}", "on the {w} side", "{w}"),
        ("towards the {w} side", "near the {w} edge", "on the {w} side of the picture"),
    ),
    "edge": Forms(
        ("at the {w}", "at the {w} edge", "{w}", "along the {w}"),
        ("near the {w} edge", "towards the {w} edge", "in the {w} part"),
    ),
    "centre": Forms(
        ("in the {w}", "at the {w}", "{w}", "at the very {w}"),
        ("in the {w} of the picture", "near the {w}"),
    ),
}
PLACE_KIND = {"left": "side", "right": "side", "top": "edge", "bottom": "edge", "centre": "centre"}
# An object's noun phrase, without an article.
NOUN_PHRASES = Forms(
    (
        "{size} {colour} {shape}",
        "{colour} {size} {shape}",
        "{size} {shape} coloured {colour}",
        "{size} {colour}-coloured {shape}",
        "{colour} {shape} which is {size}",
        "{shape} in {colour}, {size}",
        "{colour} {shape} ({size})",
    ),
    ("{colour} {shape} that is {size}", "{size}, {colour} {shape}"),
)
SINGLE = Forms(
    (
        "a {np} {place}",  # canonical: the form of earlier rounds
        "a {colour} {shape}, {size}, {place} on a {bg} {background}",
        "{Place}: a {np}",
        "a {size} {shape} coloured {colour}, {place}",
        "{np} {place}, {bg} {background}",
        "there is a {np} {place}",
        "{place}, a {np}",
        "{place} there is a {np}",
        "a {np} {place} on a {bg} {background}",
        "{colour} {shape}, {size}, {place}",
        "{shape}, {size} and {colour}, {place}",
        "a {np} sitting {place}",
        "one {np}, {place}",
        "{np}, which sits {place}",
        "here is a {np} {place}",
        "{Place} is a {np}",
        "a {np} ({place})",
        "a {np} drawn {place} on a {bg} {background}",
    ),
    (
        "{shape}: {colour}, {size}, {place}",
        "a {np} which is {place}",
        "{place} you can see a {np}",
        "a {np} placed {place} against a {bg} {background}",
        "we see a {np} {place}",
    ),
)
DOUBLE = Forms(
    (
        "a {a} {rel} a {b}",  # canonical
        "a {a} {rel} a {b} on a {bg} {background}",
        "{bg} {background}, a {a} {rel} a {b}",
        "there is a {a} {rel} a {b}",
        "a {a} {pa} and a {b} {pb}",
        "{pa} a {a}, {pb} a {b}",
        "two shapes, a {a} {rel} a {b}",
        "a {a} and a {b}, the first {rel} the second",
        "{a} {pa}, {b} {pb}",
        "a {a} placed {rel} a {b}",
        "{a} ({pa}) and {b} ({pb})",
        "there are two shapes: a {a} {pa} and a {b} {pb}",
        "a {a} sitting {rel} a {b}",
        "{pa} a {a} and {pb} a {b}",
    ),
    (
        "two shapes: {a} ({pa}) and {b} ({pb})",
        "{pa} is a {a} and {pb} is a {b}",
        "there are two objects, a {a} {pa} and a {b} {pb}",
        "we see a {a} sitting {rel} a {b}",
    ),
)
FRAMES = Forms(
    (
        "a picture of {}",
        "an image of {}",
        "please draw {}",
        "draw {}",
        "a drawing of {}",
        "a photo of {}",
    ),
    ("i would like {}", "can you make {}", "generate {}", "show me {}"),
)
FORMS = (SINGLE, DOUBLE, NOUN_PHRASES, FRAMES, *PLACES.values())
# What earlier rounds trained on (the teacher of a re-captioned fine-tune reads these; the
# LoRA folder swaps a stand-in colour word and needs its canonical word). Same order as then.
LEGACY_SINGLE = (
    "a {size} {colour} {shape} {place}",
    "a {colour} {shape}, {size}, {place} on a {bg} background",
    "{Place}: a {size} {colour} {shape}",
    "a {size} {shape} coloured {colour}, {place}",
    "{size} {colour} {shape} {place}, {bg} background",
)
LEGACY_DOUBLE = (
    "a {a} {rel} a {b}",
    "a {a} {rel} a {b} on a {bg} background",
    "{bg} background, a {a} {rel} a {b}",
)
LEGACY_PLACE = {
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "centre": "in the centre",
}
LEGACY_RELATION = {"left of": "to the left of", "right of": "to the right of"} | {
    r: r for r in ("above", "below")
}


def _place(position: str, phrasing: str, rng: np.random.Generator | None) -> str:
    w = LEXICON.word(position, phrasing, rng)
    return PLACES[PLACE_KIND[position]].pick(phrasing, rng).format(w=w)


def _noun_phrase(o: Obj, phrasing: str, rng: np.random.Generator | None) -> str:
    return NOUN_PHRASES.pick(phrasing, rng).format(**_words(o, phrasing, rng))


def _words(o: Obj, phrasing: str, rng: np.random.Generator | None) -> dict[str, str]:
    return {k: LEXICON.word(getattr(o, k), phrasing, rng) for k in ("size", "colour", "shape")}


def legacy_caption(scene: Scene, rng: np.random.Generator | None = None) -> str:
    """A caption in the templates of earlier rounds (the first when rng is None)."""
    if len(scene.objects) == 1:
        o = scene.objects[0]
        template = LEGACY_SINGLE[0 if rng is None else int(rng.integers(len(LEGACY_SINGLE)))]
        place = LEGACY_PLACE[o.position]
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
    template = LEGACY_DOUBLE[0 if rng is None else int(rng.integers(len(LEGACY_DOUBLE)))]
    return template.format(
        a=f"{a.size} {a.colour} {a.shape}",
        b=f"{b.size} {b.colour} {b.shape}",
        rel=LEGACY_RELATION[relation],
        bg=scene.background,
    )


def caption(
    scene: Scene,
    rng: np.random.Generator | None = None,
    phrasing: str = "train",
    noisy: bool = True,
) -> str:
    """A truthful description of the scene in one phrasing of the grammar (``grammar.py``).

    Without an rng, or with ``phrasing="canonical"``, the canonical caption (deterministic).
    Every phrasing names every scored attribute: shape, colour, size, and place or relation.
    """
    check_phrasing(phrasing)
    if rng is None:
        phrasing = "canonical"
    if phrasing == "canonical":
        return legacy_caption(scene)
    bg = LEXICON.word(scene.background, phrasing, rng)
    background = LEXICON.word("background", phrasing, rng)
    if len(scene.objects) == 1:
        o = scene.objects[0]
        place = _place(o.position, phrasing, rng)
        text = SINGLE.pick(phrasing, rng).format(
            np=_noun_phrase(o, phrasing, rng),
            place=place,
            Place=place[:1].upper() + place[1:],
            bg=bg,
            background=background,
            **_words(o, phrasing, rng),
        )
    else:
        a, b = scene.objects
        relation = scene.relation
        if rng.random() < 0.5:  # "B below A" says the same as "A above B"
            a, b, relation = b, a, INVERSE[relation]
        text = DOUBLE.pick(phrasing, rng).format(
            a=_noun_phrase(a, phrasing, rng),
            b=_noun_phrase(b, phrasing, rng),
            rel=LEXICON.word(relation, phrasing, rng),
            pa=_place(a.position, phrasing, rng),
            pb=_place(b.position, phrasing, rng),
            bg=bg,
            background=background,
        )
    return finish(frame(text, FRAMES, phrasing, rng), phrasing, rng, noisy)


def object_places(scene: Scene) -> tuple[str, ...]:
    """The place of each object of the scene's normal form, as its canonical caption words them
    (the rewriter's binding reads them: ``conditioning/constrained.py``)."""
    return tuple(o.position for o in normal_form(scene).objects)


def normal_form(scene: Scene) -> Scene:
    """The one of a scene's two equivalent descriptions with the relation "left of" or
    "above" ("A right of B" is "B left of A"): the rewriter's target is then unique."""
    if scene.relation not in ("right of", "below"):
        return scene
    return Scene(
        scene.objects[::-1], scene.background, INVERSE[scene.relation], scene.centres[::-1]
    )


def text_vocabulary() -> dict[str, int]:
    """The vocabulary of a word-level text encoder for this world (grammar.vocabulary)."""
    return vocabulary(LEXICON, (f for forms in FORMS for f in forms.train))


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

    def __init__(
        self, n: int, seed: int = 0, size: int = 32, split: str = "train", phrasing: str = "train"
    ) -> None:
        super().__init__(n, seed, split, phrasing)
        self.size = size

    def make(self, rng: np.random.Generator) -> dict:
        scene = sample_scene(rng, self.split)
        image = to_tensor(render(scene, self.size))  # (3, H, W) in [-1, 1]
        return {"image": image, "caption": caption(scene, rng, self.phrasing), "scene": scene}


def collate(batch: list[dict]) -> dict:
    """Stack images; keep captions and scenes as lists (the default collate rejects Scene)."""
    return {
        "image": torch.stack([b["image"] for b in batch]),
        "caption": [b["caption"] for b in batch],
        "scene": [b["scene"] for b in batch],
    }

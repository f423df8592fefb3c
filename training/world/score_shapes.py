"""Score a generated image against the Scene its prompt described, attribute by attribute.

The scorer reads images with the world's own renderer rather than a learned classifier, so it
has no training set of its own to overfit and is exact on clean renders: segment what differs
from the background, then for each blob pick the named colour nearest its core pixels and the
(shape, size) whose rendered coverage best overlaps the blob's estimated coverage.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from scipy import ndimage

from training.world.shapes import (
    BACKGROUNDS,
    COLOURS,
    POSITIONS,
    SHAPES,
    SIZES,
    Geometry,
    Scene,
    coverage,
)
from training.world.summary import summarise  # noqa: F401 (re-exported)

FOREGROUND = 40.0  # RGB distance from the background that counts as object (closest pair: 106)
CORE = 0.75  # pixels this close to the blob's strongest colour give its colour (edges blend)
MIN_AREA = 0.004  # blobs under this fraction of the canvas are noise (a small shape is ~0.018)
MIN_IOU = 0.4  # a blob that overlaps no shape template this well is a smear, not an object
ATTRIBUTES = ("colour", "shape", "size", "position")


@dataclass(frozen=True)
class Found:
    """What the scorer read from one blob; cx, cy in pixels."""

    colour: str
    shape: str
    size: str
    position: str
    cx: float
    cy: float
    iou: float


def to_uint8(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """uint8 (H, W, 3) from uint8 (H, W, 3) or a float (3, H, W) / (H, W, 3) in [-1, 1]."""
    if isinstance(image, torch.Tensor):
        image = image.detach().float().cpu().numpy()
    if image.ndim != 3 or 3 not in (image.shape[0], image.shape[-1]):
        raise ValueError(f"expected an RGB image, got shape {image.shape}")
    if image.shape[-1] != 3:
        image = image.transpose(1, 2, 0)
    if image.dtype != np.uint8:
        image = np.clip(np.round((image + 1.0) * 127.5), 0, 255).astype(np.uint8)
    return image


def background_colour(img: np.ndarray) -> np.ndarray:
    """Median of the border pixels: objects keep a margin from the edge."""
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]]).astype(np.float32)
    return np.median(border, axis=0)


def nearest(value: np.ndarray, table: dict[str, tuple[float, ...]], exclude=()) -> str:
    names = [n for n in table if n not in exclude]
    dist = [np.sum((value - np.asarray(table[n], np.float32)) ** 2) for n in names]
    return names[int(np.argmin(dist))]


@lru_cache(maxsize=256)
def _centroid_offset(shape: str, size_name: str, canvas: int) -> tuple[float, float]:
    """Where the shape's coverage centroid sits relative to its box centre (triangles: below)."""
    c = canvas / 2
    cov = coverage(shape, Geometry(c, c, SIZES[size_name] * canvas), canvas)
    cx, cy = _centroid(cov)
    return cx - c, cy - c


def _centroid(weights: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(weights.shape)
    total = weights.sum()
    return float((weights * (xs + 0.5)).sum() / total), float((weights * (ys + 0.5)).sum() / total)


def _read_blob(img: np.ndarray, bg: np.ndarray, mask: np.ndarray, background: str | None) -> Found:
    canvas = img.shape[0]
    diff = img.astype(np.float32) - bg
    dist = np.linalg.norm(diff, axis=-1)
    core = mask & (dist >= CORE * dist[mask].max())
    colour_rgb = np.median(img[core].astype(np.float32), axis=0)
    exclude = {background} if background else set()
    colour = nearest(colour_rgb, COLOURS, exclude)
    # Alpha = how far each pixel has moved from the background toward the blob's colour.
    direction = colour_rgb - bg
    alpha = np.clip(diff @ direction / max(float(direction @ direction), 1.0), 0.0, 1.0)
    alpha = alpha * ndimage.binary_dilation(mask, np.ones((3, 3), bool))
    mx, my = _centroid(alpha)
    best = (-1.0, "", "", 0.0, 0.0)
    for shape, size_name in itertools.product(SHAPES, SIZES):
        ox, oy = _centroid_offset(shape, size_name, canvas)
        g = Geometry(mx - ox, my - oy, SIZES[size_name] * canvas)
        template = coverage(shape, g, canvas)
        iou = float(np.minimum(alpha, template).sum() / np.maximum(alpha, template).sum())
        if iou > best[0]:
            best = (iou, shape, size_name, g.cx, g.cy)
    iou, shape, size_name, cx, cy = best
    centre = np.array([cx, cy]) / canvas
    position = nearest(centre, POSITIONS)
    return Found(colour, shape, size_name, position, cx, cy, iou)


def detect(image: np.ndarray | torch.Tensor, background: str | None = None) -> list[Found]:
    """Every blob big and shapely enough to be an object, largest first. `background` (a name) only
    excludes that colour from the answers: the background pixels themselves are measured."""
    img = to_uint8(image)
    if img.shape[0] != img.shape[1]:
        raise ValueError(f"the world is square; got {img.shape[:2]}")
    if background is not None and background not in BACKGROUNDS:
        raise ValueError(f"background={background!r}; choose one of {list(BACKGROUNDS)}")
    bg = background_colour(img)
    fg = np.linalg.norm(img.astype(np.float32) - bg, axis=-1) > FOREGROUND
    labels, n = ndimage.label(fg)  # 4-connected: diagonal noise does not bridge two objects
    areas = ndimage.sum_labels(fg, labels, index=np.arange(1, n + 1))
    order = [i + 1 for i in np.argsort(-areas, kind="stable") if areas[i] >= MIN_AREA * fg.size]
    blobs = [_read_blob(img, bg, labels == i, background) for i in order]
    return [b for b in blobs if b.iou >= MIN_IOU]


def _relation_holds(relation: str, a: Found, b: Found) -> bool:
    """A <relation> B, with the relation's axis dominating the offset between them."""
    dx, dy = b.cx - a.cx, b.cy - a.cy
    along, across = {
        "left of": (dx, dy),
        "right of": (-dx, dy),
        "above": (dy, dx),
        "below": (-dy, dx),
    }[relation]
    return along > abs(across)


def score(image: np.ndarray | torch.Tensor, scene: Scene) -> dict[str, bool | None]:
    """Per-attribute correctness of `image` for `scene`.

    colour / shape / size / position: right for every described object. count: exactly as
    many objects as described. relation and both: None for one-object scenes; `both` means
    every attribute of both objects, the relation and the count are right.
    """
    wanted = scene.objects
    found = detect(image, scene.background)
    count = len(found) == len(wanted)
    slots: list[Found | None] = [*found[: len(wanted)], None, None][: len(wanted)]

    def agree(o, f: Found | None) -> int:
        return 0 if f is None else sum(getattr(o, k) == getattr(f, k) for k in ATTRIBUTES[:3])

    # Match blobs to described objects by appearance, never by where they are.
    slots = max(
        (list(p) for p in itertools.permutations(slots)),
        key=lambda p: sum(agree(o, f) for o, f in zip(wanted, p, strict=True)),
    )
    pairs = list(zip(wanted, slots, strict=True))
    result: dict[str, bool | None] = {
        k: all(f is not None and getattr(o, k) == getattr(f, k) for o, f in pairs)
        for k in ATTRIBUTES
    }
    result["count"] = count
    if len(wanted) == 1:
        return result | {"relation": None, "both": None}
    a, b = slots
    result["relation"] = a is not None and b is not None and _relation_holds(scene.relation, a, b)
    result["both"] = all(result[k] for k in (*ATTRIBUTES, "count", "relation"))
    return result

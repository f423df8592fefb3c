"""A procedural world of coloured shapes for training and scoring text-to-image models."""

from training.world.score_shapes import score, summarise
from training.world.shapes import (
    COLOURS,
    HELDOUT_PAIRS,
    POSITIONS,
    RELATIONS,
    SHAPES,
    SIZES,
    Obj,
    Scene,
    ShapesDataset,
    caption,
    is_heldout,
    render,
    sample_scene,
)

__all__ = [
    "COLOURS",
    "HELDOUT_PAIRS",
    "POSITIONS",
    "RELATIONS",
    "SHAPES",
    "SIZES",
    "Obj",
    "Scene",
    "ShapesDataset",
    "caption",
    "is_heldout",
    "render",
    "sample_scene",
    "score",
    "summarise",
]

"""GenEval-style prompt adherence on the procedural shapes world.

Held-out scenes (they include attribute combinations training never saw) are captioned,
generated, and scored against their ground truth by the world's own scorer.
"""

from __future__ import annotations

import numpy as np

from pipelines.image import TextToImagePipeline

from .world.score_shapes import score, summarise
from .world.shapes import caption, is_heldout, render, sample_scene

KEYS = ("colour", "shape", "size", "position", "count", "relation", "both")


def heldout_scenes(n: int, seed: int = 1234):
    rng = np.random.default_rng(seed)
    scenes = [sample_scene(rng, split="heldout") for _ in range(n)]
    return scenes, [caption(s, rng) for s in scenes]


def evaluate_shapes(
    pipe: TextToImagePipeline,
    n: int = 320,
    steps: int | None = None,
    guidance: float | None = None,
    solver: str | None = None,
    batch: int = 16,
    seed: int = 0,
) -> dict[str, float]:
    """Percent correct per attribute on ``n`` held-out prompts (and on real renders)."""
    scenes, prompts = heldout_scenes(n)
    size = pipe.spec.width
    images = pipe.generate_many(prompts, seed=seed, batch=batch, desc="eval shapes",
                                steps=steps, guidance=guidance, solver=solver)  # fmt: skip
    results = [score(img, scene) for img, scene in zip(images, scenes, strict=True)]
    real = [score(render(scene, size=size), scene) for scene in scenes]
    out = {f"gen {k}": v for k, v in summarise(results).items() if k in KEYS}
    out.update({f"real {k}": v for k, v in summarise(real).items() if k in KEYS})
    out["prompts"] = n
    out["unseen combinations"] = sum(map(is_heldout, scenes))
    return out

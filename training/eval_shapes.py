"""GenEval-style prompt adherence on the procedural shapes world.

Held-out scenes (they include attribute combinations training never saw) are captioned in each
phrasing of the world's grammar (canonical, training phrasings, held-out phrasings: see
``world/grammar.py``), generated, and scored against their ground truth by the world's own
scorer. The same scenes and seeds serve every phrasing, so the columns differ only in words.
"""

from __future__ import annotations

import numpy as np

from pipelines.image import TextToImagePipeline

from .world.grammar import PHRASINGS
from .world.score_shapes import score, summarise
from .world.shapes import caption, is_heldout, render, sample_scene

KEYS = ("colour", "shape", "size", "position", "count", "relation", "both")


def heldout_scenes(n: int, seed: int = 1234, phrasing: str = "train"):
    """``n`` held-out scenes and their captions in ``phrasing``; the scenes do not depend on
    the phrasing (they are drawn first)."""
    rng = np.random.default_rng(seed)
    scenes = [sample_scene(rng, split="heldout") for _ in range(n)]
    return scenes, [caption(s, rng, phrasing) for s in scenes]


def evaluate_shapes(
    pipe: TextToImagePipeline,
    n: int = 320,
    steps: int | None = None,
    guidance: float | None = None,
    solver: str | None = None,
    batch: int = 16,
    seed: int = 0,
    phrasings: tuple[str, ...] = ("train",),
) -> dict[str, float]:
    """Percent correct per attribute on ``n`` held-out prompts, per phrasing (keys
    ``"<phrasing> <attribute>"``; with one phrasing ``"gen <attribute>"``), and on real
    renders (``"real <attribute>"``)."""
    out: dict[str, float] = {}
    for phrasing in phrasings:
        if phrasing not in PHRASINGS:
            raise ValueError(f"phrasing={phrasing!r}; choose from {list(PHRASINGS)}")
        scenes, prompts = heldout_scenes(n, phrasing=phrasing)
        images = pipe.generate_many(
            prompts,
            seed=seed,
            batch=batch,
            desc=f"eval {phrasing}",
            steps=steps,
            guidance=guidance,
            solver=solver,
        )
        results = [score(img, scene) for img, scene in zip(images, scenes, strict=True)]
        label = "gen" if len(phrasings) == 1 else phrasing
        out.update({f"{label} {k}": v for k, v in summarise(results).items() if k in KEYS})
    real = [score(render(scene, size=pipe.spec.width), scene) for scene in scenes]
    out.update({f"real {k}": v for k, v in summarise(real).items() if k in KEYS})
    out["prompts"] = n
    out["unseen combinations"] = sum(map(is_heldout, scenes))
    return out

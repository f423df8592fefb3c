"""Motion adherence on the procedural video world.

Clips from the held-out split (every one a (shape, motion) pair training never saw) and fresh
clips of the training split's kinds are captioned, generated, and scored by the world's own
scorer (direction, speed, colour, shape, consistency across frames, growth, bounces); real
renders of the same clips are scored beside them to show the scorer is right. ``fps`` may
differ from the training rate: motion is defined in seconds.
"""

from __future__ import annotations

import numpy as np

from pipelines.video import TextToVideoPipeline

from .world.grammar import PHRASINGS, check_phrasing
from .world.motion import caption, render_clip, sample_clip
from .world.score_motion import KEYS, score_clip
from .world.summary import summarise

EVAL_SEED = 4321  # training draws clips from seed 0 by index; evaluation from its own stream


def eval_clips(n: int, split: str, seconds: float, seed: int = EVAL_SEED, phrasing: str = "train"):
    """``n`` clips of ``split`` and their captions in ``phrasing``: the same clips for every
    phrasing (the captions draw from a stream of their own)."""
    check_phrasing(phrasing)
    stream = [seed, ("train", "heldout").index(split)]
    rng = np.random.default_rng(stream)
    clips = [sample_clip(rng, split, seconds=seconds) for _ in range(n)]
    words = np.random.default_rng([*stream, PHRASINGS.index(phrasing)])
    return clips, [caption(c, words, phrasing) for c in clips]


def evaluate_motion(
    pipe: TextToVideoPipeline,
    n: int = 200,
    steps: int | None = None,
    guidance: float | None = None,
    solver: str | None = None,
    fps: float | None = None,
    batch: int = 16,
    seed: int = 0,
    phrasings: tuple[str, ...] = ("train",),
) -> dict[str, float]:
    """Percent right per attribute on ``n`` held-out clips and ``n`` fresh clips of the
    training split's combinations (and on real renders of both), at ``fps``, per phrasing of
    the captions (the same clips and seeds in each). Keys ``"<phrasing> <pairs>: <metric>"``
    (``"gen ..."`` with one phrasing) and ``"real <pairs>: <metric>"``."""
    spec = pipe.spec
    fps = fps or spec.fps
    frames = round(spec.seconds * fps)
    out: dict[str, float] = {"prompts": n, "fps": fps}
    for split, label in (("heldout", "unseen pairs"), ("train", "seen pairs")):
        for phrasing in phrasings:
            clips, prompts = eval_clips(n, split, spec.seconds, phrasing=phrasing)
            videos = pipe.generate_many(
                prompts,
                seed=seed,
                batch=batch,
                desc=f"eval {label}, {phrasing}",
                steps=steps,
                guidance=guidance,
                solver=solver,
                duration=spec.seconds,
                fps=fps,
            )
            gen = summarise([score_clip(v, c, fps) for v, c in zip(videos, clips, strict=True)])
            col = "gen" if len(phrasings) == 1 else phrasing
            out.update({f"{col} {label}: {k}": gen[k] for k in KEYS if k in gen})
        real = summarise(
            [score_clip(render_clip(c, frames, fps, spec.width), c, fps) for c in clips]
        )
        out.update({f"real {label}: {k}": real[k] for k in KEYS if k in real})
    return out

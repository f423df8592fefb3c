"""Prompt adherence on the procedural sound world: pitch, count, timbre, order, duration.

Held-out scenes (each with an attribute combination training never saw) are captioned,
generated at their own duration, and scored against their ground truth by the world's own
scorer; the real renders are scored beside them (the scorer's check). Durations beyond the
training clips are asked for too, and reported on their own.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from .world.grammar import PHRASINGS
from .world.score_sounds import score, summarise
from .world.sounds import caption, is_heldout, render, sample_scene


def heldout_sound_scenes(
    n: int, max_duration: float, seed: int = 1234, min_duration=0.5, phrasing: str = "train"
):
    """``n`` held-out scenes and their captions in ``phrasing``; the scenes do not depend on
    the phrasing (they are drawn first)."""
    if phrasing not in PHRASINGS:
        raise ValueError(f"phrasing={phrasing!r}; choose from {list(PHRASINGS)}")
    rng = np.random.default_rng(seed)
    scenes = [sample_scene(rng, "heldout", max_duration, min_duration) for _ in range(n)]
    return scenes, [caption(s, rng, phrasing) for s in scenes]


def generate_at_durations(pipe, prompts, durations, seed=0, batch=16, **settings):
    """One clip per prompt at its own duration. Prompts are taken in order of duration (ties
    by index) and the k-th gets seed ``seed + k``, so clips of one duration batch together."""
    order = sorted(range(len(prompts)), key=lambda i: (durations[i], i))
    groups: dict[float, list[int]] = defaultdict(list)  # duration -> positions in `order`
    for pos, i in enumerate(order):
        groups[durations[i]].append(pos)
    clips: list[np.ndarray | None] = [None] * len(prompts)
    for d, positions in groups.items():
        chunk = [prompts[order[pos]] for pos in positions]
        media = pipe.generate_many(
            chunk, seed=seed + positions[0], batch=batch, duration=d, **settings
        )
        for pos, clip in zip(positions, media, strict=True):
            clips[order[pos]] = clip
    return clips


def evaluate_sounds(
    pipe,
    n: int = 300,
    steps: int | None = None,
    guidance: float | None = None,
    solver: str | None = None,
    seed: int = 0,
    longer: bool = True,
    phrasings: tuple[str, ...] = ("train",),
) -> dict[str, float]:
    """Percent right per attribute on ``n`` held-out prompts, per phrasing (keys
    ``"<phrasing> <attribute>"``; with one phrasing ``"gen <attribute>"``: the same scenes
    and seeds in each), and on the real renders; with ``longer``, also on n / 10 prompts
    longer than the training clips (in the first phrasing)."""
    seconds = pipe.spec.seconds
    settings = {
        k: v
        for k, v in dict(steps=steps, guidance=guidance, solver=solver).items()
        if v is not None
    }
    out: dict[str, float] = {}
    for phrasing in phrasings:
        scenes, prompts = heldout_sound_scenes(n, seconds, phrasing=phrasing)
        clips = generate_at_durations(
            pipe, prompts, [s.duration for s in scenes], seed=seed, **settings
        )
        gen = [score(c, s) for c, s in zip(clips, scenes, strict=True)]
        label = "gen" if len(phrasings) == 1 else phrasing
        out.update({f"{label} {k}": v for k, v in summarise(gen).items()})
    real = [score(render(s), s) for s in scenes]
    out.update({f"real {k}": v for k, v in summarise(real).items()})
    out["prompts"] = n
    out["unseen combinations"] = sum(map(is_heldout, scenes))
    if not longer:
        return out
    # Lengths training never saw: clips longer than its longest, up to the model's limit.
    n_long = max(1, n // 10)
    long, long_prompts = heldout_sound_scenes(
        n_long, 2 * seconds, seed=99, min_duration=seconds + 0.1, phrasing=phrasings[0]
    )
    long_clips = generate_at_durations(
        pipe, long_prompts, [s.duration for s in long], seed=seed, **settings
    )
    scored = summarise([score(c, s) for c, s in zip(long_clips, long, strict=True)])
    out.update(
        {
            f"longer than training ({n_long}) {k}": v
            for k, v in scored.items()
            if k in ("count", "timbre", "duration", "all")
        }
    )
    return out

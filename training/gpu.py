"""The prepared one-call GPU run: train every recipe still short of its targets, in turn, each
for its share of a time budget, and write the exported folders and their scores under OUT.

    python -m training.gpu --out $OUT [--minutes 8] [--recipes motion-t2v sounds-t2a ...]

Made for the few minutes of a lent CUDA machine (``device``): one call of under 9 minutes,
nothing else to prepare. Each recipe runs with its batch multiplied by ``--batch-scale`` (a GPU
wants larger batches than the CPU recipes use; the learning rate is kept) until its share of
the minutes is spent (``--max-minutes`` of the trainer: a checkpoint and an export at the end,
resumable), then a short evaluation writes ``OUT/scores.json``. Runs on a CPU too (slowly):
the test runs it there with the tiny recipe.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

# The recipes whose bundled models are short of their targets (README, quality tables).
SHORT = (
    "motion-t2v",
    "sounds-t2a-xs-long",
    "bounce-t2av",
    "sounds-t2a-masked",
    "shapes-t2i-masked",
)


def run(recipes: list[str], out: Path, minutes: float, batch_scale: int, prompts: int) -> dict:
    from pipelines.registry import load_pipeline

    from .evaluate import evaluate
    from .recipe import Recipe
    from .trainer import train

    scores: dict[str, dict] = {}
    share = minutes / max(len(recipes), 1)
    for name in recipes:
        tic = time.monotonic()
        recipe = Recipe.load(name)
        recipe = replace(
            recipe, batch_size=recipe.batch_size * batch_scale, steps=10**6, decay=0.0, stop_at=0
        )
        run_dir = out / "runs" / name
        # training gets 80% of the share, the evaluation the rest
        folder = train(recipe, run_dir, resume=True, max_minutes=0.8 * share)
        log = (run_dir / "loss.jsonl").read_text().splitlines()
        entry = {
            "folder": str(folder),
            "steps": len(log),
            "batch": recipe.batch_size,
            "train_minutes": round((time.monotonic() - tic) / 60, 2),
        }
        # the phrasings people type (the model's rewriter, if any, serves it as it would)
        entry["scores"] = evaluate(load_pipeline(str(folder)), prompts, ("train",))
        scores[name] = entry
        (out / "scores.json").write_text(json.dumps(scores, indent=2))
    return scores


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.gpu", description=__doc__)
    ap.add_argument("--out", required=True, type=Path, help="where runs, exports and scores go")
    ap.add_argument("--minutes", type=float, default=8.0, help="the whole call's budget")
    ap.add_argument("--recipes", nargs="+", default=list(SHORT))
    ap.add_argument("--batch-scale", type=int, default=8)
    ap.add_argument("--prompts", type=int, default=32, help="evaluation prompts per recipe")
    args = ap.parse_args(argv)
    scores = run(args.recipes, args.out, args.minutes, args.batch_scale, args.prompts)
    print(json.dumps(scores, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

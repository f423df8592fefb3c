"""Score against samples seen: every export a run kept (``RUN/exports/step_*``), scored on the
same held-out prompts and seeds, one row per export.

    python -m training.curve RUN [--prompts 64] [--phrasing canonical heldout]

Any world's models (what ``dit-studio eval`` scores, through ``training.evaluate``); a row's
samples are step x batch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.curve", description=__doc__)
    ap.add_argument("run", help="run folder holding exports/step_*")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--phrasing", nargs="+", default=["canonical", "heldout"])
    ap.add_argument("--batch-size", type=int, help="samples per step (default: the run's log)")
    ap.add_argument("--every", type=int, default=1, help="score every k-th export")
    args = ap.parse_args(argv)
    exports = sorted(Path(args.run).glob("exports/step_*"))[:: args.every]
    if not exports:
        print(f"{args.run}: no exports/step_* folders", file=sys.stderr)
        return 2
    from pipelines.registry import load_pipeline

    from .evaluate import evaluate

    rows = []
    for folder in exports:
        step = int(folder.name.split("_")[1])
        pipe = load_pipeline(str(folder))
        scores = evaluate(pipe, args.prompts, tuple(args.phrasing))
        rows.append((step, scores))
        print(json.dumps({"step": step, **scores}), flush=True)
    keys = [
        k
        for k in rows[0][1]
        if not k.startswith("real")
        and k
        not in ("prompts", "fps", "unseen combinations", "classifier accuracy on held-out real %")
    ]
    print("| step | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for step, scores in rows:
        print(f"| {step} | " + " | ".join(f"{scores[k]:.1f}" for k in keys) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

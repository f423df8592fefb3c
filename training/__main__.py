"""``accelerate launch -m training RECIPE --out DIR [--resume]`` (or ``dit-studio train``)."""

from __future__ import annotations

import argparse
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="dit-studio train",
        description="Train a model from a recipe (a name from training/recipes or a .json "
        "file). Runs on one process, or on many under `accelerate launch -m training`.",
    )
    ap.add_argument("recipe", help="recipe name (e.g. shapes-t2i) or path to a recipe .json")
    ap.add_argument("--out", required=True, help="run folder: checkpoints/, samples/, model/")
    ap.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    ap.add_argument("--steps", type=int, help="override the recipe's number of steps")
    ap.add_argument(
        "--max-minutes",
        type=float,
        help="stop early after this much wall time (checkpoint + export); --resume continues",
    )
    ap.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="recompute activations in the backward pass (less memory, ~1/3 slower)",
    )
    ap.add_argument("--data-path", help="override the recipe's data folder (data=folder)")
    ap.add_argument(
        "--init", help="override the recipe's base model folder (e.g. an SD3.5 / FLUX.1 folder)"
    )
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from dit.runtime import keep_freed_memory

    keep_freed_memory()  # a third faster on CPU; see dit/runtime.py
    from .recipe import Recipe
    from .trainer import train

    overrides = {}
    if args.steps is not None:
        overrides["steps"] = args.steps
    if args.gradient_checkpointing:
        overrides["gradient_checkpointing"] = True
    if args.data_path:
        overrides.update(data="folder", data_path=args.data_path)
    if args.init:
        overrides["init"] = args.init
    try:
        recipe = Recipe.load(args.recipe, **overrides)
    except (ValueError, FileNotFoundError) as e:
        print(f"dit-studio train: {e}", file=sys.stderr)
        return 2
    if args.max_minutes is not None and args.max_minutes <= 0:
        print("dit-studio train: --max-minutes must be > 0", file=sys.stderr)
        return 2
    from .checkpoint import CheckpointError

    try:
        folder = train(recipe, args.out, resume=args.resume, max_minutes=args.max_minutes)
    except (CheckpointError, ValueError) as e:  # a refused run folder or recipe: one line
        print(f"dit-studio train: {e}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:  # one line, however many processes
        print(f"model folder: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Quality against model calls: flow (ODE) and masked (MaskGIT / MAGNeT) models side by side.

``python -m benchmarks.quality_calls`` scores each model on the same held-out prompts at
1, 2, 4, 8, 16 and 32 model calls per sample, with the worlds' own scorers, and the wall
time per sample. A call is one forward pass of the transformer (the conditional and
unconditional halves of guidance run as one batch, so they count once); calls are counted
by a hook on the transformer, not derived from the settings. Flow models run Euler (one
call a step) and Heun (two a step, one for the last: 2 n - 1 calls); masked models one call
a step.
"""

from __future__ import annotations

import argparse
import time

import torch

from pipelines.registry import load_pipeline

from .__main__ import table

IMAGE_KEYS = ("colour", "shape", "size", "position", "both")
AUDIO_KEYS = ("pitch", "count", "timbre", "order", "duration")


class CallCounter:
    """Counts forward passes of a module (a forward pre-hook)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.calls = 0
        self.handle = module.register_forward_pre_hook(self._hook)

    def _hook(self, *_):
        self.calls += 1


def settings_for(pipe, calls: int) -> list[tuple[str, int]]:
    """(solver, steps) pairs of this model that make ``calls`` calls (or the nearest below)."""
    if pipe.spec.objective == "masked":
        return [(pipe.spec.defaults["solver"], calls)]
    out = [("euler", calls)]
    if calls >= 3:  # heun: 2 calls a step, 1 for the step into the data
        out.append(("heun", (calls + 1) // 2))
    return out


def score(pipe, solver: str, steps: int, n: int) -> dict[str, float]:
    if pipe.spec.modality == "image":
        from training.eval_shapes import evaluate_shapes

        res = evaluate_shapes(pipe, n=n, steps=steps, solver=solver)
        return {k: res[f"gen {k}"] for k in IMAGE_KEYS}
    from training.eval_sounds import evaluate_sounds

    res = evaluate_sounds(pipe, n=n, steps=steps, solver=solver, longer=False)
    return {k: res.get(f"gen {k}", float("nan")) for k in AUDIO_KEYS}


def rows_for(model: str, budgets: list[int], n: int) -> tuple[list[str], list[list[str]]]:
    pipe = load_pipeline(model)
    keys = IMAGE_KEYS if pipe.spec.modality == "image" else AUDIO_KEYS
    counter = CallCounter(pipe.transformer)
    rows = []
    for calls in budgets:
        for solver, steps in settings_for(pipe, calls):
            counter.calls = 0
            pipe(pipe.resolve("probe", steps=steps, solver=solver))  # one sample: its calls
            made = counter.calls
            tic = time.perf_counter()
            scores = score(pipe, solver, steps, n)
            per_sample = (time.perf_counter() - tic) / n
            rows.append(
                [
                    model,
                    pipe.spec.objective,
                    solver,
                    str(made),
                    *(f"{scores[k]:.1f}" for k in keys),
                    f"{per_sample:.3f}",
                ]
            )
    counter.handle.remove()
    return list(keys), rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.quality_calls", description=__doc__)
    ap.add_argument("--image", nargs="*", default=["shapes-t2i", "shapes-t2i-masked"])
    ap.add_argument("--audio", nargs="*", default=["sounds-t2a", "sounds-t2a-masked"])
    ap.add_argument("--calls", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    ap.add_argument("--prompts", type=int, default=64, help="held-out prompts per row")
    args = ap.parse_args(argv)
    print(
        f"{args.prompts} held-out prompts per row, {torch.get_num_threads()} threads; score "
        "in % right, wall seconds per sample (batches of 16, decoding included)\n"
    )
    for models in (args.image, args.audio):
        rows, keys = [], []
        for model in models:
            keys, more = rows_for(model, args.calls, args.prompts)
            rows += more
        if rows:
            header = ["model", "family", "solver", "calls", *keys, "s/sample"]
            print(table(header, rows), "\n", flush=True)


if __name__ == "__main__":
    main()

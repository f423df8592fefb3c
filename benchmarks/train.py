"""Training throughput of every bundled recipe: ``python -m benchmarks.train``.

One row per (recipe, path): the real training step of ``training/trainer.py`` (text encoder +
DiT forward, loss, backward, clipping, AdamW, EMA) on one process with the recipe's batch, on
items already rendered; its model FLOPs per sample (forward + backward, counted by PyTorch's
FLOP counter: matmuls and attention); and the share of the machine's matmul peak, timed
between the same reps. ``data ms/item`` is what the trainer pays the first time it draws an
item (render + tokens; later draws come from the cache of training/data.py) and ``data share``
that cost for one batch against the step: above ~10% the data path needs pre-rendering.

Example: ``python -m benchmarks.train --recipes shapes-t2i motion-t2v --compile motion-t2v``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import torch
from torch.utils.flop_counter import FlopCounterMode

from .timing import _CUSTOM_FLOPS, PROBE_SIZE, matmul_peak, matmul_probes, matmul_throughput

# The recipes whose exports are bundled under assets/ (and the image-initialised motion one).
RECIPES = (
    "shapes-t2i",
    "digits-t2i",
    "sounds-t2a",
    "motion-t2v-scratch",
    "motion-t2v",
    "bounce-t2av",
    "shapes-t2i-masked",
    "shapes-t2i-masked-trunk",
    "sounds-t2a-masked",
)
HEADER = [
    "recipe",
    "preset",
    "path",
    "batch",
    "ms/step",
    "samples/s",
    "GFLOP/sample",
    "GFLOP/s",
    "% peak",
    "data ms/item",
    "data share",
]


def _run(recipe):
    """A ``training.trainer._Run`` of ``recipe`` on one process (the trainer's own pieces)."""
    from diffusers.training_utils import EMAModel

    from training.data import make_source
    from training.start import param_groups
    from training.trainer import _accelerator, _objective, _Run

    acc, micro, _ = _accelerator(recipe, __import__("pathlib").Path("/tmp/dit-bench-train"))
    module, media = _objective(recipe)
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(param_groups(module, params, recipe), lr=recipe.lr, betas=(0.9, 0.99))
    ema = EMAModel(params, decay=recipe.ema_decay, foreach=True)
    module, opt = acc.prepare(module, opt)
    source = make_source(recipe)
    return _Run(recipe, acc, micro, media, module, params, opt, ema, source, None, 0.0)


def _data_ms(run, n: int = 16) -> float:
    """Milliseconds per item drawn for the first time: render (uncached) + tokens, after one
    item drawn untimed (the first pays one-off imports and set-up, ~100 ms for sounds)."""
    from training.trainer import stack

    last = len(run.source) - 1  # items from the end: not drawn by the timed steps
    run.media.tokens(stack([run.source.item(last)[0]]))
    start = time.perf_counter()
    for i in range(1, n + 1):
        item, _ = run.source.item(last - i)
        run.media.tokens(stack([item]))
    return 1e3 * (time.perf_counter() - start) / n


def _warm_cache(run, steps: int) -> None:
    """Render every item the timed steps draw, so they time the model, not the renders."""
    from training.data import batch_indices

    for step in range(steps):
        for i in batch_indices(run.source, run.recipe.seed, step, run.recipe.batch_size):
            run.source.item(int(i))


def _flops(run) -> int:
    """FLOPs of one training step (forward + backward), counted by PyTorch."""
    from training.trainer import _step_loss

    counter = FlopCounterMode(display=False, custom_mapping=_CUSTOM_FLOPS)
    with counter:
        _step_loss(run, 0)
    return counter.get_total_flops()


def rows(names, compile_names, reps: int = 5, warmup: int = 2, batch: int = 0):
    from training.recipe import Recipe
    from training.trainer import _step_loss

    device = torch.device("cpu")
    probes = matmul_probes(device, torch.float32)
    out = []
    for name in names:
        base = Recipe.load(name)
        for compiled in (False, True) if name in compile_names else (False,):
            # Starting weights do not change the speed, and a recipe's `init` may name a run
            # folder this machine lacks: time every recipe from its own fresh weights.
            recipe = replace(
                base,
                checkpoint_every=10**9,
                export_every=0,
                init="",
                init_trunk="",
                init_text_encoder="",
            )
            if batch:  # samples/s barely depends on the batch once it fills the cores
                recipe = replace(recipe, batch_size=batch, grad_accum=1)
            run = _run(recipe)
            data_ms = _data_ms(run)
            _warm_cache(run, warmup + reps + 1)
            flops = _flops(run)  # eager: the counter does not see inside compiled graphs
            if compiled:
                # Training graphs cannot be frozen (the weights change): plain inductor,
                # which also compiles the backward (AOTAutograd).
                run.module = torch.compile(run.module)
            steps, peaks = [], []
            for step in range(warmup + reps):
                start = time.perf_counter()
                _step_loss(run, 1 + step)
                elapsed = time.perf_counter() - start
                # a matmul peak between the steps: the same machine the rows see
                probe_times = []
                for fn in probes.values():
                    t0 = time.perf_counter()
                    fn()
                    probe_times.append(time.perf_counter() - t0)
                if step >= warmup:
                    steps.append(elapsed)
                    peaks.append(2 * PROBE_SIZE**3 / min(probe_times) / 1e9)
            ms, peak = 1e3 * statistics.median(steps), statistics.median(peaks)
            b = recipe.batch_size
            gflops = flops / 1e9 / (ms / 1e3)
            out.append(
                [
                    name,
                    recipe.preset,
                    "compiled" if compiled else "eager",
                    str(b),
                    f"{ms:.0f}",
                    f"{b / (ms / 1e3):.1f}",
                    f"{flops / 1e9 / b:.2f}",
                    f"{gflops:.1f}",
                    f"{100 * gflops / peak:.0f}%",
                    f"{data_ms:.1f}",
                    f"{100 * data_ms * b / ms:.0f}%",
                ]
            )
            print(" | ".join(out[-1]), flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    from .__main__ import table

    ap = argparse.ArgumentParser(prog="python -m benchmarks.train", description=__doc__)
    ap.add_argument("--recipes", nargs="+", default=list(RECIPES))
    ap.add_argument("--compile", nargs="*", default=[], help="recipes to also time compiled")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=0, help="time at this batch (0: the recipe's)")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    peak = matmul_peak(matmul_throughput(torch.device("cpu"), torch.float32))
    print(
        f"cpu, {torch.get_num_threads()} threads, torch {torch.__version__}, fp32; "
        f"matmul peak (best of 1024-4096) {peak:.1f} GFLOP/s"
    )
    result = rows(args.recipes, set(args.compile), reps=args.reps, batch=args.batch)
    print(table(HEADER, result))
    print(
        "% peak: against a 2048^2 matmul timed between the steps (median of the fastest "
        "library per rep)"
    )


if __name__ == "__main__":
    main()

"""Does a LoRA teach the new colour, and what does it cost the base model?

``python -m training.eval_lora assets/loras/teal --prompts N`` prints: the share of held-out
teal prompts whose generated teal objects come out teal (the world's scorer reading colours
from the base table plus teal), and the base model's shapes scores on its own held-out
prompts without and with the adapter.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from scipy import ndimage

from pipelines.image import TextToImagePipeline
from pipelines.lora import apply_loras

from .eval_shapes import evaluate_shapes
from .world.score_shapes import CORE, FOREGROUND, MIN_AREA, background_colour, nearest, to_uint8
from .world.teal_folder import ALL_COLOURS, EVAL_SEED, UNSEEN, TealScene, sample_teal

SHAPE_KEYS = ("gen colour", "gen shape", "gen size", "gen position", "gen both")


def teal_scenes(n: int, seed: int = EVAL_SEED) -> tuple[list[TealScene], list[str]]:
    """Held-out teal scenes (their own seed; teal UNSEEN (shape, size)s included), prompts."""
    rng = np.random.default_rng([seed, 2])
    scenes = [sample_teal(rng, "heldout") for _ in range(n)]
    return scenes, [s.caption(rng) for s in scenes]


def blob_colours(image: np.ndarray, background: str) -> list[str]:
    """The colour of every object-sized blob, largest first, read as the scorer reads it
    (median of the blob's core pixels, nearest named colour) over the table with teal."""
    img = to_uint8(image)
    bg = background_colour(img)
    dist = np.linalg.norm(img.astype(np.float32) - bg, axis=-1)
    labels, n = ndimage.label(dist > FOREGROUND)
    areas = ndimage.sum_labels(dist > FOREGROUND, labels, index=np.arange(1, n + 1))
    colours = []
    for i in np.argsort(-areas, kind="stable"):
        if areas[i] < MIN_AREA * dist.size:
            break
        mask = labels == i + 1
        core = mask & (dist >= CORE * dist[mask].max())
        rgb = np.median(img[core].astype(np.float32), axis=0)
        colours.append(nearest(rgb, ALL_COLOURS, exclude={background}))
    return colours


def is_teal(image: np.ndarray, scene: TealScene) -> bool:
    """As many teal blobs as the prompt asks for teal objects."""
    want = scene.colours().count("teal")
    found = blob_colours(image, scene.scene.background)[: len(scene.scene.objects)]
    return found.count("teal") >= want


def evaluate_teal(
    base_pipe: TextToImagePipeline,
    lora_path: str,
    n: int = 100,
    scales: tuple[float, ...] = (1.0,),
    batch: int = 16,
    seed: int = 0,
) -> list[dict[str, float]]:
    """For each adapter scale: teal % with the adapter (and without it: the base model's rate,
    near 0), and the base model's shapes scores on ``n`` of its held-out prompts without and
    with the adapter. The base model's passes run once for all scales. ``base_pipe`` is left
    without adapters."""
    scenes, prompts = teal_scenes(n)
    unseen = [s.has_unseen() for s in scenes]

    def teal_rates() -> tuple[float, float]:
        images = base_pipe.generate_many(prompts, seed=seed, batch=batch, desc="eval teal")
        ok = np.array([is_teal(i, s) for i, s in zip(images, scenes, strict=True)])
        mask = np.array(unseen)
        return 100 * ok.mean(), 100 * ok[mask].mean() if mask.any() else float("nan")

    apply_loras(base_pipe, [])
    teal_base, _ = teal_rates()
    base = evaluate_shapes(base_pipe, n, seed=seed, batch=batch)
    results = []
    for scale in scales:
        out: dict[str, float] = {"prompts": n, "scale": scale, "teal base": teal_base}
        try:
            apply_loras(base_pipe, [(lora_path, scale)])
            out["teal lora"], out["teal lora, unseen"] = teal_rates()
            adapted = evaluate_shapes(base_pipe, n, seed=seed, batch=batch)
        finally:
            apply_loras(base_pipe, [])
        out["teal prompts, unseen"] = int(sum(unseen))
        for k in SHAPE_KEYS:
            out[f"{k} base"], out[f"{k} lora"] = base[k], adapted[k]
        results.append(out)
    return results


def table(r: dict[str, float]) -> str:
    rows = [
        f"| metric | base model | with the LoRA at scale {r['scale']:g} |",
        "|---|---|---|",
        f"| teal prompts made teal ({r['prompts']}) | {r['teal base']:.1f}% | "
        f"{r['teal lora']:.1f}% |",
        f"| ... asking for a {' teal '.join(UNSEEN[::-1])} (never in the LoRA's data; "
        f"{r['teal prompts, unseen']}) | | "
        f"{r['teal lora, unseen']:.1f}% |",
    ]
    for k in SHAPE_KEYS:
        base, lora = r[f"{k} base"], r[f"{k} lora"]
        rows.append(
            f"| shapes {k} ({r['prompts']} held-out prompts) | {base:.1f}% | "
            f"{lora:.1f}% ({lora - base:+.1f}) |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Score a teal LoRA on the shapes world.")
    ap.add_argument("lora", help="adapter folder (e.g. assets/loras/teal)")
    ap.add_argument("--model", default="shapes-t2i", help="base model (name or folder)")
    ap.add_argument("--prompts", type=int, default=100)
    ap.add_argument(
        "--scale",
        type=float,
        nargs="+",
        default=[1.0],
        help="adapter scale(s); the base model is scored once for all",
    )
    args = ap.parse_args(argv)
    from pipelines.registry import load_pipeline

    pipe = load_pipeline(args.model)
    for r in evaluate_teal(pipe, args.lora, args.prompts, tuple(args.scale)):
        print(table(r), end="\n\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

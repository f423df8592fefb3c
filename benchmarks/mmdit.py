"""The studio's core against diffusers' own transformer on a real architecture: SD3.5 Medium.

``python -m benchmarks.mmdit`` builds a random-weight ``SD3Transformer2DModel`` of SD3.5
Medium's config (width 1536, 24 heads, q/k RMSNorm, dual attention, position table 384) at a
reduced depth (``--depth``; every block costs the same, so ms/step scales with it), saves it in
each dtype, and then, in a fresh process per row (so peak memory is that row's alone), loads
it once as diffusers' model and once mapped into the studio's DiT, and times one transformer
call at the shapes of a real 512 x 512 step: batch 2 (classifier-free guidance), 1,024 image
tokens, 333 text tokens (77 CLIP + 256 T5). Prints a table: ms/step (median) and best, timed
with both implementations in one process and their reps interleaved (a shared machine drifts
by 10-20% between processes), the speed-up (ratio of medians), peak RSS (MB, each
implementation alone in its own process), and the two outputs' relative difference.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

SD35_MEDIUM = dict(
    sample_size=128,
    patch_size=2,
    in_channels=16,
    attention_head_dim=64,
    num_attention_heads=24,
    joint_attention_dim=4096,
    caption_projection_dim=1536,
    pooled_projection_dim=2048,
    out_channels=16,
    pos_embed_max_size=384,
    qk_norm="rms_norm",
)
TEXT_TOKENS = 77 + 256
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def build(folder: Path, depth: int, dtype: torch.dtype) -> None:
    from diffusers import SD3Transformer2DModel

    torch.manual_seed(0)
    dual = tuple(range(0, depth, 2))  # SD3.5 Medium: the first 13 of 24 blocks are dual
    model = SD3Transformer2DModel(**SD35_MEDIUM, num_layers=depth, dual_attention_layers=dual)
    model.to(dtype).save_pretrained(folder)


def inputs(size: int, dtype: torch.dtype, batch: int = 2):
    g = torch.Generator().manual_seed(1)
    side = size // 8
    x = torch.randn(batch, 16, side, side, generator=g).to(dtype)
    text = torch.randn(batch, TEXT_TOKENS, 4096, generator=g).to(dtype)
    pooled = torch.randn(batch, 2048, generator=g).to(dtype)
    return x, text, pooled, torch.full((batch,), 0.6, dtype=dtype)


def _load(impl: str, folder: Path, size: int, dtype: torch.dtype):
    """One implementation loaded from ``folder``: a call at the shapes of a 512 x 512 step."""
    x, text, pooled, sigma = inputs(size, dtype)
    if impl == "diffusers":
        from diffusers import SD3Transformer2DModel

        model = SD3Transformer2DModel.from_pretrained(folder, torch_dtype=dtype).eval()

        def call():
            return model(x, text, pooled, sigma * 1000, return_dict=False)[0]

        return call
    from dit.from_diffusers import load_transformer
    from dit.tokens import image_positions, patchify, text_positions, unpatchify

    model = load_transformer(folder, dtype=dtype)
    side = size // 16
    positions = {"text": text_positions(TEXT_TOKENS), "image": image_positions(side, side)}
    tokens = patchify(x, 2)

    def call():
        out = model({"text": text, "image": tokens}, positions, sigma, pooled=pooled)
        return unpatchify(out["image"], 2, side, side)

    return call


def _timed(call) -> float:
    start = time.perf_counter()
    call()
    return 1e3 * (time.perf_counter() - start)


def run_one(impl: str, folder: Path, size: int, dtype: torch.dtype, reps: int) -> dict:
    """Load one implementation alone (its peak RSS is this process's) and run it."""
    torch.set_num_threads(os.cpu_count() or 1)
    call = _load(impl, folder, size, dtype)
    with torch.inference_mode():
        out = call()  # warm-up
        times = [_timed(call) for _ in range(reps)]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "ms": statistics.median(times),
        "best_ms": min(times),
        "peak_mb": peak_mb,
        "out": out.float().flatten()[:4096].tolist(),
    }


def run_pair(folder: Path, size: int, dtype: torch.dtype, reps: int) -> dict:
    """Both implementations in one process, their reps interleaved (A B A B ...), so that a
    shared machine's drift between two processes does not land on one of them."""
    torch.set_num_threads(os.cpu_count() or 1)
    calls = {impl: _load(impl, folder, size, dtype) for impl in ("diffusers", "studio")}
    times: dict[str, list[float]] = {impl: [] for impl in calls}
    with torch.inference_mode():
        for call in calls.values():
            call()  # warm-up
        for _ in range(reps):
            for impl, call in calls.items():
                times[impl].append(_timed(call))
    return times


def _child(args: list[str]):
    """This module's hidden ``--one`` / ``--pair`` in a fresh process: its JSON answer."""
    cmd = [sys.executable, "-m", "benchmarks.mmdit", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.mmdit",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--depth", type=int, default=2, help="blocks (SD3.5 Medium has 24)")
    ap.add_argument("--size", type=int, default=512, help="image side in pixels")
    ap.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=sorted(DTYPES))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--one", nargs=3, metavar=("IMPL", "FOLDER", "DTYPE"), help=argparse.SUPPRESS)
    ap.add_argument("--pair", nargs=2, metavar=("FOLDER", "DTYPE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        impl, folder, dtype = args.one
        print(json.dumps(run_one(impl, Path(folder), args.size, DTYPES[dtype], args.reps)))
        return 0
    if args.pair:
        folder, dtype = args.pair
        print(json.dumps(run_pair(Path(folder), args.size, DTYPES[dtype], args.reps)))
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.dtypes:
            folder = Path(tmp) / name
            build(folder, args.depth, DTYPES[name])
            common = ["--size", str(args.size), "--reps", str(args.reps)]
            res = {
                impl: _child(["--one", impl, str(folder), name, *common])
                for impl in ("diffusers", "studio")
            }
            paired = _child(["--pair", str(folder), name, *common])  # the timing rows
            a, b = (torch.tensor(res[k]["out"]) for k in ("diffusers", "studio"))
            diff = float((a - b).norm() / a.norm())
            ms = {impl: statistics.median(t) for impl, t in paired.items()}
            for impl in ("diffusers", "studio"):
                rows.append(
                    [
                        impl,
                        name,
                        f"{ms[impl]:.0f}",
                        f"{min(paired[impl]):.0f}",
                        f"{ms['diffusers'] / ms[impl]:.2f}x",
                        f"{res[impl]['peak_mb']:.0f}",
                        "-" if impl == "diffusers" else f"{diff:.1e}",
                    ]
                )
    print(
        f"SD3.5 Medium config, {args.depth} of 24 blocks, random weights; one transformer call "
        f"at {args.size} x {args.size}, batch 2 (CFG), {TEXT_TOKENS} text tokens; "
        f"device cpu, {os.cpu_count()} threads"
    )
    header = [
        "implementation",
        "dtype",
        "ms/step",
        "best ms",
        "speed-up",
        "peak RSS MB",
        "rel. diff",
    ]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m benchmarks``: print the core speed table and the attention table.

Example: ``python -m benchmarks --presets tiny s b --compile s`` (CPU, fp32, batch 16).
"""

from __future__ import annotations

import argparse
import platform

import torch

from dit.runtime import keep_freed_memory

from .attention import ATTN_HEADER, SEQ_LENS, attention_rows
from .core import CORE_HEADER, TEXT_TOKENS, core_rows
from .timing import matmul_peak, matmul_throughput


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def line(cells):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    ap.add_argument("--presets", nargs="+", default=["tiny", "s", "b"])
    ap.add_argument("--compile", nargs="*", default=["s"], help="presets to also time compiled")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--attention-tokens", type=int, nargs="*", default=list(SEQ_LENS))
    ap.add_argument("--skip-core", action="store_true")
    args = ap.parse_args(argv)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    allocator = keep_freed_memory()  # as every studio entry point does (dit/runtime.py)

    throughput = matmul_throughput(device, dtype)
    peak = matmul_peak(throughput)
    sizes = "; ".join(
        f"{lib} " + ", ".join(f"{n}: {v:.0f}" for n, v in by_size.items())
        for lib, by_size in throughput.items()
    )
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(
        f"device: {device.type} ({name or platform.machine()}), {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, {args.dtype}, freed memory kept (mallopt): {allocator}\n"
        f"matmul GFLOP/s by square size ({sizes})\n"
        f"peak = best of 1024-4096 = {peak:.1f} GFLOP/s\n"
    )
    if not args.skip_core:
        print(f"Forward per step: batch {args.batch}, 256 image + {TEXT_TOKENS} text tokens")
        rows, peaks = core_rows(args.presets, args.batch, set(args.compile), device, dtype)
        print(table(CORE_HEADER, rows))
        print("% peak: against a matmul peak timed between the same reps\n" + "\n".join(peaks))
        print()
    if args.attention_tokens:
        print(f"Attention backends: batch 1, 4 heads x 64, {args.dtype}")
        print(table(ATTN_HEADER, attention_rows(device, dtype, args.attention_tokens)))


if __name__ == "__main__":
    main()

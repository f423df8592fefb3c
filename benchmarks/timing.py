"""Timing, FLOP counting, peak-memory and matmul-peak helpers shared by the benchmark tables."""

from __future__ import annotations

import multiprocessing as mp
import resource
import statistics
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device, warmup: int = 2, reps: int = 7):
    """Median and best wall time (s) of ``fn`` over ``reps`` runs after ``warmup``."""
    with torch.inference_mode():
        for _ in range(warmup):
            fn()
        sync(device)
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            fn()
            sync(device)
            times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def count_flops(fn: Callable[[], object]) -> int:
    """Model FLOPs of one call, counted by PyTorch (matmuls and attention; 1 FMA = 2 FLOPs)."""
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def matmul_peak(device: torch.device, dtype: torch.dtype = torch.float32) -> float:
    """The machine's measured matmul peak, GFLOP/s: best of large square matmuls."""
    best = 0.0
    for n in (1024, 2048, 3072):
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        reps = max(3, int(3e10 / (2 * n**3))) if device.type == "cpu" else 20
        _, best_t = time_call(lambda a=a, b=b: a @ b, device, warmup=2, reps=reps)
        best = max(best, 2 * n**3 / best_t / 1e9)
    return best


def _child_peak(fn: Callable[..., object], args: tuple, queue: mp.Queue) -> None:
    try:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with torch.inference_mode():
            fn(*args)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        queue.put((after - before) * 1024)  # ru_maxrss is in KiB on Linux
    except Exception as e:  # reported in the table, not raised: one size may not fit
        queue.put(repr(e))


def peak_memory(fn: Callable[..., object], args: tuple, device: torch.device) -> int | str:
    """Extra peak memory (bytes) of ``fn(*args)``. CUDA: the allocator's peak. CPU: the peak
    RSS growth of a fresh (spawned) process that runs it once; ``fn`` must be module-level,
    and a fork would hang in OpenMP once torch has started its threads."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        with torch.inference_mode():
            fn(*args)
        return torch.cuda.max_memory_allocated(device) - base
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child_peak, args=(fn, args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result

"""Timing, FLOP counting, peak-memory and matmul-peak helpers shared by the benchmark tables."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from dit import cpu_flash
from dit.linear import uses_onednn


# PyTorch's counter knows the CUDA attention kernels but not the CPU one that
# ``scaled_dot_product_attention`` dispatches to: without this, attention's two matmuls
# (4 * B * H * N^2 * Dh FLOPs per call) would silently count as zero on the CPU, for our
# model and diffusers' alike. Same formula as the CUDA kernels.
def _cpu_attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _onednn_linear_flops(x_shape, w_shape, *args, out_shape=None, **kwargs):
    # dit.linear's CPU path: (..., K) @ (N, K)^T, 2 FLOPs per multiply-add, as for addmm.
    return 2 * math.prod(x_shape[:-1]) * w_shape[1] * w_shape[0]


_CUSTOM_FLOPS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops,
    # dit.cpu_flash's kernel (the "onednn" backend): (q, k, v, mask), the same two matmuls
    cpu_flash.OP: _cpu_attention_flops,
}
if hasattr(torch.ops.mkldnn, "_linear_pointwise"):  # x86 builds
    _CUSTOM_FLOPS[torch.ops.mkldnn._linear_pointwise] = _onednn_linear_flops


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sample_calls(
    fns: dict[str, Callable[[], object]], device: torch.device, warmup: int = 2, reps: int = 7
) -> dict[str, list[float]]:
    """Wall times (s) of ``reps`` calls of each function. The functions take turns rep by rep,
    so drift in a shared machine's speed hits all of them alike instead of whichever ran last."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    with torch.inference_mode():
        for _ in range(warmup):
            for fn in fns.values():
                fn()
        sync(device)
        for _ in range(reps):
            for name, fn in fns.items():
                start = time.perf_counter()
                fn()
                sync(device)
                times[name].append(time.perf_counter() - start)
    return times


def time_call(fn: Callable[[], object], device: torch.device, warmup: int = 2, reps: int = 7):
    """Median wall time (s) of ``fn`` over ``reps`` runs after ``warmup``."""
    return statistics.median(sample_calls({"fn": fn}, device, warmup, reps)["fn"])


def count_flops(fn: Callable[[], object]) -> int:
    """Model FLOPs of one call, counted by PyTorch (matmuls and attention; 1 FMA = 2 FLOPs)."""
    counter = FlopCounterMode(display=False, custom_mapping=_CUSTOM_FLOPS)
    with torch.inference_mode(), counter:
        fn()
    return counter.get_total_flops()


PEAK_SIZES = (1024, 2048, 4096)


def matmul_libraries(device: torch.device, dtype: torch.dtype) -> dict[str, Callable]:
    """The matmuls a peak is measured with: ``torch.matmul`` (MKL on an x86 CPU) and, where
    the studio uses it, oneDNN through :mod:`dit.linear`. The peak must be the best the
    machine does: on AMD CPUs MKL's sgemm runs well below oneDNN."""
    libraries = {"torch.matmul": lambda a, b: a @ b}
    probe = torch.empty(1, 1, device=device, dtype=dtype)
    if uses_onednn(probe, probe):
        libraries["oneDNN"] = lambda a, b: torch.ops.mkldnn._linear_pointwise(
            a, b, None, "none", [], ""
        )
    return libraries


PROBE_SIZE = 2048


def _square_matmuls(device: torch.device, dtype: torch.dtype, n: int, prefix: str = ""):
    """``{prefix + library: fn}``: one n x n matmul per library (2 n^3 FLOPs each)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    libraries = matmul_libraries(device, dtype)
    return {prefix + name: lambda f=f: f(a, b) for name, f in libraries.items()}


def matmul_probes(device: torch.device, dtype: torch.dtype) -> dict[str, Callable]:
    """``{"peak: <library>": fn}`` at PROBE_SIZE, to be timed interleaved with the model rows
    so that the peak sees the same machine they do."""
    return _square_matmuls(device, dtype, PROBE_SIZE, prefix="peak: ")


def matmul_throughput(device: torch.device, dtype: torch.dtype, sizes=(512, *PEAK_SIZES)):
    """Best GFLOP/s of square matmuls of each size, per library (:func:`matmul_libraries`)."""
    out: dict[str, dict[int, float]] = {name: {} for name in matmul_libraries(device, dtype)}
    for n in sizes:
        reps = max(5, int(6e10 / (2 * n**3))) if device.type == "cpu" else 20
        fns = _square_matmuls(device, dtype, n)
        # A peak is the best the machine does: the fastest rep, not the median.
        for name, ts in sample_calls(fns, device, warmup=1, reps=reps).items():
            out[name][n] = 2 * n**3 / min(ts) / 1e9
    return out


def matmul_peak(throughput: dict[str, dict[int, float]]) -> float:
    """The machine's measured matmul peak: the best *large* square matmul (1024-4096) of any
    library, the usual meaning of peak; a cache-resident 512 can run faster and is printed."""
    return max(v for sizes in throughput.values() for n, v in sizes.items() if n in PEAK_SIZES)


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def peak_memory(fn: Callable[..., object], args: tuple, device: torch.device) -> int | str:
    """Extra peak memory (bytes) of ``fn(*args)``. CUDA: the allocator's peak. CPU (Linux):
    reset this process's resident high-water mark (``clear_refs`` = 5), run the call, and
    read the new mark (VmHWM) above the resident size before it."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        with torch.inference_mode():
            fn(*args)
        return torch.cuda.max_memory_allocated(device) - base
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = _status_kib("VmRSS")
        with torch.inference_mode():
            fn(*args)
        return (_status_kib("VmHWM") - before) * 1024
    except OSError as e:  # not Linux: say so in the table rather than guess
        return f"unavailable ({e.__class__.__name__})"

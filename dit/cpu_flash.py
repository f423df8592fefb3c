"""fp32 attention on the CPU with oneDNN's batch-reduce GEMM: the ``onednn`` attention backend.

Why a kernel of our own: PyTorch's fp32 CPU flash attention runs its inner GEMMs on MKL's
sgemm, which takes its AVX2 path on AMD CPUs; at the preset-``s`` shape (16 x 3 heads x 272
tokens x 64) it reaches ~115-130 GFLOP/s on the 2-core AMD EPYC that builds this project,
while oneDNN's brgemm micro-kernel (``at::native::cpublas::brgemm``, the one PyTorch's own
bf16 flash kernel uses) does ~108 GFLOP/s *per core* at those sizes. This is the same
algorithm as PyTorch's kernel (scores for a block of queries, softmax, times values), on
brgemm, for the sizes the studio runs: every key of a block at once, so up to
``MAX_KEYS`` keys; longer sequences go to SDPA.

The C++ source is compiled on first use with the machine's C++ compiler (about 45 s on 2 cores,
then cached by ``torch.utils.cpp_extension``), so nothing picks this backend silently in eager
code: ask for it by name (``DIT_ATTENTION_BACKEND=onednn``), or use the compiled path
(:mod:`dit.fast`), which already needs the compiler for inductor.
"""

from __future__ import annotations

import functools
import os
import shutil
import warnings
from pathlib import Path

import torch

from .linear import X86_ONEDNN

MAX_KEYS = 4096  # per-thread score buffer: 64 queries x keys x 4 bytes (1 MB at 4096)

SOURCE = Path(__file__).with_name("cpu_flash.cpp")


def _isa() -> tuple[str, list[str], list[str]]:
    """The vector ISA inductor would compile for here: (name, compiler flags, macros)."""
    from torch._inductor.cpu_vec_isa import pick_vec_isa

    isa = pick_vec_isa()
    if not isa:
        return "default", [], []
    return str(isa).split()[0], isa.build_arch_flags().split(), list(isa.build_macro())


def _available() -> bool:
    """x86 with oneDNN in this build and a C++ compiler to build the kernel with."""
    return X86_ONEDNN and shutil.which("c++") is not None


AVAILABLE = _available()  # read once: torch.compile traces past a constant, not platform calls


def available() -> bool:
    return AVAILABLE


@functools.cache
def _extension():
    from torch.utils.cpp_extension import load

    try:  # the PyPI wheel's binary: cpp_extension looks for ninja on PATH, which may lack it
        import ninja

        os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
    except ImportError:
        pass

    name, flags, macros = _isa()
    return load(
        f"dit_cpu_flash_{name}",  # one build per ISA: a cache dir shared by two CPUs stays right
        sources=[str(SOURCE)],
        # -fopenmp: at::parallel_for is inline OpenMP code, serial without the flag
        extra_cflags=["-O3", "-fopenmp", *flags, *(f"-D{m}" for m in macros)],
        extra_ldflags=["-fopenmp"],
    )


def build() -> bool:
    """Build the kernel now (or load the cached build); on failure warn and fall back to SDPA.

    :func:`dit.fast.compile_model` calls this before tracing, so a machine that cannot
    build it (no Python headers, say) loses speed, not the compiled path.
    """
    global AVAILABLE
    if AVAILABLE:
        try:
            _extension()
        except Exception as err:  # a compiler's failure comes as several exception types
            AVAILABLE = False
            warnings.warn(
                f"the onednn attention kernel could not be built, using SDPA: {err}", stacklevel=2
            )
    return AVAILABLE


def supports(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> bool:
    """Whether the kernel takes this call (else the caller uses SDPA): CPU fp32 inference."""
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    return (
        not needs_grad
        and q.device.type == "cpu"
        and all(t.dtype == torch.float32 and t.stride(-1) == 1 for t in (q, k, v))
        and k.shape[2] <= MAX_KEYS
    )


@torch.library.custom_op("dit::cpu_flash_attention", mutates_args=())
def cpu_flash_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """q: (B, H, Nq, Dh), k, v: (B, H, Nk, Dh) fp32; mask: (B, Nk) bool, True = attend."""
    empty = torch.empty(0, dtype=torch.bool)
    return _extension().attention(q, k, v, empty if mask is None else mask)


@cpu_flash_attention.register_fake
def _(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None):
    b, h, n, d = q.shape
    return q.new_empty((b, n, h, d)).transpose(1, 2)


OP = torch.ops.dit.cpu_flash_attention  # the op as FLOP counters and profilers name it

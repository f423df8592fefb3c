"""The linear seam: every projection in the DiT core is a :class:`Linear`.

``Linear`` is an ``nn.Linear`` (same weights, same state dict, same autograd), except that
inference on an x86 CPU runs on oneDNN instead of PyTorch's default BLAS. Why: PyTorch's
CPU ``addmm`` calls MKL's sgemm, which takes its AVX2 path on AMD CPUs; oneDNN JIT-compiles
AVX-512 kernels for whatever CPU it finds. Measured on the 2-core AMD EPYC (AVX-512) that
builds this project, fp32, at the preset-``s`` shapes (M = 4096 tokens, K and N 192-768):
MKL 134-173 GFLOP/s, oneDNN 178-197; on large square matmuls 155-186 against 206-213.
oneDNN also applies the MLP's GELU in the GEMM's epilogue (``linear(..., gelu=True)``).

oneDNN's op has no backward, so anything that may need gradients (training) takes the plain
``F.linear`` path, and so does every other device and dtype. ``DIT_LINEAR_BACKEND=aten``
turns the oneDNN path off for a process. Results agree with ``F.linear`` to float rounding
(``tests/test_linear.py``).
"""

from __future__ import annotations

import contextlib
import os
import platform
import weakref
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

ENV_VAR = "DIT_LINEAR_BACKEND"
BACKENDS = ("auto", "aten")


# oneDNN is in this build of PyTorch, on the x86 CPUs it was measured on (the attention
# kernel of dit/cpu_flash.py needs the same).
X86_ONEDNN = (
    platform.machine().lower() in ("x86_64", "amd64") and torch.backends.mkldnn.is_available()
)


def _onednn_enabled() -> bool:
    """oneDNN's linear is in this build of PyTorch (x86 wheels have it) and not turned off."""
    name = os.environ.get(ENV_VAR, "auto")
    if name not in BACKENDS:
        raise ValueError(f"{ENV_VAR}={name!r} is unknown: choose one of {list(BACKENDS)}")
    return name == "auto" and X86_ONEDNN and hasattr(torch.ops.mkldnn, "_linear_pointwise")


# Read once per process: a constant is free per call, and torch.compile can trace past it.
ONEDNN = _onednn_enabled()
# bf16 only where the CPU has bf16 instructions (oneDNN refuses it elsewhere).
_ONEDNN_DTYPES = (torch.float32,) + (
    (torch.bfloat16,) if ONEDNN and torch.ops.mkldnn._is_mkldnn_bf16_supported() else ()
)


@contextlib.contextmanager
def aten_linear() -> Iterator[None]:
    """Every :class:`Linear` call inside runs on ``F.linear`` (like-for-like benchmark rows)."""
    global ONEDNN
    saved, ONEDNN = ONEDNN, False
    try:
        yield
    finally:
        ONEDNN = saved


def uses_onednn(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether :func:`linear` runs this call on oneDNN (CPU, fp32/bf16, no gradient wanted)."""
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    return (
        not needs_grad
        and x.device.type == "cpu"
        and x.dtype in _ONEDNN_DTYPES
        and weight.dtype == x.dtype
        and ONEDNN
    )


# Weights repacked into oneDNN's blocked layout, kept per weight tensor (dropped with it) and
# rebuilt when the weight changes in place (its version), one per row count. Packing once
# saves a reorder per call: 5-25% per GEMM at these shapes, most on the small ones (text,
# modulation). Only the compiled path packs, as it promises fixed weights; eager would need
# a second copy of every weight.
# (Keyed by id with a weak reference: tensors compare elementwise, so no WeakKeyDictionary.)
_PACKED: dict[int, tuple[weakref.ref, int, dict[int, torch.Tensor]]] = {}
_ROW_COUNTS_KEPT = 4  # e.g. a batch with and without guidance, and the text stream's


def _packed(weight: torch.Tensor, rows: int) -> torch.Tensor:
    """``weight`` in oneDNN's layout for ``rows`` input rows (the layout depends on them)."""
    hit = _PACKED.get(id(weight))
    if hit is None or hit[0]() is not weight:  # first sight of this tensor
        weakref.finalize(weight, _PACKED.pop, id(weight), None)
        hit = None
    if hit is None or hit[1] != weight._version:
        hit = _PACKED[id(weight)] = (weakref.ref(weight), weight._version, {})
    by_rows = hit[2]
    if rows not in by_rows:
        if len(by_rows) >= _ROW_COUNTS_KEPT:
            by_rows.pop(next(iter(by_rows)))
        by_rows[rows] = torch.ops.mkldnn._reorder_linear_weight(weight, rows)
    return by_rows[rows]


# Eager calls reorder the weight every time, which only pays from about this many rows
# (measured: 256 x 192 -> 192 takes 128 us on MKL, 148 on oneDNN; 1024 rows 461 against 410).
EAGER_MIN_ROWS = 512


GELUS = ("none", "tanh")  # F.gelu's ``approximate``: exact (erf), or the tanh form (SD3, FLUX)


def _onednn(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    gelu: bool,
    approximate: str = "none",
):
    # oneDNN's GELU algorithms carry F.gelu's names: "none" is exact (erf), "tanh" the tanh form.
    attr, algorithm = ("gelu", approximate) if gelu else ("none", "")
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, attr, [], algorithm)


# Inside torch.compile the call goes through this opaque op: inductor's own oneDNN passes
# expect to have packed the weight themselves and reject an op they did not place.
@torch.library.custom_op("dit::onednn_linear", mutates_args=())
def _onednn_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    gelu: bool,
    approximate: str = "none",
) -> torch.Tensor:
    return _onednn(x, _packed(weight, x.numel() // x.shape[-1]), bias, gelu, approximate)


@_onednn_linear.register_fake
def _(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    gelu: bool,
    approximate: str = "none",
):
    return x.new_empty((*x.shape[:-1], weight.shape[0]))


def linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    gelu: bool = False,
    approximate: str = "none",
) -> torch.Tensor:
    """(..., K) @ (N, K)^T + (N,)  ->  (..., N); then the GELU if ``gelu`` (exact, or the tanh
    form with ``approximate="tanh"``; on oneDNN in the GEMM's epilogue: one pass fewer)."""
    if approximate not in GELUS:
        raise ValueError(f"approximate={approximate!r}: choose one of {GELUS}")
    if uses_onednn(x, weight):
        if torch.compiler.is_compiling():
            return _onednn_linear(x, weight, bias, gelu, approximate)
        if x.numel() >= EAGER_MIN_ROWS * x.shape[-1]:
            return _onednn(x, weight, bias, gelu, approximate)
    y = F.linear(x, weight, bias)
    return F.gelu(y, approximate=approximate) if gelu else y


class Linear(nn.Linear):
    """``nn.Linear`` through the seam: same parameters, same state dict, same autograd."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)

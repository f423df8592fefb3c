"""The attention seam: every block calls :func:`attention`, and only this file knows backends.

Backends take and return (B, H, N, Dh) tensors, so switching one never changes a layout.
Choose one by name (``attention(..., backend="math")``), for a region of code
(``with use_backend("sdpa"): ...``), for a process (``DIT_ATTENTION_BACKEND=math``), or leave
it to ``auto``: xformers on CUDA when installed; inside ``torch.compile`` on an x86 CPU the
``onednn`` kernel (:mod:`dit.cpu_flash`, built with the C++ compiler inductor needs anyway);
else PyTorch SDPA.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib.util
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import cpu_flash

ENV_VAR = "DIT_ATTENTION_BACKEND"
_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("dit_attention", default=None)


@dataclass(frozen=True)
class Backend:
    name: str
    fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
    available: Callable[[], bool]
    note: str


def _additive_mask(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """(B, Nk) bool, True = real token  ->  (B, 1, 1, Nk) additive bias (0 or -inf)."""
    if mask is None:
        return None
    bias = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    bias.masked_fill_(~mask, float("-inf"))
    return bias[:, None, None, :]


def _math(q, k, v, mask):
    # The reference every other backend is tested against: softmax(q k^T / sqrt(d)) v.
    scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))  # (B, H, Nq, Nk)
    bias = _additive_mask(mask, scores.dtype)
    if bias is not None:
        scores = scores + bias
    return scores.softmax(dim=-1) @ v  # (B, H, Nq, Dh)


def _sdpa(q, k, v, mask):
    # A bool mask (True = attend) keeps SDPA on its fused CPU / flash / efficient kernels.
    attn_mask = None if mask is None else mask[:, None, None, :]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)


def _xformers_available() -> bool:
    return torch.cuda.is_available() and importlib.util.find_spec("xformers") is not None


def _xformers(q, k, v, mask):
    import xformers.ops as xops

    bias = None
    if mask is not None:
        # xformers wants a (B, H, Nq, Nk) bias whose last dim is stored 8-aligned.
        b, h, n, nk = q.shape[0], q.shape[1], q.shape[2], k.shape[2]
        store = torch.zeros(b, h, n, (nk + 7) // 8 * 8, dtype=q.dtype, device=q.device)
        bias = store[..., :nk]
        bias.copy_(_additive_mask(mask, q.dtype).expand(b, h, n, nk))
    # xformers' layout is (B, N, H, Dh); the transposes keep the seam's layout fixed.
    out = xops.memory_efficient_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_bias=bias
    )
    return out.transpose(1, 2)


def _onednn(q, k, v, mask):
    # CPU fp32 inference on the oneDNN kernel; anything else (CUDA, bf16, gradients) on SDPA.
    if cpu_flash.supports(q, k, v):
        return cpu_flash.cpu_flash_attention(q, k, v, mask)
    return _sdpa(q, k, v, mask)


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend("sdpa", _sdpa, lambda: True, "torch.nn.functional.scaled_dot_product_attention"),
        Backend("math", _math, lambda: True, "plain softmax(QK^T)V reference"),
        Backend("xformers", _xformers, _xformers_available, "xformers memory-efficient (CUDA)"),
        Backend("onednn", _onednn, cpu_flash.available, "fp32 CPU flash attention on oneDNN"),
    )
}


def available_backends() -> list[str]:
    return [name for name, b in BACKENDS.items() if b.available()]


def _constant_under_compile(fn):
    """``torch.compiler.assume_constant_result``, written out: in torch 2.11 it only sets this
    attribute (torch/_dynamo/decorators.py), but reaching it imports ``torch._dynamo``, about
    1.1 s of every cold start on two cores for a process that never compiles."""
    fn._dynamo_marked_constant = True
    return fn


@_constant_under_compile
def _selected_name() -> str:
    # Read once at trace time under torch.compile (a ContextVar would break the graph);
    # a compiled model keeps the backend it was traced with.
    return _current.get() or os.environ.get(ENV_VAR) or "auto"


def resolve_backend(name: str | None = None) -> Backend:
    """Name given > context manager > environment variable > auto."""
    name = name or _selected_name()
    if name == "auto":
        if _xformers_available():
            name = "xformers"
        elif torch.compiler.is_compiling() and cpu_flash.available():
            name = "onednn"  # falls back to SDPA itself off the CPU or outside fp32
        else:
            name = "sdpa"
    backend = BACKENDS.get(name)
    if backend is None or not backend.available():
        why = "unknown" if backend is None else "not available on this machine"
        raise ValueError(
            f"attention backend {name!r} is {why}; available: {available_backends()} or 'auto'"
        )
    return backend


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Use backend ``name`` for every attention call inside the block (thread/task local)."""
    resolve_backend(name)  # fail early, at the ``with``
    token = _current.set(name)
    try:
        yield
    finally:
        _current.reset(token)


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """Multi-head attention. q: (B, H, Nq, Dh); k, v: (B, H, Nk, Dh); mask: (B, Nk) bool,
    True for real tokens, False for padding. Returns (B, H, Nq, Dh)."""
    return resolve_backend(backend).fn(q, k, v, mask)

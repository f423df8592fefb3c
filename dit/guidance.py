"""Classifier-free guidance as a wrapper around a model function (both sampler families).

``guided(fn, cond, uncond, scale)`` returns ``g(x, t)`` that runs the conditional and the
unconditional pass as **one** batch and mixes them: ``u + scale * (c - u)``. ``scale`` may be
a dict per output stream (LTX-2's modality-aware guidance); outside ``interval`` (a range of
t) the unconditional pass is skipped and the conditional output returned as is. At scale 1
(every stream's, for a dict) guidance is off: ``g`` is the conditional call alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from .tree import State, tree_map

CondFn = Callable[[State, torch.Tensor, Any], State]  # (x, t, cond) -> output


def _cat(a: Any, b: Any) -> Any:
    if a is None:
        return None
    if isinstance(a, dict):
        return {k: _cat(a[k], b[k]) for k in a}
    return torch.cat([a, b], dim=0)


def _check_scale(name: str, s: float) -> None:
    if not isinstance(s, (int, float)) or not math.isfinite(s):
        raise ValueError(f"guidance {name}={s!r} is invalid: use a finite number (1 = off)")


def guided(
    fn: CondFn,
    cond: Any,
    uncond: Any,
    scale: float | dict[str, float],
    interval: tuple[float, float] = (0.0, 1.0),
) -> Callable[[State, torch.Tensor], State]:
    """Wrap ``fn(x, t, cond)``; ``cond``/``uncond`` are tensors or dicts with batch dim first."""
    scales = scale if isinstance(scale, dict) else None
    for k, s in (scales or {"scale": scale}).items():
        _check_scale(k, s)
    lo, hi = interval
    if all(s == 1 for s in (scales or {"scale": scale}).values()):
        return lambda x, t: fn(x, t, cond)

    def mix(key: str | None, c: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        s = scales.get(key, 1.0) if scales is not None else scale
        return u + s * (c - u)

    def g(x: State, t: torch.Tensor) -> State:
        tf = float(t.flatten()[0])
        if not lo <= tf <= hi:
            return fn(x, t, cond)
        out = fn(tree_map(lambda a: torch.cat([a, a], 0), x), torch.cat([t, t]), _cat(cond, uncond))
        if isinstance(out, dict):
            return {k: mix(k, *v.chunk(2, dim=0)) for k, v in out.items()}
        return mix(None, *out.chunk(2, dim=0))

    return g

"""Arithmetic on sampler states that are a tensor or a dict of tensors (one per stream)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

State = torch.Tensor | dict[str, torch.Tensor]


def tree_map(fn: Callable[..., torch.Tensor], *trees: Any) -> Any:
    """Apply ``fn`` leaf-wise over tensors or dicts of tensors with the same keys."""
    first = trees[0]
    if isinstance(first, dict):
        return {k: fn(*(t[k] for t in trees)) for k in first}
    return fn(*trees)


def axpy(x: State, a: float, y: State) -> State:
    """x + a * y, leaf-wise."""
    return tree_map(lambda xi, yi: xi + a * yi, x, y)


def batch_size(tree: Any) -> int:
    leaf = next(iter(tree.values())) if isinstance(tree, dict) else tree
    return leaf.shape[0]

"""What every procedural world's dataset shares: items regenerated exactly from (seed, index),
and pixels as the float tensors the trainer reads."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

SPLITS = ("train", "heldout")


class WorldDataset(Dataset):
    """n items regenerated exactly from (seed, index): nothing is stored on disk. A world says
    how one item is made from its generator (``make``)."""

    def __init__(self, n: int, seed: int = 0, split: str = "train", phrasing: str = "train"):
        """``phrasing``: the captions' (``grammar.PHRASINGS``): "train" for a model that reads
        free phrasing itself, "canonical" for one that reads it through a rewriter."""
        from .grammar import check_phrasing

        if split not in SPLITS:
            raise ValueError(f"split={split!r}; choose one of {SPLITS}")
        check_phrasing(phrasing)
        self.n, self.seed, self.split, self.phrasing = n, seed, split, phrasing

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.n:
            raise IndexError(index)
        return self.make(np.random.default_rng([self.seed, index]))

    def make(self, rng: np.random.Generator) -> dict:
        raise NotImplementedError


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float (..., 3, H, W) in [-1, 1]."""
    return torch.from_numpy(np.array(pixels)).movedim(-1, -3).float() / 127.5 - 1.0  # a copy

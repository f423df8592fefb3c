"""Factorised FSQ codes: one embedding and one softmax per level instead of one per code.

An FSQ code is a tuple of level digits (d_0, ..., d_{L-1}), index ``sum d_l * prod(levels[:l])``
(conditioning/fsq.py's mixed radix). A 12,800-code codebook ([8, 8, 8, 5, 5]) as one embedding
row and one logit per code costs 2 x 12,800 x width parameters and learns each code on its own;
factorised, the input is the sum of one embedding per digit and the head predicts each digit,
34 rows and 34 outputs. The head's per-level log-softmaxes are summed into the joint
log-probabilities over every code, (B, N, prod(levels)), so the masked loss and the MaskGIT /
MAGNeT samplers see the same (B, N, K) logits either way: cross-entropy on them is the sum of
the per-level cross-entropies, and sampling them (Gumbel-max, temperature, guidance, which are
additive in the logits) samples every level independently given the context.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def mixed_radix_basis(levels: tuple[int, ...]) -> torch.Tensor:
    """(L,) place values of an FSQ code's level digits, level 0 least significant (the index
    conditioning/fsq.py gives a code)."""
    return torch.tensor([math.prod(levels[:i]) for i in range(len(levels))])


class FactorisedCodeEmbedding(nn.Module):
    """(B, N) codes in [0, K] (K = prod(levels) is the [MASK] token) -> (B, N, width)."""

    def __init__(self, levels: tuple[int, ...], width: int) -> None:
        super().__init__()
        self.codebook_size = math.prod(levels)
        # Rows: every level's digits one after another, then the mask token.
        self.table = nn.Embedding(sum(levels) + 1, width)
        offsets = torch.tensor([0, *levels[:-1]]).cumsum(0)
        self.register_buffer("offsets", offsets, persistent=False)  # (L,)
        self.register_buffer("basis", mixed_radix_basis(levels), persistent=False)  # (L,)
        self.register_buffer("levels", torch.tensor(levels), persistent=False)  # (L,)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        masked = codes == self.codebook_size  # (B, N)
        digits = (codes.clamp(max=self.codebook_size - 1)[..., None] // self.basis) % self.levels
        x = self.table(digits + self.offsets).sum(-2)  # (B, N, L, D) -> (B, N, D)
        mask_row = self.table.weight[-1].to(x.dtype)  # (D,)
        return torch.where(masked[..., None], mask_row, x)


def joint_logits(level_logits: torch.Tensor, levels: tuple[int, ...]) -> torch.Tensor:
    """(..., sum(levels)) per-level logits -> (..., prod(levels)) joint log-probabilities.

    Index order matches the mixed radix: the last level varies slowest.
    """
    parts = [p.float().log_softmax(-1) for p in level_logits.split(list(levels), dim=-1)]
    out = parts[-1]  # (..., L_last)
    for p in reversed(parts[:-1]):
        out = (out[..., :, None] + p[..., None, :]).flatten(-2)  # (..., prod so far * L_l)
    return out

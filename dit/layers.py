"""Small building blocks: timestep features, adaLN modulation, the per-stream MLP, heads."""

from __future__ import annotations

import math

import torch
from torch import nn

from .linear import Linear, linear


def timestep_features(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """(B,) times in [0, 1]  ->  (B, dim) sinusoidal features (scaled by 1000 only here)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = (1000.0 * t.float())[:, None] * freqs[None]  # (B, half)
    return torch.cat([args.cos(), args.sin()], dim=-1)


class TimestepEmbedder(nn.Module):
    """Shared across streams (LTX-2's cross-modality AdaLN): same time -> same embedding."""

    def __init__(self, freq_dim: int, width: int, pooled_dim: int) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(Linear(freq_dim, width), nn.SiLU(), Linear(width, width))
        self.pooled = (
            nn.Sequential(Linear(pooled_dim, width), nn.SiLU(), Linear(width, width))
            if pooled_dim
            else None
        )

    def forward(self, t: torch.Tensor, pooled: torch.Tensor | None) -> torch.Tensor:
        c = self.mlp(timestep_features(t, self.freq_dim).to(self.mlp[0].weight.dtype))  # (B, D)
        if self.pooled is not None and pooled is not None:
            c = c + self.pooled(pooled.to(c.dtype))
        return c


class Modulation(nn.Module):
    """adaLN-Zero: c -> n chunks of (B, 1, D). Zero-initialised, so a new block is identity."""

    def __init__(self, width: int, n: int) -> None:
        super().__init__()
        self.n = n
        self.linear = Linear(width, n * width)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, c: torch.Tensor) -> list[torch.Tensor]:
        return self.linear(nn.functional.silu(c))[:, None].chunk(self.n, dim=-1)

    def per_token(self, c: torch.Tensor) -> list[torch.Tensor]:
        """(B, N, D) conditions, one per token -> n chunks of (B, N, D)."""
        return self.linear(nn.functional.silu(c)).chunk(self.n, dim=-1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x * (1 + scale) + shift in one pass over x (addcmul) rather than two."""
    return torch.addcmul(shift, x, 1 + scale)


class MLP(nn.Module):
    """fc2(GELU(fc1(x))); ``approximate="tanh"`` for the tanh GELU (SD3, FLUX.1)."""

    def __init__(self, width: int, hidden: int, approximate: str = "none") -> None:
        super().__init__()
        self.fc1 = Linear(width, hidden)
        self.fc2 = Linear(hidden, width)
        self.approximate = approximate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.fc1, Linear):  # fc1 and GELU in one call (dit/linear.py)
            return self.fc2(linear(x, self.fc1.weight, self.fc1.bias, True, self.approximate))
        # An adapter (peft's LoRA) wraps fc1: its update must be added before the GELU.
        return self.fc2(nn.functional.gelu(self.fc1(x), approximate=self.approximate))


class FinalLayer(nn.Module):
    """Modulated norm + linear read-out; zero-initialised so a new model outputs zeros."""

    def __init__(self, width: int, out_dim: int, eps: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=eps)
        self.mod = Modulation(width, 2)
        self.linear = Linear(width, out_dim)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.mod(c)
        return self.linear(modulate(self.norm(x), shift, scale))

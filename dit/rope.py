"""N-axis rotary position embeddings from explicit position ids (Lumina-T2X, Flux).

Each token carries one position per axis of ``config.ROPE_AXES`` = (text, time, y, x): time
in seconds, y / x in patch units, text as a token index. Each axis owns a slice of the head
dim; rotating q and k by the angle ``pos * freq`` makes every attention score depend only on
position *offsets*, so one model serves any size, frame count, fps and duration.
"""

from __future__ import annotations

import torch


def rope_angles(
    pos: torch.Tensor, dims: tuple[int, ...], theta: float, scales: tuple[float, ...]
) -> torch.Tensor:
    """pos: (B, N, A) positions, one column per axis  ->  (B, N, Dh/2) angles in radians."""
    parts = []
    for a, (d, s) in enumerate(zip(dims, scales, strict=True)):
        if d == 0:
            continue
        inv_freq = theta ** (-torch.arange(0, d, 2, device=pos.device, dtype=torch.float64) / d)
        # float64 for the product: positions in seconds times large scales lose phase in fp32.
        parts.append((pos[..., a : a + 1].double() * s) * inv_freq)  # (B, N, d/2)
    return torch.cat(parts, dim=-1)  # float64; cast after cos/sin


def rope_cos_sin(angles: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, N, Dh/2) angles -> cos, sin as (B, 1, N, Dh) tensors, duplicated for both halves."""
    angles = torch.cat([angles, angles], dim=-1)[:, None]  # (B, 1, N, Dh)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, H, N, Dh) by pairs (i, i + Dh/2): the "half" layout needs no strided views."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin

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
    """pos: (B, N, A) positions, one column per axis  ->  (B, N, Dh/2) angles in radians.

    Computed in the dtype of ``pos`` (at least fp32): fp32 keeps phase errors near 1e-5 rad
    for a minute of audio at 25 units/s; pass float64 positions for exact tests.
    """
    dtype = torch.promote_types(pos.dtype, torch.float32)
    parts = []
    for a, (d, s) in enumerate(zip(dims, scales, strict=True)):
        if d == 0:
            continue
        inv_freq = theta ** (-torch.arange(0, d, 2, device=pos.device, dtype=dtype) / d)
        parts.append((pos[..., a : a + 1].to(dtype) * s) * inv_freq)  # (B, N, d/2)
    return torch.cat(parts, dim=-1)


def rope_cos_sin(angles: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, N, Dh/2) angles -> cos, sin as (B, N, 1, Dh/2) tables for :func:`apply_rope`."""
    return angles.cos()[:, :, None].to(dtype), angles.sin()[:, :, None].to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, N, H, Dh) by pairs (i, i + Dh/2): the "half" layout needs no strided views.

    (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin), with (B, N, 1, Dh/2) tables.
    Written as two halves and one ``cat``: inductor turns it into one pass that reads each
    element once (a rotated copy ``cat([x2, x1])`` was materialised as extra buffers).
    """
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat(
        [torch.addcmul(x1 * cos, x2, sin, value=-1), torch.addcmul(x2 * cos, x1, sin)], -1
    )

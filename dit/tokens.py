"""Media <-> token sequences, and the position ids each token carries.

Position ids have one column per rotary axis (text, time [s], y, x); see :mod:`dit.rope`.
"""

from __future__ import annotations

import torch
from einops import rearrange


def text_positions(n: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(n, 4): text tokens count along their own axis."""
    pos = torch.zeros(n, 4, device=device)
    pos[:, 0] = torch.arange(n, device=device)
    return pos


def grid_positions(
    frames: int, h: int, w: int, fps: float = 1.0, device: torch.device | str | None = None
) -> torch.Tensor:
    """(frames * h * w, 4) ids for tubelets in (time, y, x) order; time in seconds."""
    t = torch.arange(frames, device=device, dtype=torch.float32) / fps
    y = torch.arange(h, device=device, dtype=torch.float32)
    x = torch.arange(w, device=device, dtype=torch.float32)
    tt, yy, xx = torch.meshgrid(t, y, x, indexing="ij")
    zero = torch.zeros_like(tt)
    return torch.stack([zero, tt, yy, xx], dim=-1).reshape(-1, 4)


def image_positions(h: int, w: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(h * w, 4) ids for an h x w grid of patches at time 0."""
    return grid_positions(1, h, w, device=device)


def audio_positions(
    n: int, seconds_per_token: float, device: torch.device | str | None = None
) -> torch.Tensor:
    """(n, 4) ids for audio tokens: the time (s) at the start of each token."""
    pos = torch.zeros(n, 4, device=device)
    pos[:, 1] = torch.arange(n, device=device, dtype=torch.float32) * seconds_per_token
    return pos


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, H/p * W/p, C * p * p) tokens in row-major patch order."""
    return rearrange(x, "b c (h p1) (w p2) -> b (h w) (c p1 p2)", p1=p, p2=p)


def unpatchify(tokens: torch.Tensor, p: int, h: int, w: int) -> torch.Tensor:
    """(B, h * w, C * p * p) -> (B, C, h * p, w * p); h, w in patches."""
    return rearrange(tokens, "b (h w) (c p1 p2) -> b c (h p1) (w p2)", h=h, w=w, p1=p, p2=p)


def video_positions(
    frames: int,
    h: int,
    w: int,
    fps: float,
    tpatch: int = 1,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """(frames / tpatch * h * w, 4) ids for tubelets of ``tpatch`` frames: each carries the
    time (s) of its first frame, so any fps lands on the same seconds axis as audio."""
    return grid_positions(frames // tpatch, h, w, fps / tpatch, device=device)


def patchify_video(x: torch.Tensor, p: int, q: int) -> torch.Tensor:
    """(B, F, C, H, W) -> (B, F/q * H/p * W/p, C * q * p * p) tubelets, time-major order."""
    return rearrange(x, "b (f q) c (h p1) (w p2) -> b (f h w) (c q p1 p2)", q=q, p1=p, p2=p)


def unpatchify_video(tokens: torch.Tensor, p: int, q: int, f: int, h: int, w: int) -> torch.Tensor:
    """(B, f * h * w, C * q * p * p) -> (B, f * q, C, h * p, w * p); f, h, w in tubelets."""
    return rearrange(
        tokens, "b (f h w) (c q p1 p2) -> b (f q) c (h p1) (w p2)", f=f, h=h, w=w, q=q, p1=p, p2=p
    )

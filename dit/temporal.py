"""Factorised space-time: an image trunk run on every frame, plus attention along time.

A model whose config names a ``temporal`` stream (video) runs its joint blocks on each frame
alone, every other stream (text) repeated per frame, and after each block a temporal
attention mixes the tokens at one spatial place across frames (Open-Sora's STDiT, LaVie,
AnimateDiff). The temporal layer is adaLN-Zero gated: at initialisation it is the identity,
so an image model's weights make a per-frame image model at step 0 and video training starts
from a model that already draws (Open-Sora 1.0 from PixArt-alpha; issue 20).

Frames are found from the positions: tokens are time-major and every token of a frame
carries that frame's time (seconds), so the tokens sharing the first token's time are one
frame. The joint blocks see each frame at time 0 (as the image model did); the temporal
layer rotates by the time axis only.
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import attention
from .config import DiTConfig
from .layers import Modulation, modulate
from .linear import Linear
from .rope import apply_rope


class TemporalLayer(nn.Module):
    """Pre-norm self-attention along frames, gated by adaLN-Zero (identity at init)."""

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        d = cfg.width
        self.heads = cfg.heads
        self.mod = Modulation(d, 3)  # shift, scale, gate: zero-initialised
        self.norm = nn.LayerNorm(d, elementwise_affine=False, eps=cfg.eps)
        self.qkv = Linear(d, 3 * d)
        self.q_norm = nn.RMSNorm(cfg.head_dim, eps=cfg.eps) if cfg.qk_norm else nn.Identity()
        self.k_norm = nn.RMSNorm(cfg.head_dim, eps=cfg.eps) if cfg.qk_norm else nn.Identity()
        self.proj = Linear(d, d)

    def forward(
        self, x: torch.Tensor, c: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> torch.Tensor:
        """x: (B, F, S, D) tokens of F frames of S places; c: (B, D); cos/sin: (1, F, 1, Dh/2)."""
        b, f, s, d = x.shape
        shift, scale, gate = (m[:, None] for m in self.mod(c))  # 3 x (B, 1, 1, D)
        h = modulate(self.norm(x), shift, scale).transpose(1, 2)  # (B, S, F, D)
        qkv = self.qkv(h).reshape(b * s, f, 3, self.heads, d // self.heads)
        q, k, v = qkv.unbind(2)  # (B S, F, H, Dh)
        q = apply_rope(self.q_norm(q), cos, sin).transpose(1, 2)  # (B S, H, F, Dh)
        k = apply_rope(self.k_norm(k), cos, sin).transpose(1, 2)
        o = attention(q, k, v.transpose(1, 2), None)  # (B S, H, F, Dh)
        o = o.transpose(1, 2).reshape(b, s, f, d).transpose(1, 2)  # (B, F, S, D)
        return torch.addcmul(x, gate, self.proj(o))


def frame_split(pos: torch.Tensor, name: str) -> tuple[int, torch.Tensor, torch.Tensor]:
    """A temporal stream's (N, 4) positions -> (frames F, spatial positions (S, 4) at time 0,
    frame times (F,) in seconds). Raises if the tokens are not F equal time-major frames."""
    if pos.dim() != 2:
        raise ValueError(f"stream {name!r} is temporal: give its positions as one (N, 4) table")
    per_frame = int((pos[:, 1] == pos[0, 1]).sum())
    frames = pos.shape[0] // per_frame
    times = pos[::per_frame, 1]
    if frames * per_frame != pos.shape[0] or not torch.equal(
        pos[:, 1].view(frames, per_frame), times[:, None].expand(frames, per_frame)
    ):
        raise ValueError(
            f"stream {name!r} is temporal: its tokens must be whole frames in "
            "time-major order (dit.tokens.video_positions)"
        )
    spatial = pos[:per_frame].clone()
    spatial[:, 1] = 0
    return frames, spatial, times


def time_positions(times: torch.Tensor) -> torch.Tensor:
    """(F,) seconds -> (F, 4) ids on the time axis alone (the others at 0)."""
    pos = torch.zeros(times.shape[0], 4, device=times.device, dtype=times.dtype)
    pos[:, 1] = times
    return pos

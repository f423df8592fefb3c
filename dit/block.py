"""One joint block (Mixture-of-Transformers / SD3 MMDiT): per-stream weights, global attention."""

from __future__ import annotations

import torch
from torch import nn

from .attention import attention
from .config import DiTConfig
from .layers import MLP, Modulation, modulate
from .linear import Linear
from .rope import apply_rope


class StreamLayers(nn.Module):
    """The weights one stream owns inside a block: norms, QKV, output projection, MLP."""

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        d = cfg.width
        self.heads = cfg.heads
        self.mod = Modulation(d, 6)
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=cfg.eps)
        self.qkv = Linear(d, 3 * d)  # fused: one GEMM instead of three
        self.q_norm = nn.RMSNorm(cfg.head_dim, eps=cfg.eps) if cfg.qk_norm else nn.Identity()
        self.k_norm = nn.RMSNorm(cfg.head_dim, eps=cfg.eps) if cfg.qk_norm else nn.Identity()
        self.proj = Linear(d, d)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False, eps=cfg.eps)
        self.mlp = MLP(d, cfg.mlp_dim)


class JointBlock(nn.Module):
    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        self.streams = nn.ModuleDict({s.name: StreamLayers(cfg) for s in cfg.streams})

    def forward(
        self,
        xs: dict[str, torch.Tensor],
        cs: dict[str, torch.Tensor],
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor | None,
        update: frozenset[str] | None = None,
        extra_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
        kv_out: list | None = None,
        frames: int = 1,
        per_frame: str = "",
    ) -> dict[str, torch.Tensor]:
        """xs: name -> (B, N_s, D); cs: name -> (B, D); cos/sin: (B or 1, N, 1, Dh/2), N = sum N_s.

        ``update`` names the streams whose output is still needed; the others only lend
        keys and values (the last block skips the text stream's MLP, as SD3 does).
        ``extra_kv``: keys and values (B, H, M, Dh) of tokens not computed here (kept from an
        earlier call, :mod:`dit.reuse`), attended after the N; ``mask`` then covers N + M.
        ``kv_out``: a list that receives this block's (k, v) of the N tokens.
        ``frames`` > 1: stream ``per_frame`` holds (B F, N_s, D), one row per frame, the others
        (B, N_s, D) (dit/temporal.py). Their keys and values join every frame's attention and
        their update is the mean of the frames' (exact for one frame); their weights run once
        per clip, not once per frame.
        """
        qs, ks, vs, mods, lens = [], [], [], {}, []
        start = 0
        for name, x in xs.items():
            layer = self.streams[name]
            mods[name] = layer.mod(cs[name])  # 6 x (B, 1, D)
            shift, scale = mods[name][0], mods[name][1]
            b, n, d = x.shape
            qkv = layer.qkv(modulate(layer.norm1(x), shift, scale))  # (B, N_s, 3D)
            q, k, v = qkv.view(b, n, 3, layer.heads, d // layer.heads).unbind(2)
            if frames > 1 and name != per_frame:  # (B, N_s, H, Dh) -> (B F, N_s, H, Dh)
                q, k, v = (y.repeat_interleave(frames, 0) for y in (q, k, v))
            # Norm and rotate per stream, then concatenate: compiled, the norm and rotation of
            # each stream's q and k fuse into one pass over its projection (rotating after the
            # concat made inductor write the norms out and read them back: 4.3 vs 1.6 ms).
            cos_s, sin_s = cos[:, start : start + n], sin[:, start : start + n]
            qs.append(apply_rope(layer.q_norm(q), cos_s, sin_s))  # (B, N_s, H, Dh)
            ks.append(apply_rope(layer.k_norm(k), cos_s, sin_s))
            vs.append(v)
            lens.append(n)
            start += n
        # Token-major (B, N, H, Dh), the projection's own order: norms, rope and the concat
        # read and write in one order, and attention takes (B, H, N, Dh) views of it (SDPA's
        # CPU kernel is faster on this layout, and returns its output in it).
        q = torch.cat(qs, dim=1).transpose(1, 2)  # (B, H, N, Dh)
        k = torch.cat(ks, dim=1).transpose(1, 2)
        v = torch.cat(vs, dim=1).transpose(1, 2)
        if kv_out is not None:
            kv_out.append((k, v))
        if extra_kv is not None:
            k, v = torch.cat([k, extra_kv[0]], dim=2), torch.cat([v, extra_kv[1]], dim=2)
        o = attention(q, k, v, mask)  # (B, H, N, Dh)

        out = {}
        for (name, x), o_s in zip(xs.items(), o.split(lens, dim=2), strict=True):
            if update is not None and name not in update:
                continue
            # Split before flattening: one copy per stream into (B, N_s, D), contiguous for the
            # projection (flatten-then-split would copy, then copy the strided split again).
            if frames > 1 and name != per_frame:  # the mean of the frames' outputs
                o_s = o_s.unflatten(0, (-1, frames)).mean(1)  # (B, H, N_s, Dh)
            o_s = o_s.transpose(1, 2).reshape(x.shape)  # (B, N_s, D)
            layer = self.streams[name]
            _, _, gate1, shift2, scale2, gate2 = mods[name]
            x = torch.addcmul(x, gate1, layer.proj(o_s))  # x + gate * f(x), one pass
            x = torch.addcmul(x, gate2, layer.mlp(modulate(layer.norm2(x), shift2, scale2)))
            out[name] = x
        return out

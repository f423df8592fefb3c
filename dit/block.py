"""The trunk's blocks: the joint block (Mixture-of-Transformers / SD3 MMDiT: per-stream
weights, one global attention), with SD3.5's optional second per-stream attention, and FLUX.1's
single-stream block (one set of weights over every stream's tokens)."""

from __future__ import annotations

import torch
from torch import nn

from .attention import attention
from .config import DiTConfig
from .layers import MLP, Modulation, modulate
from .linear import Linear, linear
from .rope import apply_rope


def gelu_form(cfg: DiTConfig) -> str:
    """F.gelu's ``approximate`` for the config's ``mlp_act``."""
    return "tanh" if cfg.mlp_act == "gelu_tanh" else "none"


def _qk_norm(cfg: DiTConfig) -> nn.Module:
    return nn.RMSNorm(cfg.head_dim, eps=cfg.eps) if cfg.qk_norm else nn.Identity()


def _rotate(x: torch.Tensor, cos: torch.Tensor | None, sin: torch.Tensor | None) -> torch.Tensor:
    return x if cos is None else apply_rope(x, cos, sin)


class StreamLayers(nn.Module):
    """The weights one stream owns inside a block: norms, QKV, output projection, MLP; with
    ``dual``, a second attention over the stream's own tokens (qkv2, norms, proj2) and three
    more modulation chunks for it (SD3.5's SD35AdaLayerNormZeroX order)."""

    def __init__(self, cfg: DiTConfig, dual: bool = False) -> None:
        super().__init__()
        d = cfg.width
        self.heads = cfg.heads
        self.dual = dual
        self.mod = Modulation(d, 9 if dual else 6)
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=cfg.eps)
        self.qkv = Linear(d, 3 * d)  # fused: one GEMM instead of three
        self.q_norm, self.k_norm = _qk_norm(cfg), _qk_norm(cfg)
        self.proj = Linear(d, d)
        if dual:
            self.qkv2 = Linear(d, 3 * d)
            self.q_norm2, self.k_norm2 = _qk_norm(cfg), _qk_norm(cfg)
            self.proj2 = Linear(d, d)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False, eps=cfg.eps)
        self.mlp = MLP(d, cfg.mlp_dim, gelu_form(cfg))

    def self_attention(
        self,
        h: torch.Tensor,
        cos: torch.Tensor | None,
        sin: torch.Tensor | None,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """The dual block's second attention: h (B, N_s, D) modulated norm -> (B, N_s, D)."""
        b, n, d = h.shape
        q, k, v = self.qkv2(h).view(b, n, 3, self.heads, d // self.heads).unbind(2)
        q = _rotate(self.q_norm2(q), cos, sin).transpose(1, 2)  # (B, H, N_s, Dh)
        k = _rotate(self.k_norm2(k), cos, sin).transpose(1, 2)
        o = attention(q, k, v.transpose(1, 2), mask)  # (B, H, N_s, Dh)
        return self.proj2(o.transpose(1, 2).reshape(b, n, d))


class JointBlock(nn.Module):
    def __init__(self, cfg: DiTConfig, index: int = 0) -> None:
        super().__init__()
        dual = index in cfg.dual_attention
        self.streams = nn.ModuleDict(
            {s.name: StreamLayers(cfg, dual and s.head != "none") for s in cfg.streams}
        )

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
        """xs: name -> (B, N_s, D); cs: name -> (B, D); cos/sin: (B or 1, N, 1, Dh/2), N = sum N_s
        (None: no rotary positions).

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
        qs, ks, vs, mods, lens, normed = [], [], [], {}, [], {}
        start = 0
        for name, x in xs.items():
            layer = self.streams[name]
            mods[name] = layer.mod(cs[name])  # 6 (9 when dual) x (B, 1, D)
            shift, scale = mods[name][0], mods[name][1]
            b, n, d = x.shape
            normed[name] = layer.norm1(x)
            qkv = layer.qkv(modulate(normed[name], shift, scale))  # (B, N_s, 3D)
            q, k, v = qkv.view(b, n, 3, layer.heads, d // layer.heads).unbind(2)
            if frames > 1 and name != per_frame:  # (B, N_s, H, Dh) -> (B F, N_s, H, Dh)
                q, k, v = (y.repeat_interleave(frames, 0) for y in (q, k, v))
            # Norm and rotate per stream, then concatenate: compiled, the norm and rotation of
            # each stream's q and k fuse into one pass over its projection (rotating after the
            # concat made inductor write the norms out and read them back, over twice as slow).
            cos_s, sin_s = (
                (None, None)
                if cos is None
                else (cos[:, start : start + n], sin[:, start : start + n])
            )
            qs.append(_rotate(layer.q_norm(q), cos_s, sin_s))  # (B, N_s, H, Dh)
            ks.append(_rotate(layer.k_norm(k), cos_s, sin_s))
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

        out, starts = {}, [sum(lens[:i]) for i in range(len(lens))]
        for (name, x), o_s, at in zip(xs.items(), o.split(lens, dim=2), starts, strict=True):
            if update is not None and name not in update:
                continue
            # Split before flattening: one copy per stream into (B, N_s, D), contiguous for the
            # projection (flatten-then-split would copy, then copy the strided split again).
            if frames > 1 and name != per_frame:  # the mean of the frames' outputs
                o_s = o_s.unflatten(0, (-1, frames)).mean(1)  # (B, H, N_s, Dh)
            o_s = o_s.transpose(1, 2).reshape(x.shape)  # (B, N_s, D)
            rows = slice(at, at + x.shape[1])  # this stream's tokens in the joint sequence
            out[name] = self._residuals(
                name, x, o_s, mods[name], normed[name], cos, sin, mask, rows
            )
        return out

    def _residuals(
        self,
        name: str,
        x: torch.Tensor,
        o_s: torch.Tensor,
        mods: list,
        normed,
        cos,
        sin,
        mask,
        rows: slice,
    ) -> torch.Tensor:
        """One stream's gated residual updates: attention output o_s (B, N_s, D), SD3.5's
        second self-attention for a dual block, then the MLP. Returns (B, N_s, D)."""
        layer = self.streams[name]
        _, _, gate1, shift2, scale2, gate2 = mods[:6]
        x = torch.addcmul(x, gate1, layer.proj(o_s))  # x + gate * f(x), one pass
        if layer.dual:  # SD3.5: + gate' * attn2(norm1(x_in) modulated by its own chunks)
            shift_a, scale_a, gate_a = mods[6:]
            rot = (None, None) if cos is None else (cos[:, rows], sin[:, rows])
            m_s = None if mask is None else mask[:, rows]
            h2 = modulate(normed, shift_a, scale_a)
            x = torch.addcmul(x, gate_a, layer.self_attention(h2, *rot, m_s))
        return torch.addcmul(x, gate2, layer.mlp(modulate(layer.norm2(x), shift2, scale2)))


class SingleBlock(nn.Module):
    """FLUX.1's single-stream block: the tokens of every stream, concatenated, through one set
    of weights; attention and the MLP read one modulated norm in parallel, and one projection
    reads both (x + gate * proj([attn, GELU(fc1(h))]))."""

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        d = cfg.width
        self.heads = cfg.heads
        self.approximate = gelu_form(cfg)
        self.mod = Modulation(d, 3)  # shift, scale, gate
        self.norm = nn.LayerNorm(d, elementwise_affine=False, eps=cfg.eps)
        self.qkv = Linear(d, 3 * d)
        self.q_norm, self.k_norm = _qk_norm(cfg), _qk_norm(cfg)
        self.fc1 = Linear(d, cfg.mlp_dim)
        self.proj = Linear(d + cfg.mlp_dim, d)

    def forward(
        self,
        x: torch.Tensor,
        c: torch.Tensor,
        cos: torch.Tensor | None,
        sin: torch.Tensor | None,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """x: (B, N, D) every stream's tokens; c: (B, D) or per token (B, N, D); cos/sin as in
        :class:`JointBlock`; mask: (B, N) bool or None."""
        shift, scale, gate = self.mod(c) if c.dim() == 2 else self.mod.per_token(c)
        h = modulate(self.norm(x), shift, scale)  # (B, N, D)
        b, n, d = x.shape
        q, k, v = self.qkv(h).view(b, n, 3, self.heads, d // self.heads).unbind(2)
        q = _rotate(self.q_norm(q), cos, sin).transpose(1, 2)  # (B, H, N, Dh)
        k = _rotate(self.k_norm(k), cos, sin).transpose(1, 2)
        o = attention(q, k, v.transpose(1, 2), mask).transpose(1, 2).reshape(b, n, d)
        if isinstance(self.fc1, Linear):
            m = linear(h, self.fc1.weight, self.fc1.bias, True, self.approximate)  # (B, N, 4D)
        else:  # an adapter wraps fc1
            m = nn.functional.gelu(self.fc1(h), approximate=self.approximate)
        return torch.addcmul(x, gate, self.proj(torch.cat([o, m], dim=-1)))

"""The DiT: streams in, one joint trunk, a velocity or logits head per generated stream.

A diffusers-style model folder (``dit/pretrained.py``): ``save_pretrained`` writes
``config.json`` and ``diffusion_pytorch_model.safetensors``; ``from_pretrained`` reads them back
through safetensors only.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.utils.checkpoint
from torch import nn

from .block import JointBlock, SingleBlock
from .codes import FactorisedCodeEmbedding, joint_logits
from .config import DiTConfig
from .flow import x_to_velocity
from .layers import FinalLayer, TimestepEmbedder
from .linear import Linear
from .pretrained import Pretrained, register_to_config
from .rope import rope_angles, rope_cos_sin
from .temporal import TemporalLayer, frame_split, time_positions


class DiT(Pretrained):
    @register_to_config
    def __init__(
        self,
        streams: list[dict[str, Any]],
        width: int = 256,
        depth: int = 6,
        heads: int = 4,
        mlp_ratio: float = 4.0,
        pooled_dim: int = 0,
        freq_dim: int = 256,
        rope_dims: list[int] = (),
        rope_theta: float = 10_000.0,
        rope_scales: list[float] = (1.0, 25.0, 1.0, 1.0),
        qk_norm: bool = True,
        eps: float = 1e-6,
        extra: dict[str, Any] | None = None,
        temporal: str = "",
        mlp_act: str = "gelu",
        pos_table: int = 0,
        dual_attention: list[int] = (),
        single_depth: int = 0,
        guidance_embed: bool = False,
    ) -> None:
        super().__init__()
        cfg = DiTConfig(
            streams=tuple(streams),
            width=width,
            depth=depth,
            heads=heads,
            mlp_ratio=mlp_ratio,
            pooled_dim=pooled_dim,
            freq_dim=freq_dim,
            rope_dims=tuple(rope_dims),
            rope_theta=rope_theta,
            rope_scales=tuple(rope_scales),
            qk_norm=qk_norm,
            eps=eps,
            extra=dict(extra or {}),
            temporal=temporal,
            mlp_act=mlp_act,
            pos_table=pos_table,
            dual_attention=tuple(dual_attention),
            single_depth=single_depth,
            guidance_embed=guidance_embed,
        )
        self.cfg = cfg
        self.gradient_checkpointing = False
        self.embed = nn.ModuleDict(
            {
                # A logits stream reads codes; index K is the learned [MASK] token.
                s.name: FactorisedCodeEmbedding(s.levels, width)
                if s.levels
                else nn.Embedding(s.codebook_size + 1, width)
                if s.discrete
                else Linear(s.in_dim, width)
                for s in cfg.streams
            }
        )
        self.t_embed = TimestepEmbedder(cfg.freq_dim, width, cfg.pooled_dim)
        # FLUX.1 dev: the guidance strength, embedded like the time and added to it.
        self.g_embed = TimestepEmbedder(cfg.freq_dim, width, 0) if guidance_embed else None
        if pos_table:  # SD3: absolute positions, read from the checkpoint (not trained here)
            self.register_buffer("abs_pos", torch.zeros(1, pos_table * pos_table, width))
        self.blocks = nn.ModuleList(JointBlock(cfg, i) for i in range(depth))
        self.single_blocks = nn.ModuleList(SingleBlock(cfg) for _ in range(single_depth))
        # Factorised video (dit/temporal.py): one temporal layer after each joint block.
        self.time_layers = nn.ModuleList(
            TemporalLayer(cfg) for _ in range(depth if temporal else 0)
        )
        self.heads_out = nn.ModuleDict(
            {s.name: FinalLayer(width, s.out_dim, eps) for s in cfg.streams if s.head != "none"}
        )

    def enable_gradient_checkpointing(self) -> None:
        """Recompute each block in the backward pass instead of keeping its activations."""
        self.gradient_checkpointing = True

    @staticmethod
    def _gradient_checkpointing_func(fn, *args):
        return torch.utils.checkpoint.checkpoint(fn, *args, use_reentrant=False)

    @classmethod
    def from_dit_config(cls, cfg: DiTConfig) -> DiT:
        return cls(**cfg.to_dict())

    def mask_id(self, stream: str) -> int:
        return self.cfg.stream(stream).codebook_size

    def _fold_frames(
        self, video: str, b: int, xs: dict, cs: dict, masks: dict, positions: dict
    ) -> tuple:
        """A temporal stream's frames as batch items of the joint blocks: (frames, xs, cs,
        masks, positions, (cos, sin) of the temporal layers' time rotation)."""
        cfg = self.cfg
        frames, spatial, times = frame_split(positions[video], video)
        positions = {**positions, video: spatial}
        xs = {**xs, video: xs[video].reshape(b * frames, -1, cfg.width)}  # (B F, S, D)
        cs = {**cs, video: cs[video].repeat_interleave(frames, 0)}  # (B F, D)
        masks = {
            n: m.reshape(b * frames, -1) if n == video else m.repeat_interleave(frames, 0)
            for n, m in masks.items()
        }  # attention rows: (B F, N_s)
        if any(p.dim() == 3 for p in positions.values()):
            raise ValueError(
                f"stream {video!r} is temporal: give every stream's positions as one (N, 4) table"
            )
        t_angles = rope_angles(
            time_positions(times)[None], cfg.rope_dims, cfg.rope_theta, cfg.rope_scales
        )
        return frames, xs, cs, masks, positions, rope_cos_sin(t_angles, xs[video].dtype)

    def _joint_rope_and_mask(
        self, names: list[str], xs: dict, positions: dict, masks: dict, video: str, b: int, device
    ) -> tuple:
        """The joint attention's rotation (cos, sin: (B or 1, N, 1, Dh/2)) over every stream's
        positions, and its key mask (rows, N) bool, or None when nothing is padded."""
        cfg = self.cfg
        cos = sin = None  # no rotary positions (SD3)
        if sum(cfg.rope_dims):
            pos = [positions[n] for n in names]
            if all(p.dim() == 2 for p in pos):  # shared by the batch: one table, not B copies
                pos = torch.cat(pos, dim=0)[None]  # (1, N, 4)
            else:
                pos = torch.cat([p.expand(b, -1, -1) for p in pos], dim=1)  # (B, N, 4)
            angles = rope_angles(pos, cfg.rope_dims, cfg.rope_theta, cfg.rope_scales)
            cos, sin = rope_cos_sin(angles, xs[names[0]].dtype)  # (B or 1, N, 1, Dh/2)
        if not masks:
            return cos, sin, None
        rows = xs[video].shape[0] if video else b  # attention rows: B, or B x frames
        mask = torch.cat(
            [
                masks[n]
                if n in masks
                else torch.ones(rows, xs[n].shape[1], dtype=torch.bool, device=device)
                for n in names
            ],
            dim=1,
        )  # (rows, N) bool
        return cos, sin, mask

    def _table_rows(self, pos: torch.Tensor) -> torch.Tensor:
        """Rows of the absolute table for (N, 4) or (B, N, 4) positions: the M x M grid
        centre-cropped to the tokens' (y, x) extent, as SD3's ``cropped_pos_embed``."""
        side = self.cfg.pos_table
        y, x = pos[..., 2].long(), pos[..., 3].long()
        y_max, x_max = y.max(), x.max()
        if not torch.compiler.is_compiling():  # the check reads values: eager only
            h, w = int(y_max) + 1, int(x_max) + 1
            if h > side or w > side:
                raise ValueError(
                    f"a grid of {h} x {w} patches is larger than this model's "
                    f"position table ({side} x {side}): ask for a smaller "
                    "size"
                )
        # (side - h) // 2 with h = max + 1, in tensors: no host sync, so it compiles
        rows = (y + (side - 1 - y_max) // 2) * side + x + (side - 1 - x_max) // 2  # (N,) / (B, N)
        return self.abs_pos[0, rows]

    def _single_blocks(
        self, xs: dict, cs: dict, c: torch.Tensor, cos, sin, mask, checkpoint: bool
    ) -> dict:
        """Every stream's tokens, concatenated in ``xs`` order, through the single-stream
        blocks (FLUX.1); each stream's modulation is its own condition (one shared tensor when
        no stream has its own time)."""
        names = list(xs)
        lens = [xs[n].shape[1] for n in names]
        x = torch.cat([xs[n] for n in names], dim=1)  # (B, N, D)
        cc = (
            c
            if all(cs[n] is c for n in names)
            else torch.cat(
                [cs[n][:, None].expand(-1, k, -1) for n, k in zip(names, lens, strict=True)], 1
            )
        )  # (B, D) or (B, N, D)
        for block in self.single_blocks:
            if checkpoint:
                x = self._gradient_checkpointing_func(block, x, cc, cos, sin, mask)
            else:
                x = block(x, cc, cos, sin, mask)
        return dict(zip(names, x.split(lens, dim=1), strict=True))

    def forward(
        self,
        tokens: dict[str, torch.Tensor],
        positions: dict[str, torch.Tensor],
        t: torch.Tensor,
        pooled: torch.Tensor | None = None,
        masks: dict[str, torch.Tensor] | None = None,
        stream_t: dict[str, torch.Tensor] | None = None,
        extra_kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
        kv_out: list | None = None,
        guidance: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Run the streams given in ``tokens`` (any subset of the configured ones).

        tokens: name -> (B, N_s, in_dim) features, or (B, N_s) long codes for logits streams.
        positions: name -> (N_s, 4) or (B, N_s, 4) ids over (text, time [s], y, x).
        t: (B,) time in [0, 1] (see :mod:`dit.flow`); ``stream_t`` overrides it per stream.
        pooled: (B, pooled_dim) condition added to every stream's modulation input.
        masks: name -> (B, N_s) bool, True for real tokens (padding for ragged batches).
        extra_kv: per block, keys and values (B, H, M, Dh) of M tokens not given here (kept
        from an earlier call: :mod:`dit.reuse`); ``kv_out`` receives each block's (k, v).
        guidance: (B,) strengths for a model with ``guidance_embed`` (FLUX.1 dev).
        Returns name -> (B, N_s, out_dim) for every given stream that has a head.
        """
        cfg = self.cfg
        names = [s.name for s in cfg.streams if s.name in tokens]
        unknown = set(tokens) - set(names)
        if unknown:
            raise ValueError(f"unknown streams {sorted(unknown)}; model has {list(self.embed)}")
        b = t.shape[0]
        xs, c, cs = self._inputs(names, tokens, positions, t, pooled, stream_t, guidance)
        masks = dict(masks or {})
        video = cfg.temporal if cfg.temporal in xs else ""
        frames, clip = 1, None
        if video:  # every frame a batch item of the joint blocks (dit/temporal.py)
            if extra_kv is not None or kv_out is not None:
                raise ValueError("kept keys and values (dit.reuse) are for masked models")
            clip_c = cs[video]  # (B, D): the temporal layers' modulation
            frames, xs, cs, masks, positions, (t_cos, t_sin) = self._fold_frames(
                video, b, xs, cs, masks, positions
            )
            clip = (clip_c, t_cos, t_sin)
        cos, sin, mask = self._joint_rope_and_mask(names, xs, positions, masks, video, b, t.device)
        if extra_kv is not None and mask is not None:  # the kept tokens are all real
            m = extra_kv[0][0].shape[2]
            mask = torch.cat([mask, mask.new_ones(mask.shape[0], m)], dim=1)  # (B, N + M)

        with_head = frozenset(n for n in names if n in self.heads_out)
        checkpoint = self.gradient_checkpointing and torch.is_grad_enabled()
        singles = len(self.single_blocks) > 0
        if singles and (extra_kv is not None or kv_out is not None):
            raise ValueError(
                "kept keys and values (dit.reuse) need a model without single-stream blocks"
            )
        xs = self._joint_blocks(
            xs,
            cs,
            cos,
            sin,
            mask,
            with_head,
            extra_kv,
            kv_out,
            checkpoint,
            (video, b, frames, clip),
        )
        if singles:
            xs = self._single_blocks(xs, cs, c, cos, sin, mask, checkpoint)
        out = {n: self.heads_out[n](xs[n], cs[n]) for n in names if n in with_head}
        for n in out:  # factorised codes: per-level logits -> joint (B, N, K) log-probs
            if levels := self.cfg.stream(n).levels:
                out[n] = joint_logits(out[n], levels)
        if video:
            out[video] = out[video].reshape(b, -1, out[video].shape[-1])  # (B, F S, out)
        for n in out:  # clean-signal heads: x -> the velocity it implies at (x_t, t)
            if self.cfg.stream(n).prediction == "x":
                out[n] = x_to_velocity(out[n], tokens[n], (stream_t or {}).get(n, t))
        return out

    def _inputs(
        self,
        names: list[str],
        tokens: dict,
        positions: dict,
        t: torch.Tensor,
        pooled,
        stream_t,
        guidance,
    ) -> tuple:
        """Embedded tokens name -> (B, N_s, D), the shared modulation input c (B, D) and each
        stream's own (name -> (B, D): per-stream times where ``stream_t`` gives them)."""
        cfg = self.cfg
        xs = {n: self.embed[n](tokens[n]) for n in names}  # name -> (B, N_s, D)
        if cfg.pos_table:
            xs |= {
                n: xs[n] + self._table_rows(positions[n]).to(xs[n].dtype)
                for n in names
                if n in self.heads_out
            }
        if (self.g_embed is not None) != (guidance is not None):
            raise ValueError(
                "give guidance (B,) exactly when the model has guidance_embed "
                f"(this one: {cfg.guidance_embed})"
            )

        def embed_t(tt: torch.Tensor) -> torch.Tensor:  # (B,) -> (B, D)
            e = self.t_embed(tt, pooled)
            return e if self.g_embed is None else e + self.g_embed(guidance, None)

        c = embed_t(t)  # (B, D)
        stream_t = stream_t or {}
        return xs, c, {n: embed_t(stream_t[n]) if n in stream_t else c for n in names}

    def _joint_blocks(
        self,
        xs: dict,
        cs: dict,
        cos,
        sin,
        mask,
        with_head: frozenset,
        extra_kv,
        kv_out,
        checkpoint: bool,
        video_fold: tuple,
    ) -> dict:
        """The joint blocks, each followed by its temporal layer for a video stream.
        video_fold: (video stream or "", batch B, frames F, (clip_c, t_cos, t_sin) or None)."""
        video, b, frames, clip = video_fold
        singles = len(self.single_blocks) > 0
        for i, block in enumerate(self.blocks):
            # The last joint block skips the text stream's update (SD3), unless single-stream
            # blocks still read it (FLUX.1).
            update = with_head if i == len(self.blocks) - 1 and not singles else None
            if checkpoint:
                xs = self._gradient_checkpointing_func(
                    block, xs, cs, cos, sin, mask, update, None, None, frames, video
                )
            else:
                extra = None if extra_kv is None else extra_kv[i]
                xs = block(xs, cs, cos, sin, mask, update, extra, kv_out, frames, video)
            if video:
                x = xs[video].view(b, frames, -1, self.cfg.width)  # (B, F, S, D)
                layer = self.time_layers[i]
                if checkpoint:
                    x = self._gradient_checkpointing_func(layer, x, *clip)
                else:
                    x = layer(x, *clip)
                xs = {**xs, video: x.view(b * frames, -1, self.cfg.width)}
        return xs

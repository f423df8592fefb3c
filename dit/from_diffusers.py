"""diffusers' SD3 / SD3.5 and FLUX.1 transformers as the studio's :class:`~dit.model.DiT`.

A diffusers ``transformer/`` folder (its ``config.json`` and safetensors, sharded or not) is
read at load time and its weights are renamed, fused and permuted into a ``DiT`` of the same
architecture; nothing converted is written to disk. What the core expresses for them:

- SD3 / SD3.5: the joint (MMDiT) blocks with streams ``text`` and ``image``; the cropped
  sin-cos position table (``pos_table``); no rotary positions; tanh GELU; q/k RMSNorm
  (SD3.5); SD3.5 Medium's second image attention (``dual_attention``); the last block's
  text stream reads keys and values only (its AdaLayerNormContinuous is the first two
  modulation chunks).
- FLUX.1: joint blocks, then ``single_depth`` single-stream blocks; rotary axes (16, 56, 56)
  over (time, y, x) with the text at 0, as FLUX's ids (0, y, x) put them; the guidance
  embedding of dev (``guidance_embed``).

Conventions that differ from the studio's, and where they are bridged:

- **Time.** These models see the noise level sigma (1 = noise) and predict noise - data; the
  studio's t = 1 - sigma and v = data - noise. The weights are the models' own, so a
  ``DiT`` loaded here keeps *their* convention: ``pipelines/mmdit.py`` calls it with sigma
  and negates its output.
- **Rotary pairs.** FLUX rotates interleaved pairs (2i, 2i + 1); the core rotates halves
  (i, i + Dh/2). Permuting every head's q and k channels (and their RMSNorm weights) maps one
  onto the other exactly: attention scores are sums over channels, and the norm is a mean.
- **Patch order.** SD3's ``proj_out`` writes (p, q, c) per patch; the core reads (c, p, q),
  so its rows are permuted. Its patch embedding is a stride-p convolution, the same map as a
  linear layer over (c, p, q) patches.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from .config import DiTConfig, StreamConfig

SD3 = "SD3Transformer2DModel"
FLUX = "FluxTransformer2DModel"
FAMILIES = {SD3: "sd3", FLUX: "flux"}


def read_config(folder: str | Path) -> dict[str, Any]:
    """The diffusers ``config.json`` of a transformer folder (its ``_class_name`` says which)."""
    path = Path(folder) / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} cannot be read ({e}): restore the model's transformer/") from None
    if config.get("_class_name") not in FAMILIES:
        raise ValueError(
            f"{path}: transformer class {config.get('_class_name')!r} is not one the "
            f"studio maps; supported: {sorted(FAMILIES)}"
        )
    return config


def dit_config(config: dict[str, Any]) -> DiTConfig:
    """The :class:`DiTConfig` of the same architecture as a diffusers transformer config."""
    kind = config["_class_name"]
    heads, head_dim = config["num_attention_heads"], config["attention_head_dim"]
    width = heads * head_dim
    common = dict(
        width=width,
        heads=heads,
        mlp_ratio=4.0,
        freq_dim=256,
        eps=1e-6,
        mlp_act="gelu_tanh",
        rope_scales=(1.0, 1.0, 1.0, 1.0),
    )
    if kind == SD3:
        p, c_in = config["patch_size"], config["in_channels"]
        c_out = config.get("out_channels") or c_in
        if c_out != c_in:
            raise ValueError(
                f"SD3 transformer with in_channels={c_in} != out_channels={c_out}: "
                "the studio's image stream reads and writes one layout"
            )
        if config.get("caption_projection_dim", width) != width:
            raise ValueError(
                "SD3 transformer whose caption_projection_dim differs from its "
                "width: not a released architecture"
            )
        qk = config.get("qk_norm")
        if qk not in (None, "rms_norm"):
            raise ValueError(f"SD3 qk_norm={qk!r}: supported are None and 'rms_norm'")
        streams = (
            StreamConfig("text", config["joint_attention_dim"], "none"),
            StreamConfig("image", c_in * p * p, "velocity"),
        )
        return DiTConfig(
            streams=streams,
            depth=config["num_layers"],
            pooled_dim=config["pooled_projection_dim"],
            qk_norm=qk is not None,
            rope_dims=(0, 0, 0, 0),
            pos_table=config["pos_embed_max_size"],
            dual_attention=tuple(config.get("dual_attention_layers") or ()),
            extra={"family": "sd3", "patch": p, "channels": c_in},
            **common,
        )
    if kind == FLUX:
        if config.get("patch_size", 1) != 1:
            raise ValueError("FLUX transformer with patch_size != 1: not a released architecture")
        c_in = config["in_channels"]
        if (config.get("out_channels") or c_in) != c_in:
            raise ValueError("FLUX transformer with out_channels != in_channels: unsupported")
        axes = tuple(config.get("axes_dims_rope", (16, 56, 56)))
        if len(axes) != 3 or sum(axes) != head_dim:
            raise ValueError(f"FLUX axes_dims_rope={axes}: need 3 axes summing to the head dim")
        streams = (
            StreamConfig("text", config["joint_attention_dim"], "none"),
            StreamConfig("image", c_in, "velocity"),
        )
        return DiTConfig(
            streams=streams,
            depth=config["num_layers"],
            single_depth=config["num_single_layers"],
            pooled_dim=config["pooled_projection_dim"],
            qk_norm=True,
            rope_dims=(0, *axes),
            guidance_embed=bool(config.get("guidance_embeds")),
            extra={"family": "flux", "patch": 2, "channels": c_in // 4},
            **common,
        )
    raise ValueError(f"transformer class {kind!r}: supported are {sorted(FAMILIES)}")


# --- weights ------------------------------------------------------------------------------


def _halves(dh: int) -> torch.Tensor:
    """Channel order that takes interleaved rotary pairs (2i, 2i+1) to halves (i, i + dh/2)."""
    return torch.cat([torch.arange(0, dh, 2), torch.arange(1, dh, 2)])


class _Taker:
    """Pops keys off a diffusers state dict, so that leftovers (a mapping gap) are caught and
    each source tensor is freed as soon as it is mapped (the dict is consumed: peak memory
    stays near one copy of the model). ``strict=False`` (LoRA updates: a few layers only)
    answers None for a key it lacks."""

    def __init__(self, sd: dict[str, torch.Tensor], strict: bool = True) -> None:
        self.sd = sd
        self.strict = strict

    def __call__(self, key: str) -> torch.Tensor | None:
        if key not in self.sd:
            if not self.strict:
                return None
            raise ValueError(
                f"the checkpoint has no weight {key!r}: is it the architecture its "
                "config.json describes?"
            )
        return self.sd.pop(key)

    def leftover(self) -> list[str]:
        return sorted(self.sd)


def _put(out: dict, key: str, value: torch.Tensor | None) -> None:
    if value is not None:
        out[key] = value


def _linear(out: dict, ours: str, take: _Taker, theirs: str) -> None:
    _put(out, f"{ours}.weight", take(f"{theirs}.weight"))
    _put(out, f"{ours}.bias", take(f"{theirs}.bias"))


def _cat_parts(parts: list[torch.Tensor | None]) -> torch.Tensor | None:
    """Concatenate rows; parts a LoRA does not touch are zero (None when none is touched)."""
    like = next((p for p in parts if p is not None), None)
    if like is None:
        return None
    return torch.cat([torch.zeros_like(like) if p is None else p for p in parts])


def _fused_qkv(
    out: dict,
    ours: str,
    take: _Taker,
    names: tuple[str, str, str],
    perm: torch.Tensor | None,
    heads: int,
) -> None:
    """q, k, v linears -> one (3D, D) linear; ``perm`` reorders each head's q and k channels."""
    ws, bs = [], []
    for i, name in enumerate(names):
        w, b = take(f"{name}.weight"), take(f"{name}.bias")
        if perm is not None and i < 2:  # rows (H Dh) -> per head permuted
            w, b = (
                None if y is None else y.unflatten(0, (heads, -1))[:, perm].flatten(0, 1)
                for y in (w, b)
            )
        ws.append(w)
        bs.append(b)
    _put(out, f"{ours}.weight", _cat_parts(ws))
    _put(out, f"{ours}.bias", _cat_parts(bs))


def _norm(out: dict, ours: str, take: _Taker, theirs: str, perm: torch.Tensor | None) -> None:
    w = take(f"{theirs}.weight")
    _put(out, f"{ours}.weight", w if perm is None or w is None else w[perm])


def _continuous(out: dict, ours: str, take: _Taker, theirs: str, n: int) -> None:
    """AdaLayerNormContinuous's (scale, shift) rows -> the core's first two chunks (shift,
    scale) of ``n``, the rest zero (a text stream that only lends keys and values)."""
    for part in ("weight", "bias"):
        y = take(f"{theirs}.{part}")
        if y is not None:
            scale, shift = y.chunk(2)
            rest = y.new_zeros(((n - 2) * scale.shape[0], *y.shape[1:]))
            out[f"{ours}.{part}"] = torch.cat([shift, scale, rest])


IMAGE_QKV, TEXT_QKV = ("to_q", "to_k", "to_v"), ("add_q_proj", "add_k_proj", "add_v_proj")


def _stream(
    out: dict,
    ours: str,
    take: _Taker,
    attn: str,
    qkv: tuple[str, str, str],
    norms: tuple[str, str],
    to_out: str | None,
    ff: str | None,
    cfg: DiTConfig,
    perm: torch.Tensor | None,
) -> None:
    _fused_qkv(out, f"{ours}.qkv", take, tuple(f"{attn}.{x}" for x in qkv), perm, cfg.heads)
    if cfg.qk_norm:
        _norm(out, f"{ours}.q_norm", take, f"{attn}.{norms[0]}", perm)
        _norm(out, f"{ours}.k_norm", take, f"{attn}.{norms[1]}", perm)
    if to_out is not None:
        _linear(out, f"{ours}.proj", take, f"{attn}.{to_out}")
    if ff is not None:
        _linear(out, f"{ours}.mlp.fc1", take, f"{ff}.net.0.proj")
        _linear(out, f"{ours}.mlp.fc2", take, f"{ff}.net.2")


def _embedders(out: dict, take: _Taker, cfg: DiTConfig) -> None:
    tte = "time_text_embed"
    for i, j in ((0, 1), (2, 2)):
        _linear(out, f"t_embed.mlp.{i}", take, f"{tte}.timestep_embedder.linear_{j}")
        _linear(out, f"t_embed.pooled.{i}", take, f"{tte}.text_embedder.linear_{j}")
        if cfg.guidance_embed:
            _linear(out, f"g_embed.mlp.{i}", take, f"{tte}.guidance_embedder.linear_{j}")
    _linear(out, "embed.text", take, "context_embedder")


def _final(out: dict, take: _Taker, row_perm: torch.Tensor | None) -> None:
    _continuous(out, "heads_out.image.mod.linear", take, "norm_out.linear", 2)
    for part in ("weight", "bias"):
        y = take(f"proj_out.{part}")
        _put(
            out,
            f"heads_out.image.linear.{part}",
            y if row_perm is None or y is None else y[row_perm],
        )


def sd3_state_dict(
    sd: dict[str, torch.Tensor], cfg: DiTConfig, strict: bool = True
) -> dict[str, torch.Tensor]:
    """An ``SD3Transformer2DModel`` state dict -> the keys of the :class:`DiT` of ``cfg``
    (``strict=False``: any subset of it, as LoRA deltas are)."""
    take, out = _Taker(sd, strict), {}
    p, c = cfg.extra["patch"], cfg.extra["channels"]
    _embedders(out, take, cfg)
    conv = take("pos_embed.proj.weight")  # (D, C, p, p): a linear map over (c p q) patches
    _put(out, "embed.image.weight", None if conv is None else conv.flatten(1))
    _put(out, "embed.image.bias", take("pos_embed.proj.bias"))
    _put(out, "abs_pos", take("pos_embed.pos_embed"))
    names = ("norm_q", "norm_k")
    added = ("norm_added_q", "norm_added_k")
    for i in range(cfg.depth):
        blk, ours = f"transformer_blocks.{i}", f"blocks.{i}.streams"
        _linear(out, f"{ours}.image.mod.linear", take, f"{blk}.norm1.linear")
        _stream(
            out,
            f"{ours}.image",
            take,
            f"{blk}.attn",
            IMAGE_QKV,
            names,
            "to_out.0",
            f"{blk}.ff",
            cfg,
            None,
        )
        if i in cfg.dual_attention:
            _fused_qkv(
                out,
                f"{ours}.image.qkv2",
                take,
                tuple(f"{blk}.attn2.{x}" for x in IMAGE_QKV),
                None,
                cfg.heads,
            )
            if cfg.qk_norm:
                _norm(out, f"{ours}.image.q_norm2", take, f"{blk}.attn2.norm_q", None)
                _norm(out, f"{ours}.image.k_norm2", take, f"{blk}.attn2.norm_k", None)
            _linear(out, f"{ours}.image.proj2", take, f"{blk}.attn2.to_out.0")
        last = i == cfg.depth - 1  # context_pre_only: AdaLayerNormContinuous, no output side
        if last:
            _continuous(out, f"{ours}.text.mod.linear", take, f"{blk}.norm1_context.linear", 6)
        else:
            _linear(out, f"{ours}.text.mod.linear", take, f"{blk}.norm1_context.linear")
        _stream(
            out,
            f"{ours}.text",
            take,
            f"{blk}.attn",
            TEXT_QKV,
            added,
            None if last else "to_add_out",
            None if last else f"{blk}.ff_context",
            cfg,
            None,
        )
    # (p q c) rows -> (c p q), the core's patch order
    rows = torch.arange(p * p * c).view(p, p, c).permute(2, 0, 1).flatten()
    _final(out, take, rows)
    _check_leftover(take)
    return out


def flux_state_dict(
    sd: dict[str, torch.Tensor], cfg: DiTConfig, strict: bool = True
) -> dict[str, torch.Tensor]:
    """A ``FluxTransformer2DModel`` state dict -> the keys of the :class:`DiT` of ``cfg``
    (``strict=False``: any subset of it)."""
    take, out = _Taker(sd, strict), {}
    perm = _halves(cfg.head_dim)
    _embedders(out, take, cfg)
    _linear(out, "embed.image", take, "x_embedder")
    names, added = ("norm_q", "norm_k"), ("norm_added_q", "norm_added_k")
    for i in range(cfg.depth):
        blk, ours = f"transformer_blocks.{i}", f"blocks.{i}.streams"
        _linear(out, f"{ours}.image.mod.linear", take, f"{blk}.norm1.linear")
        _linear(out, f"{ours}.text.mod.linear", take, f"{blk}.norm1_context.linear")
        _stream(
            out,
            f"{ours}.image",
            take,
            f"{blk}.attn",
            IMAGE_QKV,
            names,
            "to_out.0",
            f"{blk}.ff",
            cfg,
            perm,
        )
        _stream(
            out,
            f"{ours}.text",
            take,
            f"{blk}.attn",
            TEXT_QKV,
            added,
            "to_add_out",
            f"{blk}.ff_context",
            cfg,
            perm,
        )
    for i in range(cfg.single_depth):
        blk, ours = f"single_transformer_blocks.{i}", f"single_blocks.{i}"
        _linear(out, f"{ours}.mod.linear", take, f"{blk}.norm.linear")
        _fused_qkv(
            out, f"{ours}.qkv", take, tuple(f"{blk}.attn.{x}" for x in IMAGE_QKV), perm, cfg.heads
        )
        _norm(out, f"{ours}.q_norm", take, f"{blk}.attn.norm_q", perm)
        _norm(out, f"{ours}.k_norm", take, f"{blk}.attn.norm_k", perm)
        _linear(out, f"{ours}.fc1", take, f"{blk}.proj_mlp")
        _linear(out, f"{ours}.proj", take, f"{blk}.proj_out")
    _final(out, take, None)
    _check_leftover(take)
    return out


def _check_leftover(take: _Taker) -> None:
    left = take.leftover()
    if left:
        raise ValueError(
            f"the checkpoint has {len(left)} weights the studio does not map "
            f"(first: {left[:3]}): an architecture variant it does not "
            "support"
        )


STATE_DICTS = {"sd3": sd3_state_dict, "flux": flux_state_dict}


def map_weights(
    cfg: DiTConfig, sd: dict[str, torch.Tensor], strict: bool = True
) -> dict[str, torch.Tensor]:
    """diffusers weights (all of them, or with ``strict=False`` any subset, such as LoRA
    updates: the map is linear, so it maps updates as it maps weights) -> the DiT's keys.
    ``sd`` is consumed (emptied) as it is mapped."""
    return STATE_DICTS[cfg.extra["family"]](sd, cfg, strict)


def read_weights(folder: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of a diffusers model folder's safetensors (one file or an indexed set),
    in their stored dtype; pickles are never read."""
    from safetensors.torch import load_file

    folder = Path(folder)
    files = sorted(folder.glob("diffusion_pytorch_model*.safetensors"))
    if not files:
        raise ValueError(
            f"{folder} has no diffusion_pytorch_model*.safetensors (the studio "
            "reads safetensors only)"
        )
    sd: dict[str, torch.Tensor] = {}
    for f in files:
        sd.update(load_file(f))
    return sd


def load_transformer(
    folder: str | Path, dtype: torch.dtype | None = None, device: str | torch.device = "cpu"
):
    """The :class:`DiT` of a diffusers SD3 / FLUX.1 ``transformer/`` folder, weights mapped
    at load (built on the meta device, so memory holds one copy of the weights), in their
    stored dtype unless ``dtype`` is given."""
    from .model import DiT

    cfg = dit_config(read_config(folder))
    sd = map_weights(cfg, read_weights(folder))
    with torch.device("meta"):
        model = DiT.from_dit_config(cfg)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    want = set(shapes)
    # The one place the core has weights the checkpoint lacks: the SD3 last block's text
    # output side (projection, MLP), which that block never computes. Zeros, never used.
    unused = f"blocks.{cfg.depth - 1}.streams.text."
    missing = want - set(sd)
    if any(not (k.startswith(unused) and (".proj." in k or ".mlp." in k)) for k in missing):
        raise ValueError(f"the checkpoint maps to no value for {sorted(missing)[:3]}")
    stored = dtype or next(iter(sd.values())).dtype
    for key in missing:
        sd[key] = torch.zeros(shapes[key], dtype=stored)
    extra = set(sd) - want
    if extra:
        raise ValueError(f"mapped weights with no place in the DiT: {sorted(extra)[:3]}")
    sd = {
        k: v.to(dtype) if dtype is not None and v.is_floating_point() else v for k, v in sd.items()
    }
    model.load_state_dict(sd, assign=True)
    return model.to(device).eval()

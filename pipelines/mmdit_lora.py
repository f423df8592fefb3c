"""LoRA files for SD3 / FLUX.1 folders: diffusers (peft) and kohya formats, merged into the core.

Reading is diffusers' own: ``lora_state_dict`` of the folder's pipeline class converts kohya,
XLabs and BFL-control files to diffusers' peft keys (FLUX.1), and ``_create_lora_config``
builds the ``peft.LoraConfig`` (rank, alpha, their per-layer patterns, from the file's
metadata or its ``alpha`` entries) exactly as ``load_lora_weights`` does. What differs is
where the update lands: the studio's DiT fuses q, k and v and permutes FLUX's rotary
channels, so each layer's update ``scale * alpha / r * B @ A`` is computed on diffusers' layer
and mapped into the core by the same (linear) weight map the checkpoint went through
(:func:`dit.from_diffusers.map_weights`), then added to the weights, as diffusers'
``fuse_lora`` does. The untouched weights are kept and put back when the adapters change, so
the model returns to its exact original values.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from dit.from_diffusers import map_weights

from .request import RequestError

LORA_FILE = "pytorch_lora_weights.safetensors"  # what diffusers' save_lora_weights writes


def lora_file(name_or_path: str) -> Path:
    """A LoRA given as a ``.safetensors`` file or a folder holding diffusers' LORA_FILE."""
    path = Path(name_or_path)
    try:
        if path.is_file() and path.suffix == ".safetensors":
            return path
        if (path / LORA_FILE).is_file():
            return path / LORA_FILE
    except OSError as e:
        raise RequestError(f"LoRA {name_or_path[:80]!r}: {e.strerror}") from None
    raise RequestError(
        f"LoRA {name_or_path!r}: for an SD3 / FLUX.1 model give a "
        ".safetensors file (diffusers or kohya format) or a folder with "
        f"{LORA_FILE}"
    )


def lora_updates(pipeline_cls, path: Path) -> dict[str, torch.Tensor]:
    """diffusers transformer weight key -> the update (float32) a LoRA file adds at scale 1."""
    from diffusers.utils.peft_utils import _create_lora_config
    from peft.utils.other import get_pattern_key

    kwargs = {"return_lora_metadata": True}
    if "return_alphas" in pipeline_cls.lora_state_dict.__code__.co_varnames:
        kwargs["return_alphas"] = True
    try:
        out = pipeline_cls.lora_state_dict(str(path), **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise RequestError(
            f"LoRA {path}: not a LoRA diffusers can read for {pipeline_cls.__name__} ({first})"
        ) from None
    state, alphas, metadata = (out[0], out[1], out[2]) if len(out) == 3 else (out[0], None, out[1])
    prefix = "transformer."
    others = sorted({k.split(".")[0] for k in state if not k.startswith(prefix)})
    if others:
        raise RequestError(
            f"LoRA {path} also adapts {others}; the studio applies transformer "
            "LoRAs only (train it without the text encoders)"
        )
    state = {k.removeprefix(prefix): v for k, v in state.items()}
    if metadata:
        metadata = {k.removeprefix(prefix): v for k, v in metadata.items() if k.startswith(prefix)}
    if alphas:
        alphas = {k.removeprefix(prefix): v for k, v in alphas.items() if k.startswith(prefix)}
    ranks = {f"^{k}": v.shape[1] for k, v in state.items() if "lora_B" in k and v.ndim > 1}
    if not ranks:
        raise RequestError(f"LoRA {path}: holds no transformer LoRA weights (lora_A / lora_B)")
    config = _create_lora_config(state, alphas or None, metadata or None, ranks, is_unet=False)
    if config.use_dora:
        raise RequestError(f"LoRA {path}: DoRA adapters are not supported")
    updates = {}
    for key in [k for k in state if k.endswith(".lora_A.weight")]:
        layer = key.removesuffix(".lora_A.weight")
        a, b = state[key].float(), state[f"{layer}.lora_B.weight"].float()
        r = config.rank_pattern.get(get_pattern_key(config.rank_pattern, layer), config.r)
        alpha = config.alpha_pattern.get(
            get_pattern_key(config.alpha_pattern, layer), config.lora_alpha
        )
        scaling = alpha / (math.sqrt(r) if config.use_rslora else r)
        updates[f"{layer}.weight"] = scaling * (b @ a)  # (out, in)
        if f"{layer}.lora_B.bias" in state:
            updates[f"{layer}.bias"] = scaling * state[f"{layer}.lora_B.bias"].float()
    return updates


class MergedLoras:
    """The adapters merged into a transformer now, and its original values of what they touch."""

    def __init__(self, transformer) -> None:
        self.transformer = transformer
        self.saved: dict[str, torch.Tensor] = {}

    def restore(self) -> None:
        params = dict(self.transformer.named_parameters())
        with torch.no_grad():
            for key, value in self.saved.items():
                params[key].copy_(value)
        self.saved = {}

    def apply(self, pipeline_cls, loras: list[tuple[str, float]]) -> None:
        """Merge exactly these (path, scale) adapters (after putting the originals back)."""
        self.restore()
        cfg = self.transformer.cfg
        total: dict[str, torch.Tensor] = {}
        for name, scale in loras:
            if not (isinstance(scale, int | float) and math.isfinite(scale)):
                raise RequestError(f"LoRA {name}: scale {scale!r} is not a finite number")
            try:
                mapped = map_weights(cfg, lora_updates(pipeline_cls, lora_file(name)), strict=False)
            except RequestError:
                raise
            except ValueError as e:  # the weight map: layers this architecture lacks
                raise RequestError(f"LoRA {name}: {e}") from None
            for key, delta in mapped.items():
                total[key] = total.get(key, 0) + scale * delta
        params = dict(self.transformer.named_parameters())
        unknown = sorted(set(total) - set(params))
        if unknown:
            raise RequestError(f"LoRA: updates for weights this model lacks: {unknown[:3]}")
        for key, delta in total.items():  # every check before the first change
            if delta.shape != params[key].shape:
                raise RequestError(
                    f"LoRA: an update of shape {tuple(delta.shape)} for {key} "
                    f"{tuple(params[key].shape)}: made for another model "
                    "size"
                )
        with torch.no_grad():
            for key, delta in total.items():
                p = params[key]
                self.saved[key] = p.detach().clone()
                p.add_(delta.to(p.dtype))

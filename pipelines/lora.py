"""LoRA adapters on the DiT core: injected with ``peft``, saved on their own, several at once.

An adapter folder holds ``adapter_config.json`` (peft's ``LoraConfig`` fields, with
``base_model_name_or_path`` naming the model it was trained on) and
``adapter_model.safetensors`` (the low-rank weights, keys as ``get_peft_model_state_dict``
writes them). Only safetensors are read.

Applying several adapters follows diffusers' ``set_adapters``: every adapter is injected
under its own name, all are active at once, and each LoRA layer's scaling is set per adapter
(``scale * alpha / rank``), so scale 0 leaves the base model's outputs exactly unchanged.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from peft import (
    LoraConfig,
    get_peft_model_state_dict,
    inject_adapter_in_model,
    set_peft_model_state_dict,
)
from peft.tuners.tuners_utils import BaseTunerLayer
from safetensors import safe_open
from safetensors.torch import save_file

if TYPE_CHECKING:
    from dit import DiT

    from .base import Pipeline

CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"
# The nn.Linear layers of every stream in every block (dit/block.py, dit/layers.py::MLP).
TARGETS = ("qkv", "proj", "fc1", "fc2")


def lora_config(
    rank: int, alpha: float, targets: list[str] | tuple[str, ...] = TARGETS, base_model: str = ""
) -> LoraConfig:
    """The peft config of a studio LoRA; ``targets`` are layer names from TARGETS."""
    if not isinstance(rank, int) or rank < 1:
        raise ValueError(f"lora rank={rank!r}: use an integer >= 1")
    if not (isinstance(alpha, int | float) and math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"lora alpha={alpha!r}: use a number > 0")
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown or not targets:
        raise ValueError(f"lora targets {sorted(targets)}: choose some of {list(TARGETS)}")
    # Whole-name match on the last component: "proj" must not catch anything else.
    pattern = rf".*\.({'|'.join(sorted(set(targets)))})$"
    return LoraConfig(
        r=rank,
        lora_alpha=alpha,
        target_modules=pattern,
        lora_dropout=0.0,
        base_model_name_or_path=base_model or None,
    )


def inject_lora(transformer: DiT, config: LoraConfig, name: str = "default") -> None:
    """Add one adapter's (trainable) LoRA layers to ``transformer``, in place; lora_B starts at
    zero, so the model's outputs are unchanged until it trains."""
    with warnings.catch_warnings():  # several adapters in one model is the point here
        warnings.filterwarnings("ignore", message="Already found a `peft_config`")
        inject_adapter_in_model(config, transformer, adapter_name=name)


def save_lora(
    transformer: DiT,
    folder: str | os.PathLike,
    meta: dict[str, Any],
    name: str = "default",
    half: bool = False,
    strength: float = 1.0,
) -> Path:
    """Write adapter ``name`` of ``transformer`` as a folder (atomically: temporary, renamed).

    ``meta`` must name the ``base_model``; every entry is also kept in the safetensors header.
    ``half`` stores fp16 weights (half the size); loading always computes in fp32.
    ``strength`` folds a scale into the adapter (its B matrices): loaded at scale 1 it acts as
    the trained adapter at scale ``strength`` (diffusers' ``fuse_lora(lora_scale=...)`` idea).
    """
    if not meta.get("base_model"):
        raise ValueError("save_lora: meta must name the base_model the adapter was trained on")
    folder = Path(folder)
    config = transformer.peft_config[name]
    dtype = torch.float16 if half else torch.float32
    state = {
        k: (v.detach().float() * (strength if "lora_B" in k else 1.0)).to("cpu", dtype).contiguous()
        for k, v in get_peft_model_state_dict(
            transformer, adapter_name=name, save_embedding_layers=False
        ).items()
    }
    if not state:
        raise ValueError(f"save_lora: the transformer has no weights for adapter {name!r}")
    tmp = folder.with_name(f".tmp-{folder.name}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    cfg = config.to_dict()
    cfg["base_model_name_or_path"] = str(meta["base_model"])
    cfg["target_modules"] = config.target_modules  # a pattern string; to_dict may make a set
    cfg["studio"] = {k: v for k, v in meta.items()}
    (tmp / CONFIG).write_text(json.dumps(cfg, indent=2, default=str))
    header = {"format": "dit-studio-lora", **{k: json.dumps(v) for k, v in meta.items()}}
    save_file(state, str(tmp / WEIGHTS), metadata=header)
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


def read_lora(folder: str | os.PathLike) -> tuple[LoraConfig, dict[str, torch.Tensor], dict]:
    """(peft config, weights, studio meta) of an adapter folder, with clear errors."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"LoRA folder {str(folder)!r} does not exist")
    if not (folder / CONFIG).is_file() or not (folder / WEIGHTS).is_file():
        pickled = sorted(p.name for p in folder.glob("*.bin"))
        extra = f"; pickled weights {pickled} are never read" if pickled else ""
        raise ValueError(f"{folder} is not a LoRA folder: it needs {CONFIG} and {WEIGHTS}{extra}")
    try:
        cfg = json.loads((folder / CONFIG).read_text())
        config = lora_config(
            cfg["r"],
            cfg["lora_alpha"],
            _target_names(cfg["target_modules"]),
            cfg.get("base_model_name_or_path") or "",
        )
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{folder / CONFIG}: not a LoRA adapter config ({e!r})") from None
    try:
        with safe_open(str(folder / WEIGHTS), framework="pt") as f:
            state = {k: f.get_tensor(k).float() for k in f.keys()}  # noqa: SIM118
    except Exception as e:  # a truncated or foreign file: say which
        raise ValueError(f"{folder / WEIGHTS}: unreadable safetensors ({e})") from None
    if not state or not all(".lora_A." in k or ".lora_B." in k for k in state):
        raise ValueError(f"{folder / WEIGHTS}: holds no LoRA weights (lora_A / lora_B)")
    return config, state, cfg.get("studio", {})


def apply_loras(pipe: Pipeline, loras: list[tuple[str, float]]) -> None:
    """Load adapters into ``pipe``'s transformer, all active at once, each at its own scale.

    ``loras``: (folder, scale) pairs; replaces any adapters applied before (an empty list
    removes them). Raises ValueError for a missing or malformed folder, an adapter made for
    another base model or shape, or a scale that is not finite.
    """
    for path, scale in loras:
        if not isinstance(scale, int | float) or not math.isfinite(scale):
            raise ValueError(f"LoRA {path}: scale {scale!r} is not a finite number")
    read = [(str(path), float(scale), *read_lora(path)) for path, scale in loras]
    base = pipe.spec.name
    for path, _, config, _, _ in read:
        made_for = config.base_model_name_or_path
        if made_for and made_for != base:
            raise ValueError(f"LoRA {path} was trained on model {made_for!r}, not {base!r}")
    transformer = pipe.transformer
    remove_loras(transformer)
    names = []
    try:
        for i, (path, _, config, state, _) in enumerate(read):
            name = f"lora{i}"
            _check_shapes(transformer, config, state, path)
            inject_lora(transformer, config, name)
            result = set_peft_model_state_dict(transformer, state, adapter_name=name)
            names.append(name)
            missing = [k for k in result.unexpected_keys if ".lora_" in k]
            if missing:
                raise ValueError(f"LoRA {path}: weights for layers this model lacks: {missing[:3]}")
    except Exception:
        remove_loras(transformer)
        raise
    if names:
        set_scales(transformer, names, [scale for _, scale, *_ in read])
    transformer.requires_grad_(False)
    transformer.eval()


def set_scales(transformer: DiT, names: list[str], scales: list[float]) -> None:
    """Activate adapters ``names`` together, each with its scale (diffusers' set_adapters)."""
    from diffusers.utils.peft_utils import set_weights_and_activate_adapters

    set_weights_and_activate_adapters(transformer, names, scales)


class adapters_off:
    """Context: every LoRA layer of ``transformer`` computes the base layer alone inside (the
    base model's outputs exactly), as it was after."""

    def __init__(self, transformer: DiT) -> None:
        self.layers = [m for m in transformer.modules() if isinstance(m, BaseTunerLayer)]

    def __enter__(self) -> None:
        self.was = [layer.disable_adapters for layer in self.layers]
        # peft's toggle also sets requires_grad on the adapter weights: keep what it was
        self.grads = [(p, p.requires_grad) for m in self.layers for p in m.parameters()]
        for layer in self.layers:
            layer.enable_adapters(False)

    def __exit__(self, *exc: object) -> None:
        for layer, was_off in zip(self.layers, self.was, strict=True):
            layer.enable_adapters(not was_off)
        for p, flag in self.grads:
            p.requires_grad_(flag)


def remove_loras(transformer: DiT) -> None:
    """Take every adapter out of ``transformer``: its LoRA layers become the plain base layers
    again (diffusers' ``recurse_remove_peft_layers``), so outputs are the base model's."""
    from diffusers.utils.peft_utils import recurse_remove_peft_layers

    if any(isinstance(m, BaseTunerLayer) for m in transformer.modules()):
        recurse_remove_peft_layers(transformer)
    if hasattr(transformer, "peft_config"):
        del transformer.peft_config


def _target_names(targets: Any) -> list[str]:
    if isinstance(targets, str):  # our pattern: r".*\.(fc1|fc2|proj|qkv)$"
        inner = targets.rsplit("(", 1)[-1].split(")", 1)[0]
        return inner.split("|")
    return list(targets)


def _check_shapes(
    transformer: DiT, config: LoraConfig, state: dict[str, torch.Tensor], path: str
) -> None:
    """Every adapter weight must sit on a layer of this model with the matching size."""
    layers = dict(transformer.named_modules())
    for key, value in state.items():
        owner, kind = key.split(".lora_")[0], key.split(".lora_")[1][0]  # "A" or "B"
        layer = layers.get(owner)
        layer = getattr(layer, "base_layer", layer)
        if not isinstance(layer, torch.nn.Linear):
            raise ValueError(
                f"LoRA {path}: this model has no layer {owner!r}; it was made for "
                "another base model"
            )
        want = (config.r, layer.in_features) if kind == "A" else (layer.out_features, config.r)
        if tuple(value.shape) != want:
            raise ValueError(
                f"LoRA {path}: {key} has shape {tuple(value.shape)}, this model needs {want}; "
                "it was made for a base model of another size"
            )

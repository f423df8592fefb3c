"""Real diffusers checkpoints the studio runs: SD3 / SD3.5 and FLUX.1 folders, as a ModelSpec.

A user's folder of ``StableDiffusion3Pipeline`` or ``FluxPipeline`` (``model_index.json`` as
diffusers writes it) has no ``studio`` section; its spec is read from the folder's own
configs here, without torch, so the CLI and the web app list such a folder as fast as a
bundled model. The defaults are the diffusers pipelines' own (steps, guidance, size), so a
request that names only a prompt and a seed makes what diffusers makes for it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SD3_PIPELINE, FLUX_PIPELINE = "StableDiffusion3Pipeline", "FluxPipeline"
FAMILIES = {SD3_PIPELINE: "sd3", FLUX_PIPELINE: "flux"}
SUPPORTED = (
    "StableDiffusion3Pipeline (SD3 Medium, SD3.5 Medium / Large) or FluxPipeline "
    "(FLUX.1 dev / schnell)"
)


def _json(folder: Path, name: str) -> dict[str, Any]:
    path = folder / name
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(
            f"{path} cannot be read ({e}): the folder is not a complete diffusers "
            f"model ({SUPPORTED})"
        ) from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a JSON object: restore the model's {name}")
    return data


def family_spec(folder: str | Path, index: dict[str, Any]) -> dict[str, Any]:
    """The :class:`~pipelines.spec.ModelSpec` fields of a diffusers SD3 / FLUX.1 folder."""
    folder = Path(folder)
    kind = index.get("_class_name")
    if kind not in FAMILIES:
        raise ValueError(f"{folder}: a diffusers {kind!r} folder; the studio runs {SUPPORTED}")
    family = FAMILIES[kind]
    transformer = _json(folder, "transformer/config.json")
    vae = _json(folder, "vae/config.json")
    scheduler = _json(folder, "scheduler/scheduler_config.json")
    scale = 2 ** (len(vae.get("block_out_channels", [0] * 4)) - 1)  # the pipelines' vae_scale
    if family == "sd3":
        patch = transformer.get("patch_size", 2)
        side = transformer.get("sample_size", 128) * scale  # StableDiffusion3Pipeline default
        max_side = transformer.get("pos_embed_max_size", 96) * patch * scale
        defaults = {"steps": 28, "guidance": 7.0, "solver": "euler"}
        guidance_embed = False
    else:
        patch = 2  # FLUX.1 packs 2 x 2 latents into one token
        side = 128 * scale  # FluxPipeline's default_sample_size * vae_scale_factor
        max_side = 2048  # FLUX.1's documented upper size; rotary positions take any
        guidance_embed = bool(transformer.get("guidance_embeds"))
        # dev: 28 steps, distilled guidance 3.5; schnell: 4 steps, no guidance input
        defaults = (
            {"steps": 28, "guidance": 3.5, "solver": "euler"}
            if guidance_embed
            else {"steps": 4, "guidance": 0.0, "solver": "euler"}
        )
    multiple = patch * scale
    return dict(
        name=str(folder),
        modality="image",
        objective="flow",
        channels=int(vae.get("latent_channels", 16)),
        patch=multiple,
        width=side,
        height=side,
        shift=float(scheduler.get("shift", 1.0)),
        defaults=defaults,
        limits={
            "multiple": multiple,
            "min_side": multiple,
            "max_side": max_side,
            "max_pixels": max_side * max_side,
            "solvers": ("euler", "heun", "midpoint"),
        },
        extra={
            "family": family,
            "pipeline": kind,
            "guidance_embed": guidance_embed,
            "vae_scale": scale,
            "latent_patch": patch,
        },
    )

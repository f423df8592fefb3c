"""Which pipeline class serves which modality, and loading any model folder by its modality.

Torch-free until a pipeline is actually loaded, so the web app and the CLI can list models and
their limits without paying for ``import torch``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from .spec import INDEX, ModelSpec, bundled_models, resolve_model

if TYPE_CHECKING:
    from .base import Pipeline

# modality -> "module:Class"; a new modality registers its pipeline here.
PIPELINES: dict[str, str] = {
    "image": "pipelines.image:TextToImagePipeline",
    "audio": "pipelines.audio:TextToAudioPipeline",
    "video": "pipelines.video:TextToVideoPipeline",
    "audio+video": "pipelines.audio_video:TextToAudioVideoPipeline",
}


# diffusers folders the studio runs on its core (pipelines/families.py): family -> class
FAMILY_PIPELINES: dict[str, str] = {
    "sd3": "pipelines.mmdit:MMDiTPipeline",
    "flux": "pipelines.mmdit:MMDiTPipeline",
}


def pipeline_class(modality: str, family: str = "") -> type[Pipeline]:
    if family:
        module, name = FAMILY_PIPELINES[family].split(":")
        return getattr(importlib.import_module(module), name)
    if modality not in PIPELINES:
        raise ValueError(f"no pipeline for modality {modality!r}; known: {sorted(PIPELINES)}")
    module, name = PIPELINES[modality].split(":")
    return getattr(importlib.import_module(module), name)


def load_pipeline(name_or_path: str, device: str = "cpu", dtype: str = "auto") -> Pipeline:
    """Like diffusers' ``DiffusionPipeline.from_pretrained``: the folder says which class.
    ``dtype`` (auto, bf16, fp16, fp32) is for SD3 / FLUX.1 folders; the studio's own models
    compute in fp32."""
    _, spec = ModelSpec.read(resolve_model(name_or_path))
    family = spec.extra.get("family", "")
    cls = pipeline_class(spec.modality, family)
    if family:
        return cls.from_pretrained(name_or_path, device=device, dtype=dtype)
    if dtype not in ("auto", "fp32"):
        raise ValueError(
            f"--dtype {dtype}: {spec.name} is a studio model, which computes in "
            "fp32; give --dtype auto"
        )
    return cls.from_pretrained(name_or_path, device=device)


def find_models(models_dir: str | Path | None = None) -> dict[str, ModelSpec]:
    """Every model the studio can offer: bundled names, then the folders in ``models_dir``
    (keyed by their path), each with its spec."""
    found: dict[str, ModelSpec] = {}
    for name in bundled_models():
        found[name] = ModelSpec.read(resolve_model(name))[1]
    if models_dir is not None:
        root = Path(models_dir)
        if not root.is_dir():
            raise FileNotFoundError(f"models directory {root} does not exist")
        for index in sorted(root.glob(f"*/{INDEX}")):
            try:
                found[str(index.parent)] = ModelSpec.read(index.parent)[1]
            except (ValueError, TypeError) as e:  # a foreign model_index.json: skip, say so
                import warnings

                warnings.warn(f"skipping {index.parent}: {e}", stacklevel=2)
    return found

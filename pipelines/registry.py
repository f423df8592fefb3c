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


def pipeline_class(modality: str) -> type[Pipeline]:
    if modality not in PIPELINES:
        raise ValueError(f"no pipeline for modality {modality!r}; known: {sorted(PIPELINES)}")
    module, name = PIPELINES[modality].split(":")
    return getattr(importlib.import_module(module), name)


def load_pipeline(name_or_path: str, device: str = "cpu") -> Pipeline:
    """Like diffusers' ``DiffusionPipeline.from_pretrained``: the folder says which class."""
    _, spec = ModelSpec.read(resolve_model(name_or_path))
    return pipeline_class(spec.modality).from_pretrained(name_or_path, device=device)


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

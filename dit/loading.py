"""Safe model folders: weights are read through safetensors only, pickles are never loaded."""

from __future__ import annotations

import os
from pathlib import Path

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def check_safe_folder(path: str | os.PathLike, config_name: str = "config.json") -> Path:
    """Raise a clear error unless ``path`` is a local folder with a config and safetensors."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"model folder {str(folder)!r} does not exist; give a local folder written by "
            "save_pretrained (the studio never downloads weights)"
        )
    if not (folder / config_name).is_file():
        raise FileNotFoundError(f"{folder} has no {config_name}; is it a model folder?")
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        pickled = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickled:
            raise ValueError(
                f"{folder} holds only pickled weights {pickled}; the studio refuses to unpickle "
                "(it can run code). Convert them to .safetensors with a tool you trust."
            )
        raise FileNotFoundError(f"{folder} has no .safetensors weights")
    return folder

"""The text-encoder factory: a folder or config -> the encoder that reads it. The encoders
import ``text`` (what they share); only this module imports the encoders."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .byte_encoder import ByteTextEncoder
from .text import TextEncoder
from .word_encoder import WordTextEncoder


def load_text_encoder(
    path_or_config: str | os.PathLike | dict[str, Any], **kwargs: Any
) -> TextEncoder:
    """The right encoder for a folder or config, returned as a :class:`TextEncoder`.

    path_or_config: a folder written by ``ByteTextEncoder.save_pretrained`` (its config names
    ``_class_name``); a local Hugging Face text-encoder folder (config with ``model_type``, or a
    diffusers pipeline folder with ``text_encoder/`` and ``tokenizer/``); or a dict of
    ``ByteTextEncoder`` config values, which builds a fresh, untrained byte encoder.
    kwargs go to ``ByteTextEncoder.from_pretrained`` or ``HFTextEncoder.from_folder``.
    """
    if isinstance(path_or_config, dict):
        name = path_or_config.get("_class_name", ByteTextEncoder.__name__)
        if name != ByteTextEncoder.__name__:
            raise ValueError(f"a config dict must describe a ByteTextEncoder, not {name!r}")
        return ByteTextEncoder.from_config(path_or_config)
    folder = Path(path_or_config)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"text encoder folder {str(folder)!r} does not exist; give a local folder "
            "(the studio never downloads weights)"
        )
    config_file = folder / "config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    for cls in (ByteTextEncoder, WordTextEncoder):
        if config.get("_class_name") == cls.__name__:
            return cls.from_pretrained(folder, **kwargs)
    if "model_type" in config or (folder / "text_encoder").is_dir():
        from .hf_encoder import HFTextEncoder  # here: transformers takes seconds to import

        return HFTextEncoder.from_folder(folder, **kwargs)
    raise ValueError(
        f"{folder} is not a text encoder folder: its config.json names neither a _class_name "
        f"of {[ByteTextEncoder.__name__, WordTextEncoder.__name__]} nor a transformers model_type"
    )

"""The studio's own model folders: ``config.json`` + ``diffusion_pytorch_model.safetensors``.

The folder layout is diffusers' ``ModelMixin`` / ``ConfigMixin`` one (the same file names, the
constructor's arguments as the config with ``_class_name`` and ``_diffusers_version``), so the
folders stay diffusers-style. It is written here rather than inherited from diffusers because
importing ``diffusers.models.modeling_utils`` costs about 2.3 s of every cold start on two cores
(it imports ``torch._dynamo`` and ``transformers``), and the studio's models use only three of
its services: recording the constructor's arguments, writing them beside the weights, and
reading both back (safetensors only; pickles are refused). diffusers itself is still what loads
SD3 / FLUX.1 folders and LoRA files (``pipelines/mmdit.py``, ``pipelines/lora.py``).
"""

from __future__ import annotations

import functools
import inspect
import json
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .loading import check_safe_folder

WEIGHTS = "diffusion_pytorch_model.safetensors"
CONFIG = "config.json"

T = TypeVar("T", bound="Pretrained")


class Config(dict):
    """The constructor's arguments, read as ``config["width"]`` or ``config.width``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def register_to_config(init):
    """Decorate ``__init__``: its arguments (defaults filled in) become ``self.config``."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self, *args: Any, **kwargs: Any) -> None:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        init(self, *args, **kwargs)
        arguments = dict(bound.arguments)
        arguments.pop("self")
        # JSON's view of the values (tuples as lists), as it will be read back
        object.__setattr__(self, "_config", Config(json.loads(json.dumps(arguments))))

    return wrapper


def _diffusers_version() -> str:
    try:
        return version("diffusers")  # package metadata only: diffusers is not imported
    except PackageNotFoundError:
        return "0.0.0"


class Pretrained(nn.Module):
    """``save_pretrained`` / ``from_pretrained`` / ``from_config`` for a module whose
    ``__init__`` is decorated with :func:`register_to_config`."""

    config_name = CONFIG

    @property
    def config(self) -> Config:
        return self._config

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @classmethod
    def from_config(cls: type[T], config: dict[str, Any]) -> T:
        """A fresh model from a config dict; keys that start with ``_`` (the class name and
        version) and keys ``__init__`` does not take (from an older studio) are ignored."""
        params = inspect.signature(cls.__init__).parameters
        return cls(**{k: v for k, v in config.items() if k in params and k != "self"})

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = {
            "_class_name": type(self).__name__,
            "_diffusers_version": _diffusers_version(),
            **self.config,
        }
        (folder / self.config_name).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        state = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        save_file(state, folder / WEIGHTS, metadata={"format": "pt"})

    @classmethod
    def from_pretrained(
        cls: type[T], path: str | os.PathLike, torch_dtype: torch.dtype | None = None, **_: Any
    ) -> T:
        """Load a local folder: the model is built in fp32 from its config, the stored weights
        (any float dtype) copied in, then cast to ``torch_dtype`` if given; in eval mode.
        Other keyword arguments (diffusers' ``use_safetensors`` ...) are accepted and unused."""
        folder = check_safe_folder(path, cls.config_name)
        try:
            config = json.loads((folder / cls.config_name).read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{folder / cls.config_name} is not valid JSON ({e})") from None
        name = config.get("_class_name", cls.__name__)
        if name != cls.__name__:
            raise ValueError(f"{folder} holds a {name}, not a {cls.__name__}")
        model = cls.from_config(config)
        weights = folder / WEIGHTS
        if not weights.is_file():
            raise FileNotFoundError(f"{folder} has no {WEIGHTS}")
        try:
            state = load_file(weights)
        except SafetensorError as e:
            raise ValueError(f"{weights} is not a readable safetensors file ({e})") from None
        try:
            model.load_state_dict(state)
        except RuntimeError as e:  # missing, unexpected or mis-shaped tensors: say which
            detail = " ".join(str(e).split("\n", 2)[1:2]).strip()
            raise ValueError(
                f"{weights} does not fit a {cls.__name__} of its config: {detail[:300]}"
            ) from None
        if torch_dtype is not None:
            model.to(torch_dtype)
        return model.eval()

"""The shared DiT core: config, model, attention seam, rotary positions, samplers, guidance.

The names below load on first use (PEP 562), so importing a torch-free submodule such as
``dit.runtime`` or ``dit.config`` (what ``dit-studio --help`` needs) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "available_backends": ".attention",
    "use_backend": ".attention",
    "PRESETS": ".config",
    "DiTConfig": ".config",
    "StreamConfig": ".config",
    "DiT": ".model",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'dit' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name], __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value

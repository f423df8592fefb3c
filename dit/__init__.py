"""The shared DiT core: config, model, attention seam, rotary positions, samplers, guidance."""

from .attention import attention, available_backends, use_backend
from .config import PRESETS, DiTConfig, StreamConfig
from .model import DiT

__all__ = [
    "PRESETS",
    "DiT",
    "DiTConfig",
    "StreamConfig",
    "attention",
    "available_backends",
    "use_backend",
]

"""The fastest inference path the studio offers: the same model, compiled by inductor.

Outputs stay equal to eager within 1e-4 (fp32); ``benchmarks`` measures both. Compilation
costs tens of seconds on a CPU, so the CLI uses it only when asked (``--compile``).
"""

from __future__ import annotations

import torch

from .model import DiT


def compile_model(model: DiT, dynamic: bool = False) -> torch.nn.Module:
    """Return ``model`` compiled for inference (call under ``torch.inference_mode``).

    ``dynamic=False`` specialises on shapes: recompiles once per new size, fastest per step.
    """
    model.eval()
    return torch.compile(model, dynamic=dynamic, fullgraph=True)

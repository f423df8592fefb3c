"""The fastest inference paths the studio offers: the same model, compiled by inductor.

``compile_model(model)`` freezes the weights into the graph (constant folding) and fuses the
pointwise work between GEMMs; on an x86 CPU its GEMMs run on oneDNN with each weight packed
once into oneDNN's blocked layout (:mod:`dit.linear`), and attention runs on the oneDNN
kernel of :mod:`dit.cpu_flash` (built here on first use, about 45 s on 2 cores, then cached).
(inductor's ``max-autotune`` was tried on the 2-core CPU: it picked the library GEMMs
everywhere, at minutes of compile time.)
Outputs stay equal to eager within 1e-4 (fp32); ``python -m benchmarks`` measures both next
to eager and diffusers.
"""

from __future__ import annotations

import torch

from . import cpu_flash
from .model import DiT


def compile_model(model: DiT, dynamic: bool = False) -> torch.nn.Module:
    """Return ``model`` compiled for inference (call under ``torch.inference_mode``).

    Freezing treats the weights as constants, so the compiled module does not see later
    changes to them (loading a LoRA, training): compile after the weights are final.
    ``dynamic=False`` specialises on shapes: recompiles once per new size, fastest per step.
    """
    model.eval()
    if next(model.parameters()).device.type == "cpu":
        cpu_flash.build()  # before tracing: attention falls back to SDPA if it cannot be built
    return torch.compile(model, dynamic=dynamic, fullgraph=True, options={"freezing": True})

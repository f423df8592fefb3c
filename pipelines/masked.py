"""Masked generation behind the same pipelines: MaskGIT (images) and MAGNeT spans (audio).

A masked model predicts the codes of an FSQ tokenizer (``conditioning/fsq.py``). Sampling
starts from all-[MASK] codes, commits the most confident ones step by step
(``dit.masked.decode``: exactly ``steps`` model calls, classifier-free guidance on the
logits), then the tokenizer turns the codes back into the flow layout's tokens, so a
pipeline's ``decode`` (PNG, WAV) and the app's previews work unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from dit.callbacks import StepCallback, StepState
from dit.guidance import guided
from dit.masked import decode
from dit.reuse import KVReuse
from dit.tokens import text_positions

if TYPE_CHECKING:
    from .base import Pipeline
    from .request import Request

# Decoding settings a masked model folder may set in its spec's extra["masked"].
# "reuse": keep committed tokens' keys and values between calls (dit/reuse.py, ENAT).
DECODING = {"schedule": "cosine", "span": 1, "temperature": 1.0, "temperature_end": 0.0,
            "choice_temperature": 4.5, "reuse": False}  # fmt: skip


def decoding(pipe) -> dict[str, Any]:
    """The model's decoding settings, then the pipeline's own overrides (``pipe.decoding``)."""
    return {**DECODING, **pipe.spec.extra.get("masked", {}), **pipe.decoding}


def sample_masked(
    pipe: Pipeline,
    request: Request,
    callback: StepCallback | None = None,
    prompts: list[str] | None = None,
) -> torch.Tensor:
    """(B, N, dim) flow-layout tokens of a resolved request, sampled by masked decoding."""
    lay = pipe.layout(request)
    device, b = pipe.device, request.num_outputs
    prompts = prompts or [request.prompt] * b
    mask_id = pipe.transformer.mask_id(lay.stream)
    cond, uncond = pipe.text_conditions(prompts, request.negative_prompt)
    positions = {"text": text_positions(cond["text"].shape[1], device),
                 lay.stream: lay.positions.to(device)}  # fmt: skip

    settings = decoding(pipe)
    model = pipe.transformer
    if settings["reuse"]:
        reuse = KVReuse(lay.stream, mask_id)
        model = lambda *a, **kw: reuse(pipe.transformer, *a, **kw)  # noqa: E731

    def fn(x: torch.Tensor, t: torch.Tensor, cond: dict[str, Any]) -> torch.Tensor:
        out = model({"text": cond["text"], lay.stream: x}, positions, t,
                    pooled=cond["pooled"], masks={"text": cond["mask"]})  # fmt: skip
        return out[lay.stream]  # (B, N, K) logits

    if request.guidance == 1.0:
        logits = lambda x, t: fn(x, t, cond)  # noqa: E731
    else:  # guidance on the logits, as Muse and MaskGIT's successors do
        logits = guided(fn, cond, uncond, request.guidance)

    def on_step(state: StepState) -> None:
        """Hand the callback the partly unmasked result: committed codes decoded, the
        still-masked ones shown neutral (mid grey / silence)."""
        committed = state.state != mask_id  # (B, N)
        tokens = pipe.codes_to_tokens(state.preview, request)  # (B, N, dim)
        tokens = torch.where(committed[..., None], tokens, pipe.masked_token_value)
        callback(StepState(state.step, state.total, state.t, state.state, tokens))

    start = torch.full((b, lay.tokens), mask_id, dtype=torch.long, device=device)
    generators = [torch.Generator().manual_seed(request.seed + i) for i in range(b)]
    codes = decode(logits, start, mask_id, request.steps, settings["schedule"],
                   settings["temperature"], settings["temperature_end"],
                   settings["choice_temperature"], settings["span"], generators,
                   on_step if callback is not None else None)  # fmt: skip
    return pipe.codes_to_tokens(codes, request)

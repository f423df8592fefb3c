"""The two sampler families behind one interface, chosen once when a pipeline is built.

A pipeline builds its model inputs once per request, as one typed bundle (:class:`Inputs`:
the generated streams' layouts, every stream's positions, the text conditions and the streams
held clean), and hands it with the transformer to its sampler. The sampler draws its own start
(noise for flow matching, all-[MASK] codes for masked decoding), wraps the model call in
classifier-free guidance (which switches itself off at scale 1), runs its solver from ``dit``
and returns flow-layout tokens. Neither sampler sees the pipeline: as Meta's ``flow_matching``
puts an ODE solver and a discrete solver behind one ``Solver``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch

from dit.callbacks import StepCallback, StepState
from dit.flow import solve
from dit.guidance import guided
from dit.masked import decode
from dit.reuse import KVReuse
from dit.tree import State

if TYPE_CHECKING:
    from dit import DiT

    from .request import Request

# Decoding settings a masked model folder may set in its spec's extra["masked"].
# "reuse": keep committed tokens' keys and values between calls (dit/reuse.py, ENAT).
DECODING = {
    "schedule": "cosine",
    "span": 1,
    "temperature": 1.0,
    "temperature_end": 0.0,
    "choice_temperature": 4.5,
    "reuse": False,
}


@dataclass
class Layout:
    """The generated stream of one request: token shape and position ids."""

    stream: str
    tokens: int
    dim: int
    positions: torch.Tensor  # (N, 4)


@dataclass(frozen=True)
class Inputs:
    """Everything the model calls of one request share, built once.

    layouts: the generated streams, in the model's order (one for single-modality models).
    positions: every stream's position ids, name -> (N_s, 4), text included.
    cond, uncond: the text conditions {"text" (B, L, D), "mask" (B, L), "pooled" (B, P),
        "given": name -> clean tokens (B, N, D) of streams held at t = 1}.
    guidance: the classifier-free guidance scale, or one per generated stream (1 = off).
    seed: output i draws its start from its own generator seeded ``seed + i``, so a seed
        gives the same output whatever the batch size.
    """

    layouts: tuple[Layout, ...]
    positions: dict[str, torch.Tensor]
    cond: dict[str, Any]
    uncond: dict[str, Any]
    guidance: float | dict[str, float]
    seed: int
    batch: int

    def generators(self) -> list[torch.Generator]:
        return [torch.Generator().manual_seed(self.seed + i) for i in range(self.batch)]

    def call(self, model: Callable, x: State, t: torch.Tensor, cond: dict[str, Any]) -> State:
        """The model's output for the generated streams: (B, N, out) for one, a dict for
        several, as ``x`` is given."""
        xs = x if isinstance(x, dict) else {self.layouts[0].stream: x}
        done = {k: torch.ones_like(t) for k in cond["given"]}  # given streams: t = 1
        out = model(
            {"text": cond["text"], **xs, **cond["given"]},
            self.positions,
            t,
            pooled=cond["pooled"],
            masks={"text": cond["mask"]},
            stream_t=done,
        )
        return {k: out[k] for k in xs} if isinstance(x, dict) else out[self.layouts[0].stream]

    def guided(self, model: Callable) -> Callable[[State, torch.Tensor], State]:
        return guided(
            lambda x, t, c: self.call(model, x, t, c), self.cond, self.uncond, self.guidance
        )


class Sampler(Protocol):
    def __call__(
        self, model: DiT, inputs: Inputs, request: Request, callback: StepCallback | None
    ) -> State: ...


@dataclass(frozen=True)
class FlowSampler:
    """Flow matching: start noise from ``prior(request, layout, generator)`` (N, dim) per
    output, then the request's ODE solver over ``grid(request, tokens)``, the model's times."""

    prior: Callable[[Request, Layout, torch.Generator], torch.Tensor]
    grid: Callable[[Request, int], torch.Tensor]

    def __call__(
        self, model: DiT, inputs: Inputs, request: Request, callback: StepCallback | None
    ) -> State:
        device = next(iter(inputs.positions.values())).device
        noise = {lay.stream: [] for lay in inputs.layouts}
        for g in inputs.generators():  # per output, every stream from its generator in turn
            for lay in inputs.layouts:
                noise[lay.stream].append(self.prior(request, lay, g))
        x0 = {k: torch.stack(v).to(device) for k, v in noise.items()}  # name -> (B, N, dim)
        start = x0 if len(x0) > 1 else x0[inputs.layouts[0].stream]
        grid = self.grid(request, inputs.layouts[0].tokens)
        return solve(inputs.guided(model), start, grid, request.solver, callback)


@dataclass(frozen=True)
class MaskedSampler:
    """Masked decoding (MaskGIT; MAGNeT spans): from all-[MASK] codes, exactly
    ``request.steps`` model calls (dit.masked.decode); ``to_tokens(codes (B, N), request)`` ->
    flow-layout tokens (B, N, dim). Previews show committed codes decoded and still-masked
    ones as ``masked_value`` (mid grey, silence). ``settings``: :data:`DECODING`'s keys; the
    request's solver picks the decoder: ``magnet`` commits whole spans of ``settings["span"]``
    codes, ``maskgit`` single codes."""

    to_tokens: Callable[[torch.Tensor, Request], torch.Tensor]
    masked_value: float
    settings: dict[str, Any]

    def __call__(
        self, model: DiT, inputs: Inputs, request: Request, callback: StepCallback | None
    ) -> State:
        lay, s = inputs.layouts[0], self.settings
        if request.solver not in ("maskgit", "magnet"):
            raise ValueError(
                f"solver={request.solver!r}: a masked model decodes with 'maskgit' or 'magnet'"
            )
        span = s["span"] if request.solver == "magnet" else 1  # MaskGIT commits single codes
        mask_id = model.mask_id(lay.stream)
        call = model
        if s["reuse"]:
            reuse = KVReuse(lay.stream, mask_id)
            call = lambda *a, **kw: reuse(model, *a, **kw)  # noqa: E731

        def on_step(state: StepState) -> None:
            committed = state.state != mask_id  # (B, N)
            tokens = self.to_tokens(state.preview, request)  # (B, N, dim)
            tokens = torch.where(committed[..., None], tokens, self.masked_value)
            callback(StepState(state.step, state.total, state.t, state.state, tokens))

        start = torch.full(
            (inputs.batch, lay.tokens),
            mask_id,
            dtype=torch.long,
            device=inputs.positions[lay.stream].device,
        )
        codes = decode(
            inputs.guided(call),
            start,
            mask_id,
            request.steps,
            s["schedule"],
            s["temperature"],
            s["temperature_end"],
            s["choice_temperature"],
            span,
            inputs.generators(),
            on_step if callback is not None else None,
        )
        return self.to_tokens(codes, request)

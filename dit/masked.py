"""Masked non-autoregressive generation: schedules, training masks, loss, and the decoder.

Convention: a schedule maps progress u in [0, 1] to the share of tokens still masked
(1 at u = 0, 0 at u = 1). The model sees t = share of tokens *visible*, the analogue of the
flow convention (t = 1 is data). Decoding is MaskGIT's confidence-ordered unmasking; with
``span > 1`` tokens are committed in spans of ``span`` neighbours (MAGNeT, for audio).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from .callbacks import StepCallback, StepState

LogitsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (tokens, t (B,)) -> logits

SCHEDULES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "cosine": lambda u: torch.cos(math.pi / 2 * u),
    "linear": lambda u: 1 - u,
}


def mask_ratio(u: torch.Tensor, schedule: str = "cosine") -> torch.Tensor:
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule={schedule!r} is unknown: choose one of {sorted(SCHEDULES)}")
    return SCHEDULES[schedule](u).clamp(0.0, 1.0)


# --- training -----------------------------------------------------------------------------


def random_mask(
    batch: int,
    n: int,
    schedule: str = "cosine",
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """(B, N) bool, True = masked: a schedule-drawn share per sample (at least one token)."""
    ratio = mask_ratio(torch.rand(batch, generator=generator, device=device), schedule)
    k = (ratio * n).ceil().clamp(1, n)  # (B,)
    ranks = torch.rand(batch, n, generator=generator, device=device).argsort(1).argsort(1)
    return ranks < k[:, None]


def span_mask(
    batch: int,
    n: int,
    span: int,
    schedule: str = "cosine",
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """(B, N) bool: MAGNeT-style masks made of whole spans of ``span`` tokens.

    Spans are the fixed units the decoder commits, so training matches decoding.
    """
    units = math.ceil(n / span)
    unit_mask = random_mask(batch, units, schedule, generator, device)  # (B, U)
    return unit_mask.repeat_interleave(span, dim=1)[:, :n]


def masked_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over masked positions only. logits (B, N, K), targets/mask (B, N)."""
    ce = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="none")
    m = mask.flatten().to(ce.dtype)
    return (ce * m).sum() / m.sum().clamp_min(1.0)


# --- decoding -----------------------------------------------------------------------------


Generators = torch.Generator | list[torch.Generator] | None


def _gumbel(shape, generator: Generators, device) -> torch.Tensor:
    """Gumbel noise of ``shape`` (B, ...); a list of generators draws row b from the b-th, so
    a sample's noise does not depend on the rest of its batch."""
    if isinstance(generator, list):
        rows = [torch.rand(shape[1:], generator=g) for g in generator]
        u = torch.stack(rows).to(device)
    else:
        u = torch.rand(shape, generator=generator, device=device)
    u = u.clamp(1e-10, 1 - 1e-10)
    return -torch.log(-torch.log(u))


def decode(
    logits_fn: LogitsFn,
    tokens: torch.Tensor,
    mask_id: int,
    steps: int,
    schedule: str = "cosine",
    temperature: float = 1.0,
    temperature_end: float = 0.0,
    choice_temperature: float = 4.5,
    span: int = 1,
    generator: Generators = None,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """Fill every ``mask_id`` in ``tokens`` (B, N) with exactly ``steps`` calls of ``logits_fn``.

    Each step samples all masked tokens (temperature annealed linearly from ``temperature``
    to ``temperature_end``; 0 = argmax), scores them by log-probability plus Gumbel noise
    scaled by ``choice_temperature * (1 - progress)``, commits the most confident spans and
    re-masks the rest so that the schedule's share stays masked. Committed tokens never
    change. ``generator``: one, or a list of one per row (per-sample seeds).
    """
    if isinstance(generator, list) and len(generator) != tokens.shape[0]:
        raise ValueError(
            f"{len(generator)} generators for {tokens.shape[0]} rows: give one per row"
        )
    if steps < 1:
        raise ValueError(f"steps={steps} is invalid: use at least 1 step")
    if span < 1:
        raise ValueError(f"span={span} is invalid: use 1 (tokens) or more (MAGNeT spans)")
    b, n = tokens.shape
    device = tokens.device
    units = math.ceil(n / span)
    pad = units * span - n
    x = tokens.clone()
    unit_masked = F.pad(x == mask_id, (0, pad)).view(b, units, span).any(-1)  # (B, U)
    start = unit_masked.sum(1)  # (B,) masked units at the start

    for i in range(steps):
        masked = x == mask_id  # (B, N)
        t = 1 - masked.float().mean(1)  # (B,) share visible
        logits = logits_fn(x, t).float()  # (B, N, K)
        frac = i / max(steps - 1, 1)
        temp = temperature + (temperature_end - temperature) * frac
        if temp > 0:
            sampled = (logits / temp + _gumbel(logits.shape, generator, device)).argmax(-1)
        else:
            sampled = logits.argmax(-1)
        logp = logits.log_softmax(-1).gather(-1, sampled[..., None])[..., 0]  # (B, N)
        noise = choice_temperature * (1 - (i + 1) / steps)
        conf = logp + noise * _gumbel(logp.shape, generator, device)
        conf = conf.masked_fill(~masked, math.inf)
        conf_u = F.pad(conf, (0, pad), value=math.nan).view(b, units, span).nanmean(-1)

        # How many units stay masked after this step: the schedule's share of the start,
        # but always at least one fewer than now, and none after the last step.
        now = unit_masked.sum(1)
        keep = (start.float() * mask_ratio(torch.tensor((i + 1) / steps), schedule)).floor()
        keep = torch.minimum(keep.long().to(device), (now - 1).clamp_min(0))
        if i == steps - 1:
            keep = torch.zeros_like(keep)
        rank = conf_u.argsort(1).argsort(1)  # 0 = least confident
        unit_masked = rank < keep[:, None]  # committed units have conf=inf: never re-masked
        remask = unit_masked.repeat_interleave(span, dim=1)[:, :n]

        filled = torch.where(masked, sampled, x)
        x = filled.masked_fill(remask, mask_id)
        if callback is not None:
            callback(StepState(i + 1, steps, float(1 - remask.float().mean()), x, filled))
    return x

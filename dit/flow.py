"""Flow matching: the training path and loss, time grids, and ODE solvers (pure functions).

Time convention, used everywhere in the studio: **t in [0, 1], t = 0 is pure noise, t = 1 is
data.** The straight (rectified) path is ``x_t = (1 - t) * noise + t * data``; the model
predicts the velocity ``v = data - noise``; samplers integrate ``dx/dt = v(x, t)`` from
t = 0 to t = 1. Models see t in [0, 1] (scaled only inside the timestep embedding).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .callbacks import StepCallback, StepState
from .config import X_PREDICTION_MIN_NOISE
from .tree import State, axpy, batch_size, tree_map

VelocityFn = Callable[[State, torch.Tensor], State]  # (x, t of shape (B,)) -> v

# --- training -----------------------------------------------------------------------------


def interpolate(noise: torch.Tensor, data: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t on the straight path; t: (B,) broadcast over the remaining dims."""
    t = t.view(-1, *([1] * (data.dim() - 1))).to(data.dtype)
    return (1 - t) * noise + t * data


def frame_noise(
    shape: tuple[int, ...], frames: int, share: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Gaussian noise (..., F S, D) whose F frames share ``share`` of their variance (PYoCo's
    mixed noise prior, Ge et al. 2023): eps_f = sqrt(share) eps_common + sqrt(1 - share)
    eps_f'. Every element stays N(0, 1); frames correlate by ``share``. An image model fed
    it draws nearly the same picture in every frame, so a video fine-tune starts consistent.
    ``share`` 0 is plain ``torch.randn`` (the same draws)."""
    independent = torch.randn(shape, generator=generator)
    if share == 0:
        return independent
    *lead, n, d = shape
    common = torch.randn((*lead, 1, n // frames, d), generator=generator)
    mixed = independent.unflatten(-2, (frames, n // frames))  # (..., F, S, D)
    return (math.sqrt(share) * common + math.sqrt(1 - share) * mixed).flatten(-3, -2)


def x_to_velocity(x: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The velocity implied by a clean-signal prediction ``x`` at ``x_t`` (both (B, N, D)) and
    t (B,): on the straight path v = (x - x_t) / (1 - t), with 1 - t clipped at
    ``X_PREDICTION_MIN_NOISE`` so the last steps stay finite (JiT's clip)."""
    noise_level = (1 - t.float()).clamp_min(X_PREDICTION_MIN_NOISE).view(-1, 1, 1)
    return ((x.float() - x_t.float()) / noise_level).to(x.dtype)


def target_velocity(noise: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    return data - noise


def flow_loss(
    pred: torch.Tensor, noise: torch.Tensor, data: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean squared velocity error; mask: (B, N) bool selects real tokens of (B, N, C)."""
    err = (pred.float() - target_velocity(noise, data).float()).pow(2)
    if mask is None:
        return err.mean()
    m = mask.to(err.dtype).unsqueeze(-1).expand_as(err)
    return (err * m).sum() / m.sum().clamp_min(1.0)


def logit_normal_t(
    n: int,
    mean: float = 0.0,
    std: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """(n,) training times from sigmoid(N(mean, std)) (SD3): more weight mid-path."""
    z = torch.randn(n, generator=generator, device=device) * std + mean
    return torch.sigmoid(z)


# --- time grids ---------------------------------------------------------------------------


def shift_time(t: torch.Tensor, shift: float) -> torch.Tensor:
    """Spend more steps near noise for shift > 1 (SD3's shift, in this file's convention).

    With noise level s = 1 - t: s' = shift * s / (1 + (shift - 1) * s).
    """
    s = 1 - t
    return 1 - shift * s / (1 + (shift - 1) * s)


def shift_for_tokens(
    n_tokens: int,
    base_tokens: int = 256,
    max_tokens: int = 4096,
    base_shift: float = 0.5,
    max_shift: float = 1.15,
) -> float:
    """Resolution/duration-dependent shift (Flux): log-shift linear in the token count."""
    slope = (max_shift - base_shift) / (max_tokens - base_tokens)
    return math.exp(base_shift + slope * (n_tokens - base_tokens))


def sway(t: torch.Tensor, coef: float) -> torch.Tensor:
    """F5-TTS Sway Sampling: t + coef * (cos(pi/2 t) - 1 + t); coef < 0 leans toward noise."""
    return t + coef * (torch.cos(math.pi / 2 * t) - 1 + t)


def time_grid(steps: int, shift: float = 1.0, sway_coef: float | None = None) -> torch.Tensor:
    """(steps + 1,) increasing times from 0 to 1 (float64)."""
    if steps < 1:
        raise ValueError(f"steps={steps} is invalid: use at least 1 step")
    t = torch.linspace(0, 1, steps + 1, dtype=torch.float64)
    if sway_coef is not None:
        t = sway(t, sway_coef)
    if shift != 1.0:
        t = shift_time(t, shift)
    return t


# --- solvers ------------------------------------------------------------------------------


def _tvec(x: State, t: float) -> torch.Tensor:
    leaf = next(iter(x.values())) if isinstance(x, dict) else x
    return torch.full((batch_size(x),), float(t), device=leaf.device)


def euler_step(v: VelocityFn, x: State, t: float, t_next: float) -> State:
    return axpy(x, t_next - t, v(x, _tvec(x, t)))


def midpoint_step(v: VelocityFn, x: State, t: float, t_next: float) -> State:
    h = t_next - t
    x_mid = axpy(x, h / 2, v(x, _tvec(x, t)))
    return axpy(x, h, v(x_mid, _tvec(x, t + h / 2)))


def heun_step(v: VelocityFn, x: State, t: float, t_next: float) -> State:
    """Trapezoid predictor-corrector (2nd order): two velocity calls per step, except a step
    that ends at the data (t_next = 1), which is an Euler step, as in EDM's Heun sampler
    (Karras et al. 2022, Alg. 1): the corrector would query the model at t = 1, where
    logit-normal training puts almost no samples (measured on shapes-t2i, 64 prompts: colour
    0% at 1 step and 6% at 2 steps with the correction there). The global error stays O(h^2)."""
    h = t_next - t
    v0 = v(x, _tvec(x, t))
    if t_next >= 1.0:
        return axpy(x, h, v0)
    v1 = v(axpy(x, h, v0), _tvec(x, t_next))
    return tree_map(lambda xi, a, b: xi + h / 2 * (a + b), x, v0, v1)


SOLVERS = {"euler": euler_step, "midpoint": midpoint_step, "heun": heun_step}


def solve(
    v: VelocityFn,
    x0: State,
    grid: torch.Tensor,
    solver: str = "euler",
    callback: StepCallback | None = None,
) -> State:
    """Integrate from grid[0] to grid[-1]; ``preview`` is the data estimate x + (1 - t) v."""
    if solver not in SOLVERS:
        raise ValueError(f"solver={solver!r} is unknown: choose one of {sorted(SOLVERS)}")
    step = SOLVERS[solver]
    x, times = x0, grid.tolist()
    total = len(times) - 1
    for i in range(total):
        x_prev = x
        x = step(v, x, times[i], times[i + 1])
        if callback is not None:
            # The last step's endpoint is the estimate; otherwise extrapolate along the chord.
            dt = times[i + 1] - times[i]
            rest = 1 - times[i + 1]
            preview = x if rest <= 0 else tree_map(lambda a, b: b + rest * (b - a) / dt, x_prev, x)
            callback(StepState(i + 1, total, times[i + 1], x, preview))
    return x

import math

import pytest
import torch

from dit.callbacks import Cancelled
from dit.flow import (
    euler_step,
    flow_loss,
    interpolate,
    logit_normal_t,
    shift_for_tokens,
    shift_time,
    solve,
    sway,
    target_velocity,
    time_grid,
)

A = 1.3  # dx/dt = A * x  ->  x(1) = x(0) * exp(A)


def linear_field(x, t):
    return A * x


def test_one_euler_step_is_x_plus_dt_v():
    x = torch.randn(3, 4, 5)
    v = lambda x, t: torch.sin(x) + t[:, None, None]  # noqa: E731
    out = euler_step(v, x, 0.2, 0.45)
    expected = x + 0.25 * (torch.sin(x) + 0.2)
    assert torch.equal(out, expected)


@pytest.mark.parametrize("solver, order", [("euler", 1), ("midpoint", 2), ("heun", 2)])
def test_solvers_converge_at_their_order(solver, order):
    x0 = torch.randn(4, 3, dtype=torch.float64)
    exact = x0 * math.exp(A)
    errs = [
        (solve(linear_field, x0, time_grid(n), solver) - exact).abs().max().item()
        for n in (8, 16, 32)
    ]
    rates = [math.log2(errs[i] / errs[i + 1]) for i in range(2)]
    assert all(abs(r - order) < 0.2 for r in rates), (errs, rates)


def test_heun_error_falls_faster_than_euler():
    x0 = torch.ones(1, dtype=torch.float64)
    err = {
        s: [abs(solve(linear_field, x0, time_grid(n), s).item() - math.exp(A)) for n in (4, 32)]
        for s in ("euler", "heun")
    }
    order = {s: math.log2(e[0] / e[1]) / 3 for s, e in err.items()}  # 8x more steps
    assert order["euler"] == pytest.approx(1.0, abs=0.15)
    assert order["heun"] == pytest.approx(2.0, abs=0.15)  # its last step is Euler (EDM)
    assert err["heun"][1] < err["euler"][1] / 20


def test_heun_makes_its_last_step_into_the_data_an_euler_step():
    calls = []

    def field(x, t):
        calls.append(float(t[0]))
        return A * x

    x0 = torch.ones(1, dtype=torch.float64)
    grid = time_grid(3)
    out = solve(field, x0, grid, "heun")
    assert len(calls) == 2 * 3 - 1 and max(calls) < 1.0  # the model never sees t = 1
    before_last = solve(field, x0, grid[:-1], "heun")  # the first two steps, unchanged
    h = float(grid[-1] - grid[-2])
    torch.testing.assert_close(out, before_last + h * A * before_last)


def test_straight_path_is_solved_exactly_by_one_euler_step():
    # On the straight path the true velocity is constant: Euler is exact with any grid.
    noise, data = torch.randn(2, 6), torch.randn(2, 6)
    out = solve(lambda x, t: target_velocity(noise, data), noise, time_grid(1), "euler")
    torch.testing.assert_close(out, data)
    assert torch.equal(interpolate(noise, data, torch.zeros(2)), noise)
    torch.testing.assert_close(interpolate(noise, data, torch.ones(2)), data)
    assert flow_loss(data - noise, noise, data).item() == 0.0


def test_solver_dicts_of_streams():
    x0 = {"video": torch.ones(1, 2, dtype=torch.float64), "audio": torch.ones(1, 3) * 2.0}
    out = solve(lambda x, t: {k: A * v for k, v in x.items()}, x0, time_grid(64), "heun")
    torch.testing.assert_close(out["audio"], torch.full((1, 3), 2 * math.exp(A)), rtol=1e-3, atol=0)


def test_time_grids():
    g = time_grid(10, shift=3.0, sway_coef=-1.0)
    assert g[0] == 0 and abs(g[-1] - 1) < 1e-12 and (g.diff() > 0).all()
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    assert (shift_time(t, 3.0) <= t + 1e-12).all()  # shift > 1 spends more steps near noise
    assert torch.allclose(shift_time(t, 1.0), t)
    assert (sway(t, -1.0) <= t + 1e-12).all() and abs(sway(t, -1.0)[-1] - 1) < 1e-12
    assert shift_for_tokens(4096) > shift_for_tokens(256)
    with pytest.raises(ValueError, match="steps"):
        time_grid(0)
    with pytest.raises(ValueError, match="solver"):
        solve(linear_field, torch.ones(1), time_grid(2), "rk9")


def test_logit_normal_is_in_unit_interval_and_centered():
    t = logit_normal_t(20_000, generator=torch.Generator().manual_seed(0))
    assert t.min() > 0 and t.max() < 1 and abs(t.median().item() - 0.5) < 0.02


def test_callback_sees_every_step_and_can_cancel():
    seen = []

    def cb(state):
        seen.append((state.step, state.total))
        if state.step == 3:
            raise Cancelled

    with pytest.raises(Cancelled):
        solve(linear_field, torch.ones(1), time_grid(8), "euler", cb)
    assert seen == [(1, 8), (2, 8), (3, 8)]

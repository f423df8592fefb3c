"""The sampler interface (pipelines/sampler.py) on analytic models, with no pipeline at all."""

import pytest
import torch

from dit.flow import time_grid
from pipelines.request import Request
from pipelines.sampler import DECODING, FlowSampler, Inputs, Layout, MaskedSampler


def _inputs(lay: Layout, batch: int, guidance: float = 1.0) -> Inputs:
    text = {
        "text": torch.zeros(batch, 2, 4),
        "mask": torch.ones(batch, 2, dtype=torch.bool),
        "pooled": None,
        "given": {},
    }
    positions = {"text": torch.zeros(2, 4), lay.stream: lay.positions}
    return Inputs((lay,), positions, text, dict(text), guidance, seed=5, batch=batch)


class ConstantVelocity(torch.nn.Module):
    """v = c everywhere: any solver lands exactly on x0 + c at t = 1."""

    def __init__(self):
        super().__init__()
        self.batches = []

    def forward(self, tokens, positions, t, **kw):
        self.batches.append(tokens["image"].shape[0])
        return {"image": torch.full_like(tokens["image"], 0.25)}


def test_flow_sampler_integrates_a_constant_velocity_exactly_from_per_output_seeds():
    lay = Layout("image", 3, 2, torch.zeros(3, 4))
    model = ConstantVelocity()
    sampler = FlowSampler(
        lambda r, lay, g: torch.randn(lay.tokens, lay.dim, generator=g),
        lambda r, n: time_grid(r.steps),
    )
    request = Request("x", seed=5, steps=4, solver="heun", guidance=1.0, num_outputs=2)
    out = sampler(model, _inputs(lay, 2), request, None)
    x0 = torch.stack(
        [torch.randn(3, 2, generator=torch.Generator().manual_seed(5 + i)) for i in range(2)]
    )
    assert torch.allclose(out, x0 + 0.25, atol=1e-6)
    assert model.batches == [2] * 7  # Heun: 2 calls a step, 1 on the last; scale 1: no uncond


class PreferCode(torch.nn.Module):
    """Logits that put every masked token on ``code``, more surely the later it sits."""

    def __init__(self, code: int, k: int):
        super().__init__()
        self.code, self.k, self.calls = code, k, 0

    def mask_id(self, stream):
        return self.k

    def forward(self, tokens, positions, t, **kw):
        self.calls += 1
        b, n = tokens["image"].shape
        logits = torch.zeros(b, n, self.k)
        logits[..., self.code] = 10.0 + torch.arange(n, dtype=torch.float32)
        return {"image": logits}


def test_masked_sampler_fills_every_code_in_exactly_steps_guided_calls():
    lay = Layout("image", 6, 1, torch.zeros(6, 4))
    model = PreferCode(code=3, k=8)
    greedy = {**DECODING, "temperature": 0.0, "choice_temperature": 0.0}
    sampler = MaskedSampler(lambda codes, r: codes[..., None].float(), -1.0, greedy)
    request = Request("x", seed=1, steps=3, solver="maskgit", guidance=2.0, num_outputs=2)
    states = []
    out = sampler(model, _inputs(lay, 2, guidance=2.0), request, states.append)
    assert model.calls == 3 and out.shape == (2, 6, 1) and bool((out == 3).all())
    # previews: committed codes decoded, still-masked ones at the masked value
    assert [int((s.preview == -1).sum()) for s in states][-1] == 0
    assert int((states[0].preview == -1).sum()) > 0


def test_the_solver_picks_the_decoder_spans_for_magnet_single_codes_for_maskgit():
    lay = Layout("image", 8, 1, torch.zeros(8, 4))
    greedy = {**DECODING, "temperature": 0.0, "choice_temperature": 0.0, "span": 4}
    sampler = MaskedSampler(lambda codes, r: codes[..., None].float(), -1.0, greedy)
    committed = {}
    for solver in ("magnet", "maskgit"):
        states = []
        request = Request("x", seed=1, steps=3, solver=solver, guidance=1.0, num_outputs=1)
        sampler(PreferCode(code=2, k=5), _inputs(lay, 1), request, states.append)
        committed[solver] = [int((s.state != 5).sum()) for s in states]
    assert all(n % 4 == 0 for n in committed["magnet"])  # whole spans of 4
    assert any(n % 4 for n in committed["maskgit"]), committed
    with pytest.raises(ValueError, match="maskgit"):
        sampler(
            PreferCode(2, 5),
            _inputs(lay, 1),
            Request("x", seed=1, steps=3, solver="heun", guidance=1.0),
            None,
        )

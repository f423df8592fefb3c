import pytest
import torch
from conftest import tiny_inputs

from dit.guidance import guided


def model_fn(model, positions, pooled_null):
    def fn(x, t, cond):
        tokens = {"text": cond["text"], "image": x}
        return model(tokens, positions, t, cond["pooled"])["image"]

    return fn


def test_batched_guidance_equals_two_separate_passes(tiny_model):
    # float64: batch 6 and batch 3 take different GEMM blockings; fp32 would differ by 1e-5.
    tiny_model = tiny_model.double()
    tokens, positions, t, pooled = tiny_inputs(batch=3)
    tokens = {k: v.double() for k, v in tokens.items()}
    pooled = pooled.double()
    cond = {"text": tokens["text"], "pooled": pooled}
    uncond = {"text": torch.zeros_like(tokens["text"]), "pooled": torch.zeros_like(pooled)}
    fn = model_fn(tiny_model, positions, None)
    x = tokens["image"]
    g = guided(fn, cond, uncond, scale=4.0)
    c, u = fn(x, t[:1].expand(3), cond), fn(x, t[:1].expand(3), uncond)
    torch.testing.assert_close(g(x, t[:1].expand(3)), u + 4.0 * (c - u), atol=1e-10, rtol=0)


def test_interval_and_per_stream_scales():
    calls = []

    def fn(x, t, cond):
        calls.append(x["a"].shape[0])
        return {"a": x["a"] * cond, "b": x["b"] * cond}

    x = {"a": torch.ones(2, 1), "b": torch.ones(2, 1)}
    cond, uncond = torch.full((2, 1), 3.0), torch.full((2, 1), 1.0)
    g = guided(fn, cond, uncond, scale={"a": 2.0, "b": 0.5}, interval=(0.2, 0.8))
    out = g(x, torch.full((2,), 0.5))
    assert calls == [4]  # one batched pass
    assert torch.equal(out["a"], torch.full((2, 1), 1 + 2.0 * 2)) and torch.equal(
        out["b"], torch.full((2, 1), 1 + 0.5 * 2)
    )
    out = g(x, torch.full((2,), 0.9))  # outside the interval: conditional only
    assert calls == [4, 2] and torch.equal(out["a"], cond)


def test_non_finite_scale_is_refused():
    with pytest.raises(ValueError, match="finite"):
        guided(lambda x, t, c: x, None, None, scale=float("nan"))

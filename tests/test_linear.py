"""The linear seam: oneDNN on the CPU at inference, plain ``F.linear`` wherever gradients flow."""

import pytest
import torch
import torch.nn.functional as F

import dit.linear
from dit.linear import ONEDNN, Linear, _onednn_linear, linear, uses_onednn

needs_onednn = pytest.mark.skipif(not ONEDNN, reason="this PyTorch build has no oneDNN linear")


def _layer(bias: bool = True) -> Linear:
    torch.manual_seed(0)
    return Linear(24, 40, bias=bias)


@needs_onednn
@pytest.mark.parametrize("bias", [True, False])
def test_inference_runs_on_onednn_and_equals_f_linear(bias, monkeypatch):
    layer, x = _layer(bias), torch.randn(3, 700, 24)  # >= EAGER_MIN_ROWS rows
    with torch.inference_mode():
        assert uses_onednn(x, layer.weight)
        with monkeypatch.context() as m:
            m.setattr(dit.linear.F, "linear", None)  # proves the call did not fall back
            out = layer(x)  # (3, 700, 40)
    assert out.shape == (3, 700, 40)
    torch.testing.assert_close(out, F.linear(x, layer.weight, layer.bias), atol=1e-5, rtol=1e-5)


@needs_onednn
def test_bf16_inference_is_close_to_fp32():
    layer, x = _layer(), torch.randn(5, 24)
    with torch.inference_mode():
        ref = layer(x)
        out = layer.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, atol=0.1, rtol=0.05)


def test_training_takes_the_autograd_path_and_gets_the_right_gradient():
    layer, x = _layer(), torch.randn(4, 24, requires_grad=True)
    assert not uses_onednn(x, layer.weight)
    layer(x).square().sum().backward()
    ref = torch.nn.Linear(24, 40)
    ref.load_state_dict(layer.state_dict())
    x2 = x.detach().clone().requires_grad_()
    ref(x2).square().sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)
    torch.testing.assert_close(layer.weight.grad, ref.weight.grad)


def test_state_dict_is_nn_linears():
    layer = _layer()
    assert isinstance(layer, torch.nn.Linear)
    assert list(layer.state_dict()) == list(torch.nn.Linear(24, 40).state_dict())


@needs_onednn
def test_compiled_layer_equals_eager():
    layer, x = _layer(), torch.randn(2, 9, 24)
    compiled = torch.compile(layer, fullgraph=True)
    with torch.inference_mode():
        torch.testing.assert_close(compiled(x), layer(x), atol=1e-5, rtol=1e-5)


@needs_onednn
def test_gelu_epilogue_equals_f_gelu_eager_and_compiled():
    layer, x = _layer(), torch.randn(2, 300, 24)  # >= EAGER_MIN_ROWS rows: oneDNN eager too
    ref = F.gelu(F.linear(x, layer.weight, layer.bias))
    fused = torch.compile(lambda x: linear(x, layer.weight, layer.bias, gelu=True))
    with torch.inference_mode():
        torch.testing.assert_close(linear(x, layer.weight, layer.bias, gelu=True), ref)
        torch.testing.assert_close(fused(x), ref, atol=1e-5, rtol=1e-5)


@needs_onednn
def test_packed_weight_follows_in_place_changes_and_row_counts():
    layer = _layer()
    with torch.inference_mode():
        for rows in (3, 5):  # a new row count repacks
            x = torch.randn(rows, 24)
            out = _onednn_linear(x, layer.weight, layer.bias, False)
            torch.testing.assert_close(out, F.linear(x, layer.weight, layer.bias))
        with torch.no_grad():
            layer.weight.mul_(-2.0)  # e.g. a LoRA merged in place: the packed copy is stale
        out = _onednn_linear(x, layer.weight, layer.bias, False)
        torch.testing.assert_close(out, F.linear(x, layer.weight, layer.bias))


def test_mlp_adds_a_wrapped_fc1s_update_before_the_gelu():
    from dit.layers import MLP

    torch.manual_seed(0)
    mlp, x = MLP(8, 16), torch.randn(3, 8)

    class Shifted(torch.nn.Module):  # stands in for peft's LoRA wrapper: base + update
        def __init__(self, base):
            super().__init__()
            self.base = base

        def forward(self, x):
            return self.base(x) - 1.0

    with torch.inference_mode():
        mlp.fc1 = Shifted(mlp.fc1)
        out = mlp(x)
        ref = mlp.fc2(F.gelu(F.linear(x, mlp.fc1.base.weight, mlp.fc1.base.bias) - 1.0))
    torch.testing.assert_close(out, ref)

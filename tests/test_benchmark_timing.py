"""The benchmark's FLOP count: attention's matmuls count on the CPU as they do on CUDA."""

import torch

from benchmarks.timing import count_flops
from dit.attention import attention, available_backends, use_backend
from dit.linear import Linear


def test_attention_flops_counted_on_cpu_and_equal_the_math_reference():
    b, h, n, dh = 2, 3, 40, 16
    q, k, v = (torch.randn(b, h, n, dh) for _ in range(3))
    analytic = 4 * b * h * n * n * dh  # QK^T and AV, 2 FLOPs per multiply-add
    names = ("sdpa", "math") + (("onednn",) if "onednn" in available_backends() else ())
    counts = {}
    for name in names:
        with use_backend(name), torch.inference_mode():
            counts[name] = count_flops(lambda: attention(q, k, v, None))
    assert counts == dict.fromkeys(names, analytic)


def test_linear_flops_are_two_per_multiply_add_on_either_path():
    layer = Linear(8, 5)
    x = torch.randn(2, 3, 8)
    assert count_flops(lambda: layer(x)) == 2 * 2 * 3 * 8 * 5  # oneDNN where the CPU has it
    assert count_flops(lambda: torch.nn.functional.linear(x, layer.weight, layer.bias)) == (
        2 * 2 * 3 * 8 * 5
    )

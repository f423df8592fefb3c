"""The fast paths: the compiled model equals eager; the allocator setting keeps results."""

import ctypes.util
import platform

import pytest
import torch
from conftest import tiny_inputs

from dit import cpu_flash
from dit.fast import compile_model
from dit.runtime import keep_freed_memory


def test_compiled_model_equals_eager_within_1e_4(tiny_model):
    tokens, positions, t, pooled = tiny_inputs(batch=3, side=4)
    with torch.inference_mode():
        eager = tiny_model(tokens, positions, t, pooled)
        compiled = compile_model(tiny_model)(tokens, positions, t, pooled)
    assert eager["image"].abs().max() > 1e-2  # random weights: a real, non-zero output
    for name in eager:
        torch.testing.assert_close(compiled[name], eager[name], atol=1e-4, rtol=0)


@pytest.mark.skipif(not cpu_flash.AVAILABLE, reason="needs x86 with oneDNN and a C++ compiler")
def test_compiled_model_attends_with_the_onednn_kernel(tiny_model):
    tokens, positions, t, pooled = tiny_inputs(batch=2, side=4)
    fast = compile_model(tiny_model)
    with torch.inference_mode(), torch.profiler.profile() as prof:
        fast(tokens, positions, t, pooled)
    names = {e.key for e in prof.key_averages()}
    assert "dit::cpu_flash_attention" in names
    assert not any("scaled_dot_product" in n for n in names)


@pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc" or not ctypes.util.find_library("c"),
    reason="mallopt is glibc's",
)
def test_keeping_freed_memory_applies_on_glibc_and_changes_no_result(tiny_model):
    tokens, positions, t, pooled = tiny_inputs()
    with torch.inference_mode():
        before = tiny_model(tokens, positions, t, pooled)["image"]
        assert keep_freed_memory() is True
        assert keep_freed_memory() is True  # idempotent
        after = tiny_model(tokens, positions, t, pooled)["image"]
    assert torch.equal(before, after)

import pytest
import torch

from dit.attention import ENV_VAR, attention, available_backends, resolve_backend, use_backend


def qkv(b=2, h=3, n=37, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, n, d, generator=g) for _ in range(3)]


@pytest.mark.parametrize("backend", available_backends())
@pytest.mark.parametrize("masked", [False, True])
def test_backends_equal_math_reference(backend, masked):
    q, k, v = qkv()
    mask = None
    if masked:  # two sequences of different lengths padded to 37
        mask = torch.ones(2, 37, dtype=torch.bool)
        mask[1, 20:] = False
    ref = attention(q, k, v, mask, backend="math")
    out = attention(q, k, v, mask, backend=backend)
    assert (out - ref).abs().max().item() <= 1e-5


ONEDNN = pytest.mark.skipif(
    "onednn" not in available_backends(), reason="needs x86 with oneDNN and a C++ compiler"
)


@ONEDNN
@pytest.mark.parametrize(
    ("nq", "nk", "d"), [(272, 272, 64), (200, 200, 64), (130, 300, 32), (5, 7, 16)]
)
def test_onednn_kernel_equals_math_on_block_shapes_and_strided_inputs(monkeypatch, nq, nk, d):
    """The oneDNN kernel itself (SDPA is made to fail): query blocks of 68, 50, 65 and one of
    5; fewer queries than keys (reused keys); q, k, v as token-major views of one projection,
    as the blocks pass them; with and without padding."""
    g = torch.Generator().manual_seed(0)
    qkv_q = torch.randn(2, nq, 3, 3, d, generator=g)  # (B, N, q/k/v, H, Dh)
    qkv_k = torch.randn(2, nk, 3, 3, d, generator=g)
    q = qkv_q[:, :, 0].transpose(1, 2)  # (B, H, Nq, Dh), strided
    k, v = qkv_k[:, :, 1].transpose(1, 2), qkv_k[:, :, 2].transpose(1, 2)
    mask = torch.ones(2, nk, dtype=torch.bool)
    mask[1, nk // 2 :] = False

    def no_sdpa(*args, **kwargs):
        raise AssertionError("fell back to SDPA")

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", no_sdpa)
    with torch.inference_mode():
        for m in (None, mask):
            out = attention(q, k, v, m, backend="onednn")
            assert (out - attention(q, k, v, m, backend="math")).abs().max().item() <= 1e-5


def test_padding_mask_ignores_padded_keys():
    q, k, v = qkv(b=1)
    mask = torch.ones(1, 37, dtype=torch.bool)
    mask[0, 30:] = False
    full = attention(q, k, v, mask)
    short = attention(q, k[:, :, :30], v[:, :, :30])
    torch.testing.assert_close(full, short, atol=1e-5, rtol=0)


def test_math_reference_is_softmax_attention():
    q, k, v = qkv(b=1, h=1, n=4, d=2)
    w = torch.softmax(q[0, 0] @ k[0, 0].T / 2**0.5, dim=-1)
    torch.testing.assert_close(attention(q, k, v, backend="math")[0, 0], w @ v[0, 0])


def test_selection_by_context_and_env(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "math")
    assert resolve_backend().name == "math"
    with use_backend("sdpa"):
        assert resolve_backend().name == "sdpa"
    monkeypatch.delenv(ENV_VAR)
    assert resolve_backend().name in ("sdpa", "xformers")


def test_unknown_backend_lists_available():
    with pytest.raises(ValueError, match="available") as err:
        attention(*qkv(), backend="flash9")
    assert "sdpa" in str(err.value)
    if "xformers" not in available_backends():
        with pytest.raises(ValueError, match="not available"), use_backend("xformers"):
            pass


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@CUDA
@pytest.mark.parametrize("backend", available_backends())
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_cuda_backends_equal_fp32_math(backend, dtype):
    """On a GPU, every backend (flash / memory-efficient SDPA kernels, xformers when installed)
    in every dtype matches the fp32 math reference within that dtype's rounding."""
    q, k, v = qkv(n=300, d=64)
    mask = torch.ones(2, 300, dtype=torch.bool)
    mask[1, 200:] = False
    ref = attention(q, k, v, mask, backend="math")
    args = [x.cuda().to(dtype) for x in (q, k, v)]
    out = attention(*args, mask.cuda(), backend=backend).float().cpu()
    tol = {torch.float32: 1e-3, torch.bfloat16: 3e-2, torch.float16: 5e-3}[dtype]  # TF32 too
    assert (out - ref).abs().max().item() <= tol


def test_a_kernel_that_cannot_be_built_falls_back_to_sdpa_with_a_warning(monkeypatch):
    from dit import cpu_flash

    def no_compiler():
        raise RuntimeError("c++: command not found")

    monkeypatch.setattr(cpu_flash, "AVAILABLE", True)
    monkeypatch.setattr(cpu_flash, "_extension", no_compiler)
    with pytest.warns(UserWarning, match="using SDPA: c\\+\\+: command not found"):
        assert cpu_flash.build() is False
    assert "onednn" not in available_backends()

"""diffusers' SD3 / SD3.5 / FLUX.1 transformers mapped into the core equal diffusers' own forward.

Tiny random models in the real layouts (diffusers ``save_pretrained``), nothing downloaded.
"""

from __future__ import annotations

import copy

import pytest
import torch
from diffusers import FluxTransformer2DModel, SD3Transformer2DModel
from mmdit_folders import randomise

from dit.from_diffusers import load_transformer
from dit.tokens import image_positions, patchify, text_positions, unpatchify

SD3_TINY = dict(
    sample_size=16,
    patch_size=2,
    in_channels=4,
    num_layers=3,
    attention_head_dim=8,
    num_attention_heads=4,
    joint_attention_dim=24,
    caption_projection_dim=32,
    pooled_projection_dim=20,
    out_channels=4,
    pos_embed_max_size=12,
)
SD35_TINY = {**SD3_TINY, "qk_norm": "rms_norm", "dual_attention_layers": (0, 1)}
FLUX_TINY = dict(
    patch_size=1,
    in_channels=16,
    num_layers=2,
    num_single_layers=2,
    attention_head_dim=16,
    num_attention_heads=2,
    joint_attention_dim=24,
    pooled_projection_dim=20,
    axes_dims_rope=(4, 6, 6),
)


@pytest.fixture(scope="module", params=["sd3", "sd3.5", "flux-dev", "flux-schnell"])
def family(request, tmp_path_factory):
    torch.manual_seed(0)
    kind = request.param
    if kind.startswith("sd3"):
        ref = SD3Transformer2DModel(**(SD3_TINY if kind == "sd3" else SD35_TINY))
    else:
        ref = FluxTransformer2DModel(**FLUX_TINY, guidance_embeds=kind == "flux-dev")
    randomise(ref, seed=0)
    folder = tmp_path_factory.mktemp(kind) / "transformer"
    ref.save_pretrained(folder)
    return kind, ref.eval(), load_transformer(folder, dtype=torch.float32)


def _relative(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).norm() / want.norm())


@torch.no_grad()
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("hw", [(8, 8), (6, 10)])
def test_forward_equals_diffusers(family, hw, dtype):
    """fp32: within 1e-5 relative (float rounding); fp64: within 1e-7 (the maps are exact; what
    is left is both models' fp32 timestep features)."""
    kind, ref, ours = family
    if dtype != torch.float32:  # copies: the fixture's models stay fp32
        ref, ours = copy.deepcopy(ref).to(dtype), copy.deepcopy(ours).to(dtype)
    g = torch.Generator().manual_seed(1)
    b, length, (h, w) = 2, 7, hw
    text = torch.randn(b, length, 24, generator=g, dtype=dtype)
    pooled = torch.randn(b, 20, generator=g, dtype=dtype)
    sigma = torch.tensor([0.9, 0.3], dtype=dtype)
    if kind.startswith("sd3"):
        x = torch.randn(b, 4, h, w, generator=g, dtype=dtype)
        want = ref(x, text, pooled, sigma * 1000).sample
        got = ours(
            {"text": text, "image": patchify(x, 2)},
            {"text": text_positions(length), "image": image_positions(h // 2, w // 2)},
            sigma,
            pooled=pooled,
        )["image"]
        got = unpatchify(got, 2, h // 2, w // 2)
    else:
        x = torch.randn(b, h * w, 16, generator=g, dtype=dtype)
        ids = image_positions(h, w)[:, 1:].to(dtype)  # (N, 3): FLUX's (0, y, x)
        guidance = torch.tensor([3.5, 1.0], dtype=dtype) if kind == "flux-dev" else None
        want = ref(
            x,
            text,
            pooled,
            sigma,
            img_ids=ids,
            txt_ids=torch.zeros(length, 3, dtype=dtype),
            guidance=guidance,
        ).sample
        got = ours(
            {"text": text, "image": x},
            {"text": text_positions(length), "image": image_positions(h, w)},
            sigma,
            pooled=pooled,
            guidance=guidance,
        )["image"]
    assert want.abs().mean() > 0.1  # a real output, not zeros on both sides
    assert _relative(got, want) < (1e-5 if dtype == torch.float32 else 1e-7)


def test_unsupported_folder_is_one_line(tmp_path):
    (tmp_path / "config.json").write_text('{"_class_name": "UNet2DConditionModel"}')
    with pytest.raises(ValueError, match=r"supported: .*FluxTransformer2DModel.*SD3"):
        load_transformer(tmp_path)


def test_too_large_for_the_position_table(family):
    kind, _, ours = family
    if not kind.startswith("sd3"):
        pytest.skip("FLUX has rotary positions: any size")
    n = 13  # > pos_embed_max_size 12
    with pytest.raises(ValueError, match="larger than this model's position table"):
        ours(
            {"text": torch.zeros(1, 2, 24), "image": torch.zeros(1, n * n, 16)},
            {"text": text_positions(2), "image": image_positions(n, n)},
            torch.ones(1),
            pooled=torch.zeros(1, 20),
        )

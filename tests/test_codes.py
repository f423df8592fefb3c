"""Factorised FSQ codes (dit/codes.py): analytic answers against the FSQ mixed radix."""

import itertools
import math

import pytest
import torch

from conditioning.fsq import FSQ
from dit import DiT, DiTConfig, StreamConfig
from dit.codes import FactorisedCodeEmbedding, joint_logits
from dit.masked import masked_loss
from dit.tokens import grid_positions, text_positions

LEVELS = (3, 4, 2)


def test_joint_logits_are_the_product_of_the_level_distributions_in_fsq_order():
    torch.manual_seed(0)
    level_logits = torch.randn(2, 5, sum(LEVELS))
    joint = joint_logits(level_logits, LEVELS)  # (2, 5, 24)
    assert joint.shape == (2, 5, math.prod(LEVELS))
    assert torch.allclose(joint.exp().sum(-1), torch.ones(2, 5), atol=1e-5)
    parts = [p.log_softmax(-1) for p in level_logits.split(list(LEVELS), -1)]
    fsq = FSQ(list(LEVELS))
    for digits in itertools.product(*(range(n) for n in LEVELS)):
        code = int((torch.tensor(digits) * fsq.basis).sum())
        want = sum(parts[i][..., d] for i, d in enumerate(digits))
        assert torch.allclose(joint[..., code], want, atol=1e-5), digits


def test_cross_entropy_on_joint_logits_is_the_sum_of_per_level_cross_entropies():
    torch.manual_seed(1)
    level_logits = torch.randn(1, 6, sum(LEVELS))
    targets = torch.randint(0, math.prod(LEVELS), (1, 6))
    mask = torch.ones(1, 6, dtype=torch.bool)
    fsq = FSQ(list(LEVELS))
    digits = (targets[..., None] // fsq.basis) % torch.tensor(LEVELS)  # (1, 6, L)
    per_level = sum(
        torch.nn.functional.cross_entropy(p.flatten(0, 1), digits[..., i].flatten())
        for i, p in enumerate(level_logits.split(list(LEVELS), -1))
    )
    assert torch.allclose(
        masked_loss(joint_logits(level_logits, LEVELS), targets, mask), per_level, atol=1e-5
    )


def test_embedding_is_the_sum_of_digit_rows_and_mask_has_its_own_row():
    emb = FactorisedCodeEmbedding(LEVELS, 8)
    k = math.prod(LEVELS)
    codes = torch.tensor([[0, 7, k - 1, k]])
    out = emb(codes)  # (1, 4, 8)
    w = emb.table.weight
    # code 7 = 1 + 3 * 2 -> digits (1, 2, 0); rows 0+1, 3+2, 7+0
    assert torch.allclose(out[0, 1], w[1] + w[3 + 2] + w[7 + 0])
    assert torch.allclose(out[0, 2], w[2] + w[3 + 3] + w[7 + 1])  # digits (2, 3, 1)
    assert torch.allclose(out[0, 3], w[-1])


def test_factorised_stream_is_validated_and_round_trips(tmp_path):
    with pytest.raises(ValueError, match="levels"):
        StreamConfig("image", head="logits", codebook_size=25, levels=(4, 5))
    with pytest.raises(ValueError, match="levels"):
        StreamConfig("image", 12, levels=(4, 5))
    streams = (
        StreamConfig("text", 16, "none"),
        StreamConfig("image", head="logits", codebook_size=24, levels=LEVELS),
    )
    cfg = DiTConfig.preset("tiny", streams=streams)
    torch.manual_seed(0)
    model = DiT.from_dit_config(cfg).eval()
    for p in model.heads_out.parameters():  # FinalLayer starts at zero: make it say something
        torch.nn.init.normal_(p, std=0.1)
    assert sum(p.numel() for p in model.embed["image"].parameters()) == (sum(LEVELS) + 1) * 32
    tokens = {"text": torch.randn(2, 3, 16), "image": torch.tensor([[0, 5, 24, 9]] * 2)}
    positions = {"text": text_positions(3), "image": grid_positions(1, 2, 2)}
    t = torch.full((2,), 0.5)
    with torch.no_grad():
        out = model(tokens, positions, t)["image"]
    assert out.shape == (2, 4, 24)
    assert torch.allclose(out.exp().sum(-1), torch.ones(2, 4), atol=1e-4)
    model.save_pretrained(tmp_path)
    again = DiT.from_pretrained(tmp_path).eval()
    assert again.cfg.stream("image").levels == LEVELS
    with torch.no_grad():
        assert torch.equal(again(tokens, positions, t)["image"], out)

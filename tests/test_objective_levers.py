"""Objective levers of the flow recipes: shifted training times and contrastive flow matching."""

from dataclasses import replace

import pytest
import torch

from dit.tokens import image_positions
from training.media import media_of
from training.recipe import Recipe
from training.trainer import _objective


def test_t_mean_shifts_the_logit_of_every_time_by_the_mean():
    base = Recipe.load("tiny-test")
    t0 = media_of(base).times(256, torch.Generator().manual_seed(3))
    t1 = media_of(replace(base, t_mean=-1.0)).times(256, torch.Generator().manual_seed(3))
    torch.testing.assert_close(torch.logit(t1), torch.logit(t0) - 1.0, atol=1e-4, rtol=0)
    assert t1.mean() < t0.mean()  # toward noise (t = 0)


def test_contrastive_term_is_the_distance_to_the_rolled_batchs_target():
    recipe = replace(Recipe.load("tiny-test"), contrastive=0.05)
    objective, _ = _objective(recipe)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # trained-like weights: a fresh adaLN-Zero DiT predicts exactly 0
        for p in objective.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=g))
    b, n, d = 4, 16, 48  # 16 x 16 image, 4 x 4 patches of 3 x 4 x 4 values
    data, noise = torch.randn(b, n, d, generator=g), torch.randn(b, n, d, generator=g)
    t, pos = torch.rand(b, generator=g), image_positions(4, 4)
    captions = ["a red circle", "a blue square", "a green star", ""]
    with torch.no_grad():
        loss = objective(data, pos, captions, noise, t)
        emb = objective.text_encoder.encode(captions)
        x_t = (1 - t.view(-1, 1, 1)) * noise + t.view(-1, 1, 1) * data
        pred = objective.velocity(x_t, pos, emb, t)
    plain = (pred - (data - noise)).pow(2).mean()
    other = (pred - (data.roll(1, 0) - noise.roll(1, 0))).pow(2).mean()
    assert abs(other - plain) > 0.01 * plain  # rolled targets differ: a missing roll fails
    torch.testing.assert_close(loss, plain - 0.05 * other, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("field", "value"), [("t_mean", 5.0), ("contrastive", -0.1),
                                              ("contrastive", 1.5)])  # fmt: skip
def test_bad_lever_values_say_what_to_use(field, value):
    with pytest.raises(ValueError, match=field):
        Recipe.load("tiny-test", **{field: value})

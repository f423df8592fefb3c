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


@pytest.mark.parametrize(
    ("field", "value"), [("t_mean", 5.0), ("contrastive", -0.1), ("contrastive", 1.5)]
)
def test_bad_lever_values_say_what_to_use(field, value):
    with pytest.raises(ValueError, match=field):
        Recipe.load("tiny-test", **{field: value})


def test_x_prediction_returns_the_velocity_its_clean_signal_implies():
    recipe = replace(Recipe.load("tiny-test"), prediction="x")
    x_obj, _ = _objective(recipe)
    v_obj, _ = _objective(Recipe.load("tiny-test"))
    assert x_obj.transformer.cfg.stream("image").prediction == "x"
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # the same (non-zero) weights in both: only the head's meaning differs
        for p in x_obj.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=g))
        v_obj.load_state_dict(x_obj.state_dict())
        x_t, pos = torch.randn(3, 16, 48, generator=g), image_positions(4, 4)
        t = torch.tensor([0.0, 0.5, 0.99])  # the last one clipped: 1 - t -> 0.05
        emb = x_obj.text_encoder.encode(["a red circle", "", "a blue star"])
        raw = v_obj.velocity(x_t, pos, emb, t)  # the head's output, read as a velocity
        v = x_obj.velocity(x_t, pos, emb, t)
    scale = torch.tensor([1.0, 0.5, 0.05]).view(-1, 1, 1)
    torch.testing.assert_close(v, (raw - x_t) / scale, atol=1e-5, rtol=1e-5)
    # a perfect clean-signal prediction gives the true velocity anywhere on the path
    from dit.flow import interpolate, x_to_velocity

    data, noise = torch.randn(2, 5, 7, generator=g), torch.randn(2, 5, 7, generator=g)
    tt = torch.tensor([0.2, 0.7])
    torch.testing.assert_close(
        x_to_velocity(data, interpolate(noise, data, tt), tt), data - noise, atol=1e-5, rtol=1e-5
    )


def test_x_prediction_is_saved_with_the_model_and_refused_for_masked(tmp_path):
    from dit import DiT

    objective, _ = _objective(replace(Recipe.load("tiny-test"), prediction="x"))
    objective.transformer.save_pretrained(tmp_path)
    assert DiT.from_pretrained(tmp_path).cfg.stream("image").prediction == "x"
    with pytest.raises(ValueError, match="prediction"):
        Recipe.load("tiny-test", prediction="eps")


def test_the_sound_ab_arms_differ_from_the_baseline_in_their_one_lever():
    from dataclasses import asdict

    base = asdict(Recipe.load("sounds-t2a-ab-velocity"))
    arms = {
        "sounds-t2a-ab-x": {"prediction": "x"},
        "sounds-t2a-ab-t-mean": {"t_mean": -0.5},
        "sounds-t2a-ab-contrastive": {"contrastive": 0.05},
        "sounds-t2a-ab-mel128": {"codec": {"n_mels": 128, "f_min": 100.0, "frames_per_token": 2}},
        "sounds-t2a-ab-masked-text": {"init_text_encoder": "sounds-t2a-masked"},
        "sounds-t2a-ab-lr": {"lr": 0.001},
        "sounds-t2a-ab-from-masked": {
            "preset": "xs",
            "init_trunk": "sounds-t2a-masked",
            "init_text_encoder": "sounds-t2a-masked",
        },
    }
    for name, lever in arms.items():
        arm = asdict(Recipe.load(name))
        assert {k: v for k, v in arm.items() if base[k] != v} == lever, name
    start = asdict(Recipe.load("sounds-t2a-ab-from-masked"))
    aux = asdict(Recipe.load("sounds-t2a-ab-aux"))
    assert {k: v for k, v in aux.items() if start[k] != v} == {"aux": {"weight": 0.1, "block": 1}}

"""A tiny model must be able to memorise one fixed batch with either objective."""

import torch
from conftest import tiny_inputs

from dit import DiT, DiTConfig, StreamConfig
from dit.flow import flow_loss, interpolate
from dit.masked import masked_loss, random_mask


def train(model, loss_fn, steps=300, lr=3e-3):
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    losses = []
    for _ in range(steps):
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_flow_objective_overfits_text_plus_image():
    torch.manual_seed(0)
    model = DiT.from_dit_config(
        DiTConfig.preset(
            "tiny",
            streams=(StreamConfig("text", 8, "none"), StreamConfig("image", 12)),
            pooled_dim=8,
        )
    )
    tokens, positions, t, pooled = tiny_inputs(batch=4)
    data, noise = tokens["image"], torch.randn_like(tokens["image"])
    x_t = interpolate(noise, data, t)

    def loss():
        v = model({"text": tokens["text"], "image": x_t}, positions, t, pooled)["image"]
        return flow_loss(v, noise, data)

    losses = train(model, loss)
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])


def test_masked_objective_overfits_text_plus_image():
    torch.manual_seed(0)
    k = 16
    model = DiT.from_dit_config(
        DiTConfig.preset(
            "tiny",
            streams=(
                StreamConfig("text", 8, "none"),
                StreamConfig("image", head="logits", codebook_size=k),
            ),
        )
    )
    tokens, positions, _, _ = tiny_inputs(batch=4)
    codes = torch.randint(0, k, (4, 9), generator=torch.Generator().manual_seed(1))
    mask = random_mask(4, 9, generator=torch.Generator().manual_seed(2))
    inputs = codes.masked_fill(mask, model.mask_id("image"))
    t = 1 - mask.float().mean(1)

    def loss():
        logits = model({"text": tokens["text"], "image": inputs}, positions, t)["image"]
        return masked_loss(logits, codes, mask)

    losses = train(model, loss)
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])

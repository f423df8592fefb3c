"""`dit-studio train mmdit-lora` on tiny SD3.5 / FLUX.1 folders: the objective is diffusers'
transformer's loss, the export is a diffusers LoRA that diffusers' `load_lora_weights` and the
studio's `--lora` read the same, and a killed run resumes exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline
from mmdit_folders import FOLDERS
from PIL import Image
from safetensors.torch import load_file

from dit.tokens import image_positions, patchify, text_positions
from pipelines.registry import load_pipeline
from training.__main__ import main as train_cli
from training.mmdit_lora import (
    LORA_FILE,
    DiffusersLoRA,
    MMDiTLoRAObjective,
    encode_folder,
    read_adapter,
    target_layers,
)
from training.recipe import Recipe
from training.trainer import train

KINDS = ("sd3.5", "flux-dev")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("mmdit-lora")
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i, caption in enumerate(["a red chair", "a cat on a red chair", "a blue house"]):
        pixels = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / f"{i}.png")
        (images / f"{i}.txt").write_text(caption)
    return {kind: FOLDERS[kind](root / kind) for kind in KINDS}, images


def _recipe(folder, images, **over) -> Recipe:
    return Recipe.load(
        "mmdit-lora",
        init=str(folder),
        data_path=str(images),
        size=32,
        batch_size=2,
        steps=6,
        lr=3e-2,
        checkpoint_every=3,
        **over,
    )


def _reference_loss(ref, kind, lat, noise, sigma, text, pooled, guidance) -> torch.Tensor:
    """diffusers' transformer on (1 - sigma) latents + sigma noise, against noise - latents
    (diffusers' train_dreambooth_lora_sd3.py / _flux.py)."""
    s = sigma.view(-1, 1, 1, 1)
    noisy = (1 - s) * lat + s * noise  # (B, C, h, w)
    t = ref.transformer
    if kind.startswith("sd3"):
        pred = t(
            hidden_states=noisy,
            encoder_hidden_states=text,
            pooled_projections=pooled,
            timestep=sigma * 1000,
            return_dict=False,
        )[0]
        return torch.nn.functional.mse_loss(pred, noise - lat)
    b, c, h, w = lat.shape
    pack = ref._pack_latents
    ids = ref._prepare_latent_image_ids(b, h // 2, w // 2, "cpu", torch.float32)
    pred = t(
        hidden_states=pack(noisy, b, c, h, w),
        encoder_hidden_states=text,
        pooled_projections=pooled,
        timestep=sigma,
        guidance=guidance,
        txt_ids=torch.zeros(text.shape[1], 3),
        img_ids=ids,
        return_dict=False,
    )[0]
    return torch.nn.functional.mse_loss(pred, pack(noise - lat, b, c, h, w))


@pytest.mark.parametrize("kind", KINDS)
def test_trained_adapter_is_diffusers_loss_and_file(folders, kind, tmp_path):
    roots, images = folders
    folder = roots[kind]
    model = train(_recipe(folder, images), tmp_path / "run")
    state = load_file(model / LORA_FILE)
    assert state and all(k.startswith("transformer.") for k in state)
    assert any(v.abs().max() > 0 for k, v in state.items() if "lora_B" in k)  # it trained

    ours = load_pipeline(str(folder))
    ref = DiffusionPipeline.from_pretrained(folder)
    g = torch.Generator().manual_seed(3)
    lat = torch.randn(2, ours.spec.channels, 4, 6, generator=g)  # (B, C, h, w)
    noise = torch.randn(lat.shape, generator=g)
    sigma = torch.tensor([0.3, 0.8])
    cond, _ = ours.encode(["a red chair", "a blue house"], "", False)
    guidance = torch.full((2,), 3.5) if kind == "flux-dev" else None
    p = ours.spec.extra["latent_patch"]
    positions = {
        "text": text_positions(cond["text"].shape[1], "cpu"),
        "image": image_positions(4 // p, 6 // p),
    }
    lora = DiffusersLoRA(target_layers(folder, ("to_q", "to_k", "to_v", "to_out.0")), 4, 4)
    objective = MMDiTLoRAObjective(ours, lora)
    args = (patchify(lat, p), cond["text"], cond["pooled"], patchify(noise, p), sigma)
    with torch.no_grad():
        base = objective(*args, positions, guidance)
        want = _reference_loss(ref, kind, lat, noise, sigma, cond["text"], cond["pooled"], guidance)
        assert abs(base.item() - want.item()) < 1e-5 * want.item()
        # the trained adapter: ours from the run's checkpoint, diffusers' from the exported file
        trained = read_adapter(tmp_path / "run", folder, _recipe(folder, images))
        adapted = MMDiTLoRAObjective(ours, trained)(*args, positions, guidance)
        ref.load_lora_weights(str(model))
        want = _reference_loss(ref, kind, lat, noise, sigma, cond["text"], cond["pooled"], guidance)
    assert abs(adapted.item() - want.item()) < 1e-4 * want.item()
    assert abs(adapted.item() - base.item()) > 1e-3 * base.item()  # the adapter changed it

    # it learnt the folder: lower loss on its own images at fixed draws
    (_, items), _ = encode_folder(ours, _recipe(folder, images))
    x = torch.stack([it[0] for it in items])
    h, w = items[0][3]
    own = {
        "text": text_positions(items[0][1].shape[0], "cpu"),
        "image": image_positions(h // p, w // p),
    }
    fixed = (
        x,
        torch.stack([it[1] for it in items]),
        torch.stack([it[2] for it in items]),
        torch.randn(x.shape, generator=g),
        torch.full((len(items),), 0.5),
    )
    gv = None if guidance is None else torch.full((len(items),), 3.5)
    with torch.no_grad():
        before = MMDiTLoRAObjective(ours, lora)(*fixed, own, gv)
        after = MMDiTLoRAObjective(ours, trained)(*fixed, own, gv)
    assert after < 0.95 * before

    # and the studio applies the exported file as diffusers does
    req = ours.resolve("a red chair", seed=1, steps=2, height=32, width=48)
    plain = ours.sample(req)
    got = ours.sample(
        ours.resolve(
            "a red chair", seed=1, steps=2, height=32, width=48, loras=((str(model), 1.0),)
        )
    )
    assert not torch.allclose(got, plain)


def test_resume_continues_exactly(folders, tmp_path):
    roots, images = folders
    folder = roots["sd3.5"]
    whole = train(_recipe(folder, images), tmp_path / "whole")
    half = tmp_path / "half"
    train(_recipe(folder, images, stop_at=3), half)
    resumed = train(_recipe(folder, images), half, resume=True)
    a, b = load_file(whole / LORA_FILE), load_file(resumed / LORA_FILE)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bad_bases_and_targets_are_one_line(folders, tmp_path, capsys):
    roots, images = folders
    code = train_cli(["mmdit-lora", "--out", str(tmp_path / "r"), "--data-path", str(images)])
    assert code == 2 and "init" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"SD3 / SD3\.5 / FLUX\.1"):
        train(_recipe("assets/shapes-t2i", images), tmp_path / "s")
    with pytest.raises(ValueError, match="match no linear layer"):
        target_layers(roots["sd3.5"], ("no_such_layer",))

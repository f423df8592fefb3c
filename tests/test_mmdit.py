"""SD3 / SD3.5 / FLUX.1 folders in the studio equal diffusers' own pipelines on the same folder.

The folders are tiny random models in the real layout (tests/mmdit_folders.py); nothing is
downloaded.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline
from mmdit_folders import FOLDERS
from PIL import Image

from app.cli import main as cli
from pipelines.registry import find_models, load_pipeline
from pipelines.request import Request, RequestError
from pipelines.spec import ModelSpec

STEPS = 3
CASES = [("a cat sitting on a red chair", 32, 32), ("two dogs playing in the snow", 32, 48)]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """kind -> (folder, diffusers' pipeline, the studio's pipeline)."""
    root = tmp_path_factory.mktemp("mmdit")
    out = {}
    for kind, build in FOLDERS.items():
        folder = build(root / kind)
        out[kind] = folder, DiffusionPipeline.from_pretrained(folder), load_pipeline(str(folder))
    return out


def _guidance(kind: str) -> dict:
    return {"guidance": 4.0} if kind.startswith("sd3") else {}


def _reference(ref, kind: str, prompt: str, h: int, w: int, seed: int, output_type: str, **extra):
    kw = {"guidance_scale": 4.0} if kind.startswith("sd3") else {}
    return ref(
        prompt,
        height=h,
        width=w,
        num_inference_steps=STEPS,
        output_type=output_type,
        generator=torch.Generator().manual_seed(seed),
        **kw,
        **extra,
    ).images


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("kind", list(FOLDERS))
@pytest.mark.parametrize("prompt,h,w", CASES)
def test_final_latents_equal_diffusers(models, kind, prompt, h, w):
    _, ref, ours = models[kind]
    req = ours.resolve(prompt, seed=7, steps=STEPS, height=h, width=w, **_guidance(kind))
    x = ours.sample(req)
    got = ours.latents(x, req) if kind.startswith("sd3") else x  # FLUX returns packed latents
    want = _reference(ref, kind, prompt, h, w, 7, "latent")
    assert got.shape == want.shape
    assert _relative(got, want) < 1e-4


def test_negative_prompt_sd3(models):
    _, ref, ours = models["sd3.5"]
    req = ours.resolve(
        "a cat", seed=1, steps=STEPS, height=32, width=32, guidance=4.0, negative_prompt="blurry"
    )
    got = ours.latents(ours.sample(req), req)
    want = _reference(ref, "sd3.5", "a cat", 32, 32, 1, "latent", negative_prompt="blurry")
    plain = _reference(ref, "sd3.5", "a cat", 32, 32, 1, "latent")
    assert _relative(got, want) < 1e-4 and _relative(plain, want) > 1e-3


def test_flux_refuses_a_negative_prompt(models):
    ours = models["flux-dev"][2]
    req = ours.resolve("a cat", seed=1, steps=2, height=32, width=32, negative_prompt="x")
    with pytest.raises(RequestError, match="negative_prompt"):
        ours.sample(req)


@pytest.mark.parametrize("kind", ["sd3.5", "flux-dev"])
def test_batch_outputs_are_their_seeds(models, kind):
    """Output i of a batch is diffusers' image for seed + i (one generator per output)."""
    _, ref, ours = models[kind]
    req = ours.resolve(
        "a cat", seed=10, steps=STEPS, height=32, width=32, num_outputs=2, **_guidance(kind)
    )
    got = ours.decode(ours.sample(req), req)
    for i in range(2):
        want = _reference(ref, kind, "a cat", 32, 32, 10 + i, "np")[0]
        assert np.abs(got[i].astype(int) - np.round(want * 255).astype(int)).max() <= 1


@pytest.mark.parametrize("kind", list(FOLDERS))
def test_cli_png_within_one_level(models, kind, tmp_path, capsys):
    folder, ref, _ = models[kind]
    prompt, h, w = CASES[1]
    extra = ["--guidance", "4.0"] if kind.startswith("sd3") else []
    rc = cli(
        [
            "generate",
            prompt,
            "--model",
            str(folder),
            "--seed",
            "5",
            "--steps",
            str(STEPS),
            "--width",
            str(w),
            "--height",
            str(h),
            "--out",
            str(tmp_path),
            "--quiet",
            *extra,
        ]
    )
    assert rc == 0
    png = tmp_path / "5-00.png"
    got = np.asarray(Image.open(png).convert("RGB")).astype(int)
    want = np.round(_reference(ref, kind, prompt, h, w, 5, "np")[0] * 255).astype(int)
    assert got.shape == want.shape and np.abs(got - want).max() <= 1
    settings = json.loads(Image.open(png).text["dit-studio"])
    assert settings["model"] == str(folder) and settings["seed"] == 5


def test_replayed_settings_through_the_batch_runner(models, tmp_path):
    """A PNG's embedded settings, as a batch job, make the same pixels (batch runner on a
    FLUX.1 folder; replay as the web app does it: the request fields of the settings)."""
    from dataclasses import fields

    from app.batch import run_batch
    from pipelines.replay import read_settings
    from pipelines.request import Request

    folder = models["flux-schnell"][0]
    assert (
        cli(
            [
                "generate",
                "a bowl of fruit",
                "--model",
                str(folder),
                "--seed",
                "2",
                "--steps",
                "2",
                "--width",
                "32",
                "--height",
                "32",
                "--out",
                str(tmp_path / "a"),
                "--quiet",
            ]
        )
        == 0
    )
    first = tmp_path / "a" / "2-00.png"
    names = {f.name for f in fields(Request)}
    job = {k: v for k, v in read_settings(first).items() if k in names}
    (tmp_path / "jobs.jsonl").write_text(json.dumps({"id": "again", **job}) + "\n")
    assert run_batch(str(tmp_path / "jobs.jsonl"), str(tmp_path / "b"), quiet=True) == 0
    again = next((tmp_path / "b").glob("*.png"))
    assert np.array_equal(np.asarray(Image.open(first)), np.asarray(Image.open(again)))


def test_spec_has_the_family_defaults(models):
    sd3 = ModelSpec.read(models["sd3.5"][0])[1]
    assert sd3.extra["family"] == "sd3" and sd3.request_defaults()["steps"] == 28
    assert sd3.request_limits().multiple == 16
    dev, schnell = (ModelSpec.read(models[k][0])[1] for k in ("flux-dev", "flux-schnell"))
    assert dev.request_defaults()["guidance"] == 3.5 and schnell.request_defaults()["steps"] == 4


def test_models_dir_lists_the_folders(models):
    root = models["sd3"][0].parent
    found = find_models(root)
    assert {str(models[k][0]) for k in FOLDERS} <= set(found)


def test_unsupported_diffusers_folder_is_one_line(tmp_path, capsys):
    (tmp_path / "model_index.json").write_text(
        json.dumps(
            {
                "_class_name": "StableDiffusionXLPipeline",
                "unet": ["diffusers", "UNet2DConditionModel"],
            }
        )
    )
    rc = cli(["generate", "a cat", "--model", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "StableDiffusionXLPipeline" in err and "FluxPipeline" in err


# --- LoRA ---------------------------------------------------------------------------------


def _diffusers_lora(folder, kind: str, out_dir) -> str:
    """A LoRA as diffusers' training scripts save it: peft layers on the folder's transformer,
    ``save_lora_weights`` with the adapter's metadata."""
    from diffusers import FluxPipeline, FluxTransformer2DModel, SD3Transformer2DModel
    from diffusers import StableDiffusion3Pipeline as SD3
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    flux = kind.startswith("flux")
    model = (FluxTransformer2DModel if flux else SD3Transformer2DModel).from_pretrained(
        folder / "transformer"
    )
    targets = ["to_q", "to_k", "to_v", "to_out.0", "add_k_proj", "ff.net.2"]
    targets += ["proj_mlp", "proj_out"] if flux else ["ff_context.net.0.proj"]
    model.add_adapter(
        LoraConfig(r=4, lora_alpha=8, target_modules=targets, init_lora_weights=False)
    )
    (FluxPipeline if flux else SD3).save_lora_weights(
        out_dir,
        transformer_lora_layers=get_peft_model_state_dict(model),
        transformer_lora_adapter_metadata=model.peft_config["default"].to_dict(),
    )
    return str(out_dir)


def _kohya_flux_lora(path) -> str:
    """A kohya-format FLUX.1 LoRA (BFL's module names, lora_down / lora_up / alpha). Not on
    ``single_blocks.N.linear1``: diffusers' converter splits it at the real model's widths."""
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(9)
    d, r = 32, 4
    shapes = {
        "double_blocks_0_img_attn_qkv": (d, 3 * d),
        "double_blocks_0_txt_mlp_0": (d, 4 * d),
        "single_blocks_0_modulation_lin": (d, 3 * d),
        "single_blocks_1_linear2": (d + 4 * d, d),
    }
    state = {}
    for name, (fan_in, fan_out) in shapes.items():
        state[f"lora_unet_{name}.lora_down.weight"] = torch.randn(r, fan_in, generator=g) * 0.2
        state[f"lora_unet_{name}.lora_up.weight"] = torch.randn(fan_out, r, generator=g) * 0.2
        state[f"lora_unet_{name}.alpha"] = torch.tensor(2.0)
    save_file(state, str(path))
    return str(path)


@pytest.mark.parametrize(
    "kind,form", [("sd3.5", "diffusers"), ("flux-dev", "diffusers"), ("flux-dev", "kohya")]
)
def test_lora_equals_diffusers_load_lora_weights(models, kind, form, tmp_path):
    folder, _, ours = models[kind]
    lora = (
        _diffusers_lora(folder, kind, tmp_path / "lora")
        if form == "diffusers"
        else _kohya_flux_lora(tmp_path / "kohya.safetensors")
    )
    ref = DiffusionPipeline.from_pretrained(folder)
    ref.load_lora_weights(lora, adapter_name="a")
    ref.set_adapters(["a"], [0.8])
    prompt, h, w = CASES[1]
    want = _reference(ref, kind, prompt, h, w, 4, "latent")
    base_req = ours.resolve(prompt, seed=4, steps=STEPS, height=h, width=w, **_guidance(kind))
    base = ours.sample(base_req)
    req = ours.resolve(
        prompt, seed=4, steps=STEPS, height=h, width=w, loras=((lora, 0.8),), **_guidance(kind)
    )
    x = ours.sample(req)
    got = ours.latents(x, req) if kind.startswith("sd3") else x
    plain = ours.latents(base, base_req) if kind.startswith("sd3") else base
    assert _relative(got, want) < 1e-4
    assert _relative(plain, want) > 1e-3  # the adapter changed the image
    assert torch.equal(ours.sample(base_req), base)  # and is gone again, exactly


def test_lora_errors_are_one_line(models, tmp_path):
    ours = models["flux-dev"][2]
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    for lora, match in (
        (str(tmp_path / "missing"), "give a .safetensors file"),
        (str(bad), "not a LoRA diffusers can read"),
    ):
        req = ours.resolve("a cat", seed=1, steps=1, height=32, width=32, loras=((lora, 1.0),))
        with pytest.raises(RequestError, match=match):
            ours.sample(req)
    req = ours.resolve("a cat", seed=1, steps=1, height=32, width=32)
    ours.sample(req)  # still usable


# --- the web studio -------------------------------------------------------------------------


def test_studio_lists_generates_with_previews_and_cancels(models, tmp_path):
    """``dit-studio app --models-dir``'s studio: the folders are on offer, a job streams a
    preview (decoded through the VAE) every step and writes a PNG, and cancel stops one."""
    from app.studio import Done, Progress, Studio

    folder = models["sd3.5"][0]
    studio = Studio(models_dir=folder.parent, outputs_dir=tmp_path / "out")
    assert str(folder) in studio.models_for("image")
    assert studio.defaults_for(str(folder))["width"] <= studio.limits.max_side
    req = Request(prompt="a cat", model=str(folder), seed=3, steps=3, width=32, height=32)
    items = list(studio.run(req))
    previews = [i for i in items if isinstance(i, Progress)]
    assert [p.step for p in previews] == [1, 2, 3]
    assert all(p.preview[0].shape == (32, 32, 3) for p in previews)
    done = items[-1]
    assert isinstance(done, Done) and done.paths[0].is_file()
    seen = []
    for item in studio.run(replace(req, steps=40), session="s"):
        seen.append(item.step)
        if item.step == 1:
            assert studio.cancel("s") == 1
    assert seen[-1] <= 2


def test_studio_offers_family_loras_from_loras_dir(models, tmp_path):
    from app.studio import Studio

    folder = models["flux-dev"][0]
    lora = _kohya_flux_lora(tmp_path / "mine.safetensors")
    studio = Studio(models_dir=folder.parent, outputs_dir=tmp_path / "out", loras_dir=tmp_path)
    req = studio.validate(
        Request(
            prompt="a cat",
            model=str(folder),
            seed=1,
            steps=1,
            width=32,
            height=32,
            loras=(("mine", 0.5),),
        )
    )
    assert req.loras == ((lora, 0.5),)

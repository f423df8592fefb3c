"""LoRA adapters (pipelines/lora.py) and LoRA fine-tuning (training/trainer.py), on tiny models."""

import json
import math

import numpy as np
import pytest
import torch
from conftest import randomize
from safetensors.torch import load_file

from conditioning.byte_encoder import ByteTextEncoder
from conditioning.mel import MelCodec
from dit import DiT, DiTConfig, StreamConfig
from dit.linear import Linear
from pipelines.image import TextToImagePipeline
from pipelines.lora import apply_loras, inject_lora, lora_config, save_lora
from pipelines.spec import ModelSpec

PROMPT = "a teal circle"


def tiny_pipe(width: int = 32, name: str = "tiny-test") -> TextToImagePipeline:
    torch.manual_seed(0)
    te = ByteTextEncoder(width=16, depth=1, heads=2, max_length=64)
    cfg = DiTConfig.preset(
        "tiny",
        streams=(StreamConfig("text", 16, "none"), StreamConfig("image", 3 * 16)),
        pooled_dim=16,
        width=width,
    )
    model = randomize(DiT.from_dit_config(cfg), std=0.05)
    spec = ModelSpec(
        name=name,
        patch=4,
        width=16,
        height=16,
        defaults={"steps": 2, "guidance": 2.0, "solver": "heun"},
    )
    return TextToImagePipeline(model, te, spec)


def make_adapter(folder, seed: int, width: int = 32, name: str = "tiny-test", rank: int = 2):
    """A random adapter (lora_B non-zero, so it changes outputs) saved for ``name``."""
    pipe = tiny_pipe(width, name)
    inject_lora(pipe.transformer, lora_config(rank, 2.0, base_model=name))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in pipe.transformer.named_parameters():
            if "lora_" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    save_lora(pipe.transformer, folder, {"base_model": name})
    return pipe


def image(pipe) -> np.ndarray:
    return pipe(PROMPT, seed=3)[0].media


def raw(pipe) -> torch.Tensor:
    """The sampler's float output (finer than the uint8 image)."""
    return pipe.sample(pipe.resolve(PROMPT, seed=3))


def test_save_load_gives_identical_outputs_and_changes_the_model(tmp_path):
    trained = make_adapter(tmp_path / "a", seed=1)
    pipe = tiny_pipe()
    base = raw(pipe)
    apply_loras(pipe, [(str(tmp_path / "a"), 1.0)])
    assert torch.equal(raw(pipe), raw(trained))
    assert (raw(pipe) - base).abs().max() > 1e-2  # the adapter changes outputs
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == ["adapter_config.json", "adapter_model.safetensors"]
    keys = load_file(tmp_path / "a" / "adapter_model.safetensors").keys()
    assert keys and all(".lora_A." in k or ".lora_B." in k for k in keys)  # the adapter only


def test_strength_folded_at_export_equals_loading_at_that_scale(tmp_path):
    trained = make_adapter(tmp_path / "a", seed=1)
    save_lora(trained.transformer, tmp_path / "strong", {"base_model": "tiny-test"}, strength=1.5)
    pipe = tiny_pipe()
    apply_loras(pipe, [(str(tmp_path / "a"), 1.5)])
    at_scale = raw(pipe)
    apply_loras(pipe, [(str(tmp_path / "strong"), 1.0)])
    assert torch.allclose(raw(pipe), at_scale, atol=1e-5)
    apply_loras(pipe, [(str(tmp_path / "a"), 1.0)])
    assert (raw(pipe) - at_scale).abs().max() > 1e-3  # 1.5 really differs from 1


def test_scale_zero_and_removal_give_the_base_model_exactly(tmp_path):
    make_adapter(tmp_path / "a", seed=1)
    pipe = tiny_pipe()
    base = raw(pipe)
    apply_loras(pipe, [(str(tmp_path / "a"), 0.0)])
    assert torch.equal(raw(pipe), base)
    apply_loras(pipe, [(str(tmp_path / "a"), 1.0)])
    assert not torch.equal(raw(pipe), base)
    apply_loras(pipe, [])  # every adapter out: the plain layers again
    assert torch.equal(raw(pipe), base)
    assert type(pipe.transformer.blocks[0].streams["image"].qkv) is Linear  # dit.linear


def test_two_adapters_at_once_each_with_its_scale(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    make_adapter(a, seed=1)
    make_adapter(b, seed=2)
    pipe = tiny_pipe()
    apply_loras(pipe, [(a, 1.0)])
    only_a = raw(pipe)
    apply_loras(pipe, [(b, 1.0)])
    only_b = raw(pipe)
    apply_loras(pipe, [(a, 1.0), (b, 0.0)])  # b active but scaled to nothing: a alone, exactly
    assert torch.equal(raw(pipe), only_a)
    apply_loras(pipe, [(a, 1.0), (b, 1.0)])
    both = raw(pipe)
    assert (both - only_a).abs().max() > 1e-2 and (both - only_b).abs().max() > 1e-2
    apply_loras(pipe, [(a, 0.5), (a, 0.5)])  # the same adapter twice at half: once at full
    torch.testing.assert_close(raw(pipe), only_a, atol=1e-5, rtol=1e-5)


def test_bad_adapters_give_clear_errors(tmp_path):
    pipe = tiny_pipe()
    base = raw(pipe)
    with pytest.raises(ValueError, match="does not exist"):
        apply_loras(pipe, [(str(tmp_path / "missing"), 1.0)])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "adapter_model.bin").write_bytes(b"pickle")
    with pytest.raises(ValueError, match=r"not a LoRA folder.*never read"):
        apply_loras(pipe, [(str(tmp_path / "empty"), 1.0)])
    make_adapter(tmp_path / "other", seed=1, name="other-model")
    with pytest.raises(ValueError, match="trained on model 'other-model', not 'tiny-test'"):
        apply_loras(pipe, [(str(tmp_path / "other"), 1.0)])
    make_adapter(tmp_path / "wide", seed=1, width=64)
    with pytest.raises(ValueError, match="base model of another size"):
        apply_loras(pipe, [(str(tmp_path / "wide"), 1.0)])
    make_adapter(tmp_path / "ok", seed=1)
    for scale in (math.nan, math.inf):
        with pytest.raises(ValueError, match="not a finite number"):
            apply_loras(pipe, [(str(tmp_path / "ok"), scale)])
    assert torch.equal(raw(pipe), base)  # a failed apply leaves the model as it was


def save_tiny_base(folder):
    """A tiny-test-shaped image model with random weights, saved as a model folder."""
    from training.recipe import Recipe
    from training.trainer import build_models

    torch.manual_seed(0)
    transformer, text_encoder = build_models(Recipe.load("tiny-test"))
    randomize(transformer, std=0.05)
    spec = ModelSpec(name="tiny-base", patch=4, width=16, height=16)
    TextToImagePipeline(transformer, text_encoder, spec).save_pretrained(folder)
    return transformer, text_encoder


def test_lora_training_changes_only_the_adapter_and_resumes_exactly(tmp_path):
    from training.recipe import Recipe
    from training.trainer import train

    transformer, text_encoder = save_tiny_base(tmp_path / "base")
    init = str(tmp_path / "base")
    with pytest.raises(ValueError, match="lora needs init"):
        Recipe.load("tiny-test", lora={"rank": 2})

    recipe = Recipe.load("tiny-test", init=init, lora={"rank": 2, "alpha": 2}, steps=4)
    straight = train(recipe, tmp_path / "straight")
    train(
        Recipe.load("tiny-test", init=init, lora={"rank": 2, "alpha": 2}, steps=2),
        tmp_path / "resumed",
    )
    resumed = train(recipe, tmp_path / "resumed", resume=True)

    a = load_file(straight / "adapter_model.safetensors")
    b = load_file(resumed / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(v.abs().max() > 0 for k, v in a.items() if ".lora_B." in k)  # it trained
    # The base never moved: the checkpoint's non-LoRA weights are the init folder's.
    ckpt = load_file(tmp_path / "straight" / "checkpoints" / "step_0000004" / "model.safetensors")
    start = {f"transformer.{k}": v for k, v in transformer.state_dict().items()}
    start |= {f"text_encoder.{k}": v for k, v in text_encoder.state_dict().items()}
    frozen = {k.replace(".base_layer", ""): v for k, v in ckpt.items() if ".lora_" not in k}
    assert frozen.keys() == start.keys()
    assert all(torch.equal(frozen[k], start[k]) for k in start)
    # The export is an adapter for the init model, which the pipeline applies.
    pipe = TextToImagePipeline.from_pretrained(init)
    before = raw(pipe)
    apply_loras(pipe, [(str(straight), 1.0)])
    assert not torch.equal(raw(pipe), before)


def test_teal_folder_and_its_scorer(tmp_path):
    """The teal data: captions say teal where the image is teal, the scorer reads teal renders
    as teal and their base-colour twins as not, and the held-out combination stays out."""
    from PIL import Image

    from training.eval_lora import is_teal, teal_scenes
    from training.world.shapes import COLOURS, render
    from training.world.teal_folder import sample_teal, write_folder

    assert "teal" not in COLOURS  # the base world (and the base model's data) is unchanged
    scenes, prompts = teal_scenes(60)
    assert all("teal" in p for p in prompts) and any(s.has_unseen() for s in scenes)
    assert all(is_teal(s.render(), s) for s in scenes)
    rng = np.random.default_rng(0)
    assert not any(sample_teal(rng, "train").has_unseen() for _ in range(300))
    assert not any(is_teal(render(s.scene), s) for s in scenes)
    folder = write_folder(tmp_path / "teal", n=12, plain=4)
    captions = [p.read_text() for p in sorted(folder.glob("*.txt"))]
    assert len(captions) == 28 and sum("teal" in c for c in captions) == 12
    assert all("teal" in c for c in captions[:24:2])  # teal scene, then its ordinary twin
    teal, twin = (np.asarray(Image.open(folder / f"0000{i}.png")) for i in (0, 1))
    assert teal.shape == (32, 32, 3)
    # The twin is the same scene: it differs from the teal render only where teal is drawn.
    changed = (teal != twin).any(-1)
    near_teal = np.abs(teal[changed].astype(int) - [0, 140, 140]).sum(-1) < 200
    assert changed.any() and near_teal.mean() > 0.5


def _write_wav(path, samples: np.ndarray, rate: int, width: int = 2) -> None:
    """PCM WAV of float samples (S,) or (S, C) in [-1, 1]."""
    import wave

    frames = samples if samples.ndim == 2 else samples[:, None]
    if width == 1:
        data = np.round(frames * 127 + 128).astype(np.uint8)
    else:
        data = np.round(frames * (2 ** (8 * width - 1) - 1)).astype(f"<i{width}")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(frames.shape[1])
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(data.tobytes())


def test_audio_folder_trains_a_sound_lora(tmp_path):
    """A folder of the user's WAVs + captions (any PCM width, channels, rate) feeds the same
    trainer: a base fine-tuned on it, then a LoRA on that base, applied by the audio pipeline."""
    from pipelines.audio import TextToAudioPipeline
    from training.data import AudioFolderSource, make_source
    from training.recipe import Recipe
    from training.trainer import train

    folder = tmp_path / "sounds"
    folder.mkdir()

    def tone(rate: int, seconds: float, hz: float = 440.0) -> np.ndarray:
        return 0.5 * np.sin(2 * np.pi * hz * np.arange(int(rate * seconds)) / rate)

    _write_wav(folder / "a.wav", tone(16000, 0.6), 16000)
    _write_wav(folder / "b.wav", np.stack([tone(22050, 0.6)] * 2, 1), 22050)  # stereo, 22 kHz
    _write_wav(folder / "c.wav", tone(16000, 3.0, 220), 16000, width=1)  # 8-bit, cut to 1 s
    _write_wav(folder / "d.wav", tone(16000, 0.6, 880), 16000, width=4)
    (folder / "broken.wav").write_bytes(b"RIFF not really")
    captions = ("a high beep", "a high beep", "a low hum", "a whistle")
    for name, text in zip("abcd", captions, strict=True):
        (folder / f"{name}.txt").write_text(text)
    audio = {
        "modality": "audio",
        "data": "folder",
        "data_path": str(folder),
        "seconds": 1.0,
        "codec": {"n_mels": 16, "frames_per_token": 4},
    }
    recipe = Recipe.load("tiny-test", **audio)
    with pytest.warns(UserWarning, match="skipping unreadable sound .*broken.wav"):
        source = make_source(recipe)
    assert isinstance(source, AudioFolderSource) and len(source) == 4
    (a, cap_a), (b, _), (c, cap_c), _ = (source.item(i) for i in range(4))
    codec = MelCodec(n_mels=16, frames_per_token=4)
    assert a.shape == (codec.tokens_for(0.6), codec.token_dim) and cap_a == "a high beep"
    assert c.shape[0] == codec.tokens_for(1.0) and cap_c == "a low hum"  # cut at `seconds`
    # The stereo 22.05 kHz file is the 16 kHz mono one after downmix + resampling.
    assert b.shape == a.shape and (a - b).abs().mean() < 0.05 * a.abs().mean()
    assert not torch.allclose(a, c[: len(a)], atol=0.5)  # and the tones tell apart

    base = train(Recipe.load("tiny-test", **audio, steps=2), tmp_path / "base")
    lora = Recipe.load("tiny-test", **audio, steps=3, init=str(base), lora={"rank": 2})
    adapter = train(lora, tmp_path / "lora")
    assert (adapter / "adapter_model.safetensors").is_file()
    pipe = TextToAudioPipeline.from_pretrained(base)
    settings = {"seed": 0, "steps": 2, "duration": 0.5}
    (plain,) = pipe.generate_many(["a high beep"], **settings)
    apply_loras(pipe, [(str(adapter), 1.0)])
    (adapted,) = pipe.generate_many(["a high beep"], **settings)
    apply_loras(pipe, [(str(adapter), 0.0)])
    (off,) = pipe.generate_many(["a high beep"], **settings)
    assert plain.shape == adapted.shape == (8000,)
    assert np.array_equal(off, plain) and not np.array_equal(adapted, plain)


def test_image_folder_buckets_by_aspect_and_skips_unreadable_files(tmp_path):
    from PIL import Image

    from training.data import FolderSource

    for name, size in (("a", (40, 40)), ("b", (64, 64)), ("wide", (80, 40))):
        Image.new("RGB", size, (0, 140, 140)).save(tmp_path / f"{name}.png")
    (tmp_path / "a.txt").write_text("a teal square\n")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.warns(UserWarning, match="skipping unreadable image .*broken.png"):
        source = FolderSource(tmp_path, size=32, patch=4)
    assert [source.item(i)[1] for i in range(3)] == ["a teal square", "", ""]
    assert [b.tolist() for b in source.buckets()] == [[2], [0, 1]]  # (3, 24, 44), (3, 32, 32)
    assert source.item(2)[0].shape == (3, 24, 44)  # 2:1 at about 32 x 32 pixels, patch 4
    assert torch.allclose(source.item(0)[0][:, 0, 0], torch.tensor([-1.0, 0.098, 0.098]), atol=0.01)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        FolderSource(tmp_path / "missing", size=32, patch=4)


def test_adapters_off_is_the_base_model_and_restores_everything(tmp_path):
    from pipelines.lora import adapters_off

    pipe = tiny_pipe()
    base = raw(pipe)
    make_adapter(tmp_path / "a", seed=1)
    apply_loras(pipe, [(str(tmp_path / "a"), 1.0)])
    adapted = raw(pipe)
    assert not torch.equal(adapted, base)
    flags = [p.requires_grad for p in pipe.transformer.parameters()]
    with adapters_off(pipe.transformer):
        assert torch.equal(raw(pipe), base)
    assert torch.equal(raw(pipe), adapted)
    assert [p.requires_grad for p in pipe.transformer.parameters()] == flags


def test_lora_prior_preservation(tmp_path):
    """prior: w adds w x |v_adapted - v_base|^2 on ordinary items: zero at the first step
    (the adapter starts as the identity), acting after it; bad settings are clear errors."""
    from training.recipe import Recipe
    from training.trainer import train

    save_tiny_base(tmp_path / "base")
    lora = {"rank": 2, "alpha": 2}
    common = {"init": str(tmp_path / "base"), "steps": 3}
    for bad, words in (
        ({"prior": -1, "prior_data": "shapes"}, "a weight >= 0"),
        ({"prior": 1.0}, "prior needs prior_data"),
    ):
        with pytest.raises(ValueError, match=words):
            Recipe.load("tiny-test", **common, lora={**lora, **bad})
    logs = {}
    for name, extra in (("plain", {}), ("prior", {"prior": 50.0, "prior_data": "shapes"})):
        train(Recipe.load("tiny-test", **common, lora={**lora, **extra}), tmp_path / name)
        lines = (tmp_path / name / "loss.jsonl").read_text().splitlines()
        logs[name] = [json.loads(x)["loss"] for x in lines]
    assert logs["plain"][0] == logs["prior"][0]  # the prior term is exactly 0 at the start
    assert logs["plain"][1:] != logs["prior"][1:]

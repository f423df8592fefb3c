"""Masked models end to end on tiny recipes: an autoencoder trained (and resumed exactly), a
masked DiT trained on its codes, and the ordinary pipelines sampling it by MaskGIT / MAGNeT
with exactly `steps` calls, partly unmasked previews and per-sample seeds."""

import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from pipelines.registry import load_pipeline
from training.autoencoder import edge_mse
from training.recipe import Recipe
from training.trainer import train

TEXT = {"width": 16, "depth": 1, "heads": 2, "max_length": 96}
CODEC = {"n_mels": 16, "frames_per_token": 2, "n_fft": 256, "hop": 128}


def autoencoder_recipe(kind: str, **kw) -> Recipe:
    media = (
        dict(modality="image", data="shapes", size=16, patch=4)
        if kind == "image"
        else dict(modality="audio", data="sounds", seconds=1.0, codec=CODEC)
    )
    down = 2 if kind == "image" else 1
    return Recipe(
        name=f"tok-{kind}",
        objective="autoencoder",
        data_size=16,
        batch_size=4,
        steps=4,
        warmup=1,
        lr=1e-3,
        checkpoint_every=2,
        **media,
        fsq={"hidden": 8, "down": down, "levels": [4, 3]},
        **kw,
    )


@pytest.fixture(scope="module")
def image_autoencoder(tmp_path_factory):
    return train(autoencoder_recipe("image"), tmp_path_factory.mktemp("tok") / "run")


def test_autoencoder_training_resumes_exactly(tmp_path, image_autoencoder):
    train(autoencoder_recipe("image", stop_at=2), tmp_path / "run")
    resumed = train(autoencoder_recipe("image"), tmp_path / "run", resume=True)
    a = load_file(next(image_autoencoder.glob("*.safetensors")))
    b = load_file(next(resumed.glob("*.safetensors")))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_edge_loss_pays_for_a_moved_edge_and_not_for_a_flat_offset():
    x = torch.zeros(1, 3, 8, 8)
    x[..., :, 4:] = 1.0  # a vertical edge between columns 3 and 4
    moved = torch.roll(x, 1, dims=-1)  # the edge one column right (and a wrapped one at 0)
    # (B, C, H, W): column differences carry the edges, row differences are all zero
    assert edge_mse(x + 0.5, x) == 0.0
    # each image has 3 x 8 rows with one +1 step; moved: steps at columns 0 and 4 (wrap, -1)
    # against x's at 3: 3 x 8 x 3 unit errors over 3 x 8 x 7 differences, rows add nothing
    assert edge_mse(moved, x) == pytest.approx(3 / 7)
    recipe = autoencoder_recipe("image", edge_loss=0.5)
    assert recipe.edge_loss == 0.5
    with pytest.raises(ValueError, match="edge_loss"):
        autoencoder_recipe("image", edge_loss=-1.0)


def masked_recipe(autoencoder, kind: str, **kw) -> Recipe:
    media = (
        dict(modality="image", data="shapes", size=16, patch=4)
        if kind == "image"
        else dict(modality="audio", data="sounds", seconds=1.0, codec=CODEC, span=2)
    )
    return Recipe(
        name=f"masked-{kind}",
        preset="tiny",
        objective="masked",
        autoencoder=str(autoencoder),
        data_size=16,
        text_encoder=TEXT,
        batch_size=4,
        steps=3,
        warmup=1,
        lr=1e-3,
        checkpoint_every=3,
        sample_every=1000,
        **{**media, **kw},
    )


@pytest.mark.parametrize("factorised", [False, True])
def test_masked_image_model_samples_through_the_image_pipeline(
    tmp_path, image_autoencoder, factorised
):
    recipe = masked_recipe(image_autoencoder, "image", factorised_codes=factorised)
    folder = train(recipe, tmp_path / "run")
    pipe = load_pipeline(str(folder))
    assert pipe.spec.objective == "masked" and pipe.autoencoder is not None
    stream = pipe.transformer.cfg.stream("image")
    assert stream.codebook_size == 12
    assert stream.levels == ((tuple(pipe.autoencoder.config.levels)) if factorised else ())

    states = []
    outs = pipe("a red circle", callback=states.append, steps=5, num_outputs=2, seed=3)
    assert [s.step for s in states] == [1, 2, 3, 4, 5]  # exactly `steps` model calls
    mask_id = pipe.transformer.mask_id("image")
    masked = [int((s.state == mask_id).sum()) for s in states]
    assert masked == sorted(masked, reverse=True) and masked[-1] == 0 and masked[0] > 0
    # the preview shows committed tokens decoded and masked ones neutral (grey = 0)
    first = states[0]
    still = first.state == mask_id  # (B, N)
    assert torch.all(first.preview[still] == 0.0)
    assert not torch.all(first.preview[~still] == 0.0)
    assert outs[0].media.shape == (16, 16, 3) and outs[0].settings["solver"] == "maskgit"
    # a seed makes the same image whatever its batch
    alone = pipe("a red circle", steps=5, seed=4)[0].media
    assert (alone == outs[1].media).all()


def test_masked_audio_model_decodes_spans_to_a_wav(tmp_path):
    tok = train(autoencoder_recipe("mel"), tmp_path / "tok")
    folder = train(masked_recipe(tok, "mel"), tmp_path / "run")
    pipe = load_pipeline(str(folder))
    assert pipe.spec.extra["masked"]["span"] == 2
    states = []
    out = pipe("a click", callback=states.append, steps=3, duration=0.5)[0]
    assert len(states) == 3 and out.settings["solver"] == "magnet"
    assert out.media.shape == (8000,) and out.media.dtype.name == "float32"
    mask_id = pipe.transformer.mask_id("audio")
    # MAGNeT: codes are committed in whole spans of 2
    for s in states[:-1]:
        pairs = (s.state == mask_id).view(-1, 2) if s.state.shape[1] % 2 == 0 else None
        if pairs is not None:
            assert torch.all(pairs[:, 0] == pairs[:, 1])


def test_masked_recipe_errors_name_the_fix(tmp_path, image_autoencoder):
    with pytest.raises(ValueError, match="needs autoencoder"):
        Recipe(name="x", objective="masked")
    with pytest.raises(ValueError, match="factorised_codes"):
        Recipe(name="x", factorised_codes=True)
    with pytest.raises(ValueError, match="neither an autoencoder folder"):
        train(masked_recipe(tmp_path / "nothing", "image"), tmp_path / "run0")
    with pytest.raises(ValueError, match="patch"):
        train(masked_recipe(image_autoencoder, "image", size=16, patch=2), tmp_path / "run")


def test_studio_offers_a_masked_model_with_its_decoder_and_previews(tmp_path, image_autoencoder):
    from app.studio import Done, Progress, Studio
    from benchmarks.quality_calls import CallCounter
    from pipelines.request import Request

    folder = train(masked_recipe(image_autoencoder, "image"), tmp_path / "run")
    shutil.copytree(folder, tmp_path / "models" / "tiny-masked")
    studio = Studio(models_dir=tmp_path / "models", outputs_dir=tmp_path / "out")
    name = str(tmp_path / "models" / "tiny-masked")
    assert studio.limits_for(name).solvers == ("maskgit",)
    assert studio.defaults_for(name)["solver"] == "maskgit"
    counter = CallCounter(studio.pipeline(name).transformer)
    events = list(studio.run(Request("a blue square", model=name, steps=4, seed=1)))
    progress = [e for e in events if isinstance(e, Progress)]
    assert [p.step for p in progress] == [1, 2, 3, 4] and counter.calls == 4
    assert all(p.preview is not None and p.preview[0].shape == (16, 16, 3) for p in progress)
    assert isinstance(events[-1], Done) and events[-1].paths[0].suffix == ".png"
    with pytest.raises(ValueError, match="solver"):
        studio.validate(Request("x", model=name, solver="heun"))


def test_autoencoder_data_mixes_both_splits_and_only_autoencoders_may():
    from training.data import batch_indices, make_source
    from training.world.shapes import is_heldout

    source = make_source(autoencoder_recipe("image", data_split="all"))
    assert len(source) == 32
    scenes = [source.sources[i % 2].ds[i // 2]["scene"] for i in range(len(source))]
    assert [is_heldout(s) for s in scenes[1::2]] == [True] * 16  # odd items: held-out split
    assert not any(is_heldout(s) for s in scenes[0::2])
    assert all(0 <= i < len(source) for i in batch_indices(source, 0, 3, 64))
    with pytest.raises(ValueError, match="only autoencoders"):
        Recipe(name="x", data_split="all")


def test_masked_model_starts_from_the_flow_models_trunk(tmp_path, image_autoencoder):
    from training.start import init_trunk
    from training.trainer import build_models

    flow = train(
        Recipe(
            name="flow",
            preset="tiny",
            data="shapes",
            data_size=16,
            size=16,
            patch=4,
            text_encoder=TEXT,
            batch_size=4,
            steps=2,
            warmup=1,
            lr=1e-3,
            checkpoint_every=2,
            sample_every=1000,
        ),
        tmp_path / "flow",
    )
    transformer, _ = build_models(masked_recipe(image_autoencoder, "image"))
    fresh = {k: v.clone() for k, v in transformer.state_dict().items()}
    left = init_trunk(transformer, str(flow))
    theirs = load_pipeline(str(flow)).transformer.state_dict()
    ours = transformer.state_dict()
    blocks = [k for k in ours if k.startswith("blocks.")]
    assert blocks and all(torch.equal(ours[k], theirs[k].float()) for k in blocks)
    # the code embedding (codebook + [MASK] rows) and the logits head stay as built
    assert "embed.image.weight" in left and all(torch.equal(ours[k], fresh[k]) for k in left)
    assert any(".image." in k or k.startswith("final") for k in left if k != "embed.image.weight")
    wide, _ = build_models(replace(masked_recipe(image_autoencoder, "image"), preset="xs"))
    with pytest.raises(ValueError, match=r"init_trunk.*blocks do not fit"):
        init_trunk(wide, str(flow))


def test_export_carries_the_same_worlds_rewriter(tmp_path, image_autoencoder):
    folder = train(
        masked_recipe(image_autoencoder, "image", rewriter_from="shapes-t2i"), tmp_path / "run"
    )
    pipe = load_pipeline(str(folder))
    assert pipe.rewriter is not None and (folder / "rewriter" / "config.json").is_file()
    assert pipe.rewrite(["there is a big red disc on the left"])[0] != ""
    with pytest.raises(ValueError, match="rewriter_from"):
        train(
            masked_recipe(image_autoencoder, "image", rewriter_from="digits-t2i"), tmp_path / "run2"
        )


def test_a_folder_exported_before_the_rename_loads_its_codec_from_tokenizer(tmp_path):
    from pipelines.spec import ASSETS

    old = tmp_path / "old"
    shutil.copytree(ASSETS / "sounds-t2a-masked", old)
    (old / "autoencoder").rename(old / "tokenizer")
    a = load_pipeline(str(old))("a high beep", seed=1, steps=2, duration=0.5)[0].media
    b = load_pipeline("sounds-t2a-masked")("a high beep", seed=1, steps=2, duration=0.5)[0].media
    assert np.array_equal(a, b)


def test_a_recipe_with_the_old_field_name_says_what_to_rename(tmp_path):
    path = tmp_path / "old.json"
    path.write_text('{"objective": "masked", "tokenizer": "shapes-fsq"}')
    with pytest.raises(ValueError, match="rename the field 'tokenizer' to 'autoencoder'"):
        Recipe.load(str(path))

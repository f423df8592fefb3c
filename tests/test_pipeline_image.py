import json

import numpy as np
import pytest
import torch
from conftest import randomize

from app.cli import main as cli
from conditioning.byte_encoder import ByteTextEncoder
from dit import DiT, DiTConfig, StreamConfig
from pipelines.image import TextToImagePipeline
from pipelines.outputs import read_png_settings
from pipelines.request import Request, RequestError
from pipelines.spec import ModelSpec


@pytest.fixture
def pipe() -> TextToImagePipeline:
    torch.manual_seed(0)
    te = ByteTextEncoder(width=16, depth=1, heads=2, max_length=64)
    cfg = DiTConfig.preset(
        "tiny",
        streams=(StreamConfig("text", 16, "none"), StreamConfig("image", 3 * 16)),
        pooled_dim=16,
    )
    model = randomize(DiT.from_dit_config(cfg), std=0.05)
    spec = ModelSpec(
        name="tiny-test",
        patch=4,
        width=16,
        height=16,
        defaults={"steps": 3, "guidance": 2.0, "solver": "heun"},
    )
    return TextToImagePipeline(model, te, spec)


def test_same_seed_same_image_at_batch_1_and_4(pipe):
    one = pipe("a red circle", seed=7)[0]
    four = pipe("a red circle", seed=5, num_outputs=4)
    assert four[2].settings["seed"] == 7
    assert np.array_equal(one.media, four[2].media)
    assert not np.array_equal(four[0].media, four[1].media)  # seeds differ -> images differ
    assert one.media.shape == (16, 16, 3) and one.media.dtype == np.uint8


def test_save_load_same_image(pipe, tmp_path):
    before = pipe("a blue square", seed=3)[0].media
    pipe.save_pretrained(tmp_path / "model")
    again = TextToImagePipeline.from_pretrained(str(tmp_path / "model"))
    assert np.array_equal(again("a blue square", seed=3)[0].media, before)


def test_saving_never_replaces_an_earlier_output(pipe, tmp_path):
    first = pipe(Request(prompt="a red circle", seed=3, steps=2))
    second = pipe(Request(prompt="a blue square", seed=3, steps=2))  # same seed, same name
    (p1,) = pipe.save(first, tmp_path)
    (p2,) = pipe.save(second, tmp_path)
    assert (p1.name, p2.name) == ("3-00.png", "3-00-1.png")
    assert read_png_settings(p1)["prompt"] == "a red circle"  # still the first image
    assert read_png_settings(p2)["prompt"] == "a blue square"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["3-00-1.png", "3-00.png"]  # no temps


def test_png_carries_settings_for_exact_replay(pipe, tmp_path):
    out = pipe("a green star", seed=11, steps=2, guidance=4.0, solver="euler")
    (path,) = pipe.save(out, tmp_path)
    settings = read_png_settings(path)
    assert settings["prompt"] == "a green star" and settings["seed"] == 11
    assert settings["solver"] == "euler" and settings["steps"] == 2 and settings["guidance"] == 4.0
    assert "torch" in settings["versions"] and settings["model"] == "tiny-test"
    fields = {k: v for k, v in settings.items() if k in Request.__dataclass_fields__}
    replay = pipe(Request.from_dict(fields))[0]
    assert np.array_equal(replay.media, out[0].media)
    assert not list(tmp_path.glob("*.part"))


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(width=18), "multiple of 4"),
        (dict(width=4096), "out of range"),
        (dict(steps=0), "steps"),
        (dict(steps=-3), "steps"),
        (dict(guidance=float("nan")), "finite"),
        (dict(guidance=float("inf")), "finite"),
        (dict(prompt="x" * 1_000_000), "bytes"),
        (dict(prompt="bad \udcff bytes"), "UTF-8"),
        (dict(solver="rk45"), "solver"),
        (dict(num_outputs=0), "num_outputs"),
    ],
)
def test_bad_requests_are_clear_errors(pipe, tmp_path, change, message):
    with pytest.raises(RequestError, match=message):
        pipe(Request(**{"prompt": "a red circle", **change}))


def test_cli_bad_input_exit_2_and_writes_nothing(pipe, tmp_path, capsys):
    pipe.save_pretrained(tmp_path / "model")
    out = tmp_path / "out"

    def generate(prompt: str, *extra: str) -> int:
        args = ["generate", prompt, "--out", str(out), "--model", str(tmp_path / "model")]
        return cli([*args, "--quiet", *extra])

    for extra in (["--width", "18"], ["--steps", "0"], ["--guidance", "nan"], ["--model", "x"]):
        assert generate("a red circle", *extra) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("dit-studio generate:") and "\n" not in err
    assert generate("bad \udcff") == 2  # what a non-UTF-8 argv byte becomes in Python
    assert not out.exists()
    assert generate("a red circle", "--seed", "1") == 0
    (png,) = out.glob("*.png")
    assert json.loads(json.dumps(read_png_settings(png)))["seed"] == 1


def test_request_from_dict_rejects_unknown_fields():
    with pytest.raises(RequestError, match="unknown fields"):
        Request.from_dict({"prompt": "x", "sedd": 3})
    with pytest.raises(RequestError, match="prompt is missing"):
        Request.from_dict({"seed": 3})


def test_half_precision_bundle_loads_as_fp32_and_stays_close(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "half", half=True)
    sizes = {p.name: p.stat().st_size for p in (tmp_path / "half").rglob("*.safetensors")}
    pipe.save_pretrained(tmp_path / "full")
    full = sum(p.stat().st_size for p in (tmp_path / "full").rglob("*.safetensors"))
    assert sum(sizes.values()) < 0.6 * full
    assert next(pipe.transformer.parameters()).dtype == torch.float32  # caller's model untouched
    again = TextToImagePipeline.from_pretrained(str(tmp_path / "half"))
    assert next(again.transformer.parameters()).dtype == torch.float32
    a = pipe("a red circle", seed=2)[0].media.astype(int)
    b = again("a red circle", seed=2)[0].media.astype(int)
    assert np.abs(a - b).max() <= 8  # fp16 rounding of weights, not a different model


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bundled_model_on_cuda_matches_cpu():
    """The same request on a GPU gives the CPU's image up to float rounding."""
    req = Request(prompt="a small red circle on the left", seed=5, steps=8, num_outputs=4)
    cpu = TextToImagePipeline.from_pretrained("shapes-t2i")(req)
    gpu = TextToImagePipeline.from_pretrained("shapes-t2i", device="cuda")(req)
    for a, b in zip(cpu, gpu, strict=True):
        diff = np.abs(a.media.astype(int) - b.media.astype(int))
        assert diff.mean() < 0.5 and diff.max() <= 16

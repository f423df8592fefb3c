"""Adapters at generation time, wherever a request comes from: `generate --lora`, a batch line's
"loras", the app's offered names. The settings a file carries name its adapters, so a replay
applies them again."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from app.cli import main as cli
from pipelines.lora import inject_lora, lora_config, remove_loras, save_lora
from pipelines.registry import load_pipeline
from pipelines.replay import read_settings
from pipelines.request import Request, RequestError

PROMPT = "a large blue square in the centre"


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    """A random rank-2 adapter for the bundled shapes-t2i (strong enough to change pixels)."""
    pipe = load_pipeline("shapes-t2i")
    inject_lora(pipe.transformer, lora_config(2, 2, ("qkv", "fc1"), "shapes-t2i"))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in pipe.transformer.named_parameters():
            if ".lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    folder = tmp_path_factory.mktemp("loras") / "stripes"
    save_lora(pipe.transformer, folder, {"base_model": "shapes-t2i"})
    remove_loras(pipe.transformer)
    return folder


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_generate_with_lora_embeds_it_and_replays(adapter, tmp_path, capsys):
    base = ["generate", PROMPT, "--seed", "5", "--steps", "4", "--quiet"]
    assert cli([*base, "--out", str(tmp_path / "plain")]) == 0
    args = [*base, "--lora", str(adapter), "--lora-scale", "0.7"]
    assert cli([*args, "--out", str(tmp_path / "lora")]) == 0
    (plain,), (lora,) = (sorted((tmp_path / d).glob("*.png")) for d in ("plain", "lora"))
    assert not np.array_equal(_pixels(plain), _pixels(lora))  # the adapter acts
    settings = read_settings(lora)
    assert settings["loras"] == [[str(adapter), 0.7]]
    assert "loras" not in read_settings(plain) or read_settings(plain)["loras"] == []
    # Replay: the embedded settings make the same pixels again.
    pipe = load_pipeline("shapes-t2i")
    fields = {
        k: settings[k]
        for k in (
            "prompt",
            "seed",
            "steps",
            "guidance",
            "solver",
            "width",
            "height",
            "model",
            "loras",
        )
    }
    (out,) = pipe(Request.from_dict(fields))
    assert np.array_equal(out.media, _pixels(lora))
    # Bad adapters: a clear message, exit 2, nothing written.
    capsys.readouterr()
    assert cli([*base, "--lora", str(tmp_path / "none"), "--out", str(tmp_path / "bad")]) == 2
    assert (
        cli(
            [
                *base,
                "--lora",
                str(adapter),
                "--lora-scale",
                "1",
                "--lora-scale",
                "2",
                "--out",
                str(tmp_path / "bad"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "LoRA" in err and "more --lora-scale than --lora" in err
    assert not (tmp_path / "bad").exists()


def test_batch_lines_carry_loras(adapter, tmp_path, capsys):
    jobs = tmp_path / "jobs.jsonl"
    lines = [
        {
            "id": "with",
            "prompt": PROMPT,
            "seed": 5,
            "steps": 4,
            "loras": [{"path": str(adapter), "scale": 0.7}],
        },
        {"id": "bad", "prompt": PROMPT, "loras": [{"path": str(tmp_path / "x")}]},
        {"id": "without", "prompt": PROMPT, "seed": 5, "steps": 4},
    ]
    jobs.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    assert cli(["batch", str(jobs), "--out", str(tmp_path / "out"), "--quiet"]) == 1
    assert "jobs.jsonl:2: " in capsys.readouterr().err
    with_, without = (_pixels(tmp_path / "out" / f"{n}-00.png") for n in ("with", "without"))
    assert not np.array_equal(with_, without)  # the adapter is gone again for the next job
    assert (
        cli(
            [
                "generate",
                PROMPT,
                "--seed",
                "5",
                "--steps",
                "4",
                "--quiet",
                "--out",
                str(tmp_path / "cli"),
            ]
        )
        == 0
    )
    assert np.array_equal(without, _pixels(next((tmp_path / "cli").glob("*.png"))))


def test_app_offers_adapters_by_name_only(adapter, tmp_path):
    from app.studio import Studio

    studio = Studio(loras_dir=adapter.parent)
    assert "stripes" in studio.loras
    request = studio.validate(Request(prompt=PROMPT, loras=(("stripes", 0.5),)))
    assert request.loras == ((str(adapter), 0.5),)
    assert studio.lora_name(str(adapter)) == "stripes"
    # validation is idempotent: the web handler validates, then the job runner again (a
    # second pass once refused the offered folder it had itself put there)
    assert studio.validate(request) == request
    other = tmp_path / "elsewhere"
    shutil.copytree(adapter, other)
    with pytest.raises(RequestError, match="not offered here"):
        studio.validate(Request(prompt=PROMPT, loras=((str(other), 0.5),)))  # a path: refused
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Studio(loras_dir=tmp_path / "missing")


def test_concurrent_requests_with_different_adapters_equal_sequential_runs(adapter):
    """Two jobs at once on one cached pipeline (the app's --concurrency 2), one with an adapter
    and one without: each output is byte for byte what it is when run alone."""
    import threading
    import time

    pipe = load_pipeline("shapes-t2i")
    reqs = [
        Request(prompt=PROMPT, seed=s, steps=4, loras=loras)
        for s, loras in ((1, ((str(adapter), 1.0),)), (2, ()))
    ]
    alone = [pipe(r)[0].media for r in reqs]
    assert not np.array_equal(alone[0], pipe(reqs[0], loras=())[0].media)  # the adapter acts
    got: dict[int, list] = {0: [], 1: []}
    errors = []

    def job(i: int) -> None:
        try:
            for _ in range(2):  # each step sleeps: without the gate the other job's switch lands
                out = pipe(reqs[i], callback=lambda *a, **k: time.sleep(0.02))
                got[i].append(out[0].media)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=job, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i in (0, 1):
        assert all(np.array_equal(m, alone[i]) for m in got[i]), f"job {i} differs"

"""The Audio tab end to end: a tiny audio model in a --models-dir, driven through
gradio_client and a real browser."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import randomize
from PIL import Image

from benchmarks.serve import running_app
from conditioning.byte_encoder import ByteTextEncoder
from conditioning.mel import MelCodec
from dit import DiT, DiTConfig, StreamConfig
from pipelines.audio import TextToAudioPipeline
from pipelines.outputs import read_wav
from pipelines.spec import ModelSpec

CODEC = MelCodec(n_mels=32, frames_per_token=4, griffin_lim_iters=8)


def save_tiny_audio_model(folder: Path) -> Path:
    torch.manual_seed(0)
    te = ByteTextEncoder(width=16, depth=1, heads=2, max_length=64)
    cfg = DiTConfig.preset(
        "tiny",
        streams=(StreamConfig("text", 16, "none"), StreamConfig("audio", CODEC.token_dim)),
        pooled_dim=16,
    )
    model = randomize(DiT.from_dit_config(cfg), std=0.05)
    spec = ModelSpec(
        name="tiny-audio",
        modality="audio",
        seconds=2.0,
        sample_rate=16_000,
        defaults={"steps": 3, "guidance": 2.0, "solver": "heun", "duration": 1.0},
        extra={"codec": CODEC.to_dict()},
    )
    TextToAudioPipeline(model, te, spec).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio-app")
    model = save_tiny_audio_model(root / "models" / "tiny-audio")
    with running_app(root / "outputs", "--models-dir", str(model.parent)) as (url, proc, _):
        yield url, proc, model


def test_audio_api_returns_the_cli_wav(server, tmp_path):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    url, _, model = server
    client = Client(url, verbose=False)
    form = dict(
        model=str(model),
        prompt="a click, then a low bell",
        negative_prompt="",
        seed=3,
        random_seed=False,
        steps=3,
        guidance=2.0,
        solver="heun",
        num_outputs=1,
        duration=1.3,
    )
    previews, sound, files, status, _ = client.predict(**form, api_name="/generate_audio")
    assert "Done" in status and len(files) == 1 and sound
    samples, rate, settings = read_wav(files[0])
    assert (len(samples), rate, settings["duration"]) == (20_800, 16_000, 1.3)
    assert previews  # the spectrogram of what was made

    cli = [
        sys.executable,
        "-m",
        "app.cli",
        "generate",
        form["prompt"],
        "--model",
        str(model),
        "--seed",
        "3",
        "--duration",
        "1.3",
        "--quiet",
        "--out",
        str(tmp_path),
    ]
    subprocess.run(cli, check=True, capture_output=True)
    assert Path(files[0]).read_bytes() == (tmp_path / "3-00.wav").read_bytes()

    for bad, words in [
        ({"duration": 0.0}, "duration|less than minimum"),
        ({"duration": 9.0}, "limit of 4.0 s|greater than maximum"),
    ]:
        with pytest.raises(AppError, match=words):
            client.predict(**{**form, **bad}, api_name="/generate_audio")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium: `apt-get install chromium`")
def test_audio_tab_in_a_browser(server, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    url, _, _ = server
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(url)
        page.get_by_role("tab", name="Text to audio").click()
        page.locator("#audio-prompt textarea").fill("three fast clicks")
        page.click("#audio-generate")
        page.wait_for_selector("#audio-status >> text=Done", timeout=60_000)
        page.screenshot(path=str(tmp_path / "audio-tab.png"), full_page=True)
        # the player holds the WAV, and the spectrogram preview is not blank
        page.wait_for_selector("#audio-player-0 [data-testid^='waveform-']", timeout=30_000)
        spec = page.locator("#audio-result img").first
        shot = np.asarray(Image.open(io.BytesIO(spec.screenshot())).convert("RGB"), np.float32)
        assert shot.std() > 5
        browser.close()

"""The Video and Audio+Video tabs end to end: tiny models in a --models-dir, driven through
gradio_client (the same MP4 bytes as the CLI) and a real browser (filmstrip previews)."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_pipeline_av import tiny_av_pipeline
from test_pipeline_video import tiny_video_pipeline

from benchmarks.serve import running_app
from pipelines.mp4 import probe_mp4, read_mp4

TABS = {  # tab key -> (model folder name, tab label, api name)
    "video": ("tiny-video", "Text to video", "/generate_video"),
    "audio_video": ("tiny-av", "Audio + video", "/generate_audio_video"),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("video-app")
    models = root / "models"
    tiny_video_pipeline().save_pretrained(models / "tiny-video")
    tiny_av_pipeline().save_pretrained(models / "tiny-av")
    with running_app(root / "outputs", "--models-dir", str(models)) as (url, proc, _):
        yield url, proc, models


@pytest.mark.parametrize("key", list(TABS))
def test_video_apis_return_the_cli_mp4(server, tmp_path, key):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    url, proc, models = server
    name, _, api = TABS[key]
    model = models / name
    client = Client(url, verbose=False)
    form = dict(
        model=str(model),
        prompt="a red ball bouncing",
        negative_prompt="",
        seed=3,
        random_seed=False,
        steps=2,
        guidance=2.0,
        solver="euler",
        num_outputs=1,
        width=8 if key == "audio_video" else 16,
        height=8 if key == "audio_video" else 16,
        duration=1.5,
        fps=12,
        loras="",
    )
    if key == "audio_video":
        form["audio_guidance"] = 1.0
    previews, video, files, status, _ = client.predict(**form, api_name=api)
    assert "Done" in status and len(files) == 1 and video and previews
    info = probe_mp4(files[0])
    assert info["frames"] == 18 and abs(info["video_duration"] - 1.5) < 1e-3
    assert (info["audio_codec"] == "aac") == (key == "audio_video")
    settings = read_mp4(files[0])[4]
    assert (settings["fps"], settings["duration"]) == (12, 1.5)

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
        "--steps",
        "2",
        "--guidance",
        "2",
        "--solver",
        "euler",
        "--fps",
        "12",
        "--duration",
        "1.5",
        "--width",
        str(form["width"]),
        "--height",
        str(form["height"]),
        "--quiet",
        "--out",
        str(tmp_path),
    ]
    if key == "audio_video":
        cli += ["--audio-guidance", "1"]
    subprocess.run(cli, check=True, capture_output=True)
    (mine,) = tmp_path.glob("*.mp4")
    assert Path(files[0]).read_bytes() == mine.read_bytes()

    for bad in ({"fps": 7}, {"duration": 0.0}, {"fps": 1000}):
        with pytest.raises(AppError):
            client.predict(**{**form, **bad}, api_name=api)
    assert proc.poll() is None


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium: `apt-get install chromium`")
@pytest.mark.parametrize("key", list(TABS))
def test_video_tabs_in_a_browser(server, tmp_path, key):
    playwright = pytest.importorskip("playwright.sync_api")
    url, _, _ = server
    _, label, _ = TABS[key]
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.goto(url)
        page.get_by_role("tab", name=label).click()
        page.locator(f"#{key}-prompt textarea").fill("a blue square moving left")
        page.click(f"#{key}-generate")
        page.wait_for_selector(f"#{key}-status >> text=Done", timeout=60_000)
        page.screenshot(path=str(tmp_path / f"{key}-tab.png"), full_page=True)
        page.wait_for_selector(f"#{key}-player-0 video", state="attached", timeout=10_000)
        grid = page.locator(f"#{key}-result img").first
        shot = np.asarray(Image.open(io.BytesIO(grid.screenshot())).convert("RGB"), np.float32)
        assert shot.std() > 5  # the frame-grid preview is not blank
        browser.close()

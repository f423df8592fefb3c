"""A real browser (Debian's chromium, driven by playwright) against a real `dit-studio app`,
measuring what a person sees at 1400 x 900: where Generate, progress and results are drawn,
whether every output plays, how errors show, and whether the history survives.

The README's test command installs chromium with apt where it can; without it these tests are
skipped with a message saying so. ``DIT_SCREENSHOTS=DIR`` keeps the tabs' screenshots (before,
during and after a job) there: that is how ``assets/gallery/web-*.png`` are made.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH: `apt-get install chromium` to run browser tests"
)

from benchmarks.serve import running_app  # noqa: E402
from pipelines.outputs import read_wav  # noqa: E402

VIEW = {"width": 1400, "height": 900}
TABS = {
    "image": "Text to image",
    "audio": "Text to audio",
    "video": "Text to video",
    "audio_video": "Audio + video",
}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    out = tmp_path_factory.mktemp("browser") / "outputs"
    with running_app(out) as (url, _, _), playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield url, out, browser
        browser.close()


@pytest.fixture
def page(app):
    url, _, browser = app
    page = browser.new_page(viewport=VIEW)
    page.goto(url)
    page.wait_for_selector("#image-generate")
    yield page
    page.close()


def _shot(page, name: str, tmp_path: Path) -> None:
    folder = Path(os.environ.get("DIT_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    shot = Image.open(io.BytesIO(page.screenshot())).convert("RGB")  # small enough to commit:
    shot = shot.resize((shot.width * 3 // 4, shot.height * 3 // 4), Image.LANCZOS)  # 3/4 size,
    shot.quantize(192, method=Image.Quantize.MEDIANCUT).save(
        folder / f"web-{name}.png", optimize=True
    )  # 192 colours


def _set(page, label: str, value) -> None:
    box = page.get_by_label(f"number input for {label}").filter(visible=True).first
    box.fill(str(value))
    box.press("Enter")


def _in_view(page, selector: str) -> bool:
    box = page.locator(selector).filter(visible=True).first.bounding_box()
    return (
        box is not None
        and box["y"] >= 0
        and box["y"] + box["height"] <= VIEW["height"]
        and box["x"] >= 0
        and box["x"] + box["width"] <= VIEW["width"]
    )


def _visible_errors(page) -> list[str]:
    """Every error message a person can see: the tabs' error lines and Gradio's toasts."""
    texts = []
    for loc in page.locator("[id$='-error'], .toast-body").all():
        if loc.is_visible() and loc.inner_text().strip():
            texts.append(loc.inner_text().strip())
    return texts


def _played_seconds(page, selector: str) -> list[float]:
    """The duration each visible <audio> / <video> under ``selector`` reports once loaded."""
    page.wait_for_function(
        """(sel) => { const els = [...document.querySelectorAll(sel)]
              .filter((e) => e.offsetParent !== null);
           return els.length > 0 && els.every((e) => e.readyState >= 1 && e.duration > 0); }""",
        arg=selector,
        timeout=30_000,
    )
    return page.evaluate(
        """(sel) => [...document.querySelectorAll(sel)].filter((e) => e.offsetParent !== null)
             .map((e) => e.duration)""",
        selector,
    )


def _sound_players(page) -> list[float]:
    """Seconds of sound behind each visible audio player: Gradio's player draws the file's
    waveform (wavesurfer, decoding it in the page) and offers it for download."""
    seconds = []
    for player in page.locator("[id^='audio-player-']").filter(visible=True).all():
        player.locator("[data-testid^='waveform-']").first.wait_for(timeout=30_000)
        wav = page.request.get(player.locator("a[download]").first.get_attribute("href")).body()
        samples, rate, _ = read_wav(wav)
        seconds.append(len(samples) / rate)
    return seconds


def _job(page, key: str, tmp_path: Path, outputs: int = 1) -> None:
    """Generate on one tab, checking Generate and progress are in view before and during the
    job and that the results are whole and large when it is done."""
    page.get_by_role("tab", name=TABS[key]).click()
    page.wait_for_selector(f"#{key}-generate", state="visible")
    _set(page, "Outputs", outputs)
    example = page.locator(f"#{key}-examples button").first  # a clickable example prompt
    example.click()
    playwright.expect(page.locator(f"#{key}-prompt textarea")).to_have_value(
        example.inner_text().strip(), timeout=10_000
    )
    page.evaluate("window.scrollTo(0, 0)")  # the page as it opens: no scrolling from here on
    assert _in_view(page, f"#{key}-generate") and _in_view(page, f"#{key}-status")
    _shot(page, f"{key}-before", tmp_path)
    page.click(f"#{key}-generate")
    page.wait_for_selector(f"#{key}-status >> text=/Step|Running/", timeout=60_000)
    assert _in_view(page, f"#{key}-generate") and _in_view(page, f"#{key}-status")
    assert _in_view(page, f"#{key}-cancel")
    with contextlib.suppress(playwright.Error):  # a live preview, if the job is not done yet
        page.wait_for_selector(f"#{key}-result img", timeout=5_000)
    _shot(page, f"{key}-during", tmp_path)
    page.wait_for_selector(f"#{key}-status >> text=Done", timeout=120_000)
    page.wait_for_timeout(500)
    _shot(page, f"{key}-after", tmp_path)
    box = page.locator(f"#{key}-result").bounding_box()
    images = page.locator(f"#{key}-result img").filter(visible=True).all()
    assert len(images) == outputs
    for img in images:
        b = img.bounding_box()
        assert max(b["width"], b["height"]) >= 256, b
        assert b["x"] >= box["x"] and b["y"] >= box["y"], (b, box)
        assert b["x"] + b["width"] <= box["x"] + box["width"] + 1, (b, box)
        assert b["y"] + b["height"] <= box["y"] + box["height"] + 1, (b, box)
    assert _visible_errors(page) == []


def test_every_tab_in_view_whole_and_playable(page, tmp_path):
    _job(page, "image", tmp_path, outputs=2)
    _job(page, "audio", tmp_path, outputs=3)
    seconds = _sound_players(page)
    assert len(seconds) == 3 and all(s > 0.4 for s in seconds), seconds
    _job(page, "video", tmp_path, outputs=2)
    seconds = _played_seconds(page, "[id^='video-player-'] video")
    assert len(seconds) == 2 and all(s > 0.5 for s in seconds), seconds
    _job(page, "audio_video", tmp_path, outputs=1)
    assert len(_played_seconds(page, "[id^='audio_video-player-'] video")) == 1


def test_one_error_shown_once_then_cleared(page):
    page.locator("#image-prompt textarea").fill("a small red circle")
    page.locator("#image-loras textarea, #image-loras input").first.fill("nosuch:1.0")
    page.click("#image-generate")
    page.wait_for_selector("#image-error >> text=not offered", timeout=30_000)
    page.wait_for_timeout(1000)
    errors = _visible_errors(page)
    assert len(errors) == 1 and "nosuch" in errors[0], errors
    # a second bad action replaces the message, it does not pile up
    page.click("#image-reuse-seed")
    page.wait_for_timeout(1000)
    assert len(_visible_errors(page)) == 1
    page.locator("#image-loras textarea, #image-loras input").first.fill("")
    page.click("#image-generate")
    page.wait_for_selector("#image-status >> text=Done", timeout=60_000)
    page.wait_for_timeout(500)
    assert _visible_errors(page) == []


def test_teal_adapter_from_the_page(page):
    page.locator("#image-prompt textarea").fill("a large teal circle in the centre")
    page.locator("#image-loras textarea, #image-loras input").first.fill("teal:1.0")
    page.locator("#image-random-seed input").uncheck()
    page.locator("#image-seed input").fill("3")
    page.click("#image-generate")
    page.wait_for_selector("#image-status >> text=Done", timeout=60_000)
    assert _visible_errors(page) == []
    link = page.locator("#image-files a[download$='.png']").first
    data = page.request.get(link.get_attribute("href")).body()  # what Download gives
    png = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.float32)
    r, g, b = png[..., 0], png[..., 1], png[..., 2]
    teal = (g > 90) & (b > 90) & (r < 0.6 * np.minimum(g, b))  # teal: green and blue, no red
    assert teal.mean() > 0.05, teal.mean()


def test_ctrl_enter_generates_and_history_survives_reload_and_restart(app, page, tmp_path):
    _, out, browser = app
    page.locator("#image-prompt textarea").fill("a small green square at the bottom")
    page.locator("#image-prompt textarea").press("Control+Enter")
    page.wait_for_selector("#image-status >> text=Done", timeout=60_000)
    name = page.locator("#image-status").inner_text().rsplit(": ", 1)[-1].split(",")[0].strip()
    page.reload()
    page.wait_for_selector("#image-history img", timeout=30_000)
    assert page.locator("#image-history img").count() >= 1
    page.locator("#image-history img").first.click()
    page.wait_for_timeout(500)
    page.click("#image-reuse")
    page.wait_for_timeout(1000)
    assert (
        page.locator("#image-prompt textarea").input_value() == "a small green square at the bottom"
    )
    # a new server on the same outputs folder lists the same file first
    with running_app(out) as (url2, _, _):
        other = browser.new_page(viewport=VIEW)
        other.goto(url2)
        other.wait_for_selector("#image-history img", timeout=30_000)
        other.locator("#image-history img").first.click()
        other.wait_for_timeout(500)
        reuse = other.locator("#image-reuse")
        reuse.click()
        other.wait_for_timeout(1000)
        assert (
            other.locator("#image-prompt textarea").input_value()
            == "a small green square at the bottom"
        )
        other.close()
    assert name.endswith(".png")


def test_cancel_stops_a_long_job(page):
    _set(page, "Steps", 100)
    _set(page, "Width", 64)
    _set(page, "Height", 64)
    page.click("#image-generate")
    page.wait_for_selector("#image-status >> text=Step", timeout=60_000)  # running, previews
    page.click("#image-cancel")
    page.wait_for_selector("#image-status >> text=Cancelled.", timeout=30_000)
    assert "Done" not in page.locator("#image-status").inner_text()
    # the cancelled previews are not left looking like a result
    page.wait_for_timeout(500)
    assert page.locator("#image-result img").filter(visible=True).count() == 0
    # the worker is free again: a small job runs to the end
    _set(page, "Steps", 2)
    _set(page, "Width", 32)
    _set(page, "Height", 32)
    page.click("#image-generate")
    page.wait_for_selector("#image-status >> text=Done", timeout=60_000)
    shot = page.locator("#image-result img").first.screenshot()
    assert np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"), np.float32).std() > 10

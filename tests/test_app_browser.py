"""A real browser (Debian's chromium, driven by playwright) against a real `dit-studio app`.

The README's test command installs chromium with apt where it can; without it these tests are
skipped with a message saying so.
"""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH: `apt-get install chromium` to run browser tests"
)

from benchmarks.serve import running_app  # noqa: E402


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    out = tmp_path_factory.mktemp("browser") / "outputs"
    with running_app(out) as (url, _, _), playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(url)
        page.wait_for_selector("#image-generate")
        yield page
        browser.close()


def _set(page, label: str, value: int) -> None:
    box = page.get_by_label(f"number input for {label}")
    box.fill(str(value))
    box.press("Enter")


def test_generate_shows_an_image(page, tmp_path):
    page.locator("#image-prompt textarea").fill("a large blue square")
    page.click("#image-generate")
    page.wait_for_selector("#image-status >> text=Done", timeout=60_000)
    image = page.locator(".dit-media img").first
    image.wait_for(timeout=10_000)
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    shot = np.asarray(Image.open(io.BytesIO(image.screenshot())).convert("RGB"), np.float32)
    assert shot.shape[0] >= 32 and shot.shape[1] >= 32
    assert shot.std() > 10  # not blank: the generated shape on its background
    # the bundled model draws a blue square: some clearly blue pixels
    blue = (shot[..., 2] > 120) & (shot[..., 2] > shot[..., 0] + 40)
    assert blue.mean() > 0.02


def test_cancel_stops_a_long_job(page):
    _set(page, "Steps", 100)
    _set(page, "Width", 256)
    _set(page, "Height", 256)
    page.click("#image-generate")
    page.wait_for_selector("#image-status >> text=Step", timeout=60_000)  # running, previews
    page.click("#image-cancel")
    page.wait_for_selector("#image-status >> text=Cancelled.", timeout=30_000)
    status = page.locator("#image-status").inner_text()
    assert "Done" not in status
    # the worker is free again: a small job runs to the end
    _set(page, "Steps", 2)
    _set(page, "Width", 32)
    _set(page, "Height", 32)
    page.click("#image-generate")
    try:
        page.wait_for_selector("#image-status >> text=Done", timeout=60_000)
    finally:
        page.screenshot(path="/tmp/cancel.png", full_page=True)
        print(page.locator("#image-status").inner_text())

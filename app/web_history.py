"""The outputs folder as each tab's history: thumbnails newest first, paged, with a file's
settings shown on selecting it ("Use these settings" is wired with the replay in web.py).
Read from disk on every page load, so it survives a reload and a restart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from pipelines.figures import waveform
from pipelines.outputs import read_wav

from .studio import Studio

if TYPE_CHECKING:  # web.py imports this module; the types only
    from .web import TabSpec, _Page

HISTORY_PAGE = 12  # history thumbnails per page


def thumb(path: Path) -> Any:
    """A gallery item for a written file: the image or video itself, a sound's waveform."""
    if path.suffix == ".wav":
        return waveform(read_wav(path)[0])
    return str(path)


def history_outputs(page: _Page) -> list[Any]:
    return [
        page.history,
        page.history_items,
        page.history_label,
        page.newer,
        page.older,
        page.selected,
        page.selected_info,
    ]


def history_refresher(studio: Studio, tab: TabSpec, page: _Page) -> Callable:
    def refresh(index: int):
        index = max(0, int(index or 0))
        entries, more = studio.history.page(tab.modality, index, HISTORY_PAGE)
        if not entries and index > 0:  # the page emptied (files removed): back to the first
            index = 0
            entries, more = studio.history.page(tab.modality, 0, HISTORY_PAGE)
        items = [{"path": str(e.path), "settings": e.settings} for e in entries]
        label = (
            f"page {index + 1}: {len(items)} of the outputs folder's {tab.modality} files"
            if items
            else "nothing generated yet"
        )
        thumbs = [thumb(e.path) for e in entries]
        newer, older = gr.update(interactive=index > 0), gr.update(interactive=more)
        return thumbs, items, label, newer, older, None, ""

    return refresh


def _describe(settings: dict[str, Any]) -> str:
    bits = [
        f"**{settings.get('prompt', '')}**",
        f"model {settings.get('model')}",
        f"seed {settings.get('seed')}",
        f"{settings.get('steps')} steps",
    ]
    return " · ".join(str(b) for b in bits)


def wire_history(studio: Studio, tab: TabSpec, page: _Page, demo: gr.Blocks) -> None:
    refresh = history_refresher(studio, tab, page)
    outputs = history_outputs(page)
    demo.load(refresh, page.history_page, outputs, api_visibility="private")

    def step(index: int, by: int) -> int:
        return max(0, int(index or 0) + by)

    for button, by in ((page.newer, -1), (page.older, 1)):
        button.click(
            lambda i, by=by: step(i, by),
            page.history_page,
            page.history_page,
            api_visibility="private",
        ).then(refresh, page.history_page, outputs, api_visibility="private")

    def on_select(items: list[dict], evt: gr.SelectData) -> tuple[int, str]:
        index = evt.index if isinstance(evt.index, int) else 0
        if not 0 <= index < len(items):
            return gr.skip(), ""
        return index, _describe(items[index]["settings"])

    page.history.select(
        on_select, page.history_items, [page.selected, page.selected_info], api_visibility="private"
    )

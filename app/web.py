"""The Gradio studio: one tab per modality, all built by one function from a :class:`TabSpec`.

A later modality joins by adding a TabSpec to ``TABS`` (how its previews and results are shown),
not by copying a tab. Every form value goes through the one :class:`~pipelines.request.Request`
schema and the studio's limits, so the page, the API, the CLI and the batch runner agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from starlette.middleware import Middleware

from pipelines.replay import read_settings
from pipelines.request import RequestError

from .form import FORM, form_request, replayed
from .page_guard import HideApiInfoWhenLoggedOut
from .studio import Done, Progress, Studio

CSS = ".dit-media img { image-rendering: pixelated; }"


def _enlarge(image: np.ndarray, at_least: int = 256) -> np.ndarray:
    """Nearest-neighbour upscale of a small preview so the browser shows crisp pixels."""
    k = max(1, math.ceil(at_least / max(image.shape[:2])))
    return image.repeat(k, axis=0).repeat(k, axis=1)


def _gallery(label: str, columns: int, height: int) -> gr.Gallery:
    return gr.Gallery(
        label=label,
        columns=columns,
        height=height,
        object_fit="contain",
        elem_classes="dit-media",
        interactive=False,
    )


@dataclass(frozen=True)
class TabSpec:
    """How one modality shows itself. Every tab has a gallery of live previews (images, or
    spectrograms for sound); ``result`` adds a player for the finished file where the gallery
    cannot show it."""

    modality: str
    label: str
    placeholder: str
    show_preview: Callable[[list[np.ndarray]], list[Any]]  # previews -> gallery items
    # written files (+ the last previews) -> gallery items when done
    show_done: Callable[[list[Path], list[np.ndarray]], list[Any]]
    result: Callable[[], gr.components.Component] | None = None
    show_result: Callable[[list[Path]], Any] | None = None  # written files -> result's value

    @property
    def key(self) -> str:
        """The modality as element ids and API names spell it ("audio+video" -> "audio_video")."""
        return self.modality.replace("+", "_")


TABS: dict[str, TabSpec] = {
    "image": TabSpec(
        modality="image",
        label="Text to image",
        placeholder="a small red circle on the left",
        show_preview=lambda media: [_enlarge(m) for m in media],
        show_done=lambda paths, _: [str(p) for p in paths],
    ),
    "audio": TabSpec(
        modality="audio",
        label="Text to audio",
        placeholder="a click, then a low bell",
        show_preview=lambda media: list(media),
        show_done=lambda _, previews: list(previews),
        result=lambda: gr.Audio(
            label="Sound", type="filepath", interactive=False, elem_id="audio-result"
        ),
        show_result=lambda paths: str(paths[0]),
    ),
    "video": TabSpec(
        modality="video",
        label="Text to video",
        placeholder="a red circle moving left slowly",
        show_preview=lambda media: [_enlarge(m, 128) for m in media],  # filmstrips
        show_done=lambda _, previews: [_enlarge(m, 128) for m in previews],
        result=lambda: gr.Video(label="Video", interactive=False, elem_id="video-result"),
        show_result=lambda paths: str(paths[0]),
    ),
    "audio+video": TabSpec(
        modality="audio+video",
        label="Audio + video",
        placeholder="a red ball bouncing with a thud",
        show_preview=lambda media: [_enlarge(m, 128) for m in media],  # filmstrip + spectrogram
        show_done=lambda _, previews: [_enlarge(m, 128) for m in previews],
        result=lambda: gr.Video(
            label="Video with sound", interactive=False, elem_id="audio_video-result"
        ),
        show_result=lambda paths: str(paths[0]),
    ),
}


def build_demo(studio: Studio) -> gr.Blocks:
    with gr.Blocks(title="DiT Studio") as demo:
        gr.Markdown(
            "## DiT Studio\nSmall diffusion transformers, offline. Every file carries "
            "the settings that made it: drop one back in to replay it."
        )
        offered = studio.modalities()
        for modality in (m for m in TABS if m in offered):  # TABS order: images first
            with gr.Tab(TABS[modality].label):
                build_tab(studio, TABS[modality])
    return demo


@dataclass
class _Page:
    """One tab's components: the form (``form``, keyed as ``FORM``) and what shows results."""

    form: dict[str, Any]
    words: gr.Markdown
    run: gr.Button
    stop: gr.Button
    replay: gr.File
    gallery: gr.Gallery
    result: Any
    status: gr.Markdown
    files: gr.File
    history: gr.State
    selected: gr.State
    history_view: gr.Gallery
    reuse: gr.Button

    def outputs(self) -> list[Any]:
        return [self.gallery, *([self.result] if self.result else []), self.files, self.status,
                self.history_view, self.history]  # fmt: skip

    def updates(self, shown=None, res=None, paths=None, text=None, view=None, past=None) -> list:
        """One value per output, gr.skip() for those left as they are."""
        keep = gr.skip()
        vals = [keep if shown is None else shown]
        if self.result is not None:
            vals.append(keep if res is None else res)
        return vals + [keep if v is None else v for v in (paths, text, view, past)]


def build_tab(studio: Studio, tab: TabSpec) -> None:
    models = studio.models_for(tab.modality)
    with gr.Row():
        with gr.Column(scale=2):
            form, words = _form(studio, tab, models)
            with gr.Row():
                run = gr.Button("Generate", variant="primary", elem_id=f"{tab.key}-generate")
                stop = gr.Button("Cancel", variant="stop", elem_id=f"{tab.key}-cancel")
            replay = gr.File(
                label="Replay: drop a file the studio wrote",
                file_types=[".png", ".wav", ".mp4"],
                type="filepath",
            )
        with gr.Column(scale=3):
            gallery = _gallery("Result", columns=4, height=320)
            result = tab.result() if tab.result else None
            status = gr.Markdown("Ready.", elem_id=f"{tab.key}-status")
            files = gr.File(label="Download", file_count="multiple", interactive=False)
            history, selected = gr.State([]), gr.State(None)
            history_view = _gallery("History (this session)", columns=8, height=200)
            reuse = gr.Button("Use these settings", size="sm")
    page = _Page(form, words, run, stop, replay, gallery, result, status, files, history,
                 selected, history_view, reuse)  # fmt: skip
    _wire_generate(studio, tab, page)
    _wire_model_change(studio, page)
    _wire_replay(studio, tab, page)


def _form(studio: Studio, tab: TabSpec, models: list[str]) -> tuple[dict[str, Any], gr.Markdown]:
    """The form's components (keyed as ``FORM``), at the first model's defaults, and the
    Markdown listing that model's words."""
    first = models[0]
    c: dict[str, Any] = {}
    c["model"] = gr.Dropdown(models, value=first, label="Model")
    c["prompt"] = gr.Textbox(label="Prompt", placeholder=tab.placeholder, lines=2,
                             elem_id=f"{tab.key}-prompt")  # fmt: skip
    words = gr.Markdown(studio.words_for(first), elem_id=f"{tab.key}-words")
    c["negative_prompt"] = gr.Textbox(label="Negative prompt", lines=1)
    with gr.Row():
        c["seed"] = gr.Number(label="Seed", value=0, precision=0, info="-1: random")
        c["random_seed"] = gr.Checkbox(label="random", value=True)
    with gr.Accordion("Settings", open=True):
        c |= _settings(studio, tab, models)
        c["num_outputs"] = gr.Slider(1, studio.limits_for(first).max_outputs, value=1, step=1,
                                     label="Outputs")  # fmt: skip
        c["loras"] = gr.Textbox(
            label="LoRAs (name:scale, comma-separated)",
            value="",
            placeholder=", ".join(f"{n}:1.0" for n in studio.loras) or "none offered",
            info=f"offered: {', '.join(studio.loras) or 'none (see --loras-dir)'}",
        )
    return c, words


def _settings(studio: Studio, tab: TabSpec, models: list[str]) -> dict[str, Any]:
    """Steps, guidance, solver and the media's own settings; what a modality lacks stays None
    (a State, not an API parameter either)."""
    lim, dft = studio.limits_for(models[0]), studio.defaults_for(models[0])
    c: dict[str, Any] = {}
    c["steps"] = gr.Slider(1, lim.max_steps, value=dft["steps"], step=1, label="Steps")
    c["guidance"] = gr.Slider(0, 15, value=dft["guidance"], step=0.5, label="Guidance (1 = off)")
    # Every solver of the tab's models: an API call's value is checked against the choices
    # the page was built with, so a masked model's must be among them; the model's own list
    # comes with a model change, and the request says which fit.
    solvers = [*dict.fromkeys(s for m in models for s in studio.limits_for(m).solvers)]
    c["solver"] = gr.Dropdown(solvers, value=dft["solver"], label="Solver")
    none = gr.State
    c["duration"] = gr.Slider(0.1, lim.max_seconds, value=dft["duration"], step=0.1,
                              label="Duration (s)") if lim.max_seconds else none(None)  # fmt: skip
    if lim.max_side:
        c["width"] = _side_slider("Width", lim, dft["width"])
        c["height"] = _side_slider("Height", lim, dft["height"])
    else:
        c["width"], c["height"] = none(None), none(None)
    # video: any frame rate; duration x fps whole tubelets
    c["fps"] = gr.Slider(1, lim.max_fps, value=dft["fps"], step=1,
                         label="FPS") if lim.max_fps else none(None)  # fmt: skip
    # LTX-2's per-modality guidance
    c["audio_guidance"] = gr.Slider(0, 15, value=dft["guidance"], step=0.5,
                                    label="Audio guidance") if (
        tab.modality == "audio+video") else none(None)  # fmt: skip
    return c


def _generator(studio: Studio, tab: TabSpec, page: _Page) -> Callable:
    """The Generate handler. Its parameters are the form's fields by name (the API's
    parameter names), then the history."""

    def generate(model, prompt, negative_prompt, seed, random_seed, steps, guidance, solver,
                 width, height, num_outputs, duration, fps, audio_guidance, loras, past,
                 request: gr.Request, progress=gr.Progress()):  # noqa: B008 (Gradio's injection)
        values = dict(zip(FORM, (model, prompt, negative_prompt, seed, random_seed, steps,
                                 guidance, solver, width, height, num_outputs, duration, fps,
                                 audio_guidance, loras), strict=True))  # fmt: skip
        try:
            req = studio.validate(form_request(values))
        except (RequestError, FileNotFoundError, ValueError) as e:
            raise gr.Error(str(e), print_exception=False) from None
        yield page.updates(text=f"Queued → running (seed {req.seed})…", past=past)
        session = request.session_hash if request is not None else ""
        last: list[np.ndarray] = []
        for item in studio.run(req, session=session):
            if isinstance(item, Progress):
                progress((item.step, item.total), desc="sampling", unit="steps")
                if item.preview is not None:
                    last = item.preview
                    text = f"Step {item.step}/{item.total}"
                    yield page.updates(shown=tab.show_preview(item.preview), text=text, past=past)
            elif isinstance(item, Done):
                yield _finished(tab, page, item, last, past)
                return
        yield page.updates(text="Cancelled.", past=past)

    return generate


def _finished(tab: TabSpec, page: _Page, item: Done, last: list[np.ndarray], past: list) -> list:
    """The page's updates when a request is done: results, files, status and history."""
    thumbs = tab.show_done(item.paths, last)
    past = past + [
        {"path": str(p), "settings": s, "thumb": th}
        for p, s, th in zip(item.paths, item.settings, thumbs, strict=True)
    ]
    text = f"Done in {item.seconds:.1f} s: {', '.join(p.name for p in item.paths)}"
    view = [(h["thumb"], h["settings"]["prompt"][:40]) for h in reversed(past)]
    paths = [str(p) for p in item.paths]
    res = tab.show_result(item.paths) if tab.show_result else None
    return page.updates(thumbs, res, paths, text, view, past)


def _wire_generate(studio: Studio, tab: TabSpec, page: _Page) -> None:
    generate, inputs = _generator(studio, tab, page), [*(page.form[k] for k in FORM), page.history]
    job = page.run.click(
        generate,
        inputs,
        page.outputs(),
        api_name="generate" if tab.modality == "image" else f"generate_{tab.key}",
        show_progress_on=[page.status],
    )
    page.form["prompt"].submit(
        generate,
        inputs,
        page.outputs(),
        api_name=f"submit_{tab.key}",  # a name of its own: never takes "generate"
        api_visibility="private",
        show_progress_on=[page.status],
    )

    def cancel(request: gr.Request) -> str:
        # waits (a step at most) so that "Cancelled." means the worker is free again
        n = studio.cancel(request.session_hash, wait=60) if request is not None else 0
        return "Cancelled." if n else "Nothing is running."

    page.stop.click(cancel, None, page.status, cancels=[job], api_visibility="private",
                    queue=False)  # fmt: skip


MODEL_SETTINGS = ("steps", "guidance", "solver", "width", "height", "duration", "fps",
                  "num_outputs")  # fmt: skip


def _wire_model_change(studio: Studio, page: _Page) -> None:
    """A new model: its limits and defaults in the settings, its words under the prompt."""

    def on_model(model: str):
        lim, dft = studio.limits_for(model), studio.defaults_for(model)
        sides = (_side_update(lim, dft["width"]), _side_update(lim, dft["height"]))
        shape = (
            *(sides if lim.max_side else (gr.skip(), gr.skip())),
            gr.update(maximum=lim.max_seconds, value=dft["duration"]) if lim.max_seconds
            else gr.skip(),
            gr.update(maximum=lim.max_fps, value=dft["fps"]) if lim.max_fps else gr.skip(),
        )  # fmt: skip
        return (
            gr.update(maximum=lim.max_steps, value=dft["steps"]),
            gr.update(value=dft["guidance"]),
            gr.update(choices=list(lim.solvers), value=dft["solver"]),
            *shape,
            gr.update(maximum=lim.max_outputs),
        )

    model = page.form["model"]
    model.change(on_model, model, [page.form[k] for k in MODEL_SETTINGS],
                 api_visibility="private")  # fmt: skip
    model.change(studio.words_for, model, page.words, api_visibility="private")


def _wire_replay(studio: Studio, tab: TabSpec, page: _Page) -> None:
    """A dropped file, or a history item, back into the form."""
    form = [page.form[k] for k in FORM]

    def fill(settings: dict[str, Any]) -> list[Any]:
        try:
            given, loras = replayed(settings)
        except RequestError as e:
            raise gr.Error(f"cannot replay this file: {e}", print_exception=False) from None
        if settings.get("modality", tab.modality) != tab.modality:
            raise gr.Error(f"that file is {settings.get('modality')}; drop it on its own tab",
                           print_exception=False)  # fmt: skip
        model = given.get("model")
        if model not in studio.models:
            gr.Warning(f"model {model!r} is not offered here; keeping the current model")
            model = gr.skip()
        values = {"model": model, "random_seed": False, "num_outputs": 1}
        names = [(studio.lora_name(p), scale) for p, scale in loras]
        if any(n is None for n, _ in names):
            gr.Warning("that file used a LoRA this studio does not offer; it is left out")
        values["loras"] = ", ".join(f"{n}:{scale:g}" for n, scale in names if n is not None)
        for k in FORM:
            if k not in values:
                values[k] = given.get(k, gr.skip())
        return [values[k] for k in FORM]

    def on_select(evt: gr.SelectData) -> int:
        return evt.index

    def reuse_selected(past: list[dict], index: int | None) -> list[Any]:
        if not past:
            raise gr.Error("history is empty: generate something first", print_exception=False)
        newest_first = list(reversed(past))
        return fill(newest_first[index if index is not None else 0]["settings"])

    def on_replay(path: str | None) -> list[Any]:
        if not path:
            return [gr.skip()] * len(FORM)
        try:
            return fill(read_settings(path))
        except Exception as e:  # any unreadable or foreign file: say so in the page
            raise gr.Error(f"cannot replay this file: {e}", print_exception=False) from None

    page.history_view.select(on_select, None, page.selected, api_visibility="private")
    page.reuse.click(reuse_selected, [page.history, page.selected], form,
                     api_visibility="private")  # fmt: skip
    page.replay.upload(on_replay, page.replay, form, api_name=f"read_settings_{tab.key}")


def _side_slider(label: str, lim, value: int) -> gr.Slider:
    lo = math.ceil(lim.min_side / lim.multiple) * lim.multiple
    return gr.Slider(lo, lim.max_side, value=value, step=lim.multiple, label=label)


def _side_update(lim, value: int) -> dict:
    lo = math.ceil(lim.min_side / lim.multiple) * lim.multiple
    return gr.update(minimum=lo, maximum=lim.max_side, step=lim.multiple, value=value)


MAX_UPLOAD = "20mb"


def launch(
    studio: Studio,
    host: str,
    port: int,
    auth: tuple[str, str] | None,
    share: bool,
    concurrency: int,
    max_queue: int,
) -> None:
    demo = build_demo(studio)
    demo.queue(default_concurrency_limit=concurrency, max_size=max_queue)
    demo.launch(
        server_name=host,
        server_port=port,
        auth=auth,
        share=share,
        css=CSS,
        allowed_paths=[str(studio.outputs_dir.resolve())],
        max_file_size=MAX_UPLOAD,  # uploads are replays of the studio's own small files
        prevent_thread_lock=True,
        footer_links=["api"],
        # the login page of an --auth server must not embed the API description
        app_kwargs={"middleware": [Middleware(HideApiInfoWhenLoggedOut)]} if auth else None,
    )
    studio.warm_up()  # torch + the first model load while the page is already served
    print(f"DiT Studio on http://{host}:{port} (Ctrl+C stops it)", flush=True)
    demo.block_thread()

"""The Gradio studio: one tab per modality, all built by one function from a :class:`TabSpec`.

A later modality joins by adding a TabSpec to ``TABS`` (how its previews and results are shown),
not by copying a tab. Every form value goes through the one :class:`~pipelines.request.Request`
schema and the studio's limits, so the page, the API, the CLI and the batch runner agree.

Each tab: the prompt with Generate and Cancel under it, then status, one error line, clickable
examples and the model's card on the left; results (live previews, then every output whole,
with a player per sound or video) and the outputs folder's history on the right. The page's
Generate shows errors in its error line (one message, cleared by the next action); the API
endpoints (``/generate``, ``/generate_audio`` ...) raise them, as API clients expect.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from starlette.middleware import Middleware

from pipelines.figures import enlarge
from pipelines.replay import read_settings
from pipelines.request import RequestError

from .form import FORM, form_request, replayed
from .page_guard import HideApiInfoWhenLoggedOut
from .studio import Done, Progress, Studio
from .web_history import history_outputs, history_refresher, wire_history

CSS = """
.dit-media img { image-rendering: pixelated; }
.dit-error p { color: #b91c1c; font-weight: 600; margin: 0; }
/* results grow with their count: every output whole, none behind a scroll bar */
.dit-result .fixed-height { max-height: none !important; }
.dit-result .grid-wrap { overflow-y: visible !important; }
.dit-wide .thumbnail-item { aspect-ratio: auto !important; }  /* spectrograms stay wide */
"""
# Ctrl+Enter (Cmd+Enter) anywhere on a tab clicks that tab's Generate.
JS = """
() => {
  document.addEventListener("keydown", (e) => {
    if (!(e.ctrlKey || e.metaKey) || e.key !== "Enter") return;
    const run = [...document.querySelectorAll("button[id$='-generate']")]
      .find((b) => b.offsetParent !== null);
    if (run) { e.preventDefault(); run.click(); }
  });
}
"""


def _gallery(
    label: str,
    columns: int,
    height: int | str,
    elem_id: str,
    result: bool = False,
    wide: bool = False,
) -> gr.Gallery:
    return gr.Gallery(
        label=label,
        columns=columns,
        height=height,
        object_fit="contain",
        elem_classes=[
            "dit-media",
            *(["dit-result"] if result else []),
            *(["dit-wide"] if wide else []),
        ],
        elem_id=elem_id,
        interactive=False,
        fit_columns=False,  # one result stays one column wide, whole inside the box
    )


@dataclass(frozen=True)
class TabSpec:
    """How one modality shows itself. Every tab has a gallery of live previews (images, or
    spectrograms for sound) that stays as the result; ``player`` makes one player per output
    where the gallery cannot play the file (sounds, videos)."""

    modality: str
    label: str
    placeholder: str
    show_preview: Callable[[list[np.ndarray]], list[Any]]  # previews -> gallery items
    # written files (+ the last previews) -> gallery items when done
    show_done: Callable[[list[Path], list[np.ndarray]], list[Any]]
    player: Callable[[int, str], gr.components.Component] | None = None  # (index, elem_id)
    columns: int = 2  # results side by side: 2 squares, or 1 wide spectrogram figure

    @property
    def key(self) -> str:
        """The modality as element ids and API names spell it ("audio+video" -> "audio_video")."""
        return self.modality.replace("+", "_")


def _audio_player(i: int, elem_id: str) -> gr.Audio:
    return gr.Audio(
        label=f"Sound {i + 1}", type="filepath", interactive=False, elem_id=elem_id, visible=i == 0
    )


def _video_player(label: str) -> Callable[[int, str], gr.Video]:
    return lambda i, elem_id: gr.Video(
        label=f"{label} {i + 1}", interactive=False, elem_id=elem_id, visible=i == 0
    )


TABS: dict[str, TabSpec] = {
    "image": TabSpec(
        modality="image",
        label="Text to image",
        placeholder="a small red circle on the left",
        show_preview=lambda media: [enlarge(m) for m in media],
        show_done=lambda paths, _: [str(p) for p in paths],
    ),
    "audio": TabSpec(
        modality="audio",
        label="Text to audio",
        placeholder="a click, then a low bell",
        show_preview=lambda media: list(media),  # spectrograms with axes
        show_done=lambda _, previews: list(previews),
        player=_audio_player,
        columns=1,
    ),
    "video": TabSpec(
        modality="video",
        label="Text to video",
        placeholder="a red circle moving left slowly",
        show_preview=lambda media: list(media),  # frame grids
        show_done=lambda _, previews: list(previews),
        player=_video_player("Video"),
    ),
    "audio+video": TabSpec(
        modality="audio+video",
        label="Audio + video",
        placeholder="a red ball bouncing with a thud",
        show_preview=lambda media: list(media),  # frame grid over the spectrogram
        show_done=lambda _, previews: list(previews),
        player=_video_player("Video with sound"),
        columns=1,
    ),
}


def build_demo(studio: Studio) -> gr.Blocks:
    with gr.Blocks(title="DiT Studio") as demo:
        gr.Markdown(
            "## DiT Studio\nSmall diffusion transformers, offline. Every file carries "
            "the settings that made it: drop one back in to replay it. Ctrl+Enter generates."
        )
        offered = studio.modalities()
        for modality in (m for m in TABS if m in offered):  # TABS order: images first
            with gr.Tab(TABS[modality].label):
                build_tab(studio, TABS[modality], demo)
    return demo


@dataclass
class _Page:
    """One tab's components: the form (``form``, keyed as ``FORM``) and what shows results."""

    form: dict[str, Any]
    run: gr.Button
    api: gr.Button  # invisible: carries the public API endpoint, which raises its errors
    stop: gr.Button
    status: gr.Markdown
    error: gr.Markdown
    examples: gr.Dataset
    card: gr.Markdown
    reuse_seed: gr.Button
    last_seed: gr.State
    replay: gr.File
    gallery: gr.Gallery
    players: list[Any]
    files: gr.File
    history: gr.Gallery
    history_page: gr.State
    history_items: gr.State
    history_label: gr.Markdown
    newer: gr.Button
    older: gr.Button
    selected: gr.State
    selected_info: gr.Markdown
    reuse: gr.Button

    def outputs(self) -> list[Any]:
        """What the page's Generate updates."""
        return [self.gallery, *self.players, self.files, self.status, self.error, self.last_seed]

    def updates(
        self, shown=None, played=None, paths=None, text=None, error=None, seed=None
    ) -> list:
        """One value per output; None leaves it as it is. ``played``: the files to play (one
        player each, the others hidden)."""
        keep = gr.skip()
        vals = [keep if shown is None else shown]
        if played is None:
            vals += [keep] * len(self.players)
        else:
            vals += [
                gr.update(value=str(played[i]), visible=True)
                if i < len(played)
                else gr.update(value=None, visible=False)
                for i in range(len(self.players))
            ]
        return vals + [keep if v is None else v for v in (paths, text, error, seed)]

    def api_outputs(self) -> list[Any]:
        """What the API endpoint returns: previews, the first player (if any), files, status
        and the history's newest page."""
        return [self.gallery, *self.players[:1], self.files, self.status, self.history]


def build_tab(studio: Studio, tab: TabSpec, demo: gr.Blocks) -> None:
    """One tab: the form on the left, results and history on the right, then the wiring."""
    models = studio.models_for(tab.modality)
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=380):
            left = _form_column(studio, tab, models)
        with gr.Column(scale=3):
            right = _result_column(studio, tab, models)
    states = dict(
        last_seed=gr.State(None),
        history_page=gr.State(0),
        history_items=gr.State([]),
        selected=gr.State(None),
    )
    page = _Page(**left, **right, **states)
    _wire_generate(studio, tab, page)
    _wire_model_change(studio, page)
    _wire_replay(studio, tab, page)
    wire_history(studio, tab, page, demo)


def _form_column(studio: Studio, tab: TabSpec, models: list[str]) -> dict[str, Any]:
    """The prompt, buttons, status, examples, model card, settings and replay drop."""
    key, card = tab.key, studio.card_for(models[0])
    form: dict[str, Any] = {"model": gr.Dropdown(models, value=models[0], label="Model")}
    form["prompt"] = gr.Textbox(
        label="Prompt", placeholder=tab.placeholder, lines=2, elem_id=f"{key}-prompt"
    )
    with gr.Row():
        run = gr.Button("Generate", variant="primary", elem_id=f"{key}-generate")
        stop = gr.Button("Cancel", variant="stop", elem_id=f"{key}-cancel")
    parts = dict(run=run, stop=stop, api=gr.Button(visible=False))
    parts["status"] = gr.Markdown(
        "Type a prompt, then Generate (or Ctrl+Enter).", elem_id=f"{key}-status"
    )
    parts["error"] = gr.Markdown("", elem_id=f"{key}-error", elem_classes="dit-error")
    parts["examples"] = gr.Dataset(
        components=[form["prompt"]],
        label="Examples (click one)",
        samples=[[e] for e in card.examples] or [[tab.placeholder]],
        elem_id=f"{key}-examples",
    )
    with gr.Accordion("About this model", open=False):
        parts["card"] = gr.Markdown(_card_text(studio, models[0]), elem_id=f"{key}-card")
    form |= _form(studio, tab, models)
    with gr.Row():
        parts["reuse_seed"] = gr.Button(
            "Reuse the last seed", size="sm", elem_id=f"{key}-reuse-seed"
        )
    parts["replay"] = gr.File(
        label="Replay: drop a file the studio wrote",
        file_types=[".png", ".wav", ".mp4"],
        type="filepath",
    )
    return {"form": form, **parts}


def _result_column(studio: Studio, tab: TabSpec, models: list[str]) -> dict[str, Any]:
    """The result gallery, players, downloads and the history with its pager."""
    key = tab.key
    parts: dict[str, Any] = {}
    parts["gallery"] = _gallery(
        "Result",
        columns=tab.columns,
        height="auto",
        elem_id=f"{key}-result",
        result=True,
        wide=tab.columns == 1,
    )
    most = max(studio.limits_for(m).max_outputs for m in models)
    parts["players"] = (
        [tab.player(i, f"{key}-player-{i}") for i in range(most)] if tab.player else []
    )
    parts["files"] = gr.File(
        label="Download", file_count="multiple", interactive=False, elem_id=f"{key}-files"
    )
    parts["history"] = _gallery(
        "History (the outputs folder)", columns=6, height=240, elem_id=f"{key}-history"
    )
    with gr.Row():
        parts["newer"] = gr.Button("‹ newer", size="sm")
        parts["history_label"] = gr.Markdown("", elem_id=f"{key}-history-page")
        parts["older"] = gr.Button("older ›", size="sm")
    parts["selected_info"] = gr.Markdown("")
    parts["reuse"] = gr.Button("Use these settings", size="sm", elem_id=f"{key}-reuse")
    return parts


def _card_text(studio: Studio, model: str) -> str:
    return studio.card_for(model).markdown(studio.words_for(model))


def _form(studio: Studio, tab: TabSpec, models: list[str]) -> dict[str, Any]:
    """The form's components after the prompt (keyed as ``FORM``), at the first model's
    defaults."""
    first = models[0]
    c: dict[str, Any] = {}
    c["negative_prompt"] = gr.Textbox(label="Negative prompt", lines=1)
    with gr.Row():
        c["seed"] = gr.Number(
            label="Seed", value=0, precision=0, info="-1: random", elem_id=f"{tab.key}-seed"
        )
        c["random_seed"] = gr.Checkbox(label="random", value=True, elem_id=f"{tab.key}-random-seed")
    with gr.Accordion("Settings", open=True):
        c |= _settings(studio, tab, models)
        c["num_outputs"] = gr.Slider(
            1, studio.limits_for(first).max_outputs, value=1, step=1, label="Outputs"
        )
        offered = studio.loras_for(tab.modality)
        c["loras"] = gr.Textbox(
            label="LoRAs (name:scale, comma-separated)",
            value="",
            placeholder=", ".join(f"{n}:1.0" for n in offered) or "none offered",
            info=f"offered here: {', '.join(offered)}" if offered else "",
            visible=bool(offered),
            elem_id=f"{tab.key}-loras",
        )
    return c


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
    c["duration"] = (
        gr.Slider(0.1, lim.max_seconds, value=dft["duration"], step=0.1, label="Duration (s)")
        if lim.max_seconds
        else none(None)
    )
    if lim.max_side:
        c["width"] = _side_slider("Width", lim, dft["width"])
        c["height"] = _side_slider("Height", lim, dft["height"])
    else:
        c["width"], c["height"] = none(None), none(None)
    # video: any frame rate; duration x fps whole tubelets
    c["fps"] = (
        gr.Slider(1, lim.max_fps, value=dft["fps"], step=1, label="FPS")
        if lim.max_fps
        else none(None)
    )
    # LTX-2's per-modality guidance
    c["audio_guidance"] = (
        gr.Slider(0, 15, value=dft["guidance"], step=0.5, label="Audio guidance")
        if (tab.modality == "audio+video")
        else none(None)
    )
    return c


# --- running a job -------------------------------------------------------------------------


@dataclass
class _Failed:
    message: str


def _job(
    studio: Studio, values: dict[str, Any], session: str, progress
) -> Iterator[Progress | Done | _Failed | tuple[str, int]]:
    """One request from the form's values: ("started", seed), then the studio's Progress
    items and Done, or _Failed with the message a person should read."""
    try:
        req = studio.validate(form_request(values))
    except (RequestError, FileNotFoundError, ValueError) as e:
        yield _Failed(str(e))
        return
    yield ("started", req.seed)
    try:
        for item in studio.run(req, session=session):
            if isinstance(item, Progress):
                progress((item.step, item.total), desc="sampling", unit="steps")
            yield item
    except (RequestError, FileNotFoundError, ValueError, RuntimeError) as e:
        yield _Failed(f"the job failed: {e}")


def _fields(*fields) -> dict[str, Any]:
    """The form's fields by name, from their values in ``FORM`` order."""
    return dict(zip(FORM, fields, strict=True))


def _seeds(first: int, n: int) -> str:
    return f"seed {first}" if n == 1 else f"seeds {first}-{first + n - 1}"


def _form_handler(body: Callable) -> Callable:
    """A Gradio handler of the form's fields, made from ``body(values, request, progress)``
    (a generator; ``values``: the fields by name). Gradio names an endpoint's API parameters
    after its handler's signature and finds the request by annotation and the progress
    tracker by default value, so the signature is built from ``FORM``, once."""

    def handler(*args):
        *fields, request, progress = args
        yield from body(_fields(*fields), request, progress)

    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    handler.__signature__ = inspect.Signature(
        [inspect.Parameter(name, kind) for name in FORM]
        + [
            inspect.Parameter("request", kind, annotation=gr.Request),
            inspect.Parameter("progress", kind, default=gr.Progress()),
        ]
    )
    handler.__annotations__ = {"request": gr.Request}
    handler.__name__ = body.__name__
    return handler


def _generators(studio: Studio, tab: TabSpec, page: _Page) -> tuple[Callable, Callable]:
    """(the page's Generate handler, the API endpoint's). Parameters: the form's fields by
    name (the API's parameter names)."""

    @_form_handler
    def page_generate(values: dict[str, Any], request: gr.Request, progress):
        session = request.session_hash if request is not None else ""
        last: list[np.ndarray] = []
        first = 0
        for item in _job(studio, values, session, progress):
            if isinstance(item, _Failed):
                yield page.updates(text="", error=f"⚠ {item.message}")
                return
            if isinstance(item, tuple):
                first = item[1]
                yield page.updates(
                    text=f"Running ({_seeds(first, int(values['num_outputs']))})…", error=""
                )
            elif isinstance(item, Progress) and item.preview is not None:
                last = item.preview
                yield page.updates(
                    shown=tab.show_preview(item.preview), text=f"Step {item.step}/{item.total}"
                )
            elif isinstance(item, Done):
                text = (
                    f"Done in {item.seconds:.1f} s, {_seeds(first, len(item.paths))}: "
                    f"{', '.join(p.name for p in item.paths)}"
                )
                played = item.paths if page.players else None
                yield page.updates(
                    tab.show_done(item.paths, last),
                    played,
                    [str(p) for p in item.paths],
                    text,
                    "",
                    first,
                )
                return
        # cancelled: the previews were not a result, so they go
        yield page.updates(shown=[], text="Cancelled.", played=[])

    @_form_handler
    def api_generate(values: dict[str, Any], request: gr.Request, progress):
        session = request.session_hash if request is not None else ""
        last: list[np.ndarray] = []
        keep = [gr.skip()] * len(page.api_outputs())
        for item in _job(studio, values, session, progress):
            if isinstance(item, _Failed):
                raise gr.Error(item.message, print_exception=False)
            if isinstance(item, Progress) and item.preview is not None:
                last = item.preview
            elif isinstance(item, Done):
                player = [str(item.paths[0])] if page.players else []
                # the history slot stays as it is: an API client has its files in ``files``,
                # and sending it the folder's newest thumbnails costs every request 12 files
                yield [
                    tab.show_done(item.paths, last),
                    *player,
                    [str(p) for p in item.paths],
                    f"Done in {item.seconds:.1f} s: {', '.join(p.name for p in item.paths)}",
                    gr.skip(),
                ]
                return
            else:
                yield keep
        yield [*keep[:-2], "Cancelled.", gr.skip()]

    return page_generate, api_generate


def _wire_generate(studio: Studio, tab: TabSpec, page: _Page) -> None:
    page_generate, api_generate = _generators(studio, tab, page)
    inputs = [page.form[k] for k in FORM]
    jobs = []
    for trigger in (page.run.click, page.form["prompt"].submit):
        jobs.append(
            trigger(
                page_generate,
                inputs,
                page.outputs(),
                api_visibility="private",
                show_progress_on=[page.status],
            )
        )
    page.api.click(
        api_generate,
        inputs,
        page.api_outputs(),
        api_name="generate" if tab.modality == "image" else f"generate_{tab.key}",
    )

    def cancel(request: gr.Request) -> tuple[str, str]:
        # waits (a step at most) so that "Cancelled." means the worker is free again
        n = studio.cancel(request.session_hash, wait=60) if request is not None else 0
        return ("Cancelled." if n else "Nothing is running."), ""

    page.stop.click(
        cancel, None, [page.status, page.error], cancels=jobs, api_visibility="private", queue=False
    )

    def reuse_seed(seed: int | None) -> tuple[Any, Any, str]:
        if seed is None:
            return gr.skip(), gr.skip(), "⚠ no result yet: generate something first"
        return seed, False, ""

    page.reuse_seed.click(
        reuse_seed,
        page.last_seed,
        [page.form["seed"], page.form["random_seed"], page.error],
        api_visibility="private",
    )
    for job in jobs:
        job.then(
            history_refresher(studio, tab, page),
            page.history_page,
            history_outputs(page),
            api_visibility="private",
        )


MODEL_SETTINGS = (
    "steps",
    "guidance",
    "solver",
    "width",
    "height",
    "duration",
    "fps",
    "num_outputs",
)


def _wire_model_change(studio: Studio, page: _Page) -> None:
    """A new model: its limits and defaults in the settings, its card and examples."""

    def on_model(model: str):
        lim, dft = studio.limits_for(model), studio.defaults_for(model)
        sides = (_side_update(lim, dft["width"]), _side_update(lim, dft["height"]))
        shape = (
            *(sides if lim.max_side else (gr.skip(), gr.skip())),
            gr.update(maximum=lim.max_seconds, value=dft["duration"])
            if lim.max_seconds
            else gr.skip(),
            gr.update(maximum=lim.max_fps, value=dft["fps"]) if lim.max_fps else gr.skip(),
        )
        return (
            gr.update(maximum=lim.max_steps, value=dft["steps"]),
            gr.update(value=dft["guidance"]),
            gr.update(choices=list(lim.solvers), value=dft["solver"]),
            *shape,
            gr.update(maximum=lim.max_outputs),
        )

    def on_card(model: str):
        examples = studio.card_for(model).examples
        return _card_text(studio, model), gr.Dataset(samples=[[e] for e in examples] or [[""]])

    model = page.form["model"]
    model.change(on_model, model, [page.form[k] for k in MODEL_SETTINGS], api_visibility="private")
    model.change(on_card, model, [page.card, page.examples], api_visibility="private")
    page.examples.click(
        lambda sample: sample[0], page.examples, page.form["prompt"], api_visibility="private"
    )


def _wire_replay(studio: Studio, tab: TabSpec, page: _Page) -> None:
    """A dropped file, or a history item, back into the form (errors in the error line)."""
    form = [page.form[k] for k in FORM]
    unchanged = [gr.skip()] * len(FORM)

    def fill(settings: dict[str, Any]) -> list[Any]:
        try:
            given, loras = replayed(settings)
        except RequestError as e:
            return [*unchanged, f"⚠ cannot replay this file: {e}"]
        if settings.get("modality", tab.modality) != tab.modality:
            return [
                *unchanged,
                f"⚠ that file is {settings.get('modality')}; drop it on its own tab",
            ]
        model = given.get("model")
        notes = []
        if model not in studio.models:
            notes.append(f"model {model!r} is not offered here; the current model is kept")
            model = gr.skip()
        values = {"model": model, "random_seed": False, "num_outputs": 1}
        names = [(studio.lora_name(p), scale) for p, scale in loras]
        if any(n is None for n, _ in names):
            notes.append("that file used a LoRA this studio does not offer; it is left out")
        values["loras"] = ", ".join(f"{n}:{scale:g}" for n, scale in names if n is not None)
        for k in FORM:
            if k not in values:
                values[k] = given.get(k, gr.skip())
        return [*(values[k] for k in FORM), "; ".join(f"⚠ {n}" for n in notes)]

    def reuse_selected(items: list[dict], index: int | None) -> list[Any]:
        if not items:
            return [*unchanged, "⚠ the history is empty: generate something first"]
        return fill(items[index if index is not None and index < len(items) else 0]["settings"])

    def on_replay(path: str | None) -> list[Any]:
        if not path:
            return [*unchanged, ""]
        try:
            return fill(read_settings(path))
        except Exception as e:  # any unreadable or foreign file: say so in the page
            return [*unchanged, f"⚠ cannot replay this file: {e}"]

    page.reuse.click(
        reuse_selected,
        [page.history_items, page.selected],
        [*form, page.error],
        api_visibility="private",
    )
    page.replay.upload(
        on_replay, page.replay, [*form, page.error], api_name=f"read_settings_{tab.key}"
    )


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
        js=JS,
        allowed_paths=[str(studio.outputs_dir.resolve())],
        max_file_size=MAX_UPLOAD,  # uploads are replays of the studio's own small files
        prevent_thread_lock=True,
        footer_links=["api"],
        quiet=True,  # Gradio's own banner tells people to edit launch(); ours names --share
        # the login page of an --auth server must not embed the API description
        app_kwargs={"middleware": [Middleware(HideApiInfoWhenLoggedOut)]} if auth else None,
    )
    studio.warm_up()  # torch + the first model load while the page is already served
    print(f"DiT Studio on http://{host}:{port} (Ctrl+C stops it)", flush=True)
    if not share:
        print("To serve a public link, start it with --share.", flush=True)
    demo.block_thread()

"""The studio behind the web app: models on offer, server limits, running one job with live
previews and cancellation, and writing its files. No Gradio here, so it is testable alone.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipelines.cards import Card, read_card
from pipelines.history import History
from pipelines.registry import find_models, load_pipeline
from pipelines.request import Limits, Request, RequestError
from pipelines.spec import DEFAULT_MODEL, LORA_CONFIG, ModelSpec, bundled_loras, resolve_lora

# What one request may ask of a shared server (each model's own limits narrow these further).
SERVER_LIMITS = Limits(
    max_side=256,
    max_pixels=256 * 256,
    max_seconds=30.0,
    max_fps=60.0,
    max_steps=100,
    max_outputs=8,
    max_prompt_bytes=2000,
)


@dataclass
class Progress:
    """One update of a running job: steps done, and a preview (decoded media) when due."""

    step: int
    total: int
    preview: list[Any] | None = None


@dataclass
class Done:
    paths: list[Path]
    settings: list[dict[str, Any]]
    seconds: float


class Studio:
    def __init__(
        self,
        models_dir: str | os.PathLike | None = None,
        outputs_dir: str | os.PathLike = "outputs",
        limits: Limits = SERVER_LIMITS,
        device: str = "cpu",
        preview_every: int = 1,
        loras_dir: str | os.PathLike | None = None,
    ) -> None:
        found = find_models(models_dir)
        # LoRA adapters a page may ask for, by name: bundled, then --loras-dir. Requests name
        # them; a page never reads a path of its choosing.
        self.loras: dict[str, Path] = {n: resolve_lora(n) for n in bundled_loras()}
        if loras_dir is not None:
            if not Path(loras_dir).is_dir():
                raise FileNotFoundError(f"LoRA directory {loras_dir} does not exist")
            for cfg in sorted(Path(loras_dir).glob(f"*/{LORA_CONFIG}")):
                self.loras[cfg.parent.name] = cfg.parent
            # SD3 / FLUX.1 LoRAs: diffusers' folders and .safetensors files (diffusers, kohya)
            for f in sorted(Path(loras_dir).glob("*/pytorch_lora_weights.safetensors")):
                self.loras.setdefault(f.parent.name, f.parent)
            for f in sorted(Path(loras_dir).glob("*.safetensors")):
                self.loras.setdefault(f.stem, f)
        # the default model first: it is what the page shows and an unnamed request gets
        self.models: dict[str, ModelSpec] = dict(
            sorted(found.items(), key=lambda kv: kv[0] != DEFAULT_MODEL)
        )
        if not self.models:
            raise FileNotFoundError(
                "no models: the bundled assets/ are missing and no --models-dir was given"
            )
        self.outputs_dir = Path(outputs_dir)
        self.history = History(self.outputs_dir)
        self.limits, self.device, self.preview_every = limits, device, preview_every
        self._pipes: dict[str, Any] = {}
        self._load_lock = threading.Lock()
        self._jobs = itertools.count()
        self._running: dict[str, set[Any]] = {}  # session -> tokens of its running jobs
        self._cancels = threading.Condition()

    # --- models ------------------------------------------------------------------------------

    def modalities(self) -> list[str]:
        return sorted({spec.modality for spec in self.models.values()})

    def models_for(self, modality: str) -> list[str]:
        return [name for name, spec in self.models.items() if spec.modality == modality]

    def limits_for(self, model: str) -> Limits:
        return self._spec(model).request_limits().narrow(self.limits)

    def defaults_for(self, model: str) -> dict[str, Any]:
        """The model's defaults, its size brought inside this server's limits (an SD3 model's
        1024 x 1024 on a server that allows 256: the largest allowed square)."""
        defaults = self._spec(model).request_defaults()
        if "width" in defaults:
            lim = self.limits_for(model)
            side = min(lim.max_side, int(lim.max_pixels**0.5)) // lim.multiple * lim.multiple
            for key in ("width", "height"):
                defaults[key] = max(lim.multiple, min(defaults[key], side))
        return defaults

    def card_for(self, model: str) -> Card:
        """The model's card (``README.md`` front matter): trained on, examples, scores."""
        from pipelines.spec import resolve_model

        self._spec(model)
        return read_card(resolve_model(model))

    def lora_base(self, name: str) -> str | None:
        """The model an offered adapter was trained for (its adapter_config's base model),
        None when the file does not say (SD3 / FLUX.1 LoRA files)."""
        config = Path(self.loras[name]) / LORA_CONFIG
        if not config.is_file():
            return None
        import json

        try:
            base = json.loads(config.read_text()).get("base_model_name_or_path")
        except (OSError, ValueError):
            return None
        return Path(base).name if base else None

    def loras_for(self, modality: str) -> list[str]:
        """The adapters a tab offers: those trained for one of its models, and on the image
        tab those whose base the file does not name."""
        names = {self._spec(m).name for m in self.models_for(modality)}
        bases = {n: self.lora_base(n) for n in self.loras}
        return [n for n, b in bases.items() if b in names or (b is None and modality == "image")]

    def words_for(self, model: str) -> str:
        """One line for the page: the words the model's rewriter knows, or ''."""
        from pipelines.spec import model_words, resolve_model

        self._spec(model)
        words = model_words(resolve_model(model))
        if not words:
            return ""
        return (
            "Understands free phrasing of: "
            + ", ".join(words)
            + ", in your own words and word order"
        )

    def _spec(self, model: str) -> ModelSpec:
        if model not in self.models:
            raise RequestError(
                f"model {model!r} is not offered here; choose one of {sorted(self.models)}"
            )
        return self.models[model]

    def pipeline(self, model: str):
        self._spec(model)
        with self._load_lock:
            if model not in self._pipes:
                self._pipes[model] = load_pipeline(model, device=self.device)
            return self._pipes[model]

    def warm_up(self) -> None:
        """Import torch and load the first model ahead of the first request (a thread)."""
        threading.Thread(
            target=self.pipeline, args=(next(iter(self.models)),), daemon=True, name="warm-up"
        ).start()

    # --- jobs --------------------------------------------------------------------------------

    def lora_name(self, path: str) -> str | None:
        """The offered name of an adapter folder (replaying a file's settings)."""
        return next((n for n, p in self.loras.items() if str(p) == str(path) or n == path), None)

    def validate(self, request: Request) -> Request:
        """Fill the model's defaults and check the request against model and server limits.
        Idempotent: a validated request (adapters as offered folders) validates to itself."""
        model = request.model or next(iter(self.models))
        loras = []
        for given, scale in request.loras:
            name = self.lora_name(given)
            if name is None:
                offered = sorted(self.loras) or "none"
                raise RequestError(f"LoRA {given!r} is not offered here; choose from {offered}")
            base = self.lora_base(name)
            if base is not None and base != self._spec(model).name:
                raise RequestError(
                    f"LoRA {name!r} was trained for {base!r}, not {model!r}: "
                    f"choose {base!r} or leave the LoRA out"
                )
            loras.append((str(self.loras[name]), scale))
        request = replace(request, model=model, loras=tuple(loras))
        return request.resolve(self.defaults_for(model), self.limits_for(model))

    def run(self, request: Request, session: str = "") -> Iterator[Progress | Done]:
        """Run one request: yields Progress after every step (a preview every
        ``preview_every`` steps) and finally Done with the written files.

        Sampling runs in its own thread so previews stream while it works; closing this
        iterator early (a cancelled web request) cancels the sampling at its next step.
        """
        from dit.callbacks import Cancelled, CancelToken

        request = self.validate(request)
        pipe = self.pipeline(request.model)
        token = CancelToken()
        updates: queue.Queue = queue.Queue()
        result: dict[str, Any] = {}

        def on_step(state) -> None:
            token.check()
            due = state.step % self.preview_every == 0 or state.step == state.total
            preview = pipe.preview(state.preview, request) if due else None
            updates.put(Progress(state.step, state.total, preview))

        def work() -> None:
            try:
                result["outputs"] = pipe(request, callback=on_step)
            except BaseException as e:  # handed to the consumer, raised there
                result["error"] = e
            finally:
                updates.put(None)

        tic = time.perf_counter()
        self._register(session, token)
        worker = threading.Thread(target=work, name=f"job-{next(self._jobs)}", daemon=True)
        worker.start()
        try:
            while (item := updates.get()) is not None:
                yield item
        finally:
            if worker.is_alive():
                token.cancel()
            worker.join()  # the slot is free only once sampling has really stopped
            self._unregister(session, token)
        if isinstance(result.get("error"), Cancelled):
            return
        if "error" in result:
            raise result["error"]
        outputs = result["outputs"]
        folder = self.outputs_dir / time.strftime("%Y%m%d") / f"{request.seed}-{_stamp()}"
        paths = pipe.save(outputs, folder)
        yield Done(paths, [o.settings for o in outputs], time.perf_counter() - tic)

    def cancel(self, session: str, wait: float = 0.0) -> int:
        """Cancel every running job of ``session``; returns how many were asked to stop.
        ``wait`` > 0 waits (that many seconds at most) until they have really stopped."""
        with self._cancels:
            tokens = list(self._running.get(session, ()))
            for token in tokens:
                token.cancel()
            self._cancels.wait_for(lambda: not self._running.get(session), timeout=wait)
        return len(tokens)

    def _register(self, session: str, token) -> None:
        with self._cancels:
            self._running.setdefault(session, set()).add(token)

    def _unregister(self, session: str, token) -> None:
        with self._cancels:
            self._running.get(session, set()).discard(token)
            self._cancels.notify_all()


def _stamp() -> str:
    """A unique, sortable folder suffix: two jobs with one seed never share a folder."""
    return f"{time.time_ns():x}"

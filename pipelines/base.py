"""What every pipeline shares: loading, request checks, seeding, guidance, sampling, saving.

A modality subclass only says which of its streams a request lays out (``layout``, through the
token definitions of ``pipelines/modality.py`` that the trainer uses too) and how the sampled
tokens become media (``decode``) and files (``encode_file``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from functools import cached_property
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from conditioning.byte_encoder import ByteTextEncoder
from conditioning.encoders import load_text_encoder
from conditioning.fsq import FSQAutoencoder
from conditioning.rewriter import PromptRewriter
from dit import DiT
from dit.callbacks import StepCallback
from dit.flow import time_grid
from dit.tokens import text_positions
from dit.tree import State

from .adapters import AdapterGate
from .modality import streams_of
from .request import Limits, Request
from .sampler import DECODING, FlowSampler, Inputs, Layout, MaskedSampler, Sampler
from .spec import INDEX, ModelSpec, bundled_models, resolve_model  # noqa: F401 (re-export)


@dataclass
class Output:
    media: np.ndarray  # image: (H, W, 3) uint8
    settings: dict[str, Any]  # everything needed to make it again (its own seed, batch of 1)
    suffix: str

    def filename(self) -> str:
        return f"{self.settings['seed']}-{self.settings['index']:02d}{self.suffix}"


class Pipeline:
    class_name: ClassVar[str] = "Pipeline"
    suffix: ClassVar[str] = ""

    def __init__(
        self,
        transformer: DiT,
        text_encoder: ByteTextEncoder,
        spec: ModelSpec,
        autoencoder: FSQAutoencoder | None = None,
        rewriter: PromptRewriter | None = None,
    ):
        self.transformer = transformer.eval()
        self.text_encoder = text_encoder.eval()
        # Free phrasing -> the model's own caption form (conditioning/rewriter.py), if it has one
        self.rewriter = rewriter.eval() if rewriter is not None else None
        self.spec = spec
        self.streams = streams_of(spec)  # the token layout of each stream (pipelines/modality.py)
        self.limits: Limits = spec.request_limits()
        if (spec.objective == "masked") != (autoencoder is not None):
            raise ValueError(
                f"model {spec.name!r} ({spec.objective}): a masked model needs its "
                "FSQ autoencoder, a flow model has none"
            )
        self.autoencoder = autoencoder.eval() if autoencoder is not None else None
        self.adapters = AdapterGate(self.use_loras)  # requests with other adapters wait their turn

    # --- loading and saving ------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, name_or_path: str, device: str | torch.device = "cpu") -> Pipeline:
        folder = resolve_model(str(name_or_path))
        _, spec = ModelSpec.read(folder)
        # torch_dtype at load (not .to afterwards): fp16 bundles compute in fp32 on the CPU.
        fp32 = {"torch_dtype": torch.float32}

        def part(name: str, loader):
            try:
                return loader(folder / name, **fp32).to(device)
            except (OSError, ValueError, RuntimeError, KeyError, TypeError) as e:
                first = str(e).splitlines()[0] if str(e) else type(e).__name__
                raise ValueError(
                    f"model folder {folder}: {name}/ cannot be loaded ({first}); "
                    "restore it from the model's source"
                ) from None

        transformer = part("transformer", DiT.from_pretrained)
        text_encoder = part("text_encoder", load_text_encoder)
        autoencoder = None
        if spec.objective == "masked":
            # folders exported before the rename keep their codec in tokenizer/
            old = not (folder / "autoencoder").is_dir() and (folder / "tokenizer").is_dir()
            autoencoder = part(
                "tokenizer" if old else "autoencoder", FSQAutoencoder.from_pretrained
            )
        rewriter = None
        if (folder / "rewriter").is_dir():
            rewriter = part("rewriter", PromptRewriter.from_pretrained)
        return cls(transformer, text_encoder, spec, autoencoder, rewriter)

    def save_pretrained(self, folder: str | os.PathLike, half: bool = False) -> None:
        """``half`` stores weights in fp16 (bundled models: half the size); loading always
        computes in fp32 on the CPU."""
        folder = Path(folder)
        modules = [("transformer", self.transformer), ("text_encoder", self.text_encoder)]
        if self.autoencoder is not None:
            modules.append(("autoencoder", self.autoencoder))
        if self.rewriter is not None:
            modules.append(("rewriter", self.rewriter))
        for name, module in modules:
            dtype = next(module.parameters()).dtype
            if half:
                module.to(torch.float16)
            try:
                module.save_pretrained(folder / name)
            finally:
                module.to(dtype)
        (folder / INDEX).write_text(
            json.dumps(
                self.spec.to_index(
                    self.class_name, type(self.text_encoder).__name__, self.rewriter is not None
                ),
                indent=2,
            )
        )

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    # --- what a modality defines -------------------------------------------------------------

    def layout(self, request: Request) -> Layout:
        raise NotImplementedError

    def decode(self, x: torch.Tensor, request: Request) -> list[np.ndarray]:
        raise NotImplementedError

    def encode_file(self, media: np.ndarray, settings: dict[str, Any]) -> bytes:
        raise NotImplementedError

    # masked models: autoencoder codes (B, N) -> the flow layout's tokens (B, N, dim)
    masked_token_value: ClassVar[float] = 0.0  # what a still-masked token previews as

    def codes_to_tokens(self, codes: torch.Tensor, request: Request) -> torch.Tensor:
        raise NotImplementedError(f"{self.class_name} has no masked (code) models")

    def preview(self, x: torch.Tensor, request: Request) -> list[np.ndarray]:
        """What a UI shows of the sampler's running estimate; by default the decoded media."""
        return self.decode(x, request)

    # --- shared ------------------------------------------------------------------------------

    def resolve(self, request: Request | str, **overrides: Any) -> Request:
        if isinstance(request, str):
            request = Request(prompt=request)
        request = replace(request, **overrides) if overrides else request
        return request.resolve(self.spec.request_defaults(), self.limits)

    def settings(self, request: Request, index: int) -> dict[str, Any]:
        s = request.to_dict()
        s.update(
            seed=request.seed + index,
            index=index,
            num_outputs=1,
            model=self.spec.name,
            modality=self.spec.modality,
            versions=_versions(),
        )
        if self.rewriter is not None:  # what the model read (DALL-E 3's "revised prompt")
            s["revised_prompt"] = self.rewrite([request.prompt])[0]
        return s

    def rewrite(self, prompts: list[str]) -> list[str]:
        """The prompts as the model reads them: through its rewriter, if it has one."""
        return prompts if self.rewriter is None else self.rewriter.rewrite(prompts)

    def sample(
        self,
        request: Request,
        callback: StepCallback | None = None,
        prompts: list[str] | None = None,
        given: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> State:
        """Run the sampler for a resolved request; returns the generated tokens: (B, N, dim)
        for one stream, a dict per stream for several (:meth:`layouts`). The request's adapters
        stay on the transformer until it returns (``pipelines/adapters.py``).

        ``prompts`` (one per output) lets evaluation batch different prompts in one call.
        ``given``: stream -> (clean tokens (B, N, D), positions (N, 4)) the model sees as
        finished (its time held at t = 1) while the others are sampled: video-to-audio and
        audio-to-video in a joint model.
        """
        with self.adapters.hold(request.loras):
            return self._sample(request, callback, prompts, given)

    @torch.inference_mode()
    def _sample(
        self,
        request: Request,
        callback: StepCallback | None,
        prompts: list[str] | None,
        given: dict | None,
    ) -> State:
        inputs = self.inputs(request, prompts, given)
        return self.sampler(self.transformer, inputs, request, callback)

    @cached_property
    def sampler(self) -> Sampler:
        """The sampler family, chosen once (at first use: subclasses set up their codec after
        this class's ``__init__``): flow matching, or masked decoding over the autoencoder's
        codes with the model's decoding settings (its spec's extra["masked"] over the
        defaults)."""
        if self.spec.objective != "masked":
            return FlowSampler(
                lambda _, lay, g: self.noise(lay, g),
                lambda r, _: time_grid(r.steps, shift=self.spec.shift),
            )
        return MaskedSampler(
            self.codes_to_tokens,
            self.masked_token_value,
            {**DECODING, **self.spec.extra.get("masked", {})},
        )

    def inputs(
        self, request: Request, prompts: list[str] | None = None, given: dict | None = None
    ) -> Inputs:
        """The model inputs of a resolved request, built once for every call of its sampler:
        the layouts of the streams to generate (all but ``given``), every stream's positions,
        the text conditions (``prompts``, one per output, or the request's prompt) and the
        guidance scale(s)."""
        given = given or {}
        lays = tuple(lay for lay in self.layouts(request) if lay.stream not in given)
        device, b = self.device, request.num_outputs
        cond, uncond = self.text_conditions(
            prompts or [request.prompt] * b, request.negative_prompt
        )
        positions = {"text": text_positions(cond["text"].shape[1], device)}
        positions |= {lay.stream: lay.positions.to(device) for lay in lays}
        positions |= {k: pos.to(device) for k, (_, pos) in given.items()}
        clean = {k: x.to(device) for k, (x, _) in given.items()}
        return Inputs(
            lays,
            positions,
            {**cond, "given": clean},
            {**uncond, "given": clean},
            self.guidance_scales(request),
            request.seed,
            b,
        )

    def noise(self, lay: Layout, g: torch.Generator) -> torch.Tensor:
        """One output's starting noise (N, dim) for a stream: the prior the model learnt."""
        return torch.randn(lay.tokens, lay.dim, generator=g)

    def text_conditions(self, prompts: list[str], negative: str) -> tuple[dict, dict]:
        """The conditional and unconditional text inputs of a batch ({"text", "mask",
        "pooled"} each), encoded together so both are padded to one length."""
        b = len(prompts)
        emb = self.text_encoder.encode(self.rewrite(prompts) + [negative] * b)
        halves = [slice(0, b), slice(b, 2 * b)]
        return tuple(
            {"text": emb.tokens[h], "mask": emb.mask[h], "pooled": emb.pooled[h]} for h in halves
        )

    def layouts(self, request: Request) -> list[Layout]:
        """Every generated stream's layout; one for single-modality pipelines."""
        return [self.layout(request)]

    def guidance_scales(self, request: Request) -> float | dict[str, float]:
        """The guidance scale, or one per stream (joint models override this)."""
        return request.guidance

    def use_loras(self, loras: tuple[tuple[str, float], ...]) -> None:
        """Make the transformer carry exactly these adapters, each at its scale (a ValueError
        names a bad one). peft is imported only when some request asks for an adapter."""
        if tuple(loras) == getattr(self, "_loras", ()):
            return
        from .lora import apply_loras
        from .spec import resolve_lora

        self._loras = None  # unknown until apply_loras returns (it cleans up when it fails)
        apply_loras(self, [(str(resolve_lora(p)), float(s)) for p, s in loras])
        self._loras = tuple(loras)

    def __call__(
        self, request: Request | str, callback: StepCallback | None = None, **overrides: Any
    ) -> list[Output]:
        request = self.resolve(request, **overrides)
        media = self.decode(self.sample(request, callback), request)
        return [Output(m, self.settings(request, i), self.suffix) for i, m in enumerate(media)]

    def generate_many(
        self,
        prompts: list[str],
        seed: int = 0,
        batch: int = 16,
        desc: str | None = None,
        **settings: Any,
    ) -> list[np.ndarray]:
        """Media for many prompts, one each, batched (evaluation, galleries): prompt i gets
        seed ``seed + i``, so results do not depend on ``batch``."""
        from tqdm.auto import tqdm

        media: list[np.ndarray] = []
        starts = range(0, len(prompts), batch)
        for start in tqdm(starts, desc=desc, unit="batch", disable=desc is None):
            chunk = prompts[start : start + batch]
            req = self.resolve(
                Request(prompt="", seed=seed + start, num_outputs=len(chunk), **settings)
            )
            media += self.decode(self.sample(req, prompts=chunk), req)
        return media

    def save(self, outputs: list[Output], out_dir: str | os.PathLike) -> list[Path]:
        """Write each output atomically, settings embedded, never over an existing file
        (:func:`~pipelines.outputs.write_new_file`); returns the paths."""
        from .outputs import write_new_file

        return [
            write_new_file(Path(out_dir) / o.filename(), self.encode_file(o.media, o.settings))
            for o in outputs
        ]


def _versions() -> dict[str, str]:
    try:
        ours = version("dit-studio")
    except PackageNotFoundError:  # a source tree on PYTHONPATH, not installed
        ours = "0+unknown"
    return {"dit-studio": ours, "torch": torch.__version__.split("+")[0]}

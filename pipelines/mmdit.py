"""SD3 / SD3.5 and FLUX.1 folders on the studio's core: its DiT, its solvers, its outputs.

What runs where:

- **transformer**: the folder's weights mapped into :class:`~dit.model.DiT` at load
  (:mod:`dit.from_diffusers`), in their stored dtype unless ``dtype`` is given;
- **text encoders, tokenizers, VAE, scheduler**: diffusers' pipeline class of the folder,
  loaded *without* its transformer (``transformer=None``). Its ``encode_prompt`` composes the
  CLIP-L / CLIP-G / T5 encoders as the family does, and its ``scheduler.set_timesteps`` gives
  the family's time schedule (SD3's shift, FLUX.1's resolution-dependent shift): rewriting
  either would only be a chance to differ from the checkpoints' own pipeline;
- **sampling**: :func:`dit.flow.solve` (Euler, Heun, midpoint) on the studio's time axis
  t = 1 - sigma, classifier-free guidance through :func:`dit.guidance.guided` for SD3, the
  distilled guidance input for FLUX.1 dev, neither for schnell.

A seed draws the latents diffusers draws for it: one CPU ``torch.Generator`` per output,
seeded ``seed + i``, the same shape, dtype and packing as the family's ``prepare_latents``, so
``generator=torch.Generator().manual_seed(s)`` in diffusers and ``--seed s`` here make the
same image.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dit.from_diffusers import load_transformer
from dit.tokens import image_positions, patchify, text_positions, unpatchify

from .adapters import AdapterGate
from .base import Layout, Pipeline
from .mmdit_lora import MergedLoras
from .outputs import png_bytes
from .request import Request, RequestError
from .sampler import FlowSampler, Inputs
from .spec import ModelSpec, resolve_model

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def parse_dtype(name: str | None) -> torch.dtype | None:
    """``--dtype`` -> a torch dtype; None keeps the weights' stored dtype."""
    if name in (None, "", "auto"):
        return None
    if name not in DTYPES:
        raise ValueError(f"dtype {name!r}: choose one of {sorted(DTYPES)} or auto (as stored)")
    return DTYPES[name]


SAFETENSORS_DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}


def stored_dtype(folder: Path) -> torch.dtype:
    """The dtype the transformer's weights are stored in (read from a safetensors header)."""
    from safetensors import safe_open

    files = sorted((folder / "transformer").glob("diffusion_pytorch_model*.safetensors"))
    if not files:
        raise ValueError(
            f"{folder / 'transformer'} has no diffusion_pytorch_model*.safetensors "
            "(the studio reads safetensors only)"
        )
    with safe_open(files[0], "pt") as f:
        name = f.get_slice(next(iter(f.keys()))).get_dtype()
    return SAFETENSORS_DTYPES.get(name, torch.float32)


@dataclass(frozen=True)
class MMDiTInputs(Inputs):
    """An SD3 / FLUX.1 request's inputs: the model runs in its stored dtype, on sigma = 1 - t,
    predicts noise - data (the studio's velocity negated), and FLUX.1 dev reads the guidance
    strength as an input (``embedded``; None for SD3 and schnell)."""

    dtype: torch.dtype = torch.float32
    embedded: float | None = None

    def call(self, model, x: torch.Tensor, t: torch.Tensor, cond: dict[str, Any]) -> torch.Tensor:
        sigma = (1 - t).to(self.dtype)
        g = None if self.embedded is None else torch.full_like(sigma, self.embedded)
        out = model(
            {"text": cond["text"], "image": x.to(self.dtype)},
            self.positions,
            sigma,
            pooled=cond["pooled"],
            guidance=g,
        )
        return -out["image"]


class MMDiTPipeline(Pipeline):
    class_name = "MMDiTPipeline"
    suffix = ".png"

    def __init__(self, transformer, parts, spec: ModelSpec) -> None:
        self.transformer = transformer.eval()
        self.parts = parts  # the diffusers pipeline of the folder, without its transformer
        self.text_encoder = None
        self.rewriter = None
        self.autoencoder = None
        self.spec = spec
        self.limits = spec.request_limits()
        self.family = spec.extra["family"]
        self._loras: tuple = ()
        self._merged = MergedLoras(self.transformer)
        self.adapters = AdapterGate(self.use_loras)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str | None = None,
    ) -> MMDiTPipeline:
        from diffusers import DiffusionPipeline

        folder = resolve_model(str(name_or_path))
        _, spec = ModelSpec.read(folder)
        if not isinstance(dtype, torch.dtype):
            dtype = parse_dtype(dtype)
        try:
            dtype = dtype or stored_dtype(folder)
            transformer = load_transformer(folder / "transformer", dtype=dtype, device=device)
            parts = DiffusionPipeline.from_pretrained(
                folder, transformer=None, dtype=dtype, local_files_only=True
            )
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ValueError(f"model folder {folder} cannot be loaded ({first})") from None
        return cls(transformer, parts.to(device), spec)

    def save_pretrained(self, folder, half: bool = False) -> None:
        raise ValueError("an SD3 / FLUX.1 folder is the user's own: the studio never rewrites it")

    def use_loras(self, loras: tuple[tuple[str, float], ...]) -> None:
        """Merge exactly these adapters (diffusers or kohya files) into the transformer."""
        if tuple(loras) == self._loras:
            return
        self._loras = None  # unknown until the merge finishes
        try:
            self._merged.apply(type(self.parts), [(str(p), float(s)) for p, s in loras])
        except Exception:
            self._merged.restore()
            self._loras = ()
            raise
        self._loras = tuple(loras)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.transformer.parameters()).dtype

    # --- layout -------------------------------------------------------------------------------

    def _grid(self, request: Request) -> tuple[int, int]:
        """Latent height and width (pixels / vae scale)."""
        s = self.spec.extra["vae_scale"]
        return request.height // s, request.width // s

    def layout(self, request: Request) -> Layout:
        h, w = self._grid(request)
        p = self.spec.extra["latent_patch"]
        return Layout(
            "image",
            (h // p) * (w // p),
            self.spec.channels * p * p,
            image_positions(h // p, w // p),
        )

    def noise(self, request: Request, g: torch.Generator) -> torch.Tensor:
        """One output's latents as the family's ``prepare_latents`` draws them, as tokens."""
        h, w = self._grid(request)
        lat = torch.randn((1, self.spec.channels, h, w), generator=g, dtype=self.dtype)
        return patchify(lat, self.spec.extra["latent_patch"])[0]  # (N, C p p)

    # --- text ---------------------------------------------------------------------------------

    def encode(self, prompts: list[str], negative: str, cfg: bool) -> tuple[dict, dict | None]:
        device = self.device
        if self.family == "sd3":
            emb, neg, pooled, neg_pooled = self.parts.encode_prompt(
                prompt=prompts,
                prompt_2=None,
                prompt_3=None,
                device=device,
                do_classifier_free_guidance=cfg,
                negative_prompt=[negative] * len(prompts),
            )
            cond = {"text": emb, "pooled": pooled}
            return cond, ({"text": neg, "pooled": neg_pooled} if cfg else None)
        if negative:
            raise RequestError(
                "negative_prompt: FLUX.1 has none (it is guidance-distilled); leave it empty"
            )
        emb, pooled, _ = self.parts.encode_prompt(prompt=prompts, prompt_2=None, device=device)
        return {"text": emb, "pooled": pooled}, None

    def time_grid(self, request: Request, tokens: int) -> torch.Tensor:
        """(steps + 1,) studio times t = 1 - sigma from the family's scheduler, as its
        pipeline sets it (FLUX.1: sigmas 1 .. 1/n and a shift ``mu`` for the token count)."""
        from diffusers.pipelines.flux.pipeline_flux import calculate_shift

        sched, n = self.parts.scheduler, request.steps
        c = sched.config
        mu = calculate_shift(
            tokens,
            c.get("base_image_seq_len", 256),
            c.get("max_image_seq_len", 4096),
            c.get("base_shift", 0.5),
            c.get("max_shift", 1.15),
        )
        if self.family == "flux":  # FluxPipeline.__call__'s own sigmas and mu
            sigmas = None if c.get("use_flow_sigmas") else np.linspace(1.0, 1 / n, n)
            sched.set_timesteps(sigmas=sigmas, mu=mu)
        elif c.get("use_dynamic_shifting"):  # StableDiffusion3Pipeline: mu only if dynamic
            sched.set_timesteps(n, mu=mu)
        else:
            sched.set_timesteps(n)
        return 1 - sched.sigmas.to(torch.float64)

    # --- sampling -----------------------------------------------------------------------------

    @cached_property
    def sampler(self) -> FlowSampler:
        return FlowSampler(lambda request, _, g: self.noise(request, g), self.time_grid)

    def inputs(
        self, request: Request, prompts: list[str] | None = None, given: dict | None = None
    ) -> MMDiTInputs:
        if given:
            raise RequestError("an SD3 / FLUX.1 model generates images only")
        lay = self.layout(request)
        b = request.num_outputs
        cfg = self.family == "sd3" and request.guidance > 1.0
        cond, uncond = self.encode(prompts or [request.prompt] * b, request.negative_prompt, cfg)
        positions = {
            "text": text_positions(cond["text"].shape[1], self.device),
            "image": lay.positions.to(self.device),
        }
        embedded = request.guidance if self.spec.extra["guidance_embed"] else None
        return MMDiTInputs(
            (lay,),
            positions,
            cond,
            uncond,
            request.guidance if cfg else 1.0,
            request.seed,
            b,
            self.dtype,
            embedded,
        )

    # --- media --------------------------------------------------------------------------------

    def latents(self, x: torch.Tensor, request: Request) -> torch.Tensor:
        """Sampled tokens (B, N, C p p) -> the VAE's latents (B, C, h, w), unscaled."""
        h, w = self._grid(request)
        p = self.spec.extra["latent_patch"]
        return unpatchify(x, p, h // p, w // p)

    def decode(self, x: torch.Tensor, request: Request) -> list[np.ndarray]:
        vae = self.parts.vae
        lat = self.latents(x, request).to(vae.dtype)
        lat = lat / vae.config.scaling_factor + (vae.config.shift_factor or 0.0)
        with torch.inference_mode():
            images = vae.decode(lat, return_dict=False)[0]  # (B, 3, H, W) in [-1, 1]
        # diffusers' own post-processing, so the bytes are the ones its pipeline returns
        array = self.parts.image_processor.postprocess(images, output_type="np")  # [0, 1]
        return list((array * 255).round().astype(np.uint8))

    def encode_file(self, media: np.ndarray, settings: dict[str, Any]) -> bytes:
        return png_bytes(media, settings)

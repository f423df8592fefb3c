"""Per-step speed of the DiT core next to diffusers' SD3 transformer of the same shape.

Every row runs in this process, on this device, against the matmul peak measured here.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import torch

from dit import DiT, DiTConfig, StreamConfig
from dit.fast import compile_model
from dit.linear import ONEDNN, aten_linear
from dit.tokens import image_positions, patchify, text_positions

from .timing import PROBE_SIZE, count_flops, matmul_probes, sample_calls

IMAGE_SIDE = 16  # 16 x 16 = 256 image tokens: latents 4 x 32 x 32 with 2 x 2 patches
TEXT_TOKENS = 16
LATENT_CHANNELS, PATCH = 4, 2


@dataclass
class Row:
    preset: str
    path: str
    ms: float  # median
    best_ms: float  # fastest rep: what the code costs when the shared VM lets it run
    gflop: float
    peak: float  # GFLOP/s of the best matmul, median of reps interleaved with this row's
    best_peak: float  # ... and its fastest rep
    max_err: float | None = None

    @property
    def gflops(self) -> float:
        return self.gflop / (self.ms / 1e3)

    def cells(self, baseline_ms: float | None) -> list[str]:
        speedup = f"{baseline_ms / self.ms:.2f}x" if baseline_ms else "-"
        err = "-" if self.max_err is None else f"{self.max_err:.1e}"
        return [
            self.preset,
            self.path,
            f"{self.ms:.1f}",
            f"{self.best_ms:.1f}",
            f"{self.gflop:.1f}",
            f"{self.gflops:.1f}",
            f"{100 * self.gflops / self.peak:.0f}%",
            f"{100 * self.gflop / (self.best_ms / 1e3) / self.best_peak:.0f}%",
            speedup,
            err,
        ]


def build_pair(preset: str, device: torch.device, dtype: torch.dtype):
    """Our DiT and diffusers' SD3Transformer2DModel at the same width, depth, heads, tokens."""
    from diffusers import SD3Transformer2DModel

    base = DiTConfig.preset(preset, streams=(StreamConfig("image", 1),))
    width = base.width
    cfg = base.replace(
        streams=(
            StreamConfig("text", width, "none"),
            StreamConfig("image", LATENT_CHANNELS * PATCH * PATCH),
        ),
        pooled_dim=width,
    )
    ours = DiT.from_dit_config(cfg).to(device=device, dtype=dtype).eval()
    # A fresh DiT outputs exactly zero (adaLN-Zero), which would make any two paths "equal":
    # give every weight a trained-like random value so the error column can catch a fault.
    g = torch.Generator(device="cpu").manual_seed(1)
    with torch.no_grad():
        for p in ours.parameters():
            p.copy_(0.05 * torch.randn(p.shape, generator=g))
    theirs = (
        SD3Transformer2DModel(
            sample_size=IMAGE_SIDE * PATCH,
            patch_size=PATCH,
            in_channels=LATENT_CHANNELS,
            num_layers=cfg.depth,
            attention_head_dim=cfg.head_dim,
            num_attention_heads=cfg.heads,
            joint_attention_dim=width,
            caption_projection_dim=width,
            pooled_projection_dim=width,
            out_channels=LATENT_CHANNELS,
            pos_embed_max_size=IMAGE_SIDE,
        )
        .to(device, dtype)
        .eval()
    )
    return cfg, ours, theirs


def core_rows(
    presets: list[str],
    batch: int,
    compiled: set[str],
    device,
    dtype,
) -> tuple[list[list[str]], list[str]]:
    """The table's rows, and one line per preset on the peak measured between its reps."""
    out, peaks = [], []
    probes = matmul_probes(device, dtype)
    for preset in presets:
        cfg, ours, theirs = build_pair(preset, device, dtype)
        g = torch.Generator(device="cpu").manual_seed(0)
        text = torch.randn(batch, TEXT_TOKENS, cfg.width, generator=g).to(device, dtype)
        pooled = torch.randn(batch, cfg.width, generator=g).to(device, dtype)
        t = torch.rand(batch, generator=g).to(device)
        latents = torch.randn(batch, LATENT_CHANNELS, 2 * IMAGE_SIDE, 2 * IMAGE_SIDE, generator=g)
        latents = latents.to(device, dtype)
        tokens = {"text": text, "image": patchify(latents, PATCH)}
        positions = {
            "text": text_positions(TEXT_TOKENS, device),
            "image": image_positions(IMAGE_SIDE, IMAGE_SIDE, device),
        }

        def run_theirs(theirs=theirs, latents=latents, text=text, pooled=pooled, t=t):
            return theirs(
                hidden_states=latents,
                encoder_hidden_states=text,
                pooled_projections=pooled,
                timestep=t * 1000,  # diffusers' SD3 takes timesteps in [0, 1000]
            ).sample

        def run_aten(m=ours):
            with aten_linear():
                return m(tokens, positions, t, pooled)

        paths = {
            "diffusers SD3 (eager)": run_theirs,
            "dit-studio eager": lambda m=ours: m(tokens, positions, t, pooled),
        }
        if ONEDNN:  # the same eager model with PyTorch's default GEMM (MKL), like diffusers'
            paths["dit-studio eager, F.linear"] = run_aten
        if preset in compiled:
            fast = compile_model(ours)
            paths["dit-studio compiled"] = lambda m=fast: m(tokens, positions, t, pooled)
        with torch.inference_mode():
            reference = ours(tokens, positions, t, pooled)["image"]
            errors = {
                name: (fn()["image"] - reference).abs().max().item()
                for name, fn in paths.items()
                if name != "dit-studio eager" and name.startswith("dit-studio")
            }
        ours_flops = count_flops(paths["dit-studio eager"])
        reps = 3 if preset == "b" else 15
        samples = sample_calls({**paths, **probes}, device, warmup=2, reps=reps)
        n = PROBE_SIZE
        peak = max(2 * n**3 / statistics.median(samples[p]) / 1e9 for p in probes)
        best_peak = max(2 * n**3 / min(samples[p]) / 1e9 for p in probes)
        peaks.append(
            f"{preset}: matmul peak between its reps ({n}^2, best library): median "
            f"{peak:.1f}, fastest rep {best_peak:.1f} GFLOP/s"
        )
        rows = [
            Row(
                preset,
                name,
                statistics.median(samples[name]) * 1e3,
                min(samples[name]) * 1e3,
                (count_flops(fn) if name.startswith("diffusers") else ours_flops) / 1e9,
                peak,
                best_peak,
                errors.get(name),
            )
            for name, fn in paths.items()
        ]
        base_ms = rows[0].ms
        out += [r.cells(base_ms) for r in rows]
    return out, peaks


CORE_HEADER = [
    "preset",
    "path",
    "ms/step",
    "best ms",
    "GFLOP",
    "GFLOP/s",
    "% peak",
    "at best",
    "vs diffusers",
    "max err",
]

"""LoRA training on a user's SD3 / SD3.5 / FLUX.1 folder, saved as a diffusers LoRA file.

``dit-studio train mmdit-lora --init FOLDER --data-path IMAGES --out RUN``: the folder's
transformer runs as the studio's :class:`~dit.model.DiT` (frozen, in its stored dtype), and
what trains are rank-r updates ``B @ A`` of the *diffusers* transformer's linear layers that
``lora.targets`` names (diffusers' module names, the attention projections by default, as
diffusers' ``train_dreambooth_lora_sd3.py`` / ``_flux.py`` choose). Each step maps every
update into the core with the checkpoint's own linear weight map
(:func:`dit.from_diffusers.map_weights`: q, k, v fused, FLUX's rotary channels permuted) and
runs the DiT on base + update (``torch.func.functional_call``), so the adapter is a diffusers
LoRA by construction: the export is diffusers' own ``save_lora_weights`` file, which the
studio's ``--lora`` and diffusers' ``load_lora_weights`` both read.

The objective is diffusers' scripts': sigma drawn from the logit-normal density
(``compute_density_for_timestep_sampling``) through the scheduler's training sigmas (SD3's
shift; FLUX.1's unshifted), ``x = (1 - sigma) latents + sigma noise``, target ``noise -
latents``, uniform weighting; FLUX.1 dev reads the guidance input at the model's default.
The VAE and the text encoders are frozen, so latents and prompt embeddings are computed once,
before the first step: a step is the transformer alone. Every draw of a step comes from
(seed, step), checkpoints hold the adapter and the optimiser, and ``--resume`` continues a
killed run exactly.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from safetensors import safe_open
from safetensors.torch import load_file

from dit.from_diffusers import map_weights
from dit.tokens import image_positions, patchify, text_positions
from pipelines.mmdit_lora import LORA_FILE

from . import checkpoint
from .checkpoint import CHECKPOINTS, open_loss_log
from .data import FolderSource, batch_indices
from .objective import step_generator
from .recipe import Recipe

# diffusers' train_dreambooth_lora_sd3.py default: every attention projection of both streams
TARGETS = (
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "add_q_proj",
    "add_k_proj",
    "add_v_proj",
    "to_add_out",
)


def target_layers(folder: Path, targets: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    """Diffusers layer name -> (out, in) for each 2-D ``.weight`` whose name ends in a target
    (a module name, or a regular expression when it holds one of ``^$*[``)."""
    layers = {}
    for file in sorted((folder / "transformer").glob("diffusion_pytorch_model*.safetensors")):
        with safe_open(file, "pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not a dict)
                layer = key.removesuffix(".weight")
                shape = f.get_slice(key).get_shape()
                if key.endswith(".weight") and len(shape) == 2 and _matches(layer, targets):
                    layers[layer] = (shape[0], shape[1])
    if not layers:
        raise ValueError(
            f"recipe lora targets={list(targets)} match no linear layer of "
            f"{folder / 'transformer'}; use diffusers' module names (e.g. {list(TARGETS[:4])})"
        )
    return layers


def _matches(layer: str, targets: tuple[str, ...]) -> bool:
    return any(
        re.search(t, layer) if any(c in t for c in "^$*[") else layer.endswith(f".{t}")
        for t in targets
    )


class DiffusersLoRA(torch.nn.Module):
    """The adapter: A (r, in) and B (out, r) per diffusers layer, scale alpha / r; B starts at
    zero, A as peft starts it (Kaiming-uniform, a = sqrt 5), so step 0 is the base model."""

    def __init__(self, layers: dict[str, tuple[int, int]], rank: int, alpha: float) -> None:
        super().__init__()
        self.names = sorted(layers)
        self.scale = alpha / rank
        self.a = torch.nn.ParameterList()
        self.b = torch.nn.ParameterList()
        for name in self.names:
            out, inp = layers[name]
            a = torch.empty(rank, inp)
            torch.nn.init.kaiming_uniform_(a, a=math.sqrt(5))
            self.a.append(torch.nn.Parameter(a))
            self.b.append(torch.nn.Parameter(torch.zeros(out, rank)))

    def updates(self) -> dict[str, torch.Tensor]:
        """diffusers weight key -> scale * B @ A (out, in)."""
        return {
            f"{n}.weight": self.scale * (b @ a)
            for n, a, b in zip(self.names, self.a, self.b, strict=True)
        }

    def diffusers_state(self, strength: float = 1.0) -> dict[str, torch.Tensor]:
        """peft keys as diffusers saves them, the scale (and ``strength``) folded into B, so
        a reader that assumes alpha = r (no alphas stored) applies exactly this update."""
        out = {}
        for n, a, b in zip(self.names, self.a, self.b, strict=True):
            out[f"{n}.lora_A.weight"] = a.detach().float().contiguous()
            out[f"{n}.lora_B.weight"] = (strength * self.scale * b.detach().float()).contiguous()
        return out


class MMDiTLoRAObjective(torch.nn.Module):
    """Flow-matching loss of the frozen DiT with the adapter's updates mapped into it."""

    def __init__(self, pipe, lora: DiffusersLoRA) -> None:
        super().__init__()
        self.lora = lora
        object.__setattr__(self, "pipe", pipe)  # frozen, not a submodule: never saved

    def forward(self, x, text, pooled, noise, sigma, positions, guidance) -> torch.Tensor:
        """x, noise (B, N, C p p) tokens, text (B, L, D), pooled (B, P), sigma (B,)."""
        dit = self.pipe.transformer
        dtype = self.pipe.dtype
        params = dict(dit.named_parameters())
        mapped = map_weights(dit.cfg, self.lora.updates(), strict=False)
        merged = {k: params[k] + d.to(dtype) for k, d in mapped.items()}
        s = sigma.view(-1, 1, 1)
        noisy = ((1 - s) * x + s * noise).to(dtype)  # (B, N, C p p)
        out = torch.func.functional_call(
            dit,
            merged,
            ({"text": text.to(dtype), "image": noisy}, positions, sigma.to(dtype)),
            {"pooled": pooled.to(dtype), "guidance": guidance},
            strict=False,
        )
        return torch.nn.functional.mse_loss(out["image"].float(), (noise - x).float())


def new_adapter(folder: Path, recipe: Recipe) -> DiffusersLoRA:
    """The recipe's adapter for the model in ``folder`` (B = 0: the base model)."""
    torch.manual_seed(recipe.seed)
    rank = int(recipe.lora["rank"])
    layers = target_layers(folder, tuple(recipe.lora.get("targets", TARGETS)))
    return DiffusersLoRA(layers, rank, recipe.lora.get("alpha", rank))


def read_adapter(run: Path, folder: Path, recipe: Recipe) -> DiffusersLoRA:
    """The adapter of the newest checkpoint of ``run`` (as training left it)."""
    lora = new_adapter(folder, recipe)
    newest = checkpoint.complete(Path(run) / CHECKPOINTS)[0]
    lora.load_state_dict(load_file(newest / "model.safetensors"))
    return lora


def _load(recipe: Recipe, device):
    from pipelines.mmdit import MMDiTPipeline
    from pipelines.spec import ModelSpec, resolve_model

    folder = resolve_model(recipe.init)
    if ModelSpec.read(folder)[1].extra.get("family") not in ("sd3", "flux"):
        raise ValueError(
            f"recipe mmdit-lora init={recipe.init!r}: give an SD3 / SD3.5 / FLUX.1 diffusers "
            "folder (a bundled model trains with the teal-lora kind of recipe)"
        )
    pipe = MMDiTPipeline.from_pretrained(str(folder), device=device)
    pipe.transformer.requires_grad_(False)
    return folder, pipe


@torch.no_grad()
def encode_folder(pipe, recipe: Recipe) -> tuple[list, dict[str, torch.Tensor]]:
    """The folder's images as scaled VAE latent tokens and its captions as the family's prompt
    embeddings, once (the empty caption too, for caption dropout). Items: (tokens (N, C p p),
    text (L, D), pooled (P,), (h, w) of the latent grid)."""
    extra = pipe.spec.extra
    patch = extra["latent_patch"]
    source = FolderSource(recipe.data_path, recipe.size, extra["vae_scale"] * patch)
    vae = pipe.parts.vae
    shift, scaling = vae.config.shift_factor or 0.0, vae.config.scaling_factor
    items = []
    for image, caption in source.items:
        # the latent distribution's mode, not a draw: the cache is one fixed encoding
        lat = vae.encode(image[None].to(pipe.device, vae.dtype)).latent_dist.mode()
        lat = (lat.float() - shift) * scaling  # (1, C, h, w)
        cond, _ = pipe.encode([caption], "", False)
        h, w = lat.shape[-2:]
        items.append((patchify(lat, patch)[0], cond["text"][0], cond["pooled"][0], (h, w)))
    empty, _ = pipe.encode([""], "", False)
    return (source, items), {"text": empty["text"][0], "pooled": empty["pooled"][0]}


def _batch(recipe: Recipe, step: int, source, items: list, empty: dict, sigmas: torch.Tensor):
    """The global batch of ``step``, a pure function of (seed, step): latent tokens x and noise
    (B, N, C p p), text (B, L, D), pooled (B, P), sigma (B,), and the latent grid (h, w)."""
    from diffusers.training_utils import compute_density_for_timestep_sampling

    b, n = recipe.batch_size, len(sigmas)
    idx = batch_indices(source, recipe.seed, step, b)  # one aspect bucket
    g = step_generator(recipe, step)
    x = torch.stack([items[i][0] for i in idx])
    drop = torch.rand(b, generator=g) < recipe.caption_dropout
    chosen = [
        empty if d else {"text": items[i][1], "pooled": items[i][2]}
        for i, d in zip(idx, drop.tolist(), strict=True)
    ]
    text = torch.stack([c["text"] for c in chosen])
    pooled = torch.stack([c["pooled"] for c in chosen])
    noise = torch.randn(x.shape, generator=g)
    u = compute_density_for_timestep_sampling(
        "logit_normal", b, logit_mean=0.0, logit_std=1.0, generator=g
    )
    sigma = sigmas[(u * n).long().clamp(max=n - 1)]
    return x, text, pooled, noise, sigma, items[idx[0]][3]


def _checkpoint(acc, lora: DiffusersLoRA, opt, out: Path, step: int) -> None:
    """Adapter and optimiser at ``step`` (training/checkpoint.py, atomic); the newest two kept."""
    if acc.is_main_process:
        root = out / CHECKPOINTS
        checkpoint.write(root / f"step_{step:07d}", step, {"model": lora}, opt)
        for old in checkpoint.complete(root)[2:]:
            shutil.rmtree(old)
    acc.wait_for_everyone()


def train_mmdit_lora(
    recipe: Recipe, out_dir: str | os.PathLike, resume: bool = False, max_minutes=None
) -> Path:
    """Train the adapter into ``out_dir``; returns ``out_dir/model`` (diffusers' LoRA file)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    deadline = None if max_minutes is None else time.monotonic() + 60 * max_minutes
    acc = Accelerator(cpu=not torch.cuda.is_available())
    folder, pipe = _load(recipe, acc.device)
    if recipe.gradient_checkpointing:
        pipe.transformer.enable_gradient_checkpointing()
    lora = new_adapter(folder, recipe)
    (source, items), empty = encode_folder(pipe, recipe)
    module = MMDiTLoRAObjective(pipe, lora)
    params = list(lora.parameters())
    opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    module, opt = acc.prepare(module, opt)
    step = 0
    if resume:
        modules = {"model": acc.unwrap_model(module).lora}
        step = checkpoint.resume(
            out / CHECKPOINTS, lambda f: checkpoint.read(f, modules, opt), acc.print
        )
    sched = type(pipe.parts.scheduler).from_config(pipe.parts.scheduler.config)
    sigmas = sched.sigmas.float()  # (n_train,) the family's training sigmas
    guide = None
    if pipe.spec.extra["guidance_embed"]:
        guide = float(pipe.spec.request_defaults()["guidance"])
    log = open_loss_log(out, step) if acc.is_main_process else None
    b = recipe.batch_size
    if b % acc.num_processes:
        raise ValueError(
            f"recipe batch_size={b} must divide by the {acc.num_processes} processes: "
            "copy the recipe .json and set batch_size to a multiple of them"
        )
    end = min(recipe.steps, recipe.stop_at or recipe.steps)
    p = pipe.spec.extra["latent_patch"]
    while step < end:
        x, text, pooled, noise, sigma, (h, w) = _batch(recipe, step, source, items, empty, sigmas)
        positions = {
            "text": text_positions(text.shape[1], acc.device),
            "image": image_positions(h // p, w // p).to(acc.device),
        }
        gvec = None if guide is None else torch.full((b,), guide, dtype=pipe.dtype).to(acc.device)
        lr = recipe.lr_at(step)
        for group in opt.param_groups:
            group["lr"] = lr
        # this process's share of the global batch (DDP averages the shares' gradients)
        share = np.arange(b).reshape(acc.num_processes, -1)[acc.process_index]
        dev = [t[share].to(acc.device) for t in (x, text, pooled, noise, sigma)]
        loss = module(*dev, positions, None if gvec is None else gvec[share])
        acc.backward(loss)
        acc.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        global_loss = acc.reduce(loss.detach(), "mean").item()  # every process takes part
        if log is not None:
            log.write(json.dumps({"step": step, "loss": global_loss, "lr": lr}) + "\n")
            log.flush()
        last = step >= end or (deadline is not None and time.monotonic() > deadline)
        if step % recipe.checkpoint_every == 0 or last:
            _checkpoint(acc, acc.unwrap_model(module).lora, opt, out, step)
        if last:
            break
    model = out / "model"
    if acc.is_main_process:
        export(acc.unwrap_model(module).lora, type(pipe.parts), recipe, folder, model)
    acc.wait_for_everyone()
    return model


def export(lora: DiffusersLoRA, pipeline_cls, recipe: Recipe, base: Path, folder: Path) -> None:
    """diffusers' ``save_lora_weights`` file (LORA_FILE, the scale folded in) and a card naming the
    base, written to a temporary folder and renamed: a kill never leaves half a model."""
    tmp = folder.with_name(f".tmp-{folder.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    strength = float(recipe.lora.get("strength", 1.0))
    pipeline_cls.save_lora_weights(
        tmp, transformer_lora_layers=lora.diffusers_state(strength), weight_name=LORA_FILE
    )
    card = {"base_model": str(base), "rank": int(recipe.lora["rank"]), "targets": lora.names}
    (tmp / "adapter_card.json").write_text(json.dumps(card, indent=1) + "\n")
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)

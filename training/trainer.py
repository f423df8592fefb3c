"""The accelerate trainer: one loop for every recipe, resumable after a kill, exporting a model
folder that every pipeline and the app can load.

Every random draw of a step (batch indices, caption dropout, noise, t) comes from generators
seeded by (seed, step, rank), and the learning rate is a function of the step: a run resumed
from a checkpoint continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, broadcast
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from conditioning.byte_encoder import ByteTextEncoder
from conditioning.rewriter import PromptRewriter
from dit import DiT, DiTConfig, StreamConfig
from dit.tree import tree_map
from pipelines.base import Pipeline
from pipelines.lora import TARGETS, inject_lora, lora_config, save_lora
from pipelines.registry import pipeline_class
from pipelines.spec import ModelSpec, resolve_model

from . import checkpoint
from .checkpoint import CHECKPOINTS, open_loss_log
from .data import batch_indices, make_source
from .ground_truth import SOUNDS_CLASSES
from .media import media_of
from .objective import FlowObjective, MaskedObjective, prior_items, step_generator
from .recipe import Recipe
from .start import init_trunk, init_weights, param_groups


def build_models(recipe: Recipe) -> tuple[DiT, ByteTextEncoder]:
    text_encoder = ByteTextEncoder(**recipe.text_encoder)
    media = media_of(recipe)
    cfg = DiTConfig.preset(
        recipe.preset,
        streams=(
            StreamConfig("text", text_encoder.width, "none"),
            *media.stream_configs(),
        ),
        pooled_dim=text_encoder.pooled_dim,
        temporal=media.stream if recipe.temporal else "",
    )
    return DiT.from_dit_config(cfg), text_encoder


def add_lora(transformer: DiT, text_encoder: ByteTextEncoder, recipe: Recipe) -> None:
    """Freeze the base (transformer and text encoder) and inject the recipe's LoRA, the
    only weights left trainable."""
    transformer.requires_grad_(False)
    text_encoder.requires_grad_(False)
    lora = recipe.lora
    config = lora_config(
        lora["rank"],
        lora.get("alpha", lora["rank"]),
        lora.get("targets", TARGETS),
        base_model_name(recipe),
    )
    inject_lora(transformer, config)


def base_model_name(recipe: Recipe) -> str:
    """The name the init folder's model gives itself (what an adapter records it was for)."""
    from pipelines.spec import ModelSpec, resolve_model

    return ModelSpec.read(resolve_model(recipe.init))[1].name


def _other_trainer(objective: str) -> Callable[..., Path] | None:
    """The trainer of an objective that is not a DiT's flow or masked loss (None for those)."""
    from importlib import import_module

    where = {
        "autoencoder": ("autoencoder", "train_autoencoder"),
        "rewriter": ("rewriter", "train_rewriter"),
        "distill": ("distill", "distill"),
        "mmdit-lora": ("mmdit_lora", "train_mmdit_lora"),
    }.get(objective)
    return getattr(import_module(f"training.{where[0]}"), where[1]) if where else None


def _accelerator(recipe: Recipe, out: Path) -> tuple[Accelerator, int, str | None]:
    """The Accelerator of a run, its micro-batch per process, and its tracker (if any)."""
    log_with = "tensorboard" if _has_tensorboard() else None
    # bf16/fp16 autocast pays on a GPU; on the CPU it is slower than fp32, so it is off there.
    precision = recipe.mixed_precision if torch.cuda.is_available() else "no"
    # cpu=True without CUDA: `accelerate launch --multi_gpu` on a CPU-only machine then runs
    # real multi-process (gloo) training instead of N independent copies of the run.
    # find_unused_parameters: the last block computes no text-stream output (nothing reads
    # it), so those weights get no gradient, which DDP must be told to expect.
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
    acc = Accelerator(
        mixed_precision=precision,
        log_with=log_with,
        project_dir=str(out),
        cpu=not torch.cuda.is_available(),
        kwargs_handlers=[ddp],
    )
    acc.print(f"{acc.num_processes} process(es), {acc.distributed_type.value}, {acc.device}")
    micro = recipe.batch_size // (acc.num_processes * recipe.grad_accum)
    if micro * acc.num_processes * recipe.grad_accum != recipe.batch_size:
        raise ValueError(
            f"batch_size={recipe.batch_size} must divide by processes x grad_accum = "
            f"{acc.num_processes} x {recipe.grad_accum}"
        )
    if acc.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 weights, TF32 tensor-core GEMMs
        torch.backends.cudnn.allow_tf32 = True
    return acc, micro, log_with


def _objective(recipe: Recipe) -> tuple[torch.nn.Module, Any]:
    """The models of ``recipe`` (initialised, adapted) inside its objective, and its media."""
    torch.manual_seed(recipe.seed)  # identical initial weights on every process
    transformer, text_encoder = build_models(recipe)
    if recipe.init:
        init_weights(transformer, text_encoder, recipe.init)
    if recipe.init_text_encoder:  # e.g. a masked model reusing a flow model's trained encoder
        init_weights(None, text_encoder, recipe.init_text_encoder)
    if recipe.init_trunk:
        init_trunk(transformer, recipe.init_trunk)
    if recipe.lora:
        add_lora(transformer, text_encoder, recipe)
    if recipe.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    media = media_of(recipe)
    if recipe.objective == "masked":
        return MaskedObjective(transformer, text_encoder, media.stream), media
    if recipe.contrastive and len(media.streams) > 1:
        raise ValueError(
            "recipe contrastive: contrastive flow matching is for one generated "
            "stream; set it to 0 for joint audio + video"
        )
    objective = FlowObjective(
        transformer,
        text_encoder,
        tuple(media.streams),
        recipe.contrastive,
        recipe.aux,
        SOUNDS_CLASSES if recipe.aux else (),
    )
    return objective, media


def _step_loss(run: _Run, step: int) -> torch.Tensor:
    """One optimiser step over this process's share of the global batch of ``step``; returns
    that share's loss. Every draw is made for the whole global batch, then sliced: N processes
    make the run one process makes (up to float summation order), and a resumed run the same."""
    recipe, acc, media, source = run.recipe, run.acc, run.media, run.source
    idx = batch_indices(source, recipe.seed, step, recipe.batch_size)
    g, b = step_generator(recipe, step), recipe.batch_size
    drop = (torch.rand(b, generator=g) < recipe.caption_dropout).tolist()
    first = media.tokens(stack([source.item(int(idx[0]))[0]]))[0]  # (1, N, D) per stream
    # one bucket: one shape (per stream); flow: (noise, t), masked: (mask,)
    draws_all = media.draws(first, b, g)
    slots = np.arange(b).reshape(acc.num_processes, recipe.grad_accum, run.micro)
    step_loss = torch.zeros((), device=acc.device)  # this process's share of the batch
    for pos in slots[acc.process_index]:
        items, captions = zip(*(source.item(int(i)) for i in idx[pos]), strict=True)
        data, positions = media.tokens(stack(items))  # (B, N, D), (N, 4) per stream
        captions = ["" if drop[p] else c for c, p in zip(captions, pos, strict=True)]
        draws = [tree_map(lambda x: x[pos].to(acc.device), d) for d in draws_all]
        data, positions = to_device(data, acc.device), to_device(positions, acc.device)
        prior = None
        if run.prior_source is not None:
            x_p, captions_p, t_p = prior_items(
                run.prior_source, media, recipe, step, pos, data.shape
            )
            prior = (x_p.to(acc.device), captions_p, t_p.to(acc.device), run.prior_weight)
        extra = {}
        if recipe.aux:  # (B, N, K) per-token ground truth for the aux classifier
            extra["labels"] = torch.stack([source.labels(int(i)) for i in idx[pos]]).to(acc.device)
        with acc.accumulate(run.module):
            loss = run.module(data, positions, captions, *draws, prior=prior, **extra)
            step_loss += loss.detach() / recipe.grad_accum
            acc.backward(loss)
            if acc.sync_gradients:
                acc.clip_grad_norm_(run.params, 1.0)
            run.opt.step()
            run.opt.zero_grad(set_to_none=True)
    run.ema.step(run.params)
    return step_loss


@dataclass
class _Run:
    """What a flow or masked run holds from step to step."""

    recipe: Recipe
    acc: Accelerator
    micro: int
    media: Any
    module: torch.nn.Module
    params: list[torch.nn.Parameter]
    opt: torch.optim.Optimizer
    ema: EMAModel
    source: Any
    prior_source: Any
    prior_weight: float

    def write(self, out: Path, step: int, end: int) -> None:
        """The checkpoint, export and samples due at ``step``."""
        recipe, acc = self.recipe, self.acc
        if step % recipe.checkpoint_every == 0 or step == end:
            save_checkpoint(acc, self.module, self.opt, self.ema, out, step)
        if acc.is_main_process and recipe.export_every and step % recipe.export_every == 0:
            with ema_weights(self.ema, self.params):
                export(acc.unwrap_model(self.module), recipe, out / "exports" / f"step_{step:07d}")
        if acc.is_main_process and (step % recipe.sample_every == 0 or step == end):
            with ema_weights(self.ema, self.params):
                write_samples(
                    acc.unwrap_model(self.module), recipe, out / "samples" / f"step_{step:07d}.png"
                )


def train(
    recipe: Recipe,
    out_dir: str | os.PathLike,
    resume: bool = False,
    max_minutes: float | None = None,
) -> Path:
    """Train ``recipe`` into ``out_dir``; returns the exported model folder.

    ``max_minutes`` ends the run early, at a step boundary, with a checkpoint, samples and an
    export; ``--resume`` continues it later. Without lr decay that is exactly the run the recipe
    would make with ``steps`` set to the printed step count.
    """
    other = _other_trainer(recipe.objective)
    if other is not None:
        return other(recipe, out_dir, resume, max_minutes)
    out = Path(out_dir)
    deadline = None if max_minutes is None else time.monotonic() + 60 * max_minutes
    _rewriter_folder(recipe)  # a wrong rewriter_from fails now, not at the export
    run, step, log_with = _start(recipe, out, resume)
    _loop(run, out, step, deadline, log_with)
    folder = out / "model"
    if run.acc.is_main_process:
        with ema_weights(run.ema, run.params):
            export(run.acc.unwrap_model(run.module), recipe, folder)
    run.acc.wait_for_everyone()
    run.acc.end_training()
    return folder


def _start(recipe: Recipe, out: Path, resume: bool) -> tuple[_Run, int, str | None]:
    """The run's pieces (accelerator, models, optimiser, EMA, data), its first step (the
    newest usable checkpoint's with ``resume``) and its tracker."""
    acc, micro, log_with = _accelerator(recipe, out)
    module, media = _objective(recipe)
    # Only what trains is optimised and averaged: everything, or a LoRA's weights alone.
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(
        param_groups(module, params, recipe),
        lr=recipe.lr,
        betas=(0.9, 0.99),
        weight_decay=recipe.weight_decay,
    )
    ema = EMAModel(params, decay=recipe.ema_decay, foreach=True)
    module, opt = acc.prepare(module, opt)
    ema.to(acc.device)
    step = 0
    if resume:  # the newest usable checkpoint (training/checkpoint.py: no pickles)
        modules = {"model": acc.unwrap_model(module)}
        step = checkpoint.resume(
            out / CHECKPOINTS, lambda f: checkpoint.read(f, modules, opt, ema), acc.print
        )
    if log_with:
        acc.init_trackers("train", config={k: str(v) for k, v in vars(recipe).items()})
    prior_weight = float(recipe.lora.get("prior", 0.0))
    prior_source = (
        make_source(replace(recipe, data=recipe.lora["prior_data"], lora={}))
        if prior_weight
        else None
    )
    source = make_source(recipe)
    run = _Run(
        recipe, acc, micro, media, module, params, opt, ema, source, prior_source, prior_weight
    )
    return run, step, log_with


def _loop(run: _Run, out: Path, step: int, deadline: float | None, log_with) -> None:
    """Steps from ``step`` to the recipe's end (or the deadline): the loss logged per step,
    progress every 10, checkpoints, samples and exports as the recipe asks."""
    recipe, acc = run.recipe, run.acc
    loss_log = open_loss_log(out, step) if acc.is_main_process else None
    end = min(recipe.steps, recipe.stop_at) if recipe.stop_at > 0 else recipe.steps
    bar = tqdm(
        total=end,
        initial=step,
        disable=not acc.is_local_main_process,
        desc=f"train {recipe.name}",
        unit="step",
    )
    tic, seen = time.perf_counter(), 0
    while step < end:
        lr = recipe.lr_at(step)
        for group in run.opt.param_groups:
            group["lr"] = lr * group.get("scale", 1.0)
        step_loss = _step_loss(run, step)
        step += 1
        seen += recipe.batch_size
        # The loss of the whole global batch (equal shares per process): the curve one
        # process would log, whatever the number of processes.
        global_loss = acc.reduce(step_loss, reduction="mean").item()
        if acc.is_main_process:
            loss_log.write(json.dumps({"step": step, "loss": global_loss, "lr": lr}) + "\n")
            loss_log.flush()
        if step % 10 == 0 or step == recipe.steps:
            rate = seen / (time.perf_counter() - tic)
            bar.set_postfix(loss=f"{global_loss:.4f}", img_s=f"{rate:.1f}", lr=f"{lr:.1e}")
            if log_with:
                acc.log({"loss": global_loss, "lr": lr, "images_per_s": rate}, step=step)
        bar.update(1)
        if deadline is not None and step % 10 == 0 and _out_of_time(acc, deadline):
            end = step
            acc.print(f"--max-minutes reached: stopping at step {step}")
        run.write(out, step, end)
    bar.close()
    if loss_log is not None:
        loss_log.close()


def stack(items: list) -> torch.Tensor | dict[str, torch.Tensor]:
    """Items (tensors, or dicts of tensors per stream) -> one batch, leaf-wise."""
    return tree_map(lambda *xs: torch.stack(xs), *items)


def to_device(tree, device: torch.device):
    return tree_map(lambda x: x.to(device), tree)


def save_checkpoint(
    acc: Accelerator, module, opt, ema, out: Path, step: int, keep: int = 2
) -> None:
    """A checkpoint of the main process's state (training/checkpoint.py), renamed once
    complete: a kill mid-save leaves only a .tmp-* folder that resume ignores. The newest
    ``keep`` stay, so a damaged newest one falls back to the one before."""
    root = out / CHECKPOINTS
    if acc.is_main_process:
        modules = {"model": acc.unwrap_model(module)}
        checkpoint.write(root / f"step_{step:07d}", step, modules, opt, ema)
        for old in checkpoint.complete(root)[keep:]:
            shutil.rmtree(old)
    acc.wait_for_everyone()


class ema_weights:
    """Context: ``params`` hold the EMA weights inside, their own weights again after."""

    def __init__(self, ema: EMAModel, params: list[torch.nn.Parameter]) -> None:
        self.ema, self.params = ema, params

    def __enter__(self) -> None:
        self.ema.store(self.params)
        self.ema.copy_to(self.params)

    def __exit__(self, *exc) -> None:
        self.ema.restore(self.params)


def pipeline_of(module: FlowObjective | MaskedObjective, recipe: Recipe) -> Pipeline:
    media = media_of(recipe)
    spec, autoencoder = media.spec(), getattr(media, "autoencoder", None)
    return pipeline_class(spec.modality)(
        module.transformer, module.text_encoder, spec, autoencoder, _rewriter(recipe)
    )


def _rewriter_folder(recipe: Recipe) -> Path | None:
    """``recipe.rewriter_from``'s ``rewriter/`` folder, checked to be the same world's."""
    if not recipe.rewriter_from:
        return None
    folder = resolve_model(recipe.rewriter_from)
    world = ModelSpec.read(folder)[1].extra.get("data")
    if world != recipe.data or not (folder / "rewriter").is_dir():
        raise ValueError(
            f"recipe rewriter_from={recipe.rewriter_from!r}: give a model folder "
            f"with a rewriter/ of the {recipe.data!r} world (it has "
            f"{'a' if (folder / 'rewriter').is_dir() else 'no'} rewriter, world "
            f"{world!r})"
        )
    return folder / "rewriter"


@functools.lru_cache(maxsize=2)
def _load_rewriter(folder: Path) -> PromptRewriter:
    """Read once per run, not at every export and sample strip."""
    return PromptRewriter.from_pretrained(folder, torch_dtype=torch.float32).eval()


def _rewriter(recipe: Recipe) -> PromptRewriter | None:
    """The prompt rewriter the export carries (``recipe.rewriter_from``), or None."""
    folder = _rewriter_folder(recipe)
    return None if folder is None else _load_rewriter(folder)


def export(module: FlowObjective, recipe: Recipe, folder: Path) -> None:
    """Write the model folder atomically (temporary folder, then rename); a LoRA recipe
    writes only the adapter folder."""
    if recipe.lora:
        meta = {
            "base_model": base_model_name(recipe),
            "recipe": recipe.name,
            "steps": recipe.stop_at or recipe.steps,
        }
        strength = float(recipe.lora.get("strength", 1.0))
        if strength != 1.0:
            meta["strength"] = strength
        save_lora(module.transformer, folder, meta, half=recipe.export_half, strength=strength)
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".tmp-{folder.name}")
    if tmp.exists():
        shutil.rmtree(tmp)
    pipeline_of(module, recipe).save_pretrained(tmp, half=recipe.export_half)
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    module.train()


def write_samples(module: FlowObjective, recipe: Recipe, path: Path) -> None:
    if not recipe.sample_prompts:
        return
    from pipelines.outputs import write_png

    pipe = pipeline_of(module, recipe)
    outputs = [pipe(p, seed=i)[0] for i, p in enumerate(recipe.sample_prompts)]
    if pipe.spec.modality == "image":  # one strip of images
        strip = np.concatenate([o.media for o in outputs], axis=1)
        write_png(path, strip, {"prompts": list(recipe.sample_prompts)})
    else:  # one file each, named by seed: samples/step_XXXXXXX/<seed>-00.wav
        pipe.save(outputs, path.with_suffix(""))
    module.train()


def _out_of_time(acc: Accelerator, deadline: float) -> bool:
    """Every process stops at the same step: the main process's clock decides."""
    flag = torch.tensor([float(time.monotonic() > deadline)], device=acc.device)
    return bool(broadcast(flag, from_process=0).item())


def _has_tensorboard() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None

"""Train an FSQ autoencoder (recipe ``objective: "autoencoder"``) and measure its round trip.

The loop is the flow trainer's in miniature: batches are a pure function of (seed, step),
a checkpoint (weights, optimiser, step) is written atomically every ``checkpoint_every``
steps, ``--resume`` continues from it exactly, and the export is a model folder
(config.json + safetensors) that masked recipes name in ``autoencoder``. One process: the
autoencoders are small convnets that train in minutes.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from conditioning.fsq import FSQAutoencoder
from conditioning.mel import MelCodec

from . import checkpoint
from .checkpoint import CHECKPOINTS, open_loss_log
from .data import batch_indices, make_source
from .recipe import Recipe


def build_autoencoder(recipe: Recipe) -> FSQAutoencoder:
    if recipe.modality == "audio":
        codec = MelCodec(**recipe.codec)
        return FSQAutoencoder(
            kind="mel", channels=codec.n_mels, codec=codec.to_dict(), **recipe.fsq
        )
    return FSQAutoencoder(kind="image", channels=3, **recipe.fsq)


def media_batch(source, codec: MelCodec | None, indices) -> torch.Tensor:
    """Images (B, 3, H, W) in [-1, 1], or (with the audio ``codec``) normalised log-mel frames
    (B, F, n_mels): an audio source holds flow tokens (B, N, k * n_mels)."""
    items = torch.stack([source.item(int(i))[0] for i in indices])
    return codec.from_tokens(items) if codec is not None else items


def edge_mse(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """MSE between the neighbour differences of ``y`` and ``x`` along their last two axes
    (image: rows and columns; mel (B, F, M): frames and bands): the gradient-difference loss
    of Mathieu et al. (2016), squared, which pays for an edge in the wrong place or blurred."""
    return sum(torch.nn.functional.mse_loss(y.diff(dim=d), x.diff(dim=d)) for d in (-1, -2))


def train_autoencoder(
    recipe: Recipe,
    out_dir: str | os.PathLike,
    resume: bool = False,
    max_minutes: float | None = None,
) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(recipe.seed)
    model = build_autoencoder(recipe)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    step = 0
    if resume:  # training/checkpoint.py: safetensors + JSON, no pickles
        step = checkpoint.resume(
            out / CHECKPOINTS, lambda f: checkpoint.read(f, {"model": model}, opt)
        )
    source = make_source(recipe)
    codec = MelCodec(**recipe.codec) if recipe.modality == "audio" else None
    deadline = None if max_minutes is None else time.monotonic() + 60 * max_minutes
    end = min(recipe.steps, recipe.stop_at) if recipe.stop_at > 0 else recipe.steps
    bar = tqdm(total=end, initial=step, desc=f"train {recipe.name}", unit="step")
    log = open_loss_log(out, step)  # the flow trainer's: a resumed run's log reads as one run
    while step < end:
        lr = recipe.lr_at(step)
        for group in opt.param_groups:
            group["lr"] = lr
        x = media_batch(source, codec, batch_indices(source, recipe.seed, step, recipe.batch_size))
        y = model(x)
        loss = torch.nn.functional.mse_loss(y, x)
        if recipe.edge_loss:
            loss = loss + recipe.edge_loss * edge_mse(y, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        log.write(json.dumps({"step": step, "loss": loss.item(), "lr": lr}) + "\n")
        bar.update(1)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
            if deadline is not None and time.monotonic() > deadline:
                end = step
        if step % recipe.checkpoint_every == 0 or step == end:
            log.flush()
            # a kill mid-save leaves the previous checkpoint; the newest two stay
            checkpoint.write(out / CHECKPOINTS / f"step_{step:07d}", step, {"model": model}, opt)
            for old in checkpoint.complete(out / CHECKPOINTS)[2:]:
                shutil.rmtree(old)
    bar.close()
    log.close()
    folder, tmp = out / "model", out / ".tmp-model"
    if tmp.exists():
        shutil.rmtree(tmp)
    (model.half() if recipe.export_half else model).save_pretrained(tmp)
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder

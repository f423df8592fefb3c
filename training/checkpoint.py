"""Training checkpoints with no pickles: weights, optimiser and EMA as safetensors, the rest
as JSON, written to a temporary folder and renamed once complete.

accelerate's ``save_state`` pickles the optimiser, the RNG states and every registered object
(the EMA as ``custom_checkpoint_0.pkl``, loaded back with ``weights_only=False``): a crafted
file in a run folder would run code on ``--resume``. The studio's trainers need none of it
pickled (every random draw of a step comes from generators seeded by the step), so they write
this format, refuse any pickle they find, and fall back to the previous complete checkpoint
when the newest is damaged (truncated, missing a file), saying so.

A checkpoint folder holds ``{module}.safetensors`` per module, ``optimizer.safetensors`` +
``optimizer.json``, ``ema.safetensors`` + ``ema.json`` when there is an EMA, and
``state.json`` ({"step": N}), written last.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import torch
from safetensors.torch import load_file, save_file

STATE = "state.json"
CHECKPOINTS = "checkpoints"  # a run folder's checkpoint folders (step_*), newest two kept
LOSS_LOG = "loss.jsonl"
PICKLES = (".pkl", ".pt", ".pth", ".bin", ".pickle", ".ckpt")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: damaged, incomplete, or holding pickles."""


def _tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous() for k, v in state.items()}


def _split(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimiser's state_dict -> (tensors keyed "param.key", JSON for everything else)."""
    tensors, meta = {}, {"param_groups": sd["param_groups"], "state": {}}
    for pid, entry in sd["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{pid}.{key}"] = value.contiguous()
            else:
                meta["state"].setdefault(str(pid), {})[key] = value
    return tensors, meta


def _join(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    for pid, entry in meta["state"].items():
        state.setdefault(int(pid), {}).update(entry)
    return {"state": state, "param_groups": meta["param_groups"]}


def write(
    folder: Path, step: int, modules: dict[str, torch.nn.Module | None], opt, ema=None
) -> None:
    """Write a checkpoint of ``modules`` (None: skipped), ``opt`` and ``ema`` (diffusers'
    EMAModel) at ``step`` into ``folder``, atomically."""
    folder = Path(folder)
    tmp = folder.with_name(f".tmp-{folder.name}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for name, module in modules.items():
        if module is not None:
            save_file(_tensors(module.state_dict()), tmp / f"{name}.safetensors")
    tensors, meta = _split(opt.state_dict())
    save_file(tensors, tmp / "optimizer.safetensors")
    (tmp / "optimizer.json").write_text(json.dumps(meta))
    if ema is not None:
        sd = ema.state_dict()
        shadow = {str(i): p for i, p in enumerate(sd.pop("shadow_params"))}
        save_file(_tensors(shadow), tmp / "ema.safetensors")
        (tmp / "ema.json").write_text(json.dumps({k: v for k, v in sd.items() if v is not None}))
    (tmp / STATE).write_text(json.dumps({"step": step}))
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)


def refuse_pickles(folder: Path) -> None:
    found = sorted(p.name for p in Path(folder).iterdir() if p.suffix in PICKLES)
    if found:
        raise CheckpointError(
            f"{folder} holds pickled files {found}; the studio never unpickles (a pickle can "
            "run code). Delete them, or start a new run folder"
        )


def read(folder: Path, modules: dict[str, torch.nn.Module | None], opt, ema=None) -> int:
    """Load what :func:`write` wrote into ``modules``, ``opt`` and ``ema``; returns the step.
    Raises :class:`CheckpointError` naming the file when anything is missing or damaged."""
    folder = Path(folder)
    refuse_pickles(folder)
    current = folder / STATE
    try:
        step = int(json.loads(current.read_text())["step"])
        for name, module in modules.items():
            if module is not None:
                current = folder / f"{name}.safetensors"
                module.load_state_dict(load_file(current))
        current = folder / "optimizer.safetensors"
        tensors = load_file(current)
        current = folder / "optimizer.json"
        opt.load_state_dict(_join(tensors, json.loads(current.read_text())))
        if ema is not None:
            current = folder / "ema.safetensors"
            shadow = load_file(current)
            current = folder / "ema.json"
            sd = json.loads(current.read_text())
            sd["shadow_params"] = [shadow[str(i)] for i in range(len(shadow))]
            ema.load_state_dict(sd)
    except Exception as e:  # any damage (truncated, missing, wrong shapes) is one message
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{current} is damaged or missing ({first})") from None
    return step


def complete(root: Path) -> list[Path]:
    """The checkpoint folders under ``root`` (``step_*``), newest first."""
    return sorted(Path(root).glob("step_*"), reverse=True)


def resume(root: Path, load: Callable[[Path], int], say: Callable[[str], None] = print) -> int:
    """Load the newest usable checkpoint under ``root`` with ``load`` (a folder -> step);
    a damaged one is reported and the one before it tried. Returns the step (0: none)."""
    folders = complete(root)
    if not folders:
        say(f"--resume: no checkpoint in {root}, starting from step 0")
        return 0
    for folder in folders:
        try:
            step = load(folder)
        except CheckpointError as e:
            if "pickled" in str(e):
                raise
            say(f"--resume: skipping {folder.name}: {e}")
            continue
        say(f"resumed from {folder} at step {step}")
        return step
    raise CheckpointError(
        f"--resume: no usable checkpoint in {root} (all damaged; see above): start a new run folder"
    )


def open_loss_log(out: Path, step: int) -> TextIO:
    """``out/loss.jsonl`` (one line per step: global-batch loss, lr), opened to append after
    ``step``: lines from a killed run's steps past its last checkpoint are dropped, so a
    resumed run's log is the log of one uninterrupted run."""
    path = out / LOSS_LOG
    kept = []
    if step > 0 and path.is_file():
        for line in path.read_text().splitlines():
            try:
                if json.loads(line)["step"] <= step:
                    kept.append(line + "\n")
            except (json.JSONDecodeError, KeyError, TypeError):
                break  # a line cut by the kill: everything after it is gone too
    out.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(kept))
    return path.open("a")

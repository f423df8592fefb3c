"""A training run killed with SIGKILL and resumed ends with the same weights as one that was
never interrupted (tiny recipe, CPU, same seed)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

STEPS = "24"


def run(out: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "training", "tiny-test", "--out", str(out), "--steps", STEPS]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [*cmd, *extra], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def weights(folder: Path) -> dict[str, torch.Tensor]:
    out = {}
    for f in sorted(folder.rglob("*.safetensors")):
        out.update({f"{f.parent.name}/{k}": v for k, v in load_file(f).items()})
    return out


def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    straight = run(tmp_path / "straight")
    killed = run(tmp_path / "killed")
    marker = tmp_path / "killed" / "checkpoints" / "step_0000004"
    deadline = time.time() + 240
    while not marker.exists() and time.time() < deadline and killed.poll() is None:
        time.sleep(0.05)
    assert marker.exists(), killed.stderr.read() if killed.poll() is not None else "timeout"
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "model").exists()  # it really died mid-run

    resumed = run(tmp_path / "killed", "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    assert straight.wait(timeout=300) == 0, straight.stderr.read()

    a, b = weights(tmp_path / "straight" / "model"), weights(tmp_path / "killed" / "model")
    assert a.keys() == b.keys() and len(a) > 10
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # The loss log is the uninterrupted run's too: the steps logged after the last
    # checkpoint before the kill were dropped on resume and logged again.
    log = (tmp_path / "straight" / "loss.jsonl").read_text()
    assert log.count("\n") == int(STEPS)
    assert (tmp_path / "killed" / "loss.jsonl").read_text() == log
    # Only the newest two checkpoints are kept.
    kept = sorted(p.name for p in (tmp_path / "straight" / "checkpoints").iterdir())
    assert kept == ["step_0000022", f"step_00000{STEPS}"]
    # No pickles anywhere in what the trainer wrote.
    assert not [p for p in tmp_path.rglob("*") if p.suffix in (".pkl", ".bin", ".pt")]
    # The run moved away from its initialisation (the comparison is not of two copies of it).
    from training.recipe import Recipe
    from training.trainer import build_models

    torch.manual_seed(0)
    init, _ = build_models(Recipe.load("tiny-test"))
    moved = [not torch.equal(v, a[f"transformer/{k}"]) for k, v in init.state_dict().items()]
    assert any(moved)


def test_gradient_checkpointing_flag_trains_the_same_run(tmp_path):
    """`--gradient-checkpointing` (recipe field gradient_checkpointing) trades compute for
    memory only: the same losses and the same weights as the plain run."""
    runs = {}
    for name, extra in (("plain", ()), ("ckpt", ("--gradient-checkpointing",))):
        p = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "training",
                "tiny-test",
                "--out",
                str(tmp_path / name),
                "--steps",
                "6",
                *extra,
            ],
            env=dict(os.environ, OMP_NUM_THREADS="1"),
            stderr=subprocess.PIPE,
            text=True,
        )
        assert p.wait(timeout=300) == 0, p.stderr.read()
        runs[name] = tmp_path / name
    logs = {
        k: [json.loads(x)["loss"] for x in (v / "loss.jsonl").read_text().splitlines()]
        for k, v in runs.items()
    }
    assert len(logs["plain"]) == 6
    for a, b in zip(logs["plain"], logs["ckpt"], strict=True):
        assert abs(a - b) <= 1e-6 * abs(a)
    a, b = weights(runs["plain"] / "model"), weights(runs["ckpt"] / "model")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)


def _checkpoints(root: Path, steps: tuple[int, ...]) -> dict[int, torch.Tensor]:
    """Checkpoints of a small module and its optimiser at ``steps`` under ``root``; returns
    each step's weight so a test can tell which one was loaded."""
    from training import checkpoint

    saved = {}
    for step in steps:
        torch.manual_seed(step)
        model = torch.nn.Linear(4, 3)
        opt = torch.optim.AdamW(model.parameters())
        model(torch.randn(2, 4)).sum().backward()
        opt.step()
        checkpoint.write(root / f"step_{step:07d}", step, {"model": model}, opt)
        saved[step] = model.weight.detach().clone()
    return saved


def _loader(model: torch.nn.Module):
    from training import checkpoint

    opt = torch.optim.AdamW(model.parameters())
    return lambda folder: checkpoint.read(folder, {"model": model}, opt)


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_resume_refuses_a_crafted_pickle_without_running_it(tmp_path):
    import pickle

    from training import checkpoint

    root, marker = tmp_path / "checkpoints", tmp_path / "pwned"
    _checkpoints(root, (2, 4))
    (root / "step_0000004" / "custom_checkpoint_0.pkl").write_bytes(pickle.dumps(_Evil(marker)))
    said = []
    try:
        checkpoint.resume(root, _loader(torch.nn.Linear(4, 3)), said.append)
        raise AssertionError("a pickle in the newest checkpoint was not refused")
    except checkpoint.CheckpointError as e:
        assert "never unpickles" in str(e) and "custom_checkpoint_0.pkl" in str(e)
    assert not said  # refused outright, not skipped in favour of step 2
    assert not marker.exists()


def test_the_cli_reports_a_refused_run_folder_in_one_line(tmp_path, capsys):
    import pickle

    from training.__main__ import main

    out, marker = tmp_path / "run", tmp_path / "pwned"
    _checkpoints(out / "checkpoints", (2,))
    (out / "checkpoints" / "step_0000002" / "x.pkl").write_bytes(pickle.dumps(_Evil(marker)))
    assert main(["tiny-test", "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert "never unpickles" in err and "x.pkl" in err and "\n" not in err
    assert "Traceback" not in err and not marker.exists()


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous(tmp_path):
    from training import checkpoint

    root = tmp_path / "checkpoints"
    saved = _checkpoints(root, (2, 4))
    weights_file = root / "step_0000004" / "model.safetensors"
    weights_file.write_bytes(weights_file.read_bytes()[:100])  # truncated
    model, said = torch.nn.Linear(4, 3), []
    assert checkpoint.resume(root, _loader(model), said.append) == 2
    assert "skipping step_0000004" in said[0] and "at step 2" in said[-1]
    assert torch.equal(model.weight, saved[2])
    (root / "step_0000002" / "state.json").unlink()  # incomplete too: nothing usable is left
    try:
        checkpoint.resume(root, _loader(model), said.append)
        raise AssertionError("resumed from damaged checkpoints")
    except checkpoint.CheckpointError as e:
        assert "new run folder" in str(e)


def test_a_run_resumed_past_a_damaged_checkpoint_ends_at_the_uninterrupted_weights(
    tmp_path, capsys
):
    from dataclasses import replace

    from training.recipe import Recipe
    from training.trainer import train

    recipe = replace(Recipe.load("tiny-test"), steps=6)
    straight = train(recipe, tmp_path / "straight")
    train(replace(recipe, stop_at=4), tmp_path / "damaged")  # checkpoints at 2 and 4, "killed"
    newest = tmp_path / "damaged" / "checkpoints" / "step_0000004" / "model.safetensors"
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated
    capsys.readouterr()
    resumed = train(recipe, tmp_path / "damaged", resume=True)
    said = capsys.readouterr().out
    assert "skipping step_0000004" in said and "at step 2" in said  # not a restart from 0
    a, b = weights(straight), weights(resumed)
    assert a.keys() == b.keys() and len(a) > 10
    for k in a:
        assert torch.equal(a[k], b[k]), k

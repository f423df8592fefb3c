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
            [sys.executable, "-m", "training", "tiny-test", "--out", str(tmp_path / name),
             "--steps", "6", *extra],
            env=dict(os.environ, OMP_NUM_THREADS="1"), stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert p.wait(timeout=300) == 0, p.stderr.read()
        runs[name] = tmp_path / name
    logs = {k: [json.loads(x)["loss"] for x in (v / "loss.jsonl").read_text().splitlines()]
            for k, v in runs.items()}  # fmt: skip
    assert len(logs["plain"]) == 6
    for a, b in zip(logs["plain"], logs["ckpt"], strict=True):
        assert abs(a - b) <= 1e-6 * abs(a)
    a, b = weights(runs["plain"] / "model"), weights(runs["ckpt"] / "model")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)


def _tiny(out: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "training", "tiny-test", "--out", str(out), "--steps", "6"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([*cmd, *extra], env=env, capture_output=True, text=True, timeout=300)


def test_resume_refuses_a_crafted_pickle_without_running_it(tmp_path):
    import pickle

    out, marker = tmp_path / "run", tmp_path / "pwned"
    assert _tiny(out, "--steps", "2").returncode == 0
    newest = sorted((out / "checkpoints").glob("step_*"))[-1]

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (newest / "custom_checkpoint_0.pkl").write_bytes(pickle.dumps(Evil()))
    done = _tiny(out, "--resume")
    assert done.returncode == 2, done.stderr
    assert "never unpickles" in done.stderr and "custom_checkpoint_0.pkl" in done.stderr
    assert not marker.exists()
    assert "Traceback" not in done.stderr


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous(tmp_path):
    straight, damaged = tmp_path / "straight", tmp_path / "damaged"
    assert _tiny(straight).returncode == 0
    assert _tiny(damaged, "--steps", "4").returncode == 0  # checkpoints at 2 and 4
    newest = damaged / "checkpoints" / "step_0000004"
    weights_file = newest / "model.safetensors"
    weights_file.write_bytes(weights_file.read_bytes()[:1000])  # truncated
    done = _tiny(damaged, "--resume")
    assert done.returncode == 0, done.stderr
    assert "skipping step_0000004" in done.stderr + done.stdout
    assert "at step 2" in done.stderr + done.stdout
    a, b = weights(straight / "model"), weights(damaged / "model")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # no pickles anywhere in what the trainer wrote
    assert not [p for p in damaged.rglob("*") if p.suffix in (".pkl", ".bin", ".pt")]

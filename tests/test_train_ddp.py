"""`accelerate launch --multi_gpu --num_processes 2` on a CPU-only machine (gloo): two processes
each take half of every global batch, and the run ends with the weights one process reaches
on the whole batch (equal up to float summation order)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

CONFIGS = Path(__file__).parents[1] / "training" / "accelerate"


def test_documented_accelerate_configs_parse():
    """Every config the README points to is one accelerate itself reads."""
    from accelerate.commands.config.config_args import ClusterConfig

    kinds = {
        p.stem: ClusterConfig.from_yaml_file(str(p)).distributed_type.value
        for p in CONFIGS.glob("*.yaml")
    }
    assert kinds == {
        "cpu-2proc": "MULTI_GPU",
        "multi-gpu": "MULTI_GPU",
        "fsdp": "FSDP",
        "multi-node": "MULTI_GPU",
    }


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    f = folder / "model" / "transformer" / "diffusion_pytorch_model.safetensors"
    return load_file(f)


def _losses(folder: Path) -> list[float]:
    lines = (folder / "loss.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["step"] for r in rows] == list(range(1, len(rows) + 1))
    return [r["loss"] for r in rows]


def test_two_cpu_processes_match_one(tmp_path):
    """Same global batch: the 2-process run logs the loss curve of the 1-process run (each
    step's loss reduced over both processes) and ends at the same weights."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    train = ["-m", "training", "tiny-test", "--steps", "12"]
    one = [sys.executable, *train, "--out", str(tmp_path / "one")]
    two = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(CONFIGS / "cpu-2proc.yaml"),
        *train,
        "--out",
        str(tmp_path / "two"),
    ]
    for cmd, n in ((one, 1), (two, 2)):
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        assert f"{n} process(es)" in r.stdout  # really n processes, not n copies of one
    curve1, curve2 = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(curve1) == len(curve2) == 12
    # The curve is a real one (it moves), and the two agree to float summation order.
    assert max(curve1) - min(curve1) > 0.05
    worst_loss = max(abs(a - b) / a for a, b in zip(curve1, curve2, strict=True))
    assert worst_loss < 1e-4, (curve1, curve2)
    a, b = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < 1e-5, worst

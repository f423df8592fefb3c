"""`dit-studio batch`: invalid lines reported by number, SIGKILL mid-run then rerun = every job
exactly once, and 2 processes (accelerate launch, gloo on the CPU) = the same bytes as one."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_app_audio import save_tiny_audio_model

from app.batch import MANIFEST, is_done, parse_jobs
from app.cli import main as cli

ENV = dict(os.environ, OMP_NUM_THREADS="1")
BATCH = [sys.executable, "-m", "app.cli", "batch"]


@pytest.fixture(scope="module")
def jobs_file(tmp_path_factory) -> Path:
    """40 jobs: images from the bundled model and sounds from a tiny audio model, some with
    several outputs, some with seeds and ids, some without."""
    root = tmp_path_factory.mktemp("batch")
    audio = save_tiny_audio_model(root / "tiny-audio")
    rng = random.Random(0)
    lines = []
    for i in range(40):
        if i % 3 == 2:
            job = {
                "prompt": f"a bell, then a click {i}",
                "model": str(audio),
                "steps": 2,
                "duration": rng.choice([0.3, 0.6, 1.1]),
            }
        else:
            job = {
                "prompt": rng.choice(
                    [
                        "a small red circle",
                        "a large blue square",
                        "a green triangle above a yellow circle",
                    ]
                ),
                "modality": "image",
                "steps": 2,
            }
        if i % 4 == 0:
            job["seed"] = i
        if i % 5 == 0:
            job["num_outputs"] = 2
        if i % 7 == 0:
            job["id"] = f"job-{i}"
        lines.append(json.dumps(job))
    path = root / "jobs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _expected_files(jobs_file: Path) -> set[str]:
    jobs, bad = parse_jobs(jobs_file)
    assert len(jobs) == 40 and not bad
    suffix = {True: ".wav", False: ".png"}
    return {
        f"{j.id}-{k:02d}{suffix[j.request.duration is not None]}"
        for j in jobs
        for k in range(j.request.num_outputs)
    }


def _check_complete(out: Path, jobs_file: Path) -> dict[str, bytes]:
    files = {p.name for p in out.iterdir()}
    assert files == _expected_files(jobs_file) | {MANIFEST}  # nothing partial, nothing extra
    records = [json.loads(line) for line in (out / MANIFEST).read_text().splitlines()]
    assert len(records) == 40 and len({r["id"] for r in records}) == 40
    assert all(is_done(r, out) for r in records)  # every file hashes to its record
    return {name: (out / name).read_bytes() for name in files}


def test_invalid_lines_are_reported_and_the_rest_runs(tmp_path, capsys):
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(
        "\n".join(
            [
                '{"prompt": "a large blue square", "steps": 1, "seed": 3}',
                "not json",
                '{"prompt": "x", "steps": 0}',
                '{"prompt": "x", "model": "no-such-model"}',
                '{"prompt": "x", "width": 30}',
                '{"prompt": "x", "colour": "red"}',
                '{"prompt": "x", "modality": "smell"}',
                '{"prompt": "x", "id": "../escape"}',
                "",
                '{"prompt": "a small red circle", "steps": 1, "id": "red"}',
                '{"prompt": "a small red circle", "steps": 1, "id": "red"}',
            ]
        )
    )
    assert cli(["batch", str(jobs), "--out", str(tmp_path / "out"), "--quiet"]) == 1
    err = capsys.readouterr().err
    for line, words in [
        (2, "JSON"),
        (3, "steps=0"),
        (4, "no-such-model"),
        (5, "multiple of 4"),
        (6, "unknown fields"),
        (7, "modality"),
        (8, "id="),
        (11, "already used on line 10"),
    ]:
        assert f"jobs.jsonl:{line}: " in err and words in err.split(f"jobs.jsonl:{line}: ")[1]
    assert "jobs.jsonl:1:" not in err and "jobs.jsonl:10:" not in err
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(names) == 3 and MANIFEST in names and "red-00.png" in names  # + line 1's PNG


def _run_until(cmd: list[str], out: Path, kill_at: int) -> None:
    """Start the batch, SIGKILL it once ``kill_at`` outputs have landed (or it ends)."""
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while proc.poll() is None:
            landed = (
                sum(1 for p in out.glob("*") if p.suffix in (".png", ".wav"))
                if (out.is_dir())
                else 0
            )
            if landed >= kill_at:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        proc.wait(timeout=120)


def test_sigkill_twice_then_rerun_makes_every_job_exactly_once(jobs_file, tmp_path):
    out = tmp_path / "out"
    cmd = [*BATCH, str(jobs_file), "--out", str(out), "--quiet"]
    rng = random.Random(1)
    for kill_at in (rng.randint(3, 15), rng.randint(20, 35)):
        _run_until(cmd, out, kill_at)
        assert not (out / MANIFEST).exists() or all(
            json.loads(line)["id"] for line in (out / MANIFEST).read_text().splitlines()
        )
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "already done" in r.stdout and " 0 already done" not in r.stdout  # really resumed
    _check_complete(out, jobs_file)


def test_two_processes_make_the_same_bytes_as_one(jobs_file, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    r1 = subprocess.run(
        [*BATCH, str(jobs_file), "--out", str(one), "--quiet"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    launch = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "app.cli",
        "batch",
        str(jobs_file),
        "--out",
        str(two),
        "--quiet",
    ]
    r2 = subprocess.run(launch, env=ENV, capture_output=True, text=True, timeout=300)
    assert r1.returncode == 0 and r2.returncode == 0, (r1.stderr + r2.stderr)[-3000:]
    assert "on 2 process(es)" in r2.stdout
    assert _check_complete(one, jobs_file) == _check_complete(two, jobs_file)


def test_huge_numbers_and_overlong_paths_are_bad_lines_not_crashes(tmp_path):
    lines = [
        {"prompt": "a red circle", "guidance": 10**400},
        {"prompt": "a red circle", "loras": [["teal", 10**400]]},
        {"prompt": "a red circle", "model": "m" * 300},
        {"prompt": "a red circle", "loras": [["x" * 5000, 1.0]]},
        {"prompt": "a red circle"},
    ]
    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines))
    jobs, bad = parse_jobs(path)
    assert [b.line for b in bad] == [1, 2, 3, 4] and len(jobs) == 1
    assert jobs[-1].request.prompt == "a red circle"


def test_an_edited_job_with_its_id_runs_again_beside_its_old_files(tmp_path, capsys):
    jobs, out = tmp_path / "jobs.jsonl", tmp_path / "out"
    line = {"prompt": "a small red circle", "steps": 1, "seed": 1, "id": "red"}
    jobs.write_text(json.dumps(line) + "\n")
    args = ["batch", str(jobs), "--out", str(out), "--quiet"]
    assert cli(args) == 0
    first = (out / "red-00.png").read_bytes()
    assert cli(args) == 0 and "1 already done" in capsys.readouterr().out  # unchanged: skipped
    jobs.write_text(json.dumps({**line, "prompt": "a large blue square"}) + "\n")
    assert cli(args) == 0 and " 0 already done" in capsys.readouterr().out  # edited: made again
    assert (out / "red-00.png").read_bytes() == first  # the old output is kept
    assert (out / "red-00-1.png").read_bytes() != first
    assert cli(args) == 0 and "1 already done" in capsys.readouterr().out
    records = [json.loads(t) for t in (out / MANIFEST).read_text().splitlines()]
    assert [r["outputs"][0]["path"] for r in records] == ["red-00.png", "red-00-1.png"]
    jobs.write_text(json.dumps(line) + "\n")  # edited back: its first record still holds
    assert cli(args) == 0 and "1 already done" in capsys.readouterr().out

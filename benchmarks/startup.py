"""Cold start-up of the command line: ``python -m benchmarks.startup``.

Each command runs as a fresh process (what a user pays per invocation), ``--reps`` times; the
table gives the median and the target beside it: ``dit-studio --help`` at most 1.5x a bare
``python -c pass`` plus 0.5 s (it imports no torch), and the README's first ``generate`` at most
2x ``import torch`` alone (it imports only what it needs: no ``torch._dynamo``, no Gradio).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .__main__ import table

HEADER = ["command", "median s", "min s", "target s", "meets"]
README_PROMPT = "a small red circle on the left"


def _cli() -> list[str]:
    """The installed entry point next to this interpreter, else ``python -m app``."""
    exe = Path(sys.executable).with_name("dit-studio")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "app"]


def cold(cmd: list[str], reps: int) -> list[float]:
    """Wall seconds of ``reps`` fresh runs of ``cmd`` (output discarded; a failure raises)."""
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        out.append(time.perf_counter() - t0)
    return out


def rows(reps: int) -> list[list[str]]:
    py, gen = sys.executable, f'dit-studio generate "{README_PROMPT}" --seed 0'
    with tempfile.TemporaryDirectory() as tmp:
        runs = {
            "python -c pass": cold([py, "-c", "pass"], reps),
            "python -c 'import torch'": cold([py, "-c", "import torch"], reps),
            "dit-studio --help": cold([*_cli(), "--help"], reps),
            gen: cold([*_cli(), "generate", README_PROMPT, "--seed", "0", "--out", tmp], reps),
        }
    med = {k: statistics.median(v) for k, v in runs.items()}
    targets = {
        "dit-studio --help": 1.5 * med["python -c pass"] + 0.5,
        gen: 2 * med["python -c 'import torch'"],
    }
    table_rows = []
    for name, times in runs.items():
        target = targets.get(name)
        meets = "" if target is None else ("yes" if med[name] <= target else "NO")
        table_rows.append(
            [
                name,
                f"{med[name]:.2f}",
                f"{min(times):.2f}",
                "" if target is None else f"{target:.2f}",
                meets,
            ]
        )
    return table_rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args(argv)
    if args.reps < 1:
        ap.error("--reps must be at least 1")
    print(f"Cold start-up, median of {args.reps} fresh processes")
    print(table(HEADER, rows(args.reps)))


if __name__ == "__main__":
    main()

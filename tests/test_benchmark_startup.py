"""The start-up benchmark runs each command as a fresh process and prints its targets."""

import subprocess
import sys

import pytest

from benchmarks import startup


def test_cold_times_every_rep_and_a_failing_command_raises():
    times = startup.cold([sys.executable, "-c", "pass"], 2)
    assert len(times) == 2 and all(t > 0 for t in times)
    with pytest.raises(subprocess.CalledProcessError):
        startup.cold([sys.executable, "-c", "raise SystemExit(3)"], 1)


def test_table_has_the_targets_of_the_two_commands(capsys):
    startup.main(["--reps", "1"])
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith("| ")][1:]  # rows after the header
    assert len(lines) == 4
    cells = {ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[2:-1]] for ln in lines}
    assert cells["python -c pass"][2:] == ["", ""]  # references: no target
    help_row = cells["dit-studio --help"]
    bare = float(cells["python -c pass"][0])
    assert float(help_row[2]) == pytest.approx(1.5 * bare + 0.5, abs=0.011)
    assert help_row[3] in ("yes", "NO")
    gen = next(v for k, v in cells.items() if k.startswith("dit-studio generate"))
    torch_s = float(cells["python -c 'import torch'"][0])
    assert float(gen[2]) == pytest.approx(2 * torch_s, abs=0.011) and gen[3] in ("yes", "NO")

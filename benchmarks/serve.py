"""A real `dit-studio app` process on a free loopback port, for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(outputs: Path, *extra: str, timeout: float = 60.0):
    """Start the app (a subprocess: forking a process that already runs torch can hang), wait
    until it serves the page; yields (url, process, seconds to first page)."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "app.cli",
        "app",
        "--port",
        str(port),
        "--outputs",
        str(outputs),
        *extra,
    ]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    outputs.parent.mkdir(parents=True, exist_ok=True)
    log = open(outputs.parent / f"app-{port}.log", "w")  # noqa: SIM115 (closed below)
    tic = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"app exited: {Path(log.name).read_text()[-2000:]}")
            if time.perf_counter() - tic > timeout:
                raise TimeoutError(f"app did not serve {url} in {timeout} s")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        yield url, proc, time.perf_counter() - tic
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")

"""``python -m benchmarks.app``: the web studio's start-up time and a loopback load test.

Starts real ``dit-studio app`` processes on 127.0.0.1 and prints two tables: seconds from the
command to a served page (median of ``--starts``), and ``--clients`` concurrent gradio_client
users each sending ``--requests`` requests in turn (all served? none lost? the queue position
each waiting client saw, latencies, the server's peak memory).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .serve import peak_rss_mib, running_app

REQUEST = dict(
    model="shapes-t2i",
    prompt="a green triangle above a yellow circle",
    negative_prompt="",
    seed=0,
    random_seed=False,
    steps=4,
    guidance=3.0,
    solver="heun",
    width=32,
    height=32,
    num_outputs=1,
)


@dataclass
class LoadResult:
    sent: int = 0
    served: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    max_rank_seen: int = 0  # the largest queue position any waiting client was told
    ranks_reported: int = 0
    peak_server_mib: float = 0.0
    seconds: float = 0.0

    @property
    def lost(self) -> int:
        return self.sent - self.served - len(self.errors)


def load_test(
    url: str, pid: int, clients: int = 16, requests: int = 5, steps: int = 4
) -> LoadResult:
    from gradio_client import Client

    result, lock = LoadResult(), threading.Lock()

    def user(index: int) -> None:
        client = Client(url, verbose=False)
        for k in range(requests):
            tic = time.perf_counter()
            with lock:
                result.sent += 1
            try:
                job = client.submit(
                    **{**REQUEST, "seed": 1000 * index + k, "steps": steps}, api_name="/generate"
                )
                while not job.done():
                    status = job.status()
                    if status.rank is not None and status.rank > 0:
                        with lock:
                            result.ranks_reported += 1
                            result.max_rank_seen = max(result.max_rank_seen, status.rank)
                    time.sleep(0.2)
                _, files, text, _ = job.result()
                if "Done" not in text or len(files) != 1:
                    raise RuntimeError(f"unexpected reply {text!r}")
                with lock:
                    result.served += 1
                    result.latencies.append(time.perf_counter() - tic)
            except Exception as e:  # counted and reported, never lost
                with lock:
                    result.errors.append(f"{type(e).__name__}: {e}")

    tic = time.perf_counter()
    threads = [threading.Thread(target=user, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    result.seconds = time.perf_counter() - tic
    result.peak_server_mib = peak_rss_mib(pid)
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.app", description=__doc__)
    ap.add_argument("--starts", type=int, default=3, help="app starts to time")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=5, help="requests per client, in turn")
    ap.add_argument("--steps", type=int, default=4, help="sampling steps per request")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        starts = []
        for i in range(args.starts):
            with running_app(Path(tmp) / f"start{i}" / "outputs") as (_, _, seconds):
                starts.append(seconds)
        print("| app start -> page served (s) | median | min | max |")
        print("|---|---|---|---|")
        print(
            f"| {args.starts} starts | {statistics.median(starts):.1f} | {min(starts):.1f} | "
            f"{max(starts):.1f} |\n"
        )
        with running_app(Path(tmp) / "load" / "outputs") as (url, proc, _):
            r = load_test(url, proc.pid, args.clients, args.requests, args.steps)
    lat = sorted(r.latencies) or [float("nan")]
    print(
        "| clients x requests | sent | served | errors | lost | max queue position seen | "
        "p50 latency (s) | p95 latency (s) | wall (s) | server peak RSS (MiB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.clients} x {args.requests} | {r.sent} | {r.served} | {len(r.errors)} | "
        f"{r.lost} | {r.max_rank_seen} | {lat[len(lat) // 2]:.2f} | "
        f"{lat[int(len(lat) * 0.95)]:.2f} | {r.seconds:.1f} | {r.peak_server_mib:.0f} |"
    )
    for e in r.errors[:5]:
        print("error:", e)


if __name__ == "__main__":
    main()

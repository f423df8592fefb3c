"""``dit-studio``: the command line. Subcommands arrive with their features (generate, app,
batch, train, eval); ``bench`` prints the core speed tables now."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import PackageNotFoundError, version


def _version() -> str:
    try:
        return version("dit-studio")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="dit-studio",
        description="DiT Studio: generate images, video and audio with small diffusion "
        "transformers, offline, on a CPU or a GPU.",
    )
    ap.add_argument("--version", action="version", version=f"dit-studio {_version()}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    bench = sub.add_parser(
        "bench",
        help="print speed tables: the DiT core vs diffusers, and the attention backends",
        add_help=False,
    )
    bench.add_argument("args", nargs=argparse.REMAINDER)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.command == "bench":
        from benchmarks.__main__ import main as bench_main

        bench_main(args.args)
        return 0
    ap.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``convlayers bench``: time convlayers against PyTorch on this machine."""

from __future__ import annotations

import argparse

HELP = "benchmark convlayers against PyTorch (and scipy/OpenCV filters) on this machine"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--full", action="store_true",
                        help="every case: models at batch 8, backward, a training step, filters, memory and "
                             "start-up (several minutes); default is a quick run of the forward ops")
    parser.add_argument("--threads", type=int, default=2, help="threads for both sides (default 2)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per case (default 5 quick, 7 full)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")


def run(args) -> int:
    from ..cli import UsageError, check_writable

    if args.json is not None:
        check_writable(args.json, "--json")   # refused now, not after minutes of timing
    if args.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {args.threads}")
    repeats = args.repeats if args.repeats is not None else (7 if args.full else 5)
    if repeats < 1:
        raise UsageError(f"--repeats must be at least 1, got {repeats}")
    try:
        import threadpoolctl  # noqa: F401
        import torch  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"convlayers bench needs PyTorch and threadpoolctl: pip install 'convlayers[bench]' "
                         f"({exc})") from None
    from ..benchmark import run as run_benchmark

    run_benchmark(threads=args.threads, repeats=repeats, quick=not args.full, out_path=args.json)
    return 0

"""The ``convlayers`` command: one entry point, one module per subcommand.

Each subcommand lives in ``convlayers.commands.<name>`` and provides
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
Heavy imports (matplotlib, numba kernels, torch) happen inside ``run`` so that
``convlayers --help`` answers at once.

Exit codes: 0 success, 1 bad input file or failed run, 2 usage error.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Subcommand name -> module under convlayers.commands, in the order --help lists them.
COMMANDS = {
    "filters": "filters",
    "summary": "summary",
    "compare": "compare",
    "train": "train",
    "demo": "demo",
    "bench": "bench",
    "run": "run",
}


class UsageError(Exception):
    """Raised by a subcommand for a bad argument value; exits with status 2."""


class InputError(Exception):
    """Raised by a subcommand for an unreadable or invalid input file; exits with status 1."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convlayers",
        description="The layers of a CNN from scratch: filters, training, summaries and benchmarks.")
    from . import __version__
    parser.add_argument("--version", action="version", version=f"convlayers {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"convlayers.commands.{module_name}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except UsageError as exc:
        parser.exit(2, f"convlayers {args.command}: error: {exc}\n")
    except InputError as exc:
        print(f"convlayers {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

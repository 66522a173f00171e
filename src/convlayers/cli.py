"""The ``convlayers`` command: one entry point, one module per subcommand.

Each subcommand lives in ``convlayers.commands.<name>`` and provides
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
Heavy imports (matplotlib, numba kernels, torch) happen inside ``run`` so that
``convlayers --help`` answers at once.

Exit codes: 0 success, 1 bad input file or failed run, 2 usage error.

Every failure is one line on stderr, ``convlayers <command>: error: <what>``,
never a traceback: :func:`main` maps the exceptions a command can meet
(:class:`UsageError`, :class:`InputError`, ``ValueError``/``TypeError`` from
the library's validation, ``OSError``, ``MemoryError``, a missing optional
package) to that line and an exit code; anything else is reported the same
way as an internal error.  ``CONVLAYERS_TRACEBACK=1`` re-raises instead, for
debugging.  :func:`check_writable` lets a command refuse an unwritable output
before it starts long work.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile

# Subcommand name -> module under convlayers.commands, in the order --help lists them.
COMMANDS = {
    "filters": "filters",
    "summary": "summary",
    "compare": "compare",
    "train": "train",
    "demo": "demo",
    "bench": "bench",
    "run": "run",
    "explain": "explain",
    "classify": "classify",
    "faces": "faces",
}


class UsageError(Exception):
    """Raised by a subcommand for a bad argument value; exits with status 2."""


class InputError(Exception):
    """Raised by a subcommand for an unreadable or invalid input file; exits with status 1."""


# Optional packages -> the extra that installs them (pyproject.toml), for the one-line "missing package" error.
_EXTRAS = {"matplotlib": "plot", "tqdm": "train", "safetensors": "train", "threadpoolctl": "fast",
           "torch": "torch", "scipy": "bench", "onnx": "onnx", "onnxruntime": "test", "dask": "dask",
           "distributed": "dask", "zarr": "dask", "tifffile": "dask", "dask_image": "test"}


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (no usage block) pointing at ``--help``; exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see '{self.prog} --help')\n")


def _one_line(text) -> str:
    return " ".join(str(text).split()) or "(no message)"


def missing_extra_message(exc: ImportError):
    """``"needs the optional package 'x': pip install 'convlayers[extra]'"`` for a known extra, else None."""
    name = (getattr(exc, "name", None) or "").partition(".")[0]
    if name not in _EXTRAS:
        return None
    return f"needs the optional package {name!r}: pip install 'convlayers[{_EXTRAS[name]}]'"


def check_writable(path, option: str, suffixes=None) -> str:
    """Refuse (:class:`UsageError`) an output path that cannot be written, before any long work.

    Checks that the directory exists and accepts a new file (by creating and
    removing an empty temporary file there: permission bits alone say nothing
    for root or on read-only mounts), that ``path`` is not a directory, and,
    if given, that it ends in one of ``suffixes``.  Returns the path as a str.
    """
    path = os.fspath(path)
    if suffixes and not path.endswith(tuple(suffixes)):
        raise UsageError(f"{option}: PATH must end in {' or '.join(suffixes)}, got {path!r}")
    if os.path.isdir(path):
        raise UsageError(f"{option}: {path!r} is a directory; give a file name")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UsageError(f"{option}: directory {directory!r} does not exist")
    try:
        fd, probe = tempfile.mkstemp(prefix=".convlayers-probe-", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"{option}: cannot write in {directory!r}: {exc.strerror or exc}") from None
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise UsageError(f"{option}: {path!r} exists and is not writable")
    return path


def _failure(exc: BaseException):
    """(exit code, one-line message) for an exception escaping a command."""
    if isinstance(exc, UsageError):
        return 2, _one_line(exc)
    if isinstance(exc, ImportError):
        return 1, missing_extra_message(exc) or _one_line(exc)
    if isinstance(exc, MemoryError):
        return 1, f"out of memory{': ' + _one_line(exc) if str(exc) else ''} (the input is too large for this machine)"
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        return 1, f"{where}{exc.strerror or _one_line(exc)}"
    if isinstance(exc, (InputError, ValueError, TypeError, FloatingPointError)):
        return 1, _one_line(exc)
    return 1, f"internal error: {type(exc).__name__}: {_one_line(exc)} (CONVLAYERS_TRACEBACK=1 shows where)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="convlayers",
        description="The layers of a CNN from scratch: filters, training, summaries and benchmarks.")
    from . import __version__
    parser.add_argument("--version", action="version", version=f"convlayers {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"convlayers.commands.{module_name}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run, _parser=p)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:   # reported by the subcommand's parser, so the line names the command and its --help
        getattr(args, "_parser", parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:   # e.g. `convlayers summary resnet18 | head`: the reader left; say nothing
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 1
    except Exception as exc:  # noqa: BLE001 -- one line per failure is the CLI's contract
        if os.environ.get("CONVLAYERS_TRACEBACK"):
            raise
        code, message = _failure(exc)
        if code == 2:   # a usage error: SystemExit(2), as argparse's own errors
            parser.exit(2, f"convlayers {args.command}: error: {message}\n")
        print(f"convlayers {args.command}: error: {message}", file=sys.stderr, flush=True)
        return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

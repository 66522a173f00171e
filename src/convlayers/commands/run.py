"""``convlayers run``: run an ONNX model on .npy inputs and save its outputs."""

from __future__ import annotations

import argparse
import os

HELP = "run an ONNX model on .npy input(s) and write its output(s) (.npy, or .npz for several)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="an .onnx file (external weight files beside it are read)")
    parser.add_argument("--input", action="append", required=True, metavar="[NAME=]FILE.npy",
                        help="an input array; NAME= picks the graph input (needed when there are several)")
    parser.add_argument("--out", required=True, metavar="FILE",
                        help="where to write: .npy for one output, .npz for all outputs by name")


def _read_inputs(specs, model):
    import numpy as np

    from ..cli import InputError, UsageError

    names = [v.name for v in model.inputs]
    feeds = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or os.path.exists(spec):
            name, path = None, spec
        if name is None:
            if len(specs) != 1 or len(names) != 1:
                raise UsageError(f"--input: the model has inputs {names}; give each as NAME=FILE.npy")
            name = names[0]
        if name not in names:
            raise UsageError(f"--input: unknown input {name!r}; the model's inputs are {names}")
        try:
            feeds[name] = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"--input {path}: cannot read a .npy array ({exc})") from None
        if not isinstance(feeds[name], np.ndarray):
            raise InputError(f"--input {path}: expected a .npy array, got an archive")
    return feeds


def _write_atomic(path, writer):
    """Write through a temporary file beside ``path``, renamed into place only when complete."""
    import tempfile

    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".convlayers-", suffix=os.path.splitext(path)[1], dir=directory)
    os.close(fd)
    try:
        writer(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def run(args) -> int:
    import numpy as np

    from ..cli import InputError, UsageError

    out = args.out
    if not out.endswith((".npy", ".npz")):
        raise UsageError(f"--out: expected a .npy or .npz file name, got {out!r}")
    if not os.path.isdir(os.path.dirname(os.path.abspath(out))):
        raise UsageError(f"--out: directory of {out!r} does not exist")
    try:
        from ..onnx import load
    except ImportError as exc:
        raise InputError(str(exc)) from None
    try:
        model = load(args.model)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{args.model}: {exc}") from None
    feeds = _read_inputs(args.input, model)
    try:
        results = model.run(None, feeds)
    except (ValueError, TypeError) as exc:
        raise InputError(str(exc)) from None
    names = [v.name for v in model.outputs]
    if out.endswith(".npy"):
        if len(results) != 1:
            raise UsageError(f"--out: the model has {len(results)} outputs {names}; write them to a .npz file")
        _write_atomic(out, lambda p: np.save(p, results[0], allow_pickle=False))
    else:
        _write_atomic(out, lambda p: np.savez(p, **dict(zip(names, results))))
    for name, r in zip(names, results):
        print(f"{name}: {r.dtype} {list(r.shape)}")
    return 0

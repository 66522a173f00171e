"""``convlayers summary``: layer-by-layer shapes, parameters, MACs and receptive fields of a model."""

from __future__ import annotations

import argparse

HELP = "print a model's layers with output shapes, parameters, MACs and receptive fields"

# Builders in convlayers.models that take no required argument, and the input each expects by default.
_DEFAULT_INPUTS = {"digits_cnn": (1, 1, 8, 8)}
_DEFAULT_INPUT = (1, 3, 224, 224)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model",
                        help="a model in convlayers.models (mobilenet_v2, resnet18, digits_cnn) or "
                             "'package.module:callable' returning a convlayers.nn.Module, or an .onnx file")
    parser.add_argument("--input", default=None, metavar="N,C,H,W",
                        help="input shape, comma-separated (default 1,3,224,224; 1,1,8,8 for digits_cnn)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")


def model_names() -> list[str]:
    """The builders of :mod:`convlayers.models` usable by name (functions, lower-case)."""
    from .. import models

    return [n for n in models.__all__ if n.islower() and callable(getattr(models, n))
            and n != "make_divisible"]


def parse_shape(text: str, option: str = "--input") -> tuple[int, ...]:
    """``'1,3,224,224'`` -> ``(1, 3, 224, 224)``; UsageError naming ``option`` otherwise."""
    from ..cli import UsageError

    parts = [p.strip() for p in text.replace("x", ",").split(",")]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise UsageError(f"{option}: expected comma-separated positive integers such as 1,3,224,224, "
                         f"got {text!r}") from None
    if not shape or any(v < 1 for v in shape):
        raise UsageError(f"{option}: sizes must be positive integers, got {text!r}")
    return shape


def _import_from_cwd(spec, module_name):
    """Import ``module_name`` as ``python -m`` would: the current directory first on the path."""
    import importlib
    import os
    import sys

    from ..cli import InputError, UsageError

    added = os.getcwd() not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise UsageError(f"model: cannot load {spec!r}: no module named {exc.name!r} "
                             f"(looked in the current directory and the installed packages)") from None
        raise InputError(f"model: importing {module_name!r} failed: {exc}") from None
    except (ValueError, TypeError) as exc:   # e.g. an empty or relative module name
        raise UsageError(f"model: cannot load {spec!r}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 -- the user's module failed while importing: one line, exit 1
        raise InputError(f"model: importing {module_name!r} failed: {type(exc).__name__}: {exc}") from None
    finally:
        if added:
            sys.path.remove(os.getcwd())


def load_model(spec: str):
    """A Module from a model name in convlayers.models or ``package.module:callable``."""
    import importlib

    from ..cli import InputError, UsageError
    from ..nn import Module

    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        obj = _import_from_cwd(spec, module_name)
        try:
            for part in attr.split("."):
                obj = getattr(obj, part)
        except AttributeError as exc:
            raise UsageError(f"model: cannot load {spec!r}: {exc}") from None
        name = spec
    else:
        names = model_names()
        if spec not in names:
            raise UsageError(f"model: unknown model {spec!r}; choose from {', '.join(names)} "
                             f"or give 'package.module:callable'")
        from .. import models

        obj, name = getattr(models, spec), spec
    if not isinstance(obj, Module):
        if not callable(obj):
            raise UsageError(f"model: {name!r} is neither a Module nor callable")
        try:
            obj = obj()
        except TypeError as exc:
            raise UsageError(f"model: calling {name!r} with no arguments failed: {exc}") from None
        except Exception as exc:  # noqa: BLE001 -- the user's builder failed: one line, exit 1
            raise InputError(f"model: calling {name!r} failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(obj, Module):
        raise UsageError(f"model: {name!r} returned {type(obj).__name__}, not a convlayers.nn.Module")
    return obj


def run(args) -> int:
    import json

    from ..analysis import summary
    from ..cli import UsageError

    if args.model.lower().endswith(".onnx"):  # an ONNX file: the graph's table (convlayers.onnx.summary)
        from ..onnx.summary import run_command
        return run_command(args)
    model = load_model(args.model)
    if args.input is not None:
        shape = parse_shape(args.input)
    else:
        shape = _DEFAULT_INPUTS.get(args.model, _DEFAULT_INPUT)
    try:
        result = summary(model, shape)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"--input {','.join(map(str, shape))} does not fit {args.model}: {exc}") from None
    if args.json:
        print(json.dumps(result.to_dict(), indent=1))
    else:
        print(f"{args.model} on input {list(shape)}")
        print(result)
    return 0

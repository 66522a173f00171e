"""The operator table: ONNX op type -> implementation, the opsets it covers, and a load-time check.

An implementation is ``fn(node, *inputs)`` with ``None`` for omitted
optional inputs; it returns an array or a tuple of arrays (one per output).
``check(node, graph_constants)``, when given, returns a reason string for a
node the implementation cannot run (an attribute value it does not cover),
so that :func:`convlayers.onnx.load` lists it with the unsupported ops,
before any work.
"""

from __future__ import annotations

import numpy as np

from ... import functional as F

__all__ = ["OPS", "register", "has_functional", "int_list"]

OPS = {}
# The first opset this package reads; ops added later start at their own version.  Opsets 1-6 differ
# from 7 only in attributes the ops read where they matter (legacy ``broadcast``/``axis`` on arithmetic,
# Reshape's ``shape`` attribute, ``is_test``); PyTorch's converted test models in the onnx wheel are opset 6.
MIN_OPSET = 1


def newest_opset():
    try:
        import onnx
        return int(onnx.defs.onnx_opset_version())
    except ImportError:  # pragma: no cover
        return 23


def has_functional(*names):
    """True when every ``convlayers.functional`` op in ``names`` exists (some land on other branches)."""
    return all(hasattr(F, n) for n in names)


def register(*op_types, since=MIN_OPSET, check=None, needs=()):
    """Decorator: register ``fn`` for ``op_types`` when the functional ops ``needs`` exist."""
    def deco(fn):
        if has_functional(*needs):
            for op in op_types:
                OPS[op] = (fn, since, check)
        return fn
    return deco


def int_list(value):
    return [int(v) for v in np.asarray(value).reshape(-1)]

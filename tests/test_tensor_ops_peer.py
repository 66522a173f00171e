"""PyTorch's OpInfo samples and error inputs for the Tensor operations (``convlayers.cat`` ... and the
Tensor methods): forward in float32/float64, gradients vs torch's autograd, and the refused calls."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from _peer import op_error_cases, op_samples

import convlayers as cl
from convlayers import Tensor


def _tensor(x):
    return x if isinstance(x, Tensor) else Tensor(np.asarray(x))


def method(name):
    def call(x, *args, **kwargs):
        return getattr(_tensor(x), name)(*args, **kwargs)
    call.__name__ = name
    return call


OPS = {
    ("cat", ""): cl.cat,
    ("stack", ""): cl.stack,
    ("split", ""): cl.split,
    ("split", "list_args"): cl.split,
    ("chunk", ""): cl.chunk,
    ("flatten", ""): cl.flatten,
    ("where", ""): lambda x, condition, other: cl.where(condition, x, other),
    ("clamp", ""): cl.clamp,
    ("maximum", ""): cl.maximum,
    ("minimum", ""): cl.minimum,
    ("max", "reduction_with_dim"): cl.max,
    ("max", "reduction_no_dim"): cl.max,
    ("max", "binary"): cl.max,
    ("min", "reduction_with_dim"): cl.min,
    ("min", "reduction_no_dim"): cl.min,
    ("min", "binary"): cl.min,
    ("argmax", ""): cl.argmax,
    ("exp", ""): cl.exp,
    ("log", ""): cl.log,
    ("sqrt", ""): cl.sqrt,
    ("abs", ""): cl.abs,
    ("matmul", ""): cl.matmul,
    ("eq", ""): cl.eq, ("ne", ""): cl.ne, ("lt", ""): cl.lt, ("le", ""): cl.le, ("gt", ""): cl.gt,
    ("ge", ""): cl.ge,
    ("permute", ""): method("permute"),
    ("transpose", ""): method("transpose"),
    ("view", ""): method("view"),
    ("reshape", ""): method("reshape"),
    ("squeeze", ""): method("squeeze"),
    ("squeeze", "multiple"): method("squeeze"),
    ("unsqueeze", ""): method("unsqueeze"),
    ("expand", ""): method("expand"),
    ("contiguous", ""): method("contiguous"),
    ("mean", ""): method("mean"),
    ("sum", ""): method("sum"),
    ("var", ""): method("var"),
    ("var", "unbiased"): method("var"),
}
NO_GRAD = {"argmax", "eq", "ne", "lt", "le", "gt", "ge"}


def _params(kind):
    for (name, variant), fn in OPS.items():
        tag = f"{name}{'-' + variant if variant else ''}"
        if kind == "error":
            for case in op_error_cases(name, variant):
                yield pytest.param(case, fn, id=f"{tag}-{case}")
            continue
        if kind == "grad" and name in NO_GRAD:
            continue
        for case in op_samples(name, variant):
            yield pytest.param(case, fn, id=f"{tag}-{case}")


@pytest.mark.parametrize("case, fn", list(_params("forward")))
def test_forward(case, fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        case.check(fn)


@pytest.mark.parametrize("case, fn", list(_params("grad")))
def test_grad(case, fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        case.check_grad(fn)


@pytest.mark.parametrize("case, fn", list(_params("error")))
def test_error(case, fn):
    case.check(fn)

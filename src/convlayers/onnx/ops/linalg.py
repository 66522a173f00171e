"""Products and reductions: MatMul, Gemm, Einsum, Reduce*, ArgMax/ArgMin.

Float products go through ``functional._threads.matmul`` (the worker threads
with one-thread BLAS that the convolutions use) or
:func:`convlayers.functional.linear` for Gemm in PyTorch's ``x·Wᵀ + b``
form; Gemm's weight is transposed once at load by the optimizer when that
helps (see ``optimize.prepack``).
"""

from __future__ import annotations

import numpy as np

from ... import functional as F
from ...functional import _prepared_linear, _threads
from ._registry import int_list, register


def _matmul(a, b):
    if a.dtype.kind == "f" and a.dtype == b.dtype and a.ndim >= 2 and b.ndim >= 2:
        return _threads.matmul(a, b)
    return np.matmul(a, b)


@register("MatMul", since=1)
def matmul(node, a, b):
    return _matmul(a, b)


@register("Gemm", since=1)
def gemm(node, a, b, c=None):
    alpha, beta = float(node.attr("alpha", 1.0)), float(node.attr("beta", 1.0))
    ta, tb = int(node.attr("transA", 0)), int(node.attr("transB", 0))
    if node.attr("_bt") is not None:  # pre-transposed weight (optimize.prepack): B is stored as Bᵀ
        b, tb = node.attrs["_bt"], 1 - tb
    if ta == 0 and tb == 1 and alpha == 1.0 and beta == 1.0 and a.dtype.kind == "f" \
            and (c is None or c.ndim == 1 and c.shape[0] == b.shape[0]):
        if "_prepared" in node.attrs and c is node.attrs.get("_c_seen", c):
            run = node.attrs["_prepared"]
            if run == "":  # first call: pack the constant weight (and bias) once for the fused kernel
                run = node.attrs["_prepared"] = _prepared_linear.prepare(b, c) or None
                node.attrs["_c_seen"] = c
            y = run(a) if run is not None else None
            if y is not None:
                return y
        return F.linear(a, b, c)
    y = _matmul(a.T if ta else a, b.T if tb else b)
    if alpha != 1.0:
        y = y * y.dtype.type(alpha)
    if c is not None and beta != 0.0:
        y = y + (c * c.dtype.type(beta) if beta != 1.0 else c)
    return y.astype(a.dtype, copy=False)


@register("Einsum", since=12)
def einsum(node, *xs):
    return np.einsum(node.attr("equation").replace(" ", ""), *xs, optimize=len(xs) > 2)


# --------------------------------------------------------------------------- reductions

def _reduce_axes(node, x, axes):
    """Axes from the attribute (before opset 18; 13 for ReduceSum) or the input, or None for all."""
    moved = 13 if node.op_type == "ReduceSum" else 18
    if node.opset < moved:
        axes = node.attr("axes")
    if axes is None or np.asarray(axes).size == 0:
        if int(node.attr("noop_with_empty_axes", 0)) and node.opset >= moved:
            return ()
        return None
    return tuple(a % x.ndim for a in int_list(axes))


def _reducer(op_type, fn, empty=None):
    @register(op_type, since=1)
    def reduce(node, x, axes=None):
        axes = _reduce_axes(node, x, axes)
        keep = bool(node.attr("keepdims", 1))
        if axes == ():
            return fn(x, None, True, True) if op_type in _NOOP_TRANSFORM else x.copy()
        return np.asarray(fn(x, axes, keep, False)).astype(x.dtype, copy=False)
    reduce.__name__ = op_type.lower()
    return reduce


def _empty_safe(np_fn, identity):
    def fn(x, axes, keep, noop):
        if x.size == 0:
            shape = [1 if (axes is None or i in axes) else d for i, d in enumerate(x.shape)]
            fill = identity > 0 if x.dtype == bool else identity
            out = np.full(shape, fill, dtype=x.dtype)
            return out if keep else out.reshape([d for i, d in enumerate(x.shape)
                                                 if not (axes is None or i in axes)])
        return np_fn(x, axis=axes, keepdims=keep)
    return fn


def _log_sum_exp(x, axes, keep, noop):
    if noop:
        return np.log(np.exp(x))
    m = np.max(x, axis=axes, keepdims=True) if x.size else np.zeros(1, x.dtype)
    m = np.where(np.isfinite(m), m, 0)
    s = np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True)) + m
    return s if keep else np.squeeze(s, axis=axes) if axes is not None else s.reshape(())


_NOOP_TRANSFORM = {"ReduceSumSquare": lambda x: x * x, "ReduceL1": np.abs, "ReduceL2": np.abs,
                   "ReduceLogSum": np.log, "ReduceLogSumExp": None}

_reducer("ReduceMean", lambda x, a, k, n: np.mean(x, axis=a, keepdims=k))
_reducer("ReduceMax", _empty_safe(np.max, -np.inf))
_reducer("ReduceMin", _empty_safe(np.min, np.inf))
_reducer("ReduceSum", _empty_safe(np.sum, 0))
_reducer("ReduceProd", _empty_safe(np.prod, 1))
_reducer("ReduceSumSquare", lambda x, a, k, n: x * x if n else np.sum(x * x, axis=a, keepdims=k))
_reducer("ReduceL1", lambda x, a, k, n: np.abs(x) if n else np.sum(np.abs(x), axis=a, keepdims=k))
_reducer("ReduceL2", lambda x, a, k, n: np.abs(x) if n else np.sqrt(np.sum(x * x, axis=a, keepdims=k)))
_reducer("ReduceLogSum", lambda x, a, k, n: np.log(x) if n else np.log(np.sum(x, axis=a, keepdims=k)))
_reducer("ReduceLogSumExp", _log_sum_exp)


def _arg(op_type, np_fn):
    @register(op_type, since=1)
    def arg(node, x):
        axis = int(node.attr("axis", 0)) % x.ndim
        keep = bool(node.attr("keepdims", 1))
        if int(node.attr("select_last_index", 0)):
            flipped = np.flip(x, axis)
            idx = x.shape[axis] - 1 - np_fn(flipped, axis=axis)
        else:
            idx = np_fn(x, axis=axis)
        idx = idx.astype(np.int64)
        return np.expand_dims(idx, axis) if keep else idx
    arg.__name__ = op_type.lower()
    return arg


_arg("ArgMax", np.argmax)
_arg("ArgMin", np.argmin)

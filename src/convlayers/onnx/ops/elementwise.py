"""Element-wise arithmetic, comparisons, logic, Where and Cast: plain NumPy with ONNX's broadcasting.

ONNX's multidirectional broadcasting is NumPy's, so these are one ufunc call
each; the differences are dtype rules: integer ``Div`` truncates toward
zero (C semantics, not Python's floor), ``Pow`` keeps the base's type, and
comparisons return bool.
"""

from __future__ import annotations

import numpy as np

from ..._kernels import elementwise as _ek
from ._registry import register


def _same(x, y):
    """``y`` as ``x``'s dtype when it is a Python-ish scalar constant of another float width."""
    return y.astype(x.dtype, copy=False) if y.dtype != x.dtype and x.dtype.kind == y.dtype.kind == "f" else y


def legacy_broadcast(node, a, b):
    """Before opset 7, ``broadcast=1`` with ``axis`` aligned ``b``'s axes with ``a``'s from ``axis`` on."""
    if node.opset < 7 and int(node.attr("broadcast", 0)) and node.attr("axis") is not None and b.ndim:
        axis = int(node.attr("axis")) % a.ndim
        b = b.reshape(b.shape + (1,) * (a.ndim - axis - b.ndim))
    return b


def _binary(op_type, ufunc):
    @register(op_type, since=1)
    def fn(node, a, b):
        b = legacy_broadcast(node, a, b)
        r = ufunc(a, _same(a, b))
        return r.astype(a.dtype, copy=False) if r.dtype != a.dtype else r
    fn.__name__ = op_type.lower()
    return fn


add = _binary("Add", np.add)
sub = _binary("Sub", np.subtract)
mul = _binary("Mul", np.multiply)


@register("Div", since=1)
def div(node, a, b):
    b = legacy_broadcast(node, a, b)
    if a.dtype.kind in "iu":
        q = np.floor_divide(a, b)
        fix = (np.remainder(a, b) != 0) & ((a < 0) != (b < 0))
        return (q + fix).astype(a.dtype)
    return np.divide(a, _same(a, b)).astype(a.dtype, copy=False)


@register("Mod", since=10)
def mod(node, a, b):
    if int(node.attr("fmod", 0)):
        return np.fmod(a, b).astype(a.dtype, copy=False)
    return np.mod(a, b).astype(a.dtype, copy=False)


@register("Pow", since=1)
def power(node, x, y):
    y = legacy_broadcast(node, x, y)
    if x.dtype.kind == "f":
        return np.power(x, y.astype(x.dtype)).astype(x.dtype, copy=False)
    return np.power(x.astype(np.float64), y.astype(np.float64)).astype(x.dtype)


def _variadic(op_type, reduce):
    @register(op_type, since=1)
    def fn(node, *xs):
        xs = [x for x in xs if x is not None]
        out = xs[0]
        for x in xs[1:]:
            out = reduce(out, x)
        if op_type == "Mean":
            out = out / out.dtype.type(len(xs))
        return np.array(out, dtype=xs[0].dtype, copy=out is xs[0])
    fn.__name__ = op_type.lower()
    return fn


vmax = _variadic("Max", np.maximum)
vmin = _variadic("Min", np.minimum)
vsum = _variadic("Sum", np.add)
vmean = _variadic("Mean", np.add)


def _unary(op_type, ufunc, since=1):
    @register(op_type, since=since)
    def fn(node, x):
        return np.asarray(ufunc(x)).astype(x.dtype, copy=False)
    fn.__name__ = op_type.lower()
    return fn


for _name, _f in {"Neg": np.negative, "Abs": np.abs, "Sqrt": np.sqrt, "Exp": np.exp, "Log": np.log,
                  "Floor": np.floor, "Ceil": np.ceil, "Sign": np.sign, "Sin": np.sin, "Cos": np.cos,
                  "Tan": np.tan, "Asin": np.arcsin, "Acos": np.arccos, "Atan": np.arctan, "Sinh": np.sinh,
                  "Cosh": np.cosh, "Asinh": np.arcsinh, "Acosh": np.arccosh, "Atanh": np.arctanh,
                  "Round": np.round, "Erf": _ek.erf}.items():
    _unary(_name, _f)


@register("Reciprocal", since=1)
def reciprocal(node, x):
    return (x.dtype.type(1) / x).astype(x.dtype, copy=False)


@register("IsNaN", since=9)
def isnan(node, x):
    return np.isnan(x)


@register("IsInf", since=10)
def isinf(node, x):
    pos, neg = int(node.attr("detect_positive", 1)), int(node.attr("detect_negative", 1))
    return (np.isposinf(x) & bool(pos)) | (np.isneginf(x) & bool(neg))


for _name, _f in {"Equal": np.equal, "Greater": np.greater, "Less": np.less,
                  "GreaterOrEqual": np.greater_equal, "LessOrEqual": np.less_equal,
                  "And": np.logical_and, "Or": np.logical_or, "Xor": np.logical_xor}.items():
    def _cmp(node, a, b, _f=_f):
        return _f(a, b)
    register(_name, since=1)(_cmp)


@register("Not", since=1)
def logical_not(node, x):
    return np.logical_not(x)


@register("Where", since=9)
def where(node, cond, a, b):
    return np.where(cond, a, b).astype(np.result_type(a, b), copy=False)


def _cast_dtype(to):
    import onnx
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(int(to)))


def _check_cast(node, constants):
    import onnx
    T = onnx.TensorProto
    to = node.attr("to")
    if node.op_type == "CastLike":
        return None
    if to is None:
        return "no 'to' attribute"
    plain = {T.FLOAT, T.DOUBLE, T.FLOAT16, T.INT8, T.INT16, T.INT32, T.INT64, T.UINT8, T.UINT16, T.UINT32,
             T.UINT64, T.BOOL}
    if int(to) not in plain:
        return f"to={onnx.TensorProto.DataType.Name(int(to))} (only NumPy's numeric types and bool)"
    return None


@register("Cast", since=1, check=_check_cast)
def cast(node, x):
    if x.dtype.kind not in "biuf":
        raise TypeError(f"Cast {node.label()!r}: input of dtype {x.dtype} is not supported")
    return x.astype(_cast_dtype(node.attr("to")))


@register("CastLike", since=15)
def cast_like(node, x, like):
    if x.dtype.kind not in "biuf" or like.dtype.kind not in "biuf":
        raise TypeError(f"CastLike {node.label()!r}: dtypes {x.dtype} -> {like.dtype} are not supported")
    return x.astype(like.dtype)

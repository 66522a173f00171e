"""The element-wise activations beyond ReLU, with PyTorch's formulas, arguments and boundary rules.

Each op is vectorised NumPy computed in the input's dtype (float32 stays
float32) except GELU's exact form, whose ``erf`` is a compiled kernel.  Every
op has its derivative beside it in ``_DERIVATIVES``; :func:`activation_backward`
applies it, and the autograd layer records it.

The derivatives follow PyTorch's backward kernels at the corners: hardtanh
and hardsigmoid pass nothing at their clip points, threshold/hardshrink/
softshrink block where ``|x| <= lambd`` (or ``x <= threshold``), ELU uses the
negative branch at 0, hardswish uses ``x/3 + 1/2`` on the open ``(-3, 3)``.
"""

from __future__ import annotations

import numbers

import numpy as np

from .._dispatch import tensor_aware
from .._kernels import activation as _k
from ._validate import as_array, float_dtype

__all__ = [
    "sigmoid", "tanh", "silu", "hardswish", "hardsigmoid", "gelu", "mish", "elu", "selu", "celu",
    "leaky_relu", "prelu", "hardtanh", "softplus", "logsigmoid", "softsign", "tanhshrink", "threshold",
    "hardshrink", "softshrink", "glu", "activation_backward", "prelu_backward", "glu_backward",
]

# PyTorch's SELU constants (Klambauer et al. 2017), to the digits torch uses.
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
# A parallel erf pass pays off only from ~1M elements (one launch costs ~50 µs here).
_PARALLEL_MIN_SIZE = 1 << 20


def _float_input(input, op, promote=False):
    """``input`` as a floating ndarray; integers are refused as PyTorch's kernels refuse them.

    ``promote`` (torch.sigmoid / torch.tanh, which accept integers) computes integers in float64 instead.
    """
    x = as_array(input, f"{op}: input")
    if x.dtype.kind != "f":
        if promote:
            return x.astype(float_dtype(x))
        raise TypeError(f"{op}: input must have a floating dtype (float32 or float64), got dtype {x.dtype} "
                        "(PyTorch refuses integer inputs here too)")
    return x


def _real(value, name, op):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a real number, got {type(value).__name__}")
    return float(value)


def _out(x, value, inplace):
    """Return ``value`` in ``x``'s dtype, written into ``x`` when ``inplace``."""
    if inplace:
        x[...] = value
        return x
    return np.asarray(value, dtype=x.dtype)


def _scalar(x, value):
    """``value`` as a 0-d array of ``x``'s dtype: keeps float32 arithmetic in float32."""
    return x.dtype.type(value)


def _sigmoid(x):
    # exp of a negative argument only: no overflow for large |x|.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def _softplus(x):
    # log(1 + e^x) = max(x, 0) + log1p(e^-|x|), stable on both sides.
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


@tensor_aware
def sigmoid(input):
    """``1 / (1 + exp(-x))``, as ``torch.sigmoid``.

    Shape: any; the output has the input's shape and (floating) dtype.

    Examples
    --------
    >>> import numpy as np
    >>> sigmoid(np.array([0.0]))
    array([0.5])
    """
    return _sigmoid(_float_input(input, "sigmoid", promote=True))


@tensor_aware
def tanh(input):
    """Hyperbolic tangent, as ``torch.tanh``.

    Examples
    --------
    >>> import numpy as np
    >>> tanh(np.array([0.0]))
    array([0.])
    """
    return np.tanh(_float_input(input, "tanh", promote=True))


@tensor_aware
def silu(input, inplace=False):
    """``x * sigmoid(x)`` (swish), as ``torch.nn.functional.silu``: EfficientNet's activation.

    Examples
    --------
    >>> import numpy as np
    >>> silu(np.array([0.0, 1.0])).round(4)
    array([0.    , 0.7311])
    """
    x = _float_input(input, "silu")
    return _out(x, x * _sigmoid(x), inplace)


@tensor_aware
def hardswish(input, inplace=False):
    """``x * relu6(x + 3) / 6``, as ``torch.nn.functional.hardswish`` (MobileNetV3).

    Examples
    --------
    >>> import numpy as np
    >>> hardswish(np.array([-4.0, 0.0, 1.0, 4.0])).round(4)
    array([-0.    ,  0.    ,  0.6667,  4.    ])
    """
    x = _float_input(input, "hardswish")
    return _out(x, x * (np.clip(x + 3, 0, 6) / 6), inplace)


@tensor_aware
def hardsigmoid(input, inplace=False):
    """``relu6(x + 3) / 6``, as ``torch.nn.functional.hardsigmoid`` (MobileNetV3's SE gate).

    Examples
    --------
    >>> import numpy as np
    >>> hardsigmoid(np.array([-4.0, 0.0, 4.0]))
    array([0. , 0.5, 1. ])
    """
    x = _float_input(input, "hardsigmoid")
    return _out(x, np.clip(x + 3, 0, 6) / 6, inplace)


def _check_approximate(approximate):
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


@tensor_aware
def gelu(input, approximate="none"):
    """Gaussian error linear unit ``x * Phi(x)``, as ``torch.nn.functional.gelu``.

    ``approximate='tanh'`` uses ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``.

    Examples
    --------
    >>> import numpy as np
    >>> gelu(np.array([-1.0, 0.0, 1.0])).round(4)
    array([-0.1587,  0.    ,  0.8413])
    """
    if not isinstance(approximate, str):
        raise TypeError(f"gelu: approximate must be a str ('none' or 'tanh'), got {type(approximate).__name__}")
    _check_approximate(approximate)
    x = _float_input(input, "gelu")
    if approximate == "tanh":
        inner = _scalar(x, np.sqrt(2 / np.pi)) * (x + _scalar(x, 0.044715) * x * x * x)
        return (0.5 * x * (1 + np.tanh(inner))).astype(x.dtype, copy=False)
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    _k.gelu_erf.for_work(flat.size, _PARALLEL_MIN_SIZE)(flat, out)
    return out.reshape(x.shape)


@tensor_aware
def mish(input, inplace=False):
    """``x * tanh(softplus(x))``, as ``torch.nn.functional.mish``.

    Examples
    --------
    >>> import numpy as np
    >>> mish(np.array([0.0, 1.0])).round(4)
    array([0.    , 0.8651])
    """
    x = _float_input(input, "mish")
    return _out(x, x * np.tanh(_softplus(x)), inplace)


@tensor_aware
def elu(input, alpha=1.0, inplace=False):
    """``x`` for ``x > 0``, else ``alpha * (exp(x) - 1)``, as ``torch.nn.functional.elu``.

    Examples
    --------
    >>> import numpy as np
    >>> elu(np.array([-1.0, 2.0])).round(4)
    array([-0.6321,  2.    ])
    """
    x = _float_input(input, "elu")
    a = _real(alpha, "alpha", "elu")
    return _out(x, np.where(x > 0, x, _scalar(x, a) * np.expm1(x)), inplace)


@tensor_aware
def selu(input, inplace=False):
    """``scale * elu(x, alpha)`` with PyTorch's self-normalising constants.

    Examples
    --------
    >>> import numpy as np
    >>> selu(np.array([-1.0, 1.0])).round(4)
    array([-1.1113,  1.0507])
    """
    x = _float_input(input, "selu")
    s, a = _scalar(x, _SELU_SCALE), _scalar(x, _SELU_ALPHA)
    return _out(x, s * np.where(x > 0, x, a * np.expm1(x)), inplace)


@tensor_aware
def celu(input, alpha=1.0, inplace=False):
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``, as ``torch.nn.functional.celu``.

    Examples
    --------
    >>> import numpy as np
    >>> celu(np.array([-1.0, 1.0]), alpha=2.0).round(4)
    array([-0.7869,  1.    ])
    """
    x = _float_input(input, "celu")
    a = _real(alpha, "alpha", "celu")
    if a == 0:
        raise ValueError("celu: alpha must not be 0 (it divides x), got 0.0")
    return _out(x, np.where(x > 0, x, _scalar(x, a) * np.expm1(x / _scalar(x, a))), inplace)


@tensor_aware
def leaky_relu(input, negative_slope=0.01, inplace=False):
    """``x`` for ``x > 0``, else ``negative_slope * x``, as ``torch.nn.functional.leaky_relu``.

    Examples
    --------
    >>> import numpy as np
    >>> leaky_relu(np.array([-2.0, 3.0]), 0.1)
    array([-0.2,  3. ])
    """
    x = _float_input(input, "leaky_relu")
    slope = _real(negative_slope, "negative_slope", "leaky_relu")
    return _out(x, np.where(x > 0, x, x * _scalar(x, slope)), inplace)


def _prelu_weight(x, weight):
    w = as_array(weight, "prelu: weight")
    if w.dtype.kind != "f":
        raise TypeError(f"prelu: weight must have a floating dtype, got dtype {w.dtype}")
    channels = x.shape[1] if x.ndim >= 2 else 1
    if w.ndim > 1 or (w.size != 1 and w.size != channels):
        raise ValueError(f"prelu: weight must be a 1-D array of 1 or {channels} (the input's channels, dim 1) "
                         f"elements, got shape {w.shape}")
    if w.size == 1 or x.ndim < 2:
        return w.reshape(()) if w.size == 1 else w, None
    shape = [1] * x.ndim
    shape[1] = -1
    return w.reshape(shape), shape


@tensor_aware
def prelu(input, weight):
    """``x`` for ``x > 0``, else ``weight * x`` with a learned slope per channel (dim 1), as PyTorch.

    Parameters
    ----------
    input : ndarray
    weight : ndarray of 1 or C elements

    Examples
    --------
    >>> import numpy as np
    >>> prelu(np.array([[-1.0, -1.0]]), np.array([0.1, 0.2]))
    array([[-0.1, -0.2]])
    """
    x = _float_input(input, "prelu")
    w, _ = _prelu_weight(x, weight)
    return np.where(x > 0, x, w * x).astype(float_dtype(x, np.asarray(w)), copy=False)


def prelu_backward(grad_output, input, weight):
    """Gradients of :func:`prelu` with respect to ``input`` and ``weight``.

    Examples
    --------
    >>> import numpy as np
    >>> gi, gw = prelu_backward(np.ones((1, 2)), np.array([[-1.0, 2.0]]), np.array([0.5]))
    >>> gi, gw
    (array([[0.5, 1. ]]), array([-1.]))
    """
    x = np.asarray(input)
    w = np.asarray(weight)
    g = np.asarray(grad_output)
    wb, shape = _prelu_weight(x, w)
    grad_input = np.where(x > 0, g, wb * g)
    contrib = np.where(x > 0, 0, g * x)
    if w.size == 1:
        grad_weight = contrib.sum().reshape(w.shape)
    elif shape is None:
        grad_weight = contrib.reshape(w.shape)
    else:
        grad_weight = contrib.sum(axis=tuple(i for i in range(x.ndim) if i != 1)).reshape(w.shape)
    return grad_input.astype(x.dtype, copy=False), grad_weight.astype(w.dtype, copy=False)


@tensor_aware
def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """Clip to ``[min_val, max_val]``, as ``torch.nn.functional.hardtanh``.

    Examples
    --------
    >>> import numpy as np
    >>> hardtanh(np.array([-3.0, 0.5, 3.0]))
    array([-1. ,  0.5,  1. ])
    """
    x = _float_input(input, "hardtanh")
    lo, hi = _real(min_val, "min_val", "hardtanh"), _real(max_val, "max_val", "hardtanh")
    if lo > hi:
        raise ValueError(f"hardtanh: min_val cannot be greater than max_val, got min_val={min_val}, "
                         f"max_val={max_val}")
    return _out(x, np.clip(x, _scalar(x, lo), _scalar(x, hi)), inplace)


@tensor_aware
def softplus(input, beta=1.0, threshold=20.0):
    """``log(1 + exp(beta x)) / beta``, linear where ``beta x > threshold``, as PyTorch.

    Examples
    --------
    >>> import numpy as np
    >>> softplus(np.array([0.0, 30.0])).round(4)
    array([ 0.6931, 30.    ])
    """
    x = _float_input(input, "softplus")
    b = _real(beta, "beta", "softplus")
    t = _real(threshold, "threshold", "softplus")
    bx = x * _scalar(x, b)
    return np.where(bx > t, x, _softplus(bx) / _scalar(x, b)).astype(x.dtype, copy=False)


@tensor_aware
def logsigmoid(input):
    """``log(sigmoid(x))``, computed stably, as ``torch.nn.functional.logsigmoid``.

    Examples
    --------
    >>> import numpy as np
    >>> logsigmoid(np.array([0.0])).round(4)
    array([-0.6931])
    """
    x = _float_input(input, "logsigmoid")
    return (np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))).astype(x.dtype, copy=False)


@tensor_aware
def softsign(input):
    """``x / (1 + |x|)``, as ``torch.nn.functional.softsign``.

    Examples
    --------
    >>> import numpy as np
    >>> softsign(np.array([-1.0, 3.0]))
    array([-0.5 ,  0.75])
    """
    x = _float_input(input, "softsign")
    return x / (1 + np.abs(x))


@tensor_aware
def tanhshrink(input):
    """``x - tanh(x)``, as ``torch.nn.functional.tanhshrink``.

    Examples
    --------
    >>> import numpy as np
    >>> tanhshrink(np.array([0.0]))
    array([0.])
    """
    x = _float_input(input, "tanhshrink")
    return x - np.tanh(x)


@tensor_aware
def threshold(input, threshold, value, inplace=False):
    """``x`` where ``x > threshold``, else ``value``, as ``torch.nn.functional.threshold``.

    Examples
    --------
    >>> import numpy as np
    >>> threshold(np.array([0.5, 2.0]), 1.0, -1.0)
    array([-1.,  2.])
    """
    x = _float_input(input, "threshold")
    t = _real(threshold, "threshold", "threshold")
    v = _real(value, "value", "threshold")
    return _out(x, np.where(x > t, x, _scalar(x, v)), inplace)


def _lambd(lambd, op):
    lam = _real(lambd, "lambd", op)
    if op == "softshrink" and lam < 0:
        raise ValueError(f"softshrink: lambda must be greater or equal to 0, but found to be {lam}.")
    return lam


@tensor_aware
def hardshrink(input, lambd=0.5):
    """0 where ``|x| <= lambd``, else ``x``, as ``torch.nn.functional.hardshrink``.

    Examples
    --------
    >>> import numpy as np
    >>> hardshrink(np.array([-1.0, 0.2, 0.7]))
    array([-1. ,  0. ,  0.7])
    """
    x = _float_input(input, "hardshrink")
    lam = _lambd(lambd, "hardshrink")
    return np.where((x >= -lam) & (x <= lam), _scalar(x, 0), x)


@tensor_aware
def softshrink(input, lambd=0.5):
    """Shrink towards 0 by ``lambd`` (0 inside ``[-lambd, lambd]``), as ``torch.nn.functional.softshrink``.

    Examples
    --------
    >>> import numpy as np
    >>> softshrink(np.array([-1.0, 0.2, 0.7]))
    array([-0.5,  0. ,  0.2])
    """
    x = _float_input(input, "softshrink")
    lam = _scalar(x, _lambd(lambd, "softshrink"))
    return np.where(x > lam, x - lam, np.where(x < -lam, x + lam, _scalar(x, 0))).astype(x.dtype, copy=False)


def _glu_dim(x, dim):
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"glu: dim must be an int, got {type(dim).__name__}")
    if x.ndim == 0:
        raise ValueError("glu: input must have at least one dimension, got a 0-D array")
    if not -x.ndim <= dim < x.ndim:
        raise ValueError(f"glu: dim must be in [{-x.ndim}, {x.ndim - 1}] for a {x.ndim}-D input, got {dim}")
    d = dim % x.ndim
    if x.shape[d] % 2:
        raise ValueError(f"glu: Halving dimension must be even, but dimension {d} is size {x.shape[d]}")
    return d


@tensor_aware
def glu(input, dim=-1):
    """Gated linear unit: split ``dim`` into halves ``a, b``; return ``a * sigmoid(b)``.

    Shape: ``(*, 2M, *)`` → ``(*, M, *)``.

    Examples
    --------
    >>> import numpy as np
    >>> glu(np.array([2.0, 0.0]))
    array([1.])
    """
    x = _float_input(input, "glu")
    d = _glu_dim(x, dim)
    a, b = np.split(x, 2, axis=d)
    return a * _sigmoid(b)


def glu_backward(grad_output, input, dim=-1):
    """Gradient of :func:`glu` with respect to its input.

    Examples
    --------
    >>> import numpy as np
    >>> glu_backward(np.array([1.0]), np.array([2.0, 0.0]))
    array([0.5, 0.5])
    """
    x = np.asarray(input)
    d = _glu_dim(x, dim)
    a, b = np.split(x, 2, axis=d)
    s = _sigmoid(b)
    g = np.asarray(grad_output)
    return np.concatenate([g * s, g * a * s * (1 - s)], axis=d).astype(x.dtype, copy=False)


# --- derivatives: (grad_output, input, output, params) -> grad_input ----------

def _d_gelu(g, x, y, p):
    if p["approximate"] == "tanh":
        k = _scalar(x, np.sqrt(2 / np.pi))
        c = _scalar(x, 0.044715)
        t = np.tanh(k * (x + c * x * x * x))
        return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * c * x * x))
    gf = np.ascontiguousarray(g, dtype=x.dtype).reshape(-1)
    xf = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(xf)
    _k.gelu_erf_backward.for_work(xf.size, _PARALLEL_MIN_SIZE)(gf, xf, out)
    return out.reshape(x.shape)


def _d_silu(g, x, y, p):
    s = _sigmoid(x)
    return g * s * (1 + x * (1 - s))


def _d_mish(g, x, y, p):
    t = np.tanh(_softplus(x))
    return g * (t + x * _sigmoid(x) * (1 - t * t))


def _d_softplus(g, x, y, p):
    bx = x * _scalar(x, p["beta"])
    return np.where(bx > p["threshold"], g, g * _sigmoid(bx))


def _d_hardtanh(g, x, y, p):
    return np.where((x > p["min_val"]) & (x < p["max_val"]), g, 0)


_DERIVATIVES = {
    "sigmoid": lambda g, x, y, p: g * y * (1 - y),
    "tanh": lambda g, x, y, p: g * (1 - y * y),
    "silu": _d_silu,
    # PyTorch's vectorised kernel: 0 up to and including -3, the slope on the open (-3, 3), 1 from 3 on.
    "hardswish": lambda g, x, y, p: np.where(x <= -3, 0, np.where(x < 3, g * (x / 3 + _scalar(x, 0.5)), g)),
    # PyTorch's kernel multiplies by the float literal 1.0f/6.0f, in float64 too.
    "hardsigmoid": lambda g, x, y, p: np.where((x > -3) & (x < 3), g * _scalar(x, np.float32(1 / 6)), 0),
    "gelu": _d_gelu,
    "mish": _d_mish,
    "elu": lambda g, x, y, p: np.where(x > 0, g, g * _scalar(x, p["alpha"]) * np.exp(x)),
    "selu": lambda g, x, y, p: np.where(x > 0, g * _scalar(x, _SELU_SCALE),
                                        g * _scalar(x, _SELU_SCALE * _SELU_ALPHA) * np.exp(x)),
    "celu": lambda g, x, y, p: np.where(x > 0, g, g * np.exp(x / _scalar(x, p["alpha"]))),
    "leaky_relu": lambda g, x, y, p: np.where(x > 0, g, g * _scalar(x, p["negative_slope"])),
    "hardtanh": _d_hardtanh,
    "softplus": _d_softplus,
    "logsigmoid": lambda g, x, y, p: g * _sigmoid(-x),
    "softsign": lambda g, x, y, p: g / ((1 + np.abs(x)) ** 2),
    "tanhshrink": lambda g, x, y, p: g * np.tanh(x) ** 2,
    "threshold": lambda g, x, y, p: np.where(x > p["threshold"], g, 0),
    "hardshrink": lambda g, x, y, p: np.where((x >= -p["lambd"]) & (x <= p["lambd"]), 0, g),
    "softshrink": lambda g, x, y, p: np.where((x >= -p["lambd"]) & (x <= p["lambd"]), 0, g),
}


def activation_backward(op, grad_output, input, output=None, **params):
    """Gradient of the element-wise activation ``op`` (its name, e.g. ``"silu"``) with respect to its input.

    ``params`` are the op's own arguments (``alpha``, ``beta``...); ``output`` is
    the forward result, which sigmoid and tanh reuse (computed if omitted).

    Examples
    --------
    >>> import numpy as np
    >>> activation_backward("leaky_relu", np.ones(2), np.array([-1.0, 1.0]), negative_slope=0.1)
    array([0.1, 1. ])
    """
    if op not in _DERIVATIVES:
        raise ValueError(f"activation_backward: op must be one of {sorted(_DERIVATIVES)}, got {op!r}")
    x = np.asarray(input)
    if x.dtype.kind != "f":
        x = x.astype(float_dtype(x))
    g = np.asarray(grad_output)
    if g.shape != x.shape:
        raise ValueError(f"activation_backward: grad_output must have the input's shape {x.shape}, got {g.shape}")
    if output is None and op in ("sigmoid", "tanh"):
        output = globals()[op](x)
    return np.asarray(_DERIVATIVES[op](g, x, output, params), dtype=x.dtype)

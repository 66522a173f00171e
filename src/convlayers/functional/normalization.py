"""Normalisation beyond batch norm: group, layer, instance, RMS, local response norm and ``normalize``.

Every op follows ``torch.nn.functional``'s signature.  The forward ops that
matter for speed (group, layer and RMS norm) run one compiled pass per
normalised row (``_kernels/normalization.py``); the backward helpers are
vectorised NumPy in float64, rounded once to the data type.
"""

from __future__ import annotations

import numbers

import numpy as np

from .._dispatch import tensor_aware
from .._kernels import normalization as _k
from ._validate import as_array, float_dtype

__all__ = ["group_norm", "layer_norm", "rms_norm", "instance_norm", "local_response_norm", "normalize"]

# Below this many elements the serial build beats a parallel launch (as for batch norm, _kernels/norm.py).
_PARALLEL_MIN_SIZE = 1 << 18


def _real(value, name, op):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a real number, got {value!r}")
    return float(value)


def _vector(value, name, op, shape):
    if value is None:
        return None
    a = as_array(value, name)
    if a.shape != tuple(shape):
        raise ValueError(f"{op}: {name} must have shape {tuple(shape)}, got {a.shape}")
    return a


def _ones_zeros(weight, bias, shape, dtype):
    w = np.ones(shape, dtype) if weight is None else np.ascontiguousarray(weight, dtype=dtype)
    b = np.zeros(shape, dtype) if bias is None else np.ascontiguousarray(bias, dtype=dtype)
    return w, b


# --------------------------------------------------------------------------- group norm

def group_norm_forward(input, num_groups, weight=None, bias=None, eps=1e-5):
    """:func:`group_norm`, also returning ``(x4, mean, rstd)`` for :func:`group_norm_backward`."""
    x = as_array(input, "input")
    if x.ndim < 2:
        raise ValueError(f"group_norm: Expected at least 2 dimensions for input tensor but received {x.ndim} "
                         f"(input shape {x.shape})")
    if isinstance(num_groups, bool) or not isinstance(num_groups, numbers.Integral) or num_groups <= 0:
        raise ValueError(f"group_norm: num_groups must be a positive int, got {num_groups!r}")
    c = x.shape[1]
    if c % num_groups:
        raise ValueError(f"group_norm: Expected number of channels in input to be divisible by num_groups, "
                         f"but got input of shape {x.shape} and num_groups={num_groups}")
    weight = _vector(weight, "weight", "group_norm", (c,))
    bias = _vector(bias, "bias", "group_norm", (c,))
    eps = _real(eps, "eps", "group_norm")
    dtype = float_dtype(x, weight, bias)
    n, g = x.shape[0], int(num_groups)
    l_n = int(np.prod(x.shape[2:], dtype=np.int64))
    x4 = np.ascontiguousarray(x, dtype=dtype).reshape(n, g, c // g, l_n)
    w, b = _ones_zeros(weight, bias, c, dtype)
    out = np.empty(x4.shape, dtype)
    mean, rstd = np.empty((n, g), dtype), np.empty((n, g), dtype)
    if x4.size:
        _k.group_norm_forward.for_work(x4.size, _PARALLEL_MIN_SIZE)(x4, w, b, eps, out, mean, rstd,
                                                                     dtype == np.float32)
    return out.reshape(x.shape), (x4, mean, rstd)


@tensor_aware
def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    r"""Group normalisation, as ``torch.nn.functional.group_norm``.

    The ``C`` channels are split into ``num_groups`` groups; each sample's
    group is normalised by its own mean and (biased) variance, then
    ``·weight[c] + bias[c]`` per channel.

    Parameters
    ----------
    input : ndarray, shape (N, C, \*)
    num_groups : int
        Must divide ``C``.
    weight, bias : ndarray, shape (C,), optional
    eps : float, default 1e-5

    Shape
    -----
    Output has the input's shape.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(8, dtype=np.float64).reshape(1, 4, 2)
    >>> group_norm(x, 2, eps=0.0)[0, :2].round(4)
    array([[-1.3416, -0.4472],
           [ 0.4472,  1.3416]])
    """
    return group_norm_forward(input, num_groups, weight, bias, eps)[0]


def group_norm_backward(grad_output, saved, weight=None, need_input=True):
    """Gradients of :func:`group_norm` for (input, weight, bias); ``saved`` from :func:`group_norm_forward`."""
    x4, mean, rstd = saved
    n, g, cg, l_n = x4.shape
    gy = np.asarray(grad_output, dtype=np.float64).reshape(x4.shape)
    xhat = (x4 - mean[..., None, None].astype(np.float64)) * rstd[..., None, None]
    grad_weight = (gy * xhat).sum(axis=(0, 3)).reshape(-1).astype(x4.dtype)
    grad_bias = gy.sum(axis=(0, 3)).reshape(-1).astype(x4.dtype)
    grad_input = None
    if need_input:
        gw = gy if weight is None else gy * np.asarray(weight, np.float64).reshape(1, g, cg, 1)
        count = max(cg * l_n, 1)
        m1 = gw.sum(axis=(2, 3), keepdims=True) / count
        m2 = (gw * xhat).sum(axis=(2, 3), keepdims=True) / count
        grad_input = (rstd[..., None, None] * (gw - m1 - xhat * m2)).astype(x4.dtype).reshape(np.shape(grad_output))
    return grad_input, grad_weight, grad_bias


# --------------------------------------------------------------------------- layer norm and RMS norm

def _normalized_shape(normalized_shape, x, op):
    if isinstance(normalized_shape, numbers.Integral) and not isinstance(normalized_shape, bool):
        normalized_shape = (int(normalized_shape),)
    try:
        shape = tuple(int(s) for s in normalized_shape)
    except TypeError:
        raise TypeError(f"{op}: normalized_shape must be an int or a sequence of ints, got {normalized_shape!r}") \
            from None
    if not shape:
        raise ValueError(f"{op}: Expected normalized_shape to be at least 1-dimensional, i.e., containing at "
                         f"least one element, but got normalized_shape = {list(shape)}")
    if x.ndim < len(shape) or x.shape[x.ndim - len(shape):] != shape:
        raise ValueError(f"{op}: Given normalized_shape={list(shape)}, expected input with shape "
                         f"[*, {', '.join(map(str, shape))}], but got input of size {list(x.shape)}")
    return shape


def _row_norm_forward(op, input, normalized_shape, weight, bias, eps, centered):
    x = as_array(input, "input")
    shape = _normalized_shape(normalized_shape, x, op)
    for name, value in (("weight", weight), ("bias", bias)):
        if value is not None and np.shape(value) != shape:
            raise ValueError(f"{op}: Expected {name} to be of same shape as normalized_shape, but got {name} of "
                             f"shape {list(np.shape(value))} and normalized_shape = {list(shape)}")
    weight = None if weight is None else as_array(weight, "weight")
    bias = None if bias is None else as_array(bias, "bias")
    dtype = float_dtype(x, weight, bias)
    if eps is None:
        eps = float(np.finfo(dtype).eps)
    eps = _real(eps, "eps", op)
    m = int(np.prod(shape, dtype=np.int64))
    x2 = np.ascontiguousarray(x, dtype=dtype).reshape(-1, m) if m else np.empty((x.size, 0), dtype)
    w, b = _ones_zeros(None if weight is None else weight.reshape(-1), None if bias is None else bias.reshape(-1),
                       m, dtype)
    out = np.empty(x2.shape, dtype)
    mean, rstd = np.empty(x2.shape[0], dtype), np.empty(x2.shape[0], dtype)
    if x2.size:
        _k.row_norm_forward.for_work(x2.size, _PARALLEL_MIN_SIZE)(x2, w, b, eps, centered, out, mean, rstd,
                                                                   dtype == np.float32)
    return out.reshape(x.shape), (x2, mean, rstd, centered)


def layer_norm_forward(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """:func:`layer_norm`, also returning what :func:`row_norm_backward` needs."""
    return _row_norm_forward("layer_norm", input, normalized_shape, weight, bias, eps, True)


def rms_norm_forward(input, normalized_shape, weight=None, eps=None):
    """:func:`rms_norm`, also returning what :func:`row_norm_backward` needs."""
    return _row_norm_forward("rms_norm", input, normalized_shape, weight, None, eps, False)


@tensor_aware
def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    r"""Layer normalisation over the trailing ``normalized_shape`` axes, as ``torch.nn.functional.layer_norm``.

    ``y = (x − mean) / √(var + eps) · weight + bias``, statistics (biased
    variance) over the last ``len(normalized_shape)`` axes.

    Parameters
    ----------
    input : ndarray, shape (\*, \*normalized_shape)
    normalized_shape : int or tuple of ints
    weight, bias : ndarray, shape normalized_shape, optional
    eps : float, default 1e-5

    Examples
    --------
    >>> import numpy as np
    >>> layer_norm(np.array([[1.0, 3.0]]), 2, eps=0.0)
    array([[-1.,  1.]])
    """
    return layer_norm_forward(input, normalized_shape, weight, bias, eps)[0]


@tensor_aware
def rms_norm(input, normalized_shape, weight=None, eps=None):
    r"""RMS normalisation, as ``torch.nn.functional.rms_norm``: ``y = x / √(mean(x²) + eps) · weight``.

    Parameters
    ----------
    input : ndarray, shape (\*, \*normalized_shape)
    normalized_shape : int or tuple of ints
    weight : ndarray, shape normalized_shape, optional
    eps : float, optional
        Default: the machine epsilon of the data type (``np.finfo(dtype).eps``), as PyTorch.

    Examples
    --------
    >>> import numpy as np
    >>> rms_norm(np.array([[3.0, 4.0]]), 2, eps=0.0).round(4)
    array([[0.8485, 1.1314]])
    """
    return rms_norm_forward(input, normalized_shape, weight, eps)[0]


def row_norm_backward(grad_output, saved, weight=None, need_input=True):
    """Gradients of :func:`layer_norm`/:func:`rms_norm` for (input, weight, bias)."""
    x2, mean, rstd, centered = saved
    gy = np.asarray(grad_output, dtype=np.float64).reshape(x2.shape)
    xhat = (x2 - mean[:, None].astype(np.float64)) * rstd[:, None]
    wshape = x2.shape[1:]
    grad_weight = (gy * xhat).sum(axis=0).astype(x2.dtype)
    grad_bias = gy.sum(axis=0).astype(x2.dtype)
    grad_input = None
    if need_input:
        gw = gy if weight is None else gy * np.asarray(weight, np.float64).reshape(wshape)
        m = max(x2.shape[1], 1)
        m2 = (gw * xhat).sum(axis=1, keepdims=True) / m
        d = gw - xhat * m2
        if centered:
            d -= gw.sum(axis=1, keepdims=True) / m
        grad_input = (rstd[:, None] * d).astype(x2.dtype).reshape(np.shape(grad_output))
    return grad_input, grad_weight, grad_bias


# --------------------------------------------------------------------------- instance norm

def instance_norm_forward(input, running_mean=None, running_var=None, weight=None, bias=None,
                          use_input_stats=True, momentum=0.1, eps=1e-5):
    """:func:`instance_norm`, also returning ``saved`` (None when the running statistics normalise)."""
    x = as_array(input, "input")
    if x.ndim < 3:
        raise ValueError(f"instance_norm: input must be at least 3-D (N, C, L, ...), got shape {x.shape}")
    c = x.shape[1]
    rm = _vector(running_mean, "running_mean", "instance_norm", (c,))
    rv = _vector(running_var, "running_var", "instance_norm", (c,))
    weight = _vector(weight, "weight", "instance_norm", (c,))
    bias = _vector(bias, "bias", "instance_norm", (c,))
    eps = _real(eps, "eps", "instance_norm")
    if not use_input_stats:
        if rm is None or rv is None:
            raise ValueError("instance_norm: Expected running_mean and running_var to be defined when "
                             "use_input_stats is False")
        dtype = float_dtype(x, weight, bias)
        scale = 1.0 / np.sqrt(rv.astype(np.float64) + eps)
        if weight is not None:
            scale = scale * weight
        shift = -rm * scale + (0 if bias is None else bias)
        shape = (1, c) + (1,) * (x.ndim - 2)
        out = (x * scale.astype(dtype).reshape(shape) + shift.astype(dtype).reshape(shape)).astype(dtype)
        return out, None
    l_n = int(np.prod(x.shape[2:], dtype=np.int64))
    if l_n <= 1 and x.size:
        raise ValueError(f"instance_norm: Expected more than 1 spatial element when training, got input size "
                         f"{list(x.shape)}")
    out, saved = group_norm_forward(x, max(c, 1), weight, bias, eps) if c else (x.astype(float_dtype(x)), None)
    if momentum is None:
        momentum = 0.0
    momentum = _real(momentum, "momentum", "instance_norm")
    if x.size and (running_mean is not None or running_var is not None):
        x3 = x.reshape(x.shape[0], c, l_n).astype(np.float64)
        if running_mean is not None:
            running_mean *= 1 - momentum
            running_mean += momentum * x3.mean(axis=2).mean(axis=0)
        if running_var is not None:
            running_var *= 1 - momentum
            running_var += momentum * x3.var(axis=2, ddof=1).mean(axis=0)
    return out, saved


@tensor_aware
def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True,
                  momentum=0.1, eps=1e-5):
    r"""Instance normalisation, as ``torch.nn.functional.instance_norm``.

    Each sample's channel is normalised by its own statistics (group norm with
    one channel per group); given running buffers they are updated in place,
    ``r ← (1 − momentum)·r + momentum·(batch mean of the instance statistics)``
    with the unbiased variance.  ``use_input_stats=False`` normalises with the
    running statistics instead.

    Parameters
    ----------
    input : ndarray, shape (N, C, \*)
    running_mean, running_var : ndarray, shape (C,), optional
    weight, bias : ndarray, shape (C,), optional
    use_input_stats : bool, default True
    momentum : float, default 0.1
    eps : float, default 1e-5

    Examples
    --------
    >>> import numpy as np
    >>> instance_norm(np.array([[[1.0, 3.0]]]), eps=0.0)
    array([[[-1.,  1.]]])
    """
    return instance_norm_forward(input, running_mean, running_var, weight, bias, use_input_stats, momentum, eps)[0]


# --------------------------------------------------------------------------- local response norm

def _channel_window_sum(a, before, after):
    """``s[:, c] = Σ a[:, c-before .. c+after]`` along axis 1, zeros outside."""
    c = a.shape[1]
    s = np.zeros_like(a)
    for off in range(-before, after + 1):
        lo, hi = max(0, -off), min(c, c - off)
        if lo < hi:
            s[:, lo:hi] += a[:, lo + off:hi + off]
    return s


def _lrn_check(x, size):
    if x.ndim < 3:
        raise ValueError(f"local_response_norm: Expected 3D or higher dimensionality input (got {x.ndim} "
                         f"dimensions)")
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size <= 0:
        raise ValueError(f"local_response_norm: size must be a positive int, got {size!r}")


@tensor_aware
def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    r"""Local response normalisation across channels, as ``torch.nn.functional.local_response_norm``.

    ``y[c] = x[c] / (k + alpha/size · Σ x[c']²)^beta``, the sum over the
    ``size`` channels ``c − size//2 .. c + (size − 1)//2`` (zeros outside).

    Parameters
    ----------
    input : ndarray, shape (N, C, \*) with at least one spatial axis
    size : int
    alpha, beta, k : float

    Examples
    --------
    >>> import numpy as np
    >>> local_response_norm(np.ones((1, 3, 1)), 3, alpha=3.0, beta=1.0, k=0.0).ravel().round(4)
    array([0.5   , 0.3333, 0.5   ])
    """
    x = as_array(input, "input")
    _lrn_check(x, size)
    dtype = float_dtype(x)
    x = x.astype(dtype, copy=False)
    s = _channel_window_sum(x * x, size // 2, (size - 1) // 2)
    return (x / (s * (alpha / size) + k) ** beta).astype(dtype, copy=False)


def local_response_norm_backward(grad_output, x, size, alpha=1e-4, beta=0.75, k=1.0):
    """Gradient of :func:`local_response_norm` for its input."""
    x = np.asarray(x)
    xd = x.astype(np.float64)
    g = np.asarray(grad_output, np.float64)
    d = _channel_window_sum(xd * xd, size // 2, (size - 1) // 2) * (alpha / size) + k
    dpow = d ** -beta
    t = g * xd * (-beta) * dpow / d * (alpha / size) * 2
    return (g * dpow + xd * _channel_window_sum(t, (size - 1) // 2, size // 2)).astype(x.dtype)


# --------------------------------------------------------------------------- normalize

def _norm(x, p, axis):
    a = np.abs(x)
    if p == np.inf:
        return a.max(axis=axis, keepdims=True)
    if p == -np.inf:
        return a.min(axis=axis, keepdims=True)
    if p == 0:
        return (x != 0).sum(axis=axis, keepdims=True).astype(x.dtype)
    if p == 1:
        return a.sum(axis=axis, keepdims=True)
    if p == 2:
        return np.sqrt((a * a).sum(axis=axis, keepdims=True))
    with np.errstate(divide="ignore"):
        return (a ** p).sum(axis=axis, keepdims=True) ** (1.0 / p)


def _normalize_args(input, p, dim, eps):
    x = as_array(input, "input")
    p = _real(p, "p", "normalize")
    eps = _real(eps, "eps", "normalize")
    nd = max(x.ndim, 1)
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or not -nd <= dim < nd:
        raise ValueError(f"normalize: dim must be an int in [{-nd}, {nd - 1}] for a {x.ndim}-D input, got {dim!r}")
    return x.astype(float_dtype(x), copy=False), p, int(dim) % nd, eps


@tensor_aware
def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    r"""``x / max(‖x‖_p, eps)`` along ``dim``, as ``torch.nn.functional.normalize``.

    Parameters
    ----------
    input : ndarray
    p : float, default 2
        The norm's exponent (``inf``, ``0`` and negative values as ``torch.norm``).
    dim : int, default 1
    eps : float, default 1e-12
    out : ndarray, optional
        Written with the result, and returned.

    Examples
    --------
    >>> import numpy as np
    >>> normalize(np.array([[3.0, 4.0]]))
    array([[0.6, 0.8]])
    """
    x, p, axis, eps = _normalize_args(input, p, dim, eps)
    xs = x.reshape(1) if x.ndim == 0 else x
    with np.errstate(divide="ignore", invalid="ignore"):
        result = (xs / np.maximum(_norm(xs, p, axis), eps)).reshape(x.shape)
    if out is not None:
        out[...] = result
        return out
    return result


def normalize_backward(grad_output, input, p=2.0, dim=1, eps=1e-12):
    """Gradient of :func:`normalize` for its input (``torch.norm``'s subgradient rules)."""
    x, p, axis, eps = _normalize_args(input, p, dim, eps)
    dtype = x.dtype
    xs = (x.reshape(1) if x.ndim == 0 else x).astype(np.float64)
    g = np.asarray(grad_output, np.float64).reshape(xs.shape)
    norm = _norm(xs, p, axis)
    d = np.maximum(norm, eps)
    with np.errstate(divide="ignore", invalid="ignore"):
        grad = g / d
        gnorm = -(g * xs).sum(axis=axis, keepdims=True) / (d * d) * (norm >= eps)
        if p == 0:
            dn = np.zeros_like(xs)
        elif p == 1:
            dn = np.sign(xs)
        elif np.isinf(p):
            hit = np.abs(xs) == norm
            dn = np.sign(xs) * hit / np.maximum(hit.sum(axis=axis, keepdims=True), 1)
        elif p < 1:
            dn = np.where(xs == 0, 0.0, np.sign(xs) * np.abs(xs) ** (p - 1)) / norm ** (p - 1)
        else:
            dn = np.where(norm == 0, 0.0, np.sign(xs) * np.abs(xs) ** (p - 1) / norm ** (p - 1))
        grad = grad + dn * gnorm
    return grad.reshape(x.shape).astype(dtype)

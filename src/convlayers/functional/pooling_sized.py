"""Pooling to a given output size, 1-D to 3-D: adaptive, fractional max, and max unpooling, with gradients.

Same core as :mod:`.pooling` (its :func:`~.pooling._planes` views every rank as
(P, D, H, W) planes); the kernels are in :mod:`convlayers._kernels.pool_adaptive`
and, for the scatters, :mod:`convlayers._kernels.pool`.
"""

from __future__ import annotations

import numbers

import numpy as np

from .._dispatch import tensor_aware
from .._kernels import pool as _k
from .._kernels import pool_adaptive as _ka
from ._validate import as_array, float_dtype
from .pooling import _ntuple, _planes, _three, _unplanes, max_pool_backward

__all__ = [
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "fractional_max_pool2d", "fractional_max_pool3d", "max_unpool1d", "max_unpool2d", "max_unpool3d",
    "adaptive_avg_pool_backward", "adaptive_avg_pool2d_backward", "max_unpool_backward",
]


# --------------------------------------------------------------------------- adaptive pooling

def _adaptive_size(op, output_size, spatial):
    """``output_size`` (an int, or ``dims`` ints or None) as a tuple; None keeps that input size."""
    dims = len(spatial)
    if isinstance(output_size, numbers.Integral) and not isinstance(output_size, bool):
        items = (output_size,) * dims
    else:
        try:
            items = tuple(output_size) if not isinstance(output_size, (str, bytes)) else None
        except TypeError:
            items = None
        if items is None or not all(v is None or (isinstance(v, numbers.Integral) and not isinstance(v, bool))
                                    for v in items):
            raise TypeError(f"{op}: output_size must be an int or a tuple of {dims} ints (or None), got "
                            f"{output_size!r}")
        if len(items) != dims:
            raise ValueError(f"{op}: output_size must be an int or a tuple of {dims} ints (or None), got "
                             f"{output_size!r}")
    out = []
    for v, n in zip(items, spatial):
        v = n if v is None else v
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{op}: output_size must be an int or a tuple of {dims} ints (or None), got "
                            f"{output_size!r}")
        if v < 0:
            raise ValueError(f"{op}: output_size must be non-negative, got {output_size!r}")
        out.append(int(v))
    if 0 in spatial:
        raise ValueError(f"{op}: input has an empty spatial size {tuple(spatial)}")
    return tuple(out)


def _adaptive(op, dims, input, output_size, kind):
    x, info = _planes(op, input, dims)
    out_sp = _adaptive_size(op, output_size, info[2])
    out = np.empty((x.shape[0], *_three(out_sp, 1)), dtype=x.dtype)
    if kind == "avg":
        if out.size:
            _ka.adaptive_avg_pool.for_work(x.size)(x, out)
        return _unplanes(out, info, out_sp)
    idx = np.empty(out.shape, dtype=np.int64)
    if out.size:
        _ka.adaptive_max_pool.for_work(x.size)(x, out, idx)
    return _unplanes(out, info, out_sp), _unplanes(idx, info, out_sp)


_ADAPTIVE_DOC = """{dims}-D {what} pooling to a fixed output size, as ``torch.nn.functional.adaptive_{kind}_pool{dims}d``.

    Output cell ``i`` covers input positions ``⌊i·n/o⌋`` to ``⌈(i+1)·n/o⌉ − 1``
    along each axis (windows may overlap when ``n`` is not a multiple of ``o``).{indices}

    Parameters
    ----------
    input : ndarray, shape {shape} or unbatched, without N
    output_size : int or tuple of {dims} (int or None)
        ``None`` keeps that input dimension.

    Examples
    --------
    >>> import numpy as np
{example}
"""


@tensor_aware
def adaptive_avg_pool1d(input, output_size):
    return _adaptive("adaptive_avg_pool1d", 1, input, output_size, "avg")


@tensor_aware
def adaptive_avg_pool2d(input, output_size):
    return _adaptive("adaptive_avg_pool2d", 2, input, output_size, "avg")


@tensor_aware
def adaptive_avg_pool3d(input, output_size):
    return _adaptive("adaptive_avg_pool3d", 3, input, output_size, "avg")


def _adaptive_max(op, dims, input, output_size, return_indices):
    out, idx = _adaptive(op, dims, input, output_size, "max")
    return (out, idx) if return_indices else out


@tensor_aware
def adaptive_max_pool1d(input, output_size, return_indices=False):
    return _adaptive_max("adaptive_max_pool1d", 1, input, output_size, return_indices)


@tensor_aware
def adaptive_max_pool2d(input, output_size, return_indices=False):
    return _adaptive_max("adaptive_max_pool2d", 2, input, output_size, return_indices)


@tensor_aware
def adaptive_max_pool3d(input, output_size, return_indices=False):
    return _adaptive_max("adaptive_max_pool3d", 3, input, output_size, return_indices)


_INDICES_DOC = """
    With ``return_indices``, also the flat in-plane index of each maximum, as
    ``max_pool{dims}d`` gives it."""
for _f, _dims, _kind, _shape, _ex in (
        (adaptive_avg_pool1d, 1, "avg", "(N, C, L)", ">>> adaptive_avg_pool1d(np.array([[1.0, 2.0, 3.0, 6.0]]), 2)\n"
                                                      "    array([[1.5, 4.5]])"),
        (adaptive_avg_pool2d, 2, "avg", "(N, C, H, W)", ">>> adaptive_avg_pool2d(np.arange(1.0, 17.0).reshape(1, 4, 4), 1)\n"
                                                         "    array([[[8.5]]])"),
        (adaptive_avg_pool3d, 3, "avg", "(N, C, D, H, W)", ">>> adaptive_avg_pool3d(np.ones((2, 3, 4, 5, 6)), (1, None, 2)).shape\n"
                                                            "    (2, 3, 1, 5, 2)"),
        (adaptive_max_pool1d, 1, "max", "(N, C, L)", ">>> adaptive_max_pool1d(np.array([[1.0, 2.0, 3.0, 6.0]]), 2, return_indices=True)\n"
                                                      "    (array([[2., 6.]]), array([[1, 3]]))"),
        (adaptive_max_pool2d, 2, "max", "(N, C, H, W)", ">>> adaptive_max_pool2d(np.arange(1.0, 17.0).reshape(1, 4, 4), (2, 1))\n"
                                                         "    array([[[ 8.],\n            [16.]]])"),
        (adaptive_max_pool3d, 3, "max", "(N, C, D, H, W)", ">>> adaptive_max_pool3d(np.arange(8.0).reshape(1, 2, 2, 2), 1)\n"
                                                            "    array([[[[7.]]]])")):
    _f.__doc__ = _ADAPTIVE_DOC.format(dims=_dims, kind=_kind, what="Average" if _kind == "avg" else "Max",
                                      shape=_shape, indices=_INDICES_DOC.format(dims=_dims) if _kind == "max" else "",
                                      example="    " + _ex)


def adaptive_avg_pool_backward(grad_output, input_shape, dims=2):
    """Gradient of ``adaptive_avg_pool{dims}d`` with respect to its input.

    Examples
    --------
    >>> import numpy as np
    >>> adaptive_avg_pool_backward(np.ones((1, 1)), (1, 4), dims=1)
    array([[0.25, 0.25, 0.25, 0.25]])
    """
    go = as_array(grad_output, "grad_output")
    input_shape = tuple(int(s) for s in input_shape)
    if go.ndim not in (dims + 1, dims + 2) or len(input_shape) != go.ndim or go.shape[:-dims] != input_shape[:-dims]:
        raise ValueError(f"adaptive_avg_pool{dims}d_backward: grad_output {go.shape} does not fit input_shape "
                         f"{input_shape}")
    p = int(np.prod(input_shape[:-dims]))
    go4 = np.ascontiguousarray(go, dtype=float_dtype(go)).reshape(p, *_three(go.shape[-dims:], 1))
    gx = np.empty((p, *_three(input_shape[-dims:], 1)), dtype=go4.dtype)
    if gx.size:
        _ka.adaptive_avg_pool_backward.for_work(gx.size)(go4, gx)
    return gx.reshape(input_shape)


def adaptive_avg_pool2d_backward(grad_output, input_shape):
    """Gradient of :func:`adaptive_avg_pool2d` with respect to its input.

    Examples
    --------
    >>> import numpy as np
    >>> adaptive_avg_pool2d_backward(np.ones((1, 1, 1)), (1, 2, 2))
    array([[[0.25, 0.25],
            [0.25, 0.25]]])
    """
    return adaptive_avg_pool_backward(grad_output, input_shape, dims=2)


# --------------------------------------------------------------------------- fractional max pooling

def _intervals(samples, in_n, out_n, pool):
    """PyTorch's window starts for (P,) samples in [0, 1): computed in the samples' dtype, as its kernel does."""
    t = samples.dtype.type
    starts = np.empty((samples.shape[0], out_n), dtype=np.int64)
    if out_n > 1:
        alpha = t(in_n - pool) / t(out_n - 1)
        i = np.arange(out_n - 1).astype(samples.dtype)
        u = samples[:, None]
        with np.errstate(invalid="ignore"):  # a NaN sample: an out-of-range start, refused by the caller
            starts[:, :-1] = ((i + u) * alpha).astype(np.int64) - (u * alpha).astype(np.int64)
    starts[:, -1] = in_n - pool
    return starts


def _fractional(op, dims, input, kernel_size, output_size, output_ratio, return_indices, _random_samples):
    x = as_array(input, "input")
    if x.ndim not in (dims + 1, dims + 2):
        raise ValueError(f"{op}: input must be {dims + 1}-D or {dims + 2}-D, got {x.ndim}-D with shape {x.shape}")
    kernel = _ntuple(kernel_size, dims, "kernel_size", op, 1)
    spatial = x.shape[-dims:]
    if output_size is None and output_ratio is None:
        raise ValueError(f"{op} requires specifying either an output_size or an output_ratio")
    if output_size is None:
        ratio = (output_ratio,) * dims if isinstance(output_ratio, numbers.Real) else tuple(output_ratio)
        if len(ratio) == 1:
            ratio = ratio * dims
        if len(ratio) != dims or not all(isinstance(r, numbers.Real) and 0 < r < 1 for r in ratio):
            raise ValueError(f"{op}: output_ratio must be a number or a tuple of {dims} numbers in (0, 1), got "
                             f"{output_ratio!r}")
        out_sp = tuple(int(n * r) for n, r in zip(spatial, ratio))
    else:
        out_sp = _ntuple(output_size, dims, "output_size", op, 1)
    x4, info = _planes(op, x, dims)
    # PyTorch: output + kernel - 1 <= input in 2-D, and strictly less in 3-D
    slack = 0 if dims == 2 else 1
    for a in range(dims):
        if out_sp[a] + kernel[a] - 1 + slack > spatial[a]:
            raise ValueError(f"{op}: output_size {out_sp} with kernel_size {kernel} is too large for the input's "
                             f"spatial size {tuple(spatial)} (need output + kernel - 1 {'<=' if dims == 2 else '<'} "
                             f"input along each axis)")
    n, c = info[0]
    if _random_samples is None:
        samples = np.random.default_rng().random((n, c, dims)).astype(x4.dtype)
    else:
        samples = as_array(_random_samples, "_random_samples")
        # PyTorch reads sample [n, c] for batch n and channel c, so larger arrays are fine (it uses the first)
        if samples.ndim != 3 or samples.shape[0] < n or samples.shape[1] < c or samples.shape[2] != dims:
            raise ValueError(f"{op}: _random_samples must have shape {(n, c, dims)} (N, C, {dims}), got "
                             f"{samples.shape}")
        samples = np.ascontiguousarray(samples[:n, :c], dtype=x4.dtype)
    samples = samples.reshape(n * c, dims)
    # PyTorch: sample 0 drives W in 2-D, and (D, H, W) take samples (0, 1, 2) in 3-D.
    order = (1, 0) if dims == 2 else (0, 1, 2)
    out3, k3 = _three(out_sp, 1), _three(kernel, 1)
    starts = [np.zeros((n * c, 1), np.int64)] * (3 - dims)
    for a in range(dims):
        st = _intervals(samples[:, order[a]], spatial[a], out_sp[a], kernel[a])
        if st.size and (st.min() < 0 or st.max() > spatial[a] - kernel[a]):
            # PyTorch does not check the samples (it takes any float); a window outside the input is refused here
            raise ValueError(f"{op}: _random_samples place a window outside the input along spatial axis {a} "
                             f"(samples should lie in [0, 1))")
        starts.append(st)
    out = np.empty((n * c, *out3), dtype=x4.dtype)
    idx = np.empty(out.shape, dtype=np.int64)
    if out.size:
        _ka.fractional_max_pool.for_work(out.size * int(np.prod(k3)))(x4, *starts, *k3, out, idx)
    out, idx = _unplanes(out, info, out_sp), _unplanes(idx, info, out_sp)
    return (out, idx) if return_indices else out


_FRACTIONAL_DOC = """{dims}-D fractional max pooling, as ``torch.nn.functional.fractional_max_pool{dims}d``.

    Max over ``kernel_size`` boxes whose starts advance by pseudo-random steps
    so that the output has ``output_size`` (or ``⌊n·output_ratio⌋``) cells along
    each axis (Graham, "Fractional Max-Pooling", 2014).  One sample in [0, 1)
    per plane and axis places the windows: pass PyTorch's ``_random_samples``
    (shape (N, C, {dims})) to reproduce its windows exactly; without them they are drawn from
    NumPy's default generator.

    Parameters
    ----------
    input : ndarray, shape {shape} or unbatched, without N
    kernel_size : int or tuple of {dims} ints
    output_size : int or tuple of {dims} ints, optional
    output_ratio : float or tuple of {dims} floats in (0, 1), optional
    return_indices : bool, default False
        Also return the flat in-plane index of each maximum.
    _random_samples : ndarray, shape (N, C, {dims}), optional

    Examples
    --------
    >>> import numpy as np
{example}
"""


@tensor_aware
def fractional_max_pool2d(input, kernel_size, output_size=None, output_ratio=None, return_indices=False,
                          _random_samples=None):
    return _fractional("fractional_max_pool2d", 2, input, kernel_size, output_size, output_ratio, return_indices,
                       _random_samples)


@tensor_aware
def fractional_max_pool3d(input, kernel_size, output_size=None, output_ratio=None, return_indices=False,
                          _random_samples=None):
    return _fractional("fractional_max_pool3d", 3, input, kernel_size, output_size, output_ratio, return_indices,
                       _random_samples)


fractional_max_pool2d.__doc__ = _FRACTIONAL_DOC.format(dims=2, shape="(N, C, H, W)", example="""\
    >>> x = np.arange(25.0).reshape(1, 5, 5)
    >>> fractional_max_pool2d(x, 2, output_size=2, _random_samples=np.full((1, 1, 2), 0.5))
    array([[[ 6.,  9.],
            [21., 24.]]])""")
fractional_max_pool3d.__doc__ = _FRACTIONAL_DOC.format(dims=3, shape="(N, C, D, H, W)", example="""\
    >>> fractional_max_pool3d(np.ones((1, 6, 6, 6)), 2, output_ratio=0.5).shape
    (1, 3, 3, 3)""")


# --------------------------------------------------------------------------- max unpooling

def _unpool_size(op, dims, in_sp, kernel, stride, padding, output_size):
    default = tuple((n - 1) * s + k - 2 * p for n, s, k, p in zip(in_sp, stride, kernel, padding))
    if output_size is None:
        size = default
    else:
        try:
            size = tuple(output_size)
        except TypeError:
            raise TypeError(f"{op}: output_size must be a sequence of ints, got {output_size!r}") from None
        if len(size) == dims + 2:
            size = size[2:]
        elif len(size) == dims + 1:
            size = size[1:]
        if len(size) != dims or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in size):
            raise ValueError(f"{op}: output_size should be a sequence of {dims} or {dims + 2} ints, got "
                             f"{output_size!r}")
        for a in range(dims):
            lo, hi = default[a] - stride[a], default[a] + stride[a]
            if not lo < size[a] < hi:
                raise ValueError(f"{op}: invalid output_size {tuple(output_size)} (dim {a} must be between {lo} "
                                 f"and {hi})")
        size = tuple(int(v) for v in size)
    if any(v <= 0 for v in size):
        raise ValueError(f"{op}: the output would be empty, size {size}")
    return size


def _max_unpool(op, dims, input, indices, kernel_size, stride, padding, output_size):
    x = as_array(input, "input")
    idx = as_array(indices, "indices")
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{op}: indices must be integers, got dtype {idx.dtype}")
    if x.ndim not in (dims + 1, dims + 2):
        raise ValueError(f"{op}: input must be {dims + 1}-D or {dims + 2}-D, got {x.ndim}-D with shape {x.shape}")
    if idx.shape != x.shape:
        raise ValueError(f"{op}: expected shape of indices to be the input's {x.shape}, got {idx.shape}")
    kernel = _ntuple(kernel_size, dims, "kernel_size", op, 1)
    stride = kernel if stride is None else _ntuple(stride, dims, "stride", op, 1)
    padding = _ntuple(padding, dims, "padding", op, 0)
    size = _unpool_size(op, dims, x.shape[-dims:], kernel, stride, padding, output_size)
    lead = x.shape[:-dims]
    p = int(np.prod(lead))
    s = int(np.prod(size))
    m = int(np.prod(x.shape[-dims:]))
    x2 = np.ascontiguousarray(x, dtype=float_dtype(x)).reshape(p, m)
    idx2 = np.ascontiguousarray(idx, dtype=np.int64).reshape(p, m)
    if idx2.size and (idx2.min() < 0 or idx2.max() >= s):
        bad = idx2.min() if idx2.min() < 0 else idx2.max()
        raise ValueError(f"{op}: found an invalid max index {bad} (output_size {size} holds {s} positions per "
                         f"plane)")
    out = np.empty((p, s), dtype=x2.dtype)
    if out.size:
        _k.scatter_set.for_work(out.size)(x2, idx2, out)
    return out.reshape(*lead, *size)


_UNPOOL_DOC = """Partial inverse of ``max_pool{dims}d``, as ``torch.nn.functional.max_unpool{dims}d``.

    Puts each input value at the position its index names in a zero output
    (flat within each plane); every other position is zero.  Where two inputs
    name one position, the later wins (as PyTorch's CPU kernel).

    Parameters
    ----------
    input : ndarray, shape {shape} or unbatched, without N
    indices : ndarray of ints, the input's shape
        As ``max_pool{dims}d(..., return_indices=True)`` gives them.
    kernel_size, stride, padding
        The pooling's; they set the default output size
        ``(n − 1)·s − 2p + k`` per axis.
    output_size : sequence of ints, optional
        The exact size (``{dims}`` or ``{dims} + 2`` entries), within a stride of the default.

    Examples
    --------
    >>> import numpy as np
{example}
"""


@tensor_aware
def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    return _max_unpool("max_unpool1d", 1, input, indices, kernel_size, stride, padding, output_size)


@tensor_aware
def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    return _max_unpool("max_unpool2d", 2, input, indices, kernel_size, stride, padding, output_size)


@tensor_aware
def max_unpool3d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    return _max_unpool("max_unpool3d", 3, input, indices, kernel_size, stride, padding, output_size)


max_unpool1d.__doc__ = _UNPOOL_DOC.format(dims=1, shape="(N, C, L)", example="""\
    >>> max_unpool1d(np.array([[3.0, 5.0]]), np.array([[1, 3]]), 2)
    array([[0., 3., 0., 5.]])""")
max_unpool2d.__doc__ = _UNPOOL_DOC.format(dims=2, shape="(N, C, H, W)", example="""\
    >>> max_unpool2d(np.array([[[4.0]]]), np.array([[[3]]]), 2)
    array([[[0., 0.],
            [0., 4.]]])""")
max_unpool3d.__doc__ = _UNPOOL_DOC.format(dims=3, shape="(N, C, D, H, W)", example="""\
    >>> max_unpool3d(np.ones((1, 1, 1, 1)), np.array([[[[7]]]]), 2).shape
    (1, 2, 2, 2)""")


def max_unpool_backward(grad_output, indices, dims=2):
    """Gradient of ``max_unpool{dims}d`` with respect to its input: the output gradient at each index.

    Examples
    --------
    >>> import numpy as np
    >>> max_unpool_backward(np.array([[0.0, 1.0, 2.0, 3.0]]), np.array([[1, 3]]), dims=1)
    array([[1., 3.]])
    """
    g = as_array(grad_output, "grad_output")
    idx = np.asarray(indices)
    lead = idx.shape[:-dims]
    if g.shape[:-dims] != lead:
        raise ValueError(f"max_unpool_backward: grad_output {g.shape} and indices {idx.shape} differ in their "
                         f"leading dims")
    p = int(np.prod(lead))
    g2 = np.ascontiguousarray(g, dtype=float_dtype(g)).reshape(p, int(np.prod(g.shape[-dims:])))
    idx2 = np.ascontiguousarray(idx, dtype=np.int64).reshape(p, int(np.prod(idx.shape[-dims:])))
    out = np.empty(idx2.shape, dtype=g2.dtype)
    if out.size:
        _k.gather.for_work(out.size)(g2, idx2, out)
    return out.reshape(idx.shape)


# The fractional and adaptive max backward is the window max's (a scatter by index).
fractional_max_pool_backward = max_pool_backward

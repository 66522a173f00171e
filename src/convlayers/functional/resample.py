"""Resampling: ``interpolate`` (nearest, nearest-exact, linear, bilinear, bicubic, trilinear, area,
antialias) and the ``upsample*`` aliases.

Each spatial axis gets a table of taps (input indices and weights per output
index, :func:`axis_taps`), computed once per call in the data type with
PyTorch's index arithmetic (``UpSample.h``: ``area_pixel_compute_scale``,
``nearest_idx``, the cubic convolution with A = −0.75, the antialias filters
with support ``interp_size/2 · scale``); the tables are then applied axis by
axis by one compiled kernel, last axis first, which is exact for every mode
since each is a product of 1-D filters.  The backward applies the transposed
tables in the opposite order.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .._dispatch import tensor_aware
from .._kernels import resample as _k
from ._validate import as_array, float_dtype

__all__ = ["interpolate", "upsample", "upsample_nearest", "upsample_bilinear"]

_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area")
_MODE_DIMS = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}


# --------------------------------------------------------------------------- the tables

def _scale(in_size, out_size, align_corners, scale, dtype):
    """``area_pixel_compute_scale``: the input step per output step, in ``dtype``."""
    if align_corners:
        return dtype.type((in_size - 1) / (out_size - 1)) if out_size > 1 else dtype.type(0)
    if scale is not None and scale > 0:
        return dtype.type(1.0 / scale)
    return dtype.type(in_size) / dtype.type(out_size)


def _cubic_weights(t, a=-0.75):
    def c1(x):
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def c2(x):
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return np.stack([c2(t + 1), c1(t), c1(1 - t), c2(2 - t)], axis=1)


def _aa_taps(in_size, out_size, align_corners, scale_opt, dtype, interp_size):
    scale = float(_scale(in_size, out_size, align_corners, scale_opt, np.dtype(np.float64)))
    support = interp_size * 0.5 * scale if scale >= 1.0 else interp_size * 0.5
    invscale = 1.0 / scale if scale >= 1.0 else 1.0
    k_max = int(math.ceil(support)) * 2 + 1
    o = np.arange(out_size, dtype=np.float64)
    center = scale * (o + 0.5)
    xmin = np.maximum((center - support + 0.5).astype(np.int64), 0)
    xsize = np.clip(np.minimum((center + support + 0.5).astype(np.int64), in_size) - xmin, 0, k_max)
    j = np.arange(k_max)
    pos = (j[None, :] + xmin[:, None] - center[:, None] + 0.5) * invscale
    ax = np.abs(pos)
    if interp_size == 2:
        w = np.where(ax < 1, 1 - ax, 0.0)
    else:
        a = -0.5
        w = np.where(ax < 1, ((a + 2) * ax - (a + 3)) * ax * ax + 1,
                     np.where(ax < 2, (((ax - 5) * ax + 8) * ax - 4) * a, 0.0))
    w = np.where(j[None, :] < xsize[:, None], w, 0.0)
    total = w.sum(axis=1, keepdims=True)
    w = np.where(total != 0, w / np.where(total == 0, 1, total), w)
    idx = np.minimum(xmin[:, None] + j[None, :], in_size - 1)
    return idx, w.astype(dtype)


def axis_taps(mode, in_size, out_size, align_corners, scale, dtype, antialias=False):
    """``(idx, w)``, each (out_size, K): output ``o`` is ``Σ_k w[o, k]·x[idx[o, k]]`` along one axis."""
    dtype = np.dtype(dtype)
    o_int = np.arange(out_size)
    if mode in ("nearest", "nearest-exact"):
        if mode == "nearest" and out_size == in_size:
            idx = o_int
        elif mode == "nearest" and out_size == 2 * in_size:
            idx = o_int >> 1
        else:
            # PyTorch computes nearest indices in float32 whatever the data type.
            s = np.float32(1.0 / scale) if scale is not None and scale > 0 else np.float32(in_size) / np.float32(out_size)
            o = o_int.astype(np.float32) + (np.float32(0.5) if mode == "nearest-exact" else np.float32(0))
            idx = np.minimum(np.floor(o * s).astype(np.int64), in_size - 1)
        return idx[:, None].astype(np.int64), np.ones((out_size, 1), dtype)
    if mode == "area":
        start = (o_int * in_size) // out_size
        end = -((-(o_int + 1) * in_size) // out_size)
        count = end - start
        k = int(count.max())
        j = np.arange(k)
        idx = np.minimum(start[:, None] + j[None, :], in_size - 1)
        w = np.where(j[None, :] < count[:, None], 1.0 / count[:, None], 0.0)
        return idx, w.astype(dtype)
    if antialias:
        return _aa_taps(in_size, out_size, align_corners, scale, dtype, 2 if mode == "bilinear" else 4)
    s = _scale(in_size, out_size, align_corners, scale, dtype)
    o = o_int.astype(dtype)
    real = s * o if align_corners else s * (o + dtype.type(0.5)) - dtype.type(0.5)
    if mode == "bicubic":
        i0 = np.floor(real)
        t = (real - i0).astype(dtype)
        idx = np.clip(i0.astype(np.int64)[:, None] - 1 + np.arange(4)[None, :], 0, in_size - 1)
        return idx, _cubic_weights(t).astype(dtype)
    real = np.maximum(real, dtype.type(0))
    i0 = real.astype(np.int64)
    i1 = i0 + (i0 < in_size - 1)
    lam1 = np.clip(real - i0.astype(dtype), 0, 1).astype(dtype)
    return np.stack([i0, i1], axis=1), np.stack([dtype.type(1) - lam1, lam1], axis=1)


def _apply(x, tables, backward=False, in_shape=None):
    """Apply each axis' table (axis 2, 3, ...) to ``x``: last axis first (forward) or first axis first (backward)."""
    axes = range(len(tables)) if backward else reversed(range(len(tables)))
    y = x
    for i in axes:
        idx, w = tables[i]
        ax = i + 2
        shape = list(y.shape)
        a_n, b_n = int(np.prod(shape[:ax])), int(np.prod(shape[ax + 1:]))
        src = np.ascontiguousarray(y).reshape(a_n, shape[ax], b_n)
        if backward:
            shape[ax] = in_shape[ax]
            dst = np.zeros((a_n, shape[ax], b_n), y.dtype)
            if dst.size and src.size:
                _k.taps_backward.for_work(src.size * idx.shape[1])(src, idx, w, dst)
        else:
            shape[ax] = idx.shape[0]
            dst = np.empty((a_n, shape[ax], b_n), y.dtype)
            if dst.size and b_n == 1:
                _k.taps_forward_last.for_work(dst.size * idx.shape[1])(src[:, :, 0], idx, w, dst[:, :, 0])
            elif dst.size:
                _k.taps_forward.for_work(dst.size * idx.shape[1])(src, idx, w, dst)
        y = dst.reshape(shape)
    return y


# --------------------------------------------------------------------------- argument handling

def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _plan(x, size, scale_factor, mode, align_corners, recompute_scale_factor, antialias):
    """Validate as ``torch.nn.functional.interpolate`` does; return (output sizes, scales, align_corners)."""
    if not isinstance(mode, str) or mode not in _MODES:
        raise ValueError(f"interpolate: mode must be one of {_MODES}, got {mode!r}")
    if mode in ("nearest", "area", "nearest-exact"):
        if align_corners is not None:
            raise ValueError("interpolate: align_corners option can only be set with the interpolating modes: "
                             "linear | bilinear | bicubic | trilinear")
        align_corners = False
    elif align_corners is None:
        align_corners = False
    dim = x.ndim - 2
    if dim not in (1, 2, 3):
        raise ValueError(f"interpolate: Only 3D, 4D and 5D input arrays are supported (got {x.ndim}D) "
                         f"for mode {mode!r}")
    need = _MODE_DIMS.get(mode)
    if need is not None and need != dim:
        raise ValueError(f"interpolate: Got {x.ndim}D input, but {mode} mode needs {need + 2}D input")
    if size is not None and scale_factor is not None:
        raise ValueError("interpolate: only one of size or scale_factor should be defined")
    scales = [None] * dim
    if size is not None:
        sizes = list(size) if isinstance(size, (list, tuple)) else [size] * dim
        if len(sizes) != dim:
            raise ValueError(f"interpolate: Input and output must have the same number of spatial dimensions, but "
                             f"got input with spatial dimensions of {list(x.shape[2:])} and output size of {size}")
        if not all(_is_int(s) for s in sizes):
            raise TypeError(f"interpolate: expected size to be an int or a tuple of ints, got {size!r}")
        sizes = [int(s) for s in sizes]
        if recompute_scale_factor:
            raise ValueError("interpolate: recompute_scale_factor is not meaningful with an explicit size.")
    elif scale_factor is not None:
        factors = list(scale_factor) if isinstance(scale_factor, (list, tuple)) else [scale_factor] * dim
        if len(factors) != dim:
            raise ValueError(f"interpolate: Input and scale_factor must have the same number of spatial dimensions, "
                             f"but got input with spatial dimensions of {list(x.shape[2:])} and scale_factor of "
                             f"shape {scale_factor}")
        if not all(isinstance(f, numbers.Real) and not isinstance(f, bool) for f in factors):
            raise TypeError(f"interpolate: scale_factor must be a number or a tuple of numbers, got {scale_factor!r}")
        factors = [float(f) for f in factors]
        sizes = [int(math.floor(n * f)) for n, f in zip(x.shape[2:], factors)]
        if not (recompute_scale_factor or mode == "area"):
            scales = factors
    else:
        raise ValueError("interpolate: either size or scale_factor should be defined")
    if antialias and not (mode in ("bilinear", "bicubic") and x.ndim == 4):
        raise ValueError("interpolate: Anti-alias option is restricted to bilinear and bicubic modes and requires "
                         "a 4-D input")
    if any(s <= 0 for s in sizes) or any(n <= 0 for n in x.shape[2:]):
        raise ValueError(f"interpolate: Input and output sizes should be greater than 0, but got input "
                         f"{list(x.shape[2:])} output {sizes}")
    return sizes, scales, bool(align_corners)


def interpolate_tables(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                       recompute_scale_factor=None, antialias=False):
    """The per-axis tap tables :func:`interpolate` applies (also what its backward transposes)."""
    x = as_array(input, "input")
    sizes, scales, align = _plan(x, size, scale_factor, mode, align_corners, recompute_scale_factor, antialias)
    dtype = float_dtype(x)
    return [axis_taps(mode, n, o, align, s, dtype, antialias) for n, o, s in zip(x.shape[2:], sizes, scales)]


@tensor_aware
def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    r"""Resample the spatial axes, as ``torch.nn.functional.interpolate``.

    Parameters
    ----------
    input : ndarray, shape (N, C, L), (N, C, H, W) or (N, C, D, H, W)
    size : int or tuple of ints, optional
        Output spatial size; exactly one of ``size`` and ``scale_factor``.
    scale_factor : float or tuple of floats, optional
        Output size ``floor(n · s)``; the scale used for the index arithmetic
        is ``1/s`` unless ``recompute_scale_factor`` (then ``n / out``).
    mode : {'nearest', 'nearest-exact', 'linear', 'bilinear', 'bicubic', 'trilinear', 'area'}
        ``linear``/``bilinear``/``trilinear`` need 3-/4-/5-D input, ``bicubic`` 4-D.
    align_corners : bool, optional
        For the interpolating modes: map corner pixel centres onto each other.
    recompute_scale_factor : bool, optional
    antialias : bool, default False
        Bilinear/bicubic on 4-D input: widen the filter by the downscale factor (PIL's filters).

    Shape
    -----
    ``(N, C, *in) → (N, C, *out)``, ``out = size`` or ``floor(in · scale_factor)``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[[0.0, 1.0]]])
    >>> interpolate(x, scale_factor=2, mode="linear", align_corners=False)
    array([[[0.  , 0.25, 0.75, 1.  ]]])
    >>> interpolate(x, size=3, mode="nearest")
    array([[[0., 0., 1.]]])
    """
    x = as_array(input, "input")
    tables = interpolate_tables(x, size, scale_factor, mode, align_corners, recompute_scale_factor, antialias)
    return _apply(x.astype(float_dtype(x), copy=False), tables)


def interpolate_backward(grad_output, input_shape, tables):
    """Gradient of :func:`interpolate` for its input, given the tables of :func:`interpolate_tables`."""
    g = np.asarray(grad_output)
    return _apply(g, tables, backward=True, in_shape=tuple(input_shape))


@tensor_aware
def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """:func:`interpolate` under its old name (``torch.nn.functional.upsample``).

    Examples
    --------
    >>> import numpy as np
    >>> upsample(np.ones((1, 1, 2, 2)), scale_factor=2).shape
    (1, 1, 4, 4)
    """
    return interpolate.ndarray_impl(input, size, scale_factor, mode, align_corners)


@tensor_aware
def upsample_nearest(input, size=None, scale_factor=None):
    """Nearest-neighbour upsampling, ``interpolate(input, size, scale_factor, mode='nearest')``.

    Examples
    --------
    >>> import numpy as np
    >>> upsample_nearest(np.array([[[1.0, 2.0]]]), scale_factor=2)
    array([[[1., 1., 2., 2.]]])
    """
    return interpolate.ndarray_impl(input, size, scale_factor, "nearest")


@tensor_aware
def upsample_bilinear(input, size=None, scale_factor=None):
    """Bilinear upsampling with ``align_corners=True`` (``torch.nn.functional.upsample_bilinear``).

    Examples
    --------
    >>> import numpy as np
    >>> upsample_bilinear(np.array([[[[0.0, 1.0]]]]), size=(1, 3))
    array([[[[0. , 0.5, 1. ]]]])
    """
    return interpolate.ndarray_impl(input, size, scale_factor, "bilinear", True)

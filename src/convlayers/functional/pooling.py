"""Window pooling, 1-D to 3-D: max, average and power-average, with PyTorch's window rules, and gradients.

One core serves every rank: :func:`_planes` validates the input and views it
as (P, D, H, W) planes (a 2-D input has D = 1, a 1-D input D = H = 1, both free
reshapes), :func:`_window` validates the window arguments for ``dims``
spatial axes, and the kernels of :mod:`convlayers._kernels.pool` take the
three-axis geometry.  The public ``*1d/2d/3d`` functions are thin wrappers.
Pooling to a given output size (adaptive, fractional, unpooling) is in
:mod:`.pooling_sized`.
"""

from __future__ import annotations

import numbers

import numpy as np

from .._dispatch import tensor_aware
from .._kernels import pool as _k
from .._kernels import conv_nhwc as _nhwc
from . import _conv_channels_last as _cl
from ..sizes import conv_output_size
from ._validate import as_array, float_dtype

__all__ = [
    "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "lp_pool1d", "lp_pool2d", "lp_pool3d",
    "max_pool_backward", "max_pool2d_backward", "avg_pool_backward", "avg_pool2d_backward", "lp_pool_backward",
]

_LAYOUT = {1: "(C, L)", 2: "(C, H, W)", 3: "(C, D, H, W)"}


def _ntuple(value, dims, name, op, low):
    """An int, or a sequence of 1 or ``dims`` ints, as a ``dims``-tuple of ints >= ``low``."""
    if isinstance(value, bool) or value is None:
        raise TypeError(f"{op}: {name} must be an int or a tuple of {dims} ints, got {value!r}")
    if isinstance(value, numbers.Integral):
        items = (int(value),) * dims
    else:
        try:
            items = tuple(value)
        except TypeError:
            raise TypeError(f"{op}: {name} must be an int or a tuple of {dims} ints, got {value!r}") from None
        if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in items):
            raise TypeError(f"{op}: {name} must be an int or a tuple of {dims} ints, got {value!r}")
        if len(items) == 1:
            items = items * dims
        if len(items) != dims:
            raise ValueError(f"{op}: {name} must be an int or a tuple of {dims} ints, got {value!r}")
        items = tuple(int(v) for v in items)
    if any(v < low for v in items):
        what = "positive" if low == 1 else f">= {low}"
        raise ValueError(f"{op}: {name} must be {what}, got {value!r}")
    return items


def _planes(op, input, dims):
    """Validated input as contiguous float (P, D, H, W) planes, and what :func:`_unplanes` needs.

    Accepts (N, C, *spatial) or unbatched (C, *spatial); every dimension but
    the batch must be non-empty (as PyTorch; an empty batch is fine).
    """
    x = as_array(input, "input")
    if x.ndim not in (dims + 1, dims + 2):
        raise ValueError(f"{op}: input must be {dims + 1}-D {_LAYOUT[dims]} or {dims + 2}-D (N, "
                         f"{_LAYOUT[dims][1:]}, got {x.ndim}-D with shape {x.shape}")
    unbatched = x.ndim == dims + 1
    xb = x[None] if unbatched else x
    if 0 in xb.shape[1:]:
        raise ValueError(f"{op}: input must have non-zero sizes in every dimension but the batch, got shape "
                         f"{x.shape}")
    xb = np.ascontiguousarray(xb, dtype=float_dtype(x))
    n, c = xb.shape[:2]
    spatial = xb.shape[2:]
    planes = xb.reshape(n * c, *((1,) * (3 - dims) + spatial))
    return planes, ((n, c), unbatched, spatial)


def _unplanes(y, info, spatial_out):
    (n, c), unbatched, _ = info
    y = y.reshape(n, c, *spatial_out)
    return y[0] if unbatched else y


def _three(t, fill):
    """A per-axis tuple for ``len(t)`` spatial dims, as the kernels' (D, H, W) geometry."""
    return (fill,) * (3 - len(t)) + tuple(t)


def _window(op, spatial, kernel_size, stride, padding, dilation, ceil_mode):
    """Validated (kernel, stride, padding, dilation, output size) for a sliding window over ``spatial``."""
    dims = len(spatial)
    kernel = _ntuple(kernel_size, dims, "kernel_size", op, 1)
    # stride=None (or an empty list, as torch allows) means stride = kernel_size
    if stride is None or (not isinstance(stride, numbers.Integral) and not isinstance(stride, bool)
                          and hasattr(stride, "__len__") and len(stride) == 0):
        stride = kernel
    stride = _ntuple(stride, dims, "stride", op, 1)
    padding = _ntuple(padding, dims, "padding", op, 0)
    dilation = _ntuple(dilation, dims, "dilation", op, 1)
    for a in range(dims):
        if padding[a] > kernel[a] // 2:
            raise ValueError(f"{op}: padding should be at most half of the kernel size, got padding={padding} "
                             f"and kernel_size={kernel}")
    out = []
    for a in range(dims):
        span = dilation[a] * (kernel[a] - 1) + 1
        if spatial[a] + 2 * padding[a] < span:
            raise ValueError(f"{op}: the window (kernel_size={kernel}, dilation={dilation}) is larger than the "
                             f"padded input {tuple(s + 2 * p for s, p in zip(spatial, padding))}")
        out.append(conv_output_size(spatial[a], kernel[a], stride[a], padding[a], dilation[a], bool(ceil_mode)))
    return kernel, stride, padding, dilation, tuple(out)


def _pool_geometry(op, spatial, kernel_size, stride, padding, dilation, ceil_mode):
    """:func:`_window` under its old name (``convlayers.analysis`` uses it)."""
    return _window(op, tuple(spatial), kernel_size, stride, padding, dilation, ceil_mode)


# --------------------------------------------------------------------------- max pooling

def _max_pool(op, dims, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    if dims == 2 and not return_indices and _cl.is_channels_last(input) and input.dtype.kind == "f":
        # a channels-last batch stays channels-last (as PyTorch), pooled across channel vectors
        kernel, stride, padding, dilation, out_sp = _window(op, input.shape[2:], kernel_size, stride, padding,
                                                            dilation, ceil_mode)
        n, c = input.shape[:2]
        out = np.empty((n, *out_sp, c), dtype=input.dtype)
        _nhwc.max_pool_nhwc.for_work(out.size * kernel[0] * kernel[1])(
            input.transpose(0, 2, 3, 1), *kernel, *stride, *padding, *dilation, out)
        return out.transpose(0, 3, 1, 2)
    x, info = _planes(op, input, dims)
    kernel, stride, padding, dilation, out_sp = _window(
        op, info[2], kernel_size, stride, padding, dilation, ceil_mode)
    k3, s3, p3, d3, o3 = (_three(kernel, 1), _three(stride, 1), _three(padding, 0), _three(dilation, 1),
                          _three(out_sp, 1))
    p_n = x.shape[0]
    out = np.empty((p_n, *o3), dtype=x.dtype)
    if not return_indices:  # inference: the vectorised 2-D kernel that skips the indices
        if x.size:
            src = x
            if (k3[0], s3[0], p3[0]) != (1, 1, 0):
                # 3-D: a depth pass, then the vectorised 2-D kernel.  8x32x16x28x28, 2x2x2/2 at 2 threads (best
                # of 15 on a loaded machine): 4.9 ms, against 31.8 ms for the compiled 3-D kernel (which also
                # writes indices) and 63.6 ms for torch.
                src = np.empty((p_n, o3[0], x.shape[2] * x.shape[3]), dtype=x.dtype)
                _k.max_pool_depth.for_work(x.size)(x.reshape(p_n, x.shape[1], -1), k3[0], s3[0], p3[0], d3[0], src)
            src = src.reshape(-1, x.shape[2], x.shape[3])
            _k.max_pool_values.for_work(src.size)(src, k3[1], k3[2], s3[1], s3[2], p3[1], p3[2], d3[1], d3[2],
                                                  out.reshape(-1, o3[1], o3[2]))
        return _unplanes(out, info, out_sp)
    idx = np.empty((p_n, *o3), dtype=np.int64)
    if x.size:
        _k.max_pool.for_work(x.size)(x, *k3, *s3, *p3, *d3, out, idx)
    return _unplanes(out, info, out_sp), _unplanes(idx, info, out_sp)


_MAX_DOC = """{dims}-D max pooling, as ``torch.nn.functional.max_pool{dims}d``.

    Parameters
    ----------
    input : ndarray, shape {shape} or unbatched, without N
    kernel_size : int or tuple of {dims} ints
    stride : int or tuple of {dims} ints, optional
        Defaults to ``kernel_size`` (non-overlapping windows).
    padding : int or tuple of {dims} ints, default 0
        Implicit -inf padding on both sides; at most half the kernel.
    dilation : int or tuple of {dims} ints, default 1
    ceil_mode : bool, default False
        Round the output size up, keeping a last partial window as long as it
        starts inside the input or the left padding.
    return_indices : bool, default False
        Also return, for each output, the flat index of the maximum within its
        input plane ({flat}; what ``max_unpool{dims}d`` and the backward use).

    Returns
    -------
    ndarray, or (ndarray, ndarray of int64)

    Notes
    -----
    Shape, per spatial axis: ``out = ⌊(n + 2p − d(k−1) − 1)/s⌋ + 1`` (``⌈·⌉``
    with ceil_mode).  NaN propagates: a window holding a NaN returns NaN.

    Examples
    --------
    >>> import numpy as np
{example}
"""


@tensor_aware
def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    return _max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


@tensor_aware
def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    return _max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


@tensor_aware
def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    return _max_pool("max_pool3d", 3, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


max_pool1d.__doc__ = _MAX_DOC.format(dims=1, shape="(N, C, L)", flat="``l``", example="""\
    >>> max_pool1d(np.array([[1.0, 3.0, 2.0, 5.0, 4.0]]), 2, return_indices=True)
    (array([[3., 5.]]), array([[1, 3]]))""")
max_pool2d.__doc__ = _MAX_DOC.format(dims=2, shape="(N, C, H, W)", flat="``h*W + w``", example="""\
    >>> x = np.arange(1.0, 17.0).reshape(1, 4, 4)
    >>> max_pool2d(x, 2)
    array([[[ 6.,  8.],
            [14., 16.]]])""")
max_pool3d.__doc__ = _MAX_DOC.format(dims=3, shape="(N, C, D, H, W)", flat="``(d*H + h)*W + w``", example="""\
    >>> x = np.arange(8.0).reshape(1, 2, 2, 2)
    >>> max_pool3d(x, 2, return_indices=True)
    (array([[[[7.]]]]), array([[[[7]]]]))""")


def max_pool_backward(grad_output, indices, input_shape, dims=2):
    """Gradient of any max pooling (window, adaptive, fractional) with respect to its input.

    Each output's gradient goes to the input position ``indices`` names (flat
    within each plane of the ``dims`` trailing axes of ``input_shape``).

    Examples
    --------
    >>> import numpy as np
    >>> y, i = max_pool1d(np.array([[1.0, 3.0, 2.0, 5.0]]), 2, return_indices=True)
    >>> max_pool_backward(np.ones_like(y), i, (1, 4), dims=1)
    array([[0., 1., 0., 1.]])
    """
    go = as_array(grad_output, "grad_output")
    idx = np.asarray(indices)
    input_shape = tuple(int(s) for s in input_shape)
    if go.shape != idx.shape or len(input_shape) != go.ndim or go.ndim not in (dims + 1, dims + 2):
        raise ValueError(f"max_pool_backward: grad_output {go.shape} and indices {idx.shape} must match and "
                         f"have the rank of input_shape {input_shape} ({dims} spatial dims)")
    if go.shape[:-dims] != input_shape[:-dims]:
        raise ValueError(f"max_pool_backward: leading dims of grad_output {go.shape} and input_shape "
                         f"{input_shape} differ")
    p = int(np.prod(input_shape[:-dims]))
    s = int(np.prod(input_shape[-dims:]))
    go2 = np.ascontiguousarray(go, dtype=float_dtype(go)).reshape(p, int(np.prod(go.shape[-dims:])))
    gx = np.empty((p, s), dtype=go2.dtype)
    if gx.size:
        idx2 = np.ascontiguousarray(idx, dtype=np.int64).reshape(go2.shape)
        if idx2.size and (idx2.min() < 0 or idx2.max() >= s):
            raise ValueError(f"max_pool_backward: indices must lie in [0, {s}), got {idx2.min()}..{idx2.max()}")
        _k.scatter_add.for_work(gx.size)(go2, idx2, gx)
    return gx.reshape(input_shape)


def max_pool2d_backward(grad_output, indices, input_shape):
    """Gradient of :func:`max_pool2d` (and ``adaptive_max_pool2d``) with respect to its input.

    Examples
    --------
    >>> import numpy as np
    >>> y, i = max_pool2d(np.arange(4.0).reshape(1, 2, 2), 2, return_indices=True)
    >>> max_pool2d_backward(np.ones_like(y), i, (1, 2, 2))
    array([[[0., 0.],
            [0., 1.]]])
    """
    return max_pool_backward(grad_output, indices, input_shape, dims=2)


# --------------------------------------------------------------------------- average pooling

def _avg_args(op, spatial, kernel_size, stride, padding, ceil_mode, divisor_override):
    kernel, stride, padding, _, out_sp = _window(op, spatial, kernel_size, stride, padding, 1, ceil_mode)
    if len(spatial) == 3 and any(n < k for n, k in zip(spatial, kernel)):
        # PyTorch's avg_pool3d (only it) wants the unpadded input at least as large as the kernel
        raise ValueError(f"{op}: input {tuple(spatial)} is smaller than kernel_size {kernel}")
    if divisor_override is not None:
        # PyTorch refuses 0 and takes a negative override (the sums divided by it).
        if isinstance(divisor_override, bool) or not isinstance(divisor_override, numbers.Integral):
            raise TypeError(f"{op}: divisor_override must be an int or None, got {divisor_override!r}")
        if divisor_override == 0 or not -2**63 <= divisor_override < 2**63:
            raise ValueError(f"{op}: divisor_override must be a non-zero int64, got {divisor_override!r}")
    divisor = 0 if divisor_override is None else int(divisor_override)
    return kernel, stride, padding, out_sp, divisor


def _avg_pool(op, dims, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    x, info = _planes(op, input, dims)
    kernel, stride, padding, out_sp, divisor = _avg_args(
        op, info[2], kernel_size, stride, padding, ceil_mode, divisor_override)
    k3, s3, p3, o3 = _three(kernel, 1), _three(stride, 1), _three(padding, 0), _three(out_sp, 1)
    p_n = x.shape[0]
    out = np.empty((p_n, *o3), dtype=x.dtype)
    if x.size:
        src = x
        if (k3[0], s3[0], p3[0]) != (1, 1, 0):
            # 3-D: a depth pass (a mean along D, or a plain sum under an override), then the 2-D kernel
            # on its planes; 8x32x16x28x28 3x3x3/2 p1 at 2 threads, best of 15 under load: 4.3 ms (torch 24.4 ms).
            src = np.empty((p_n, o3[0], x.shape[2] * x.shape[3]), dtype=x.dtype)
            _k.avg_pool_depth.for_work(x.size)(x.reshape(p_n, x.shape[1], -1), k3[0], s3[0], p3[0],
                                               bool(count_include_pad), 1 if divisor else 0, src)
        src = src.reshape(-1, x.shape[2], x.shape[3])
        _k.avg_pool.for_work(src.size)(src, k3[1], k3[2], s3[1], s3[2], p3[1], p3[2], bool(count_include_pad),
                                       divisor, out.reshape(-1, o3[1], o3[2]))
    return _unplanes(out, info, out_sp)


_AVG_DOC = """{dims}-D average pooling, as ``torch.nn.functional.avg_pool{dims}d``.

    Parameters
    ----------
    input : ndarray, shape {shape} or unbatched, without N
    kernel_size, stride, padding, ceil_mode
        As :func:`max_pool{dims}d` (padding is zeros here).
    count_include_pad : bool, default True
        Divide by the window size including the zero padding (but never the
        part of a ceil_mode window that hangs past the padding); otherwise by
        the number of real elements.{override}

    Returns
    -------
    ndarray

    Notes
    -----
    Shape, per spatial axis: ``out = ⌊(n + 2p − k)/s⌋ + 1`` (``⌈·⌉`` with ceil_mode).

    Examples
    --------
    >>> import numpy as np
{example}
"""
_OVERRIDE_DOC = """
    divisor_override : int, optional
        Divide every sum by this (non-zero; negative allowed, as PyTorch) instead."""


@tensor_aware
def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    return _avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode, count_include_pad, None)


@tensor_aware
def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    return _avg_pool("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


@tensor_aware
def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    return _avg_pool("avg_pool3d", 3, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


avg_pool1d.__doc__ = _AVG_DOC.format(dims=1, shape="(N, C, L)", override="", example="""\
    >>> avg_pool1d(np.array([[1.0, 3.0, 2.0, 6.0]]), 2)
    array([[2., 4.]])""")
avg_pool2d.__doc__ = _AVG_DOC.format(dims=2, shape="(N, C, H, W)", override=_OVERRIDE_DOC, example="""\
    >>> avg_pool2d(np.arange(1.0, 17.0).reshape(1, 4, 4), 2)
    array([[[ 3.5,  5.5],
            [11.5, 13.5]]])""")
avg_pool3d.__doc__ = _AVG_DOC.format(dims=3, shape="(N, C, D, H, W)", override=_OVERRIDE_DOC, example="""\
    >>> avg_pool3d(np.arange(8.0).reshape(1, 2, 2, 2), 2)
    array([[[[3.5]]]])""")


def avg_pool_backward(grad_output, input_shape, kernel_size, stride=None, padding=0, ceil_mode=False,
                      count_include_pad=True, divisor_override=None, dims=2):
    """Gradient of ``avg_pool{dims}d`` with respect to its input (shape ``input_shape``).

    Examples
    --------
    >>> import numpy as np
    >>> avg_pool_backward(np.ones((1, 1)), (1, 4), 2, stride=4, dims=1)
    array([[0.5, 0.5, 0. , 0. ]])
    """
    op = f"avg_pool{dims}d_backward"
    go = as_array(grad_output, "grad_output")
    input_shape = tuple(int(s) for s in input_shape)
    if go.ndim not in (dims + 1, dims + 2) or len(input_shape) != go.ndim or go.shape[:-dims] != input_shape[:-dims]:
        raise ValueError(f"{op}: grad_output {go.shape} does not fit input_shape {input_shape}")
    spatial = input_shape[-dims:]
    kernel, stride, padding, out_sp, divisor = _avg_args(
        op, spatial, kernel_size, stride, padding, ceil_mode, divisor_override)
    if go.shape[-dims:] != out_sp:
        raise ValueError(f"{op}: grad_output must end in {out_sp}, got {go.shape}")
    p = int(np.prod(input_shape[:-dims]))
    go4 = np.ascontiguousarray(go, dtype=float_dtype(go)).reshape(p, *_three(out_sp, 1))
    gx = np.empty((p, *_three(spatial, 1)), dtype=go4.dtype)
    if gx.size:
        _k.avg_pool_backward.for_work(gx.size)(go4, *_three(kernel, 1), *_three(stride, 1), *_three(padding, 0),
                                               bool(count_include_pad), divisor, gx)
    return gx.reshape(input_shape)


def avg_pool2d_backward(grad_output, input_shape, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None):
    """Gradient of :func:`avg_pool2d` with respect to its input (shape ``input_shape``).

    Examples
    --------
    >>> import numpy as np
    >>> avg_pool2d_backward(np.ones((1, 1, 1)), (1, 2, 2), 2)
    array([[[0.25, 0.25],
            [0.25, 0.25]]])
    """
    return avg_pool_backward(grad_output, input_shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                             divisor_override, dims=2)


# --------------------------------------------------------------------------- power-average pooling

def _lp_norm(op, norm_type):
    if isinstance(norm_type, bool) or not isinstance(norm_type, numbers.Real):
        raise TypeError(f"{op}: norm_type must be a number, got {norm_type!r}")
    if norm_type == 0:
        raise ValueError(f"{op}: norm_type must be non-zero, got {norm_type!r}")
    return float(norm_type)


def _lp_pool(op, dims, input, norm_type, kernel_size, stride, ceil_mode):
    p = _lp_norm(op, norm_type)
    pool = (max_pool1d, max_pool2d, max_pool3d)[dims - 1].ndarray_impl
    avg = (avg_pool1d, avg_pool2d, avg_pool3d)[dims - 1].ndarray_impl
    x = as_array(input, "input")
    if np.isinf(p):  # PyTorch: the max of |x| (or minus the max of -|x|)
        x = np.abs(x)
        return pool(x, kernel_size, stride, 0, 1, ceil_mode) if p > 0 else -pool(-x, kernel_size, stride, 0, 1,
                                                                                     ceil_mode)
    kernel = _ntuple(kernel_size, dims, "kernel_size", op, 1)
    xf = x.astype(float_dtype(x), copy=False)
    a = avg(np.power(xf, xf.dtype.type(p)), kernel_size, stride, 0, ceil_mode)
    # As PyTorch: (mean of x^p) * (full window size), then the 1/p-th power, even for ceil_mode's partial windows.
    return np.power(a * xf.dtype.type(np.prod(kernel)), xf.dtype.type(1.0 / p))


_LP_DOC = """{dims}-D power-average pooling, as ``torch.nn.functional.lp_pool{dims}d``.

    ``out = (Σ_window x^p)^(1/p)``, computed as PyTorch does: the mean of ``x^p``
    over each window times the kernel's size, to the power ``1/p``; ``p = ∞``
    is the max of ``|x|``.  No padding.

    Parameters
    ----------
    input : ndarray, shape {shape} or unbatched, without N
    norm_type : float
        ``p`` (non-zero).
    kernel_size, stride, ceil_mode
        As :func:`avg_pool{dims}d`.

    Notes
    -----
    Shape, per spatial axis: ``out = ⌊(n − k)/s⌋ + 1`` (``⌈·⌉`` with ceil_mode).

    Examples
    --------
    >>> import numpy as np
{example}
"""


@tensor_aware
def lp_pool1d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    return _lp_pool("lp_pool1d", 1, input, norm_type, kernel_size, stride, ceil_mode)


@tensor_aware
def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    return _lp_pool("lp_pool2d", 2, input, norm_type, kernel_size, stride, ceil_mode)


@tensor_aware
def lp_pool3d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    return _lp_pool("lp_pool3d", 3, input, norm_type, kernel_size, stride, ceil_mode)


lp_pool1d.__doc__ = _LP_DOC.format(dims=1, shape="(N, C, L)", example="""\
    >>> lp_pool1d(np.array([[3.0, 4.0, 6.0, 8.0]]), 2, 2)
    array([[ 5., 10.]])""")
lp_pool2d.__doc__ = _LP_DOC.format(dims=2, shape="(N, C, H, W)", example="""\
    >>> lp_pool2d(np.full((1, 2, 2), 2.0), 2, 2)
    array([[[4.]]])""")
lp_pool3d.__doc__ = _LP_DOC.format(dims=3, shape="(N, C, D, H, W)", example="""\
    >>> lp_pool3d(np.ones((1, 2, 2, 2)), 1, 2)
    array([[[[8.]]]])""")


def lp_pool_backward(grad_output, input, norm_type, kernel_size, stride=None, ceil_mode=False, dims=2):
    """Gradient of ``lp_pool{dims}d`` with respect to its input.

    Zero where a window's sum of ``x^p`` is zero (as PyTorch documents).

    Examples
    --------
    >>> import numpy as np
    >>> lp_pool_backward(np.ones((1, 1)), np.array([[3.0, 4.0]]), 2, 2, dims=1)
    array([[0.6, 0.8]])
    """
    op = f"lp_pool{dims}d_backward"
    p = _lp_norm(op, norm_type)
    x = as_array(input, "input")
    xf = x.astype(float_dtype(x), copy=False)
    g = as_array(grad_output, "grad_output").astype(xf.dtype, copy=False)
    if np.isinf(p):
        pool = (max_pool1d, max_pool2d, max_pool3d)[dims - 1].ndarray_impl
        u = np.abs(xf) if p > 0 else -np.abs(xf)
        _, idx = pool(u, kernel_size, stride, 0, 1, ceil_mode, return_indices=True)
        return max_pool_backward(g, idx, xf.shape, dims) * np.sign(xf)
    avg = (avg_pool1d, avg_pool2d, avg_pool3d)[dims - 1].ndarray_impl
    kernel = _ntuple(kernel_size, dims, "kernel_size", op, 1)
    size = xf.dtype.type(np.prod(kernel))
    t = xf.dtype.type
    y = np.power(xf, t(p))
    a = avg(y, kernel_size, stride, 0, ceil_mode)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ga = np.where(a != 0, g * size * t(1.0 / p) * np.power(a * size, t(1.0 / p - 1.0)), t(0))
        gy = avg_pool_backward(ga, xf.shape, kernel_size, stride, 0, ceil_mode, True, None, dims)
        return gy * t(p) * np.power(xf, t(p - 1.0))

"""Pooling: max, average and adaptive, with PyTorch's window rules, and their gradients."""

from __future__ import annotations

import numbers

import numpy as np

from .._dispatch import tensor_aware
from .._kernels import pool as _k
from ..sizes import conv_output_size
from ._validate import as_array, batched, float_dtype, nonneg_pair, positive_pair

__all__ = [
    "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d",
    "max_pool2d_backward", "avg_pool2d_backward", "adaptive_avg_pool2d_backward",
]


def _planes(op, input):
    """Validated input as contiguous (P, H, W) planes of a float dtype, plus how to restore its shape."""
    x = as_array(input, "input")
    x4, unbatched = batched(x, "input", op)
    x4 = np.ascontiguousarray(x4, dtype=float_dtype(x))
    n, c, h, w = x4.shape
    return x4.reshape(n * c, h, w), (n, c), unbatched


def _unplanes(y, nc, unbatched):
    y = y.reshape(nc[0], nc[1], *y.shape[1:])
    return y[0] if unbatched else y


def _pool_geometry(op, hw, kernel_size, stride, padding, dilation, ceil_mode):
    kernel = positive_pair(kernel_size, "kernel_size", op)
    # stride=None (or an empty list, as torch allows) means stride = kernel_size
    if stride is None or (not isinstance(stride, numbers.Integral) and len(stride) == 0):
        stride = kernel
    stride = positive_pair(stride, "stride", op)
    padding = nonneg_pair(padding, "padding", op)
    dilation = positive_pair(dilation, "dilation", op)
    for a in range(2):
        if padding[a] > kernel[a] // 2:
            raise ValueError(f"{op}: padding should be at most half of the kernel size, got padding={padding} "
                             f"and kernel_size={kernel}")
    out = []
    for a in range(2):
        span = dilation[a] * (kernel[a] - 1) + 1
        if hw[a] + 2 * padding[a] < span:
            raise ValueError(f"{op}: the window (kernel_size={kernel}, dilation={dilation}) is larger than the "
                             f"padded input ({hw[0] + 2 * padding[0]} x {hw[1] + 2 * padding[1]})")
        out.append(conv_output_size(hw[a], kernel[a], stride[a], padding[a], dilation[a], bool(ceil_mode)))
    return kernel, stride, padding, dilation, tuple(out)


@tensor_aware
def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """2-D max pooling, as ``torch.nn.functional.max_pool2d``.

    Parameters
    ----------
    input : ndarray, shape (N, C, H, W) or (C, H, W)
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel_size`` (non-overlapping windows).
    padding : int or (int, int), default 0
        Implicit -inf padding on both sides; at most half the kernel.
    dilation : int or (int, int), default 1
    ceil_mode : bool, default False
        Round the output size up, keeping a last partial window as long as it
        starts inside the input or the left padding.
    return_indices : bool, default False
        Also return, for each output, the flat index ``h*W + w`` of the maximum
        within its input plane (what ``max_unpool2d`` and the backward use).

    Returns
    -------
    ndarray, or (ndarray, ndarray of int64)

    Notes
    -----
    Shape: ``H_out = ⌊(H + 2p − d(k−1) − 1)/s⌋ + 1`` (``⌈·⌉`` with ceil_mode).
    NaN propagates: a window holding a NaN returns NaN.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(1.0, 17.0).reshape(1, 4, 4)
    >>> max_pool2d(x, 2)
    array([[[ 6.,  8.],
            [14., 16.]]])
    """
    op = "max_pool2d"
    x, nc, unbatched = _planes(op, input)
    kernel, stride, padding, dilation, (ho, wo) = _pool_geometry(
        op, x.shape[1:], kernel_size, stride, padding, dilation, ceil_mode)
    out = np.empty((x.shape[0], ho, wo), dtype=x.dtype)
    geometry = (kernel[0], kernel[1], stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1])
    if not return_indices:  # inference: a vectorised kernel that skips the indices
        if x.size:
            _k.max_pool_values.for_work(x.size)(x, *geometry, out)
        return _unplanes(out, nc, unbatched)
    idx = np.empty((x.shape[0], ho, wo), dtype=np.int64)
    if x.size:
        _k.max_pool.for_work(x.size)(x, *geometry, out, idx)
    return _unplanes(out, nc, unbatched), _unplanes(idx, nc, unbatched)


def max_pool2d_backward(grad_output, indices, input_shape):
    """Gradient of :func:`max_pool2d` (and :func:`adaptive_max_pool2d`) with respect to its input.

    Each output's gradient goes to the input position that won its window.

    Examples
    --------
    >>> import numpy as np
    >>> y, i = max_pool2d(np.arange(4.0).reshape(1, 2, 2), 2, return_indices=True)
    >>> max_pool2d_backward(np.ones_like(y), i, (1, 2, 2))
    array([[[0., 0.],
            [0., 1.]]])
    """
    go = as_array(grad_output, "grad_output")
    idx = np.asarray(indices)
    input_shape = tuple(int(s) for s in input_shape)
    if go.shape != idx.shape or len(input_shape) != go.ndim or go.ndim not in (3, 4):
        raise ValueError(f"max_pool2d_backward: grad_output {go.shape} and indices {idx.shape} must match and "
                         f"have the rank of input_shape {input_shape}")
    if go.shape[:-2] != input_shape[:-2]:
        raise ValueError(f"max_pool2d_backward: leading dims of grad_output {go.shape} and input_shape "
                         f"{input_shape} differ")
    h, w = input_shape[-2:]
    p = int(np.prod(input_shape[:-2]))
    go3 = np.ascontiguousarray(go, dtype=float_dtype(go)).reshape(p, *go.shape[-2:])
    gx = np.empty((p, h, w), dtype=go3.dtype)
    if gx.size:
        idx3 = np.ascontiguousarray(idx, dtype=np.int64).reshape(go3.shape)
        _k.max_pool_backward.for_work(gx.size)(go3, idx3, gx)
    return gx.reshape(input_shape)


def _avg_args(op, hw, kernel_size, stride, padding, ceil_mode, divisor_override):
    kernel, stride, padding, _, out_hw = _pool_geometry(op, hw, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None:
        if isinstance(divisor_override, bool) or not isinstance(divisor_override, numbers.Integral) \
                or divisor_override == 0 or not -2**63 <= divisor_override < 2**63:
            raise ValueError(f"{op}: divisor_override must be a non-zero int or None, got {divisor_override!r}")
    divisor = 0 if divisor_override is None else int(divisor_override)
    return kernel, stride, padding, out_hw, divisor


@tensor_aware
def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """2-D average pooling, as ``torch.nn.functional.avg_pool2d``.

    Parameters
    ----------
    input : ndarray, shape (N, C, H, W) or (C, H, W)
    kernel_size, stride, padding, ceil_mode
        As :func:`max_pool2d` (padding is zeros here).
    count_include_pad : bool, default True
        Divide by the window size including the zero padding (but never the
        part of a ceil_mode window that hangs past the padding); otherwise by
        the number of real pixels.
    divisor_override : int, optional
        Divide every sum by this instead.

    Returns
    -------
    ndarray, shape (N, C, H_out, W_out)

    Notes
    -----
    Shape: ``H_out = ⌊(H + 2p − k)/s⌋ + 1`` (``⌈·⌉`` with ceil_mode).

    Examples
    --------
    >>> import numpy as np
    >>> avg_pool2d(np.arange(1.0, 17.0).reshape(1, 4, 4), 2)
    array([[[ 3.5,  5.5],
            [11.5, 13.5]]])
    """
    op = "avg_pool2d"
    x, nc, unbatched = _planes(op, input)
    kernel, stride, padding, (ho, wo), divisor = _avg_args(
        op, x.shape[1:], kernel_size, stride, padding, ceil_mode, divisor_override)
    out = np.empty((x.shape[0], ho, wo), dtype=x.dtype)
    if x.size:
        _k.avg_pool.for_work(x.size)(x, kernel[0], kernel[1], stride[0], stride[1], padding[0], padding[1],
                    bool(count_include_pad), divisor, out)
    return _unplanes(out, nc, unbatched)


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
    op = "avg_pool2d_backward"
    go = as_array(grad_output, "grad_output")
    input_shape = tuple(int(s) for s in input_shape)
    if go.ndim not in (3, 4) or len(input_shape) != go.ndim or go.shape[:-2] != input_shape[:-2]:
        raise ValueError(f"{op}: grad_output {go.shape} does not fit input_shape {input_shape}")
    kernel, stride, padding, out_hw, divisor = _avg_args(
        op, input_shape[-2:], kernel_size, stride, padding, ceil_mode, divisor_override)
    if go.shape[-2:] != out_hw:
        raise ValueError(f"{op}: grad_output must end in {out_hw}, got {go.shape}")
    p = int(np.prod(input_shape[:-2]))
    go3 = np.ascontiguousarray(go, dtype=float_dtype(go)).reshape(p, *out_hw)
    gx = np.empty((p, *input_shape[-2:]), dtype=go3.dtype)
    if gx.size:
        _k.avg_pool_backward.for_work(gx.size)(go3, kernel[0], kernel[1], stride[0], stride[1], padding[0],
                                               padding[1], bool(count_include_pad), divisor, gx)
    return gx.reshape(input_shape)


def _adaptive_size(op, output_size, hw):
    if isinstance(output_size, numbers.Integral) and not isinstance(output_size, bool):
        output_size = (output_size, output_size)
    try:
        oh, ow = output_size
    except (TypeError, ValueError):
        raise TypeError(f"{op}: output_size must be an int or a pair (int or None), got {output_size!r}") from None
    oh = hw[0] if oh is None else oh
    ow = hw[1] if ow is None else ow
    for v in (oh, ow):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{op}: output_size must be an int or a pair (int or None), got {output_size!r}")
        if v <= 0:
            raise ValueError(f"{op}: output_size must be positive, got {output_size!r}")
    if hw[0] == 0 or hw[1] == 0:
        raise ValueError(f"{op}: input has an empty spatial size {tuple(hw)}")
    return int(oh), int(ow)


@tensor_aware
def adaptive_avg_pool2d(input, output_size):
    """Average pooling to a fixed output size, as ``torch.nn.functional.adaptive_avg_pool2d``.

    Output cell ``i`` averages input rows ``⌊i·H/H_out⌋`` to ``⌈(i+1)·H/H_out⌉ − 1``
    (windows may overlap when H is not a multiple of H_out).

    Parameters
    ----------
    input : ndarray, shape (N, C, H, W) or (C, H, W)
    output_size : int or (int or None, int or None)
        ``None`` keeps that input dimension.

    Examples
    --------
    >>> import numpy as np
    >>> adaptive_avg_pool2d(np.arange(1.0, 17.0).reshape(1, 4, 4), 1)
    array([[[8.5]]])
    """
    op = "adaptive_avg_pool2d"
    x, nc, unbatched = _planes(op, input)
    oh, ow = _adaptive_size(op, output_size, x.shape[1:])
    out = np.empty((x.shape[0], oh, ow), dtype=x.dtype)
    if x.size:
        _k.adaptive_avg_pool.for_work(x.size)(x, out)
    return _unplanes(out, nc, unbatched)


def adaptive_avg_pool2d_backward(grad_output, input_shape):
    """Gradient of :func:`adaptive_avg_pool2d` with respect to its input.

    Examples
    --------
    >>> import numpy as np
    >>> adaptive_avg_pool2d_backward(np.ones((1, 1, 1)), (1, 2, 2))
    array([[[0.25, 0.25],
            [0.25, 0.25]]])
    """
    go = as_array(grad_output, "grad_output")
    input_shape = tuple(int(s) for s in input_shape)
    if go.ndim not in (3, 4) or len(input_shape) != go.ndim or go.shape[:-2] != input_shape[:-2]:
        raise ValueError(f"adaptive_avg_pool2d_backward: grad_output {go.shape} does not fit input_shape "
                         f"{input_shape}")
    p = int(np.prod(input_shape[:-2]))
    go3 = np.ascontiguousarray(go, dtype=float_dtype(go)).reshape(p, *go.shape[-2:])
    gx = np.empty((p, *input_shape[-2:]), dtype=go3.dtype)
    if gx.size:
        _k.adaptive_avg_pool_backward.for_work(gx.size)(go3, gx)
    return gx.reshape(input_shape)


@tensor_aware
def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Max pooling to a fixed output size, as ``torch.nn.functional.adaptive_max_pool2d``.

    Windows as :func:`adaptive_avg_pool2d`; indices as :func:`max_pool2d`.

    Examples
    --------
    >>> import numpy as np
    >>> adaptive_max_pool2d(np.arange(1.0, 17.0).reshape(1, 4, 4), (2, 1))
    array([[[ 8.],
            [16.]]])
    """
    op = "adaptive_max_pool2d"
    x, nc, unbatched = _planes(op, input)
    oh, ow = _adaptive_size(op, output_size, x.shape[1:])
    out = np.empty((x.shape[0], oh, ow), dtype=x.dtype)
    idx = np.empty((x.shape[0], oh, ow), dtype=np.int64)
    if x.size:
        _k.adaptive_max_pool.for_work(x.size)(x, out, idx)
    out = _unplanes(out, nc, unbatched)
    return (out, _unplanes(idx, nc, unbatched)) if return_indices else out

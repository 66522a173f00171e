"""``pad``: PyTorch's padding of the last dimensions, and its adjoint."""

from __future__ import annotations

import numbers

import numpy as np

from .._dispatch import tensor_aware
from ._validate import as_array

__all__ = ["pad"]


def _pad_widths(shape, pad, mode):
    """Check ``pad`` and turn it into NumPy's per-axis (before, after) list."""
    if isinstance(pad, numbers.Integral) or not hasattr(pad, "__len__"):
        raise TypeError(f"pad: pad must be a tuple of ints (left, right, top, bottom, ...), got {pad!r}")
    pad = tuple(pad)
    if not all(isinstance(p, numbers.Integral) and not isinstance(p, bool) for p in pad):
        raise TypeError(f"pad: pad must contain only ints, got {pad!r}")
    if len(pad) % 2 or len(pad) // 2 > len(shape):
        raise ValueError(f"pad: pad length must be even and at most 2*ndim={2 * len(shape)}, got {len(pad)}")
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise ValueError(f"pad: mode must be 'constant', 'reflect', 'replicate' or 'circular', got {mode!r}")
    widths = [(0, 0)] * len(shape)
    for k in range(len(pad) // 2):
        axis = len(shape) - 1 - k
        before, after = int(pad[2 * k]), int(pad[2 * k + 1])
        size = shape[axis]
        if mode != "constant":
            # PyTorch checks the pad widths against the input (before any crop by a negative width)
            if mode == "reflect" and (before >= size or after >= size):
                raise ValueError(
                    f"pad: reflect padding must be smaller than the input dimension: pad ({before}, {after}) "
                    f"on axis {axis} of size {size}")
            if mode == "circular" and (before > size or after > size):
                raise ValueError(
                    f"pad: circular padding must be at most the input dimension: pad ({before}, {after}) "
                    f"on axis {axis} of size {size}")
            if mode == "replicate" and size == 0 and (before or after):
                raise ValueError(f"pad: replicate padding needs a non-empty axis {axis}")
            if mode == "circular":
                kept = size - max(-before, 0) - max(-after, 0)
                if size + before + after < 0 or max(before, after) > max(kept, 0):
                    # PyTorch returns uninitialised memory or fails here: wrapping must stay inside the crop
                    raise ValueError(f"pad: circular padding {pad!r} on axis {axis} of size {size} must leave a "
                                     f"non-negative size and wrap at most the {max(kept, 0)} elements kept")
            elif size + before + after <= 0 and (before or after):
                raise ValueError(f"pad: padding {pad!r} leaves an empty axis {axis} of size {size} "
                                 f"({size} + {before} + {after})")
        elif size - max(-before, 0) - max(-after, 0) < 0:
            # PyTorch crops (negative widths) before it pads, and refuses a crop larger than the axis:
            # (3, -3) on 2 elements is an error there, not 2 + 3 - 3 = 2 elements.
            raise ValueError(f"pad: padding {pad!r} crops more than the {size} elements of axis {axis}")
        widths[axis] = (before, after)
    if mode != "constant":
        # PyTorch pads k = 1..3 spatial dims of a batched (k+2)-D or unbatched (k+1)-D input.
        k = len(pad) // 2
        if not (1 <= k <= 3 and len(shape) in (k + 1, k + 2)):
            raise ValueError(f"pad: {mode} padding of {k} dims (pad length {len(pad)}) is not supported for a "
                             f"{len(shape)}-D input; use a {k + 1}-D or {k + 2}-D input")
    return widths


@tensor_aware
def pad(input, pad, mode="constant", value=None):
    """Pad the last dimensions of an array, as ``torch.nn.functional.pad``.

    Parameters
    ----------
    input : ndarray
        Any shape; ``pad`` applies to the trailing axes.
    pad : tuple of int
        ``(left, right)`` for the last axis, then ``(top, bottom)`` for the one
        before, and so on.  Negative values crop that side first (in every mode, as PyTorch).
    mode : {'constant', 'reflect', 'replicate', 'circular'}
        ``reflect`` mirrors without repeating the edge, ``replicate`` repeats
        the edge, ``circular`` wraps around.
    value : float, optional
        Fill value for ``'constant'`` (default 0).

    Returns
    -------
    ndarray
        Shape: each padded axis grows by ``before + after``.

    Examples
    --------
    >>> import numpy as np
    >>> pad(np.array([[1., 2., 3.]]), (2, 1), mode="reflect")
    array([[3., 2., 1., 2., 3., 2.]])
    """
    x = as_array(input, "input")
    widths = _pad_widths(x.shape, pad, mode)
    if mode == "constant":
        fill = 0 if value is None else value
        crop = tuple(slice(max(-b, 0), x.shape[i] - max(-a, 0)) for i, (b, a) in enumerate(widths))
        x = x[crop]
        grow = [(max(b, 0), max(a, 0)) for b, a in widths]
        return np.pad(x, grow, mode="constant", constant_values=fill)
    if value not in (None, 0):
        raise ValueError(f"pad: value is only used in 'constant' mode, got value={value!r} with mode={mode!r}")
    if x.dtype == np.bool_ and mode in ("reflect", "replicate"):
        raise TypeError(f"pad: {mode} padding of a bool array is not supported (as in PyTorch); "
                        f"convert it to a numeric dtype first")
    return _gather(x, widths, mode)


def _source_index(size, before, after, mode):
    """For each position of one padded axis, the input position it copies (PyTorch's rule, negative widths too).

    A negative width crops that side first; reflect and replicate follow
    PyTorch's index formula (on the input's own size, offset by the crop), and
    circular wraps the cropped axis as PyTorch copies it, left side first.
    """
    out = size + before + after
    j = np.arange(out)
    if mode == "circular":
        o0, o1 = max(before, 0), out - max(after, 0)
        idx = np.full(out, -1, dtype=np.int64)
        idx[o0:o1] = np.arange(max(-before, 0), size - max(-after, 0))
        if before > 0:
            idx[:before] = idx[out - before - max(after, 0):out - max(after, 0)]
        if after > 0:
            idx[out - after:] = idx[o0:o0 + after]
        return idx
    if mode == "reflect":
        idx = np.where(j < before, 2 * before - j, np.where(j < size + before, j, 2 * (size + before - 1) - j))
    else:  # replicate
        idx = np.where(j < before, before, np.where(j < size + before, j, size + before - 1))
    return (idx - max(before, 0) + max(-before, 0)).astype(np.int64)


def _gather(x, widths, mode):
    """``x`` padded with a non-constant mode: one ``take`` along each padded axis."""
    for axis, (before, after) in enumerate(widths):
        if before or after:
            x = np.take(x, _source_index(x.shape[axis], before, after, mode), axis=axis)
    return np.ascontiguousarray(x)


def pad_backward(grad_output, input_shape, pad, mode="constant"):
    """Adjoint of :func:`pad`: the gradient with respect to its input.

    Each output position came from one input position (or from the fill value);
    padding a grid of flat input indices with the same mode tells which, and
    ``bincount`` adds the gradients that share a source.

    Examples
    --------
    >>> import numpy as np
    >>> pad_backward(np.ones((1, 5)), (1, 3), (1, 1), mode="replicate")   # edges were copied twice
    array([[2., 1., 2.]])
    """
    widths = _pad_widths(tuple(input_shape), pad, mode)
    g = np.asarray(grad_output)
    size = int(np.prod(input_shape))
    index = np.arange(size, dtype=np.int64).reshape(input_shape)
    if mode == "constant":
        crop = tuple(slice(max(-b, 0), input_shape[i] - max(-a, 0)) for i, (b, a) in enumerate(widths))
        pad_indices = np.pad(index[crop], [(max(b, 0), max(a, 0)) for b, a in widths], constant_values=-1)
    else:
        pad_indices = _gather(index, widths, mode)
    keep = pad_indices.ravel() >= 0
    flat = np.bincount(pad_indices.ravel()[keep], weights=g.ravel()[keep], minlength=size)
    return flat.reshape(input_shape).astype(g.dtype, copy=False)

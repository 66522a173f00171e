"""Sliding blocks: ``unfold`` (im2col) and ``fold`` (col2im), each the other's gradient.

Both loop over the ``k_h·k_w`` kernel offsets in Python and move one strided
slice of every block per offset (vectorised over batch, channels and
positions): the kernel is small, the slices are large.
"""

from __future__ import annotations

import numpy as np

from .._dispatch import tensor_aware
from ._validate import as_array, float_dtype, nonneg_pair, positive_pair

__all__ = ["unfold", "fold"]


def _params(op, kernel_size, dilation, padding, stride):
    return (positive_pair(kernel_size, "kernel_size", op), positive_pair(dilation, "dilation", op),
            nonneg_pair(padding, "padding", op), positive_pair(stride, "stride", op))


def _blocks(op, spatial, k, d, p, s):
    out = [(spatial[i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(2)]
    if out[0] < 1 or out[1] < 1:
        raise ValueError(f"{op}: Given input with spatial size {tuple(spatial)}, kernel_size={k}, dilation={d}, "
                         f"padding={p}, stride={s}, calculated shape of the array of sliding blocks as "
                         f"{tuple(out)}, but its components must be at least one.")
    return out


def _offsets(k, d, s, out):
    for i in range(k[0]):
        for j in range(k[1]):
            yield i, j, (slice(i * d[0], i * d[0] + s[0] * (out[0] - 1) + 1, s[0]),
                         slice(j * d[1], j * d[1] + s[1] * (out[1] - 1) + 1, s[1]))


@tensor_aware
def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    r"""Extract sliding local blocks, as ``torch.nn.functional.unfold``.

    Parameters
    ----------
    input : ndarray, shape (N, C, H, W) or (C, H, W)
    kernel_size, dilation, padding, stride : int or pair

    Shape
    -----
    Output ``(N, C·k_h·k_w, L)``, ``L = Π_d ⌊(n_d + 2p_d − d_d(k_d − 1) − 1)/s_d⌋ + 1``;
    row ``c·k_h·k_w + i·k_w + j`` holds offset ``(i, j)`` of channel ``c``.

    Examples
    --------
    >>> import numpy as np
    >>> unfold(np.arange(9.0).reshape(1, 1, 3, 3), 2)[0]
    array([[0., 1., 3., 4.],
           [1., 2., 4., 5.],
           [3., 4., 6., 7.],
           [4., 5., 7., 8.]])
    """
    x = as_array(input, "input")
    if x.ndim not in (3, 4):
        raise ValueError(f"unfold: Expected 3D (unbatched) or 4D (batched) input, but got input of shape {x.shape}")
    k, d, p, s = _params("unfold", kernel_size, dilation, padding, stride)
    squeeze = x.ndim == 3
    x4 = x[None] if squeeze else x
    if any(n == 0 for n in x4.shape[1:]):
        raise ValueError(f"unfold: Expected non-empty channel and spatial dimensions, got input of shape {x.shape}")
    n, c, h, w = x4.shape
    out = _blocks("unfold", (h, w), k, d, p, s)
    xp = np.pad(x4, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    cols = np.empty((n, c, k[0], k[1], out[0], out[1]), x.dtype)
    for i, j, sl in _offsets(k, d, s, out):
        cols[:, :, i, j] = xp[:, :, sl[0], sl[1]]
    cols = cols.reshape(n, c * k[0] * k[1], out[0] * out[1])
    return cols[0] if squeeze else cols


@tensor_aware
def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    r"""Sum sliding local blocks into an image, as ``torch.nn.functional.fold`` (the adjoint of :func:`unfold`).

    Parameters
    ----------
    input : ndarray, shape (N, C·k_h·k_w, L) or (C·k_h·k_w, L)
    output_size : int or pair
    kernel_size, dilation, padding, stride : int or pair

    Shape
    -----
    Output ``(N, C, *output_size)``; ``L`` must equal the number of blocks
    :func:`unfold` would extract from that size.

    Examples
    --------
    >>> import numpy as np
    >>> fold(np.ones((1, 4, 4)), (3, 3), 2)[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    cols = as_array(input, "input")
    if cols.ndim not in (2, 3):
        raise ValueError(f"fold: Expected 2D (unbatched) or 3D (batched) input, but got input of shape {cols.shape}")
    size = positive_pair(output_size, "output_size", "fold")
    k, d, p, s = _params("fold", kernel_size, dilation, padding, stride)
    squeeze = cols.ndim == 2
    c3 = cols[None] if squeeze else cols
    n, ck, l_n = c3.shape
    kk = k[0] * k[1]
    if ck % kk or (ck == 0 and n):
        raise ValueError(f"fold: Expected size of input's dimension 1 to be divisible by the product of "
                         f"kernel_size, but got input.size(1)={ck} and kernel_size={k}")
    out = _blocks("fold", size, k, d, p, s)
    if out[0] * out[1] != l_n:
        raise ValueError(f"fold: Given output_size={size}, kernel_size={k}, dilation={d}, padding={p}, stride={s}, "
                         f"expected size of input's dimension 2 to match the calculated number of sliding blocks "
                         f"{out[0]} * {out[1]} = {out[0] * out[1]}, but got input.size(2)={l_n}.")
    c = ck // kk
    dtype = float_dtype(c3)
    blocks = c3.reshape(n, c, k[0], k[1], out[0], out[1])
    img = np.zeros((n, c, size[0] + 2 * p[0], size[1] + 2 * p[1]), dtype)
    for i, j, sl in _offsets(k, d, s, out):
        img[:, :, sl[0], sl[1]] += blocks[:, :, i, j]
    img = img[:, :, p[0]:p[0] + size[0], p[1]:p[1] + size[1]]
    img = np.ascontiguousarray(img)
    return img[0] if squeeze else img

"""Contiguous reorders of weights and gradients for the convolution paths, by cache-blocked copies.

NumPy's strided copies (``np.ascontiguousarray`` of a transposed view) were
the slowest part of some layers: the weight gradient of a 512→512 3×3
convolution spent 17 ms of ~40 on its final (4608, 512) transpose, and the
channels-last weight reorder took 9.4 ms for 512×512 filters (2-core Intel
Xeon VM).  These run the blocked kernels of :mod:`convlayers._kernels.layout`
instead; small arrays stay with NumPy, where the call costs more than the
copy.
"""

from __future__ import annotations

import numpy as np

from .._kernels import conv_nhwc as _nhwc_k
from .._kernels import transpose as _tile_k
from .._kernels.layout import swap_rows, taps_first, transpose2d, transpose_batched

# Below this many elements NumPy's copy is as fast (576x64: 0.033 vs 0.020 ms).
_MIN_BLOCKED = 1 << 16
# The vector-tile copies (``_kernels.transpose``) from this many channels (the shorter side) up; below, the
# element-wise ones win: 2 threads, 2-core Intel Xeon VM (AVX-512), old -> tiles, ms: padding 8x64x56x56
# 0.58 -> 0.36, 8x16x56x56 0.16 -> 0.079, 8x8x56x56 0.090 -> 0.077, but the 3-channel 224x224 stem 0.15 -> 0.26;
# NHWC -> NCHW 8x28x28x128 0.37 -> 0.20, 8x56x56x16 0.25 -> 0.076, 1x112x112x16 0.13 -> 0.047, and 3 or 1
# channels 2-4x slower (a tile of 16 rows holding 3).
_MIN_TILE_CHANNELS = 8


def pad_channels_last(x, pt, pl, xp, work=None):
    """Fill ``xp`` (N, Hp, Wp, C) with the (N, C, H, W) ``x`` channels-last, ``pt`` rows and ``pl`` columns of
    zeros before it and zeros after (``conv_nhwc.pad_into``'s contract), whatever ``x``'s layout.

    ``work`` (default ``xp.size``) decides, as for every kernel, whether the parallel build runs.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2)
    >>> xp = np.empty((1, 3, 3, 2), np.float32)
    >>> pad_channels_last(x, 1, 1, xp)
    >>> xp[0, 1:, 1:].transpose(2, 0, 1).tolist() == x[0].tolist(), float(xp[0, 0].sum())
    (True, 0.0)
    """
    work = xp.size if work is None else work
    if x.dtype == np.float32 and x.flags.c_contiguous and x.shape[1] >= _MIN_TILE_CHANNELS:
        _tile_k.pad_nchw_f32.for_work(work)(x, pt, pl, xp)
    else:
        _nhwc_k.pad_into.for_work(work)(x.transpose(0, 2, 3, 1), pt, pl, xp)


def transpose_last2(a, out):
    """``out[b] = a[b].T`` for 3-D ``a`` (B, M, N) into ``out`` (B, N, M), by blocks (the layout changes
    NCHW <-> channels-last of ``_conv_channels_last``)."""
    if (a.dtype == np.float32 and out.dtype == np.float32 and a.flags.c_contiguous and out.flags.c_contiguous
            and min(a.shape[1], a.shape[2]) >= _MIN_TILE_CHANNELS):
        _tile_k.transpose_f32.for_work(a.size)(a, out)
    else:
        transpose_batched.for_work(a.size)(a, out)


def transposed(a):
    """``np.ascontiguousarray(a.T)`` for a 2-D array.

    Examples
    --------
    >>> import numpy as np
    >>> transposed(np.arange(6.0).reshape(2, 3)).tolist()
    [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]
    """
    if a.size < _MIN_BLOCKED:
        return np.ascontiguousarray(a.T)
    out = np.empty(a.shape[::-1], dtype=a.dtype)
    transpose2d(a, out)
    return out


def taps_channels_out(w):
    """(C_out, C_in, kh, kw) weights as a contiguous (kh·kw·C_in, C_out) matrix, taps then channels.

    Examples
    --------
    >>> import numpy as np
    >>> w = np.arange(8.0).reshape(2, 1, 2, 2)
    >>> taps_channels_out(w).tolist()
    [[0.0, 4.0], [1.0, 5.0], [2.0, 6.0], [3.0, 7.0]]
    """
    cout, cin, kh, kw = w.shape
    if w.size < _MIN_BLOCKED:
        return np.ascontiguousarray(w.transpose(2, 3, 1, 0)).reshape(kh * kw * cin, cout)
    out = np.empty((kh * kw, cin, cout), dtype=w.dtype)
    taps_first(np.ascontiguousarray(w).reshape(cout, cin, kh * kw), out)
    return out.reshape(kh * kw * cin, cout)


def flipped_transposed(w, groups):
    """The input gradient's kernel: (C_out, C_in/g, kh, kw) → (C_in, C_out/g, kh, kw), channels swapped
    within each group and the taps reversed.

    Examples
    --------
    >>> import numpy as np
    >>> flipped_transposed(np.arange(8.0).reshape(2, 1, 2, 2), 1)[0].tolist()
    [[[3.0, 2.0], [1.0, 0.0]], [[7.0, 6.0], [5.0, 4.0]]]
    """
    cout, cin_g, kh, kw = w.shape
    cout_g = cout // groups
    if w.size < _MIN_BLOCKED:
        wt = w.reshape(groups, cout_g, cin_g, kh, kw).transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]
        return np.ascontiguousarray(wt).reshape(groups * cin_g, cout_g, kh, kw)
    w4 = np.ascontiguousarray(w).reshape(groups, cout_g, cin_g, kh * kw)
    out = np.empty((groups, cin_g, cout_g, kh * kw), dtype=w.dtype)
    for g in range(groups):
        swap_rows(w4[g], out[g], True)
    return out.reshape(groups * cin_g, cout_g, kh, kw)


def from_taps_channels_out(m, w_shape):
    """The inverse of :func:`taps_channels_out`: a (kh·kw·C_in, C_out) matrix back to (C_out, C_in, kh, kw).

    Examples
    --------
    >>> import numpy as np
    >>> w = np.arange(8.0).reshape(2, 1, 2, 2)
    >>> bool((from_taps_channels_out(taps_channels_out(w), w.shape) == w).all())
    True
    """
    cout, cin, kh, kw = w_shape
    if m.size < _MIN_BLOCKED:
        return np.ascontiguousarray(m.reshape(kh, kw, cin, cout).transpose(3, 2, 0, 1))
    out = np.empty((cout, cin, kh * kw), dtype=m.dtype)
    taps_first(np.ascontiguousarray(m).reshape(kh * kw, cin, cout), out)
    return out.reshape(w_shape)

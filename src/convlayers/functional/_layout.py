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

from .._kernels.layout import swap_rows, taps_first, transpose2d

# Below this many elements NumPy's copy is as fast (576x64: 0.033 vs 0.020 ms).
_MIN_BLOCKED = 1 << 16


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

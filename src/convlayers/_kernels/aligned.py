"""Arrays that start on a cache line.

NumPy's allocator aligns large arrays to 16 bytes only; a 64-byte vector load
or store that starts elsewhere spans two cache lines and costs two.  The
channels-last product kernels load whole 64-byte rows of packed weights and
store whole rows of output channels, so their operands start on a line:
measured on the 2-core Intel Xeon VM (AVX-512), 2 threads, batch-1 3×3
convolutions with packed weights, padded input and output aligned against
NumPy's 16-byte starts: 128→128 @28 0.80 → 0.64 ms, 256→256 @14 0.74 → 0.62,
512→512 @7 0.85 → 0.75, 64→64 @56 0.63 → 0.60; ONNX resnet18 batch 1
14.7 → 13.5 ms.
"""

from __future__ import annotations

import math

import numpy as np

LINE = 64


def aligned_empty(shape, dtype, align=LINE):
    """``np.empty(shape, dtype)`` whose first element sits on an ``align``-byte boundary (C order)."""
    # one ndarray over the raw bytes (its base), not a slice, view and reshape of them: 5.3 -> 1.8 µs a
    # call, which every channels-last layer pays for its output (2-core Intel Xeon VM)
    dtype = np.dtype(dtype)
    if not isinstance(shape, tuple):
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    raw = np.empty(math.prod(shape) * dtype.itemsize + align, dtype=np.uint8)
    return np.ndarray(shape, dtype, raw, -raw.ctypes.data % align)


def aligned_zeros(shape, dtype, align=LINE):
    """``np.zeros`` on an ``align``-byte boundary."""
    out = aligned_empty(shape, dtype, align)
    out[...] = 0
    return out

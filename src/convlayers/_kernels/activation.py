"""Compiled kernels behind the gradients of ``functional.activation``.

One pass over the input and the gradient, written straight into the result:
the NumPy form ``g * (x > 0)`` built a mask and a product, two more passes
and two temporaries (0.27 ms per call on the digits model's activations).
"""

from __future__ import annotations

from numba import prange

from . import parallel_kernel


@parallel_kernel()
def clamp_backward(g, x, lo, hi, upper, out):
    """ReLU's (``upper`` False) or ReLU6's (``upper`` True) backward on flat arrays.

    As PyTorch's vectorised CPU kernels: ReLU passes ``g`` unless
    ``x <= lo`` (a NaN input passes its gradient); ReLU6 passes it only where
    ``lo < x < hi`` (a NaN input passes nothing).  A blocked position is 0
    even for a NaN gradient.
    """
    zero = out.dtype.type(0)
    for i in prange(out.shape[0]):
        v = x[i]
        if upper:
            out[i] = g[i] if (v > lo and v < hi) else zero
        else:
            out[i] = zero if v <= lo else g[i]

"""Compiled kernels behind the gradients of ``functional.activation``.

One pass over the input and the gradient, written straight into the result:
the NumPy form ``g * (x > 0)`` built a mask and a product, two more passes
and two temporaries (0.27 ms per call on the digits model's activations).
"""

from __future__ import annotations

import math

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


@parallel_kernel()
def gelu_erf(x, out):
    """GELU with the exact normal CDF, ``x * (1 + erf(x / sqrt 2)) / 2``, on flat arrays.

    NumPy has no ``erf``; ``math.erf`` compiled here keeps scipy out of the
    runtime dependencies.
    """
    half = out.dtype.type(0.5)
    inv_sqrt2 = 0.7071067811865476
    for i in prange(out.shape[0]):
        v = x[i]
        out[i] = v * half * (1.0 + math.erf(v * inv_sqrt2))


@parallel_kernel()
def gelu_erf_backward(g, x, out):
    """The derivative of :func:`gelu_erf` times ``g``: ``Phi(x) + x * phi(x)``."""
    inv_sqrt2 = 0.7071067811865476
    inv_sqrt_2pi = 0.3989422804014327
    for i in prange(out.shape[0]):
        v = x[i]
        cdf = 0.5 * (1.0 + math.erf(v * inv_sqrt2))
        pdf = inv_sqrt_2pi * math.exp(-0.5 * v * v)
        out[i] = g[i] * (cdf + v * pdf)

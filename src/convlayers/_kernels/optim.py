"""Compiled optimizer updates, behind ``convlayers.optim``.

Adam's NumPy update made about ten passes over each parameter (the lerp, the
two moments, the square root, the divisions, the step) with a temporary for
most; here it is one pass.  The arithmetic is the NumPy code's, operation by
operation in the parameter's dtype (the scalars rounded to it first, as NumPy
does with Python floats), without fused multiply-adds: the results are the
same bits.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from . import parallel_kernel


@parallel_kernel()
def adam_update(p, g, exp_avg, exp_avg_sq, weight1, beta2, one_minus_beta2, bias2_sqrt, eps, neg_step):
    """One Adam step in place on the flat arrays ``p``, ``exp_avg`` and ``exp_avg_sq``, from the gradient ``g``.

    ``exp_avg`` is lerped towards ``g`` by ``weight1`` (torch.lerp's two formulas either side of 0.5),
    ``exp_avg_sq = exp_avg_sq·beta2 + one_minus_beta2·g²``, and
    ``p += neg_step·(exp_avg / (sqrt(exp_avg_sq) / bias2_sqrt + eps))``; every scalar in the arrays' dtype.
    """
    low = weight1 < 0.5
    rest = p.dtype.type(1) - weight1
    for i in prange(p.size):
        gi = g[i]
        m = exp_avg[i]
        if low:
            m = m + weight1 * (gi - m)
        else:
            m = gi - (gi - m) * rest
        exp_avg[i] = m
        v = exp_avg_sq[i] * beta2
        v = v + one_minus_beta2 * (gi * gi)
        exp_avg_sq[i] = v
        p[i] = p[i] + neg_step * (m / (np.sqrt(v) / bias2_sqrt + eps))

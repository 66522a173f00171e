"""Compiled kernels behind ``functional.group_norm``, ``layer_norm``/``rms_norm`` (forward).

Each normalised row (a group of channels of one sample; the trailing
``normalized_shape`` elements of one position) is contiguous, so one kernel
per row makes two reads (sum, then squared deviations, both in float64 as
PyTorch's float32 kernels accumulate in float at least) and one write, while
the row is still in cache: an 8×64×56×56 group of 2 channels is 25 kB.
NumPy made seven passes and four temporaries (mean, var, x − mean, scale).

Statistics are float64; ``mean`` and ``rstd`` are stored in the data type
(what PyTorch saves for the backward), and each output is
``x·a + b`` with the per-channel ``a = rstd·weight``, ``b = bias − mean·a``
formed in the data type, as PyTorch's ``GroupNormKernelImpl`` does.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import parallel_kernel


@njit(cache=True, fastmath={"reassoc"})
def _moments(row, centered):
    n = row.shape[0]
    s = 0.0
    for i in range(n):
        s += row[i]
    m = s / n if centered else 0.0
    q = 0.0
    for i in range(n):
        d = row[i] - m
        q += d * d
    return m, q / n


@parallel_kernel()
def group_norm_forward(x, weight, bias, eps, out, mean, rstd):
    """(N, G, Cg, L) ``x`` → ``out``; ``mean``/``rstd`` (N, G) in the data type. ``weight``/``bias`` (G·Cg,)."""
    n_n, g_n, cg, l_n = x.shape
    for ng in prange(n_n * g_n):
        n = ng // g_n
        g = ng % g_n
        block = x[n, g].reshape(cg * l_n)
        m, v = _moments(block, True)
        mean[n, g] = m
        rstd[n, g] = 1.0 / np.sqrt(v + eps)
        sm = mean[n, g]
        sr = rstd[n, g]
        for c in range(cg):
            a = sr * weight[g * cg + c]
            b = bias[g * cg + c] - sm * a
            src = x[n, g, c]
            dst = out[n, g, c]
            for i in range(l_n):
                dst[i] = src[i] * a + b


@parallel_kernel()
def row_norm_forward(x, weight, bias, eps, centered, out, mean, rstd):
    """(R, M) ``x`` normalised per row (``centered``: layer norm, else RMS norm), then ``·weight + bias`` (M,)."""
    r_n, m_n = x.shape
    for r in prange(r_n):
        m, v = _moments(x[r], centered)
        mean[r] = m
        rstd[r] = 1.0 / np.sqrt(v + eps)
        sm = mean[r]
        sr = rstd[r]
        src = x[r]
        dst = out[r]
        for i in range(m_n):
            dst[i] = (src[i] - sm) * sr * weight[i] + bias[i]

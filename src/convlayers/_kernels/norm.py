"""Compiled kernels behind training-mode ``functional.batch_norm``.

The NumPy version made five or six full passes over the activation per
direction (mean, var, scale-and-shift, casts; then the backward recomputed
the statistics) and allocated a temporary for each.  These kernels make two
passes forward (sum, then squared deviations) and two backward (the two
channel sums, then the input gradient), writing straight into the result.

Arithmetic follows PyTorch's CPU kernels (``batch_norm_cpu_collect_stats``,
``batch_norm_cpu_transform_input``, ``batch_norm_backward_cpu``): statistics
are accumulated in float64 whatever the data type, mean and ``invstd`` are
rounded to the data type once, and the output is ``x·alpha + beta`` with
``alpha = invstd·weight`` and ``beta = bias − mean·alpha`` in the data type.

Arrays are viewed as C-contiguous (N, C, L), L being the product of the
spatial sizes (1 for (N, C) input).

Performance notes (measured on (64, 32..128, 16..64) float32, one thread):

* Only the row reductions are compiled with ``fastmath={'reassoc'}``: a
  float64 sum cannot vectorise unless LLVM may reorder it (6× slower
  without).  The reordering is the blocked summation PyTorch's vectorised
  kernels also do; the elementwise loops keep strict IEEE order.
* ``parallel=True`` costs tens of µs per call even on one thread, more than
  the whole serial pass at these sizes, so each kernel is a
  :func:`~convlayers._kernels.parallel_kernel` and the caller picks the build
  by size.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from . import njit, parallel_kernel


@njit(cache=True, fastmath={"reassoc"})
def _row_sum(row):
    s = 0.0
    for i in range(row.shape[0]):
        s += row[i]
    return s


@njit(cache=True, fastmath={"reassoc"})
def _row_sq_dev(row, m):
    q = 0.0
    for i in range(row.shape[0]):
        d = row[i] - m
        q += d * d
    return q


@njit(cache=True, fastmath={"reassoc"})
def _row_grad_sums(g, x, m):
    s = 0.0
    dot = 0.0
    for i in range(x.shape[0]):
        gv = np.float64(g[i])
        s += gv
        dot += (x[i] - m) * gv
    return s, dot


@njit(cache=True)
def _forward_channel(x, c, weight, bias, eps, out, mean, var, save_mean, save_invstd):
    n_n, _, l_n = x.shape
    count = n_n * l_n
    s = 0.0
    for n in range(n_n):
        s += _row_sum(x[n, c])
    m = s / count
    q = 0.0
    for n in range(n_n):
        q += _row_sq_dev(x[n, c], m)
    v = q / count
    mean[c] = m
    var[c] = v
    # Storing rounds to the data type; alpha and beta are then formed from the
    # stored values, in the data type, as PyTorch does.
    save_mean[c] = m
    save_invstd[c] = 1.0 / np.sqrt(v + eps)
    alpha = save_invstd[c] * weight[c]
    beta = bias[c] - save_mean[c] * alpha
    for n in range(n_n):
        row = x[n, c]
        dst = out[n, c]
        for i in range(l_n):
            dst[i] = row[i] * alpha + beta


@njit(cache=True)
def _backward_channel(g, x, c, mean, invstd, weight, need_input, grad_input, grad_weight, grad_bias):
    n_n, _, l_n = x.shape
    count = n_n * l_n
    m = np.float64(mean[c])
    s = 0.0
    dot = 0.0
    for n in range(n_n):
        a, b = _row_grad_sums(g[n, c], x[n, c], m)
        s += a
        dot += b
    inv = np.float64(invstd[c])
    grad_weight[c] = dot * inv
    grad_bias[c] = s
    if need_input:
        k = dot * inv * inv / count
        gm = s / count
        scale = inv * weight[c]
        for n in range(n_n):
            grow = g[n, c]
            xrow = x[n, c]
            dst = grad_input[n, c]
            for i in range(l_n):
                dst[i] = (grow[i] - gm - (xrow[i] - m) * k) * scale


@parallel_kernel()
def bn_train_forward(x, weight, bias, eps, out, mean, var, save_mean, save_invstd):
    """Batch statistics and the normalised output ``out``.

    ``mean`` and ``var`` (biased) receive the float64 statistics for the
    running buffers; ``save_mean`` and ``save_invstd`` (data type, as PyTorch
    saves them) are what the output and the backward use.
    """
    for c in prange(x.shape[1]):
        _forward_channel(x, c, weight, bias, eps, out, mean, var, save_mean, save_invstd)


@parallel_kernel()
def bn_train_backward(g, x, mean, invstd, weight, need_input, grad_input, grad_weight, grad_bias):
    """Gradients of :func:`bn_train_forward` given its saved (data-type) ``mean`` and ``invstd``.

    ``grad_input`` is written only when ``need_input``.
    """
    for c in prange(x.shape[1]):
        _backward_channel(g, x, c, mean, invstd, weight, need_input, grad_input, grad_weight, grad_bias)


@parallel_kernel()
def scale_shift(x, alpha, beta, out):
    """Evaluation-mode batch norm in one pass: ``out[n, c] = x[n, c]·alpha[c] + beta[c]`` on (N, C, L) arrays."""
    n_n, c_n, l_n = x.shape
    for nc in prange(n_n * c_n):
        n = nc // c_n
        c = nc % c_n
        a = alpha[c]
        b = beta[c]
        src = x[n, c]
        dst = out[n, c]
        for i in range(l_n):
            dst[i] = src[i] * a + b


@parallel_kernel()
def affine_clamp(y, alpha, beta, lo, hi):
    """In place on (N, C, L) ``y``: ``y[n, c] = min(max(y[n, c]·alpha[c] + beta[c], lo), hi)``; NaN stays NaN.

    Evaluation-mode batch norm and its ReLU/ReLU6 in one pass, run on a
    convolution's output tile while it is still in cache.  ``y`` may be a
    strided view (a band of output rows); each ``y[n, c]`` row is contiguous.
    Returns how many NaNs the result holds, so that the convolution needs no
    second pass to look for them (0.16 ms for 96×112×112, a sixth of that
    layer's time; counting costs nothing measurable here).
    """
    n_n, c_n = y.shape[0], y.shape[1]
    nans = 0
    for nc in prange(n_n * c_n):
        n = nc // c_n
        c = nc % c_n
        nans += affine_clamp_row(y[n, c], alpha[c], beta[c], lo, hi)
    return nans


@njit(cache=True)
def affine_clamp_row(row, a, b, lo, hi):
    """``row = min(max(row·a + b, lo), hi)`` in place; NaN stays NaN (no comparison holds for it).

    Returns the number of NaNs written.
    """
    nans = 0
    for i in range(row.shape[0]):
        v = row[i] * a + b
        nans += v != v
        if v < lo:
            v = lo
        if v > hi:
            v = hi
        row[i] = v
    return nans

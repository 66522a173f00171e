"""Compiled kernels for pooling to a given output size: adaptive and fractional max pooling.

Same layout as :mod:`convlayers._kernels.pool`: (P, D, H, W) planes (D = 1 for
2-D, D = H = 1 for 1-D), flat in-plane indices ``(d*H + h)*W + w``, planes
split across threads with ``prange``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from . import njit, parallel_kernel


@njit(cache=True)
def _adaptive_bounds(o, out_n, in_n):
    """PyTorch's adaptive window along one axis: [⌊o·I/O⌋, ⌈(o+1)·I/O⌉)."""
    start = (o * in_n) // out_n
    end = -((-(o + 1) * in_n) // out_n)
    return start, end


@parallel_kernel()
def adaptive_avg_pool(x, out):
    p_n, d_n, h_n, w_n = x.shape
    do_n, ho_n, wo_n = out.shape[1], out.shape[2], out.shape[3]
    for p in prange(p_n):
        for od in range(do_n):
            d0, d1 = _adaptive_bounds(od, do_n, d_n)
            for oh in range(ho_n):
                h0, h1 = _adaptive_bounds(oh, ho_n, h_n)
                for ow in range(wo_n):
                    w0, w1 = _adaptive_bounds(ow, wo_n, w_n)
                    acc = 0.0
                    for di in range(d0, d1):
                        for hi in range(h0, h1):
                            for wi in range(w0, w1):
                                acc += x[p, di, hi, wi]
                    out[p, od, oh, ow] = acc / ((d1 - d0) * (h1 - h0) * (w1 - w0))


@parallel_kernel()
def adaptive_avg_pool_backward(go, gx):
    p_n, d_n, h_n, w_n = gx.shape
    do_n, ho_n, wo_n = go.shape[1], go.shape[2], go.shape[3]
    if do_n == 1 and ho_n == 1 and wo_n == 1:
        # Global pooling: every input of a plane gets its share, one store each (0 + g is g), where the
        # general loop zeroed the plane and added into it: the digits CNN's 64x192 planes of 4x4, 0.24 ->
        # 0.06 ms serial (2-core Intel Xeon VM).
        for p in prange(p_n):
            g = go[p, 0, 0, 0] / (d_n * h_n * w_n)
            for a in range(d_n):
                for b in range(h_n):
                    for c in range(w_n):
                        gx[p, a, b, c] = g
        return
    for p in prange(p_n):
        for a in range(d_n):
            for b in range(h_n):
                for c in range(w_n):
                    gx[p, a, b, c] = 0
        for od in range(do_n):
            d0, d1 = _adaptive_bounds(od, do_n, d_n)
            for oh in range(ho_n):
                h0, h1 = _adaptive_bounds(oh, ho_n, h_n)
                for ow in range(wo_n):
                    w0, w1 = _adaptive_bounds(ow, wo_n, w_n)
                    g = go[p, od, oh, ow] / ((d1 - d0) * (h1 - h0) * (w1 - w0))
                    for di in range(d0, d1):
                        for hi in range(h0, h1):
                            for wi in range(w0, w1):
                                gx[p, di, hi, wi] += g


@njit(cache=True)
def _box_max(x, p, d0, d1, h0, h1, w0, w1):
    """(max, flat index) over x[p, d0:d1, h0:h1, w0:w1]; a NaN wins, an all -inf box reports its first tap."""
    h_n, w_n = x.shape[2], x.shape[3]
    best = -np.inf
    best_i = (d0 * h_n + h0) * w_n + w0
    for di in range(d0, d1):
        for hi in range(h0, h1):
            row = (di * h_n + hi) * w_n
            for wi in range(w0, w1):
                v = x[p, di, hi, wi]
                if v > best or math.isnan(v):
                    best = v
                    best_i = row + wi
    return best, best_i


@parallel_kernel()
def adaptive_max_pool(x, out, idx):
    p_n, d_n, h_n, w_n = x.shape
    do_n, ho_n, wo_n = out.shape[1], out.shape[2], out.shape[3]
    for p in prange(p_n):
        for od in range(do_n):
            d0, d1 = _adaptive_bounds(od, do_n, d_n)
            for oh in range(ho_n):
                h0, h1 = _adaptive_bounds(oh, ho_n, h_n)
                for ow in range(wo_n):
                    w0, w1 = _adaptive_bounds(ow, wo_n, w_n)
                    v, i = _box_max(x, p, d0, d1, h0, h1, w0, w1)
                    out[p, od, oh, ow] = v
                    idx[p, od, oh, ow] = i


@parallel_kernel()
def fractional_max_pool(x, starts_d, starts_h, starts_w, kd, kh, kw, out, idx):
    """Max over the ``kd×kh×kw`` box starting at each plane's pseudo-random offsets.

    ``starts_*`` are (P, O_axis) window starts, computed by the caller from the
    random samples with PyTorch's interval rule.
    """
    p_n = x.shape[0]
    do_n, ho_n, wo_n = out.shape[1], out.shape[2], out.shape[3]
    for p in prange(p_n):
        for od in range(do_n):
            d0 = starts_d[p, od]
            for oh in range(ho_n):
                h0 = starts_h[p, oh]
                for ow in range(wo_n):
                    w0 = starts_w[p, ow]
                    v, i = _box_max(x, p, d0, d0 + kd, h0, h0 + kh, w0, w0 + kw)
                    out[p, od, oh, ow] = v
                    idx[p, od, oh, ow] = i

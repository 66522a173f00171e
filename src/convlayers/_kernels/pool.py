"""Compiled kernels behind ``functional.pooling``.

Window arithmetic follows PyTorch's CPU kernels exactly, because the edge
cases (ceil_mode windows that hang over the padding, the divisor of
``count_include_pad``, NaN propagation in max pooling) are where
implementations disagree.  Every kernel works plane by plane on (P, H, W)
arrays, P = N*C, split across threads with ``prange``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from . import njit, parallel_kernel
from .conv import _phase_geometry, _phase_planes, _tap_offset


@parallel_kernel()
def max_pool(x, kh, kw, sh, sw, ph, pw, dh, dw, out, idx):
    """Max over each dilated window; ``idx`` gets the flat index ``h*W + w`` of the winner.

    As in PyTorch, a NaN wins over any number (the last NaN seen wins), and a
    window of -inf reports its first in-bounds tap.
    """
    p_n, h_n, w_n = x.shape
    ho_n = out.shape[1]
    wo_n = out.shape[2]
    xf = x.ravel()  # flat, unsigned indices: no negative-index check per tap
    for p in prange(p_n):
        base = p * h_n * w_n
        for ho in range(ho_n):
            h0 = ho * sh - ph
            h1 = min(h0 + (kh - 1) * dh + 1, h_n)
            while h0 < 0:
                h0 += dh
            for wo in range(wo_n):
                w0 = wo * sw - pw
                w1 = min(w0 + (kw - 1) * dw + 1, w_n)
                while w0 < 0:
                    w0 += dw
                best_i = h0 * w_n + w0
                best = -np.inf
                # Trip counts written out: range(h0, h1, dh) with a run-time step costs an integer
                # division per window row (with the flat indices, 8x64x112x112 2x2: 10.2 ms serial,
                # was 14.4 ms).
                for a in range((h1 - h0 + dh - 1) // dh if dh > 1 else h1 - h0):
                    hi = h0 + a * dh
                    row = np.uint64(base + hi * w_n)
                    for b in range((w1 - w0 + dw - 1) // dw if dw > 1 else w1 - w0):
                        wi = w0 + b * dw
                        v = xf[row + np.uint64(wi)]
                        if v > best or math.isnan(v):
                            best = v
                            best_i = hi * w_n + wi
                out[p, ho, wo] = best
                idx[p, ho, wo] = best_i


@parallel_kernel()
def max_pool_values(x, kh, kw, sh, sw, ph, pw, dh, dw, out):
    """Max pooling without indices (inference), on flat stride-phase planes padded with -inf.

    Every tap is then one contiguous compare-and-select that vectorises.  The
    values equal :func:`max_pool`'s: a NaN wins (``v > best or v != v``), and
    the -inf padding never beats an in-bounds value.
    """
    p_n, h_n, w_n = x.shape
    ho_n, wo_n = out.shape[1], out.shape[2]
    hp = max(h_n + 2 * ph, (ho_n - 1) * sh + (kh - 1) * dh + 1)  # ceil_mode windows may overhang
    wp = max(w_n + 2 * pw, (wo_n - 1) * sw + (kw - 1) * dw + 1)
    hq, wq, plane_q, length = _phase_geometry(hp, wp, sh, sw, ho_n, wo_n)
    for p in prange(p_n):
        src = np.empty(sh * sw * plane_q, dtype=out.dtype)
        _phase_planes(x[p], ph, pw, hp, wp, sh, sw, hq, wq, src, -np.inf)
        acc = np.full(length, -np.inf, dtype=out.dtype)
        for i in range(kh):
            for j in range(kw):
                off = _tap_offset(i * dh, j * dw, sh, sw, plane_q, wq)
                seg = src[off:off + length]
                for t in range(length):
                    v = seg[t]
                    if v > acc[t] or v != v:
                        acc[t] = v
        dst = out[p]
        for ho in range(ho_n):
            row = acc[ho * wq:ho * wq + wo_n]
            drow = dst[ho]
            for wo in range(wo_n):
                drow[wo] = row[wo]


@parallel_kernel()
def max_pool_backward(go, idx, gx):
    """Scatter each output gradient to the input position that won its window (``gx`` zeroed here)."""
    p_n = gx.shape[0]
    w_n = gx.shape[2]
    for p in prange(p_n):
        for a in range(gx.shape[1]):
            for b in range(w_n):
                gx[p, a, b] = 0
        for ho in range(go.shape[1]):
            for wo in range(go.shape[2]):
                k = idx[p, ho, wo]
                gx[p, k // w_n, k % w_n] += go[p, ho, wo]


@njit(cache=True)
def _avg_window(o, s, pad, k, n):
    """(start, end, divisor-with-padding) of one average-pooling window along an axis."""
    start = o * s - pad
    end = min(start + k, n + pad)
    size = end - start
    start = max(start, 0)
    end = min(end, n)
    return start, end, size


@njit(cache=True)
def _avg_divisor(divisor, count_include_pad, padded_count, real_count):
    """What a window's sum is divided by: the override, the count with padding, or the real pixels."""
    if divisor != 0:  # divisor_override, which may be negative (PyTorch divides by it as given)
        return divisor
    if count_include_pad:
        return padded_count
    return real_count


@parallel_kernel()
def avg_pool(x, kh, kw, sh, sw, ph, pw, count_include_pad, divisor, out):
    """Mean over each window; ``divisor != 0`` overrides the count (``divisor_override``).

    Separable: for each output row, the window's input rows are summed into one
    row (contiguous, vectorised), then each output column sums ``kw`` entries
    of it.  Columns whose window lies inside the input share one divisor and
    take strided slices without bounds checks; only the few border columns
    take :func:`_avg_window`.  (3×3/2 p1 on 8×64×112×112 at 2 threads: 2.1 ms against 5.8 ms
    for a bounds-checked loop per output, torch 5.2 ms.)
    """
    p_n, h_n, w_n = x.shape
    ho_n = out.shape[1]
    wo_n = out.shape[2]
    # output columns [a, b) have windows inside [0, w_n): wo*sw - pw >= 0 and wo*sw - pw + kw <= w_n
    a = min(wo_n, (pw + sw - 1) // sw)
    b = max(a, min(wo_n, (w_n + pw - kw) // sw + 1))
    blocks = min(p_n, 64)  # one row buffer per block of planes, not per plane
    for blk in prange(blocks):
        rs = np.empty(w_n, dtype=out.dtype)
        for p in range(blk * p_n // blocks, (blk + 1) * p_n // blocks):
            for ho in range(ho_n):
                h0, h1, hsize = _avg_window(ho, sh, ph, kh, h_n)
                drow = out[p, ho]
                if h0 >= h1:
                    for wo in range(wo_n):
                        drow[wo] = 0
                    continue
                src = x[p, h0]
                for q in range(w_n):
                    rs[q] = src[q]
                for hi in range(h0 + 1, h1):
                    src = x[p, hi]
                    for q in range(w_n):
                        rs[q] += src[q]
                if b > a:
                    d = _avg_divisor(divisor, count_include_pad, hsize * kw, (h1 - h0) * kw)
                    c0 = a * sw - pw
                    dseg = drow[a:b]
                    seg = rs[c0:c0 + sw * (b - a - 1) + 1:sw]
                    for t in range(b - a):
                        dseg[t] = seg[t]
                    for j in range(1, kw):
                        seg = rs[c0 + j:c0 + j + sw * (b - a - 1) + 1:sw]
                        for t in range(b - a):
                            dseg[t] += seg[t]
                    for t in range(b - a):
                        dseg[t] = dseg[t] / d
                for wo in range(wo_n):
                    if a <= wo < b:
                        continue
                    w0, w1, wsize = _avg_window(wo, sw, pw, kw, w_n)
                    if w0 >= w1:
                        drow[wo] = 0
                        continue
                    acc = rs[w0]
                    for wi in range(w0 + 1, w1):
                        acc += rs[wi]
                    drow[wo] = acc / _avg_divisor(divisor, count_include_pad, hsize * wsize, (h1 - h0) * (w1 - w0))


@parallel_kernel()
def avg_pool_backward(go, kh, kw, sh, sw, ph, pw, count_include_pad, divisor, gx):
    """Adjoint of :func:`avg_pool`: spread each output gradient evenly over its window (``gx`` zeroed here)."""
    p_n, h_n, w_n = gx.shape
    ho_n = go.shape[1]
    wo_n = go.shape[2]
    for p in prange(p_n):
        for a in range(h_n):
            for b in range(w_n):
                gx[p, a, b] = 0
        for ho in range(ho_n):
            h0, h1, hsize = _avg_window(ho, sh, ph, kh, h_n)
            for wo in range(wo_n):
                w0, w1, wsize = _avg_window(wo, sw, pw, kw, w_n)
                if h0 >= h1 or w0 >= w1:
                    continue
                g = go[p, ho, wo] / _avg_divisor(divisor, count_include_pad, hsize * wsize, (h1 - h0) * (w1 - w0))
                for hi in range(h0, h1):
                    for wi in range(w0, w1):
                        gx[p, hi, wi] += g


@njit(cache=True)
def _adaptive_bounds(o, out_n, in_n):
    """PyTorch's adaptive window along one axis: [⌊o·I/O⌋, ⌈(o+1)·I/O⌉)."""
    start = (o * in_n) // out_n
    end = -((-(o + 1) * in_n) // out_n)
    return start, end


@parallel_kernel()
def adaptive_avg_pool(x, out):
    p_n, h_n, w_n = x.shape
    ho_n = out.shape[1]
    wo_n = out.shape[2]
    for p in prange(p_n):
        for ho in range(ho_n):
            h0, h1 = _adaptive_bounds(ho, ho_n, h_n)
            for wo in range(wo_n):
                w0, w1 = _adaptive_bounds(wo, wo_n, w_n)
                acc = 0.0
                for hi in range(h0, h1):
                    for wi in range(w0, w1):
                        acc += x[p, hi, wi]
                out[p, ho, wo] = acc / ((h1 - h0) * (w1 - w0))


@parallel_kernel()
def adaptive_avg_pool_backward(go, gx):
    p_n, h_n, w_n = gx.shape
    ho_n = go.shape[1]
    wo_n = go.shape[2]
    for p in prange(p_n):
        for a in range(h_n):
            for b in range(w_n):
                gx[p, a, b] = 0
        for ho in range(ho_n):
            h0, h1 = _adaptive_bounds(ho, ho_n, h_n)
            for wo in range(wo_n):
                w0, w1 = _adaptive_bounds(wo, wo_n, w_n)
                g = go[p, ho, wo] / ((h1 - h0) * (w1 - w0))
                for hi in range(h0, h1):
                    for wi in range(w0, w1):
                        gx[p, hi, wi] += g


@parallel_kernel()
def adaptive_max_pool(x, out, idx):
    p_n, h_n, w_n = x.shape
    ho_n = out.shape[1]
    wo_n = out.shape[2]
    for p in prange(p_n):
        for ho in range(ho_n):
            h0, h1 = _adaptive_bounds(ho, ho_n, h_n)
            for wo in range(wo_n):
                w0, w1 = _adaptive_bounds(wo, wo_n, w_n)
                best = -np.inf
                best_i = h0 * w_n + w0
                for hi in range(h0, h1):
                    for wi in range(w0, w1):
                        v = x[p, hi, wi]
                        if v > best or math.isnan(v):
                            best = v
                            best_i = hi * w_n + wi
                out[p, ho, wo] = best
                idx[p, ho, wo] = best_i

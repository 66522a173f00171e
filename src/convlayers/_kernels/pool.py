"""Compiled kernels behind ``functional.pooling``: one set for 1-D, 2-D and 3-D.

Window arithmetic follows PyTorch's CPU kernels exactly, because the edge
cases (ceil_mode windows that hang over the padding, the divisor of
``count_include_pad``, NaN propagation in max pooling) are where
implementations disagree.

Layout: every N-d kernel works on (P, D, H, W) planes, P = N*C, split across
threads with ``prange``; a 2-D input is D = 1 and a 1-D input is D = H = 1 (free
reshapes, no copies).  Indices are flat within a plane, ``(d*H + h)*W + w``,
which is what PyTorch returns for each rank.  Two 2-D fast paths
(:func:`max_pool_values`, :func:`avg_pool`) work on (P, H, W); 3-D inference
reaches them after one depth pass (:func:`max_pool_depth`,
:func:`avg_pool_depth`), which is exact because a max and a sum over a box are
a max and a sum over its axes in turn (and the avg divisor is a product of one
count per axis).
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from . import njit, parallel_kernel
from .conv import _phase_geometry, _phase_planes, _tap_offset


@njit(cache=True)
def _max_start(o, s, pad, k, dil, n):
    """First in-bounds tap, end bound and tap count of a dilated max window along one axis."""
    t0 = o * s - pad
    t1 = min(t0 + (k - 1) * dil + 1, n)
    while t0 < 0:
        t0 += dil
    count = (t1 - t0 + dil - 1) // dil if dil > 1 else t1 - t0
    return t0, max(count, 0)


@njit(cache=True, inline="always")
def _take(v, i, best, best_i):
    """The max rule of :func:`max_pool`: ``v`` replaces ``best`` if larger or NaN."""
    if v > best or math.isnan(v):
        return v, i
    return best, best_i


@njit(cache=True)
def _max_pool_2x2(xf, base, w_n, ho_n, wo_n, out, idx):
    """One plane of a 2×2, stride-2 max pool whose windows are all inside it (see :func:`max_pool`)."""
    for oh in range(ho_n):
        r0 = 2 * oh * w_n
        r1 = r0 + w_n
        u0 = np.uint64(base + r0)
        u1 = np.uint64(base + r1)
        for ow in range(wo_n):
            c = 2 * ow
            uc = np.uint64(c)
            best, best_i = _take(xf[u0 + uc], r0 + c, -np.inf, r0 + c)
            best, best_i = _take(xf[u0 + uc + np.uint64(1)], r0 + c + 1, best, best_i)
            best, best_i = _take(xf[u1 + uc], r1 + c, best, best_i)
            best, best_i = _take(xf[u1 + uc + np.uint64(1)], r1 + c + 1, best, best_i)
            out[oh, ow] = best
            idx[oh, ow] = best_i


@parallel_kernel()
def max_pool(x, kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw, out, idx):
    """Max over each dilated window of (P, D, H, W) planes; ``idx`` gets the flat index of the winner.

    As in PyTorch, a NaN wins over any number (the last NaN seen wins), and a
    window of -inf reports its first in-bounds tap.
    """
    p_n, d_n, h_n, w_n = x.shape
    do_n, ho_n, wo_n = out.shape[1], out.shape[2], out.shape[3]
    plane = d_n * h_n * w_n
    xf = x.ravel()  # flat, unsigned indices: no negative-index check per tap
    if (d_n == 1 and do_n == 1 and kh == 2 and kw == 2 and sh == 2 and sw == 2 and ph == 0 and pw == 0
            and dh == 1 and dw == 1 and 2 * ho_n <= h_n and 2 * wo_n <= w_n):
        # 2x2 windows at stride 2, all inside the plane: the same four comparisons in the same order, with
        # no per-window bounds or loops: the digits CNN's 64x96x8x8 with indices 0.82 -> 0.34 ms (2 threads,
        # 2-core Intel Xeon VM, old and new in alternating processes)
        for p in prange(p_n):
            _max_pool_2x2(xf, p * plane, w_n, ho_n, wo_n, out[p, 0], idx[p, 0])
        return
    for p in prange(p_n):
        base = p * plane
        for od in range(do_n):
            d0, nd = _max_start(od, sd, pd, kd, dd, d_n)
            for oh in range(ho_n):
                h0, nh = _max_start(oh, sh, ph, kh, dh, h_n)
                for ow in range(wo_n):
                    w0, nw = _max_start(ow, sw, pw, kw, dw, w_n)
                    best_i = (d0 * h_n + h0) * w_n + w0
                    best = -np.inf
                    # Trip counts written out: range(h0, h1, dh) with a run-time step costs an integer
                    # division per window row (with the flat indices, 8x64x112x112 2x2: 10.2 ms serial,
                    # was 14.4 ms).
                    for c in range(nd):
                        di = d0 + c * dd
                        for a in range(nh):
                            hi = h0 + a * dh
                            row = (di * h_n + hi) * w_n
                            urow = np.uint64(base + row)
                            for b in range(nw):
                                wi = w0 + b * dw
                                v = xf[urow + np.uint64(wi)]
                                if v > best or math.isnan(v):
                                    best = v
                                    best_i = row + wi
                    out[p, od, oh, ow] = best
                    idx[p, od, oh, ow] = best_i


@parallel_kernel()
def max_pool_values(x, kh, kw, sh, sw, ph, pw, dh, dw, out):
    """2-D max pooling without indices (inference), on flat stride-phase planes padded with -inf.

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
def max_pool_depth(x, kd, sd, pd, dd, out):
    """Max over dilated windows along axis 1 of (P, D, M) into (P, D_out, M): 3-D pooling's first pass.

    Rows of ``M = H*W`` are contiguous, so each tap is one vectorised
    compare-and-select; a NaN wins, as in :func:`max_pool`.
    """
    p_n, d_n, m = x.shape
    do_n = out.shape[1]
    for p in prange(p_n):
        for od in range(do_n):
            d0, nd = _max_start(od, sd, pd, kd, dd, d_n)
            dst = out[p, od]
            for t in range(m):
                dst[t] = -np.inf
            for c in range(nd):
                src = x[p, d0 + c * dd]
                for t in range(m):
                    v = src[t]
                    if v > dst[t] or v != v:
                        dst[t] = v


@parallel_kernel()
def scatter_add(go, idx, gx):
    """``gx[p, idx[p, o]] += go[p, o]`` on (P, O) and (P, S) planes (``gx`` zeroed here).

    The backward of every max pooling (window, adaptive, fractional): each
    output's gradient goes to the input position that won its window.
    """
    p_n, s_n = gx.shape
    o_n = go.shape[1]
    for p in prange(p_n):
        for s in range(s_n):
            gx[p, s] = 0
        for o in range(o_n):
            gx[p, idx[p, o]] += go[p, o]


@parallel_kernel()
def scatter_set(x, idx, out):
    """``out[p, idx[p, o]] = x[p, o]`` (``out`` zeroed here; the last write to a position wins, as PyTorch's CPU)."""
    p_n, s_n = out.shape
    o_n = x.shape[1]
    for p in prange(p_n):
        for s in range(s_n):
            out[p, s] = 0
        for o in range(o_n):
            out[p, idx[p, o]] = x[p, o]


@parallel_kernel()
def gather(g, idx, out):
    """``out[p, o] = g[p, idx[p, o]]``: the backward of :func:`scatter_set` (max_unpool)."""
    p_n, o_n = out.shape
    for p in prange(p_n):
        for o in range(o_n):
            out[p, o] = g[p, idx[p, o]]


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
    """What a window's sum is divided by: the override, the count with padding, or the real pixels.

    ``divisor != 0`` is an override; PyTorch takes negative overrides too (sum / -2).
    """
    if divisor != 0:
        return divisor
    if count_include_pad:
        return padded_count
    return real_count


@parallel_kernel()
def avg_pool(x, kh, kw, sh, sw, ph, pw, count_include_pad, divisor, out):
    """2-D mean over each window; ``divisor != 0`` overrides the count (``divisor_override``).

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
def avg_pool_depth(x, kd, sd, pd, count_include_pad, divisor, out):
    """Mean along axis 1 of (P, D, M) into (P, D_out, M): 3-D average pooling's first pass.

    ``divisor != 0`` divides by it (1: a plain sum, what a ``divisor_override``
    needs before the 2-D pass divides by the override); 0 divides by the
    window's depth count, so that the 2-D pass's H·W count completes the product.
    """
    p_n, d_n, m = x.shape
    do_n = out.shape[1]
    for p in prange(p_n):
        for od in range(do_n):
            d0, d1, dsize = _avg_window(od, sd, pd, kd, d_n)
            dst = out[p, od]
            for t in range(m):
                dst[t] = 0
            for di in range(d0, d1):
                src = x[p, di]
                for t in range(m):
                    dst[t] += src[t]
            dv = _avg_divisor(divisor, count_include_pad, dsize, max(d1 - d0, 1))
            for t in range(m):
                dst[t] = dst[t] / dv


@parallel_kernel()
def avg_pool_backward(go, kd, kh, kw, sd, sh, sw, pd, ph, pw, count_include_pad, divisor, gx):
    """Adjoint of average pooling on (P, D, H, W): spread each output gradient evenly over its window.

    ``gx`` is zeroed here.  The divisor is the whole window's (product of the
    three axes), as PyTorch's forward uses.
    """
    p_n, d_n, h_n, w_n = gx.shape
    do_n, ho_n, wo_n = go.shape[1], go.shape[2], go.shape[3]
    for p in prange(p_n):
        for a in range(d_n):
            for b in range(h_n):
                for c in range(w_n):
                    gx[p, a, b, c] = 0
        for od in range(do_n):
            d0, d1, dsize = _avg_window(od, sd, pd, kd, d_n)
            for oh in range(ho_n):
                h0, h1, hsize = _avg_window(oh, sh, ph, kh, h_n)
                for ow in range(wo_n):
                    w0, w1, wsize = _avg_window(ow, sw, pw, kw, w_n)
                    if d0 >= d1 or h0 >= h1 or w0 >= w1:
                        continue
                    g = go[p, od, oh, ow] / _avg_divisor(divisor, count_include_pad, dsize * hsize * wsize,
                                                         (d1 - d0) * (h1 - h0) * (w1 - w0))
                    for di in range(d0, d1):
                        for hi in range(h0, h1):
                            for wi in range(w0, w1):
                                gx[p, di, hi, wi] += g


@parallel_kernel()
def mean_pixels(rows, acc, out):
    """``out[n, c]`` = the mean over ``p`` of ``rows[n, p, c]`` (a channels-last global average pool).

    ``rows`` (N, P, C) C-contiguous, P ≥ 1; ``acc`` (empty) only names the
    accumulator's dtype (float32, or float64 for long sums): the sum runs over
    ``p`` in order in it, then is divided by P and cast to ``out``'s dtype —
    NumPy's ``rows.sum(axis=1, dtype=acc.dtype) / P``, bit for bit.  A kernel
    rather than NumPy so that a captured model run (``onnx._tape``) holds it.
    """
    n_n, p_n, c_n = rows.shape
    count = acc.dtype.type(p_n)
    for s in prange(n_n):
        a = np.empty(c_n, acc.dtype)
        for c in range(c_n):
            a[c] = rows[s, 0, c]
        for p in range(1, p_n):
            for c in range(c_n):
                a[c] += rows[s, p, c]
        for c in range(c_n):
            out[s, c] = a[c] / count

"""Compiled kernels behind ``functional.conv``.

The layout trick: a convolution with ``C_in/groups > 1`` is a matrix product
once every receptive field is unrolled into a column (``im2col``); BLAS then
does the channel mixing.  These kernels do only the unrolling and its adjoint
(``col2im``), plus the depthwise case (one input channel per group), where
there is no channel mixing to hand to BLAS and a direct loop wins.

Performance notes (measured, see benchmarks/):

* Inputs arrive already zero-padded, so no kernel tests bounds per tap.
* Inner loops run over 1-D slices (``seg = row[a:b]``) indexed by the loop
  variable alone.  Indexing with ``wo + offset`` instead makes numba emit a
  negative-index check per element, which blocks SIMD and was 5× slower.
* Depthwise stride-1 kernels treat each padded plane as one flat vector: the
  tap (i, j) is then a constant shift ``i·d·Wp + j·d`` and one long loop
  replaces many short row loops (the columns that straddle two rows are junk
  and are never copied out).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def im2col(xp, kh, kw, sh, sw, dh, dw, r0, r1, wo_n, cols):
    """Unroll the windows of output rows ``r0 ≤ ho < r1`` of one sample into columns.

    ``cols[(c*kh + i)*kw + j, (ho - r0)*wo_n + wo] = xp[c, ho*sh + i*dh, wo*sw + j*dw]``,
    with ``xp`` the zero-padded (C, Hp, Wp) sample and ``cols`` a C-contiguous
    (C*kh*kw, (r1 - r0)*wo_n) tile.
    """
    c_n = xp.shape[0]
    k = kh * kw
    for row in prange(c_n * k):
        c = row // k
        i = (row // kw) % kh
        j = row % kw
        dst_row = cols[row]
        plane = xp[c]
        for ho in range(r0, r1):
            dst = dst_row[(ho - r0) * wo_n:(ho - r0 + 1) * wo_n]
            if sw == 1:  # a unit-stride slice is typed contiguous, so this loop vectorises
                seg = plane[ho * sh + i * dh, j * dw:j * dw + wo_n]
                for wo in range(wo_n):
                    dst[wo] = seg[wo]
            else:
                sseg = plane[ho * sh + i * dh, j * dw:j * dw + sw * (wo_n - 1) + 1:sw]
                for wo in range(wo_n):
                    dst[wo] = sseg[wo]


@njit(cache=True, parallel=True)
def col2im(cols, kh, kw, sh, sw, dh, dw, r0, r1, wo_n, gxp):
    """Adjoint of :func:`im2col`: add a tile of columns back onto the padded (C, Hp, Wp) sample ``gxp``."""
    c_n = gxp.shape[0]
    for c in prange(c_n):
        plane = gxp[c]
        for i in range(kh):
            for j in range(kw):
                src_row = cols[(c * kh + i) * kw + j]
                for ho in range(r0, r1):
                    src = src_row[(ho - r0) * wo_n:(ho - r0 + 1) * wo_n]
                    if sw == 1:
                        seg = plane[ho * sh + i * dh, j * dw:j * dw + wo_n]
                        for wo in range(wo_n):
                            seg[wo] += src[wo]
                    else:
                        sseg = plane[ho * sh + i * dh, j * dw:j * dw + sw * (wo_n - 1) + 1:sw]
                        for wo in range(wo_n):
                            sseg[wo] += src[wo]


@njit(cache=True)
def _phase_planes(x, pt, pl, hp, wp, sh, sw, hq, wq, buf):
    """Split the zero-padded (hp, wp) view of plane ``x`` into sh·sw flat phase planes of (hq, wq).

    Phase (a, b) holds padded pixels (a + sh·r, b + sw·q): with it, a strided
    window's tap is a constant shift inside one contiguous phase plane.
    """
    for q in range(buf.shape[0]):
        buf[q] = 0
    h, w = x.shape
    for r in range(h):
        pr = r + pt
        src = x[r]
        if sw == 1:
            dst = buf[(pr % sh) * hq * wq + (pr // sh) * wq + pl:(pr % sh) * hq * wq + (pr // sh) * wq + pl + w]
            for col in range(w):
                dst[col] = src[col]
            continue
        for b in range(sw):
            col0 = (b - pl) % sw  # first input column that lands in phase b
            if col0 >= w:
                continue
            count = (w - col0 + sw - 1) // sw
            base = ((pr % sh) * sw + b) * hq * wq + (pr // sh) * wq + (col0 + pl) // sw
            dst = buf[base:base + count]
            sseg = src[col0:col0 + sw * (count - 1) + 1:sw]
            for t in range(count):
                dst[t] = sseg[t]


@njit(cache=True, parallel=True)
def depthwise_forward(x, w, pt, pl, hp, wp, sh, sw, dh, dw, out):
    """Depthwise correlation; ``x`` (N, C, H, W) unpadded, zero padding (pt, pl) applied here.

    ``w`` is (C*m, kh, kw) and ``out`` (N, C*m, Ho, Wo): channel ``oc`` reads
    ``oc // m``.  Each padded plane is split into stride phases, so every tap
    is one long contiguous multiply-add over a flat phase plane.
    """
    n_n, oc_n, ho_n, wo_n = out.shape
    c_n = x.shape[1]
    m = oc_n // c_n
    kh, kw = w.shape[1], w.shape[2]
    hq = (hp + sh - 1) // sh
    wq = (wp + sw - 1) // sw
    plane_q = hq * wq
    length = (ho_n - 1) * wq + wo_n
    for no in prange(n_n * oc_n):
        n = no // oc_n
        oc = no % oc_n
        src = np.empty(sh * sw * plane_q, dtype=out.dtype)
        _phase_planes(x[n, oc // m], pt, pl, hp, wp, sh, sw, hq, wq, src)
        acc = np.zeros(length, dtype=out.dtype)
        for i in range(kh):
            for j in range(kw):
                wv = w[oc, i, j]
                a, r = (i * dh) % sh, (i * dh) // sh
                b, q = (j * dw) % sw, (j * dw) // sw
                off = (a * sw + b) * plane_q + r * wq + q
                seg = src[off:off + length]
                for t in range(length):
                    acc[t] += wv * seg[t]
        dst = out[n, oc]
        for ho in range(ho_n):
            row = acc[ho * wq:ho * wq + wo_n]
            drow = dst[ho]
            for wo in range(wo_n):
                drow[wo] = row[wo]


@njit(cache=True, parallel=True)
def depthwise_input_grad(go, w, sh, sw, dh, dw, gxp):
    """Gradient of the depthwise correlation with respect to its padded input (``gxp`` overwritten)."""
    n_n, oc_n, ho_n, wo_n = go.shape
    c_n, hp, wp = gxp.shape[1], gxp.shape[2], gxp.shape[3]
    m = oc_n // c_n
    kh, kw = w.shape[1], w.shape[2]
    for nc in prange(n_n * c_n):
        n = nc // c_n
        c = nc % c_n
        plane = gxp[n, c]
        for a in range(hp):
            prow = plane[a]
            for b in range(wp):
                prow[b] = 0
        for oc in range(c * m, (c + 1) * m):
            g = go[n, oc]
            for ho in range(ho_n):
                grow = g[ho]
                for i in range(kh):
                    prow = plane[ho * sh + i * dh]
                    for j in range(kw):
                        wv = w[oc, i, j]
                        seg = prow[j * dw:j * dw + sw * (wo_n - 1) + 1:sw]
                        for wo in range(wo_n):
                            seg[wo] += wv * grow[wo]


@njit(cache=True, parallel=True)
def depthwise_weight_grad(go, xp, sh, sw, dh, dw, gw):
    """Gradient of the depthwise correlation with respect to ``w`` (C*m, kh, kw), overwritten.

    Each tap's gradient is a dot product between the output gradient and the
    input shifted by that tap; it is accumulated in float64.
    """
    n_n, oc_n, ho_n, wo_n = go.shape
    c_n = xp.shape[1]
    m = oc_n // c_n
    kh, kw = gw.shape[1], gw.shape[2]
    for t in prange(oc_n * kh * kw):
        oc = t // (kh * kw)
        i = (t // kw) % kh
        j = t % kw
        c = oc // m
        acc = 0.0
        for n in range(n_n):
            plane = xp[n, c]
            g = go[n, oc]
            for ho in range(ho_n):
                seg = plane[ho * sh + i * dh, j * dw:j * dw + sw * (wo_n - 1) + 1:sw]
                grow = g[ho]
                for wo in range(wo_n):
                    acc += grow[wo] * seg[wo]
        gw[oc, i, j] = acc

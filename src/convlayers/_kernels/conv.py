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

from . import parallel_kernel


@parallel_kernel()
def im2col(xq, kh, kw, sh, sw, dh, dw, r0, r1, wo_n, cols):
    """Unroll the windows of output rows ``r0 ≤ ho < r1`` of a block of samples into columns.

    ``cols[(c*kh + i)*kw + j, (s*(r1 - r0) + ho - r0)*wo_n + wo] = xpad[s, c, ho*sh + i*dh, wo*sw + j*dw]``
    for the zero-padded samples ``xpad``, given as their stride phases
    ``xq[s, a*sw + b, c, r, q] = xpad[s, c, a + sh*r, b + sw*q]`` (for stride 1,
    ``xq`` is ``xpad[:, None]``).  Every copy is then a contiguous slice, which
    vectorises; ``cols`` is C-contiguous.  Small images are unrolled several
    samples at a time so that one matrix product serves the whole block.
    """
    n_n, c_n = xq.shape[0], xq.shape[2]
    k = kh * kw
    rows = r1 - r0
    for row in prange(c_n * k):
        c = row // k
        di = ((row // kw) % kh) * dh
        dj = (row % kw) * dw
        phase = (di % sh) * sw + dj % sw
        q0 = dj // sw
        dst_row = cols[row]
        for s in range(n_n):
            plane = xq[s, phase, c]
            for ho in range(r0, r1):
                t = (s * rows + ho - r0) * wo_n
                dst = dst_row[t:t + wo_n]
                seg = plane[ho + di // sh, q0:q0 + wo_n]
                for wo in range(wo_n):
                    dst[wo] = seg[wo]


@parallel_kernel()
def pad_phases(x, pt, pl, sh, sw, xq):
    """Zero-pad samples and split them into stride phases in one pass, for :func:`im2col`.

    ``xq[s, a*sw + b, c, r, q] = xpad[s, c, a + sh*r, b + sw*q]`` where ``xpad``
    is ``x`` (m, C, H, W) with ``pt`` rows and ``pl`` columns of zeros before
    it; ``xq`` must arrive zeroed and large enough for the bottom/right padding.
    (``np.pad`` followed by strided phase copies took 5 of the 11 ms of a
    stride-2 3×3 conv on 8×64×56×56.)
    """
    m, c_n, h, w = x.shape
    for sc in prange(m * c_n):
        s = sc // c_n
        c = sc % c_n
        for r in range(h):
            pr = r + pt
            a = pr % sh
            rr = pr // sh
            src = x[s, c, r]
            if sw == 1:
                dst = xq[s, a, c, rr, pl:pl + w]
                for col in range(w):
                    dst[col] = src[col]
                continue
            for b in range(sw):
                col0 = (b - pl) % sw  # first input column that lands in phase b
                if col0 >= w:
                    continue
                count = (w - col0 + sw - 1) // sw
                q0 = (col0 + pl) // sw
                dst = xq[s, a * sw + b, c, rr, q0:q0 + count]
                sseg = src[col0:col0 + sw * (count - 1) + 1:sw]
                for t in range(count):
                    dst[t] = sseg[t]


@parallel_kernel()
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
def _phase_planes(x, pt, pl, hp, wp, sh, sw, hq, wq, buf, fill=0.0):
    """Split the padded (hp, wp) view of plane ``x`` into sh·sw flat phase planes of (hq, wq).

    Phase (a, b) holds padded pixels (a + sh·r, b + sw·q): with it, a strided
    window's tap is a constant shift inside one contiguous phase plane.  The
    padding holds ``fill`` (0 for convolution, -inf for max pooling).
    """
    for q in range(buf.shape[0]):
        buf[q] = fill
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


@njit(cache=True)
def _phase_geometry(hp, wp, sh, sw, ho_n, wo_n):
    """Phase-plane shape (hq, wq), its size, and the flat length one output plane spans in it."""
    hq = (hp + sh - 1) // sh
    wq = (wp + sw - 1) // sw
    return hq, wq, hq * wq, (ho_n - 1) * wq + wo_n


@njit(cache=True)
def _tap_offset(di, dj, sh, sw, plane_q, wq):
    """Where tap (di, dj) of a window starts in the flat phase planes: phase (di % sh, dj % sw), shifted."""
    return ((di % sh) * sw + dj % sw) * plane_q + (di // sh) * wq + dj // sw


@parallel_kernel()
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
    hq, wq, plane_q, length = _phase_geometry(hp, wp, sh, sw, ho_n, wo_n)
    for no in prange(n_n * oc_n):
        n = no // oc_n
        oc = no % oc_n
        src = np.empty(sh * sw * plane_q, dtype=out.dtype)
        _phase_planes(x[n, oc // m], pt, pl, hp, wp, sh, sw, hq, wq, src)
        acc = np.zeros(length, dtype=out.dtype)
        for i in range(kh):
            for j in range(kw):
                wv = w[oc, i, j]
                off = _tap_offset(i * dh, j * dw, sh, sw, plane_q, wq)
                seg = src[off:off + length]
                for t in range(length):
                    acc[t] += wv * seg[t]
        dst = out[n, oc]
        for ho in range(ho_n):
            row = acc[ho * wq:ho * wq + wo_n]
            drow = dst[ho]
            for wo in range(wo_n):
                drow[wo] = row[wo]


@njit(cache=True)
def _flat_rows(g, wq, buf):
    """Lay the (Ho, Wo) plane ``g`` out with row stride ``wq`` in the flat ``buf`` (junk columns zeroed)."""
    ho_n, wo_n = g.shape
    for q in range(buf.shape[0]):
        buf[q] = 0
    for ho in range(ho_n):
        dst = buf[ho * wq:ho * wq + wo_n]
        src = g[ho]
        for wo in range(wo_n):
            dst[wo] = src[wo]


@njit(cache=True)
def _unphase_plane(buf, pt, pl, sh, sw, hq, wq, gx):
    """Inverse of :func:`_phase_planes` for the unpadded pixels: gather phase planes back into ``gx`` (H, W)."""
    h, w = gx.shape
    for r in range(h):
        pr = r + pt
        dst = gx[r]
        if sw == 1:
            base = (pr % sh) * hq * wq + (pr // sh) * wq + pl
            src = buf[base:base + w]
            for col in range(w):
                dst[col] = src[col]
            continue
        for b in range(sw):
            col0 = (b - pl) % sw
            if col0 >= w:
                continue
            count = (w - col0 + sw - 1) // sw
            base = ((pr % sh) * sw + b) * hq * wq + (pr // sh) * wq + (col0 + pl) // sw
            src = buf[base:base + count]
            sdst = dst[col0:col0 + sw * (count - 1) + 1:sw]
            for t in range(count):
                sdst[t] = src[t]


@parallel_kernel()
def depthwise_input_grad(go, w, pt, pl, hp, wp, sh, sw, dh, dw, gx):
    """Gradient of :func:`depthwise_forward` with respect to its (unpadded) input ``gx``, overwritten.

    The adjoint of the forward's shifted multiply-adds: each tap adds the
    scaled output gradient, laid out on the phase grid, back at its shift.
    """
    n_n, oc_n, ho_n, wo_n = go.shape
    c_n = gx.shape[1]
    m = oc_n // c_n
    kh, kw = w.shape[1], w.shape[2]
    hq, wq, plane_q, length = _phase_geometry(hp, wp, sh, sw, ho_n, wo_n)
    for nc in prange(n_n * c_n):
        n = nc // c_n
        c = nc % c_n
        acc = np.zeros(sh * sw * plane_q, dtype=gx.dtype)
        g = np.empty(length, dtype=gx.dtype)
        for oc in range(c * m, (c + 1) * m):
            _flat_rows(go[n, oc], wq, g)
            for i in range(kh):
                for j in range(kw):
                    wv = w[oc, i, j]
                    off = _tap_offset(i * dh, j * dw, sh, sw, plane_q, wq)
                    seg = acc[off:off + length]
                    for t in range(length):
                        seg[t] += wv * g[t]
        _unphase_plane(acc, pt, pl, sh, sw, hq, wq, gx[n, c])


@parallel_kernel(fastmath={"reassoc", "contract"})
def depthwise_weight_grad(go, x, pt, pl, hp, wp, sh, sw, dh, dw, gw):
    """Gradient of :func:`depthwise_forward` with respect to ``w`` (C*m, kh, kw), overwritten.

    Each tap's gradient is the dot product of the output gradient with the
    input shifted by that tap; per-plane sums are reassociated (so they
    vectorise) and the planes are added up in float64.
    """
    n_n, oc_n, ho_n, wo_n = go.shape
    c_n = x.shape[1]
    m = oc_n // c_n
    kh, kw = gw.shape[1], gw.shape[2]
    hq, wq, plane_q, length = _phase_geometry(hp, wp, sh, sw, ho_n, wo_n)
    for oc in prange(oc_n):
        src = np.empty(sh * sw * plane_q, dtype=x.dtype)
        g = np.empty(length, dtype=x.dtype)
        total = np.zeros(kh * kw)
        for n in range(n_n):
            _phase_planes(x[n, oc // m], pt, pl, hp, wp, sh, sw, hq, wq, src)
            _flat_rows(go[n, oc], wq, g)
            for i in range(kh):
                for j in range(kw):
                    off = _tap_offset(i * dh, j * dw, sh, sw, plane_q, wq)
                    seg = src[off:off + length]
                    part = seg[0] * 0
                    for t in range(length):
                        part += g[t] * seg[t]
                    total[i * kw + j] += part
        for i in range(kh):
            for j in range(kw):
                gw[oc, i, j] = total[i * kw + j]

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
  and are never copied out).  A stride-1 3×3 whose output is as wide as its
  input skips the padded copy: the same shift works on the unpadded plane
  for the rows whose taps stay inside it, and only the border is fixed up
  (see :func:`_dw3x3_same`).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from . import njit, parallel_kernel
from .norm import affine_clamp_row


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


@njit(cache=True, nogil=True)
def im2col_direct(x, kh, kw, sh, sw, dh, dw, pt, pl, r0, r1, wo_n, cols):
    """:func:`im2col` straight from the unpadded samples ``x`` (m, C, H, W), zero padding (pt, pl) implied.

    Skips the padded phase copy (a pass over the input and a buffer the size
    of it) at the price of a strided read per row when ``sw > 1``; faster for
    stride 1 and for narrow outputs (measured: 0.38 vs 0.49 ms for 37×96×4×4,
    0.48 vs 0.83 ms for 4×64×56×56 at stride 2, but 0.34 vs 0.18 ms for the
    7×7 stride-2 stem at 224²).  Indices are unsigned: numba then emits no
    negative-index check per element, and the short rows of small images copy
    without building a slice per row (0.15 vs 0.25 ms for 32×48×8×8).
    """
    n_n, c_n, h, w = x.shape
    xf = x.ravel()
    cf = cols.ravel()
    k = kh * kw
    rows = r1 - r0
    ncols = n_n * rows * wo_n
    zero = cols.dtype.type(0)
    usw = np.uint64(sw)
    for row in range(c_n * k):
        c = row // k
        i = (row // kw) % kh
        j = row % kw
        off = j * dw - pl  # input column read by output column 0
        lo = min((-off + sw - 1) // sw, wo_n) if off < 0 else 0  # first output column inside the row
        hi = max(min(max((w - off + sw - 1) // sw, 0), wo_n), lo)  # one past the last
        for s in range(n_n):
            plane = (s * c_n + c) * h * w
            for ho in range(r0, r1):
                d = np.uint64(row * ncols + (s * rows + ho - r0) * wo_n)
                r = ho * sh + i * dh - pt
                if r < 0 or r >= h:
                    for t in range(np.uint64(wo_n)):
                        cf[d + t] = zero
                    continue
                for t in range(np.uint64(lo)):
                    cf[d + t] = zero
                src = np.uint64(plane + r * w + off + lo * sw)
                dd = d + np.uint64(lo)
                for t in range(np.uint64(hi - lo)):
                    cf[dd + t] = xf[src + t * usw]
                for t in range(np.uint64(hi), np.uint64(wo_n)):
                    cf[d + t] = zero


@njit(cache=True, nogil=True)
def im2col_nhwc(xh, kh, kw, sh, sw, dh, dw, pt, pl, r0, r1, wo_n, cols):
    """Channels-last unroll: one row per output pixel, its taps' channel vectors side by side.

    ``cols[(s*(r1 - r0) + ho - r0)*wo_n + wo, (i*kw + j)*C + c] = xpad[s, c, ho*sh + i*dh, wo*sw + j*dw]``
    for the samples ``xh`` (m, H, W, C) in NHWC order, zero padding (pt, pl)
    implied.  Every copy is a whole channel vector, where the NCHW unroll of a
    4×4 image copies rows of 4 floats: 0.02 vs 0.33 ms for 32×96×4×4.
    """
    m, h, w, c_n = xh.shape
    xf = xh.ravel()
    cf = cols.ravel()
    k_n = kh * kw * c_n
    rows = r1 - r0
    zero = cols.dtype.type(0)
    uc = np.uint64(c_n)
    for s in range(m):
        for ho in range(r0, r1):
            for wo in range(wo_n):
                d = np.uint64(((s * rows + ho - r0) * wo_n + wo) * k_n)
                for i in range(kh):
                    r = ho * sh + i * dh - pt
                    for j in range(kw):
                        q = wo * sw + j * dw - pl
                        dd = d + np.uint64((i * kw + j) * c_n)
                        if r < 0 or r >= h or q < 0 or q >= w:
                            for t in range(uc):
                                cf[dd + t] = zero
                        else:
                            src = np.uint64(((s * h + r) * w + q) * c_n)
                            for t in range(uc):
                                cf[dd + t] = xf[src + t]


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


@njit(cache=True)
def _dw_row(xp, wk, ho, pt, pl, dh, dw, drow):
    """Output row ``ho`` of a stride-1 depthwise correlation, each tap one clipped slice multiply-add."""
    h, w = xp.shape
    kh, kw = wk.shape
    wo_n = drow.shape[0]
    for q in range(wo_n):
        drow[q] = 0
    for i in range(kh):
        r = ho - pt + i * dh
        if r < 0 or r >= h:
            continue
        src = xp[r]
        for j in range(kw):
            shift = j * dw - pl
            a = max(0, -shift)
            b = min(wo_n, w - shift)
            if a >= b:
                continue
            wv = wk[i, j]
            seg = src[a + shift:b + shift]
            d = drow[a:b]
            for q in range(b - a):
                d[q] += wv * seg[q]


@njit(cache=True)
def _dw_same_span(h, w, ho_n, pt, pl, dh, dw):
    """Rows [r0, r1) and columns [c0, c1) of a stride-1 3×3 output whose taps all fall inside the plane.

    With the output as wide as the input, tap (i, j) of output pixel t (flat)
    is input pixel ``t + (i·dh − pt)·w + j·dw − pl`` (flat), so these rows are
    one flat range; r1 == r0 when there is no such range.
    """
    r0, r1 = pt, min(ho_n, h - 2 * dh + pt)
    c0, c1 = pl, min(w, w - 2 * dw + pl)
    if r1 <= r0 or c1 <= c0:
        return 0, 0, c0, c1
    return r0, r1, c0, c1


@njit(cache=True)
def _nine_shifts(xf, b, n, w, dh, dw):
    """The nine length-``n`` slices of the flat plane ``xf`` (width ``w``) that a 3×3 tap reads from ``b``."""
    return (xf[b:b + n], xf[b + dw:b + dw + n], xf[b + 2 * dw:b + 2 * dw + n],
            xf[b + dh * w:b + dh * w + n], xf[b + dh * w + dw:b + dh * w + dw + n],
            xf[b + dh * w + 2 * dw:b + dh * w + 2 * dw + n],
            xf[b + 2 * dh * w:b + 2 * dh * w + n], xf[b + 2 * dh * w + dw:b + 2 * dh * w + dw + n],
            xf[b + 2 * dh * w + 2 * dw:b + 2 * dh * w + 2 * dw + n])


@njit(cache=True)
def _dw3x3_same(xp, wk, pt, pl, dh, dw, dst):
    """Stride-1 3×3 depthwise correlation of one unpadded plane ``xp`` into ``dst``, as wide as ``xp``.

    The rows whose taps all fall inside the plane are one flat loop of nine
    shifted input slices into the output, written once: no padded copy, no
    accumulator.  In that range, the ``2·dw`` border columns of each row read
    their neighbour row and are recomputed; the ``pt + pb`` border rows take
    clipped slices.  (384ch@28 b8, 2 threads: 0.7–0.8 ms against 1.4 ms for
    padded phase planes and nine accumulating passes; torch 1.1–1.3 ms.)
    """
    h, w = xp.shape
    ho_n = dst.shape[0]
    r0, r1, c0, c1 = _dw_same_span(h, w, ho_n, pt, pl, dh, dw)
    if r1 > r0:
        xf = xp.ravel()
        of = dst.ravel()
        t0 = r0 * w + c0
        n = (r1 - 1) * w + c1 - t0
        w0, w1, w2 = wk[0, 0], wk[0, 1], wk[0, 2]
        w3, w4, w5 = wk[1, 0], wk[1, 1], wk[1, 2]
        w6, w7, w8 = wk[2, 0], wk[2, 1], wk[2, 2]
        # input pixel of tap (0, 0) for output t0
        s0, s1, s2, s3, s4, s5, s6, s7, s8 = _nine_shifts(xf, t0 - pt * w - pl, n, w, dh, dw)
        d = of[t0:t0 + n]
        for t in range(n):
            d[t] = (w0 * s0[t] + w1 * s1[t] + w2 * s2[t] + w3 * s3[t] + w4 * s4[t] + w5 * s5[t]
                    + w6 * s6[t] + w7 * s7[t] + w8 * s8[t])
        # The taps inside the plane are the same for a border column in every row, so
        # they are found once per column: a generic bounds-checked loop per pixel took
        # 2.5 of the 3.2 ms (serial) of 384ch@28.
        for k in range(c0 + w - c1):
            wo = k if k < c0 else c1 + k - c0
            jlo = max(0, -((wo - pl) // dw))
            jhi = min(3, (w - 1 - wo + pl) // dw + 1)
            for ho in range(r0, r1):
                acc = w0 * 0
                for j in range(jlo, jhi):
                    c = wo - pl + j * dw
                    acc += (wk[0, j] * xp[ho - pt, c] + wk[1, j] * xp[ho - pt + dh, c]
                            + wk[2, j] * xp[ho - pt + 2 * dh, c])
                dst[ho, wo] = acc
    for ho in range(min(r0, ho_n)):
        _dw_row(xp, wk, ho, pt, pl, dh, dw, dst[ho])
    for ho in range(r1, ho_n):
        _dw_row(xp, wk, ho, pt, pl, dh, dw, dst[ho])


# Output planes up to this size take the padded-buffer path of depthwise_forward even at stride 1.
_DW_SMALL_PLANE = 56 * 56


@parallel_kernel()
def depthwise_forward(x, w, pt, pl, hp, wp, sh, sw, dh, dw, out, alpha, beta, lo, hi, affine):
    """Depthwise correlation; ``x`` (N, C, H, W) unpadded, zero padding (pt, pl) applied here.

    ``w`` is (C*m, kh, kw) and ``out`` (N, C*m, Ho, Wo): channel ``oc`` reads
    ``oc // m``.  With ``affine``, each finished plane is mapped through
    ``clamp(y·alpha[oc] + beta[oc], lo, hi)`` while in cache (an evaluation-mode
    BatchNorm and ReLU/ReLU6 fused after the convolution), and the number of
    NaNs in the result is returned (0 without ``affine``: not counted).

    A stride-1 3×3 on a large plane as wide as its input reads the input in
    place (:func:`_dw3x3_same`); everything else copies the plane into a
    zero-padded buffer and computes from it (:func:`_dw_padded_plane`).
    """
    n_n, oc_n, ho_n, wo_n = out.shape
    c_n, h, wd = x.shape[1], x.shape[2], x.shape[3]
    m = oc_n // c_n
    kh, kw = w.shape[1], w.shape[2]
    planes = n_n * oc_n
    nans = 0
    if (sh == 1 and sw == 1 and kh == 3 and kw == 3 and wo_n == wd
            and ho_n * wo_n > _DW_SMALL_PLANE):
        for no in prange(planes):
            n = no // oc_n
            oc = no % oc_n
            _dw3x3_same(x[n, oc // m], w[oc], pt, pl, dh, dw, out[n, oc])
            if affine:
                nans += _affine_plane(out[n, oc], alpha[oc], beta[oc], lo, hi)
        return nans
    xf = x.ravel()
    of = out.ravel()
    # Buffers per block of planes, not per plane.  numba.get_num_threads() here would make the
    # kernel uncacheable; 64 blocks spread evenly over any thread count.
    blocks = min(planes, 64)
    for blk in prange(blocks):
        # the padding is zeroed once per block: each plane overwrites only the interior
        buf = np.zeros(hp * wp, dtype=out.dtype)
        acc = np.empty(ho_n * wp, dtype=out.dtype)
        for no in range(blk * planes // blocks, (blk + 1) * planes // blocks):
            n = no // oc_n
            oc = no % oc_n
            _dw_padded_plane(xf, (n * c_n + oc // m) * h * wd, h, wd, w[oc], pt, pl, sh, sw, dh, dw,
                             ho_n, wo_n, wp, buf, acc, of, no * ho_n * wo_n)
            if affine:
                nans += _affine_plane(out[n, oc], alpha[oc], beta[oc], lo, hi)
    return nans


@njit(cache=True)
def _affine_plane(plane, a, b, lo, hi):
    """``plane = clamp(plane·a + b, lo, hi)`` in place, row by row (see ``norm.affine_clamp``); the NaN count."""
    nans = 0
    for r in range(plane.shape[0]):
        nans += affine_clamp_row(plane[r], a, b, lo, hi)
    return nans


@njit(cache=True)
def _dw_padded_plane(xf, xb, h, w, wk, pt, pl, sh, sw, dh, dw, ho_n, wo_n, wp, buf, acc, of, ob):
    """One depthwise output plane from input plane ``xf[xb:xb + h·w]`` into ``of[ob:ob + Ho·Wo]``.

    The plane is copied into the interior of ``buf``, a (hp, wp) buffer whose
    padding is already zero; a stride-1 3×3 is then one flat nine-tap loop
    into ``acc`` (rows ``wp`` apart), other strides and sizes a loop per
    output row.  Flat arrays with
    unsigned offsets: no slice per row and no negative-index checks, which
    dominated small planes (mobilenet_v2's 576×14×14: 0.09 vs 0.19 ms;
    960×7×7: 0.09 vs 0.26 ms, one thread).
    """
    zero = of.dtype.type(0)
    for r in range(h):
        d = np.uint64((r + pt) * wp + pl)
        s = np.uint64(xb + r * w)
        for c in range(np.uint64(w)):
            buf[d + c] = xf[s + c]
    kh, kw = wk.shape
    usw = np.uint64(sw)
    if kh == 3 and kw == 3:
        w0, w1, w2 = wk[0, 0], wk[0, 1], wk[0, 2]
        w3, w4, w5 = wk[1, 0], wk[1, 1], wk[1, 2]
        w6, w7, w8 = wk[2, 0], wk[2, 1], wk[2, 2]
        o1 = np.uint64(dw)
        o2 = np.uint64(2 * dw)
        r1 = np.uint64(dh * wp)
        r2 = np.uint64(2 * dh * wp)
        if sh == 1 and sw == 1:
            # one flat loop over all rows (the junk columns between them are never copied out):
            # long vectors, where a loop per 28-wide row left a remainder in every row (1.1 vs 0.6 ms)
            for t in range(np.uint64((ho_n - 1) * wp + wo_n)):
                acc[t] = (w0 * buf[t] + w1 * buf[t + o1] + w2 * buf[t + o2]
                          + w3 * buf[t + r1] + w4 * buf[t + r1 + o1] + w5 * buf[t + r1 + o2]
                          + w6 * buf[t + r2] + w7 * buf[t + r2 + o1] + w8 * buf[t + r2 + o2])
            for ho in range(ho_n):
                d = np.uint64(ob + ho * wo_n)
                s = np.uint64(ho * wp)
                for q in range(np.uint64(wo_n)):
                    of[d + q] = acc[s + q]
            return
        for ho in range(ho_n):
            rb = np.uint64(ho * sh * wp)
            d = np.uint64(ob + ho * wo_n)
            for q in range(np.uint64(wo_n)):
                t = rb + q * usw
                of[d + q] = (w0 * buf[t] + w1 * buf[t + o1] + w2 * buf[t + o2]
                             + w3 * buf[t + r1] + w4 * buf[t + r1 + o1] + w5 * buf[t + r1 + o2]
                             + w6 * buf[t + r2] + w7 * buf[t + r2 + o1] + w8 * buf[t + r2 + o2])
        return
    for ho in range(ho_n):
        d = np.uint64(ob + ho * wo_n)
        for q in range(np.uint64(wo_n)):
            of[d + q] = zero
        for i in range(kh):
            for j in range(kw):
                wv = wk[i, j]
                rb = np.uint64((ho * sh + i * dh) * wp + j * dw)
                for q in range(np.uint64(wo_n)):
                    of[d + q] += wv * buf[rb + q * usw]


@njit(cache=True)
def _dw3x3_flat(src, wk, sh, sw, dh, dw, plane_q, wq, acc):
    """All nine taps of a 3×3 over flat phase planes in one pass into ``acc`` (overwritten)."""
    n = acc.shape[0]
    o = _tap_offset(0, 0, sh, sw, plane_q, wq)
    s0 = src[o:o + n]
    o = _tap_offset(0, dw, sh, sw, plane_q, wq)
    s1 = src[o:o + n]
    o = _tap_offset(0, 2 * dw, sh, sw, plane_q, wq)
    s2 = src[o:o + n]
    o = _tap_offset(dh, 0, sh, sw, plane_q, wq)
    s3 = src[o:o + n]
    o = _tap_offset(dh, dw, sh, sw, plane_q, wq)
    s4 = src[o:o + n]
    o = _tap_offset(dh, 2 * dw, sh, sw, plane_q, wq)
    s5 = src[o:o + n]
    o = _tap_offset(2 * dh, 0, sh, sw, plane_q, wq)
    s6 = src[o:o + n]
    o = _tap_offset(2 * dh, dw, sh, sw, plane_q, wq)
    s7 = src[o:o + n]
    o = _tap_offset(2 * dh, 2 * dw, sh, sw, plane_q, wq)
    s8 = src[o:o + n]
    w0, w1, w2 = wk[0, 0], wk[0, 1], wk[0, 2]
    w3, w4, w5 = wk[1, 0], wk[1, 1], wk[1, 2]
    w6, w7, w8 = wk[2, 0], wk[2, 1], wk[2, 2]
    for t in range(n):
        acc[t] = (w0 * s0[t] + w1 * s1[t] + w2 * s2[t] + w3 * s3[t] + w4 * s4[t] + w5 * s5[t]
                  + w6 * s6[t] + w7 * s7[t] + w8 * s8[t])


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

    For a stride-1 3×3 without channel multiplier whose output is as wide as
    its input, that gradient is the correlation of the output gradient with
    the flipped kernel, padded by ``2·d − p``: :func:`_dw3x3_same` again
    (64ch@56 b8, 2 threads: 0.43 ms against 0.73 ms for the scatter below).  Otherwise,
    the adjoint of the forward's shifted multiply-adds: each tap adds the
    scaled output gradient, laid out on the phase grid, back at its shift.
    """
    n_n, oc_n, ho_n, wo_n = go.shape
    c_n = gx.shape[1]
    m = oc_n // c_n
    kh, kw = w.shape[1], w.shape[2]
    planes = n_n * c_n
    if (m == 1 and sh == 1 and sw == 1 and kh == 3 and kw == 3 and wo_n == gx.shape[3]
            and pt <= 2 * dh and pl <= 2 * dw):
        wf = np.empty_like(w)
        for c in range(c_n):
            for i in range(3):
                for j in range(3):
                    wf[c, i, j] = w[c, 2 - i, 2 - j]
        for nc in prange(planes):
            n = nc // c_n
            c = nc % c_n
            _dw3x3_same(go[n, c], wf[c], 2 * dh - pt, 2 * dw - pl, dh, dw, gx[n, c])
        return
    hq, wq, plane_q, length = _phase_geometry(hp, wp, sh, sw, ho_n, wo_n)
    blocks = min(planes, 64)  # buffers per block of planes, as in depthwise_forward
    for blk in prange(blocks):
        acc = np.empty(sh * sw * plane_q, dtype=gx.dtype)
        g = np.empty(length, dtype=gx.dtype)
        for nc in range(blk * planes // blocks, (blk + 1) * planes // blocks):
            n = nc // c_n
            c = nc % c_n
            for t in range(acc.shape[0]):
                acc[t] = 0
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


@njit(cache=True, fastmath={"reassoc", "contract"})
def _dw3x3_same_wgrad(xp, g, pt, pl, dh, dw, total):
    """Add one plane's gradient of a stride-1 3×3 (as :func:`_dw3x3_same`) to the 9 sums in ``total``.

    One flat pass with nine reassociated (vectorised) dot products over the
    rows whose taps all fall inside the plane; then, in that range, the taps
    of the border columns that read the neighbour row are taken back out, and
    the border pixels outside it and the border rows are added with clipped
    slices.
    """
    h, w = xp.shape
    ho_n = g.shape[0]
    r0, r1, c0, c1 = _dw_same_span(h, w, ho_n, pt, pl, dh, dw)
    if r1 > r0:
        xf = xp.ravel()
        gf = g.ravel()
        t0 = r0 * w + c0
        n = (r1 - 1) * w + c1 - t0
        b0 = t0 - pt * w - pl
        s0, s1, s2, s3, s4, s5, s6, s7, s8 = _nine_shifts(xf, b0, n, w, dh, dw)
        gs = gf[t0:t0 + n]
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = a8 = gs.dtype.type(0)
        for t in range(n):
            gv = gs[t]
            a0 += gv * s0[t]
            a1 += gv * s1[t]
            a2 += gv * s2[t]
            a3 += gv * s3[t]
            a4 += gv * s4[t]
            a5 += gv * s5[t]
            a6 += gv * s6[t]
            a7 += gv * s7[t]
            a8 += gv * s8[t]
        total[0] += a0
        total[1] += a1
        total[2] += a2
        total[3] += a3
        total[4] += a4
        total[5] += a5
        total[6] += a6
        total[7] += a7
        total[8] += a8
        for k in range(c0 + w - c1):
            wo = k if k < c0 else c1 + k - c0
            for ho in range(r0, r1):
                t = ho * w + wo
                gv = g[ho, wo]
                inside = t0 <= t < t0 + n
                for j in range(3):
                    c = wo - pl + j * dw
                    if 0 <= c < w:
                        if not inside:
                            for i in range(3):
                                total[i * 3 + j] += gv * xp[ho - pt + i * dh, c]
                    elif inside:
                        q = b0 + t - t0 + j * dw
                        for i in range(3):
                            total[i * 3 + j] -= gv * xf[q + i * dh * w]
    for ho in range(ho_n):
        if r0 <= ho < r1:
            continue
        for i in range(3):
            r = ho - pt + i * dh
            if r < 0 or r >= h:
                continue
            for j in range(3):
                shift = j * dw - pl
                a = max(0, -shift)
                e = min(g.shape[1], w - shift)
                if a >= e:
                    continue
                gseg = g[ho, a:e]
                xseg = xp[r, a + shift:e + shift]
                part = gseg.dtype.type(0)
                for q in range(e - a):
                    part += gseg[q] * xseg[q]
                total[i * 3 + j] += part


@parallel_kernel(fastmath={"reassoc", "contract"})
def depthwise_weight_grad(go, x, pt, pl, hp, wp, sh, sw, dh, dw, gw):
    """Gradient of :func:`depthwise_forward` with respect to ``w`` (C*m, kh, kw), overwritten.

    Each tap's gradient is the dot product of the output gradient with the
    input shifted by that tap; per-plane sums are reassociated (so they
    vectorise), kept in the data type, and the planes are added up in float64.
    (The per-plane sums were float64 by accident -- ``x[0] * 0`` is float64
    for float32 ``x`` in numba -- which converted every product: 64ch@56 b8,
    2 threads, 0.91 -> 0.65 ms in float32; relative error against float64
    2.6e-7, PyTorch's float32 gradient 4.2e-6.)  A stride-1 3×3 whose
    output is as wide as its input reads the planes in place
    (:func:`_dw3x3_same_wgrad`; 64ch@56 b8, 2 threads: 0.52 ms against 0.86 ms
    for copying them into padded phase planes and nine passes).
    """
    n_n, oc_n, ho_n, wo_n = go.shape
    c_n = x.shape[1]
    m = oc_n // c_n
    kh, kw = gw.shape[1], gw.shape[2]
    if sh == 1 and sw == 1 and kh == 3 and kw == 3 and wo_n == x.shape[3]:
        for oc in prange(oc_n):
            total = np.zeros(9)
            for n in range(n_n):
                _dw3x3_same_wgrad(x[n, oc // m], go[n, oc], pt, pl, dh, dw, total)
            for i in range(3):
                for j in range(3):
                    gw[oc, i, j] = total[i * 3 + j]
        return
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
                    part = seg.dtype.type(0)
                    for t in range(length):
                        part += g[t] * seg[t]
                    total[i * kw + j] += part
        for i in range(kh):
            for j in range(kw):
                gw[oc, i, j] = total[i * kw + j]

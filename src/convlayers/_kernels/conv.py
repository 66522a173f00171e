"""Compiled kernels behind ``functional.conv``.

The layout trick: a convolution with ``C_in/groups > 1`` is a matrix product
once every receptive field is unrolled into a column (``im2col``); BLAS then
does the channel mixing.  These kernels do only the unrolling and its adjoint
(``col2im``), plus the depthwise case (one input channel per group), where
there is no channel mixing to hand to BLAS and a direct loop wins.

All kernels take C-contiguous arrays and loop so that the innermost index
walks contiguous memory; ``prange`` splits over (sample, channel) planes so
that no two threads write the same plane.
"""

from __future__ import annotations

from numba import njit, prange


@njit(cache=True, parallel=True)
def im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, ho_n, wo_n, cols):
    """Unroll windows: ``cols[n, (c*kh + i)*kw + j, ho*wo_n + wo] = x_padded[n, c, ho*sh + i*dh, wo*sw + j*dw]``.

    ``x`` is (N, C, H, W); ``cols`` is (N, C*kh*kw, ho_n*wo_n).  Zero padding
    ``ph``/``pw`` is implicit: taps that land outside the input read 0.
    """
    n_n, c_n, h_n, w_n = x.shape
    for nc in prange(n_n * c_n):
        n = nc // c_n
        c = nc % c_n
        for i in range(kh):
            for j in range(kw):
                row = (c * kh + i) * kw + j
                # wo range whose tap column lies inside the input
                off = j * dw - pw
                wo_lo = 0
                if off < 0:
                    wo_lo = (-off + sw - 1) // sw
                wo_hi = wo_n
                if w_n - 1 - off < 0:
                    wo_hi = 0
                else:
                    wo_hi = min(wo_n, (w_n - 1 - off) // sw + 1)
                if wo_hi < wo_lo:
                    wo_hi = wo_lo
                for ho in range(ho_n):
                    hi = ho * sh - ph + i * dh
                    base = ho * wo_n
                    if hi < 0 or hi >= h_n:
                        for wo in range(wo_n):
                            cols[n, row, base + wo] = 0
                        continue
                    for wo in range(wo_lo):
                        cols[n, row, base + wo] = 0
                    for wo in range(wo_lo, wo_hi):
                        cols[n, row, base + wo] = x[n, c, hi, wo * sw + off]
                    for wo in range(wo_hi, wo_n):
                        cols[n, row, base + wo] = 0


@njit(cache=True, parallel=True)
def col2im(cols, kh, kw, sh, sw, ph, pw, dh, dw, ho_n, wo_n, out):
    """Adjoint of :func:`im2col`: add every column entry back to the pixel it came from.

    ``out`` is (N, C, H, W) and is accumulated into (zero it first); taps that
    fall in the padding are dropped.
    """
    n_n, c_n, h_n, w_n = out.shape
    for nc in prange(n_n * c_n):
        n = nc // c_n
        c = nc % c_n
        for i in range(kh):
            for j in range(kw):
                row = (c * kh + i) * kw + j
                off = j * dw - pw
                wo_lo = 0
                if off < 0:
                    wo_lo = (-off + sw - 1) // sw
                if w_n - 1 - off < 0:
                    wo_hi = 0
                else:
                    wo_hi = min(wo_n, (w_n - 1 - off) // sw + 1)
                for ho in range(ho_n):
                    hi = ho * sh - ph + i * dh
                    if hi < 0 or hi >= h_n:
                        continue
                    base = ho * wo_n
                    for wo in range(wo_lo, wo_hi):
                        out[n, c, hi, wo * sw + off] += cols[n, row, base + wo]


@njit(cache=True, parallel=True)
def depthwise_forward(xp, w, sh, sw, dh, dw, out):
    """Depthwise correlation on a zero-padded input.

    ``xp`` is (N, C, Hp, Wp), ``w`` is (C*m, kh, kw) and ``out`` is
    (N, C*m, Ho, Wo): output channel ``oc`` reads input channel ``oc // m``.
    """
    n_n, oc_n, ho_n, wo_n = out.shape
    c_n = xp.shape[1]
    m = oc_n // c_n
    kh = w.shape[1]
    kw = w.shape[2]
    for no in prange(n_n * oc_n):
        n = no // oc_n
        oc = no % oc_n
        c = oc // m
        for ho in range(ho_n):
            for wo in range(wo_n):
                out[n, oc, ho, wo] = 0
        for i in range(kh):
            for j in range(kw):
                wv = w[oc, i, j]
                for ho in range(ho_n):
                    hi = ho * sh + i * dh
                    for wo in range(wo_n):
                        out[n, oc, ho, wo] += wv * xp[n, c, hi, wo * sw + j * dw]


@njit(cache=True, parallel=True)
def depthwise_input_grad(go, w, sh, sw, dh, dw, gxp):
    """Gradient of :func:`depthwise_forward` with respect to the padded input.

    ``gxp`` is (N, C, Hp, Wp) and is overwritten; crop the padding afterwards.
    """
    n_n, oc_n, ho_n, wo_n = go.shape
    c_n = gxp.shape[1]
    m = oc_n // c_n
    kh = w.shape[1]
    kw = w.shape[2]
    for nc in prange(n_n * c_n):
        n = nc // c_n
        c = nc % c_n
        for a in range(gxp.shape[2]):
            for b in range(gxp.shape[3]):
                gxp[n, c, a, b] = 0
        for oc in range(c * m, (c + 1) * m):
            for i in range(kh):
                for j in range(kw):
                    wv = w[oc, i, j]
                    for ho in range(ho_n):
                        hi = ho * sh + i * dh
                        for wo in range(wo_n):
                            gxp[n, c, hi, wo * sw + j * dw] += wv * go[n, oc, ho, wo]


@njit(cache=True, parallel=True)
def depthwise_weight_grad(go, xp, sh, sw, dh, dw, gw):
    """Gradient of :func:`depthwise_forward` with respect to ``w`` (C*m, kh, kw), overwritten."""
    n_n, oc_n, ho_n, wo_n = go.shape
    c_n = xp.shape[1]
    m = oc_n // c_n
    kh = gw.shape[1]
    kw = gw.shape[2]
    for t in prange(oc_n * kh * kw):
        oc = t // (kh * kw)
        i = (t // kw) % kh
        j = t % kw
        c = oc // m
        acc = 0.0
        for n in range(n_n):
            for ho in range(ho_n):
                hi = ho * sh + i * dh
                for wo in range(wo_n):
                    acc += go[n, oc, ho, wo] * xp[n, c, hi, wo * sw + j * dw]
        gw[oc, i, j] = acc

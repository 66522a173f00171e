"""Compiled kernels for channels-last (NHWC) convolutions, behind ``functional._conv_channels_last``.

Why a second layout: in NCHW a depthwise convolution works on one plane at a
time, and mobilenet_v2's late planes are 14×14 and 7×7 — rows shorter than one
AVX-512 vector, so most of the work is loop overhead and copies (960×7×7 took
0.12 ms on one core, 125 ns a plane).  Channels-last puts the channels of a
pixel side by side: every tap is one multiply-add across a whole channel
vector, whatever the image size (960×7×7: 0.03 ms; 96×112×112 stride 2:
0.23 vs 0.73 ms; both one core of the 2-core Intel Xeon VM, AVX-512).

Each output value is summed tap by tap in the same order as the NCHW kernels
(row-major over the window, padded taps left out rather than multiplied by
zero) and then mapped through ``v·alpha[c] + beta[c]`` and the clamp, so the
two layouts give the same numbers.  Array views per pixel, not flat offsets:
the flat-offset form of the 3×3 loop ran 2–3× slower here (its mixed
signed/unsigned index arithmetic did not vectorise).
"""

from __future__ import annotations

import numpy as np
from numba import prange, types
from numba.extending import intrinsic

from . import njit, parallel_kernel
from ._ir import Emitter, lanes_of
from .gemm import _block as _gemm_block


@intrinsic
def _dw3x3_run(typingctx, x, x_off, step, rofs, cofs, w, w_off, wstride, out, o_off, ostep, count, alpha, beta,
               ab_off, lo, hi, nvalid):
    """``count`` consecutive output pixels of one 3×3 depthwise row, for one vector of channels.

    Pixel ``p`` reads the window at ``x_off + p·step`` (taps ``rofs`` apart by
    row and ``cofs`` by column) and writes ``out[o_off + p·ostep]``; the nine
    weight vectors (``w_off + t·wstride``) stay in registers for the whole run.
    Products are summed tap by tap with separate multiplies and adds, in the
    order of the scalar kernels, so the two give the same numbers.  Lanes from
    ``nvalid`` on are masked off (the last, partial vector of channels).
    Returns the NaN count.
    """
    sig = types.int64(x, x_off, step, rofs, cofs, w, w_off, wstride, out, o_off, ostep, count, alpha, beta,
                      ab_off, lo, hi, nvalid)

    def codegen(context, builder, signature, args):
        from numba.core import cgutils
        e = Emitter(context, builder, signature, args, signature.args[0].dtype)
        _, x_off, step, rofs, cofs, _, w_off, wstride, _, o_off, ostep, count, _, _, ab_off, lo, hi, nvalid = args
        xp, wp, op, alp, bep = e.data(0), e.data(5), e.data(8), e.data(12), e.data(13)
        add, mul, const = builder.add, builder.mul, e.const
        mask = e.lanes_below(nvalid)
        taps = [add(mul(const(i), rofs), mul(const(j), cofs)) for i in range(3) for j in range(3)]
        wv = [e.masked_load(wp, add(w_off, mul(const(t), wstride)), mask) for t in range(9)]
        alv, bev = e.masked_load(alp, ab_off, mask), e.masked_load(bep, ab_off, mask)
        lov, hiv = e.splat(lo), e.splat(hi)
        nans = cgutils.alloca_once_value(builder, const(0))
        with cgutils.for_range(builder, count) as loop:
            base = add(x_off, mul(loop.index, step))
            acc = None
            for t in range(9):
                term = builder.fmul(wv[t], e.masked_load(xp, add(base, taps[t]), mask))
                acc = term if acc is None else builder.fadd(acc, term)
            v, bad = e.finish(acc, alv, bev, lov, hiv, mask)
            builder.store(add(builder.load(nans), bad), nans)
            e.masked_store(v, op, add(o_off, mul(loop.index, ostep)), mask)
        return builder.load(nans)

    return sig, codegen


@intrinsic
def _lanes(typingctx, x):
    """The vector lanes of ``x``'s float type, a compile-time constant (16 float32 with AVX-512, 8 float64)."""
    n = lanes_of(x.dtype)

    def codegen(context, builder, signature, args):
        return context.get_constant(types.intp, n)

    return types.intp(x), codegen


@njit(cache=True, inline="always")
def _finish(o, alpha, beta, lo, hi):
    """``o = clamp(o·alpha + beta, lo, hi)`` over a pixel's channel vector; the number of NaNs."""
    nans = 0
    for c in range(o.shape[0]):
        v = o[c] * alpha[c] + beta[c]
        nans += v != v
        if v < lo:
            v = lo
        if v > hi:
            v = hi
        o[c] = v
    return nans


@njit(cache=True, inline="always")
def _pixel_any(x, w, n, r0, q0, dh, dw, o):
    """One output pixel's sums for any window, taps outside the image left out."""
    kh, kw, c_n = w.shape
    h, wd = x.shape[1], x.shape[2]
    for c in range(c_n):
        o[c] = 0
    for i in range(kh):
        r = r0 + i * dh
        if r < 0 or r >= h:
            continue
        for j in range(kw):
            q = q0 + j * dw
            if q < 0 or q >= wd:
                continue
            xv = x[n, r, q]
            wv = w[i, j]
            for c in range(c_n):
                o[c] += wv[c] * xv[c]


@njit(cache=True, inline="always")
def _row(x, w, n, ho, pt, pl, sh, sw, dh, dw, orow, alpha, beta, lo, hi):
    """Output row ``ho`` of sample ``n`` of a depthwise convolution into ``orow`` (Wo, C), C-contiguous; its NaN count.

    A 3×3 window wholly inside the image runs as vectors of channels
    (:func:`_dw3x3_run`, 32x112x112: 0.24 -> 0.07 ms in mobilenet_v2, 2 threads); the
    border pixels and other windows sum tap by tap, skipping the padding.
    """
    kh, kw, c_n = w.shape
    h, wd = x.shape[1], x.shape[2]
    wo_n = orow.shape[0]
    r0 = ho * sh - pt
    qa, qb = 0, 0
    if kh == 3 and kw == 3 and r0 >= 0 and r0 + 2 * dh < h:
        qa = min(wo_n, (pl + sw - 1) // sw)
        qb = max(qa, min(wo_n, (wd - 1 - 2 * dw + pl) // sw + 1))
    nans = 0
    if qb > qa:
        xf, wf, of = x.ravel(), w.ravel(), orow.ravel()
        x0 = ((n * h + r0) * wd + qa * sw - pl) * c_n
        lanes = _lanes(xf)
        for c0 in range(0, c_n, lanes):
            nans += _dw3x3_run(xf, x0 + c0, sw * c_n, dh * wd * c_n, dw * c_n, wf, c0, c_n, of, qa * c_n + c0, c_n,
                               qb - qa, alpha, beta, c0, lo, hi, min(lanes, c_n - c0))
    for wo in range(wo_n):
        if qa <= wo < qb:
            continue
        o = orow[wo]
        _pixel_any(x, w, n, r0, wo * sw - pl, dh, dw, o)
        nans += _finish(o, alpha, beta, lo, hi)
    return nans


@parallel_kernel()
def depthwise_nhwc(x, w, pt, pl, sh, sw, dh, dw, out, alpha, beta, lo, hi):
    """Depthwise correlation of channels-last ``x`` (N, H, W, C) with ``w`` (kh, kw, C) into ``out`` (N, Ho, Wo, C).

    Zero padding (pt, pl) is implied; every output is then mapped through
    ``clamp(v·alpha[c] + beta[c], lo, hi)`` (ones, zeros and ±inf for a plain
    convolution).  Returns the number of NaNs written, so that the caller can
    hand the rare non-finite case to the NCHW path and its repairs.
    One task per output row.
    """
    n_n, ho_n = out.shape[0], out.shape[1]
    nans = 0
    for t in prange(n_n * ho_n):
        nans += _row(x, w, t // ho_n, t % ho_n, pt, pl, sh, sw, dh, dw, out[t // ho_n, t % ho_n], alpha, beta, lo, hi)
    return nans


@njit(cache=True, nogil=True)
def affine_clamp_pixels(y, alpha, beta, lo, hi):
    """In place on (P, C) ``y``: ``y[p, c] = clamp(y[p, c]·alpha[c] + beta[c], lo, hi)``; the NaN count.

    The channels-last form of ``norm.affine_clamp``, for a matrix product's
    output tile (pixels by channels) while it is still in cache; serial (each
    worker thread maps its own tiles).
    """
    nans = 0
    for p in range(y.shape[0]):
        nans += _finish(y[p], alpha, beta, lo, hi)
    return nans


@parallel_kernel()
def unroll(xh, kh, kw, sh, sw, dh, dw, pt, pl, ho_n, wo_n, p0, cols):
    """Channels-last unroll of the output pixels ``p0 ≤ p < p0 + len(cols)`` into ``cols`` (pixels, kh·kw·C).

    ``cols[p - p0, (i*kw + j)*C + c] = xpad[s, c, ho*sh + i*dh, wo*sw + j*dw]``
    for ``p = (s*Ho + ho)*Wo + wo`` (flat over samples, rows and columns),
    zero padding (pt, pl) implied.  With ``dw == 1`` a window row inside the
    image is one copy of ``kw·C`` contiguous values (the 3-channel stem: three
    copies of 9 values a pixel instead of nine of 3; 0.5 -> 0.2 ms for its
    224x224 input, 2 threads), and pixels run in parallel.
    """
    h, w, c_n = xh.shape[1], xh.shape[2], xh.shape[3]
    xf = xh.ravel()
    cf = cols.ravel()
    k_n = kh * kw * c_n
    run = kw * c_n
    zero = xf.dtype.type(0)
    for t in prange(cols.shape[0]):
        p = p0 + t
        s = p // (ho_n * wo_n)
        ho = (p // wo_n) % ho_n
        q0 = (p % wo_n) * sw - pl
        for i in range(kh):
            r = ho * sh + i * dh - pt
            d = t * k_n + i * run
            if r < 0 or r >= h:
                for u in range(run):
                    cf[d + u] = zero
            elif dw == 1 and q0 >= 0 and q0 + kw <= w:
                src = ((s * h + r) * w + q0) * c_n
                for u in range(run):
                    cf[d + u] = xf[src + u]
            else:
                for j in range(kw):
                    q = q0 + j * dw
                    o = d + j * c_n
                    if q < 0 or q >= w:
                        for u in range(c_n):
                            cf[o + u] = zero
                    else:
                        src = ((s * h + r) * w + q) * c_n
                        for u in range(c_n):
                            cf[o + u] = xf[src + u]


@njit(cache=True, inline="always")
def _pad_row(row, pl, w, inside):
    """Zero the pixels of ``row`` (Wp, C) outside ``[pl, pl + w)`` -- all of them unless ``inside``; the range of
    input columns that remains to copy, as (first, end)."""
    wp, c_n = row.shape
    zero = row.dtype.type(0)
    lo, hi = (min(max(pl, 0), wp), min(max(pl + w, 0), wp)) if inside else (wp, wp)
    for q in range(lo):
        for c in range(c_n):
            row[q, c] = zero
    for q in range(max(hi, lo), wp):
        for c in range(c_n):
            row[q, c] = zero
    return max(0, -pl), min(w, wp - pl)


@parallel_kernel()
def pad_into(xh, pt, pl, xp):
    """``xp`` (N, Hp, Wp, C) = ``xh`` (N, H, W, C) with ``pt`` rows and ``pl`` columns of zeros before it and the
    rest of ``xp`` zero after, every element written (``xp`` may hold anything before).

    Each row: the zeros on either side, then the copy with no test per pixel (a test per pixel, as before,
    cost the 3-channel 224x224 stem, read from an NCHW input, 81 against 64-68 µs, and a conv1d's 64 x 16000
    7.3 against 5.5 ms; 2 threads, 2-core Intel Xeon VM).  Reading an NCHW input plane by plane instead
    measured level once this was so, and was dropped."""
    n_n, h, w, c_n = xh.shape
    hp = xp.shape[1]
    for t in prange(n_n * hp):
        s = t // hp
        r = t % hp - pt
        row = xp[s, t % hp]
        q0, q1 = _pad_row(row, pl, w, 0 <= r < h)
        if 0 <= r < h:
            src = xh[s, r]
            for q in range(q0, q1):
                for c in range(c_n):
                    row[pl + q, c] = src[q, c]


@parallel_kernel()
def max_pool_nhwc(x, kh, kw, sh, sw, ph, pw, dh, dw, out):
    """2-D max pooling of channels-last ``x`` (N, H, W, C) into ``out`` (N, Ho, Wo, C), -inf padding implied.

    Taps in the order of ``pool.max_pool_values`` with its rule (a NaN wins),
    so the two layouts give the same values; each tap is a compare-and-select
    across the channel vector.  One task per output row.
    """
    n_n, h, w, c_n = x.shape
    ho_n, wo_n = out.shape[1], out.shape[2]
    for t in prange(n_n * ho_n):
        n = t // ho_n
        ho = t % ho_n
        for wo in range(wo_n):
            o = out[n, ho, wo]
            for c in range(c_n):
                o[c] = -np.inf
            for i in range(kh):
                r = ho * sh - ph + i * dh
                if r < 0 or r >= h:
                    continue
                for j in range(kw):
                    q = wo * sw - pw + j * dw
                    if q < 0 or q >= w:
                        continue
                    src = x[n, r, q]
                    for c in range(c_n):
                        v = src[c]
                        if v > o[c] or v != v:
                            o[c] = v


@parallel_kernel()
def depthwise_pointwise(x, w, pt, pl, sh, sw, dh, dw, alpha, beta, lo, hi, panels, alpha2, beta2, lo2, hi2, out,
                        res):
    """A depthwise convolution and the 1×1 convolution after it, one output row at a time; the NaN count.

    Each task computes a row of the depthwise output (as :func:`depthwise_nhwc`,
    epilogue ``alpha, beta, lo, hi``) into a buffer of its own and multiplies
    it at once by the packed 1×1 weights (``panels``, as
    ``gemm.conv_epilogue``; epilogue ``alpha2, beta2, lo2, hi2`` and the
    optional residual ``res``) into ``out`` (N, Ho, Wo, C_out): the wide
    depthwise output never goes to memory.  Same sums as the two layers apart.
    """
    n_n, ho_n, wo_n, n_out = out.shape
    c_n = x.shape[3]
    k = panels.shape[1]
    bf = panels.ravel()
    of = out.ravel()
    nans = 0
    for t in prange(n_n * ho_n):
        buf = np.empty((wo_n, c_n), dtype=out.dtype)
        nans += _row(x, w, t // ho_n, t % ho_n, pt, pl, sh, sw, dh, dw, buf, alpha, beta, lo, hi)
        base = t * wo_n * n_out
        cf = of[base:base + wo_n * n_out]
        if res is None:
            rf, with_res = cf[:0], False
        else:
            rf, with_res = res.ravel()[base:base + wo_n * n_out], True
        for panel in range(panels.shape[0]):
            nans += _gemm_block(buf.ravel(), k, bf, cf, n_out, 0, wo_n, panel, alpha2, beta2, lo2, hi2, False, 1, 1, 1,
                                1, 1, 1, 1, 1, 1, 1, rf, with_res)
    return nans


@parallel_kernel()
def expand_depthwise_pointwise(x, panels1, alpha1, beta1, lo1, hi1, w, pt, pl, sh, sw, dh, dw, alpha, beta, lo, hi,
                               panels2, alpha2, beta2, lo2, hi2, out, res, band):
    """A 1×1 expansion, the depthwise convolution after it and the 1×1 projection after that, a band of
    ``band`` output rows per task; the NaN count.

    Each task expands just the input rows its band's windows read (``panels1``,
    epilogue ``alpha1…hi1``) into a buffer, runs the depthwise rows over it
    (``w`` (kh, kw, C_e), epilogue ``alpha…hi``; rows outside the buffer are
    the image's zero padding) into a second buffer and projects those
    (``panels2``, ``alpha2…hi2``, the optional ``res``) into ``out`` (N, Ho,
    Wo, C_out).  Neither wide tensor goes to memory; the rows two bands share
    are expanded twice (1/(2·band) more expansion work at stride 2).  Same sums
    as the three layers apart.
    """
    n_n, h, wd, cin = x.shape
    kh = w.shape[0]
    ce = w.shape[2]
    ho_n, wo_n, cout = out.shape[1], out.shape[2], out.shape[3]
    bands = (ho_n + band - 1) // band
    k1 = panels1.shape[1]
    k2 = panels2.shape[1]
    xf = x.ravel()
    b1f = panels1.ravel()
    b2f = panels2.ravel()
    of = out.ravel()
    nans = 0
    for t in prange(n_n * bands):
        n = t // bands
        ho0 = (t % bands) * band
        ho1 = min(ho_n, ho0 + band)
        r_lo = max(0, ho0 * sh - pt)
        r_hi = min(h, (ho1 - 1) * sh - pt + (kh - 1) * dh + 1)
        rows = max(r_hi - r_lo, 0)
        e = np.empty((1, max(rows, 1), wd, ce), dtype=out.dtype)
        ef = e.ravel()
        if rows == 0:  # every window of the band on the padding: the sums are zero
            ef[:] = 0
        if rows > 0:
            a = xf[(n * h + r_lo) * wd * cin:(n * h + r_hi) * wd * cin]
            for panel in range(panels1.shape[0]):
                nans += _gemm_block(a, k1, b1f, ef, ce, 0, rows * wd, panel, alpha1, beta1, lo1, hi1, False, 1, 1,
                                    1, 1, 1, 1, 1, 1, 1, 1, ef[:0], False)
        d = np.empty((ho1 - ho0, wo_n, ce), dtype=out.dtype)
        for ho in range(ho0, ho1):
            nans += _row(e, w, 0, ho, pt + r_lo, pl, sh, sw, dh, dw, d[ho - ho0], alpha, beta, lo, hi)
        base = (n * ho_n + ho0) * wo_n * cout
        cf = of[base:base + (ho1 - ho0) * wo_n * cout]
        if res is None:
            rf, with_res = cf[:0], False
        else:
            rf, with_res = res.ravel()[base:base + (ho1 - ho0) * wo_n * cout], True
        df = d.ravel()
        for panel in range(panels2.shape[0]):
            nans += _gemm_block(df, k2, b2f, cf, cout, 0, (ho1 - ho0) * wo_n, panel, alpha2, beta2, lo2, hi2, False,
                                1, 1, 1, 1, 1, 1, 1, 1, 1, 1, rf, with_res)
    return nans

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

from numba import prange

from . import njit, parallel_kernel


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
def _row(x, w, n, ho, pt, pl, sh, sw, dh, dw, out, alpha, beta, lo, hi):
    """One output row of a depthwise convolution; returns its NaN count."""
    kh, kw, c_n = w.shape
    h, wd = x.shape[1], x.shape[2]
    wo_n = out.shape[2]
    r0 = ho * sh - pt
    rows_inside = r0 >= 0 and r0 + 2 * dh < h
    nans = 0
    for wo in range(wo_n):
        q0 = wo * sw - pl
        o = out[n, ho, wo]
        if kh == 3 and kw == 3 and rows_inside and q0 >= 0 and q0 + 2 * dw < wd:
            # the whole 3x3 window inside the image: nine taps in one expression per channel
            a0, a1, a2 = x[n, r0, q0], x[n, r0, q0 + dw], x[n, r0, q0 + 2 * dw]
            b0, b1, b2 = x[n, r0 + dh, q0], x[n, r0 + dh, q0 + dw], x[n, r0 + dh, q0 + 2 * dw]
            c0, c1, c2 = x[n, r0 + 2 * dh, q0], x[n, r0 + 2 * dh, q0 + dw], x[n, r0 + 2 * dh, q0 + 2 * dw]
            for c in range(c_n):
                v = (w[0, 0, c] * a0[c] + w[0, 1, c] * a1[c] + w[0, 2, c] * a2[c]
                     + w[1, 0, c] * b0[c] + w[1, 1, c] * b1[c] + w[1, 2, c] * b2[c]
                     + w[2, 0, c] * c0[c] + w[2, 1, c] * c1[c] + w[2, 2, c] * c2[c])
                v = v * alpha[c] + beta[c]
                nans += v != v
                if v < lo:
                    v = lo
                if v > hi:
                    v = hi
                o[c] = v
        else:
            _pixel_any(x, w, n, r0, q0, dh, dw, o)
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
        nans += _row(x, w, t // ho_n, t % ho_n, pt, pl, sh, sw, dh, dw, out, alpha, beta, lo, hi)
    return nans


@parallel_kernel()
def affine_clamp_pixels(y, alpha, beta, lo, hi):
    """In place on (P, C) ``y``: ``y[p, c] = clamp(y[p, c]·alpha[c] + beta[c], lo, hi)``; the NaN count.

    The channels-last form of ``norm.affine_clamp``, for a matrix product's
    output tile (pixels by channels) while it is still in cache.
    """
    nans = 0
    for p in prange(y.shape[0]):
        nans += _finish(y[p], alpha, beta, lo, hi)
    return nans

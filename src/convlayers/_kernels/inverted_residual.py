"""MobileNetV2's inverted residual block — 1×1 expansion, depthwise, 1×1 projection — in one parallel launch.

Why: at 14×14 and 7×7 the three layers are 40–130 µs each on 2 threads, and
every launch pays a fixed part of that (on the tbb layer the other thread
joins a launch's fresh task arena a few microseconds late, in one launch in
seven of a tight loop not at all), and a layer whose output the two threads
wrote by channels and the next reads by rows moves half of it between the
cores' caches (read back from the other core: ~15 GB/s against ~65 from a
core's own L2, 2-core Intel Xeon VM).  Here the block is the items of one
launch, two kinds, each thread taking a contiguous run of rows of each
(``claims``):

* expansion items — a chunk of input pixels (whole product tiles: the
  expansion is pixel by pixel) multiplied into the expanded buffer ``e``
  (N, H, W, C_e), then marked done;
* projection items — a band of output rows: its depthwise rows from ``e``
  (after waiting for the expansion chunks they read), then those rows by the
  projection's panels into ``out``.

(Items that also split the panels in shares, each recomputing its band's
depthwise rows for balance, lost: mobilenet_v2 b1 on the ONNX runner 5%
slower.)

A thread takes projection items only once no expansion item is left
unclaimed, so a wait is always for a band a running thread is computing.
The sums are those of the three layers apart, in the same order.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from . import claims, parallel_kernel
from .conv_nhwc import _row
from .gemm import _block as _gemm_block


@parallel_kernel()
def inverted_residual(x, panels1, alpha1, beta1, lo1, hi1, w, pt, pl, sh, sw, dh, dw, alpha, beta, lo, hi, panels2,
                      alpha2, beta2, lo2, hi2, e, out, res, e_px, d_rows, threads):
    """``out = project(depthwise(expand(x)))`` (+ ``res``), every epilogue applied; the NaN count.

    ``x`` (N, H, W, C) and ``out`` (N, Ho, Wo, C_out) C-contiguous float32;
    ``panels1`` (C→C_e) and ``panels2`` (C_e→C_out) packed as for
    ``gemm.gemm_epilogue``, each with its padded epilogue columns; ``w``
    (kh, kw, C_e) the depthwise taps with their epilogue ``alpha…hi``
    (per channel) and geometry; ``e`` scratch of N·H·W·C_e floats; ``res``
    None or (N, Ho, Wo, C_out).  Items: chunks of ``e_px`` input pixels,
    then bands of ``d_rows`` output rows.
    """
    n_n, h, wd, cin = x.shape
    kh, ce = w.shape[0], w.shape[2]
    ho_n, wo_n, cout = out.shape[1], out.shape[2], out.shape[3]
    p1, p2 = panels1.shape[0], panels2.shape[0]
    k1, k2 = panels1.shape[1], panels2.shape[1]
    pixels = n_n * h * wd
    e_chunks = (pixels + e_px - 1) // e_px
    d_bands = (ho_n + d_rows - 1) // d_rows
    xf, b1f, b2f, ef, of = x.ravel(), panels1.ravel(), panels2.ravel(), e.ravel(), out.ravel()
    e4 = ef[:n_n * h * wd * ce].reshape(n_n, h, wd, ce)
    rf_all = of[:0] if res is None else res.ravel()
    done = np.zeros(e_chunks, np.int64)  # per chunk of expanded pixels: 1 once it is written
    e_runs = claims.runs(e_chunks, threads)
    d_runs = claims.runs(n_n * d_bands, threads)
    nans = 0
    for t in prange(threads):
        cursor = 0
        while True:  # expansion chunks: this task's run of them, then what is left of the others'
            chunk, cursor = claims.claim(e_runs, t, threads, cursor)
            if chunk < 0:
                break
            q0 = chunk * e_px
            q1 = min(pixels, q0 + e_px)
            a = xf[q0 * cin:q1 * cin]
            eo = ef[q0 * ce:q1 * ce]
            for panel in range(p1):
                nans += _gemm_block(a, k1, b1f, eo, ce, 0, q1 - q0, panel, alpha1, beta1, lo1, hi1, False,
                                    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, eo[:0], False)
            claims.mark_done(done, chunk)
        # every expansion item is now claimed by a running task: waiting for one below always ends
        d = np.empty((d_rows, wo_n, ce), dtype=out.dtype)
        df = d.ravel()
        cursor = 0
        while True:  # projection bands, the same way
            j, cursor = claims.claim(d_runs, t, threads, cursor)
            if j < 0:
                break
            n, b = j // d_bands, j % d_bands
            ho0 = b * d_rows
            ho1 = min(ho_n, ho0 + d_rows)
            # the expanded rows these output rows' windows read, by chunk of pixels
            r_lo = max(0, ho0 * sh - pt)
            r_hi = min(h, (ho1 - 1) * sh - pt + (kh - 1) * dh + 1)
            if r_hi > r_lo:
                for chunk in range((n * h + r_lo) * wd // e_px, ((n * h + r_hi) * wd - 1) // e_px + 1):
                    claims.wait_done(done, chunk, 1)
            for ho in range(ho0, ho1):
                nans += _row(e4, w, n, ho, pt, pl, sh, sw, dh, dw, d[ho - ho0], alpha, beta, lo, hi)
            base = (n * ho_n + ho0) * wo_n * cout
            size = (ho1 - ho0) * wo_n * cout
            cf = of[base:base + size]
            rf = rf_all[base:base + size] if res is not None else rf_all
            for panel in range(p2):
                nans += _gemm_block(df, k2, b2f, cf, cout, 0, (ho1 - ho0) * wo_n, panel, alpha2, beta2, lo2, hi2,
                                    False, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, rf, res is not None)
    return nans

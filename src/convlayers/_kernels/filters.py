"""Compiled kernels behind ``convlayers.filters`` (private).

Every kernel works on a pre-padded input, so the boundary rule (fill, wrap,
symmetric) is settled once by :func:`pad2d` and the hot loops never branch on
it. Loops run over output rows in parallel, and the innermost loop always walks
a contiguous row so that LLVM can vectorise it.

All functions write into a caller-allocated ``out`` and return nothing; the
caller picks the accumulation dtype (int64 for integers, float32/float64,
complex128).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from . import njit, parallel_kernel


@parallel_kernel()
def pad2d(a, rmap, cmap, left, fill, out):
    """out[i, j] = a[rmap[i], cmap[j]], or ``fill`` where either map is -1.

    Columns ``left .. left + w`` map straight onto the input's columns, so the
    interior of each row is a plain copy and only the margins use ``cmap``.
    """
    w = a.shape[1]
    ph, pw = out.shape
    for i in nb.prange(ph):
        r = rmap[i]
        if r < 0:
            for j in range(pw):
                out[i, j] = fill
            continue
        for j in range(left):
            c = cmap[j]
            out[i, j] = fill if c < 0 else a[r, c]
        for j in range(w):
            out[i, left + j] = a[r, j]
        for j in range(left + w, pw):
            c = cmap[j]
            out[i, j] = fill if c < 0 else a[r, c]


@parallel_kernel()
def correlate_valid(p, k, out):
    """Direct 'valid' cross-correlation: out[m, n] = sum p[m+j, n+l] * k[j, l]."""
    oh, ow = out.shape
    kh, kw = k.shape
    for m in nb.prange(oh):
        row = out[m]
        for n in range(ow):
            row[n] = 0
        for j in range(kh):
            src = p[m + j]
            for l in range(kw):
                w = k[j, l]
                if w == 0:
                    continue
                for n in range(ow):
                    row[n] += src[n + l] * w


@njit(cache=True, nogil=True)
def correlate_folded(a, rmap, cmap, left, fillrow, k, out, row0, row1):
    """Direct correlation of the *unpadded* ``a``, the boundary folded into the loop.

    Padded row ``i`` is ``a[rmap[i]]`` (``fillrow`` where ``rmap[i] == -1``) and
    padded column ``c`` is ``a[:, cmap[c]]`` (``fillrow[0]`` where -1); columns
    ``left .. left + w`` of the padding are ``a``'s own. Output column ``n`` tap
    ``l`` reads padded column ``n + l``. Skipping the padded copy saves a full
    read and write of the image, which is most of the time for a 3x3 kernel.

    Every tap is applied, zero weights included, so that inf/nan propagate as
    in scipy (0 * inf is nan).

    Serial and GIL-free over output rows ``row0 .. row1``: the caller spreads
    row blocks over threads itself (see ``filters._run_row_blocks``), because a
    numba ``prange`` region ends in a barrier that waits for every worker, and
    on a busy machine a worker that has not been scheduled yet costs a whole
    scheduler tick (4 ms and more, measured) for a ~1 ms job.
    """
    oh, ow = out.shape
    kh, kw = k.shape
    w = a.shape[1]
    # Output columns whose taps all land inside the row: these read ``a`` directly.
    lo = min(max(left, 0), ow)
    hi = max(min(ow, w - kw + 1 + left), lo)
    cnt = hi - lo
    base = lo - left
    for m in range(row0, row1):
        _interior_row(a, rmap, m, fillrow, k, base, cnt, out[m][lo:hi])
    # The few edge columns, one column at a time over all rows: per pixel through a
    # helper they took 0.7 of 2.2 ms (2048x2048 3x3, one thread).
    for n in range(lo):
        _edge_column(a, rmap, cmap, n, fillrow[0], k, out, row0, row1)
    for n in range(hi, ow):
        _edge_column(a, rmap, cmap, n, fillrow[0], k, out, row0, row1)


@njit(inline="always")
def _interior_row(a, rmap, m, fillrow, k, base, cnt, oseg):
    """Output row ``m``'s interior: ``oseg[n] = sum k[j, l] * row(rmap[m + j])[base + n + l]``."""
    kh, kw = k.shape
    if kh == 3 and kw == 3:
        _fused3x3(_row(a, rmap[m], fillrow), _row(a, rmap[m + 1], fillrow),
                  _row(a, rmap[m + 2], fillrow), k, base, cnt, oseg)
        return
    for n in range(cnt):
        oseg[n] = 0
    for j in range(kh):
        src = _row(a, rmap[m + j], fillrow)
        for l in range(kw):
            wt = k[j, l]
            # a 1-D slice indexed by the bare loop variable: no wraparound
            # check per element, so the loop vectorises
            seg = src[base + l:base + l + cnt]
            for n in range(cnt):
                oseg[n] += seg[n] * wt


@njit(cache=True, nogil=True)
def correlate_band_into(band, rmap, fillrow, k, flat, start, stride, ow, rows):
    """'valid' correlation of an already extended ``band`` into rows of a flat array.

    Output row ``m`` is ``flat[start + m * stride:][:ow]``: a region of a bigger
    C-ordered array (``convlayers.dask.store`` filters a block straight into its
    target).  A 2-D view of that region has non-contiguous rows, and the kernel
    compiled for any strides ran 3.9x slower (2048^2 3x3 block, 7.1 vs 1.8 ms);
    contiguous 1-D row slices vectorise.  Same sums, in the same order, as
    :func:`correlate_folded`'s interior (``rmap`` the identity over the band).
    """
    for m in range(rows):
        o = start + m * stride
        _interior_row(band, rmap, m, fillrow, k, 0, ow, flat[o:o + ow])


@njit(cache=True, nogil=True)
def _edge_column(a, rmap, cmap, n, fill, k, out, row0, row1):
    """Output column ``n`` (near the left/right edge) for rows ``row0 .. row1``, columns through ``cmap``.

    Taps are summed in row-major order from ``k[0, 0]`` and in the work dtype, as in
    the interior, so that an edge pixel is bit for bit what the interior loop would
    give it (``convlayers.dask`` relies on that: a chunk's edge is another's interior).
    ``k[0, 0] * 0`` would have typed the sum as float64 for a float32 image."""
    kh, kw = k.shape
    for m in range(row0, row1):
        acc = k[0, 0] * fill  # only fixes the type: overwritten by the first tap
        for j in range(kh):
            r = rmap[m + j]
            for l in range(kw):
                c = cmap[n + l]
                v = fill if (r < 0 or c < 0) else a[r, c]
                if j == 0 and l == 0:
                    acc = k[0, 0] * v
                else:
                    acc += v * k[j, l]
        out[m, n] = acc


@njit(inline="always")
def _row(a, r, fillrow):
    return a[r] if r >= 0 else fillrow


@njit(inline="always")
def _fused3x3(r0, r1, r2, k, base, cnt, o):
    """All nine taps in one pass: one store per output and loads from L1, instead
    of nine read-modify-write sweeps over the output row.

    Three row arrays indexed with unsigned offsets rather than nine slices: LLVM
    checks at run time that the output overlaps none of the inputs before it
    vectorises, and gives up beyond 8 such checks, which nine slices exceed."""
    k00, k01, k02 = k[0, 0], k[0, 1], k[0, 2]
    k10, k11, k12 = k[1, 0], k[1, 1], k[1, 2]
    k20, k21, k22 = k[2, 0], k[2, 1], k[2, 2]
    b = np.uint64(base)
    one = np.uint64(1)
    two = np.uint64(2)
    for n in range(np.uint64(cnt)):
        i = b + n
        o[n] = (r0[i] * k00 + r0[i + one] * k01 + r0[i + two] * k02
                + r1[i] * k10 + r1[i + one] * k11 + r1[i + two] * k12
                + r2[i] * k20 + r2[i + one] * k21 + r2[i + two] * k22)


@parallel_kernel()
def correlate_rows(p, v, out):
    """Row pass of a separable filter: out[i, n] = sum_l p[i, n+l] * v[l]."""
    oh, ow = out.shape
    kw = v.shape[0]
    for i in nb.prange(oh):
        row = out[i]
        src = p[i]
        for n in range(ow):
            row[n] = 0
        for l in range(kw):
            w = v[l]
            if w == 0:
                continue
            for n in range(ow):
                row[n] += src[n + l] * w


@parallel_kernel()
def correlate_cols(t, u, out):
    """Column pass of a separable filter: out[m, n] = sum_j t[m+j, n] * u[j]."""
    oh, ow = out.shape
    kh = u.shape[0]
    for m in nb.prange(oh):
        row = out[m]
        for n in range(ow):
            row[n] = 0
        for j in range(kh):
            w = u[j]
            if w == 0:
                continue
            src = t[m + j]
            for n in range(ow):
                row[n] += src[n] * w


def fast_len(n: int) -> int:
    """Smallest 5-smooth integer >= n: an FFT length pocketfft handles quickly."""
    if n <= 6:
        return n
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            q = -(-n // p35)
            p2 = 1 << (q - 1).bit_length()
            cand = p2 * p35
            if cand < best:
                best = cand
            if p35 >= n:
                break
            p35 *= 3
        p5 *= 5
    return best


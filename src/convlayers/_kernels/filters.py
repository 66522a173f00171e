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

_OPTS = dict(cache=True, parallel=True, nogil=True)


@nb.njit(**_OPTS)
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


@nb.njit(**_OPTS)
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


@nb.njit(**_OPTS)
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


@nb.njit(**_OPTS)
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


"""Compiled transforms of the Winograd F(4×4, 3×3) convolution (see ``functional._winograd``).

A 3×3 stride-1 correlation of a 6×6 input patch ``d`` gives a 4×4 output tile
``Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`` (Lavin & Gray, 2016, interpolation points
0, ±1, ±2, ∞).  Summed over input channels, the 36 elementwise products
become 36 matrix products ``M[ξ] = U[ξ] @ V[ξ]`` of the transformed weights
``U`` (C_out, C_in) with the transformed patches ``V`` (C_in, tiles), which
BLAS does; these kernels do the two transforms around them:

* :func:`winograd_input` writes ``V[6a + b, c, t] = (Bᵀ d B)[a, b]`` for every
  tile ``t`` of a block of samples and tile rows;
* :func:`winograd_output` maps ``M`` back to output tiles, applies the fused
  epilogue ``clamp(y·alpha + beta, lo, hi)`` and writes the output.

Performance notes (measured on the 2-core Intel Xeon VM, AVX-512):

* Every constant is made in the array's own dtype (``type(x)(2)``): an integer
  literal times a float32 is float64 in numba, and the promoted arithmetic
  ran the input transform 2.3× slower (0.73 vs 0.32 ms for one 64×56×56 sample).
* Each transform is two passes of the 1-D transform (columns of rows, then
  rows), both written as straight-line code over the tiles of one tile row.
"""

from __future__ import annotations

import numpy as np

from . import njit


@njit(cache=True, inline="always")
def _bt(x0, x1, x2, x3, x4, x5):
    """``Bᵀ x`` for one 6-vector: the input transform of F(4, 3)."""
    two = type(x0)(2)
    four = two + two
    p = x4 - four * x2
    q = x3 - four * x1
    r = x4 - x2
    s = two * (x3 - x1)
    return (four * x0 - four * x2 - x2 + x4, p + q, p - q, r + s, r - s, four * x1 - four * x3 - x3 + x5)


@njit(cache=True, inline="always")
def _at(m0, m1, m2, m3, m4, m5):
    """``Aᵀ m`` for one 6-vector: the output transform of F(4, 3) (4 outputs)."""
    two = type(m0)(2)
    a = m1 + m2
    b = m1 - m2
    c = m3 + m4
    d = m3 - m4
    d2 = two * d
    return (m0 + a + c, b + d2, a + two * (c + c), b + two * (d2 + d2) + m5)


@njit(cache=True, nogil=True)
def winograd_input(x, n0, n1, ty0, ty1, tw, pt, pl, v):
    """Transformed input patches of samples ``n0 ≤ s < n1``, tile rows ``ty0 ≤ ty < ty1``, into ``v``.

    ``x`` is (N, C, H, W), zero padding (``pt`` rows, ``pl`` columns) implied;
    tile (ty, tx) reads the padded rows ``4ty … 4ty+5`` and columns
    ``4tx … 4tx+5``.  ``v`` is (36, C, tiles) with tile index
    ``((s - n0)·(ty1 - ty0) + ty - ty0)·tw + tx``.
    """
    c_n, h, w = x.shape[1], x.shape[2], x.shape[3]
    rows = ty1 - ty0
    wp = 4 * tw + 2
    zero = x.dtype.type(0)
    rb = np.zeros((6, wp), x.dtype)
    tmp = np.empty((6, 6, tw), x.dtype)
    lo = min(pl, wp)
    hi = min(pl + w, wp)  # padded columns [lo, hi) hold input; the rest stay zero
    for s in range(n0, n1):
        for c in range(c_n):
            plane = x[s, c]
            for ty in range(ty0, ty1):
                base = ((s - n0) * rows + ty - ty0) * tw
                for i in range(6):
                    r = 4 * ty - pt + i
                    dst = rb[i, lo:hi]  # loops index slices by the loop variable alone: no wraparound checks
                    if r < 0 or r >= h:
                        for q in range(hi - lo):
                            dst[q] = zero
                    else:
                        src = plane[r, lo - pl:hi - pl]
                        for q in range(hi - lo):
                            dst[q] = src[q]
                for i in range(6):
                    row = rb[i]
                    for tx in range(tw):
                        q = 4 * tx
                        b0, b1, b2, b3, b4, b5 = _bt(row[q], row[q + 1], row[q + 2], row[q + 3], row[q + 4],
                                                     row[q + 5])
                        tmp[i, 0, tx] = b0
                        tmp[i, 1, tx] = b1
                        tmp[i, 2, tx] = b2
                        tmp[i, 3, tx] = b3
                        tmp[i, 4, tx] = b4
                        tmp[i, 5, tx] = b5
                for k in range(6):
                    for tx in range(tw):
                        b0, b1, b2, b3, b4, b5 = _bt(tmp[0, k, tx], tmp[1, k, tx], tmp[2, k, tx], tmp[3, k, tx],
                                                     tmp[4, k, tx], tmp[5, k, tx])
                        t = base + tx
                        v[k, c, t] = b0
                        v[6 + k, c, t] = b1
                        v[12 + k, c, t] = b2
                        v[18 + k, c, t] = b3
                        v[24 + k, c, t] = b4
                        v[30 + k, c, t] = b5


@njit(cache=True, nogil=True)
def winograd_output(m, n0, n1, ty0, ty1, tw, out, alpha, beta, lo, hi, affine):
    """Output tiles from the products ``m`` (36, C_out, tiles) of :func:`winograd_input`'s block, into ``out``.

    With ``affine``, every output becomes ``min(max(y·alpha[c] + beta[c], lo), hi)``.
    Returns how many of the raw outputs were not finite (the caller then
    recomputes the block another way: a transform mixes a tile's inputs, so an
    inf or NaN there does not land where the direct sum would put it).
    """
    c_n, ho, wo = out.shape[1], out.shape[2], out.shape[3]
    rows = ty1 - ty0
    tmp = np.empty((4, 6, tw), m.dtype)
    yb = np.empty((4, 4 * tw), m.dtype)
    bad = 0
    for s in range(n0, n1):
        for c in range(c_n):
            a = alpha[c] if affine else m.dtype.type(1)
            b = beta[c] if affine else m.dtype.type(0)
            for ty in range(ty0, ty1):
                base = ((s - n0) * rows + ty - ty0) * tw
                for k in range(6):
                    for tx in range(tw):
                        t = base + tx
                        y0, y1, y2, y3 = _at(m[k, c, t], m[6 + k, c, t], m[12 + k, c, t], m[18 + k, c, t],
                                             m[24 + k, c, t], m[30 + k, c, t])
                        tmp[0, k, tx] = y0
                        tmp[1, k, tx] = y1
                        tmp[2, k, tx] = y2
                        tmp[3, k, tx] = y3
                for i in range(4):
                    yr = yb[i]
                    for tx in range(tw):
                        y0, y1, y2, y3 = _at(tmp[i, 0, tx], tmp[i, 1, tx], tmp[i, 2, tx], tmp[i, 3, tx],
                                             tmp[i, 4, tx], tmp[i, 5, tx])
                        q = 4 * tx
                        yr[q] = y0
                        yr[q + 1] = y1
                        yr[q + 2] = y2
                        yr[q + 3] = y3
                for i in range(min(4, ho - 4 * ty)):
                    yr = yb[i, :wo]
                    orow = out[s, c, 4 * ty + i]
                    for q in range(wo):
                        bad += not np.isfinite(yr[q])
                    if affine:
                        for q in range(wo):
                            y = yr[q] * a + b
                            orow[q] = min(max(y, lo), hi) if y == y else y
                    else:
                        for q in range(wo):
                            orow[q] = yr[q]
    return bad


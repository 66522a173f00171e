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
  epilogue ``clamp(y·alpha + beta, lo, hi)`` and writes the output;
* for conv3d, :func:`winograd_input_planes` transforms whole depth planes once
  each and :func:`winograd_products3d` multiplies every output plane's ``kD``
  transformed input planes in place (the products on :mod:`.gemm`'s tiles).

Performance notes (measured on the 2-core Intel Xeon VM, AVX-512):

* Every constant is made in the array's own dtype (``type(x)(2)``): an integer
  literal times a float32 is float64 in numba, and the promoted arithmetic
  ran the input transform 2.3× slower (0.73 vs 0.32 ms for one 64×56×56 sample).
* Each transform is two passes of the 1-D transform, arranged so that the
  long loops are contiguous and only one step reads or writes with a stride
  of 4 (see each kernel).
"""

from __future__ import annotations

import numpy as np

from . import njit
from .gemm import MR, NR, _row_tile


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


@njit(cache=True, inline="always")
def _fill_rows(plane, r_lo, h, q0, q1, off, p):
    """``p[i, q0:q1] = plane[r_lo + i, q0 - off:q1 - off]`` for every row of ``p``, zeros for rows outside
    ``0 ≤ r < h`` (the rest of ``p`` stays as it is: the zero padding)."""
    zero = p.dtype.type(0)
    for i in range(p.shape[0]):
        r = r_lo + i
        dst = p[i, q0:q1]  # loops index slices by the loop variable alone: no wraparound checks
        if r < 0 or r >= h:
            for q in range(q1 - q0):
                dst[q] = zero
        else:
            src = plane[r, q0 - off:q1 - off]
            for q in range(q1 - q0):
                dst[q] = src[q]


@njit(cache=True, inline="always")
def _store6(dst, i, vals):
    """``dst[k][i] = vals[k]`` for the six output slices of a 1-D transform."""
    for k in range(6):
        dst[k][i] = vals[k]


@njit(cache=True, inline="always")
def _rows6(a, o, n):
    """The six slices ``a[k, o:o + n]``."""
    return a[0, o:o + n], a[1, o:o + n], a[2, o:o + n], a[3, o:o + n], a[4, o:o + n], a[5, o:o + n]


@njit(cache=True, inline="always")
def _taps6(v, a, c, t0, n):
    """The six slices ``v[6a + k, c, t0:t0 + n]`` that a row transform writes."""
    return (v[6 * a, c, t0:t0 + n], v[6 * a + 1, c, t0:t0 + n], v[6 * a + 2, c, t0:t0 + n],
            v[6 * a + 3, c, t0:t0 + n], v[6 * a + 4, c, t0:t0 + n], v[6 * a + 5, c, t0:t0 + n])


@njit(cache=True, nogil=True)
def winograd_input(x, n0, n1, ty0, ty1, tw, pt, pl, v):
    """Transformed input patches of samples ``n0 ≤ s < n1``, tile rows ``ty0 ≤ ty < ty1``, into ``v``.

    ``x`` is (N, C, H, W), zero padding (``pt`` rows, ``pl`` columns) implied;
    tile (ty, tx) reads the padded rows ``4ty … 4ty+5`` and columns
    ``4tx … 4tx+5``.  ``v`` is (36, C, tiles) with tile index
    ``((s - n0)·(ty1 - ty0) + ty - ty0)·tw + tx``.

    Each plane is copied once into a zero-padded buffer; the column transform
    then runs along whole padded rows (long, contiguous loops), and only the
    row transform reads with a stride of 4, writing each tile row of ``v``
    (1.4-1.5× faster than both transforms per tile row: 0.32 → 0.22 ms for a
    64×56×56 sample).
    """
    c_n, h, w = x.shape[1], x.shape[2], x.shape[3]
    rows = ty1 - ty0
    wq = 4 * (tw + 1)
    hq = 4 * rows + 2
    p = np.zeros((hq, wq), x.dtype)
    cc = np.empty((6, rows * wq), x.dtype)
    q0 = min(pl, wq)
    q1 = min(pl + w, wq)  # padded columns [q0, q1) hold input; the rest stay zero
    for s in range(n0, n1):
        base = (s - n0) * rows * tw
        for c in range(c_n):
            _fill_rows(x[s, c], 4 * ty0 - pt, h, q0, q1, pl, p)
            _patches(p, cc, rows, wq, tw, v, c, base)


@njit(cache=True, inline="always")
def _patches(p, cc, rows, wq, tw, v, c, base):
    """``v[:, c, base:base + rows·tw]``: the transformed 6×6 patches of one zero-padded plane ``p``."""
    for ty in range(rows):
        p0, p1, p2, p3, p4, p5 = p[4 * ty], p[4 * ty + 1], p[4 * ty + 2], p[4 * ty + 3], p[4 * ty + 4], \
            p[4 * ty + 5]
        cols = _rows6(cc, ty * wq, wq)
        for q in range(wq):
            _store6(cols, q, _bt(p0[q], p1[q], p2[q], p3[q], p4[q], p5[q]))
    for a in range(6):
        for ty in range(rows):
            sr = cc[a, ty * wq:(ty + 1) * wq]
            dst = _taps6(v, a, c, base + ty * tw, tw)
            for tx in range(tw):
                q = 4 * tx
                _store6(dst, tx, _bt(sr[q], sr[q + 1], sr[q + 2], sr[q + 3], sr[q + 4], sr[q + 5]))


@njit(cache=True, nogil=True)
def winograd_input_planes(x, i, z0, z1, tw, pt, pl, v):
    """:func:`winograd_input` for the depth planes ``z0 ≤ z < z1`` of sample ``i`` of a 3-D input, whole planes.

    ``x`` is (N, C, D, H, W); ``v`` is (36, z1 - z0, C, tiles per plane), a
    plane outside ``0 ≤ z < D`` (the depth padding) all zeros.  Each plane is
    transformed once however many output planes read it (:func:`winograd_products3d`).
    """
    c_n, d, h, w = x.shape[1], x.shape[2], x.shape[3], x.shape[4]
    rows = v.shape[3] // tw
    wq = 4 * (tw + 1)
    p = np.zeros((4 * rows + 2, wq), x.dtype)
    cc = np.empty((6, rows * wq), x.dtype)
    q0 = min(pl, wq)
    q1 = min(pl + w, wq)
    zero = x.dtype.type(0)
    for z in range(z0, z1):
        vz = v[:, z - z0]
        if z < 0 or z >= d:
            for k in range(36):
                for c in range(c_n):
                    row = vz[k, c]
                    for t in range(row.shape[0]):
                        row[t] = zero
            continue
        for c in range(c_n):
            _fill_rows(x[i, c, z], -pt, h, q0, q1, pl, p)
            _patches(p, cc, rows, wq, tw, vz, c, 0)


@njit(cache=True, nogil=True)
def winograd_products3d(u, v, m, ones, zeros):
    """``m[ξ][:, o·T:(o + 1)·T] = u[ξ] @ v[ξ, o:o + kD]`` for every output plane ``o`` and position ξ;
    the NaN count.

    ``u`` (36, C_out, kD·C) with K ordered (depth tap, channel); ``v`` (36,
    planes, C, T) from :func:`winograd_input_planes`, so the kD planes under
    output plane ``o`` are one (kD·C, T) block of rows, read in place as the
    tiles' panels (row stride T, the last panel masked); ``m`` (36, C_out,
    planes_out·T), float32 throughout; ``ones``/``zeros`` float32 of length
    ≥ C_out (the tiles' per-row affine map, here the identity).  Serial: the
    caller runs one block per thread.
    """
    xi_n, m_n, k = u.shape
    planes, c_n, t_n = v.shape[1], v.shape[2], v.shape[3]
    o_n = m.shape[2] // t_n
    ldc = o_n * t_n
    uf, vf, mf = u.ravel(), v.ravel(), m.ravel()
    offs = np.empty(MR, np.int64)
    lo, hi = np.float32(-np.inf), np.float32(np.inf)
    panels = (t_n + NR - 1) // NR
    nans = 0
    for xi in range(xi_n):
        for o in range(o_n):
            v_off = (xi * planes + o) * c_n * t_n
            for panel in range(panels):
                col = panel * NR
                ncols = min(NR, t_n - col)
                for r in range(0, m_n, MR):
                    mr = min(MR, m_n - r)
                    for q in range(mr):
                        offs[q] = (xi * m_n + r + q) * k
                    nans += _row_tile(uf, offs, mr, 1, k, 0, vf, v_off + col, t_n, mf,
                                      (xi * m_n + r) * ldc + o * t_n + col, ldc, ncols, ones, zeros, r, lo, hi,
                                      mf[:0])
    return nans


@njit(cache=True, nogil=True)
def winograd_output(m, n0, n1, ty0, ty1, tw, out, alpha, beta, lo, hi, affine):
    """Output tiles from the products ``m`` (36, C_out, tiles) of :func:`winograd_input`'s block, into ``out``.

    With ``affine``, every output becomes ``min(max(y·alpha[c] + beta[c], lo), hi)``.
    Returns how many of the raw outputs were not finite (the caller then
    recomputes the block another way: a transform mixes a tile's inputs, so an
    inf or NaN there does not land where the direct sum would put it).

    Both transform passes run over all the tiles of a plane at once (``m``'s
    tiles are contiguous), and only the interleaving into output rows is
    strided (1.5× faster than per tile row: 0.31 → 0.21 ms for 64×56×56).
    """
    c_n, ho, wo = out.shape[1], out.shape[2], out.shape[3]
    rows = ty1 - ty0
    t_n = rows * tw
    z = np.empty((4, 6, t_n), m.dtype)
    y = np.empty((4, 4, t_n), m.dtype)
    yb = np.empty(4 * tw, m.dtype)
    bad = 0
    for s in range(n0, n1):
        t0 = (s - n0) * t_n
        for c in range(c_n):
            a = alpha[c] if affine else m.dtype.type(1)
            b = beta[c] if affine else m.dtype.type(0)
            for k in range(6):
                m0, m1, m2 = m[k, c, t0:t0 + t_n], m[6 + k, c, t0:t0 + t_n], m[12 + k, c, t0:t0 + t_n]
                m3, m4, m5 = m[18 + k, c, t0:t0 + t_n], m[24 + k, c, t0:t0 + t_n], m[30 + k, c, t0:t0 + t_n]
                z0, z1, z2, z3 = z[0, k], z[1, k], z[2, k], z[3, k]
                for t in range(t_n):
                    y0, y1, y2, y3 = _at(m0[t], m1[t], m2[t], m3[t], m4[t], m5[t])
                    z0[t] = y0
                    z1[t] = y1
                    z2[t] = y2
                    z3[t] = y3
            for i in range(4):
                s0, s1, s2, s3, s4, s5 = z[i, 0], z[i, 1], z[i, 2], z[i, 3], z[i, 4], z[i, 5]
                w0, w1, w2, w3 = y[i, 0], y[i, 1], y[i, 2], y[i, 3]
                for t in range(t_n):
                    y0, y1, y2, y3 = _at(s0[t], s1[t], s2[t], s3[t], s4[t], s5[t])
                    w0[t] = y0
                    w1[t] = y1
                    w2[t] = y2
                    w3[t] = y3
            for ty in range(rows):
                for i in range(min(4, ho - 4 * (ty0 + ty))):
                    for j in range(4):
                        src = y[i, j, ty * tw:(ty + 1) * tw]
                        for tx in range(tw):
                            yb[4 * tx + j] = src[tx]
                    orow = out[s, c, 4 * (ty0 + ty) + i]
                    yr = yb[:wo]
                    for q in range(wo):
                        bad += not np.isfinite(yr[q])
                    if affine:
                        for q in range(wo):
                            v = yr[q] * a + b
                            orow[q] = min(max(v, lo), hi) if v == v else v
                    else:
                        for q in range(wo):
                            orow[q] = yr[q]
    return bad


@njit(cache=True, inline="always")
def _g4(x0, x1, x2, x3):
    """``G₄ x`` for one 4-vector: the output-gradient transform of F(3, 4) (same points, 6 values)."""
    two = type(x0)(2)
    quarter = type(x0)(0.25)
    sixth = type(x0)(1 / 6)
    s = x0 + x2
    t = x1 + x3
    u = quarter * x0 + x2
    v = x1 / two + two * x3
    return (quarter * x0, -(s + t) * sixth, (t - s) * sixth, (u + v) * sixth, (u - v) * sixth, x3)


@njit(cache=True, nogil=True)
def winograd_grad_output(go, n0, n1, ty0, ty1, tw, g):
    """Transformed 4×4 tiles of the output gradient, ``g[6a + b, o, t] = (G₄ go_tile G₄ᵀ)[a, b]``.

    The weight gradient of a 3×3 stride-1 convolution is, per tile, the 3×3
    correlation of the tile's 6×6 input patch with its 4×4 output-gradient
    tile: Winograd F(3×3, 4×4) on the same points as F(4×4, 3×3), so the
    patches are :func:`winograd_input`'s.  Tiles are indexed as there; the
    gradient is zero beyond its edge.  Column pass along whole rows, then the
    row pass per tile row, as in :func:`winograd_input`.
    """
    c_n, ho, wo = go.shape[1], go.shape[2], go.shape[3]
    rows = ty1 - ty0
    wq = 4 * tw
    p = np.zeros((4 * rows, wq), go.dtype)
    cc = np.empty((6, rows * wq), go.dtype)
    q1 = min(wo, wq)
    for s in range(n0, n1):
        base = (s - n0) * rows * tw
        for c in range(c_n):
            _fill_rows(go[s, c], 4 * ty0, ho, 0, q1, 0, p)
            for ty in range(rows):
                p0, p1, p2, p3 = p[4 * ty], p[4 * ty + 1], p[4 * ty + 2], p[4 * ty + 3]
                cols = _rows6(cc, ty * wq, wq)
                for q in range(wq):
                    _store6(cols, q, _g4(p0[q], p1[q], p2[q], p3[q]))
            for a in range(6):
                for ty in range(rows):
                    sr = cc[a, ty * wq:(ty + 1) * wq]
                    dst = _taps6(g, a, c, base + ty * tw, tw)
                    for tx in range(tw):
                        q = 4 * tx
                        _store6(dst, tx, _g4(sr[q], sr[q + 1], sr[q + 2], sr[q + 3]))

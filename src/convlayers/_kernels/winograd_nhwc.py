"""Winograd F(4×4, 3×3) for channels-last float32 layers, fused per block of tiles (see
``functional._conv_channels_last``'s Winograd plan).

The NCHW form (:mod:`.winograd`) transforms a whole chunk of the input, then
multiplies, then transforms back: each step a pass over megabytes.  Here one
task takes a block of output tiles through all three while they stay in the
core's cache:

1. the 6×6 patches of its tiles, read from the zero-padded (N, Hp, Wp, C)
   input, become ``V[ξ, tile, c]`` (36, tiles, C) — the transform runs along
   the channels, so every loop is over contiguous values;
2. 36 products ``M[ξ] = V[ξ] @ U[ξ]`` (tiles, C) by (C, C_out) on the
   register-blocked tiles of :mod:`.gemm`, ``U[ξ]`` packed into panels once
   per layer;
3. ``M`` becomes the 4×4 output tiles with the layer's epilogue
   ``clamp(y·alpha[c] + beta[c] (+ res), lo, hi)``, written into the
   (N, Ho, Wo, C_out) output.

Returns the count of non-finite raw outputs: a transform mixes a patch's
values, so a NaN or infinity does not land where the direct sum puts it and
the caller recomputes.  Every constant is in float32 (see :mod:`.winograd`).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from . import njit, parallel_kernel
from .gemm import MR, NR, _tile
from .winograd import _at, _bt


@njit(cache=True, inline="always")
def _six(a, o, step, n):
    """The six slices ``a[o + k·step:o + k·step + n]``, k = 0..5."""
    return (a[o:o + n], a[o + step:o + step + n], a[o + 2 * step:o + 2 * step + n],
            a[o + 3 * step:o + 3 * step + n], a[o + 4 * step:o + 4 * step + n], a[o + 5 * step:o + 5 * step + n])


@njit(cache=True, inline="always")
def _four(a, o, step, n):
    return a[o:o + n], a[o + step:o + step + n], a[o + 2 * step:o + 2 * step + n], a[o + 3 * step:o + 3 * step + n]


@njit(cache=True, inline="always")
def _bt_along(src, dst, n):
    """``dst[k][c] = (Bᵀ (src[0][c], …, src[5][c]))[k]`` for ``c < n``: the 1-D input transform per channel."""
    d0, d1, d2, d3, d4, d5 = src
    e0, e1, e2, e3, e4, e5 = dst
    for c in range(n):
        b0, b1, b2, b3, b4, b5 = _bt(d0[c], d1[c], d2[c], d3[c], d4[c], d5[c])
        e0[c] = b0
        e1[c] = b1
        e2[c] = b2
        e3[c] = b3
        e4[c] = b4
        e5[c] = b5


@njit(cache=True, inline="always")
def _at_along(src, dst, n):
    """``dst[j][c] = (Aᵀ (src[0][c], …, src[5][c]))[j]`` for ``c < n``: the 1-D output transform per channel."""
    m0, m1, m2, m3, m4, m5 = src
    e0, e1, e2, e3 = dst
    for c in range(n):
        y0, y1, y2, y3 = _at(m0[c], m1[c], m2[c], m3[c], m4[c], m5[c])
        e0[c] = y0
        e1[c] = y1
        e2[c] = y2
        e3[c] = y3


@njit(cache=True, inline="always")
def _input_tile(xf, base, row_stride, c_n, tmp, vf, v_off, v_step):
    """``V[ξ, tile, :]`` (at ``vf[v_off + ξ·v_step:]``) of the patch at ``xf[base:]`` (rows ``row_stride`` apart).

    Every loop indexes slices by its own variable: numba then drops the negative-index checks, which
    computed offsets keep (3x slower here)."""
    # rows first: tmp[r, k, c] = (Bᵀ d[r, :, c])[k] for the patch's six rows r
    for r in range(6):
        _bt_along(_six(xf, base + r * row_stride, c_n, c_n), _six(tmp, r * 6 * c_n, c_n, c_n), c_n)
    # then columns: V[6a + k] = (Bᵀ tmp[:, k])[a]
    for k in range(6):
        _bt_along(_six(tmp, k * c_n, 6 * c_n, c_n), _six(vf, v_off + k * v_step, 6 * v_step, c_n), c_n)


@njit(cache=True, inline="always")
def _output_tile(mf, m_off, m_step, c_n, tmp, of, o_base, row_stride, rows, cols, alpha, beta, lo, hi, rf,
                 with_res):
    """The ``rows × cols`` (≤ 4×4) outputs of one tile from ``M[ξ, tile, :]``; their non-finite count."""
    # tmp[a, j, c] = (Aᵀ M[6a + :, c])[j], then y[i, j, c] = (Aᵀ tmp[:, j, c])[i] into tmp[24 C:], then the
    # epilogue: every loop runs along the channels
    s = 4 * c_n
    y = 24 * c_n
    for a in range(6):
        _at_along(_six(mf, m_off + 6 * a * m_step, m_step, c_n), _four(tmp, a * s, c_n, c_n), c_n)
    for j in range(4):
        _at_along(_six(tmp, j * c_n, s, c_n), _four(tmp, y + j * c_n, s, c_n), c_n)
    bad = 0
    al, be = alpha[:c_n], beta[:c_n]
    for i in range(rows):
        for j in range(cols):
            src = tmp[y + i * s + j * c_n:y + i * s + (j + 1) * c_n]
            dst0 = o_base + i * row_stride + j * c_n
            dst = of[dst0:dst0 + c_n]
            if with_res:
                rr = rf[dst0:dst0 + c_n]
                for c in range(c_n):
                    v = src[c]
                    bad += not np.isfinite(v)
                    v = v * al[c] + be[c] + rr[c]
                    dst[c] = min(max(v, lo), hi) if v == v else v
            else:
                for c in range(c_n):
                    v = src[c]
                    bad += not np.isfinite(v)
                    v = v * al[c] + be[c]
                    dst[c] = min(max(v, lo), hi) if v == v else v
    return bad


@parallel_kernel()
def winograd_nhwc(xp, th, tw, ho, wo, u, out, alpha, beta, lo, hi, res, with_res, block, scratch):
    """A 3×3 stride-1 channels-last convolution by fused Winograd blocks; the non-finite count.

    ``xp`` (N, 4·th + 2, 4·tw + 2, C) the zero-padded input; ``u`` (36, P, C,
    NR) the transformed weight ``U[ξ]`` (C, C_out) in panels
    (:func:`.gemm.pack_panels`); ``out`` (N, Ho, Wo, C_out); ``alpha``/``beta``
    padded to ``P·NR``; ``res`` as ``out`` when ``with_res``.  ``block`` tiles
    per task; ``scratch`` (W, S) float32 with S ≥ 36·block·(C + P·NR) +
    40·max(C, P·NR): the blocks are split into W runs of consecutive blocks,
    one per row of ``scratch`` (the caller's, so that concurrent calls from
    several threads each use their own).
    """
    n_n, hp, wp, c_n = xp.shape
    panels = u.shape[1]
    cout = out.shape[3]
    ldm = panels * NR
    tiles = n_n * th * tw
    blocks = (tiles + block - 1) // block
    workers = scratch.shape[0]
    xf, uf, of = xp.ravel(), u.ravel(), out.ravel()
    rf = res.ravel() if with_res else of[:0]
    ones = np.ones(ldm, np.float32)
    zeros = np.zeros(ldm, np.float32)
    inf = np.float32(np.inf)
    bad = 0
    for w in prange(workers):
        sw = scratch[w]
        vf = sw[:36 * block * c_n]
        mf = sw[36 * block * c_n:36 * block * (c_n + ldm)]
        tmp = sw[36 * block * (c_n + ldm):]
        offs = np.empty(MR, np.int64)
        for blk in range(w * blocks // workers, (w + 1) * blocks // workers):
            t0 = blk * block
            b_n = min(block, tiles - t0)
            for b in range(b_n):
                t = t0 + b
                s, q = t // (th * tw), t % (th * tw)
                ty, tx = q // tw, q % tw
                _input_tile(xf, ((s * hp + 4 * ty) * wp + 4 * tx) * c_n, wp * c_n, c_n, tmp, vf, b * c_n,
                            block * c_n)
            for xi in range(36):
                for panel in range(panels):
                    for r in range(0, b_n, MR):
                        mr = min(MR, b_n - r)
                        for i in range(mr):
                            offs[i] = (xi * block + r + i) * c_n
                        bad += _tile(vf, offs, mr, 1, c_n, 0, uf, (xi * panels + panel) * c_n * NR, mf,
                                     (xi * block + r) * ldm + panel * NR, ldm, NR, ones, zeros, 0, -inf, inf,
                                     mf[:0], False)
            for b in range(b_n):
                t = t0 + b
                s, q = t // (th * tw), t % (th * tw)
                ty, tx = q // tw, q % tw
                bad += _output_tile(mf, b * ldm, block * ldm, cout, tmp, of, ((s * ho + 4 * ty) * wo + 4 * tx) * cout,
                                    wo * cout, min(4, ho - 4 * ty), min(4, wo - 4 * tx), alpha, beta, lo, hi, rf,
                                    with_res)
    return bad

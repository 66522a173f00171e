"""Layout copies between NCHW and channels-last in vector registers: a VW×VW float32 tile at a time.

A convolution run channels-last on an NCHW array pays two layout copies: the
input into the zero-padded channels-last buffer the implicit product reads,
and the result back.  Element by element (``conv_nhwc.pad_into`` on an NCHW
view, ``layout.transpose_batched``) they ran at 1.2-1.5 floats a nanosecond on
one core, a third of NumPy's plain copy (6.4 MB: 0.47 ms): for the 8×64→128
3×3/2 layer at 56×56, 0.60 + 0.38 ms of 4.5 (2 threads, 2-core Intel Xeon VM,
AVX-512).  Here each tile is VW vector loads of rows, log2(VW) rounds of
shuffles, VW vector stores of columns (masked at the edges): a row of the
source is read once along its length and the destination written in whole
vectors.

float32 only (the layers' dtype); other dtypes keep the element-wise copies.
"""

from __future__ import annotations

from llvmlite import ir
from numba import prange, types
from numba.extending import intrinsic

from . import parallel_kernel
from ._ir import I1, I32, VW, Emitter


def _shuffle_masks(lanes, d):
    """The two shufflevector masks of the transpose round that swaps bit ``d`` of the row and the lane."""
    lo = [l if not l & d else lanes + l - d for l in range(lanes)]
    hi = [l + d if not l & d else lanes + l for l in range(lanes)]
    return lo, hi


@intrinsic
def _tile(typingctx, src, s_off, s_ld, rows, dst, d_off, d_ld, cols):
    """``dst[d_off + j·d_ld + i] = src[s_off + i·s_ld + j]`` for ``i < rows``, ``j < cols`` (both ≤ VW).

    Rows past ``rows`` and lanes past ``cols`` are neither read nor written
    (masked loads and stores, which do not fault on masked-off lanes).
    """
    sig = types.int64(src, s_off, s_ld, rows, dst, d_off, d_ld, cols)

    def codegen(context, builder, signature, args):
        e = Emitter(context, builder, signature, args)
        sp, dp = e.data(0), e.data(4)
        s_off_, s_ld_, rows_, d_off_, d_ld_, cols_ = args[1], args[2], args[3], args[5], args[6], args[7]
        lanes = e.lanes
        bvec = ir.VectorType(I1, lanes)
        col_mask, row_mask = e.lanes_below(cols_), e.lanes_below(rows_)
        vecs = []
        for i in range(lanes):
            live = e.splat(builder.icmp_signed("<", e.const(i), rows_), bvec)
            off = builder.add(s_off_, builder.mul(e.const(i), s_ld_))
            vecs.append(e.masked_load(sp, off, builder.and_(col_mask, live)))
        d = 1
        while d < lanes:
            lo, hi = _shuffle_masks(lanes, d)
            lo_c, hi_c = ir.Constant(ir.VectorType(I32, lanes), lo), ir.Constant(ir.VectorType(I32, lanes), hi)
            for i in range(lanes):
                if i & d:
                    continue
                a, b = vecs[i], vecs[i + d]
                vecs[i], vecs[i + d] = builder.shuffle_vector(a, b, lo_c), builder.shuffle_vector(a, b, hi_c)
            d *= 2
        for j in range(lanes):
            live = e.splat(builder.icmp_signed("<", e.const(j), cols_), bvec)
            off = builder.add(d_off_, builder.mul(e.const(j), d_ld_))
            e.masked_store(vecs[j], dp, off, builder.and_(row_mask, live))
        return e.const(0)

    return sig, codegen


@parallel_kernel()
def transpose_f32(a, out):
    """``out[b, j, i] = a[b, i, j]`` for C-contiguous float32 ``a`` (B, M, N) and ``out`` (B, N, M).

    One task per sample and band of VW columns of ``a``: the task writes VW
    whole rows of ``out`` (no cache line shared between threads) and reads a
    VW-wide strip down ``a``.
    """
    bn, m, n = a.shape
    af, of = a.ravel(), out.ravel()
    nb = (n + VW - 1) // VW
    for t in prange(bn * nb):
        b = t // nb
        j0 = (t % nb) * VW
        cols = min(VW, n - j0)
        for i0 in range(0, m, VW):
            _tile(af, (b * m + i0) * n + j0, n, min(VW, m - i0), of, (b * n + j0) * m + i0, m, cols)


@parallel_kernel()
def pad_nchw_f32(x, pt, pl, xp):
    """``xp`` (N, Hp, Wp, C) = the C-contiguous float32 NCHW ``x`` (N, C, H, W) channels-last, with ``pt`` rows
    and ``pl`` columns of zeros before it and the rest of ``xp`` zero after (what ``conv_nhwc.pad_into`` does
    for an NCHW view); every element of ``xp`` is written.  One task per row of ``xp``.
    """
    n_n, c_n, h, w = x.shape
    hp, wp = xp.shape[1], xp.shape[2]
    xf, pf = x.ravel(), xp.ravel()
    plane = h * w
    row_len = wp * c_n
    q_lo, q_hi = max(0, -pl), min(w, wp - pl)  # the input columns that land inside the row
    zero = xp.dtype.type(0)
    for t in prange(n_n * hp):
        s = t // hp
        r = t % hp - pt
        base = t * row_len
        if r < 0 or r >= h or q_lo >= q_hi:
            for k in range(row_len):
                pf[base + k] = zero
            continue
        for k in range((pl + q_lo) * c_n):
            pf[base + k] = zero
        for k in range((pl + q_hi) * c_n, row_len):
            pf[base + k] = zero
        for c0 in range(0, c_n, VW):
            rows = min(VW, c_n - c0)
            src = (s * c_n + c0) * plane + r * w
            for q0 in range(q_lo, q_hi, VW):
                _tile(xf, src + q0, plane, rows, pf, base + (pl + q0) * c_n + c0, c_n, min(VW, q_hi - q0))

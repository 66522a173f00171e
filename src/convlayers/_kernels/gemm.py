"""A register-blocked float32 matrix product with the convolution epilogue fused in, for channels-last layers.

``c = clamp((a @ B)·alpha[col] + beta[col], lo, hi)`` for ``a`` (P, K) pixels by
input taps, ``B`` (K, N) the weights packed into panels of ``NR`` columns, and
``c`` (P, N) pixels by output channels — a 1×1 convolution, or a k×k one after
a channels-last unroll.  Why not BLAS: OpenBLAS writes the product, and the
BatchNorm/ReLU6 epilogue is then a second pass over it (16→96 at 112×112:
0.22 ms for the product, 0.21 ms for the pass out of cache); here each tile's
epilogue runs on the accumulators before they are stored.  And on two threads
OpenBLAS's idle workers spin beside numba's, where this kernel runs on numba's
own (tbb) threads like the layers around it.

The micro-kernel is written in LLVM IR through numba intrinsics, because numba
has no vector types: ``MR`` rows of ``a`` are broadcast, one lane each, against
``NV`` vectors of a panel row, into ``MR × NV`` accumulators that stay in
registers for the whole K loop (the generated loop is 2 loads, 6 broadcasts and
12 fused multiply-adds per k, as in BLAS kernels).  Measured alone, one 6×32
tile ran at 190–200 GFLOP/s for K from 32 to 256 on one core of the 2-core
Intel Xeon VM (AVX-512), OpenBLAS's best on the same shapes being 145–167.
The vector width follows the CPU: 16 floats with AVX-512, else 8 (AVX2 has 16
registers: 12 accumulators, 2 panel vectors and a broadcast fit).

Sums run over k in order with one rounding per fused multiply-add, so they
differ from BLAS's in the last bits (as two BLAS builds do).  The NaN count
of the result is returned, as by the other epilogues, for the caller's repairs.
"""

from __future__ import annotations

import numpy as np
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic
from llvmlite import ir

from . import njit, parallel_kernel
from ._ir import VEC, VW, Emitter

MR = 6  # rows of a per tile
NV = 2  # vectors of columns per tile
NR = NV * VW  # columns per panel


def _microkernel(mr):
    """The intrinsic computing one ``mr × NR`` tile; ``ncols`` < NR masks the stores of a last, partial panel."""

    @intrinsic
    def tile(typingctx, a, a_off, lda, b, b_off, k, c, c_off, ldc, ncols, alpha, beta, ab_off, lo, hi):
        sig = types.int64(a, a_off, lda, b, b_off, k, c, c_off, ldc, ncols, alpha, beta, ab_off, lo, hi)

        def codegen(context, builder, signature, args):
            e = Emitter(context, builder, signature, args)
            _, a_off, lda, _, b_off, k, _, c_off, ldc, ncols, _, _, ab_off, lo, hi = args
            ap, bp, cp, alp, bep = e.data(0), e.data(3), e.data(6), e.data(10), e.data(11)
            add, mul, const = builder.add, builder.mul, e.const
            # accumulators in allocas: LLVM's SROA keeps them in registers across the loop
            accs = [[cgutils.alloca_once_value(builder, ir.Constant(VEC, [0.0] * VW)) for _ in range(NV)]
                    for _ in range(mr)]
            rows = [add(a_off, mul(const(i), lda)) for i in range(mr)]
            with cgutils.for_range(builder, k) as loop:
                kk = loop.index
                row_b = add(b_off, mul(kk, const(NR)))
                bv = [e.load(bp, add(row_b, const(j * VW))) for j in range(NV)]
                for i in range(mr):
                    av = e.splat(builder.load(builder.gep(ap, [add(rows[i], kk)])))
                    for j in range(NV):
                        builder.store(e.fma(av, bv[j], builder.load(accs[i][j])), accs[i][j])
            lov, hiv = e.splat(lo), e.splat(hi)
            alv = [e.load(alp, add(ab_off, const(j * VW))) for j in range(NV)]
            bev = [e.load(bep, add(ab_off, const(j * VW))) for j in range(NV)]
            masks = [e.lanes_below(builder.sub(ncols, const(j * VW))) for j in range(NV)]
            nans = const(0)
            for i in range(mr):
                out_row = add(c_off, mul(const(i), ldc))
                for j in range(NV):
                    v, count = e.finish(builder.load(accs[i][j]), alv[j], bev[j], lov, hiv, masks[j])
                    nans = add(nans, count)
                    e.masked_store(v, cp, add(out_row, const(j * VW)), masks[j])
            return nans

        return sig, codegen

    return tile


_t1, _t2, _t3, _t4, _t5, _t6 = (_microkernel(m) for m in range(1, MR + 1))


@njit(cache=True, inline="always")
def _tile(a, a_off, lda, b, b_off, k, c, c_off, ldc, ncols, alpha, beta, ab_off, lo, hi, mr):
    if mr == 6:
        return _t6(a, a_off, lda, b, b_off, k, c, c_off, ldc, ncols, alpha, beta, ab_off, lo, hi)
    if mr == 5:
        return _t5(a, a_off, lda, b, b_off, k, c, c_off, ldc, ncols, alpha, beta, ab_off, lo, hi)
    if mr == 4:
        return _t4(a, a_off, lda, b, b_off, k, c, c_off, ldc, ncols, alpha, beta, ab_off, lo, hi)
    if mr == 3:
        return _t3(a, a_off, lda, b, b_off, k, c, c_off, ldc, ncols, alpha, beta, ab_off, lo, hi)
    if mr == 2:
        return _t2(a, a_off, lda, b, b_off, k, c, c_off, ldc, ncols, alpha, beta, ab_off, lo, hi)
    return _t1(a, a_off, lda, b, b_off, k, c, c_off, ldc, ncols, alpha, beta, ab_off, lo, hi)


@njit(cache=True, nogil=True)
def _block(af, k, bf, cf, n, r0, r1, panel, alpha, beta, lo, hi):
    """Rows ``r0:r1`` of ``c`` in one panel of columns (a task of :func:`gemm_epilogue`); its NaN count."""
    nans = 0
    ncols = min(NR, n - panel * NR)
    for r in range(r0, r1, MR):
        nans += _tile(af, r * k, k, bf, panel * k * NR, k, cf, r * n + panel * NR, n, ncols, alpha, beta,
                      panel * NR, lo, hi, min(MR, r1 - r))
    return nans


# Rows of a per task: 48 (8 tiles) and up did alike on 196x64x384 .. 12544x16x96; 12 and 24 were
# slower on the large ones (338 vs 181 us for 12544x16x96, 2 threads, 2-core Intel Xeon VM).
ROW_BLOCK = 8 * MR


@parallel_kernel()
def gemm_epilogue(a, b, c, alpha, beta, lo, hi):
    """``c = clamp((a @ B)·alpha + beta, lo, hi)``; the number of NaNs in ``c``.

    ``a`` (P, K) and ``c`` (P, N) C-contiguous float32; ``b`` the (panels, K,
    NR) packing of B (:func:`pack_panels`); ``alpha``, ``beta`` padded to
    ``panels·NR`` (:func:`pad_columns`).  One task per block of
    :data:`ROW_BLOCK` rows and panel.
    """
    p_n, k = a.shape
    n = c.shape[1]
    panels = b.shape[0]
    af, bf, cf = a.ravel(), b.ravel(), c.ravel()
    blocks = (p_n + ROW_BLOCK - 1) // ROW_BLOCK
    nans = 0
    # numba splits a prange statically, into equal runs of tasks per thread.  Many row blocks: block-major,
    # so that a block's rows of a are read once for all panels.  Few (a 7x7 or 14x14 image): panel-major,
    # so that every thread's run is whole panels with all their rows, the short last block included --
    # block-major gave 160->960 @7x7 to one thread (88 -> 57 us with the switch, 2 threads).
    panel_major = blocks < 8
    for t in prange(blocks * panels):
        if panel_major:
            blk, panel = t % blocks, t // blocks
        else:
            blk, panel = t // panels, t % panels
        r0 = blk * ROW_BLOCK
        nans += _block(af, k, bf, cf, n, r0, min(p_n, r0 + ROW_BLOCK), panel, alpha, beta, lo, hi)
    return nans


def pack_panels(bmat):
    """B (K, N) as (⌈N/NR⌉, K, NR) float32 panels, the last one padded with zero columns."""
    k, n = bmat.shape
    panels = -(-n // NR)
    wide = np.zeros((k, panels * NR), dtype=np.float32)
    wide[:, :n] = bmat
    return np.ascontiguousarray(wide.reshape(k, panels, NR).transpose(1, 0, 2))


def pad_columns(v, n):
    """A per-column vector of length ``n`` padded with zeros to whole panels (float32)."""
    out = np.zeros(-(-n // NR) * NR, dtype=np.float32)
    out[:n] = v
    return out

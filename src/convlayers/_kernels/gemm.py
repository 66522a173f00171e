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
registers for the whole K loop (the generated loop is 2 loads, MR broadcasts
and 2·MR fused multiply-adds per k, as in BLAS kernels).  Measured alone, one
6×32 tile ran at 190–200 GFLOP/s for K from 32 to 256 on one core of the
2-core Intel Xeon VM (AVX-512), OpenBLAS's best on the same shapes being
145–167; 12×32 tiles (AVX-512) are faster again (see ``MR``).  The vector
width and MR follow the CPU: 16 floats and 12 rows with AVX-512's 32
registers, else 8 floats and 6 rows (AVX2's 16 registers: 12 accumulators, 2
panel vectors and a broadcast).

:func:`conv_weight_grad` runs the same tiles for a convolution's weight gradient, packing the
channels-last unroll of the input a block of pixels at a time instead of unrolling it whole.

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
from ._ir import VW, Emitter
from .aligned import aligned_zeros

# Rows of a per tile: the accumulators are MR × NV vectors, and with the NV panel vectors and a broadcast
# they must fit the register file -- AVX-512's 32 registers take 12 × 2 + 2 + 1, AVX2's 16 take 6 × 2 + 2 + 1.
# Twelve rows load each panel vector for twice the multiply-adds of six: on the 2-core Intel Xeon VM
# (AVX-512), 2 threads, batch-1 3x3 convolutions 64->64 @56 0.60 -> 0.57 ms, 128->128 @28 0.64 -> 0.59,
# 256->256 @14 0.62 -> 0.56, 512->512 @7 0.75 -> 0.64 (onnxruntime's 0.52-0.54, 0.71); ONNX resnet18 b1 13.6 -> 11.5 ms.
MR = 12 if VW == 16 else 6
NV = 2  # vectors of columns per tile
NR = NV * VW  # columns per panel
# The K loop asks for the panel row this many rows ahead (4 KiB with AVX-512's 128-byte rows): inside a
# model the weights come from beyond L2 (mobilenet_v2's 1280->1000 Gemm: 0.37 ms in the run against 0.18 ms
# called twice, one thread), and the hardware prefetchers left most of that wait.  ONNX runner against
# onnxruntime, 2 threads, 2-core Intel Xeon VM (alternating processes): mobilenet_v2 b1 1.21-1.24 -> 1.13-1.18,
# resnet18 b1 1.10-1.13 -> 0.95, b8 0.85 -> 0.78; 8, 16, 64 rows ahead did no better, 128 worse.  A distance
# measured on that machine only; a prefetch is a hint, and costs an instruction a row where the row is cached.
PREFETCH_ROWS = 32


def _emit_tile(e, mr, args, residual, row_affine=False, nv=NV):
    """The IR of one ``mr × NR`` tile: the K loop on ``mr × nv`` accumulators, then the epilogue and stores;
    returns the NaN count (``nv`` < NV: only the first ``nv`` vectors of the panel's columns).
    ``row_affine``: the affine map's ``alpha``/``beta`` are per row of the tile (an
    NCHW output, rows are channels), and the panel rows are read masked to ``ncols`` (``b`` is then the
    unpacked operand itself, whose last row may end inside the panel)."""
    builder = e.b
    segs, seg_len, seg_stride, _, b_off, ldb, _, c_off, ldc, ncols, _, _, ab_off, lo, hi, _ = args[3:]
    ap, op, bp, cp, alp, bep = e.data(0), e.data(1), e.data(6), e.data(9), e.data(13), e.data(14)
    rp = e.data(18) if residual else None
    add, mul, const = builder.add, builder.mul, e.const
    masks = [e.lanes_below(builder.sub(ncols, const(j * VW))) for j in range(nv)]
    offsets = [builder.load(builder.gep(op, [const(i)])) for i in range(mr)]
    # accumulators in allocas: LLVM's SROA keeps them in registers across the loops
    accs = [[cgutils.alloca_once_value(builder, e.zero()) for _ in range(nv)] for _ in range(mr)]
    with cgutils.for_range(builder, segs) as seg:
        seg_a = mul(seg.index, seg_stride)
        rows = [add(o, seg_a) for o in offsets]
        seg_b = add(b_off, mul(mul(seg.index, seg_len), ldb))
        with cgutils.for_range(builder, seg_len) as loop:
            t = loop.index
            row_b = add(seg_b, mul(t, ldb))
            if row_affine:
                bv = [e.masked_load(bp, add(row_b, const(j * VW)), masks[j]) for j in range(nv)]
            else:
                bv = [e.load(bp, add(row_b, const(j * VW))) for j in range(nv)]
                for j in range(0, nv * VW, 64 // 4):  # each cache line of the row
                    e.prefetch(bp, add(row_b, const(PREFETCH_ROWS * NR + j)))
            for i in range(mr):
                av = e.splat(builder.load(builder.gep(ap, [add(rows[i], t)])))
                for j in range(nv):
                    builder.store(e.fma(av, bv[j], builder.load(accs[i][j])), accs[i][j])
    lov, hiv = e.splat(lo), e.splat(hi)
    if not row_affine:
        alv = [e.load(alp, add(ab_off, const(j * VW))) for j in range(nv)]
        bev = [e.load(bep, add(ab_off, const(j * VW))) for j in range(nv)]
    nans = const(0)
    for i in range(mr):
        out_row = add(c_off, mul(const(i), ldc))
        if row_affine:
            alv = [e.splat(builder.load(builder.gep(alp, [add(ab_off, const(i))])))] * nv
            bev = [e.splat(builder.load(builder.gep(bep, [add(ab_off, const(i))])))] * nv
        for j in range(nv):
            where = add(out_row, const(j * VW))
            extra = e.masked_load(rp, where, masks[j]) if residual else None
            v, count = e.finish(builder.load(accs[i][j]), alv[j], bev[j], lov, hiv, masks[j], extra)
            nans = add(nans, count)
            e.masked_store(v, cp, where, masks[j])
    return nans


def _microkernel(residual, row_affine=False, nv=NV):
    """The intrinsic computing one ``mr × NR`` tile, ``mr`` ≤ MR; ``ncols`` < NR masks the stores of a last,
    partial panel.

    With ``residual``, ``res`` (laid out as ``c``) is added after the affine map and before the clamp: a
    Conv → Add (→ Relu) of a residual block in one pass.

    Row ``r`` of the tile reads ``a`` at ``offs[r] + i·seg_stride + t`` for
    ``segs`` segments ``i`` of ``seg_len`` values ``t`` — one segment of K
    values for a plain product, or one per window row for a convolution read
    straight from its padded channels-last input (``kw·C`` contiguous values
    a row) — against row ``i·seg_len + t`` of the panel.  Each row count has
    its own loop (a switch on ``mr``), so a short last tile costs its rows only.
    """

    @intrinsic
    def tile(typingctx, a, offs, mr, segs, seg_len, seg_stride, b, b_off, ldb, c, c_off, ldc, ncols, alpha,
             beta, ab_off, lo, hi, res):
        sig = types.int64(a, offs, mr, segs, seg_len, seg_stride, b, b_off, ldb, c, c_off, ldc, ncols, alpha,
                          beta, ab_off, lo, hi, res)

        def codegen(context, builder, signature, args):
            e = Emitter(context, builder, signature, args)
            result = cgutils.alloca_once_value(builder, e.const(0))
            done = builder.append_basic_block("tile.done")
            other = builder.append_basic_block("tile.none")
            switch = builder.switch(args[2], other)
            with builder.goto_block(other):
                builder.branch(done)
            for m in range(1, MR + 1):
                block = builder.append_basic_block(f"tile.rows{m}")
                switch.add_case(ir.Constant(ir.IntType(64), m), block)
                builder.position_at_end(block)
                builder.store(_emit_tile(e, m, args, residual, row_affine, nv), result)
                builder.branch(done)
            builder.position_at_end(done)
            return builder.load(result)

        return sig, codegen

    return tile


_plain_tile, _residual_tile, _row_tile = _microkernel(False), _microkernel(True), _microkernel(False, True)
# Tiles of a last panel with at most VW columns multiply one vector of them, not NV: the input gradient of
# the digits CNN's 48->96 3x3 at 8x8, batch 64 (48 output columns, a panel and a half), 1.54 -> 1.38 ms
# (2 threads, 2-core Intel Xeon VM, old and new in alternating processes).
_plain_half, _residual_half = _microkernel(False, nv=1), _microkernel(True, nv=1)


@njit(cache=True, inline="always")
def _tile(a, offs, mr, segs, seg_len, seg_stride, b, b_off, c, c_off, ldc, ncols, alpha, beta, ab_off, lo, hi,
          res, with_res):
    if ncols <= VW:
        if with_res:
            return _residual_half(a, offs, mr, segs, seg_len, seg_stride, b, b_off, NR, c, c_off, ldc, ncols,
                                  alpha, beta, ab_off, lo, hi, res)
        return _plain_half(a, offs, mr, segs, seg_len, seg_stride, b, b_off, NR, c, c_off, ldc, ncols, alpha, beta,
                           ab_off, lo, hi, res)
    if with_res:
        return _residual_tile(a, offs, mr, segs, seg_len, seg_stride, b, b_off, NR, c, c_off, ldc, ncols, alpha,
                              beta, ab_off, lo, hi, res)
    return _plain_tile(a, offs, mr, segs, seg_len, seg_stride, b, b_off, NR, c, c_off, ldc, ncols, alpha, beta,
                       ab_off, lo, hi, res)


@njit(cache=True, nogil=True)
def _block(af, k, bf, cf, n, r0, r1, panel, alpha, beta, lo, hi, conv, kh, kw, sh, sw, dh, hp, wp, c_n, ho_n,
           wo_n, rf, with_res):
    """Rows ``r0:r1`` of ``c`` in one panel of columns (a task of the drivers below); its NaN count.

    ``conv``: row ``p`` of ``a`` is output pixel ``p``'s window in the padded
    channels-last input ``af`` (kh segments of kw·C values); else a row of a
    (P, K) matrix.
    """
    nans = 0
    ncols = min(NR, n - panel * NR)
    b_off = panel * k * NR
    plane = ho_n * wo_n
    offs = np.empty(MR, np.int64)
    # the output pixel r0 as (sample, row, column), then stepped a pixel at a time: three integer divisions
    # per pixel were most of a tile with a short window (the 3->32 3x3/2 stem, 27 values a row: 0.20 -> 0.14 ms)
    s = r0 // plane
    ho = (r0 % plane) // wo_n
    wo = r0 % wo_n
    for r in range(r0, r1, MR):
        mr = min(MR, r1 - r)
        if conv:
            for i in range(mr):
                offs[i] = ((s * hp + ho * sh) * wp + wo * sw) * c_n
                wo += 1
                if wo == wo_n:
                    wo = 0
                    ho += 1
                    if ho == ho_n:
                        ho = 0
                        s += 1
            nans += _tile(af, offs, mr, kh, kw * c_n, dh * wp * c_n, bf, b_off, cf, r * n + panel * NR, n, ncols,
                          alpha, beta, panel * NR, lo, hi, rf, with_res)
        else:
            for i in range(mr):
                offs[i] = (r + i) * k
            nans += _tile(af, offs, mr, 1, k, 0, bf, b_off, cf, r * n + panel * NR, n, ncols, alpha, beta,
                          panel * NR, lo, hi, rf, with_res)
    return nans


# Rows of a per task: 48 (8 tiles) and up did alike on 196x64x384 .. 12544x16x96; 12 and 24 were
# slower on the large ones (338 vs 181 us for 12544x16x96, 2 threads, 2-core Intel Xeon VM).
ROW_BLOCK = 8 * MR


@njit(cache=True, inline="always")
def _tasks(af, k, bf, cf, p_n, n, panels, alpha, beta, lo, hi, conv, kh, kw, sh, sw, dh, hp, wp, c_n, ho_n,
           wo_n, rf, with_res):
    a_size = af.size
    blocks = (p_n + ROW_BLOCK - 1) // ROW_BLOCK
    nans = 0
    # numba splits a prange statically, into equal runs of tasks per thread.  Block-major, a block's rows of
    # a stay in cache for all panels and the panels are read again for every block; panel-major, the
    # reverse.  So panel-major when a is the smaller (its re-reads hit the cache: 8x512->512 3x3 @7x7,
    # 9.4 MB of weights against 1.3 MB of input, 8.8 -> 6.1 ms), and when there are few row blocks (a 7x7
    # or 14x14 image), so that every thread's run is whole panels with all their rows, the short last
    # block included -- block-major gave 160->960 @7x7 to one thread (88 -> 57 us, 2 threads).
    panel_major = blocks < 8 or a_size < bf.size
    for t in prange(blocks * panels):
        if panel_major:
            blk, panel = t % blocks, t // blocks
        else:
            blk, panel = t // panels, t % panels
        r0 = blk * ROW_BLOCK
        nans += _block(af, k, bf, cf, n, r0, min(p_n, r0 + ROW_BLOCK), panel, alpha, beta, lo, hi, conv, kh, kw,
                       sh, sw, dh, hp, wp, c_n, ho_n, wo_n, rf, with_res)
    return nans


@parallel_kernel()
def gemm_epilogue(a, b, c, alpha, beta, lo, hi, res):
    """``c = clamp((a @ B)·alpha + beta, lo, hi)``; the number of NaNs in ``c``.

    ``a`` (P, K) and ``c`` (P, N) C-contiguous float32; ``b`` the (panels, K,
    NR) packing of B (:func:`pack_panels`); ``alpha``, ``beta`` padded to
    ``panels·NR`` (:func:`pad_columns`); ``res``: None, or a (P, N)
    C-contiguous array added before the clamp.  One task per block of
    :data:`ROW_BLOCK` rows and panel.
    """
    p_n, k = a.shape
    if res is None:
        rf, with_res = c.ravel()[:0], False
    else:
        rf, with_res = res.ravel(), True
    return _tasks(a.ravel(), k, b.ravel(), c.ravel(), p_n, c.shape[1], b.shape[0], alpha, beta, lo, hi, False,
                  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, rf, with_res)


@parallel_kernel()
def conv_epilogue(xp, kh, kw, sh, sw, dh, ho_n, wo_n, b, c, alpha, beta, lo, hi, res):
    """A channels-last convolution as an implicit product: ``c`` (N·Ho·Wo, C_out) from the padded input.

    ``xp`` (N, Hp, Wp, C) is the zero-padded input, C-contiguous, large enough
    for the (Ho, Wo) output's windows; ``b`` packs
    the (kh·kw·C, C_out) weight matrix (taps then channels, as
    ``functional._layout.taps_channels_out``); dilation along the width is 1
    (a window row is ``kw·C`` contiguous values).  Nothing is unrolled: each
    tile row reads its pixel's window rows in place.  ``res`` as in
    :func:`gemm_epilogue`.  Returns the NaN count.
    """
    n_n, hp, wp, c_n = xp.shape
    if res is None:
        rf, with_res = c.ravel()[:0], False
    else:
        rf, with_res = res.ravel(), True
    return _tasks(xp.ravel(), kh * kw * c_n, b.ravel(), c.ravel(), n_n * ho_n * wo_n, c.shape[1], b.shape[0],
                  alpha, beta, lo, hi, True, kh, kw, sh, sw, dh, hp, wp, c_n, ho_n, wo_n, rf, with_res)


# Panels of columns per task of :func:`gemm_rows` (a task reads every row of x over them).
ROWS_PANELS = 4


@njit(cache=True, nogil=True)
def _rows_task(wf, k, m_n, xf, of, p_n, s, p0, p1, alpha, beta, lo, hi):
    """Panels ``p0:p1`` of sample ``s`` in :func:`gemm_rows`; their NaN count."""
    nans = 0
    offs = np.empty(MR, np.int64)
    x_off = s * k * p_n
    o_off = s * m_n * p_n
    for panel in range(p0, p1):
        col = panel * NR
        ncols = min(NR, p_n - col)
        for r in range(0, m_n, MR):
            mr = min(MR, m_n - r)
            for i in range(mr):
                offs[i] = (r + i) * k
            nans += _row_tile(wf, offs, mr, 1, k, 0, xf, x_off + col, p_n, of, o_off + r * p_n + col, p_n, ncols,
                              alpha, beta, r, lo, hi, of[:0])
    return nans


@parallel_kernel()
def gemm_rows(w, x, out, alpha, beta, lo, hi):
    """``out[s] = clamp((w @ x[s])·alpha[row] + beta[row], lo, hi)`` for every sample ``s``; the NaN count.

    The NCHW form of a 1×1 convolution: ``w`` (M, K) the weights, ``x`` (S, K, P) the samples' channels by
    pixels and ``out`` (S, M, P), all C-contiguous float32, read and written in place -- no packing, the
    panel rows are ``x``'s own rows (stride P), so a memory-bound layer reads its input once.  ``alpha`` and
    ``beta`` have one value per row (output channel).  One task per :data:`ROWS_PANELS` panels of a sample.
    """
    m_n, k = w.shape
    s_n, _, p_n = x.shape
    panels = (p_n + NR - 1) // NR
    blocks = (panels + ROWS_PANELS - 1) // ROWS_PANELS
    wf, xf, of = w.ravel(), x.ravel(), out.ravel()
    nans = 0
    for t in prange(s_n * blocks):
        s = t // blocks
        p0 = (t % blocks) * ROWS_PANELS
        nans += _rows_task(wf, k, m_n, xf, of, p_n, s, p0, min(panels, p0 + ROWS_PANELS), alpha, beta, lo, hi)
    return nans


def pack_panels(bmat):
    """B (K, N) as (⌈N/NR⌉, K, NR) float32 panels, the last one padded with zero columns."""
    k, n = bmat.shape
    panels = -(-n // NR)
    out = aligned_zeros((panels, k, NR), np.float32)
    for p in range(panels):
        cols = bmat[:, p * NR:(p + 1) * NR]
        out[p, :, :cols.shape[1]] = cols
    return out


def conv_panels(w, flip=False):
    """:func:`pack_conv_panels` of the float32 weight ``w`` into a new aligned buffer."""
    cout, cin, kh, kw = w.shape
    cols, k = (cin, kh * kw * cout) if flip else (cout, kh * kw * cin)
    out = aligned_zeros((-(-cols // NR), k, NR), np.float32)
    pack_conv_panels(w, flip, out)
    return out


def epilogue_columns(epilogue, n):
    """``(alpha, beta, lo, hi)`` for ``n`` columns as the kernels take it: the vectors padded to whole panels
    (:func:`pad_columns`), the bounds float32."""
    alpha, beta, lo, hi = epilogue
    return pad_columns(alpha, n), pad_columns(beta, n), np.float32(lo), np.float32(hi)


def pad_columns(v, n):
    """A per-column vector of length ``n`` padded with zeros to whole panels (float32)."""
    out = np.zeros(-(-n // NR) * NR, dtype=np.float32)
    out[:n] = v
    return out


# Pixels of the weight gradient's product per pass over a panel: 256 of them are 32 KiB of panel rows, packed
# just before the row tiles read them, to stay in L1 (48 KiB a core on the 2-core Intel Xeon VM; a size for
# that L1, not measured elsewhere).  It bounds the packing buffer whatever the batch; against whole-batch
# panels (512 KiB, from L2) it measured about the same (64x48->96 @8x8: 1.84 vs 1.77 ms, 2 threads).
PIXEL_BLOCK = 256


@njit(cache=True, nogil=True)
def _pack_window_panel(xf, hp, wp, c_n, wo_n, sh, sw, s0, s1, r0, r1, colofs, q0, ncols, buf):
    """Pack the panel rows of output pixels (s, ho, wo), s0 ≤ s < s1, r0 ≤ ho < r1, of the channels-last unroll.

    ``buf[p·NR + l] = xf[window(p) + colofs[q0 + l]]``, ``window(p)`` being pixel ``p``'s window corner in the
    padded (N, Hp, Wp, C) input; lanes from ``ncols`` on are zeroed (multiplied, never stored).  The panel's
    columns are copied as runs of consecutive offsets (a window row is kw·C contiguous values): a gather a
    value took 1.2 ms of the 48->96 3x3 @8x8 batch 64 weight gradient (14 panels, one core), runs 0.5 ms.
    """
    starts = np.empty(NR + 1, np.int64)
    runs = 0
    for q in range(ncols):
        if q == 0 or colofs[q0 + q] != colofs[q0 + q - 1] + 1:
            starts[runs] = q
            runs += 1
    starts[runs] = ncols
    p = 0
    zero = np.float32(0)
    for s in range(s0, s1):
        for ho in range(r0, r1):
            for wo in range(wo_n):
                base = ((s * hp + ho * sh) * wp + wo * sw) * c_n
                row = p * NR
                for u in range(runs):
                    a, b = starts[u], starts[u + 1]
                    dst = buf[row + a:row + b]
                    src = xf[base + colofs[q0 + a]:]
                    for q in range(b - a):  # from 0: no negative-index wrap in the loop, which vectorises
                        dst[q] = src[q]
                for q in range(ncols, NR):
                    buf[row + q] = zero
                p += 1


@parallel_kernel()
def conv_weight_grad(xp, kh, kw, sh, sw, dh, dw, go, gw, chunks):
    """The weight gradient of a convolution, ``gw`` (C_out, kh·kw·C) from its padded input and output gradient.

    ``gw[o, (i·kw + j)·C + c] = Σ_p go[n, o, ho, wo] · xp[n, ho·sh + i·dh, wo·sw + j·dw, c]`` over the output
    pixels ``p = (n, ho, wo)``: the product of the (C_out, pixels) output gradient, read in place from its
    NCHW array ``go`` (N, C_out, Ho, Wo) -- row ``o`` is one run of Ho·Wo values per sample -- by the
    channels-last unroll of ``xp`` (N, Hp, Wp, C, zero-padded), which is never built: each task packs
    :data:`PIXEL_BLOCK` pixels' rows of one panel of :data:`NR` of its columns at a time and runs every row
    of ``go`` over them, adding into the sums of the pixels before.  All float32, C-contiguous.  Each
    output is summed over the pixels in order, one rounding per fused multiply-add and per block.  The
    panels (K / NR of them) go in ``chunks`` equal runs, one task each (the thread count).
    """
    n_n, hp, wp, c_n = xp.shape
    cout, ho_n, wo_n = go.shape[1], go.shape[2], go.shape[3]
    k = kh * kw * c_n
    hw = ho_n * wo_n
    panels = (k + NR - 1) // NR
    colofs = np.zeros(panels * NR, np.int64)
    for q in range(k):
        tap, c = q // c_n, q % c_n
        colofs[q] = ((tap // kw) * dh * wp + (tap % kw) * dw) * c_n + c
    ones = np.ones(panels * NR, np.float32)
    zeros = np.zeros(panels * NR, np.float32)
    lo, hi = np.float32(-np.inf), np.float32(np.inf)
    xf, gf, cf = xp.ravel(), go.ravel(), gw.ravel()
    # blocks of whole samples for small images, else of output rows of one sample
    per = max(1, min(n_n, PIXEL_BLOCK // hw))
    rows = ho_n if hw <= PIXEL_BLOCK else max(1, min(ho_n, PIXEL_BLOCK // wo_n))
    chunks = max(1, min(panels, chunks))
    nans = 0
    for t in prange(chunks):
        buf = np.empty(per * rows * wo_n * NR, np.float32)
        offs = np.empty(MR, np.int64)
        # block-major: a block's rows of go stay in cache for all of this task's panels; panel-major read the
        # whole of go again for every panel (8x64->64 3x3 @56, 6.4 MB of it: 11.8 -> 9.0 ms; 64x48->96 @8x8
        # 1.77 -> 1.58 ms; 2 threads, 2-core Intel Xeon VM)
        for s0 in range(0, n_n, per):
            s1 = min(n_n, s0 + per)
            for r0 in range(0, ho_n, rows):
                r1 = min(ho_n, r0 + rows)
                for panel in range(t * panels // chunks, (t + 1) * panels // chunks):
                    ncols = min(NR, k - panel * NR)
                    _pack_window_panel(xf, hp, wp, c_n, wo_n, sh, sw, s0, s1, r0, r1, colofs, panel * NR, ncols,
                                       buf)
                    for r in range(0, cout, MR):
                        mr = min(MR, cout - r)
                        for i in range(mr):
                            offs[i] = (s0 * cout + r + i) * hw + r0 * wo_n
                        # one segment of the block's pixels per sample (Ho·Wo, or the rows r0:r1 of one)
                        nans += _tile(gf, offs, mr, s1 - s0, (r1 - r0) * wo_n, cout * hw, buf, 0, cf,
                                      r * k + panel * NR, k, ncols, ones, zeros, panel * NR, lo, hi, cf,
                                      s0 > 0 or r0 > 0)
    return nans


@njit(cache=True, nogil=True)
def pack_conv_panels(w, flip, out):
    """A convolution's (C_out, C, kh, kw) weight as the panels of its channels-last product, straight into ``out``.

    Without ``flip``, ``out`` (⌈C_out/NR⌉, kh·kw·C, NR) packs B[(i·kw + j)·C + c, o] = w[o, c, i, j]
    (:func:`pack_panels` of ``functional._layout.taps_channels_out(w)``); with it, ``out``
    (⌈C/NR⌉, kh·kw·C_out, NR) packs the input gradient's B[(i·kw + j)·C_out + o, c] =
    w[o, c, kh-1-i, kw-1-j] (of ``flipped_transposed(w, 1)``).  Panel columns past the last are zeroed.
    One pass instead of a reorder and a per-panel NumPy copy: 192x96x3x3 0.16 -> 0.07 ms, and with the
    flip 0.26 -> 0.09 ms, one core of the 2-core Intel Xeon VM.
    """
    cout, cin, kh, kw = w.shape
    out[...] = 0
    taps = kh * kw
    # written in order, read across the weight's rows: written across the panel rows instead (one cache
    # line a value, out of L1) took 0.36 ms for 192x96x3x3 (2-core Intel Xeon VM)
    if flip:
        for p in range(out.shape[0]):
            lanes = min(NR, cin - p * NR)
            for i in range(kh):
                for j in range(kw):
                    for o in range(cout):
                        row = out[p, (taps - 1 - i * kw - j) * cout + o]
                        for lane in range(lanes):
                            row[lane] = w[o, p * NR + lane, i, j]
    else:
        for p in range(out.shape[0]):
            lanes = min(NR, cout - p * NR)
            for i in range(kh):
                for j in range(kw):
                    for c in range(cin):
                        row = out[p, (i * kw + j) * cin + c]
                        for lane in range(lanes):
                            row[lane] = w[p * NR + lane, c, i, j]

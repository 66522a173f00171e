"""The 2-D convolution cores behind every convolution (1-D, 2-D and 3-D; see ``_conv_nd``).

The public ops and their validation live in :mod:`.convolution` and
:mod:`._conv_args`; these cores take a validated, batched (N, C, H, W) input
with zero padding.  Algorithm choice lives here, not in the kernels:

* one input channel per group (depthwise, with or without a channel
  multiplier): a direct numba loop, since there is no channel mixing;
* 1×1 kernels: a strided view and one BLAS product, no unrolling;
* 3×3 kernels at stride 1 (groups=1, at least 16 channels, wide enough
  products): Winograd F(4×4, 3×3), a quarter of the multiplies (``_winograd``);
* everything else: ``im2col`` into a buffer of bounded size (several small
  samples, or one large sample in bands of output rows, at a time) and one
  BLAS product per group; small images (under 256 output pixels, groups=1)
  unroll channels-last instead, a whole channel vector per tap.

With several threads, the tiles are shared out among worker threads that each
unroll a tile and multiply it with one-thread BLAS (``_threads``): BLAS's own
idle threads would otherwise spin beside the unrolling and slow it 3–5×.

A transposed convolution is the adjoint of ``conv2d`` with respect to its input,
so both directions share the same three paths.
"""

from __future__ import annotations

import functools

import numpy as np

from .. import _kernels as _kernels_pkg
from .._kernels import conv as _k
from .._kernels import gemm as _gemm
from .._kernels import norm as _norm_k
from . import _conv_channels_last as _cl
from . import _layout, _threads, _winograd
from ._conv_args import conv_args, out_hw

__all__ = ["conv2d_affine"]

# Upper bound on the im2col tile (several small samples, or one large sample in
# bands of output rows), so that peak memory stays near PyTorch's: measured 10 MiB
# vs PyTorch's 13 MiB for 8x64x56x56 3x3.  On the calling thread alone, whole-sample
# tiles beat bands of rows (10.6 vs 12.3 ms), hence 8 MiB; a worker thread unrolls
# and multiplies its own tile, best at 2 MiB.  Both measured on the project's 2-core
# AMD EPYC VM (Zen 5, AVX-512; 1 MiB L2 per core, 32 MiB L3, as /sys reports them);
# other machines get them scaled to their own caches (:func:`_machine_budgets`).
# None means "from the machine"; a number (tests) overrides it.
_COLS_BUDGET_BYTES = None
_WORKER_COLS_BUDGET_BYTES = None
# Depthwise work (outputs x taps) below which the kernel runs on the calling thread.  On workqueue a
# parallel launch costs ~0.1 ms (measured on the Zen 5 (AVX-512) 2-core VM), more than mobilenet_v2's
# batch-1 layers take serially; on tbb it costs ~4 µs, and every such layer ran faster on two threads
# (2-core Intel Xeon VM, AVX-512: 96x112x112 0.90 -> 0.65 ms, 960x7x7 (423K work) 0.141 -> 0.113 ms).
# None: chosen by the threading layer (see _depthwise_min_work); a number (tests) overrides it.
_DEPTHWISE_PARALLEL_MIN_WORK = None


def _depthwise_min_work():
    if _DEPTHWISE_PARALLEL_MIN_WORK is not None:
        return _DEPTHWISE_PARALLEL_MIN_WORK
    return _kernels_pkg.PARALLEL_MIN_WORK if _kernels_pkg.cheap_launch() else 1 << 24
# Per-sample products narrower than this many columns are batched into one product (see _forward_core);
# measured on the Zen 5 (AVX-512) 2-core VM, as the two thresholds below.
_MIN_PRODUCT_WIDTH = 256
# ... and such small images unroll channels-last when the call has at least this many output pixels.
_CHANNELS_LAST_MIN_PIXELS = 1024
# Strided convolutions wider than this unroll through stride phases (contiguous copies) rather than
# straight from the input (strided reads): 0.18 vs 0.34 ms for the 7x7/2 stem at 224, 0.83 vs 0.48 ms at 28
# (Zen 5 VM).
_DIRECT_MAX_STRIDED_WIDTH = 32


def _zero_pad(x, pads):
    if not any(pads):
        return np.ascontiguousarray(x)
    return np.pad(x, ((0, 0), (0, 0), (pads[0], pads[1]), (pads[2], pads[3])))


def _pointwise_input(x, pads, stride, ho, wo, groups):
    """What a 1×1 convolution multiplies: the padded input at the stride's pixels, as (N, groups, C_in/groups, Ho·Wo)."""
    n, cin = x.shape[:2]
    xs = _zero_pad(x, pads)[:, :, :(ho - 1) * stride[0] + 1:stride[0], :(wo - 1) * stride[1] + 1:stride[1]]
    return np.ascontiguousarray(xs).reshape(n, groups, cin // groups, ho * wo)


def _phases(x, pads, stride, parallel=True):
    """Zero-pad (m, C, H, W) samples and split them into stride phases (m, sh*sw, C, ⌈Hp/sh⌉, ⌈Wp/sw⌉) for im2col."""
    sh, sw = stride
    m, c, h, w = x.shape
    hp, wp = h + pads[0] + pads[1], w + pads[2] + pads[3]
    shape = (m, sh * sw, c, -(-hp // sh), -(-wp // sw))
    xq = _threads.scratch("phases", int(np.prod(shape)), x.dtype).reshape(shape)
    xq.fill(0)
    kernel = _k.pad_phases.for_work(x.size) if parallel else _k.pad_phases.serial
    kernel(np.ascontiguousarray(x), pads[0], pads[2], sh, sw, xq)
    return xq


def _tiles(n, ho, per_row_bytes, budget, workers, wo=None):
    """Cut the output into im2col tiles ``(n0, n1, r0, r1)``: samples n0..n1, output rows r0..r1.

    Large images go one sample at a time in bands of rows that fit the budget;
    small ones several samples per tile, so that BLAS sees one wide product
    instead of many tiny ones.  There is a tile for every worker, except that
    fewer samples than workers are cut into bands of rows only when a band
    is at least ``_MIN_PRODUCT_WIDTH`` columns wide (``wo`` per row; None: always).
    """
    per_sample = per_row_bytes * ho
    if per_sample >= budget:
        block, rows = 1, _tile_rows(per_row_bytes, ho, budget)
    else:
        block, rows = max(1, min(n, budget // per_sample)), ho
    if -(-n // block) * -(-ho // rows) < workers:
        if n >= workers:
            block = -(-n // workers)
        elif wo is None or -(-ho // -(-workers // n)) * wo >= _MIN_PRODUCT_WIDTH:
            block, rows = 1, -(-ho // -(-workers // n))
        # else one tile, whose product the workers split by output channels: bands of a small
        # image would each read the whole weight for a few columns (ResNet-18's 512x512 3x3 at 7x7,
        # batch 1: two 28- and 21-column products took 1.7 ms)
    elif block > 1 and workers > 1:
        block = _threads.even_block(n, block, workers)  # 64 samples: 32 + 32, not 37 + 27
    return [(n0, min(n, n0 + block), r0, min(ho, r0 + rows)) for n0 in range(0, n, block) for r0 in range(0, ho, rows)]


def _unrolled(x, kernel, stride, pads, dilation, wo, tiles, parallel=True):
    """Yield ``(n0, n1, r0, r1, cols)`` for each tile: the im2col columns of those samples and output rows.

    ``cols`` is a reused buffer: use it before asking for the next tile.
    """
    cin = x.shape[1]
    kh, kw = kernel
    k_rows = cin * kh * kw
    buf = _threads.scratch("cols", k_rows * max((n1 - n0) * (r1 - r0) for n0, n1, r0, r1 in tiles) * wo, x.dtype)
    # Wide strided outputs read the input through stride phases (contiguous copies); the rest unroll
    # straight from the unpadded input (see the two kernels for the measurements).
    direct = stride[1] == 1 or wo <= _DIRECT_MAX_STRIDED_WIDTH
    x = np.ascontiguousarray(x)
    phased = None
    for n0, n1, r0, r1 in tiles:
        cols = buf[:k_rows * (n1 - n0) * (r1 - r0) * wo].reshape(k_rows, (n1 - n0) * (r1 - r0) * wo)
        # Serial: on worker threads each core unrolls its own tile; a single tile on the calling
        # thread is small, and it is the product after it that the workers share.
        if direct:
            _k.im2col_direct(x[n0:n1], kh, kw, stride[0], stride[1], dilation[0], dilation[1], pads[0], pads[2],
                             r0, r1, wo, cols)
        else:
            if phased != (n0, n1):
                xq, phased = _phases(x[n0:n1], pads, stride, parallel), (n0, n1)
            _k.im2col.serial(xq, kh, kw, stride[0], stride[1], dilation[0], dilation[1], r0, r1, wo, cols)
        yield n0, n1, r0, r1, cols


def _channels_last(n, ho, wo, groups):
    """Whether to unroll channels-last: small images (short NCHW rows) with enough pixels in all.

    The weight is reordered once per call, which only pays off over enough
    output pixels (ResNet-18's 8×512×7×7 layer: 5.9 vs 5.0 ms, so it stays NCHW).
    """
    return groups == 1 and ho * wo < _MIN_PRODUCT_WIDTH and n * ho * wo >= _CHANNELS_LAST_MIN_PIXELS


def _unrolled_nhwc(xh, kernel, stride, pads, dilation, wo, tiles):
    """:func:`_unrolled` for channels-last samples ``xh`` (N, H, W, C): yields (pixels, taps·C) ``cols``."""
    kh, kw = kernel
    k_cols = xh.shape[3] * kh * kw
    buf = _threads.scratch("cols", k_cols * max((n1 - n0) * (r1 - r0) for n0, n1, r0, r1 in tiles) * wo, xh.dtype)
    for n0, n1, r0, r1 in tiles:
        cols = buf[:k_cols * (n1 - n0) * (r1 - r0) * wo].reshape((n1 - n0) * (r1 - r0) * wo, k_cols)
        _k.im2col_nhwc(xh[n0:n1], kh, kw, stride[0], stride[1], dilation[0], dilation[1], pads[0], pads[2],
                       r0, r1, wo, cols)
        yield n0, n1, r0, r1, cols


def _run_tiles(job, tiles, workers):
    """Run ``job(tiles_part, parallel)`` over the tiles: on the calling thread, or split across worker threads."""
    if workers < 2 or len(tiles) < 2:
        return [job(tiles, True)]
    return _threads.run([lambda a=a, b=b: job(tiles[a:b], False)
                         for a, b in _threads.ranges(len(tiles), min(workers, len(tiles)))])


def _tile_rows(bytes_per_output_row, ho, budget):
    """How many output rows of one sample to unroll at once so the im2col tile fits the budget."""
    return int(max(1, min(ho, budget // max(bytes_per_output_row, 1))))


def _is_depthwise(cin, cin_g, groups):
    return cin_g == 1 and groups == cin and cin > 1


# --------------------------------------------------------------------------- cores (4-D, zero padding)


# The "NaN count" of a path that checked every output finite itself (so no NaN pass follows).
_FINITE = -1


def _forward_core(x, w, stride, pads, dilation, groups, epilogue=None, packed=None):
    """conv2d without bias on a validated 4-D input; ``pads`` are zeros (top, bottom, left, right).

    ``epilogue = (alpha, beta, lo, hi)`` maps every output channel through
    ``clamp(y·alpha[c] + beta[c], lo, hi)`` as soon as each tile is computed.
    ``packed``: a dict the caller keeps with a weight that does not change
    between calls (an ONNX initializer), where the weight's transforms are
    kept after their first use (see :func:`._winograd.forward`).
    """
    if _cl.is_channels_last(x):
        # a channels-last input gets a channels-last output, as in PyTorch (see _conv_channels_last)
        out = _cl.forward(x, w, stride, pads, dilation, groups, epilogue, packed)
        if out is not None:
            return out
        return _cl.to_channels_last(_forward_core(_cl.from_channels_last(x), w, stride, pads, dilation, groups,
                                                  epilogue, packed))
    out, nans = _forward_paths(x, w, stride, pads, dilation, groups, epilogue, packed)
    # Both repairs below start from a NaN: a non-finite weight tap on the zero padding gives
    # inf·0 = NaN there, and float32 overflow gives inf − inf = NaN.  With an epilogue the NaNs were
    # counted in its pass; otherwise one BLAS pass looks.  (Checking the border first on every call,
    # as before, took 0.7 ms of a mobilenet_v2 batch-1 forward under cProfile, and the separate NaN
    # pass 0.16 ms of a 1.0 ms 16->96 1x1 at 112x112.)
    counted = epilogue is not None or nans == _FINITE
    if not out.size or not (nans > 0 if counted else _has_nan(out)):
        return out
    if any(pads) and not _border_finite(out, x.shape[2:], w.shape[2:], stride, pads, dilation) \
            and not np.isfinite(w).all():
        out = _forward_nonfinite_weight(x, w, stride, pads, dilation, groups, epilogue)
    if out.dtype == np.float32 and _has_nan(out):
        _overflow_as_inf(out, x, w, stride, pads, dilation, groups, epilogue)
    return out


# Weights up to this many elements are packed for the implicit product on every call (see _implicit_route).
_IMPLICIT_MAX_WEIGHT = 1 << 18
# NCHW 1x1 products through gemm_rows only up to this many input channels: its one running sum per output
# drifts further than BLAS's blocked sums over long ones -- torchvision's pretrained mobilenet_v2 on the cat,
# logits against PyTorch: 7.9e-6 with the 576- and 960-channel projections left to BLAS, 1.03e-5 with them
# here (PyTorch's own float32 logits are 8.2e-6 from float64's).  The memory-bound layers gemm_rows is for
# are the narrow ones.
_ROWS_MAX_K = 256


def _scratch_alloc(shape, dtype):
    """A channels-last result buffer in this thread's scratch (it never leaves the call)."""
    return _threads.scratch("implicit_result", int(np.prod(shape)), dtype).reshape(shape)


def _implicit_route(x, w, stride, dilation, groups, ho, wo):
    """Whether an NCHW float32 k×k convolution runs as the channels-last implicit product.

    Measured (2 threads, 2-core Intel Xeon VM, AVX-512), current path → this one, ms:

    * strided, with >= 4096 output pixels: 8x64->128 3x3/2 @56 3.96 -> 3.36 (PyTorch 2.80); with few
      pixels the weights, packed on every call, cost more than they save (1x256->512 /2 @14: 0.68 -> 2.34);
    * stride 1 on images up to 16x16, where Winograd has few tiles (alternating with it in one process,
      three processes: 64x48->96 @8x8 1.94 -> 1.16-1.25, 16x128->128 @14 3.12-3.25 -> 2.70-2.79,
      32x64->64 @14 2.05 -> 1.72), and wherever Winograd does not apply, replacing im2col (64x96->192
      @4x4 1.70 -> 1.32, 8x64->64 5x5 @28 6.30 -> 3.76, 4x32->32 7x7 @28 2.62 -> 1.12); the digits
      CNN's training step 20.5 -> 18.0 ms; not with wide weights, whose Winograd savings win
      (16x256->256 @14 9.61 vs 11.76, @8 3.76 vs 4.19, 8x512->512 @7 6.48 vs 10.65), nor on large images
      (8x64->64 @56 4.00 vs 5.67) or with under 1024 output pixels;
    * 3-channel stems keep their path (8x3->64 7x7/2 @224 9.7 vs 15.4: windows too short for the product),
      except on small images at stride 1, where the channels-last unroll + BLAS it replaces had the
      per-call costs (the digits CNN's 64x1->48 3x3 @8x8 0.30 -> 0.135, 64x3->32 @8x8 0.33 -> 0.125;
      still lost at 64x1->32 @28, 0.84 vs 0.94).

    With a weight the caller keeps (``packed``), the channels-last plan takes 3×3 stride-1 layers of 32-256
    channels by fused Winograd blocks (``_winograd_nhwc``; 64x96->96 @8x8 3.55 -> 1.99 ms against the
    implicit product there); without, the implicit product (the transform redone every call lost).

    This VM runs some kernels at two speeds minutes apart (the implicit product on 64x48->96 @8x8 took
    1.2 and 2.1 ms in runs of the same script): the figures above are pairs timed alternately.
    """
    if not (x.dtype == np.float32 and w.dtype == np.float32 and groups == 1 and w.shape[2] * w.shape[3] > 1
            and dilation[1] == 1 and x.flags.c_contiguous):
        return False
    if x.shape[1] < 16 and not (tuple(stride) == (1, 1) and ho * wo <= 256):
        return False
    pixels = x.shape[0] * ho * wo
    if tuple(stride) != (1, 1):
        return pixels >= 4096
    return (ho * wo <= 256 or not _winograd.applies(x.shape, w.shape, stride, dilation, groups)) \
        and pixels >= 1024 and w.size <= _IMPLICIT_MAX_WEIGHT


def _has_nan(out):
    """Whether the contiguous array ``out`` holds a NaN.

    NaN ⇔ NaN in out·out (a square is never −inf, so no inf − inf): one BLAS
    pass, 0.09 ms for 1.6M floats against 0.77 ms for ``np.isnan(out).any()``.
    """
    flat = out.reshape(-1)
    return bool(np.isnan(np.dot(flat, flat)))


def _overflow_as_inf(out, x, w, stride, pads, dilation, groups, epilogue):
    """Replace, in place, the NaNs that float32 overflow made from finite data by PyTorch's ±inf.

    BLAS and the vectorised kernels add several partial sums; when one
    overflows to +inf and another to −inf their sum is NaN, where PyTorch's
    one running sum stays at ±inf.  Those outputs are recomputed in float64
    (where they cannot overflow) and rounded to float32: ±inf beyond its range.
    NaNs that come from NaN or infinite data are left alone.
    """
    if not (np.isfinite(x).all() and np.isfinite(w).all()):
        return
    nan = np.isnan(out)
    if epilogue is not None:
        epilogue = tuple(np.asarray(e, dtype=np.float64) for e in epilogue)
    with np.errstate(over="ignore", invalid="ignore"):
        exact = _forward_paths(x.astype(np.float64), w.astype(np.float64), stride, pads, dilation, groups,
                               epilogue)[0]
        out[nan] = exact[nan].astype(np.float32)


def _border_finite(out, hw, k, stride, pads, dilation):
    """Whether every output a kernel tap computes from the zero padding is finite.

    Only there can a NaN or infinite weight tap multiply a padding zero (NaN);
    checking these few rows and columns costs ~30 µs for 8×64×56×56, where
    checking the weight for NaN would cost milliseconds per ResNet forward.
    """
    ho, wo = out.shape[2:]
    top, left = min(ho, -(-pads[0] // stride[0])), min(wo, -(-pads[2] // stride[1]))
    bottom = min(ho, max(top, -(-(hw[0] + pads[0] - dilation[0] * (k[0] - 1)) // stride[0])))
    right = min(wo, max(left, -(-(hw[1] + pads[2] - dilation[1] * (k[1] - 1)) // stride[1])))
    return all(np.isfinite(part).all() for part in (out[:, :, :top], out[:, :, bottom:],
                                                     out[:, :, top:bottom, :left], out[:, :, top:bottom, right:]))


def _forward_nonfinite_weight(x, w, stride, pads, dilation, groups, epilogue):
    """:func:`_forward_core` for a weight with NaN/±inf taps, as PyTorch computes it: tap by tap.

    The fast paths multiply every tap with the zero padding too, so one NaN
    tap made its whole output channel NaN; PyTorch's (float32) kernels skip
    the padding, and a NaN reaches only the outputs whose window puts that tap
    on the input.  Here the finite taps go through the fast paths (a zero in
    place of each bad one) and each bad tap is added only where it lands on
    the input.  (A ±inf tap meeting an infinite input gives NaN here through
    the zero that stands in for it, where PyTorch may give ±inf.)
    """
    bad = ~np.isfinite(w)
    out = _forward_paths(x, np.where(bad, 0, w), stride, pads, dilation, groups, None)[0]
    n, cout, ho, wo = out.shape
    x_finite = np.isfinite(x).all()
    with np.errstate(invalid="ignore", over="ignore"):  # inf − inf and overflow are the answer here, as in torch
        _add_bad_taps(out, x, w, bad, stride, pads, dilation, groups, x_finite)
    if epilogue is not None:
        _apply_epilogue(out.reshape(n, cout, ho * wo), epilogue, True)
    return out


def _add_bad_taps(out, x, w, bad, stride, pads, dilation, groups, x_finite):
    n, cin, h, wd = x.shape
    cout, cin_g, kh, kw = w.shape
    cout_g = cout // groups
    ho, wo = out.shape[2:]
    for ki in range(kh):
        for kj in range(kw):
            taps = bad[:, :, ki, kj]
            if not taps.any():
                continue
            oy, ox = ki * dilation[0] - pads[0], kj * dilation[1] - pads[2]  # input offset of this tap
            i0, i1 = max(0, -(oy // stride[0])), min(ho, (h - 1 - oy) // stride[0] + 1)
            j0, j1 = max(0, -(ox // stride[1])), min(wo, (wd - 1 - ox) // stride[1] + 1)
            if i0 >= i1 or j0 >= j1:
                continue
            xv = x[:, :, i0 * stride[0] + oy:(i1 - 1) * stride[0] + oy + 1:stride[0],
                   j0 * stride[1] + ox:(j1 - 1) * stride[1] + ox + 1:stride[1]]
            dst = out[:, :, i0:i1, j0:j1]
            if x_finite:  # a product per group: the zeros beside the bad taps multiply finite inputs only
                wb = np.where(taps, w[:, :, ki, kj], 0).reshape(groups, cout_g, cin_g)
                xg = xv.reshape(n, groups, cin_g, -1)
                dst += np.matmul(wb, xg).reshape(dst.shape)
            else:  # bad tap by bad tap, so that no stand-in zero meets an infinite input
                for co, cg in zip(*np.nonzero(taps)):
                    dst[:, co] += w[co, cg, ki, kj] * xv[:, (co // cout_g) * cin_g + cg]


def _forward_paths(x, w, stride, pads, dilation, groups, epilogue, packed=None):
    """The fast paths of :func:`_forward_core` (depthwise, 1×1, im2col NCHW or channels-last).

    Returns ``(out, nans)``: the NaN count the epilogue's pass found (0 without an epilogue: not counted),
    or ``_FINITE`` when the path checked that every output is finite.
    """
    n, cin, h, wd = x.shape
    cout, cin_g, kh, kw = w.shape
    ho, wo = out_hw((h, wd), pads, (kh, kw), stride, dilation)
    out = np.empty((n, cout, ho, wo), dtype=x.dtype)
    if n == 0 or cout == 0:
        return out, 0
    if _is_depthwise(cin, cin_g, groups):
        w3 = np.ascontiguousarray(w.reshape(cout, kh, kw))
        kernel = _k.depthwise_forward.for_work(out.size * kh * kw, _depthwise_min_work())
        none = np.empty(0, dtype=x.dtype)
        alpha, beta, lo, hi = epilogue if epilogue is not None else (none, none, 0, 0)
        nans = kernel(np.ascontiguousarray(x), w3, pads[0], pads[2], h + pads[0] + pads[1],
                      wd + pads[2] + pads[3], stride[0], stride[1], dilation[0], dilation[1], out, alpha, beta,
                      x.dtype.type(lo), x.dtype.type(hi), epilogue is not None)
        return out, nans
    cout_g = cout // groups
    wg = w.reshape(groups, cout_g, cin_g * kh * kw)
    if kh == 1 and kw == 1:
        xs = _pointwise_input(x, pads, stride, ho, wo, groups)
        return out, _pointwise_forward(wg, xs, out.reshape(n, groups, cout_g, ho * wo), epilogue)
    if _implicit_route(x, w, stride, dilation, groups, ho, wo):
        # The channels-last implicit product (see _implicit_route for when): its zero-padding copy reads the
        # NCHW input directly (the transpose is free there), and one blocked copy brings the output back.
        # The channels-last result lives in this thread's scratch and goes straight into ``out``: two fresh
        # 3.2 MB buffers a call (the result and its NCHW copy) cost 1 ms of first-touched pages here (8x64->128
        # 3x3/2 @56: 5.5 -> 3.6 ms in a loop of its own), as the one output PyTorch allocates costs it.
        run = _cl.plan(x.shape, x.dtype, w, stride, pads, dilation, groups, epilogue, packed)
        y = run(x, _scratch_alloc) if run is not None else None
        if y is not None:  # None: a NaN in the output, which the paths below place as PyTorch does
            return _cl.copy_to_nchw(y, out), _FINITE
    if _winograd.applies(x.shape, w.shape, stride, dilation, groups):
        fast = _winograd.forward(x, w, pads, epilogue, packed)
        if fast is not None:  # None: too few tiles, or a non-finite value that im2col must place
            return fast, _FINITE
    # A small convolution stays on the calling thread: the digits CNN's 64x1x8x8 -> 48 stem (1.8M
    # multiply-adds) took 0.48 ms split over two workers, almost all of it the hand-off.
    workers = _threads.workers_for(n * cout * ho * wo * cin_g * kh * kw)
    if cin * kh * kw * wo * x.dtype.itemsize > _budget(workers) and wo >= 2 * _MIN_PRODUCT_WIDTH:
        return out, _forward_row_bands(x, wg, out, (kh, kw), stride, pads, dilation, epilogue, workers)
    blas_threads = _leave_threads_to_blas(n, workers)
    if blas_threads:
        workers = 1
    tiles = _tiles(n, ho, cin * kh * kw * wo * x.dtype.itemsize, _budget(workers), workers, wo)
    if _channels_last(n, ho, wo, groups):
        # small images: unroll channels-last, (pixels, taps·C_in) @ (taps·C_in, C_out), then back to NCHW
        xh = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        wt = _layout.taps_channels_out(w)

        def job(part, parallel):
            matmul = _product(parallel, blas_threads)
            nans = 0
            for n0, n1, r0, r1, cols in _unrolled_nhwc(xh, (kh, kw), stride, pads, dilation, wo, part):
                m, rows = n1 - n0, r1 - r0
                prod = matmul(cols, wt, out=_threads.scratch("product", cols.shape[0] * cout, cols.dtype)
                              .reshape(cols.shape[0], cout))
                dst = out[n0:n1, :, r0:r1, :]
                dst[...] = prod.reshape(m, rows, wo, cout).transpose(0, 3, 1, 2)
                nans += _apply_epilogue(dst.reshape(m, cout, rows * wo, copy=False), epilogue, parallel)
            return nans

        return out, sum(_run_tiles(job, tiles, workers))

    def job(part, parallel):
        matmul = _product(parallel, blas_threads)
        nans = 0
        for n0, n1, r0, r1, cols in _unrolled(x, (kh, kw), stride, pads, dilation, wo, part, parallel):
            m, rows = n1 - n0, r1 - r0
            dst = out[n0:n1, :, r0:r1, :].reshape(m, groups, cout_g, rows * wo, copy=False)
            if m == 1 or rows * wo >= _MIN_PRODUCT_WIDTH:
                # (groups, K_g, samples, rows·Wo) columns against the (samples, groups, C_out/g, rows·Wo)
                # output: both views are BLAS-ready, one product per sample lands in place.
                colg = cols.reshape(groups, cin_g * kh * kw, m, rows * wo).transpose(2, 0, 1, 3)
                matmul(wg, colg, out=dst)
            else:
                # Small images: one wide product for the whole block, then a transposing copy; one
                # product per sample would be 4x4 = 16 columns wide (1.1 vs 0.45 ms for 32x96x4x4 -> 192).
                prod = matmul(wg, cols.reshape(groups, cin_g * kh * kw, m * rows * wo))
                dst[...] = prod.reshape(groups, cout_g, m, rows * wo).transpose(2, 0, 1, 3)
            nans += _apply_epilogue(dst.reshape(m, cout, rows * wo, copy=False), epilogue, parallel)
        return nans

    return out, sum(_run_tiles(job, tiles, workers))


def _forward_row_bands(x, wg, out, kernel, stride, pads, dilation, epilogue, workers):
    """The im2col path for output rows too long for one tile (1-D signals): bands of columns of a row.

    A whole 16000-sample row of a 64-channel, 9-tap conv1d unrolls to 37 MB of columns, which the
    product then streams from memory; bands of the tile budget stay in cache (8x64x16000, k=9, 2-core
    Intel Xeon VM: 67 -> 42 ms; bands of 512 to 4096 columns did alike).  Returns the epilogue's NaN count.
    """
    n, cin = x.shape[:2]
    groups, cout_g, k_g = wg.shape
    ho, wo = out.shape[2:]
    kh, kw = kernel
    k_rows = cin * kh * kw
    band = max(_MIN_PRODUCT_WIDTH, _budget(workers) // (k_rows * x.dtype.itemsize))
    x = np.ascontiguousarray(x)
    tiles = [(s, r, c0, min(wo, c0 + band)) for s in range(n) for r in range(ho) for c0 in range(0, wo, band)]

    def job(part, parallel):
        matmul = _product(parallel, False)
        cols = _threads.scratch("cols", k_rows * band, x.dtype)
        nans = 0
        for s, r, c0, c1 in part:
            b = c1 - c0
            cv = cols[:k_rows * b].reshape(k_rows, b)
            # the band as a narrower output: its first column's input offset moves the left padding
            _k.im2col_direct(x[s:s + 1], kh, kw, stride[0], stride[1], dilation[0], dilation[1], pads[0],
                             pads[2] - c0 * stride[1], r, r + 1, b, cv)
            dst = out[s, :, r, c0:c1]
            matmul(wg, cv.reshape(groups, k_g, b), out=dst.reshape(groups, cout_g, b))
            nans += _apply_epilogue(dst.reshape(1, groups * cout_g, b), epilogue, parallel)
        return nans

    return sum(_run_tiles(job, tiles, workers))


def _leave_threads_to_blas(n, workers):
    """Whether a forward with ``n`` samples multiplies with BLAS's own threads rather than on worker threads.

    With fewer samples than workers there is no whole sample for every worker:
    the calling thread then unrolls alone and BLAS splits each product over its
    threads.  Measured on the 2-core Intel Xeon VM (AVX-512, OpenBLAS SkylakeX),
    whole ONNX models at 2 threads: batch 1 mobilenet_v2 17.6 -> 13.6 ms and
    resnet18 33.2 -> 29.5 ms; at batch 8 it lost (77.8 -> 106 and 173 -> 203 ms),
    so batches keep the worker tiles.  (Python worker threads beside numba's
    tbb workers also ran a 3x3 64@56 conv followed by a depthwise one in 3.0 ms
    against 1.8 + 0.2 ms apart; BLAS's threads beside them: 2.0 ms.)
    """
    return workers > 1 and n < workers


def _product(parallel, blas_threads):
    """The matrix product a tile job uses: BLAS's own threads, split over workers, or one thread."""
    if blas_threads:
        return _threads.blas_matmul
    return _threads.matmul if parallel else np.matmul


def _pointwise_forward(wg, xs, out, epilogue):
    """``out = wg @ xs`` for a 1×1 convolution, (N, groups, C_out/g, L), then the epilogue; split by samples.

    Returns the epilogue's NaN count, or without an epilogue ``_FINITE`` when every output is finite
    (else 1).  Each worker looks for NaNs in its own samples right after their product, while they are
    still in its cache: one pass over the whole output afterwards took 0.10 ms of a 1.0 ms 8x64->32 1x1
    at 56x56 (2-core Intel Xeon VM).
    """
    n, groups, cout_g, length = out.shape
    if groups == 1 and out.dtype == np.float32 and wg.dtype == np.float32 and xs.dtype == np.float32 \
            and wg.shape[-1] <= _ROWS_MAX_K:
        # The register-blocked GEMM reads the NCHW samples in place as its panels (no packing) and applies
        # the epilogue per output channel before its stores: 8x64->32 @56 0.98 -> 0.55-0.61 ms (PyTorch
        # 0.72; OpenBLAS's packed product streams this memory-bound layer at ~9 GB/s), 2 threads, 2-core
        # Intel Xeon VM (AVX-512).
        if epilogue is None:
            alpha, beta = np.ones(cout_g, np.float32), np.zeros(cout_g, np.float32)
            lo, hi = -np.inf, np.inf
        else:
            alpha, beta, lo, hi = epilogue
        kernel = _gemm.gemm_rows.for_work(out.size * wg.shape[-1], _cl._parallel_min_macs())
        nans = kernel(np.ascontiguousarray(wg[0]), np.ascontiguousarray(xs[:, 0]), out[:, 0],
                      np.ascontiguousarray(alpha, np.float32), np.ascontiguousarray(beta, np.float32),
                      np.float32(lo), np.float32(hi))
        return nans if nans or epilogue is not None else _FINITE

    def checked(y, parallel):
        y = y.reshape(y.shape[0], groups * cout_g, length)
        return _apply_epilogue(y, epilogue, parallel) if epilogue is not None else int(_has_nan(y))

    def result(count):
        return count if count or epilogue is not None else _FINITE

    workers = _threads.worker_count()
    if _leave_threads_to_blas(n, workers):
        _threads.blas_matmul(wg, xs, out=out)
        return result(checked(out, True))
    if _threads.workers_for(out.size * wg.shape[-1]) < 2:
        _threads.matmul(wg, xs, out=out)
        return result(checked(out, True))

    def job(a, b):
        np.matmul(wg, xs[a:b], out=out[a:b])
        return checked(out[a:b], False)

    return result(sum(_threads.run([lambda a=a, b=b: job(a, b) for a, b in _threads.ranges(n, workers)])))


def _apply_epilogue(y, epilogue, parallel):
    """Apply ``(alpha, beta, lo, hi)`` in place to the (N, C, L) view ``y``; the NaN count (0 for no epilogue)."""
    if epilogue is None or y.size == 0:
        return 0
    # an elementwise pass: a parallel launch only pays from ~2M elements (as for batch norm's kernels)
    kernel = _norm_k.affine_clamp.for_work(y.size, 1 << 21) if parallel else _norm_k.affine_clamp.serial
    return kernel(y, *epilogue)


@functools.lru_cache(maxsize=1)
def _machine_budgets():
    """(calling-thread, per-worker) tile bytes for this machine: the Zen 5 VM's 8 MiB and 2 MiB, scaled.

    The calling thread's tile follows the L3 (a quarter of it, as 8 of 32 MiB there), at least 2 MiB and at
    most 8 MiB (above that the peak memory passes PyTorch's); a worker's follows its core's L2 (twice it, as
    2 MiB for 1 MiB there), between 512 KiB and 4 MiB.  Unknown caches keep the measured sizes.
    """
    from .. import _machine
    return (_machine.scale_to_cache(8 * 2**20, "l3", 32 * 2**20, 2 * 2**20, 8 * 2**20),
            _machine.scale_to_cache(2 * 2**20, "l2", 2**20, 2**19, 4 * 2**20))


def _budget(workers):
    """Bytes of im2col columns per tile: one L3-sized tile at a time, or an L2-sized tile per worker thread."""
    if workers < 2:
        return _COLS_BUDGET_BYTES if _COLS_BUDGET_BYTES is not None else _machine_budgets()[0]
    return _WORKER_COLS_BUDGET_BYTES if _WORKER_COLS_BUDGET_BYTES is not None else _machine_budgets()[1]


# --------------------------------------------------------------------------- fused inference


def conv2d_affine(input, weight, bias, stride, padding, dilation, groups, padding_mode, scale, shift,
                  lo=-np.inf, hi=np.inf, *, packed=None):
    """``clamp(conv2d(input, weight, bias, ...)·scale[c] + shift[c], lo, hi)`` in one pass over the output.

    Inference of a Conv → BatchNorm (evaluation) → ReLU/ReLU6 block: the
    per-channel map is applied to each output tile as soon as BLAS has
    written it, while it is still in cache, instead of in two more passes over
    the whole output.  Same validation and arguments as :func:`conv2d`
    (all given, positionally); ``scale`` and ``shift`` have shape (C_out,).
    ``packed``: a dict kept by a caller whose weight never changes between
    calls (an ONNX model's constant), where transformed weights are cached.

    Shape: ``H_out = ⌊(H + 2p − d(k−1) − 1)/s⌋ + 1``, as :func:`conv2d`.

    Examples
    --------
    >>> import numpy as np
    >>> x, w = np.ones((1, 2, 4, 4)), np.ones((3, 2, 3, 3))
    >>> y = conv2d_affine(x, w, None, 1, 1, 1, 1, "zeros", np.full(3, 0.5), np.full(3, -4.0), 0.0, 6.0)
    >>> y[0, 0]                     # clamp(conv·0.5 − 4, 0, 6): corners see 8 ones, the middle 18
    array([[0., 2., 2., 0.],
           [2., 5., 5., 2.],
           [2., 5., 5., 2.],
           [0., 2., 2., 0.]])
    """
    from .convolution import explicit_padding, keep_layout  # the public module imports this one

    x4, w, b, unbatched, stride, pads, dilation, groups, mode, dtype, _ = conv_args(
        "conv2d", 2, input, weight, bias, stride, padding, dilation, groups, padding_mode)
    scale = np.asarray(scale, dtype=dtype)
    shift = np.asarray(shift, dtype=dtype)
    if scale.shape != (w.shape[0],) or shift.shape != (w.shape[0],):
        raise ValueError(f"conv2d_affine: scale and shift must have shape ({w.shape[0]},), "
                         f"got {scale.shape} and {shift.shape}")
    if b is not None:
        shift = shift + b.astype(dtype) * scale
    given = x4.astype(dtype, copy=False)
    x4, pads = explicit_padding(given, pads, mode)
    epilogue = (scale, shift, dtype.type(lo), dtype.type(hi))
    out = _forward_core(x4, w.astype(dtype, copy=False), stride, pads, dilation, groups, epilogue, packed)
    out = keep_layout(given, x4, out)
    return out[0] if unbatched else out

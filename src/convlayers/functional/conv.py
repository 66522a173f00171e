"""Convolution: ``conv2d``, ``conv_transpose2d`` and their gradients.

Algorithm choice lives here, not in the kernels:

* one input channel per group (depthwise, with or without a channel
  multiplier): a direct numba loop, since there is no channel mixing;
* 1×1 kernels: a strided view and one BLAS product, no unrolling;
* everything else: ``im2col`` into a buffer of bounded size (several small
  samples, or one large sample in bands of output rows, at a time) and one
  BLAS product per group; small images (under 256 output pixels, groups=1)
  unroll channels-last instead, a whole channel vector per tap.

With several threads, the tiles are shared out among worker threads that each
unroll a tile and multiply it with one-thread BLAS (``_threads``): BLAS's own
idle threads would otherwise spin beside the unrolling and slow it 3–5×.

``conv_transpose2d`` is the adjoint of ``conv2d`` with respect to its input,
so both directions share the same three paths.
"""

from __future__ import annotations

import numpy as np

from .._dispatch import tensor_aware
from .._kernels import conv as _k
from .._kernels import norm as _norm_k
from . import _threads
from ._validate import (as_array, batched, check_int, check_window_fits, float_dtype, nonneg_pair,
                        positive_pair)
from .padding import pad as _pad
from .padding import pad_backward as _pad_backward

__all__ = ["conv2d", "conv_transpose2d", "conv2d_backward", "conv_transpose2d_backward"]

# Upper bound on the im2col tile (several small samples, or one large sample in
# bands of output rows), so that peak memory stays near PyTorch's: measured 10 MiB
# vs PyTorch's 13 MiB for 8x64x56x56 3x3.  On the calling thread alone, whole-sample
# tiles beat bands of rows (10.6 vs 12.3 ms), hence 8 MiB; a worker thread unrolls
# and multiplies its own tile, which should stay in its core's 2 MiB L2 cache.
_COLS_BUDGET_BYTES = 8 * 2**20
_WORKER_COLS_BUDGET_BYTES = 2 * 2**20
# Depthwise work (outputs x taps) below which the kernel runs on the calling thread: a parallel
# launch costs ~0.1 ms here, more than mobilenet_v2's batch-1 layers take serially.
_DEPTHWISE_PARALLEL_MIN_WORK = 1 << 24
# Per-sample products narrower than this many columns are batched into one product (see _forward_core).
_MIN_PRODUCT_WIDTH = 256
# ... and such small images unroll channels-last when the call has at least this many output pixels.
_CHANNELS_LAST_MIN_PIXELS = 1024
# Strided convolutions wider than this unroll through stride phases (contiguous copies) rather than
# straight from the input (strided reads): 0.18 vs 0.34 ms for the 7x7/2 stem at 224, 0.83 vs 0.48 ms at 28.
_DIRECT_MAX_STRIDED_WIDTH = 32
_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


# --------------------------------------------------------------------------- validation


def _conv_args(op, input, weight, bias, stride, padding, dilation, groups, padding_mode="zeros"):
    """Validate a conv2d call; return arrays and normalised geometry.

    Returns ``(x4, w, b, unbatched, stride, pads, dilation, groups, mode, dtype)``
    with ``pads = (top, bottom, left, right)``.
    """
    x = as_array(input, "input")
    w = as_array(weight, "weight")
    b = None if bias is None else as_array(bias, "bias")
    x4, unbatched = batched(x, "input", op)
    if w.ndim != 4:
        raise ValueError(f"{op}: weight must be 4-D (out_channels, in_channels/groups, kH, kW), "
                         f"got shape {w.shape}")
    groups = check_int(groups, "groups", op)
    stride = positive_pair(stride, "stride", op)
    dilation = positive_pair(dilation, "dilation", op)
    if padding_mode not in _PADDING_MODES:
        raise ValueError(f"{op}: padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
    cout, cin_g, kh, kw = w.shape
    cin = x4.shape[1]
    if cout % groups:
        raise ValueError(f"{op}: out_channels (weight.shape[0]={cout}) must be divisible by groups={groups}")
    if cin % groups:
        raise ValueError(f"{op}: in_channels (input.shape[1]={cin}) must be divisible by groups={groups}")
    if cin != cin_g * groups:
        raise ValueError(
            f"{op}: expected input with {cin_g * groups} channels (weight.shape[1]={cin_g} * groups={groups}), "
            f"got input of shape {x.shape} with {cin} channels")
    if kh == 0 or kw == 0:
        raise ValueError(f"{op}: weight has an empty kernel, shape {w.shape}")
    if cin == 0:  # PyTorch returns an (N, 0, H_out, W_out) array here, whatever out_channels is
        raise ValueError(f"{op}: input has no channels (shape {x.shape}); need in_channels >= 1")
    if b is not None and b.shape != (cout,):
        raise ValueError(f"{op}: bias must have shape ({cout},) to match weight.shape[0], got {b.shape}")
    if isinstance(padding, str):
        if padding == "valid":
            pads = (0, 0, 0, 0)
        elif padding == "same":
            if stride != (1, 1):
                raise ValueError(f"{op}: padding='same' is not supported for strided convolutions, got stride={stride}")
            # PyTorch: total d(k-1), the odd one out goes to the bottom/right.
            th, tw = dilation[0] * (kh - 1), dilation[1] * (kw - 1)
            pads = (th // 2, th - th // 2, tw // 2, tw - tw // 2)
        else:
            raise ValueError(f"{op}: padding must be an int, a pair of ints, 'same' or 'valid', got {padding!r}")
    else:
        ph, pw = nonneg_pair(padding, "padding", op)
        pads = (ph, ph, pw, pw)
    check_window_fits(op, x4.shape[2:], pads, (kh, kw), dilation)
    dtype = float_dtype(x, w, b)
    return x4, w, b, unbatched, stride, pads, dilation, groups, padding_mode, dtype


def _out_hw(hw, pads, k, stride, dilation):
    ho = (hw[0] + pads[0] + pads[1] - dilation[0] * (k[0] - 1) - 1) // stride[0] + 1
    wo = (hw[1] + pads[2] + pads[3] - dilation[1] * (k[1] - 1) - 1) // stride[1] + 1
    return ho, wo


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
        # as many sample blocks for every worker, of nearly equal size (64 samples: 32 + 32, not 37 + 27)
        blocks = -(-(-(-n // block)) // workers) * workers
        block = -(-n // blocks)
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
    parts = min(workers, len(tiles))
    bounds = [len(tiles) * i // parts for i in range(parts + 1)]
    return _threads.run([lambda a=a, b=b: job(tiles[a:b], False) for a, b in zip(bounds, bounds[1:])])


def _tile_rows(bytes_per_output_row, ho, budget):
    """How many output rows of one sample to unroll at once so the im2col tile fits the budget."""
    return int(max(1, min(ho, budget // max(bytes_per_output_row, 1))))


def _is_depthwise(cin, cin_g, groups):
    return cin_g == 1 and groups == cin and cin > 1


# --------------------------------------------------------------------------- cores (4-D, zero padding)


def _forward_core(x, w, stride, pads, dilation, groups, epilogue=None):
    """conv2d without bias on a validated 4-D input; ``pads`` are zeros (top, bottom, left, right).

    ``epilogue = (alpha, beta, lo, hi)`` maps every output channel through
    ``clamp(y·alpha[c] + beta[c], lo, hi)`` as soon as each tile is computed.
    """
    out = _forward_paths(x, w, stride, pads, dilation, groups, epilogue)
    if any(pads) and not _border_finite(out, x.shape[2:], w.shape[2:], stride, pads, dilation) \
            and not np.isfinite(w).all():
        out = _forward_nonfinite_weight(x, w, stride, pads, dilation, groups, epilogue)
    if out.dtype == np.float32 and out.size and _has_nan(out):
        _overflow_as_inf(out, x, w, stride, pads, dilation, groups, epilogue)
    return out


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
        exact = _forward_paths(x.astype(np.float64), w.astype(np.float64), stride, pads, dilation, groups, epilogue)
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
    out = _forward_paths(x, np.where(bad, 0, w), stride, pads, dilation, groups, None)
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


def _forward_paths(x, w, stride, pads, dilation, groups, epilogue):
    """The fast paths of :func:`_forward_core` (depthwise, 1×1, im2col NCHW or channels-last)."""
    n, cin, h, wd = x.shape
    cout, cin_g, kh, kw = w.shape
    ho, wo = _out_hw((h, wd), pads, (kh, kw), stride, dilation)
    out = np.empty((n, cout, ho, wo), dtype=x.dtype)
    if n == 0 or cout == 0:
        return out
    if _is_depthwise(cin, cin_g, groups):
        w3 = np.ascontiguousarray(w.reshape(cout, kh, kw))
        kernel = _k.depthwise_forward.for_work(out.size * kh * kw, _DEPTHWISE_PARALLEL_MIN_WORK)
        none = np.empty(0, dtype=x.dtype)
        alpha, beta, lo, hi = epilogue if epilogue is not None else (none, none, 0, 0)
        kernel(np.ascontiguousarray(x), w3, pads[0], pads[2], h + pads[0] + pads[1], wd + pads[2] + pads[3],
               stride[0], stride[1], dilation[0], dilation[1], out, alpha, beta, x.dtype.type(lo),
               x.dtype.type(hi), epilogue is not None)
        return out
    cout_g = cout // groups
    wg = w.reshape(groups, cout_g, cin_g * kh * kw)
    if kh == 1 and kw == 1:
        xs = _pointwise_input(x, pads, stride, ho, wo, groups)
        _pointwise_forward(wg, xs, out.reshape(n, groups, cout_g, ho * wo), epilogue)
        return out
    workers = _threads.worker_count()
    tiles = _tiles(n, ho, cin * kh * kw * wo * x.dtype.itemsize, _budget(workers), workers, wo)
    if _channels_last(n, ho, wo, groups):
        # small images: unroll channels-last, (pixels, taps·C_in) @ (taps·C_in, C_out), then back to NCHW
        xh = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        wt = np.ascontiguousarray(w.transpose(2, 3, 1, 0)).reshape(kh * kw * cin, cout)

        def job(part, parallel):
            matmul = _threads.matmul if parallel else np.matmul
            for n0, n1, r0, r1, cols in _unrolled_nhwc(xh, (kh, kw), stride, pads, dilation, wo, part):
                m, rows = n1 - n0, r1 - r0
                prod = matmul(cols, wt, out=_threads.scratch("product", cols.shape[0] * cout, cols.dtype)
                              .reshape(cols.shape[0], cout))
                dst = out[n0:n1, :, r0:r1, :]
                dst[...] = prod.reshape(m, rows, wo, cout).transpose(0, 3, 1, 2)
                _apply_epilogue(dst.reshape(m, cout, rows * wo, copy=False), epilogue, parallel)

        _run_tiles(job, tiles, workers)
        return out

    def job(part, parallel):
        matmul = _threads.matmul if parallel else np.matmul
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
            _apply_epilogue(dst.reshape(m, cout, rows * wo, copy=False), epilogue, parallel)

    _run_tiles(job, tiles, workers)
    return out


def _pointwise_forward(wg, xs, out, epilogue):
    """``out = wg @ xs`` for a 1×1 convolution, (N, groups, C_out/g, L), then the epilogue; split by samples."""
    n, groups, cout_g, length = out.shape
    workers = _threads.worker_count()
    if workers < 2 or n < workers or out.size * wg.shape[-1] < _threads._SPLIT_MIN_MACS:
        _threads.matmul(wg, xs, out=out)
        _apply_epilogue(out.reshape(n, groups * cout_g, length), epilogue, True)
        return

    def job(a, b):
        np.matmul(wg, xs[a:b], out=out[a:b])
        _apply_epilogue(out[a:b].reshape(b - a, groups * cout_g, length), epilogue, False)

    bounds = [n * i // workers for i in range(workers + 1)]
    _threads.run([lambda a=a, b=b: job(a, b) for a, b in zip(bounds, bounds[1:])])


def _apply_epilogue(y, epilogue, parallel):
    """Apply ``(alpha, beta, lo, hi)`` in place to the (N, C, L) view ``y`` (no-op for None)."""
    if epilogue is None or y.size == 0:
        return
    # an elementwise pass: a parallel launch only pays from ~2M elements (as for batch norm's kernels)
    kernel = _norm_k.affine_clamp.for_work(y.size, 1 << 21) if parallel else _norm_k.affine_clamp.serial
    kernel(y, *epilogue)


def _budget(workers):
    """Bytes of im2col columns per tile: one 8 MiB tile at a time, or a cache-sized tile per worker thread."""
    return _COLS_BUDGET_BYTES if workers < 2 else _WORKER_COLS_BUDGET_BYTES


def _input_grad_core(go, w, in_shape, stride, pads, dilation, groups):
    """Gradient of :func:`_forward_core` with respect to its input (shape ``in_shape``)."""
    n, cin, h, wd = in_shape
    cout, cin_g, kh, kw = w.shape
    ho, wo = go.shape[2], go.shape[3]
    dtype = go.dtype
    if n == 0 or cin == 0:
        return np.zeros(in_shape, dtype=dtype)
    go = np.ascontiguousarray(go)
    hp, wp = h + pads[0] + pads[1], wd + pads[2] + pads[3]
    if _is_depthwise(cin, cin_g, groups):
        gx = np.empty(in_shape, dtype=dtype)
        kernel = _k.depthwise_input_grad.for_work(go.size * kh * kw)
        kernel(go, np.ascontiguousarray(w.reshape(cout, kh, kw), dtype=dtype), pads[0], pads[2], hp, wp,
               stride[0], stride[1], dilation[0], dilation[1], gx)
        return gx
    cout_g = cout // groups
    full = (dilation[0] * (kh - 1), dilation[1] * (kw - 1))
    # bottom/right pads that make the output exactly (h, wd); transposed convs with output_padding need more
    back_pads = (full[0] - pads[0], h - ho + pads[0], full[1] - pads[2], wd - wo + pads[2])
    if stride == (1, 1) and min(back_pads) >= 0 and (kh > 1 or kw > 1):
        # At stride 1 the input gradient is itself a convolution: the output gradient, padded to
        # "full", correlated with the flipped, channel-transposed kernel.  That reuses the
        # forward's im2col + BLAS path instead of a scatter (col2im).
        wt = w.reshape(groups, cout_g, cin_g, kh, kw).transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]
        wt = np.ascontiguousarray(wt).reshape(cin, cout_g, kh, kw)
        return _forward_core(go, wt, (1, 1), back_pads, dilation, groups)
    wgt = np.ascontiguousarray(w.reshape(groups, cout_g, cin_g * kh * kw).transpose(0, 2, 1))
    if kh == 1 and kw == 1:
        dxs = _threads.matmul(wgt, go.reshape(n, groups, cout_g, ho * wo)).reshape(n, cin, ho, wo)
        if not any(pads) and stride == (1, 1):
            return dxs
        gxp = np.zeros((n, cin, hp, wp), dtype=dtype)
        gxp[:, :, :(ho - 1) * stride[0] + 1:stride[0], :(wo - 1) * stride[1] + 1:stride[1]] = dxs
        return np.ascontiguousarray(gxp[:, :, pads[0]:pads[0] + h, pads[2]:pads[2] + wd])
    gx = np.empty(in_shape, dtype=dtype)
    k_rows = cin * kh * kw
    workers = _threads.worker_count()
    rows = _tile_rows(k_rows * wo * dtype.itemsize, ho, _budget(workers))

    def job(samples, parallel):
        scatter = _k.col2im.for_work(k_rows * rows * wo) if parallel else _k.col2im.serial
        matmul = _threads.matmul if parallel else np.matmul
        gxp = np.empty((cin, hp, wp), dtype=dtype)
        for s in samples:
            gxp[...] = 0
            for r0 in range(0, ho, rows):
                r1 = min(ho, r0 + rows)
                gos = go[s, :, r0:r1, :].reshape(groups, cout_g, (r1 - r0) * wo)
                cols = matmul(wgt, gos).reshape(k_rows, (r1 - r0) * wo)
                scatter(cols, kh, kw, stride[0], stride[1], dilation[0], dilation[1], r0, r1, wo, gxp)
            gx[s] = gxp[:, pads[0]:pads[0] + h, pads[2]:pads[2] + wd]

    _run_tiles(job, list(range(n)), workers)
    return gx


def _weight_grad_core(x, go, w_shape, stride, pads, dilation, groups):
    """Gradient of :func:`_forward_core` with respect to its weight (shape ``w_shape``)."""
    n, cin, h, wd = x.shape
    cout, cin_g, kh, kw = w_shape
    ho, wo = go.shape[2], go.shape[3]
    dtype = go.dtype
    if n == 0 or cout == 0:
        return np.zeros(w_shape, dtype=dtype)
    go = np.ascontiguousarray(go)
    if _is_depthwise(cin, cin_g, groups):
        gw = np.empty((cout, kh, kw), dtype=dtype)
        kernel = _k.depthwise_weight_grad.for_work(go.size * kh * kw)
        kernel(go, np.ascontiguousarray(x, dtype=dtype), pads[0], pads[2], h + pads[0] + pads[1],
               wd + pads[2] + pads[3], stride[0], stride[1], dilation[0], dilation[1], gw)
        return gw.reshape(w_shape)
    cout_g = cout // groups
    gog = go.reshape(n, groups, cout_g, ho * wo)
    if kh == 1 and kw == 1:
        xs = _pointwise_input(x, pads, stride, ho, wo, groups)
        # sum over the batch inside one product: (g, Cout_g, N*L) @ (g, N*L, Cin_g)
        a = gog.transpose(1, 2, 0, 3).reshape(groups, cout_g, n * ho * wo)
        bt = xs.transpose(1, 0, 3, 2).reshape(groups, n * ho * wo, cin_g)
        return _threads.matmul(a, bt).reshape(w_shape)
    workers = _threads.worker_count()
    tiles = _tiles(n, ho, cin * kh * kw * wo * dtype.itemsize, _budget(workers), workers)
    if _channels_last(n, ho, wo, groups):
        xh = np.ascontiguousarray(x.transpose(0, 2, 3, 1))

        def job(part, parallel):
            matmul = _threads.matmul if parallel else np.matmul
            gwt = np.zeros((kh * kw * cin, cout), dtype=dtype)
            for n0, n1, r0, r1, cols in _unrolled_nhwc(xh, (kh, kw), stride, pads, dilation, wo, part):
                # (taps·C_in, pixels) @ (pixels, C_out), the output gradient channels-last like the columns
                gon = np.ascontiguousarray(go[n0:n1, :, r0:r1, :].transpose(0, 2, 3, 1)).reshape(-1, cout)
                gwt += matmul(cols.T, gon)
            return gwt

        gwt = sum(_run_tiles(job, tiles, workers))
        return np.ascontiguousarray(gwt.reshape(kh, kw, cin, cout).transpose(3, 2, 0, 1))

    def job(part, parallel):
        matmul = _threads.matmul if parallel else np.matmul
        gwt = np.zeros((groups, cin_g * kh * kw, cout_g), dtype=dtype)
        for n0, n1, r0, r1, cols in _unrolled(x, (kh, kw), stride, pads, dilation, wo, part, parallel):
            m, rows = n1 - n0, r1 - r0
            # the output gradient laid out like the columns: channel-major, then sample, row, column
            gos = go[n0:n1, :, r0:r1, :].transpose(1, 0, 2, 3).reshape(groups, cout_g, m * rows * wo)
            # The transposed gradient, columns × output gradientᵀ: OpenBLAS runs the tall product 1.4×
            # faster than output gradient × columnsᵀ (64×3136 by 3136×576: 1.17 vs 1.66 ms, one thread).
            gwt += matmul(cols.reshape(groups, cin_g * kh * kw, m * rows * wo), gos.transpose(0, 2, 1))
        return gwt

    return np.ascontiguousarray(sum(_run_tiles(job, tiles, workers)).transpose(0, 2, 1)).reshape(w_shape)


def _explicit_padding(x, pads, mode):
    """Pad for a non-zero ``padding_mode``; return the padded input and the zero pads left for the core."""
    if mode == "zeros" or not any(pads):
        return x, pads
    return _pad(x, (pads[2], pads[3], pads[0], pads[1]), mode=mode), (0, 0, 0, 0)


# --------------------------------------------------------------------------- public ops


@tensor_aware
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, padding_mode="zeros"):
    r"""2-D convolution (cross-correlation), as ``torch.nn.functional.conv2d``.

    Every output pixel is the dot product of the kernel with the window of the
    input under it: no kernel flip, as deep learning uses the word.

    Parameters
    ----------
    input : ndarray, shape (N, C_in, H, W) or (C_in, H, W)
    weight : ndarray, shape (C_out, C_in / groups, kH, kW)
    bias : ndarray, shape (C_out,), optional
    stride : int or (int, int), default 1
    padding : int, (int, int), 'valid' or 'same', default 0
        Pixels added on both sides.  ``'same'`` keeps H and W (stride 1 only);
        for an even dilated kernel the extra pixel goes to the bottom/right,
        as in PyTorch.
    dilation : int or (int, int), default 1
        Spacing between kernel taps.
    groups : int, default 1
        Split channels into ``groups`` independent convolutions: ``groups=C_in``
        is a depthwise convolution (``C_out = m·C_in`` for a channel multiplier m).
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}, keyword-only
        What the padding is filled with (``torch.nn.Conv2d``'s argument).

    Returns
    -------
    ndarray, shape (N, C_out, H_out, W_out)
        In the promoted float dtype of the inputs (float32 stays float32).

    Notes
    -----
    Shape: ``H_out = ⌊(H + 2p − d(k−1) − 1)/s⌋ + 1``, likewise for ``W_out``.
    Cost: ``N·C_out·H_out·W_out·(C_in/groups)·kH·kW`` multiply-adds.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4) + 1
    >>> w = np.tile([1.0, 0.0, -1.0], (3, 1)).reshape(1, 1, 3, 3)   # vertical edges
    >>> conv2d(x, w)
    array([[[[-6., -6.],
             [-6., -6.]]]])
    >>> conv2d(np.ones((8, 4, 5, 5), np.float32), np.ones((16, 1, 3, 3), np.float32),
    ...        stride=2, padding=1, groups=4).shape
    (8, 16, 3, 3)
    """
    x4, w, b, unbatched, stride, pads, dilation, groups, mode, dtype = _conv_args(
        "conv2d", input, weight, bias, stride, padding, dilation, groups, padding_mode)
    x4 = x4.astype(dtype, copy=False)
    x4, pads = _explicit_padding(x4, pads, mode)
    out = _forward_core(x4, w.astype(dtype, copy=False), stride, pads, dilation, groups)
    if b is not None:
        out += b.astype(dtype, copy=False)[:, None, None]
    return out[0] if unbatched else out


def conv2d_affine(input, weight, bias, stride, padding, dilation, groups, padding_mode, scale, shift,
                  lo=-np.inf, hi=np.inf):
    """``clamp(conv2d(input, weight, bias, ...)·scale[c] + shift[c], lo, hi)`` in one pass over the output.

    Inference of a Conv → BatchNorm (evaluation) → ReLU/ReLU6 block: the
    per-channel map is applied to each output tile as soon as BLAS has
    written it, while it is still in cache, instead of in two more passes over
    the whole output.  Same validation and arguments as :func:`conv2d`
    (all given, positionally); ``scale`` and ``shift`` have shape (C_out,).

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
    x4, w, b, unbatched, stride, pads, dilation, groups, mode, dtype = _conv_args(
        "conv2d", input, weight, bias, stride, padding, dilation, groups, padding_mode)
    scale = np.asarray(scale, dtype=dtype)
    shift = np.asarray(shift, dtype=dtype)
    if scale.shape != (w.shape[0],) or shift.shape != (w.shape[0],):
        raise ValueError(f"conv2d_affine: scale and shift must have shape ({w.shape[0]},), "
                         f"got {scale.shape} and {shift.shape}")
    if b is not None:
        shift = shift + b.astype(dtype) * scale
    x4 = x4.astype(dtype, copy=False)
    x4, pads = _explicit_padding(x4, pads, mode)
    epilogue = (scale, shift, dtype.type(lo), dtype.type(hi))
    out = _forward_core(x4, w.astype(dtype, copy=False), stride, pads, dilation, groups, epilogue)
    return out[0] if unbatched else out


def conv2d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1,
                    padding_mode="zeros", output_mask=(True, True, True)):
    """Gradients of :func:`conv2d` with respect to input, weight and bias.

    Parameters
    ----------
    grad_output : ndarray
        Gradient of the loss with respect to ``conv2d``'s output.
    input, weight, stride, padding, dilation, groups, padding_mode
        As given to :func:`conv2d`.
    output_mask : (bool, bool, bool)
        Which of (input, weight, bias) gradients to compute.

    Returns
    -------
    (grad_input, grad_weight, grad_bias)
        ``None`` where ``output_mask`` is False.

    Examples
    --------
    >>> import numpy as np
    >>> x, w = np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2))
    >>> gx, gw, gb = conv2d_backward(np.ones((1, 1, 2, 2)), x, w)
    >>> gx[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    >>> gb
    array([4.])
    """
    x4, w, _, unbatched, stride, pads, dilation, groups, mode, dtype = _conv_args(
        "conv2d_backward", input, weight, None, stride, padding, dilation, groups, padding_mode)
    go = as_array(grad_output, "grad_output")
    go4 = go[None] if unbatched else go
    expected = (x4.shape[0], w.shape[0], *_out_hw(x4.shape[2:], pads, w.shape[2:], stride, dilation))
    if go4.shape != expected:
        raise ValueError(f"conv2d_backward: grad_output must have shape {expected[unbatched:]}, got {go.shape}")
    go4 = go4.astype(dtype, copy=False)
    x4 = x4.astype(dtype, copy=False)
    w = w.astype(dtype, copy=False)
    xp, core_pads = _explicit_padding(x4, pads, mode)
    gi = gw = gb = None
    if output_mask[0]:
        gi = _input_grad_core(go4, w, xp.shape, stride, core_pads, dilation, groups)
        if xp is not x4:
            gi = _pad_backward(gi, x4.shape, (pads[2], pads[3], pads[0], pads[1]), mode)
        if unbatched:
            gi = gi[0]
    if output_mask[1]:
        gw = _weight_grad_core(xp, go4, w.shape, stride, core_pads, dilation, groups)
    if output_mask[2]:
        gb = go4.sum(axis=(0, 2, 3))
    return gi, gw, gb


def _transpose_args(op, input, weight, bias, stride, padding, output_padding, groups, dilation):
    x = as_array(input, "input")
    w = as_array(weight, "weight")
    b = None if bias is None else as_array(bias, "bias")
    x4, unbatched = batched(x, "input", op)
    if w.ndim != 4:
        raise ValueError(f"{op}: weight must be 4-D (in_channels, out_channels/groups, kH, kW), got shape {w.shape}")
    groups = check_int(groups, "groups", op)
    stride = positive_pair(stride, "stride", op)
    dilation = positive_pair(dilation, "dilation", op)
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding must be an int or a pair of ints, got {padding!r}")
    padding = nonneg_pair(padding, "padding", op)
    output_padding = nonneg_pair(output_padding, "output_padding", op)
    cin, cout_g, kh, kw = w.shape
    if cin % groups:
        raise ValueError(f"{op}: in_channels (weight.shape[0]={cin}) must be divisible by groups={groups}")
    if x4.shape[1] != cin:
        raise ValueError(f"{op}: expected input with {cin} channels (weight.shape[0]), got input of shape {x.shape}")
    if kh == 0 or kw == 0:
        raise ValueError(f"{op}: weight has an empty kernel, shape {w.shape}")
    if cin == 0:  # as PyTorch refuses it
        raise ValueError(f"{op}: weight must have at least one input channel (weight.shape[0]), got shape {w.shape}")
    for a in range(2):
        if output_padding[a] >= stride[a] and output_padding[a] >= dilation[a]:
            raise ValueError(f"{op}: output_padding must be smaller than either stride or dilation, got "
                             f"output_padding={output_padding}, stride={stride}, dilation={dilation}")
    cout = cout_g * groups
    if b is not None and b.shape != (cout,):
        raise ValueError(f"{op}: bias must have shape ({cout},), got {b.shape}")
    h, wd = x4.shape[2:]
    ho = (h - 1) * stride[0] - 2 * padding[0] + dilation[0] * (kh - 1) + output_padding[0] + 1
    wo = (wd - 1) * stride[1] - 2 * padding[1] + dilation[1] * (kw - 1) + output_padding[1] + 1
    if ho <= 0 or wo <= 0:
        raise ValueError(f"{op}: the output would be empty ({ho} x {wo}); reduce padding={padding} "
                         f"or enlarge the input ({h} x {wd})")
    dtype = float_dtype(x, w, b)
    out_shape = (x4.shape[0], cout, ho, wo)
    pads = (padding[0], padding[0], padding[1], padding[1])
    return x4, w, b, unbatched, stride, pads, dilation, groups, out_shape, dtype


@tensor_aware
def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    r"""Transposed 2-D convolution, as ``torch.nn.functional.conv_transpose2d``.

    The adjoint of :func:`conv2d` with respect to its input: every input pixel
    stamps the kernel, scaled by its value, onto the output ``stride`` pixels
    apart.  Used to upsample (decoders, segmentation heads).

    Parameters
    ----------
    input : ndarray, shape (N, C_in, H, W) or (C_in, H, W)
    weight : ndarray, shape (C_in, C_out / groups, kH, kW)
    bias : ndarray, shape (C_out,), optional
    stride, padding, dilation, groups
        As the :func:`conv2d` that this op transposes.
    output_padding : int or (int, int), default 0
        Extra rows/columns at the bottom/right, to pick one of the input sizes
        a strided conv2d maps to the same output size.

    Returns
    -------
    ndarray, shape (N, C_out, H_out, W_out)

    Notes
    -----
    Shape: ``H_out = (H − 1)·s − 2p + d(k−1) + output_padding + 1``.

    Examples
    --------
    >>> import numpy as np
    >>> conv_transpose2d(np.ones((1, 1, 2, 2)), np.ones((1, 1, 2, 2)), stride=2)[0, 0]
    array([[1., 1., 1., 1.],
           [1., 1., 1., 1.],
           [1., 1., 1., 1.],
           [1., 1., 1., 1.]])
    """
    x4, w, b, unbatched, stride, pads, dilation, groups, out_shape, dtype = _transpose_args(
        "conv_transpose2d", input, weight, bias, stride, padding, output_padding, groups, dilation)
    out = _input_grad_core(x4.astype(dtype, copy=False), w.astype(dtype, copy=False), out_shape, stride, pads,
                           dilation, groups)
    if b is not None:
        out += b.astype(dtype, copy=False)[:, None, None]
    return out[0] if unbatched else out


def conv_transpose2d_backward(grad_output, input, weight, stride=1, padding=0, output_padding=0, groups=1,
                              dilation=1, output_mask=(True, True, True)):
    """Gradients of :func:`conv_transpose2d` with respect to input, weight and bias.

    Returns ``(grad_input, grad_weight, grad_bias)``, ``None`` where
    ``output_mask`` is False.  The input gradient is a plain :func:`conv2d` of
    ``grad_output``: transposing twice gives the original operator back.

    Examples
    --------
    >>> import numpy as np
    >>> gx, gw, gb = conv_transpose2d_backward(np.ones((1, 1, 4, 4)), np.ones((1, 1, 2, 2)),
    ...                                        np.ones((1, 1, 2, 2)), stride=2)
    >>> gx[0, 0]
    array([[4., 4.],
           [4., 4.]])
    """
    x4, w, _, unbatched, stride, pads, dilation, groups, out_shape, dtype = _transpose_args(
        "conv_transpose2d_backward", input, weight, None, stride, padding, output_padding, groups, dilation)
    go = as_array(grad_output, "grad_output")
    go4 = go[None] if unbatched else go
    if go4.shape != out_shape:
        raise ValueError(f"conv_transpose2d_backward: grad_output must have shape {out_shape[unbatched:]}, "
                         f"got {go.shape}")
    go4 = go4.astype(dtype, copy=False)
    x4 = x4.astype(dtype, copy=False)
    w = w.astype(dtype, copy=False)
    gi = gw = gb = None
    if output_mask[0]:
        gi = _forward_core(go4, w, stride, pads, dilation, groups)
        if gi.shape[2:] != x4.shape[2:]:  # output_padding rows never reach back to the input
            gi = np.ascontiguousarray(gi[:, :, :x4.shape[2], :x4.shape[3]])
        if unbatched:
            gi = gi[0]
    if output_mask[1]:
        gw = _weight_grad_core(go4, x4, w.shape, stride, pads, dilation, groups)
    if output_mask[2]:
        gb = go4.sum(axis=(0, 2, 3))
    return gi, gw, gb

"""2-D convolutions on channels-last arrays: PyTorch's ``memory_format=torch.channels_last``, on NumPy.

A channels-last array has the shape (N, C, H, W) of any other batch but the
memory of an (N, H, W, C) one (``x.transpose(0, 2, 3, 1)`` is C-contiguous):
the channels of a pixel lie side by side.  :func:`to_channels_last` makes one;
every convolution given one returns one (as in PyTorch), so a network fed a
channels-last image stays channels-last from layer to layer.  NumPy's
elementwise ops keep the layout by themselves.

Why: depthwise convolutions then vectorise across channels instead of along
short rows (see ``_kernels.conv_nhwc``), and a 1×1 convolution is one matrix
product (pixels × C_in) @ (C_in × C_out) with no copy.  Measured on the 2-core
Intel Xeon VM (AVX-512), 2 threads, batch 1: 96×112×112 depthwise stride 2,
0.37 → 0.12 ms; 384×14×14, 0.049 → 0.031 ms.

Paths: depthwise (one weight channel per input channel), and ``groups == 1``
(1×1 as one product; other windows unrolled channels-last).  Grouped
convolutions and channel multipliers are not here: :func:`forward` returns
None and the caller runs the NCHW path.  So does a result with a NaN in it
(a non-finite weight on the zero padding, float32 overflow), so that the NCHW
path's repairs give PyTorch's values.
"""

from __future__ import annotations

import numba
import numpy as np

from .. import _kernels as _kernels_pkg
from .._kernels import conv_nhwc as _k
from .._kernels import gemm as _gemm
from .._kernels import inverted_residual as _ir_k
from .._kernels.aligned import aligned_empty
from .._kernels.conv import im2col_nhwc
from . import _layout, _threads, _winograd_nhwc
from ._conv_args import out_hw

__all__ = ["is_channels_last", "to_channels_last", "forward"]

# float64 (BLAS) path: pixels of a product tile, whose output the epilogue then maps while it is in cache.
# 1 MiB of output per tile did best of 64 KiB .. 64 MiB on 16->96 @112, 64->384 @14 and 24->144 @56
# (batch 1 and 8; 2-core Intel Xeon VM, 2 MiB L2 per core); smaller tiles lost to the per-call costs.
_TILE_OUTPUT_BYTES = 1 << 20
# float32 (fused kernel) path: bytes of unrolled columns per product of a k×k convolution.
_UNROLL_BYTES = 4 << 20
# Below this many elements NumPy's own copy is as fast as the blocked one.
_MIN_BLOCKED_COPY = 1 << 14


def is_channels_last(x) -> bool:
    """Whether ``x`` is a 4-D array laid out channels-last (and not also plain C-contiguous).

    Examples
    --------
    >>> import numpy as np
    >>> is_channels_last(np.zeros((1, 3, 4, 4))), is_channels_last(to_channels_last(np.zeros((1, 3, 4, 4))))
    (False, True)
    """
    return (isinstance(x, np.ndarray) and x.ndim == 4 and x.shape[1] > 1 and x.size > 0
            and not x.flags.c_contiguous and x.transpose(0, 2, 3, 1).flags.c_contiguous)


def to_channels_last(x):
    """The (N, C, H, W) array ``x`` with channels-last memory: same shape and values, NHWC strides.

    PyTorch's ``x.contiguous(memory_format=torch.channels_last)``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(8.0).reshape(1, 2, 2, 2)
    >>> y = to_channels_last(x)
    >>> y.shape, bool((y == x).all()), y.strides
    ((1, 2, 2, 2), True, (64, 8, 32, 16))
    """
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"to_channels_last: x must be 4-D (N, C, H, W), got shape {x.shape}")
    n, c, h, w = x.shape
    if not x.flags.c_contiguous or not _blocked_dtype(x.dtype):
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    out = aligned_empty((n, h, w, c), x.dtype)
    _transpose(x.reshape(n, c, h * w), out.reshape(n, h * w, c))
    return out.transpose(0, 3, 1, 2)


def from_channels_last(x):
    """``np.ascontiguousarray(x)`` for a channels-last ``x``, by blocks (NumPy's strided copy is slow here).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(8.0).reshape(1, 2, 2, 2)
    >>> y = from_channels_last(to_channels_last(x))
    >>> bool(y.flags.c_contiguous and (y == x).all())
    True
    """
    if not is_channels_last(x) or not _blocked_dtype(x.dtype):
        return np.ascontiguousarray(x)
    return copy_to_nchw(x, np.empty(x.shape, dtype=x.dtype))


def copy_to_nchw(x, out):
    """Copy the channels-last ``x`` into the C-ordered ``out`` of its shape (:func:`from_channels_last` into a
    buffer the caller has)."""
    n, c, h, w = x.shape
    if not _blocked_dtype(x.dtype):
        out[...] = x
        return out
    _transpose(x.transpose(0, 2, 3, 1).reshape(n, h * w, c), out.reshape(n, c, h * w))
    return out


def _blocked_dtype(dtype):
    """Whether the blocked copy takes ``dtype``: native-order integers and float32/float64 (numba's types)."""
    return dtype.isnative and (dtype.kind in "iu" or dtype in (np.float32, np.float64))


def _transpose(a, out):
    if a.size < _MIN_BLOCKED_COPY:  # NumPy's copy is as fast here
        out[...] = a.transpose(0, 2, 1)
        return
    _layout.transpose_last2(a, out)


def forward(x, w, stride, pads, dilation, groups, epilogue=None, packed=None):
    """The channels-last convolution of :func:`functional.conv._forward_core`, or None for the NCHW path.

    ``x`` is channels-last, ``pads`` zeros (top, bottom, left, right).
    Returns the (N, C_out, Ho, Wo) output, channels-last, with ``epilogue``
    ``(alpha, beta, lo, hi)`` applied; None when this layout has no path for
    the call or the result holds a NaN.
    """
    run = plan(x.shape, x.dtype, w, stride, pads, dilation, groups, epilogue, packed)
    return None if run is None else run(x)


def plan(shape, dtype, w, stride, pads, dilation, groups, epilogue=None, packed=None, residual=False):
    """:func:`forward` for inputs of one shape and dtype, prepared once: ``run(x)`` → output or None; or None.

    Everything that depends only on the shapes (output size, packed weights,
    padded epilogue vectors, which kernel) is settled here, so that a caller
    running the same layer again (an ONNX model's node) pays only the kernel
    call: Python work per convolution was ~25 µs of mobilenet_v2's ~60 µs
    batch-1 layers.  ``run(x, alloc=aligned_empty)`` expects a channels-last ``x``
    of ``shape``; ``alloc(shape, dtype)`` gives it the (N, Ho, Wo, C_out)
    buffer to fill (a caller's pool of buffers).  With ``residual``,
    ``run(x, alloc, res)`` adds the channels-last ``res`` (the output's shape)
    after the affine map and before the clamp, a residual block's Add (and
    Relu) in the same pass; only the float32 product paths take it (None
    otherwise).
    """
    n, cin, h, wd = shape
    cout, cin_g, kh, kw = w.shape
    depthwise = cin_g == 1 and groups == cin and cout == cin
    if not (depthwise or groups == 1):
        return None
    dtype = np.dtype(dtype)
    ho, wo = out_hw((h, wd), pads, (kh, kw), stride, dilation)
    if epilogue is None:
        epilogue = (np.ones(cout, dtype), np.zeros(cout, dtype), dtype.type(-np.inf), dtype.type(np.inf))
    out_shape = (n, ho, wo, cout)
    if residual and (depthwise or dtype != np.float32):
        return None
    if depthwise:
        w3 = _depthwise_taps(packed, w)
        from .conv import _depthwise_min_work  # the same launch rule as the NCHW kernel
        kernel = _k.depthwise_nhwc.for_work(n * ho * wo * cout * kh * kw, _depthwise_min_work())
        args = (w3, pads[0], pads[2], stride[0], stride[1], dilation[0], dilation[1])

        def run(x, alloc=aligned_empty):
            out = alloc(out_shape, dtype)
            return _result(out, kernel(x.transpose(0, 2, 3, 1), *args, out, *epilogue))
        return run
    if kh == 1 and kw == 1 and not any(pads) and (stride == (1, 1) or dtype != np.float32):
        def pixels(x):
            xs = x.transpose(0, 2, 3, 1)
            if stride != (1, 1):
                xs = np.ascontiguousarray(xs[:, ::stride[0], ::stride[1]][:, :ho, :wo])
            return xs.reshape(n * ho * wo, cin)
        products = _products(lambda: w.reshape(cout, cin).T, n * ho * wo, cout, dtype, epilogue, packed,
                             n * ho * wo * cin * cout, n)

        def run(x, alloc=aligned_empty, res=None):
            if not _residual_fits(res, out_shape):
                return None
            out = alloc(out_shape, dtype)
            a = pixels(x)
            return _result(out, products(lambda p0, p1, buf: a[p0:p1], out.reshape(-1, cout), _rows(res, cout)))
        return run
    # Winograd only for a weight kept by the caller (``packed``: an ONNX initializer, a frozen layer; not a
    # dict marked ``this_call``, panels handed over for one call): its transform and packing took longer
    # than the product saves when redone every call (conv2d, 8x32->32 @16: 0.99 vs 0.32 ms; 16x128->128
    # @14: 7.1 vs 4.7)
    kept = packed is not None and not packed.get("this_call")
    if (dtype == np.float32 and (kh, kw) == (3, 3) and stride == (1, 1) and dilation == (1, 1) and kept
            and _winograd_nhwc.applies(n, cin, cout, ho, wo)):
        return _winograd(shape, w, pads, epilogue, packed, (ho, wo))
    if dtype == np.float32 and dilation[1] == 1:
        return _implicit(shape, w, stride, pads, dilation, epilogue, packed, (ho, wo))
    if residual:
        return None
    k_cols = kh * kw * cin
    products = _products(lambda: _layout.taps_channels_out(w), n * ho * wo, cout, dtype, epilogue, packed,
                         n * ho * wo * k_cols * cout, n, k_cols, align=wo)

    def run(x, alloc=aligned_empty):
        out = alloc(out_shape, dtype)
        xh = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        return _result(out, products(_unroller(xh, (kh, kw), stride, pads, dilation, ho, wo, k_cols),
                                     out.reshape(-1, cout)))
    return run


def _implicit(shape, w, stride, pads, dilation, epilogue, packed, out_size):
    """The float32 k×k plan: the product reads each window in place from the zero-padded input.

    Nothing is unrolled (``_kernels.gemm.conv_epilogue``); measured against
    the NCHW paths at batch 1, 2 threads (2-core Intel Xeon VM, AVX-512):
    64->64 3x3 @56 0.59 vs 0.97 ms (Winograd), 512->512 @7 0.72 vs 1.30 ms,
    the 7x7/2 stem 0.67 vs 1.89 ms -- 310-390 GFLOP/s, at or above PyTorch's.
    """
    n, cin, h, wd = shape
    cout, _, kh, kw = w.shape
    ho, wo = out_size
    panels = _cached(packed, "nhwc_panels", lambda: _gemm.conv_panels(w))
    alpha, beta, lo, hi = _gemm.epilogue_columns(epilogue, cout)
    # the padded input the windows need: the bottom/right padding only as far as the last window reaches
    hp = max(h + pads[0], (ho - 1) * stride[0] + dilation[0] * (kh - 1) + 1)
    wp = max(wd + pads[2], (wo - 1) * stride[1] + kw)
    padded = any(pads) or hp != h or wp != wd
    macs = n * ho * wo * cout * kh * kw * cin
    kernel = _gemm.conv_epilogue.for_work(macs, _parallel_min_macs())
    pad_work = n * hp * wp * cin

    def run(x, alloc=aligned_empty, res=None):
        if not _residual_fits(res, (n, ho, wo, cout)):
            return None
        xh = x.transpose(0, 2, 3, 1)
        if padded:
            xp = _threads.scratch("padded", n * hp * wp * cin, np.float32).reshape(n, hp, wp, cin)
            _layout.pad_channels_last(x, pads[0], pads[2], xp, pad_work)  # an NCHW x (functional.conv's route)
            # is moved channels-last here
        else:
            xp = np.ascontiguousarray(xh)
        out = alloc((n, ho, wo, cout), np.float32)
        return _result(out, kernel(xp, kh, kw, stride[0], stride[1], dilation[0], ho, wo, panels,
                                   out.reshape(-1, cout), alpha, beta, lo, hi, _rows(res, cout)))
    return run


def plan_depthwise_pointwise(shape, w, stride, pads, dilation, epilogue, w2, epilogue2, packed, packed2,
                             residual=False):
    """A float32 depthwise convolution followed by a 1×1 one, fused (``_kernels.conv_nhwc.depthwise_pointwise``).

    ``w`` (C, 1, kh, kw) with ``epilogue``; ``w2`` (C_out, C, 1, 1) with
    ``epilogue2`` (and the optional residual, as :func:`plan`).  Returns
    ``run(x, alloc=aligned_empty, res=None)`` → the channels-last output or None,
    or None when the pair has no fused path.  The sums are those of the two
    layers apart; what goes is the round trip of the wide depthwise output
    through memory, and a layer's launch.
    """
    n, c, h, wd = shape
    cout = w2.shape[0]
    if w.shape[:2] != (c, 1) or w2.shape[1:] != (c, 1, 1) or w.dtype != np.float32 or w2.dtype != np.float32:
        return None
    kh, kw = w.shape[2:]
    ho, wo = out_hw((h, wd), pads, (kh, kw), stride, dilation)
    w3 = _depthwise_taps(packed, w)
    panels = _cached(packed2, "nhwc_panels", lambda: _gemm.pack_panels(w2.reshape(cout, c).T))
    alpha2, beta2, lo2, hi2 = _gemm.epilogue_columns(epilogue2, cout)
    ep1 = _float32_epilogue(epilogue)
    kernel = _k.depthwise_pointwise.for_work(n * ho * wo * c * (kh * kw + cout), _parallel_min_macs())
    args = (w3, pads[0], pads[2], stride[0], stride[1], dilation[0], dilation[1]) + ep1 + (panels, alpha2, beta2,
                                                                                            lo2, hi2)
    out_shape = (n, ho, wo, cout)

    def run(x, alloc=aligned_empty, res=None):
        if not _residual_fits(res, out_shape):
            return None
        out = alloc(out_shape, np.float32)
        return _result(out, kernel(x.transpose(0, 2, 3, 1), *args, out,
                                   None if res is None else res.transpose(0, 2, 3, 1)))
    return run


def plan_expand_depthwise_pointwise(shape, w1, epilogue1, w, stride, pads, dilation, epilogue, w2, epilogue2,
                                    packed1, packed, packed2, residual=False):
    """A float32 1×1 expansion → depthwise → 1×1 projection, fused: MobileNetV2's inverted residual block.

    ``w1`` (C_e, C, 1, 1), ``w`` (C_e, 1, kh, kw), ``w2`` (C_out, C_e, 1, 1),
    each with its epilogue.  Returns ``run(x, alloc=aligned_empty, res=None)``
    or None (the caller then runs the layers apart).  Two kernels:

    * stride 2 (the downsampling blocks) past a core's L2, ``_kernels.conv_nhwc.expand_depthwise_pointwise``:
      bands of output rows that expand their own input rows into a buffer
      (neighbouring bands share one row in two); measured against the
      expansion apart and the depthwise→1×1 pair, mobilenet_v2's 16→96→24 at
      112×112 (see the README's ONNX section);
    * stride 1 (and 2 below that), ``_kernels.inverted_residual``: the expansion whole into a
      scratch buffer, then the depthwise→projection rows, as the items of one
      launch (:func:`_inverted_residual`).  In mobilenet_v2 on the ONNX runner,
      against the expansion apart and the pair (same process, alternating,
      2 threads, 2-core Intel Xeon VM): batch 1 0.94 of the time, batch 8
      0.86.  Stride 2 takes it while the expanded tensor fits a core's L2
      (:func:`_strided_block_bytes`); past that the band kernel below (the
      one launch lost at batch 8, 1.30: the expanded tensor at 112×112 left
      the cache).  It is not used when that buffer would pass
      :data:`_BLOCK_SCRATCH_BYTES`.
    """
    n, c, h, wd = shape
    ce, cout = w1.shape[0], w2.shape[0]
    if w1.shape[1:] != (c, 1, 1) or w.shape[:2] != (ce, 1) or w2.shape[1:] != (ce, 1, 1) \
            or any(a.dtype != np.float32 for a in (w1, w, w2)):
        return None
    kh, kw = w.shape[2:]
    ho, wo = out_hw((h, wd), pads, (kh, kw), stride, dilation)
    panels1 = _cached(packed1, "nhwc_panels", lambda: _gemm.pack_panels(w1.reshape(ce, c).T))
    w3 = _depthwise_taps(packed, w)
    panels2 = _cached(packed2, "nhwc_panels", lambda: _gemm.pack_panels(w2.reshape(cout, ce).T))
    if stride[0] < 2 or n * h * wd * ce * 4 <= _strided_block_bytes():
        if n * h * wd * ce * 4 > _BLOCK_SCRATCH_BYTES:
            return None
        return _inverted_residual(shape, (panels1, _gemm.epilogue_columns(epilogue1, ce)), w3, stride, pads,
                                  dilation, epilogue, (panels2, _gemm.epilogue_columns(epilogue2, cout)),
                                  (n, ho, wo, cout))

    ep = _float32_epilogue(epilogue)
    # bands of output rows: at least 8 tasks for the threads, at most 8 rows (the shared row costs 1/16)
    band = int(min(8, max(1, -(-n * ho // 8))))
    kernel = _k.expand_depthwise_pointwise.for_work(n * h * wd * c * ce, _parallel_min_macs())
    geometry = (w3, pads[0], pads[2], stride[0], stride[1], dilation[0], dilation[1])
    args = ((panels1,) + _gemm.epilogue_columns(epilogue1, ce) + geometry + ep + (panels2,)
            + _gemm.epilogue_columns(epilogue2, cout))
    out_shape = (n, ho, wo, cout)

    def run(x, alloc=aligned_empty, res=None):
        if not _residual_fits(res, out_shape):
            return None
        out = alloc(out_shape, np.float32)
        return _result(out, kernel(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), *args, out,
                                   None if res is None else res.transpose(0, 2, 3, 1), band))
    return run


# Largest expanded tensor the stride-1 block keeps in its scratch buffer (mobilenet_v2 batch 8 at 56x56 is
# 14.5 MB, and won); past it the layers run apart.
_BLOCK_SCRATCH_BYTES = 16 << 20


def _strided_block_bytes():
    """Largest expanded tensor a strided block runs in one launch: a core's L2.

    mobilenet_v2 b1 on the ONNX runner (2 threads, 2-core Intel Xeon VM, 2 MiB
    L2 a core; one process, alternating): the 56×56→28 block's 1.8 MB, 28→14
    and 14→7 in one launch 0.95-0.97 of the time with the band kernel; with the
    112×112 block's 4.8 MB too, 0.99 (b8: level, none of its tensors fit).
    """
    from .. import _machine
    return _machine.cache_bytes("l2") or 2 << 20


def _block_items(n, h, wd, ho, wo, threads):
    """The items of :func:`_inverted_residual`: (e_px, d_rows).

    Expansion chunks are whole product tiles (``gemm.MR`` pixels), at most a
    task's rows (``gemm.ROW_BLOCK``), at least four per thread (in rows of
    14 pixels, bands of 28 made tiles of 12, 12 and 4, and the expansion ran
    40% slower a pixel than as one product; 2 threads, 2-core Intel Xeon
    VM).  Projection bands: the row count (up to 8) with the fewest tiles
    among those giving two bands per thread.
    """
    mr = _gemm.MR
    pixels = n * h * wd
    e_px = mr * max(1, min(_gemm.ROW_BLOCK // mr, -(-pixels // (4 * threads * mr))))
    best = None
    for rows in range(1, min(ho, 8) + 1):
        bands = -(-ho // rows)
        tiles = n * ((bands - 1) * -(-rows * wo // mr) + -(-(ho - (bands - 1) * rows) * wo // mr))
        key = (n * bands < 2 * threads, tiles, rows)
        if best is None or key < best[0]:
            best = (key, rows)
    return e_px, best[1]


def _inverted_residual(shape, expand, taps, stride, pads, dilation, epilogue, project, out_shape, items=None):
    """The expansion → depthwise → projection block as one launch (``_kernels.inverted_residual``).

    ``expand``/``project``: (panels, epilogue columns); ``taps`` (kh, kw, C_e);
    ``out_shape`` (N, Ho, Wo, C_out).  ``items`` = (e_px, d_rows) sets the
    items (tests); by default :func:`_block_items`.
    """
    n, c, h, wd = shape
    _, ho, wo, cout = out_shape
    (panels1, cols1), (panels2, cols2) = expand, project
    ce = taps.shape[2]
    threads = max(1, numba.get_num_threads())
    if items is None:
        items = _block_items(n, h, wd, ho, wo, threads)
    ep = _float32_epilogue(epilogue)
    kernel = _ir_k.inverted_residual.for_work(n * h * wd * c * ce, _parallel_min_macs())
    args = ((panels1,) + cols1 + (taps, pads[0], pads[2], stride[0], stride[1], dilation[0], dilation[1]) + ep
            + (panels2,) + cols2)

    def run(x, alloc=aligned_empty, res=None):
        if not _residual_fits(res, out_shape):
            return None
        out = alloc(out_shape, np.float32)
        e = _threads.scratch("expanded", n * h * wd * ce, np.float32)
        return _result(out, kernel(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), *args, e, out,
                                   None if res is None else res.transpose(0, 2, 3, 1), *items, threads))
    return run


def _winograd(shape, w, pads, epilogue, packed, out_size):
    """The float32 3×3 stride-1 plan by fused Winograd blocks (:mod:`._winograd_nhwc`), where it measured faster."""
    panels = _cached(packed, "nhwc_winograd", lambda: _winograd_nhwc.weight_panels(w))
    inner = _winograd_nhwc.plan(shape, w.shape[0], pads, epilogue, panels, _parallel_min_macs())
    out_shape = (shape[0],) + out_size + (w.shape[0],)

    def run(x, alloc=aligned_empty, res=None):
        if not _residual_fits(res, out_shape):
            return None
        return _result(*inner(x, alloc, res))
    return run


def _residual_fits(res, out_shape):
    """No residual, or a channels-last one of the (N, Ho, Wo, C) output's shape and dtype."""
    if res is None:
        return True
    n, ho, wo, c = out_shape
    return (isinstance(res, np.ndarray) and res.shape == (n, c, ho, wo) and res.dtype == np.float32
            and (c == 1 or ho * wo == 1 or is_channels_last(res)) and res.transpose(0, 2, 3, 1).flags.c_contiguous)


def _rows(res, cout):
    """A residual's (pixels, C) rows: its NHWC memory (a channels-last array of the output's shape)."""
    return None if res is None else res.transpose(0, 2, 3, 1).reshape(-1, cout)


def _result(out, nans):
    return None if nans else out.transpose(0, 3, 1, 2)


def _float32_epilogue(epilogue):
    """A depthwise layer's per-channel ``(alpha, beta, lo, hi)`` as the fused float32 kernels take it."""
    return (np.asarray(epilogue[0], np.float32), np.asarray(epilogue[1], np.float32), np.float32(epilogue[2]),
            np.float32(epilogue[3]))


def _depthwise_taps(packed, w):
    """A depthwise weight (C, 1, kh, kw) as the NHWC kernels take it, (kh, kw, C), kept in ``packed``."""
    c, _, kh, kw = w.shape
    return _cached(packed, "nhwc_taps", lambda: np.ascontiguousarray(w.reshape(c, kh, kw).transpose(1, 2, 0)))


def _cached(packed, key, make):
    if packed is None:
        return make()
    value = packed.get(key)
    if value is None:
        value = packed[key] = make()
    return value


def _products(bmat, pixels, cout, dtype, epilogue, packed, macs, samples, k_cols=None, align=1):
    """``products(rows_of, out2)``: ``out2[p0:p1] = epilogue(rows_of(p0, p1, buf) @ bmat())`` over tiles of pixels,
    returning the NaN count.

    float32 runs the fused kernel of ``_kernels.gemm`` (weights packed once
    into ``packed``); float64 multiplies with BLAS and maps each tile after.
    """
    if dtype == np.float32:
        return _fused_products(bmat, pixels, cout, epilogue, packed, k_cols, align)
    return _blas_products(_cached(packed, "nhwc_matrix", bmat), pixels, cout, dtype, epilogue, macs, samples,
                          k_cols, align)  # (no residual: plan() keeps those to the float32 paths)


def _parallel_min_macs():
    # a tbb launch (~4 µs) is worth it from ~0.5M multiply-adds (~5 µs on one core); workqueue's ~0.1 ms
    # launches only for far larger products
    return 1 << 19 if _kernels_pkg.cheap_launch() else 1 << 24


def _fused_products(bmat, pixels, cout, epilogue, packed, k_cols, align):
    panels = _cached(packed, "nhwc_panels", lambda: _gemm.pack_panels(bmat()))
    alpha, beta, lo, hi = _gemm.epilogue_columns(epilogue, cout)
    k = panels.shape[1]
    tile = pixels if k_cols is None else min(pixels, max(align, _UNROLL_BYTES // (4 * k_cols) // align * align))
    tiles = [(p, min(pixels, p + tile), _gemm.gemm_epilogue.for_work((min(pixels, p + tile) - p) * k * cout,
                                                                     _parallel_min_macs()))
             for p in range(0, pixels, tile)]

    def products(rows_of, out2, res=None):
        buf = _threads.scratch("cols", tile * k_cols, np.float32) if k_cols else None
        nans = 0
        for p0, p1, kernel in tiles:
            nans += kernel(rows_of(p0, p1, buf), panels, out2[p0:p1], alpha, beta, lo, hi,
                           None if res is None else res[p0:p1])
        return nans
    return products


def _blas_products(wt, pixels, cout, dtype, epilogue, macs, samples, k_cols, align):
    """The float64 path of :func:`_products`.

    Batch 1 (fewer samples than workers) and small work stay on the calling
    thread with BLAS's own threads; larger batches split the tiles over the
    worker threads, one-thread BLAS each (as the NCHW paths do, see ``conv``).
    """
    tile = max(16, _TILE_OUTPUT_BYTES // max(cout * dtype.itemsize, 1))
    tile = min(pixels, max(align, tile // align * align))
    tiles = [(p, min(pixels, p + tile)) for p in range(0, pixels, tile)]
    workers = _threads.workers_for(macs)
    split = workers > 1 and samples >= workers and len(tiles) >= workers

    def products(rows_of, out2, res=None):
        def job(part, own_threads):
            matmul = _threads.blas_matmul if own_threads else np.matmul
            buf = _threads.scratch("cols", tile * k_cols, dtype) if k_cols else None
            finish = _k.affine_clamp_pixels
            nans = 0
            for p0, p1 in part:
                dst = out2[p0:p1]
                matmul(rows_of(p0, p1, buf), wt, out=dst)
                nans += finish(dst, *epilogue)
            return nans

        if not split:
            return job(tiles, True)
        return sum(_threads.run([lambda a=a, b=b: job(tiles[a:b], False)
                                 for a, b in _threads.ranges(len(tiles), workers)]))
    return products


def _unroller(xh, kernel, stride, pads, dilation, ho, wo, k_cols):
    """``rows_of(p0, p1, buf)`` for a ``groups == 1`` k×k convolution: the channels-last unroll of those pixels."""
    kh, kw = kernel

    def rows_of(p0, p1, buf):
        cols = buf[:(p1 - p0) * k_cols].reshape(p1 - p0, k_cols)
        if cols.dtype == np.float32:  # the fused path: unroll in parallel, then one parallel product
            _k.unroll.for_work(cols.size)(xh, kh, kw, stride[0], stride[1], dilation[0], dilation[1], pads[0],
                                          pads[2], ho, wo, p0, cols)
            return cols
        # the BLAS path runs tiles on worker threads: a serial unroll of whole output rows (tiles are
        # multiples of Wo), which may run into the next sample
        p = p0
        while p < p1:
            s, r = divmod(p // wo, ho)
            rows = min((p1 - p) // wo, ho - r)
            im2col_nhwc(xh[s:s + 1], kh, kw, stride[0], stride[1], dilation[0], dilation[1], pads[0], pads[2],
                        r, r + rows, wo, cols[p - p0:p - p0 + rows * wo])
            p += rows * wo
        return cols
    return rows_of

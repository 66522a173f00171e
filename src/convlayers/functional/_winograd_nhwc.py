"""Channels-last float32 3×3 stride-1 convolutions by fused Winograd F(4×4, 3×3) blocks.

The plan behind :func:`._conv_channels_last.plan` where it measured faster
than the implicit product (``_kernels.winograd_nhwc`` has the algorithm):
the layer's weight is transformed and packed once, and each call pads the
input and runs one parallel kernel that takes blocks of output tiles through
the input transform, the 36 products and the output transform (with the
layer's BatchNorm/clamp/residual epilogue) while they are in cache.
"""

from __future__ import annotations

import numpy as np

from .._kernels import gemm as _gemm
from .._kernels import winograd_nhwc as _kw
from .._kernels.aligned import aligned_empty
from . import _layout, _threads
from ._winograd import _grid, weight_transform

# Bytes of a block's transformed tiles and products (V and M), about half the L2 so that the block and
# the input rows it reads stay there while the weight panels stream past.  On the 2-core Intel Xeon VM
# (2 MiB L2 per core), 2 threads, blocks of 256 KiB / 512 KiB / 1 MiB / 2 MiB: 8x64 @56 3.06 / 3.14 /
# 3.22 / 3.21 ms, 8x128 @28 2.75 / 2.51 / 2.42 / 2.44, 8x256 @14 3.72 / 3.41 / 3.38 / 3.46 -- flat from
# half a MiB up.  Other machines scale it to their own L2.
_BLOCK_BYTES = None


def _block_bytes():
    if _BLOCK_BYTES is not None:
        return _BLOCK_BYTES
    from .. import _machine
    return _machine.scale_to_cache(2**20, "l2", 2 * 2**20, 2**17, 4 * 2**20)


# Tiles a call needs when its transformed weight does not fit the L2 (see applies).
_MIN_TILES_PAST_L2 = 48


def _l2_bytes():
    from .. import _machine
    return _machine.cache_bytes("l2") or 2 * 2**20


def applies(n, cin, cout, ho, wo):
    """Whether this plan is the faster for a 3×3 stride-1 float32 channels-last layer of these sizes.

    Measured against the implicit product (``_conv_channels_last._implicit``), pairs timed alternately,
    2 threads, 2-core Intel Xeon VM (AVX-512), ms: 64->64 @56 b1 0.71 -> 0.46, b8 5.46 -> 3.15;
    128->128 @28 b1 1.26 -> 0.70, b8 5.15 -> 2.56; 256->256 @14 b1 0.89 -> 0.80, b8 5.39 -> 3.05;
    32->32 @112 b1 0.77 -> 0.74, b8 6.29 -> 5.18; 96->96 @10 b1 0.128 -> 0.100, @8 b64 3.55 -> 1.99.
    Lost: 512 channels (1x512 @7 1.26 -> 3.56, b8 6.05 -> 9.52: a 37 MB transformed weight, and 7x7
    outputs computed as 8x8), and 16 output channels (half of every 32-column panel empty: 1x16 @56
    0.129 -> 0.158).

    The transformed weight is four times the weight (36 against 9 values per filter), and a block
    reads all of it: inside a model, where the weights come from memory, wide layers need enough tiles
    to pay for it.  With the caches flushed before every call (as in a model): 256->256 @14 b1 (16
    tiles) 1.07 -> 1.33 ms, b2 1.79 -> 2.14, b4 (64 tiles) 3.20 -> 2.70, b8 6.06 -> 4.20; 128->128 @28
    b1 (49 tiles, a 2.4 MB transform) 1.21 -> 0.94; 64->64 @56 b1 1.44 -> 1.02.  So a transform larger
    than the L2 needs :data:`_MIN_TILES_PAST_L2` tiles.
    """
    if not (min(cin, cout) >= 32 and max(cin, cout) <= 256 and min(ho, wo) >= 8):
        return False
    th, tw = _grid(ho, wo)
    return 36 * cin * cout * 4 <= _l2_bytes() or n * th * tw >= _MIN_TILES_PAST_L2


def weight_panels(w):
    """The 3×3 weight ``w`` (C_out, C_in, 3, 3) transformed and packed for :func:`plan`: (36, panels, C_in, NR)."""
    # the transform on the workers with one-thread BLAS: threaded BLAS here left OpenBLAS's workers
    # spinning beside the kernel (8x96->96 @12 in conv2d: 14 ms a call, against 0.4 ms for the rest)
    u = weight_transform(np.ascontiguousarray(w, dtype=np.float32), _threads.worker_count())
    return np.stack([_gemm.pack_panels(np.ascontiguousarray(u[xi].T)) for xi in range(36)])


def plan(shape, cout, pads, epilogue, panels, parallel_min_macs):
    """``run(x, alloc, res)`` for (N, C, H, W) ``shape``, ``cout`` output channels and the
    :func:`weight_panels` of a 3×3 weight: ``(out, bad)``.

    ``x`` channels-last; ``out`` the (N, Ho, Wo, C_out) result with
    ``epilogue`` ``(alpha, beta, lo, hi)`` and the channels-last residual
    ``res`` (or None) applied; ``bad`` its count of non-finite raw values
    (then the caller recomputes).  The kernel runs its parallel build from
    ``parallel_min_macs`` multiply-adds (the caller's rule for its threading
    layer).

    Shape: ``H_out = H + pad_top + pad_bottom - 2``, ``W_out = W + pad_left + pad_right - 2``.
    """
    n, cin, h, wd = shape
    ho, wo = h + pads[0] + pads[1] - 2, wd + pads[2] + pads[3] - 2
    th, tw = _grid(ho, wo)
    hp, wp = 4 * th + 2, 4 * tw + 2
    ldm = panels.shape[1] * _gemm.NR
    alpha, beta, lo, hi = _gemm.epilogue_columns(epilogue, cout)
    tiles = n * th * tw
    per_tile = 36 * (cin + ldm) * 4
    block = max(_gemm.MR, _block_bytes() // per_tile // _gemm.MR * _gemm.MR)
    workers = max(1, _threads.worker_count())
    block = min(block, max(_gemm.MR, -(-tiles // workers)))  # every worker gets tiles
    kernel = _kw.winograd_nhwc.for_work(tiles * 36 * cin * cout, parallel_min_macs)
    pad_work = n * hp * wp * cin
    scratch_size = 36 * block * (cin + ldm) + 40 * max(cin, ldm)

    def run(x, alloc=aligned_empty, res=None):
        xp = _threads.scratch("padded", n * hp * wp * cin, np.float32).reshape(n, hp, wp, cin)
        _layout.pad_channels_last(x, pads[0], pads[2], xp, pad_work)
        # one scratch row per numba worker; the kernel splits its blocks among them
        rows = max(1, min(workers, -(-tiles // block)))
        scratch = _threads.scratch("winograd_nhwc", rows * scratch_size, np.float32).reshape(rows, scratch_size)
        out = alloc((n, ho, wo, cout), np.float32)
        r = out if res is None else res.transpose(0, 2, 3, 1)
        return out, kernel(xp, th, tw, ho, wo, panels, out, alpha, beta, lo, hi, r, res is not None, block,
                           scratch)
    return run

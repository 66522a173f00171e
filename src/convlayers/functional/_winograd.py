"""3×3 stride-1 convolutions by Winograd's minimal filtering, F(4×4, 3×3).

Each 4×4 output tile of a 3×3 correlation costs 36 multiplies instead of 144
once input patches and weights are moved into the transform domain (Lavin &
Gray, "Fast Algorithms for Convolutional Neural Networks", 2016).  Summed over
input channels this is 36 matrix products of (C_out, C_in) by (C_in, tiles),
a quarter of the im2col product, and the patches take 36 floats per tile
where im2col unrolls 144 per 16 outputs.  The transforms are the numba kernels
in ``_kernels.winograd``; the products are BLAS's.  The same algorithm one tile
at a time, for reading: :func:`convlayers.reference.winograd_conv2d_3x3`.

Measured on the 2-core Intel Xeon VM (AVX-512, OpenBLAS SkylakeX), 2 threads, conv2d
with this path against the im2col path: batch 8, 64→64 at 56² 10.2 → 5.3 ms,
128→128 at 28² 6.8 → 4.4 ms, 256→256 at 14² 8.7 → 5.3 ms, 32→32 at 112² 15.4 →
7.3 ms; batch 1, 64→64 at 56² 1.7 → 1.0 ms.  Forced where it is not taken, it
lost: 512→512 at 7² batch 8 11.5 → 12.2 ms (4 tiles per sample, and the tiles
cover 8² for 7²), 256→256 at 14² batch 2 1.9 → 2.7 ms: products narrower than
``_MIN_TILES`` tiles keep im2col.

Exactness: the transforms add and subtract with weights up to 8, so float32
results carry about ten times the rounding error of a direct sum (measured
max error 3e-6 to 1.3e-5 of the output's largest magnitude, direct 5e-7;
float64 1e-15).  A tile that meets a NaN or infinity mixes it into all its
outputs, so such a call is recomputed by im2col (:func:`forward` returns None).
"""

from __future__ import annotations

import numpy as np

from .. import reference as _reference
from .._kernels import winograd as _k
from . import _threads

# G of F(4, 3): U = G g Gᵀ for each 3×3 filter g (the textbook's, convlayers.reference.WINOGRAD_F43).
_G = _reference.WINOGRAD_F43["G"]
# Kronecker form: U[6a + b] = Σ_ij G[a, i]·G[b, j]·g[i, j], one (36, 9) @ (9, C_out·C_in) product.
_G2 = np.einsum("ai,bj->abij", _G, _G).reshape(36, 9)

# Fewest tiles (matrix columns) per product, on average, for which Winograd beat im2col (see the module
# docstring: 32 and 64 won at 256x14x14 batch 8; 16 lost there at batch 2 and at 512x7x7 batch 8, 21-28
# tied at 128x28x28 batch 1); channel counts below 16 were not measured and keep im2col.  Blocks aim at
# _WIDE_TILES columns.  Measured on the 2-core Intel Xeon VM only.
_MIN_TILES = 32
_WIDE_TILES = 64
# ... and with the transformed weight kept by the caller, one block of this many tiles already won (batch 1,
# 256->256 at 14x14: 0.79 vs 1.18 ms), 4 lost (512->512 at 7x7: 1.78 vs 1.44 ms).
_MIN_SINGLE_TILES = 16
_MIN_CHANNELS = 16
# Outputs narrower or shorter than this keep im2col: one or two tiles a row leave the transforms all loop
# overhead (batch 64, 96->192 at 4x4: 2.15 vs 1.88 ms; at 8x8 the two tied, 2.1 vs 2.0 and 2.3 vs 2.5 ms).
_MIN_SIDE = 8
# Bytes of transformed patches per block (the products take as much again): 8x64x56x56 took 4.8, 4.9, 5.4 and
# 5.8 ms with 1, 2, 4 and 8 MiB (2-core Intel Xeon VM, 2 MiB L2 per core); narrow images widen their blocks
# beyond it (_WIDE_TILES).  Other machines scale it to their own L2 (_chunk_bytes); a number (tests) overrides.
_CHUNK_BYTES = None


def _chunk_bytes():
    if _CHUNK_BYTES is not None:
        return _CHUNK_BYTES
    from .. import _machine
    return _machine.scale_to_cache(2 * 2**20, "l2", 2 * 2**20, 2**18, 8 * 2**20)


def weight_transform(w, workers=1):
    """``U[6a + b, o, c] = (G w[o, c] Gᵀ)[a, b]`` as a (36, C_out, C_in) array of ``w``'s dtype.

    One (36, 9) @ (9, C_out·C_in) product in ``w``'s dtype (float32: 1e-7 relative error, against
    the transform's own ~1e-5); a numba loop over the filters took 6 ms for 256×256, this 1 ms.

    Examples
    --------
    >>> import numpy as np
    >>> weight_transform(np.ones((2, 3, 3, 3), dtype=np.float32)).shape
    (36, 2, 3)
    """
    cout, cin = w.shape[:2]
    g9 = np.ascontiguousarray(w).reshape(cout * cin, 9)
    g2 = _G2.astype(w.dtype)
    u = np.empty((36, cout * cin), dtype=w.dtype)
    if workers < 2 or cout < 2:
        _threads.blas_matmul(g2, g9.T, out=u)  # marked busy for the fork gate: BLAS may thread it
    else:  # filters split over the workers (one-thread BLAS each): 256x256 took 1.1 ms on one thread
        _threads.run([lambda a=a * cin, b=b * cin: np.matmul(g2, g9[a:b].T, out=u[:, a:b])
                      for a, b in _threads.ranges(cout, workers)])
    return u.reshape(36, cout, cin)


def _grid(ho, wo):
    return -(-ho // 4), -(-wo // 4)


def _chunks(n, th, tw, per_tile_bytes, workers):
    """Blocks ``(n0, n1, ty0, ty1)`` of samples and tile rows: whole samples up to the chunk budget,
    or tile rows of single samples when there are fewer samples than workers."""
    per_sample = per_tile_bytes * th * tw
    # samples per block: what fits the budget, but enough for _WIDE_TILES columns while every worker
    # still gets a block (256x14x14 batch 8: 2-sample blocks 5.7 ms, 4-sample 5.2 ms)
    block = max(_chunk_bytes() // max(per_sample, 1), min(-(-_WIDE_TILES // (th * tw)), -(-n // workers)))
    block = max(1, min(n, block))
    if n >= workers or workers < 2:
        if workers > 1:
            block = _threads.even_block(n, block, workers)  # 8 samples: 2+2+2+2, not 3+3+2
        return [(n0, min(n, n0 + block), 0, th) for n0 in range(0, n, block)]
    rows = max(1, -(-th // -(-workers // n)))
    return [(s, s + 1, r0, min(th, r0 + rows)) for s in range(n) for r0 in range(0, th, rows)]


def applies(x_shape, w_shape, stride, dilation, groups):
    """Whether :func:`forward` is the faster way for this convolution (shapes as validated 4-D ones)."""
    n, cin, h, wd = x_shape
    cout, cin_g, kh, kw = w_shape
    return ((kh, kw) == (3, 3) and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1) and groups == 1
            and min(cin, cout) >= _MIN_CHANNELS and n > 0)


def forward(x, w, pads, epilogue=None, packed=None):
    """conv2d of (N, C, H, W) ``x`` with 3×3 ``w``, stride 1, zero ``pads`` (top, bottom, left, right).

    ``packed``: a dict the caller keeps beside a weight that does not change
    (an ONNX initializer); the transformed weight is kept there after the
    first call, which saves its transform (0.7 ms of a 1.5 ms batch-1
    256→256 conv at 14², 2-core Intel Xeon VM).

    Returns the output with the epilogue ``(alpha, beta, lo, hi)`` applied, or
    None when the call should go another way: outputs smaller than ``_MIN_SIDE``
    on a side, products narrower than ``_MIN_TILES`` tiles, or a non-finite
    value met (then nothing is returned and the caller recomputes).

    Shape: ``H_out = H + pad_top + pad_bottom - 2``, ``W_out = W + pad_left + pad_right - 2``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.ones((1, 16, 32, 32), dtype=np.float32)
    >>> y = forward(x, np.ones((16, 16, 3, 3), dtype=np.float32), (1, 1, 1, 1))
    >>> y.shape, float(y[0, 0, 5, 5]), float(y[0, 0, 0, 0])
    ((1, 16, 32, 32), 144.0, 64.0)
    """
    n, cin, h, wd = x.shape
    cout = w.shape[0]
    ho, wo = h + pads[0] + pads[1] - 2, wd + pads[2] + pads[3] - 2
    if min(ho, wo) < _MIN_SIDE:
        return None
    th, tw = _grid(ho, wo)
    workers = _threads.worker_count()
    u = packed.get("winograd") if packed is not None else None
    if u is not None and (u.shape != (36, cout, cin) or u.dtype != x.dtype):
        u = None
    tiles = n * th * tw
    # Fewer samples than workers and a small image: one block on the calling thread, BLAS's threads
    # sharing its products (batch 1, 128->128 at 28x28: 1.28 ms in tile rows on the workers or by
    # im2col, 0.97 ms so, 0.69 ms with the weight transform kept in ``packed``; 256->256 at 14x14
    # (16 tiles): 1.18 by im2col, 1.51 so, 0.79 with it kept).  Larger images keep the workers' tile rows.
    single = n < workers and tiles < 2 * _WIDE_TILES
    if single:
        if tiles < (_MIN_SINGLE_TILES if u is not None else _MIN_TILES):
            return None
        chunks = [(0, n, 0, th)]
    else:
        chunks = _chunks(n, th, tw, 36 * max(cin, cout) * x.dtype.itemsize, workers)
        if tiles < _MIN_TILES * len(chunks):  # the products' mean width
            return None
    x = np.ascontiguousarray(x)
    if u is None:
        # On the worker threads with one-thread BLAS: a threaded product here leaves OpenBLAS's workers
        # spinning (~0.1 s) beside the tile jobs below, which then ran 2.4x slower (10.3 vs 4.4 ms, 8x64x56x56).
        u = weight_transform(w, 1 if single else workers)
        if packed is not None:
            packed["winograd"] = u
    out = np.empty((n, cout, ho, wo), dtype=x.dtype)
    none = np.empty(0, dtype=x.dtype)
    alpha, beta, lo, hi = epilogue if epilogue is not None else (none, none, 0, 0)
    lo, hi = x.dtype.type(lo), x.dtype.type(hi)

    matmul = _threads.blas_matmul if single else np.matmul

    def job(part):
        bad = 0
        for n0, n1, r0, r1 in part:
            tiles = (n1 - n0) * (r1 - r0) * tw
            v = _threads.scratch("winograd_v", 36 * cin * tiles, x.dtype).reshape(36, cin, tiles)
            _k.winograd_input(x, n0, n1, r0, r1, tw, pads[0], pads[2], v)
            m = _threads.scratch("winograd_m", 36 * cout * tiles, x.dtype).reshape(36, cout, tiles)
            with np.errstate(all="ignore"):  # an overflow is counted below and the call recomputed
                matmul(u, v, out=m)
            bad += _k.winograd_output(m, n0, n1, r0, r1, tw, out, alpha, beta, lo, hi, epilogue is not None)
        return bad

    bad = job(chunks) if single else _run_chunks(job, chunks, workers)
    return None if bad else out


def _run_chunks(job, chunks, workers):
    """The sum of ``job(part)`` over the chunks shared in runs among the worker threads (one-thread BLAS)."""
    if workers < 2 or len(chunks) < 2:
        return _threads.run([lambda: job(chunks)])[0] if workers > 1 else job(chunks)
    return sum(_threads.run([lambda a=a, b=b: job(chunks[a:b]) for a, b in _threads.ranges(len(chunks), workers)]))


# Most bytes of transformed planes and products a 3-D block holds (per worker thread).
_BLOCK3D_BYTES = 32 * 2**20


def forward3d(x, w, pads):
    """conv3d of (N, C, D, H, W) ``x`` with a ``kD × 3 × 3`` ``w``, stride 1, zero ``pads`` (depth first).

    Each output depth plane is a 3×3 convolution over the ``kD·C`` channels of
    the ``kD`` input planes under it.  Every input plane is transformed once
    (:func:`convlayers._kernels.winograd.winograd_input_planes`, laid out
    plane by plane), so those ``kD`` planes are one contiguous block of
    transformed rows, which the products read in place with K ordered (depth
    tap, channel) (:func:`~convlayers._kernels.winograd.winograd_products3d`);
    the output tiles are written straight into the (N, C_out, D_out, H_out,
    W_out) result.  Measured on 8x64x16x28x28, 3x3x3, 2 threads, 2-core Intel
    Xeon VM (PyTorch 2.13: 67-85 ms): gathering the planes into a ``kD``-times
    copy and running :func:`forward` on it, 83 ms (the copy alone 17 ms);
    transforming the gathered planes in place, 60 ms (each input plane
    transformed kD times); this, 39-51 ms.  float32 products on the
    register-blocked tiles of :mod:`convlayers._kernels.gemm` (OpenBLAS's
    batched products of the same operands: 109 against 116 GFLOP/s, one thread);
    float64 by NumPy's.

    Returns None where :func:`forward` would (small images, a non-finite value met).

    Shape: ``D_out = D + pad_front + pad_back - kD + 1``, ``H_out``, ``W_out`` as in :func:`forward`.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.ones((1, 16, 4, 16, 16), dtype=np.float32)
    >>> y = forward3d(x, np.ones((16, 16, 3, 3, 3), dtype=np.float32), (1, 1, 1, 1, 1, 1))
    >>> y.shape, float(y[0, 0, 1, 3, 3]), float(y[0, 0, 0, 3, 3])
    ((1, 16, 4, 16, 16), 432.0, 288.0)
    """
    n, cin, d, h, wd = x.shape
    cout, _, kd = w.shape[:3]
    do = d + pads[0] + pads[1] - kd + 1
    ho, wo = h + pads[2] + pads[3] - 2, wd + pads[4] + pads[5] - 2
    if min(ho, wo) < _MIN_SIDE or do < 1:
        return None
    th, tw = _grid(ho, wo)
    t_n = th * tw
    workers = _threads.worker_count()
    k = kd * cin
    # Output planes per block: a block transforms the kD - 1 input planes past its end again, so blocks of
    # at least 4·(kD - 1) planes.  8x64x16x28x28, 3x3x3 (2 threads, 2-core Intel Xeon VM): blocks of 2, 4, 8
    # and 16 planes took 44.9, 41.8, 38.5 and 42.3 ms -- the cache matters less than the repeated transforms
    # (at 8 planes the block's transformed input and products are 8 MB, well past the L2).
    per_plane = 36 * (cin + cout) * t_n * x.dtype.itemsize
    block = min(max(4 * (kd - 1), _chunk_bytes() // max(per_plane, 1), 1), max(1, _BLOCK3D_BYTES // per_plane))
    if n < workers:  # one sample's planes shared among the workers
        block = min(block, -(-do // -(-workers // n)))
    block = max(1, min(do, block))
    chunks = [(i, o0, min(do, o0 + block)) for i in range(n) for o0 in range(0, do, block)]
    if n * do * t_n < _MIN_TILES * len(chunks):
        return None
    # K ordered (depth tap, channel): the kD planes under an output plane are one block of transformed rows
    u = weight_transform(np.ascontiguousarray(w.transpose(0, 2, 1, 3, 4)).reshape(cout, k, 3, 3), workers)
    out = np.empty((n, cout, do, ho, wo), dtype=x.dtype)
    none = np.empty(0, dtype=x.dtype)
    zero = x.dtype.type(0)
    f32 = x.dtype == np.float32
    ones, zeros = np.ones(cout, np.float32), np.zeros(cout, np.float32)

    def job(part):
        bad = 0
        for i, o0, o1 in part:
            z0, z1 = o0 - pads[0], o1 - 1 - pads[0] + kd
            v = _threads.scratch("winograd_v", 36 * (z1 - z0) * cin * t_n, x.dtype).reshape(36, z1 - z0, cin, t_n)
            _k.winograd_input_planes(x, i, z0, z1, tw, pads[2], pads[4], v)
            m = _threads.scratch("winograd_m", 36 * cout * (o1 - o0) * t_n, x.dtype).reshape(36, cout, -1)
            with np.errstate(all="ignore"):  # an overflow is counted below and the call recomputed
                if f32:
                    _k.winograd_products3d(u, v, m, ones, zeros)
                else:
                    for o in range(o1 - o0):
                        np.matmul(u, v[:, o:o + kd].reshape(36, k, t_n), out=m[:, :, o * t_n:(o + 1) * t_n])
            bad += _k.winograd_output(m, o0, o1, 0, th, tw, out[i].transpose(1, 0, 2, 3), none, none, zero,
                                      zero, False)
        return bad

    return None if _run_chunks(job, chunks, workers) else out


# Aᵀ of F(3, 4) on the same points, in Kronecker form: dW[3i + j] = Σ_ab Aᵀ[i, a]·Aᵀ[j, b]·Wt[6a + b].
_A3 = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 1]], dtype=np.float64)
_A3K = np.einsum("ia,jb->ijab", _A3, _A3).reshape(9, 36)
# Transformed tiles (input patches plus output gradient) a worker holds at once for the weight gradient;
# its samples past that are summed in further products.
_GRAD_CHUNK_BYTES = 16 * 2**20
# The weight gradient's fixed costs (transforms of both operands, the partial sums, the map back) need more
# work than the forward's before they pay, measured on the 2-core Intel Xeon VM against the im2col products:
# won at 8x64x56x56 (9.7 -> 6.1 ms), 8x128x28x28 (8.0 -> 4.9), 8x256x14x14 (10.3 -> 8.1), 32x32x12x12
# (0.98 -> 0.65, 288 tiles); tied or lost at 64 tiles or fewer (4x64x16x16, batch-1 128x28x28, 2x64x12x12)
# and at 8x8 outputs (64x48->96: 1.9 -> 2.2 ms).
_GRAD_MIN_TILES = 128
_GRAD_MIN_SIDE = 12


def weight_grad(x, go, pads):
    """Weight gradient of the 3×3 stride-1 conv2d of ``x`` with zero ``pads``, given the output gradient ``go``.

    Winograd F(3×3, 4×4): each output-gradient tile (4×4) and its input patch
    (6×6, the forward's) are transformed, the 36 transform positions are
    summed over every tile and sample by 36 products of (C_out, tiles) by
    (tiles, C_in), and one (9, 36) product maps them back to 3×3 filters.
    Returns the (C_out, C_in, 3, 3) gradient, or None when the call should go
    another way (too little work: ``_GRAD_MIN_TILES``, ``_GRAD_MIN_SIDE``; or a
    non-finite result, which the caller recomputes so that NaN and ±inf land as
    PyTorch puts them).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.ones((8, 16, 16, 16), dtype=np.float32)
    >>> g = weight_grad(x, np.ones((8, 16, 16, 16), dtype=np.float32), (1, 1, 1, 1))
    >>> g.shape, round(float(g[0, 0, 1, 1]), 2), round(float(g[0, 0, 0, 0]), 2)  # 8 of 16² and 15² windows
    ((16, 16, 3, 3), 2048.0, 1800.0)
    """
    n, cin = x.shape[:2]
    cout, ho, wo = go.shape[1:]
    th, tw = _grid(ho, wo)
    if min(ho, wo) < _GRAD_MIN_SIDE or min(cin, cout) < _MIN_CHANNELS or n * th * tw < _GRAD_MIN_TILES:
        return None
    workers = _threads.worker_count()
    x, go = np.ascontiguousarray(x), np.ascontiguousarray(go)
    per_sample = 36 * (cin + cout) * th * tw * x.dtype.itemsize
    if n >= workers or workers < 2:
        per = -(-n // max(workers, 1))
        block = max(1, min(per, _GRAD_CHUNK_BYTES // max(per_sample, 1)))
        parts = [[(n0, min(n0 + block, b), 0, th) for n0 in range(a, b, block)]
                 for a, b in ((w * per, min(n, (w + 1) * per)) for w in range(max(workers, 1))) if a < b]
    else:  # fewer samples than workers: tile rows
        rows = max(1, -(-th // -(-workers // n)))
        chunks = [(s, s + 1, r0, min(th, r0 + rows)) for s in range(n) for r0 in range(0, th, rows)]
        parts = [chunks[a:b] for a, b in _threads.ranges(len(chunks), workers) if a < b]

    def job(part):
        acc = None
        for n0, n1, r0, r1 in part:
            tiles = (n1 - n0) * (r1 - r0) * tw
            v = _threads.scratch("winograd_v", 36 * cin * tiles, x.dtype).reshape(36, cin, tiles)
            _k.winograd_input(x, n0, n1, r0, r1, tw, pads[0], pads[2], v)
            g = _threads.scratch("winograd_m", 36 * cout * tiles, x.dtype).reshape(36, cout, tiles)
            _k.winograd_grad_output(go, n0, n1, r0, r1, tw, g)
            with np.errstate(all="ignore"):  # a non-finite sum is checked below and the call recomputed
                prod = np.matmul(g, v.transpose(0, 2, 1))
                acc = prod if acc is None else acc + prod
        return acc

    if len(parts) < 2:
        partials = _threads.run([lambda: job(parts[0])]) if workers > 1 else [job(parts[0])]
    else:
        partials = _threads.run([lambda p=p: job(p) for p in parts])
    with np.errstate(all="ignore"):
        wt = sum(partials[1:], partials[0]).reshape(36, cout * cin)
        a3k = _A3K.astype(x.dtype)
        gw = _threads.single_blas(np.matmul, a3k, wt) if workers > 1 else _threads.blas_matmul(a3k, wt)
    if not np.isfinite(gw).all():
        return None
    return np.ascontiguousarray(gw.reshape(3, 3, cout, cin).transpose(2, 3, 0, 1))

"""The N-d convolution cores: forward, input gradient and weight gradient for 1, 2 or 3 spatial dims.

One set of kernels serves every rank: the 2-D cores of :mod:`.conv`
(im2col + BLAS, depthwise loops, 1×1 products, all their tiling and threads).

* 1-D: the 2-D core on ``H = 1`` views (a free reshape).
* 3-D: depth taps become channels.  For a ``kD × kH × kW`` kernel, every output
  depth plane ``o`` is a 2-D convolution of the ``C_in·kD`` input planes
  ``x[:, c, o·sD + t·dD]`` (c, t) with the weight viewed as
  ``(C_out, C_in/groups·kD, kH, kW)``; the groups stay contiguous in that
  channel order, so ``groups`` carries over.  The forward copies each output
  plane's ``kD`` input planes into a buffer, unrolls them with the 2-D
  ``im2col`` kernel and multiplies straight into the output, plane by plane on
  the worker threads (:func:`_forward3d_planes`), unless its planes are ones the 2-D core
  takes by Winograd (3×3 in-plane, stride 1): then Winograd over the depth planes as they lie
  (:func:`._winograd.forward3d`), or with a depth stride or dilation the gathered planes as the
  gradients have them; the gradients gather every
  plane's taps at once (one strided copy of ``kD`` times the input, in slices of
  the batch of at most ``_GATHER_BUDGET_BYTES``) and run the 2-D input- and
  weight-gradient cores on the ``N·D_out`` planes as one batch.

Transposed convolutions need nothing of their own: they are the input
gradient of the convolution (and their gradients its forward and weight
gradient), as in :mod:`.conv`.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .._kernels import conv as _k
from . import _threads, _winograd
from . import _conv_backward as _bw
from . import conv as _c2

# Live bytes of gathered depth planes per slice of the batch.  8x64x16x28x28 float32 3x3x3
# gathers 77 MB whole; slices of 32 MiB measured the same time (the 2-D core tiles them anyway),
# on the Zen 5 (AVX-512) 2-core VM; a memory bound more than a cache size, so not scaled to the machine.
_GATHER_BUDGET_BYTES = 32 * 2**20


def _as2d_1d(stride, pads, dilation):
    return (1, stride[0]), (0, 0, pads[0], pads[1]), (1, dilation[0])


def out_spatial(spatial, pads, kernel, stride, dilation):
    return tuple((n + pads[2 * a] + pads[2 * a + 1] - dilation[a] * (kernel[a] - 1) - 1) // stride[a] + 1
                 for a, n in enumerate(spatial))


def _sample_slices(n, per_sample_bytes):
    step = max(1, int(_GATHER_BUDGET_BYTES // max(per_sample_bytes, 1)))
    return [(a, min(n, a + step)) for a in range(0, n, step)]


def _gather_depth(x, pd, kd, sd, dd, do):
    """(n, C, D, H, W) -> (n·D_out, C·kD, H, W): sample (i, o), channel (c, t) = x_padded[i, c, o·sD + t·dD]."""
    if pd[0] or pd[1]:
        x = np.pad(x, ((0, 0), (0, 0), pd, (0, 0), (0, 0)))
    x = np.ascontiguousarray(x)
    n, c, _, h, w = x.shape
    s = x.strides
    view = as_strided(x, (n, do, c, kd, h, w), (s[0], s[2] * sd, s[1], s[2] * dd, s[3], s[4]), writeable=False)
    return view.reshape(n * do, c * kd, h, w)


def _planes(g):
    """(n, C, D, H, W) -> (n·D, C, H, W), depth planes as samples."""
    n, c, d, h, w = g.shape
    return np.ascontiguousarray(g.transpose(0, 2, 1, 3, 4)).reshape(n * d, c, h, w)


def _w3(w):
    cout, cin_g, kd, kh, kw = w.shape
    return w.reshape(cout, cin_g * kd, kh, kw)


def forward(x, w, stride, pads, dilation, groups):
    """Convolution without bias of a batched ``x`` (N, C, *spatial) with zero ``pads`` (flat, first axis first)."""
    nd = x.ndim - 2
    if nd == 2:
        return _c2._forward_core(x, w, stride, pads, dilation, groups)
    if nd == 1:
        s2, p2, d2 = _as2d_1d(stride, pads, dilation)
        return _c2._forward_core(x[:, :, None], w[:, :, None], s2, p2, d2, groups)[:, :, 0]
    if not np.isfinite(w).all():
        # NaN/inf taps: the 2-D core's tap-by-tap rule (PyTorch's) needs the planes it sees
        return _forward3d_gathered(x, w, stride, pads, dilation, groups)
    cout, cin_g, kd, kh, kw = w.shape
    if _winograd.applies((x.shape[0], x.shape[1] * kd) + x.shape[3:], (cout, cin_g * kd, kh, kw), stride[1:],
                         dilation[1:], groups):
        # planes the 2-D core takes by Winograd: F(4x4, 3x3) over the kD·C planes under each output plane,
        # each input plane transformed once (8x64x16x28x28, 3x3x3, 2-core Intel Xeon VM: 39-51 ms; 83 ms
        # gathered into a copy for the 2-D core, 122 ms by the plane loop's im2col); the gathered batch
        # where it declines (a non-finite value met, a depth stride or dilation)
        if stride[0] == 1 and dilation[0] == 1:
            out = _winograd.forward3d(x, w, pads)
            if out is not None:
                return out
        return _forward3d_gathered(x, w, stride, pads, dilation, groups)
    out = _forward3d_planes(x, w, stride, pads, dilation, groups)
    # float32 overflow can make NaN of +inf + -inf partial sums; the 2-D core recomputes those as PyTorch
    if out.dtype == np.float32 and out.size and np.isnan(np.dot(out.ravel(), out.ravel())) and np.isfinite(x).all():
        return _forward3d_gathered(x, w, stride, pads, dilation, groups)
    return out


def _forward3d_planes(x, w, stride, pads, dilation, groups):
    """3-D forward, one output depth plane (or a band of its rows) per task, each product written in place.

    Each task copies the ``kD`` input planes under its output plane into a
    buffer, unrolls them with the 2-D ``im2col`` and multiplies straight into
    ``out[n, :, d]``; the tasks are shared among the worker threads (one-thread
    BLAS each).  Measured against the gathered batch through the 2-D core
    (8x64x16x28x28, 3x3x3, 2 threads, same process): 1.65-1.79 s vs 1.95-2.73 s
    on a loaded machine; the products are whole planes (784 columns) instead of
    bands of the worker tile budget, and there is no output transpose.
    """
    n, cin, d, h, wd = x.shape
    cout, cin_g, kd, kh, kw = w.shape
    do, ho, wo = out_spatial(x.shape[2:], pads, w.shape[2:], stride, dilation)
    out = np.empty((n, cout, do, ho, wo), dtype=x.dtype)
    if out.size == 0:
        return out
    sd, dd = stride[0], dilation[0]
    xp = np.pad(x, ((0, 0), (0, 0), pads[:2], (0, 0), (0, 0))) if pads[0] or pads[1] else np.ascontiguousarray(x)
    cout_g, k_g = cout // groups, cin_g * kd * kh * kw
    wg = np.ascontiguousarray(w.reshape(groups, cout_g, k_g))
    k_rows = cin * kd * kh * kw
    workers = _threads.worker_count()
    rows = _c2._tile_rows(k_rows * wo * x.itemsize, ho, _c2._budget(workers))
    tasks = [(i, o, r0, min(ho, r0 + rows)) for i in range(n) for o in range(do) for r0 in range(0, ho, rows)]
    span = (kd - 1) * dd + 1

    def job(part, parallel):
        matmul = _threads.matmul if parallel else np.matmul
        planes = _threads.scratch("planes3d", cin * kd * h * wd, x.dtype).reshape(1, cin * kd, h, wd)
        col_buf = _threads.scratch("cols3d", k_rows * rows * wo, x.dtype)
        for i, o, r0, r1 in part:
            planes.reshape(cin, kd, h, wd)[...] = xp[i, :, o * sd:o * sd + span:dd]
            cols = col_buf[:k_rows * (r1 - r0) * wo].reshape(k_rows, (r1 - r0) * wo)
            _k.im2col_direct(planes, kh, kw, stride[1], stride[2], dilation[1], dilation[2], pads[2], pads[4],
                             r0, r1, wo, cols)
            dst = out[i, :, o, r0:r1].reshape(groups, cout_g, (r1 - r0) * wo, copy=False)
            matmul(wg, cols.reshape(groups, k_g, (r1 - r0) * wo), out=dst)

    _c2._run_tiles(job, tasks, workers)
    return out


def _forward3d_gathered(x, w, stride, pads, dilation, groups):
    """3-D forward as one batch of ``N·D_out`` 2-D convolutions of the gathered depth taps (see the module)."""
    n, cin = x.shape[:2]
    cout, _, kd, kh, kw = w.shape
    do, ho, wo = out_spatial(x.shape[2:], pads, w.shape[2:], stride, dilation)
    out = np.empty((n, cout, do, ho, wo), dtype=x.dtype)
    if out.size == 0:
        return out
    w2 = _w3(w)
    for a, b in _sample_slices(n, do * cin * kd * x.shape[3] * x.shape[4] * x.itemsize):
        cols = _gather_depth(x[a:b], pads[:2], kd, stride[0], dilation[0], do)
        y = _c2._forward_core(cols, w2, stride[1:], pads[2:], dilation[1:], groups)
        out[a:b] = y.reshape(b - a, do, cout, ho, wo).transpose(0, 2, 1, 3, 4)
    return out


def input_grad(go, w, in_shape, stride, pads, dilation, groups):
    """Gradient of :func:`forward` with respect to its input, of shape ``in_shape`` (batched)."""
    nd = len(in_shape) - 2
    if nd == 2:
        return _bw._input_grad_core(go, w, in_shape, stride, pads, dilation, groups)
    if nd == 1:
        s2, p2, d2 = _as2d_1d(stride, pads, dilation)
        n, c, length = in_shape
        return _bw._input_grad_core(go[:, :, None], w[:, :, None], (n, c, 1, length), s2, p2, d2, groups)[:, :, 0]
    n, cin, d, h, wd = in_shape
    cout, _, kd, _, _ = w.shape
    do = go.shape[2]
    sd, dd = stride[0], dilation[0]
    gx = np.zeros((n, cin, d + pads[0] + pads[1], h, wd), dtype=go.dtype)
    if gx.size == 0 or go.size == 0:
        return np.ascontiguousarray(gx[:, :, pads[0]:pads[0] + d])
    w2 = _w3(w)
    for a, b in _sample_slices(n, do * cin * kd * h * wd * go.itemsize):
        g2 = _bw._input_grad_core(_planes(go[a:b]), w2, ((b - a) * do, cin * kd, h, wd), stride[1:], pads[2:],
                                  dilation[1:], groups)
        g2 = g2.reshape(b - a, do, cin, kd, h, wd)
        for t in range(kd):  # kD strided adds of whole depth planes: vectorised, not a per-element loop
            gx[a:b, :, t * dd:t * dd + (do - 1) * sd + 1:sd] += g2[:, :, :, t].transpose(0, 2, 1, 3, 4)
    return np.ascontiguousarray(gx[:, :, pads[0]:pads[0] + d])


def weight_grad(x, go, w_shape, stride, pads, dilation, groups):
    """Gradient of :func:`forward` with respect to its weight (shape ``w_shape``)."""
    nd = x.ndim - 2
    if nd == 2:
        return _bw._weight_grad_core(x, go, w_shape, stride, pads, dilation, groups)
    if nd == 1:
        s2, p2, d2 = _as2d_1d(stride, pads, dilation)
        cout, cin_g, k = w_shape
        return _bw._weight_grad_core(x[:, :, None], go[:, :, None], (cout, cin_g, 1, k), s2, p2, d2,
                                     groups).reshape(w_shape)
    n, cin = x.shape[:2]
    cout, cin_g, kd, kh, kw = w_shape
    do = go.shape[2]
    gw = np.zeros((cout, cin_g * kd, kh, kw), dtype=go.dtype)
    if n == 0 or go.size == 0:
        return gw.reshape(w_shape)
    for a, b in _sample_slices(n, do * cin * kd * x.shape[3] * x.shape[4] * x.itemsize):
        cols = _gather_depth(x[a:b], pads[:2], kd, stride[0], dilation[0], do)
        gw += _bw._weight_grad_core(cols, _planes(go[a:b]), gw.shape, stride[1:], pads[2:], dilation[1:], groups)
    return gw.reshape(w_shape)

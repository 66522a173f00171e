"""The N-d convolution cores: forward, input gradient and weight gradient for 1, 2 or 3 spatial dims.

One set of kernels serves every rank: the 2-D cores of :mod:`.conv`
(im2col + BLAS, depthwise loops, 1×1 products, all their tiling and threads).

* 1-D: the 2-D core on ``H = 1`` views (a free reshape).
* 3-D: depth taps become channels.  For a ``kD × kH × kW`` kernel, every output
  depth plane ``o`` is a 2-D convolution of the ``C_in·kD`` input planes
  ``x[:, c, o·sD + t·dD]`` (c, t) with the weight viewed as
  ``(C_out, C_in/groups·kD, kH, kW)``: one strided gather of the input into
  ``N·D_out`` samples, then the 2-D fast path on them as one batch.  The
  groups stay contiguous in that channel order, so ``groups`` carries over.

The gather costs one copy of ``kD`` times the input; it runs on slices of the
batch so that at most ``_GATHER_BUDGET_BYTES`` is live at once.

Transposed convolutions need nothing of their own: they are the input
gradient of the convolution (and their gradients its forward and weight
gradient), as in :mod:`.conv`.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import conv as _c2

# Live bytes of gathered depth planes per slice of the batch.  8x64x16x28x28 float32 3x3x3
# gathers 77 MB whole; slices of 32 MiB measured the same time (the 2-D core tiles them anyway).
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
        return _c2._input_grad_core(go, w, in_shape, stride, pads, dilation, groups)
    if nd == 1:
        s2, p2, d2 = _as2d_1d(stride, pads, dilation)
        n, c, length = in_shape
        return _c2._input_grad_core(go[:, :, None], w[:, :, None], (n, c, 1, length), s2, p2, d2, groups)[:, :, 0]
    n, cin, d, h, wd = in_shape
    cout, _, kd, _, _ = w.shape
    do = go.shape[2]
    sd, dd = stride[0], dilation[0]
    gx = np.zeros((n, cin, d + pads[0] + pads[1], h, wd), dtype=go.dtype)
    if gx.size == 0 or go.size == 0:
        return np.ascontiguousarray(gx[:, :, pads[0]:pads[0] + d])
    w2 = _w3(w)
    for a, b in _sample_slices(n, do * cin * kd * h * wd * go.itemsize):
        g2 = _c2._input_grad_core(_planes(go[a:b]), w2, ((b - a) * do, cin * kd, h, wd), stride[1:], pads[2:],
                                  dilation[1:], groups)
        g2 = g2.reshape(b - a, do, cin, kd, h, wd)
        for t in range(kd):  # kD strided adds of whole depth planes: vectorised, not a per-element loop
            gx[a:b, :, t * dd:t * dd + (do - 1) * sd + 1:sd] += g2[:, :, :, t].transpose(0, 2, 1, 3, 4)
    return np.ascontiguousarray(gx[:, :, pads[0]:pads[0] + d])


def weight_grad(x, go, w_shape, stride, pads, dilation, groups):
    """Gradient of :func:`forward` with respect to its weight (shape ``w_shape``)."""
    nd = x.ndim - 2
    if nd == 2:
        return _c2._weight_grad_core(x, go, w_shape, stride, pads, dilation, groups)
    if nd == 1:
        s2, p2, d2 = _as2d_1d(stride, pads, dilation)
        cout, cin_g, k = w_shape
        return _c2._weight_grad_core(x[:, :, None], go[:, :, None], (cout, cin_g, 1, k), s2, p2, d2,
                                     groups).reshape(w_shape)
    n, cin = x.shape[:2]
    cout, cin_g, kd, kh, kw = w_shape
    do = go.shape[2]
    gw = np.zeros((cout, cin_g * kd, kh, kw), dtype=go.dtype)
    if n == 0 or go.size == 0:
        return gw.reshape(w_shape)
    for a, b in _sample_slices(n, do * cin * kd * x.shape[3] * x.shape[4] * x.itemsize):
        cols = _gather_depth(x[a:b], pads[:2], kd, stride[0], dilation[0], do)
        gw += _c2._weight_grad_core(cols, _planes(go[a:b]), gw.shape, stride[1:], pads[2:], dilation[1:], groups)
    return gw.reshape(w_shape)

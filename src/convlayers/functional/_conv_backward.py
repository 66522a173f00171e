"""The gradients of the 2-D convolution core (``conv._forward_core``) with respect to its input and weight.

Split from :mod:`.conv`, which keeps the forward paths: both gradients are
themselves convolutions or products over the same unrolled tiles, so they use
its helpers (tiles, unrolls, the worker split).  ``_conv_nd`` runs 1-D and 3-D
gradients through these 2-D cores.
"""

from __future__ import annotations

import numpy as np

from .._kernels import conv as _k
from .._kernels import gemm as _gemm
from . import _conv_grad as _grad
from . import _layout, _threads, _winograd
from . import conv as _fw  # its helpers looked up at call time: a test's patch of one reaches both directions

__all__ = []


def _input_grad_core(go, w, in_shape, stride, pads, dilation, groups):
    """Gradient of ``conv._forward_core`` with respect to its input (shape ``in_shape``)."""
    n, cin, h, wd = in_shape
    cout, cin_g, kh, kw = w.shape
    ho, wo = go.shape[2], go.shape[3]
    dtype = go.dtype
    if n == 0 or cin == 0:
        return np.zeros(in_shape, dtype=dtype)
    go = np.ascontiguousarray(go)
    hp, wp = h + pads[0] + pads[1], wd + pads[2] + pads[3]
    if _fw._is_depthwise(cin, cin_g, groups):
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
        packed = None
        wf = w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]  # flipped_transposed as a view, for the route's check
        if groups == 1 and _fw._implicit_route(go, wf, (1, 1), dilation, 1, h, wd):
            # the implicit product's panels packed from w itself: no flipped copy, no reorder of it (for this
            # call only: the channels-last plan keeps to the implicit product for such a dict)
            packed = {"nhwc_panels": _gemm.conv_panels(w, flip=True), "this_call": True}
        else:
            wf = _layout.flipped_transposed(w, groups)
        return _fw._forward_core(go, wf, (1, 1), back_pads, dilation, groups, packed=packed)
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
    workers = _threads.workers_for(n * cout * ho * wo * cin_g * kh * kw)
    rows = _fw._tile_rows(k_rows * wo * dtype.itemsize, ho, _fw._budget(workers))

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

    _fw._run_tiles(job, list(range(n)), workers)
    return gx


def _weight_grad_core(x, go, w_shape, stride, pads, dilation, groups):
    """Gradient of ``conv._forward_core`` with respect to its weight (shape ``w_shape``)."""
    n, cin, h, wd = x.shape
    cout, cin_g, kh, kw = w_shape
    ho, wo = go.shape[2], go.shape[3]
    dtype = go.dtype
    if n == 0 or cout == 0:
        return np.zeros(w_shape, dtype=dtype)
    go = np.ascontiguousarray(go)
    if _fw._is_depthwise(cin, cin_g, groups):
        gw = np.empty((cout, kh, kw), dtype=dtype)
        kernel = _k.depthwise_weight_grad.for_work(go.size * kh * kw)
        kernel(go, np.ascontiguousarray(x, dtype=dtype), pads[0], pads[2], h + pads[0] + pads[1],
               wd + pads[2] + pads[3], stride[0], stride[1], dilation[0], dilation[1], gw)
        return gw.reshape(w_shape)
    product = _grad.weight_grad_route(x, go, w_shape, groups)  # the register-blocked product (see _conv_grad)
    if product == "first":
        return _grad.weight_grad(x, go, w_shape, stride, pads, dilation)
    if _winograd.applies(x.shape, w_shape, stride, dilation, groups):
        fast = _winograd.weight_grad(x.astype(dtype, copy=False), go, pads)
        if fast is not None:  # None: too small, or a non-finite sum that the products below must place
            return fast
    if product == "last":
        return _grad.weight_grad(x, go, w_shape, stride, pads, dilation)
    cout_g = cout // groups
    gog = go.reshape(n, groups, cout_g, ho * wo)
    if kh == 1 and kw == 1:
        xs = _fw._pointwise_input(x, pads, stride, ho, wo, groups)
        # sum over the batch inside one product: (g, Cout_g, N*L) @ (g, N*L, Cin_g)
        a = gog.transpose(1, 2, 0, 3).reshape(groups, cout_g, n * ho * wo)
        bt = xs.transpose(1, 0, 3, 2).reshape(groups, n * ho * wo, cin_g)
        return _threads.matmul(a, bt).reshape(w_shape)
    workers = _threads.workers_for(n * cout * ho * wo * cin_g * kh * kw)
    tiles = _fw._tiles(n, ho, cin * kh * kw * wo * dtype.itemsize, _fw._budget(workers), workers)
    if _fw._channels_last(n, ho, wo, groups):
        xh = np.ascontiguousarray(x.transpose(0, 2, 3, 1))

        def job(part, parallel):
            matmul = _threads.matmul if parallel else np.matmul
            gwt = None
            for n0, n1, r0, r1, cols in _fw._unrolled_nhwc(xh, (kh, kw), stride, pads, dilation, wo, part):
                # (taps·C_in, pixels) @ (pixels, C_out), the output gradient channels-last like the columns
                gon = np.ascontiguousarray(go[n0:n1, :, r0:r1, :].transpose(0, 2, 3, 1)).reshape(-1, cout)
                gwt = _accumulate(gwt, matmul(cols.T, gon))
            return gwt

        return _layout.from_taps_channels_out(_summed(_fw._run_tiles(job, tiles, workers)), w_shape)

    def job(part, parallel):
        matmul = _threads.matmul if parallel else np.matmul
        gwt = None
        for n0, n1, r0, r1, cols in _fw._unrolled(x, (kh, kw), stride, pads, dilation, wo, part, parallel):
            m, rows = n1 - n0, r1 - r0
            # the output gradient laid out like the columns: channel-major, then sample, row, column
            gos = go[n0:n1, :, r0:r1, :].transpose(1, 0, 2, 3).reshape(groups, cout_g, m * rows * wo)
            # The transposed gradient, columns × output gradientᵀ: OpenBLAS runs the tall product 1.4×
            # faster than output gradient × columnsᵀ (64×3136 by 3136×576: 1.17 vs 1.66 ms, one thread).
            gwt = _accumulate(gwt, matmul(cols.reshape(groups, cin_g * kh * kw, m * rows * wo),
                                          gos.transpose(0, 2, 1)))
        return gwt

    gwt = _summed(_fw._run_tiles(job, tiles, workers))
    return np.stack([_layout.transposed(part) for part in gwt]).reshape(w_shape)


def _accumulate(total, part):
    """``total + part``, in place after the first (a zeroed start and a temporary per tile cost two more
    passes over the (K, C_out) sum: 9.4 MB each for 512→512 3×3 filters)."""
    if total is None:
        return part
    total += part
    return total


def _summed(parts):
    """The workers' partial sums added into the first, in place."""
    total = parts[0]
    for part in parts[1:]:
        total += part
    return total

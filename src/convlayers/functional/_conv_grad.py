"""Convolution gradients on the register-blocked float32 product of ``_kernels.gemm``, instead of im2col + BLAS.

The weight gradient of a k×k convolution is the product of the output
gradient (C_out × pixels) by the channels-last unroll of the input
(pixels × taps·C_in).  :func:`weight_grad` runs it as
``_kernels.gemm.conv_weight_grad``: the output gradient is read in place from
its NCHW array and the unroll is never built whole (each task packs a block of
pixels of one panel of columns at a time, in L1), where the im2col route
wrote the whole unroll (7 MB for the digits CNN's 48->96 3x3 at 8x8, batch 64)
and OpenBLAS then packed it again.  Measured against that route (and against
Winograd where it applies), 2 threads, 2-core Intel Xeon VM (AVX-512),
alternating in one process, ms:

* 64x48->96 3x3 @8x8 2.0 -> 1.58, 64x96->192 @4x4 1.9 -> 1.5, the digits stem
  64x1->48 @8x8 0.30 -> 0.20 (PyTorch 2.13: 1.25, 1.23, 0.09);
* 32x64->64 @14 2.9 -> 2.2 and 8x256->256 @14 8.0 -> 7.1 (Winograd's),
  4x32->32 5x5 @28 1.40 -> 0.83, 8x64->128 3x3/2 @56 4.7 -> 4.4;
* lost: 8x64->64 3x3 @56 to Winograd (6.2 vs 9.0), and the 3-channel 7x7/2
  stem at 224 (12.7 vs 14.5: 21-value window rows make the packing most of it),
  which keep their paths (:func:`weight_grad_route`).

The sums run over the pixels in order, blocks of them added into the running
total, as a blocked BLAS sums; they match PyTorch's to float32 rounding.
"""

from __future__ import annotations

import numba
import numpy as np

from .._kernels import gemm as _gemm
from . import _layout, _threads

__all__ = ["weight_grad_route", "weight_grad"]

# Output pixels per sample up to which the product goes before Winograd's weight gradient (see the module).
_SMALL_IMAGE_PIXELS = 256


def weight_grad_route(x, go, w_shape, groups):
    """``"first"`` (before Winograd), ``"last"`` (after it declines) or None: where :func:`weight_grad` runs.

    float32, ``groups == 1``, windows larger than 1×1, and at least 16 input
    channels or small images (under 256 output pixels a sample, as the digits
    CNN's 1-channel stem); on small images it goes before Winograd.
    """
    cout, cin, kh, kw = w_shape
    if not (x.dtype == np.float32 and go.dtype == np.float32 and groups == 1 and kh * kw > 1):
        return None
    small = go.shape[2] * go.shape[3] <= _SMALL_IMAGE_PIXELS
    if cin < 16 and not small:
        return None
    return "first" if small else "last"


def weight_grad(x, go, w_shape, stride, pads, dilation):
    """The weight gradient of a float32 ``groups == 1`` convolution, (C_out, C_in, kh, kw).

    ``x`` (N, C_in, H, W) and ``go`` (N, C_out, Ho, Wo) NCHW; ``pads`` (top,
    bottom, left, right) zeros.  The input is copied zero-padded and
    channels-last once (a thread's scratch buffer); the product reads ``go``
    in place.
    """
    n, cin, h, wd = x.shape
    cout, _, kh, kw = w_shape
    ho, wo = go.shape[2:]
    # the padded input the windows need: the bottom/right padding only as far as the last window reaches
    hp = max(h + pads[0], (ho - 1) * stride[0] + dilation[0] * (kh - 1) + 1)
    wp = max(wd + pads[2], (wo - 1) * stride[1] + dilation[1] * (kw - 1) + 1)
    xp = _threads.scratch("padded", n * hp * wp * cin, np.float32).reshape(n, hp, wp, cin)
    _layout.pad_channels_last(x, pads[0], pads[2], xp)
    gw = np.empty((cout, kh * kw * cin), np.float32)
    from ._conv_channels_last import _parallel_min_macs
    kernel = _gemm.conv_weight_grad.for_work(n * ho * wo * cout * kh * kw * cin, _parallel_min_macs())
    kernel(xp, kh, kw, stride[0], stride[1], dilation[0], dilation[1], np.ascontiguousarray(go), gw,
           numba.get_num_threads() if kernel is _gemm.conv_weight_grad else 1)
    return np.ascontiguousarray(gw.reshape(cout, kh, kw, cin).transpose(0, 3, 1, 2))

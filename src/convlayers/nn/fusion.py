"""Inference fusion: Conv2d → BatchNorm2d (evaluation) → ReLU/ReLU6 in one pass.

In evaluation mode BatchNorm is a fixed per-channel affine map, and ReLU and
ReLU6 are clamps, so the three layers are one convolution followed by
``clamp(y·scale + shift, lo, hi)``.  :func:`conv_bn_act` applies that map to
each output tile of the convolution while it is still in cache (see
:func:`convlayers.functional.conv.conv2d_affine`), instead of two or three
more passes over the whole activation.  The modules and their state_dicts are
untouched: fusion happens per call, only when nothing could tell the
difference — no gradient is being recorded, BatchNorm uses its running
statistics, and the input is an array or Tensor (not the shape probe of
:func:`convlayers.analysis.summary`).  The arithmetic is the unfused path's
(same products, then the same ``y·scale + shift`` and clamp).
"""

from __future__ import annotations

import numpy as np

from ..autograd import Tensor, is_grad_enabled
from ..functional import conv as _conv
from ..functional import norm as _norm
from ..functional._validate import float_dtype
from .layers import BatchNorm2d, Conv2d, ReLU, ReLU6, _check_input

__all__ = ["conv_bn_act", "run_sequential"]

_CLAMPS = {ReLU: (0.0, np.inf), ReLU6: (0.0, 6.0)}


def _hooked(module):
    return bool(getattr(module, "_forward_hooks", None) or getattr(module, "_forward_pre_hooks", None))


def _fusable(conv, bn, x):
    # A module with forward hooks runs on its own, so that its hooks see its own input and output.
    return (type(conv) is Conv2d and not _hooked(conv) and not _hooked(bn) and type(bn) is BatchNorm2d and not is_grad_enabled()
            and not bn.training and bn.running_mean is not None and bn.running_var is not None
            and bn.num_features == conv.out_channels and isinstance(x, (Tensor, np.ndarray)))


def conv_bn_act(conv, bn, act, x):
    """``act(bn(conv(x)))``: one fused pass in inference, the three modules one by one otherwise.

    Parameters
    ----------
    conv : Conv2d
    bn : BatchNorm2d
        With ``num_features == conv.out_channels``.
    act : ReLU, ReLU6 or None
        None for Conv → BN alone (ResNet's second convolution of a block).
    x : ndarray or Tensor, shape (N, C_in, H, W)

    Returns
    -------
    ndarray or Tensor, shape (N, C_out, H_out, W_out)
        ``H_out = ⌊(H + 2p − d(k−1) − 1)/s⌋ + 1`` with the convolution's arguments.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> from convlayers.nn.fusion import conv_bn_act
    >>> conv, bn, act = nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU6()
    >>> bn.eval()
    BatchNorm2d(8, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)
    >>> x = np.random.default_rng(0).standard_normal((2, 3, 5, 5)).astype(np.float32)
    >>> y = conv_bn_act(conv, bn, act, x)            # an array, so no gradient: fused
    >>> y.shape, bool(np.allclose(y, act(bn(conv(x))), atol=1e-6))
    ((2, 8, 5, 5), True)
    """
    if not _fusable(conv, bn, x) or (act is not None and type(act) not in _CLAMPS):
        y = bn(conv(x))
        return y if act is None else act(y)
    conv.check_input(x)
    data = x.data if isinstance(x, Tensor) else x
    params = [p.data for p in (conv.weight, conv.bias, bn.weight, bn.bias) if p is not None]
    dtype = float_dtype(data, *params, bn.running_mean, bn.running_var)
    scale, shift = _norm.eval_scale_shift(
        bn.running_mean, bn.running_var, None if bn.weight is None else bn.weight.data,
        None if bn.bias is None else bn.bias.data, bn.eps, dtype)
    lo, hi = _CLAMPS[type(act)] if act is not None else (-np.inf, np.inf)
    out = _conv.conv2d_affine(data, conv.weight.data, None if conv.bias is None else conv.bias.data,
                              conv.stride, conv.padding, conv.dilation, conv.groups, conv.padding_mode,
                              scale, shift, lo, hi)
    return Tensor(out) if isinstance(x, Tensor) else out


def run_sequential(modules, x):
    """Run ``modules`` in order, fusing each Conv2d → BatchNorm2d [→ ReLU/ReLU6] run (see :func:`conv_bn_act`).

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> from convlayers.nn.fusion import run_sequential
    >>> block = nn.ConvBNReLU(3, 4).eval()
    >>> run_sequential(list(block), np.zeros((1, 3, 6, 6), dtype=np.float32)).shape
    (1, 4, 6, 6)
    """
    i = 0
    while i < len(modules):
        if i + 1 < len(modules) and _fusable(modules[i], modules[i + 1], x):
            act = modules[i + 2] if i + 2 < len(modules) and type(modules[i + 2]) in _CLAMPS \
                and not _hooked(modules[i + 2]) else None
            x = conv_bn_act(modules[i], modules[i + 1], act, x)
            i += 2 if act is None else 3
        else:
            x = modules[i](x)
            i += 1
    return x

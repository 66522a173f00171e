"""Differentiable versions of the element-wise activations, the dropout variants and the element-wise losses.

Kept apart from :mod:`convlayers._autograd_ops` (which imports this module
at its end) by idea and to keep each file short.  Every activation records
``functional.activation_backward`` of its own name; the losses record
``functional.pointwise_loss_backward``.
"""

from __future__ import annotations

import numpy as np

from . import functional as F
from ._autograd_ops import _d, _needs, _register
from .autograd import _result, _unbroadcast
from .functional.dropout import dropout_plan
from .functional import loss_pointwise as _lp
from .functional import pointwise as _pw

_ELEMENTWISE = ("sigmoid", "tanh", "silu", "hardswish", "hardsigmoid", "gelu", "mish", "elu", "selu", "celu",
                "leaky_relu", "hardtanh", "softplus", "logsigmoid", "softsign", "tanhshrink", "threshold",
                "hardshrink", "softshrink")


def _elementwise(name):
    def impl(func, a):
        x = a["input"]
        params = {k: _d(v) for k, v in a.items() if k not in ("input", "inplace")}
        xd = _d(x)
        # A Tensor's op never writes in place: the graph keeps the input for the backward.
        out = func(xd, **params)
        if xd.dtype.kind != "f":
            xd = xd.astype(out.dtype)
        return _result(out, (x,), lambda g: (_pw.activation_backward(name, g, xd, out, **params),))
    return impl


for _name in _ELEMENTWISE:
    _register(_name)(_elementwise(_name))


@_register("prelu")
def _prelu(func, a):
    x, w = a["input"], a["weight"]
    xd, wd = _d(x), _d(w)
    out = func(xd, wd)
    return _result(out, (x, w), lambda g: _pw.prelu_backward(g, xd, wd))


@_register("glu")
def _glu(func, a):
    x, dim = a["input"], a["dim"]
    xd = _d(x)
    out = func(xd, dim)
    return _result(out, (x,), lambda g: (_pw.glu_backward(g, xd, dim),))


def _dropout_variant(name):
    def impl(func, a):
        x = a["input"]
        plan = dropout_plan(name, _d(x), a["p"], a["training"], a["generator"])
        if plan is None:
            return x
        scale, shift = plan
        xd = _d(x)
        out = (xd * scale if shift is None else xd * scale + shift).astype(xd.dtype, copy=False)
        return _result(out, (x,), lambda g: ((g * scale).astype(xd.dtype, copy=False),))
    return impl


for _name in ("dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout"):
    _register(_name)(_dropout_variant(_name))


def _pointwise_loss(name, extra):
    def impl(func, a):
        x, t, w = a["input"], a["target"], a.get("weight")
        if _needs(w) or _needs(a.get("pos_weight")):
            raise TypeError(f"{name}: gradients with respect to weight or pos_weight are not supported "
                            "(PyTorch has none either)")
        kwargs = {k: _d(v) for k, v in a.items() if k not in ("input", "target")}
        xd, td = _d(x), _d(t)
        out = func(xd, td, **kwargs)
        reduction = _lp.legacy_reduction(a.get("size_average"), a.get("reduce"), a["reduction"], name) \
            if (a.get("size_average") is not None or a.get("reduce") is not None) else a["reduction"]
        params = {k: _d(a[k]) for k in extra}

        def backward(g):
            gx, gt = _lp.pointwise_loss_backward(name, g, xd, td, reduction, _d(w), **params)
            return (_unbroadcast(gx, xd.shape) if _needs(x) else None,
                    _unbroadcast(gt, td.shape) if _needs(t) else None)

        return _result(out, (x, t), backward)
    return impl


for _name, _extra in (("binary_cross_entropy", ()), ("binary_cross_entropy_with_logits", ("pos_weight",)),
                      ("l1_loss", ()), ("smooth_l1_loss", ("beta",)), ("huber_loss", ("delta",)),
                      ("kl_div", ("log_target",))):
    _register(_name)(_pointwise_loss(_name, _extra))

_ = (np, F)

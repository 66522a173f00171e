"""Activations and softmax: each through its ``convlayers.functional`` op when one exists.

ONNX's parametric forms that PyTorch's fixed-constant functions do not cover
(HardSigmoid's alpha/beta, Selu's alpha/gamma) are the functional op scaled,
or a clamp of an affine map in NumPy.  Integer inputs (Relu on int8 and the
like, opset 14+) stay integers.
"""

from __future__ import annotations

import numpy as np

from ... import functional as F
from ._registry import has_functional, register


def _float(x):
    return x.dtype.kind == "f"


@register("Relu", since=1)
def relu(node, x):
    return F.relu(x) if _float(x) else np.maximum(x, 0).astype(x.dtype)


@register("Clip", since=1)
def clip(node, x, lo=None, hi=None):
    if node.opset < 11:
        lo, hi = node.attr("min", -3.4028234663852886e38), node.attr("max", 3.4028234663852886e38)
    y = x
    if lo is not None:
        y = np.maximum(y, np.asarray(lo, dtype=x.dtype))
    if hi is not None:
        y = np.minimum(y, np.asarray(hi, dtype=x.dtype))
    return y.astype(x.dtype, copy=False) if y is not x else x.copy()


@register("LeakyRelu", since=1, needs=("leaky_relu",))
def leaky_relu(node, x):
    return F.leaky_relu(x, float(node.attr("alpha", 0.01)))


@register("PRelu", since=1, needs=("prelu",))
def prelu(node, x, slope):
    s = np.asarray(slope)
    if x.ndim >= 2 and (s.size == 1 or (s.size == x.shape[1] and s.squeeze().ndim <= 1
                                        and (s.ndim == 1 and x.ndim == 2 or s.shape[0] == x.shape[1]))):
        return F.prelu(x, s.reshape(-1).astype(x.dtype, copy=False))
    # any other unidirectional broadcast of the slope: the definition, max(0,x) + slope·min(0,x)
    return np.where(x < 0, x * s.astype(x.dtype, copy=False), x)


@register("Elu", since=1, needs=("elu",))
def elu(node, x):
    return F.elu(x, float(node.attr("alpha", 1.0)))


_SELU_ALPHA, _SELU_GAMMA = 1.67326319217681884765625, 1.05070102214813232421875


@register("Selu", since=1, needs=("selu", "elu"))
def selu(node, x):
    alpha, gamma = float(node.attr("alpha", _SELU_ALPHA)), float(node.attr("gamma", _SELU_GAMMA))
    if np.float32(alpha) == np.float32(_SELU_ALPHA) and np.float32(gamma) == np.float32(_SELU_GAMMA):
        return F.selu(x)
    return (F.elu(x, alpha) * x.dtype.type(gamma)).astype(x.dtype, copy=False)


@register("Celu", since=12, needs=("celu",))
def celu(node, x):
    return F.celu(x, float(node.attr("alpha", 1.0)))


@register("Sigmoid", since=1, needs=("sigmoid",))
def sigmoid(node, x):
    return F.sigmoid(x)


@register("HardSigmoid", since=1, needs=("hardsigmoid",))
def hard_sigmoid(node, x):
    alpha, beta = float(node.attr("alpha", 0.2)), float(node.attr("beta", 0.5))
    if np.float32(alpha) == np.float32(1 / 6) and beta == 0.5:  # PyTorch's export: its own function
        return F.hardsigmoid(x)
    return np.clip(x * x.dtype.type(alpha) + x.dtype.type(beta), 0, 1).astype(x.dtype, copy=False)


@register("HardSwish", since=14, needs=("hardswish",))
def hard_swish(node, x):
    return F.hardswish(x)


@register("Mish", since=18, needs=("mish",))
def mish(node, x):
    return F.mish(x)


@register("Gelu", since=20, needs=("gelu",))
def gelu(node, x):
    return F.gelu(x, approximate=node.attr("approximate", "none"))


@register("Softplus", since=1, needs=("softplus",))
def softplus(node, x):
    # ONNX's softplus has no linear threshold; PyTorch's default (20) switches where log1p(exp(x)) == x anyway
    return F.softplus(x)


@register("Softsign", since=1, needs=("softsign",))
def softsign(node, x):
    return F.softsign(x)


@register("Tanh", since=1)
def tanh(node, x):
    return F.tanh(x) if has_functional("tanh") else np.tanh(x)


def _softmax(fn, node, x):
    if node.opset >= 13:
        return fn(x, int(node.attr("axis", -1)))
    # before opset 13: the input is flattened to 2-D at ``axis`` and normalised over the second part
    axis = int(node.attr("axis", 1)) % max(x.ndim, 1)
    rows = int(np.prod(x.shape[:axis], dtype=np.int64))
    return fn(x.reshape(rows, -1), 1).reshape(x.shape)


@register("Softmax", since=1)
def softmax(node, x):
    return _softmax(F.softmax, node, x)


@register("LogSoftmax", since=1)
def log_softmax(node, x):
    return _softmax(F.log_softmax, node, x)

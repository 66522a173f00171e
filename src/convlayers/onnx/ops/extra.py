"""Ops beyond the CNN core that map onto existing functional ops: RMSNormalization, LpNormalization,
GridSample, AffineGrid, the two loss ops, ThresholdedRelu, Shrink, Swish, Hardmax, TopK.
"""

from __future__ import annotations

import numpy as np

from ... import functional as F
from ._registry import int_list, register


@register("RMSNormalization", since=23, needs=("rms_norm",))
def rms_norm(node, x, scale):
    axis = int(node.attr("axis", -1)) % x.ndim
    shape = x.shape[axis:]
    return F.rms_norm(x, shape, np.broadcast_to(scale, shape), float(node.attr("epsilon", 1e-5)))


@register("LpNormalization", since=1, needs=("normalize",),
          check=lambda n, c: None if int(n.attr("p", 2)) in (1, 2) else f"p={n.attr('p')}")
def lp_normalization(node, x):
    # an all-zero row normalises to zeros (ONNX's case), which normalize's eps floor on the norm gives
    return F.normalize(x, float(node.attr("p", 2)), int(node.attr("axis", -1)))


_GRID_MODES = {"linear": "bilinear", "bilinear": "bilinear", "nearest": "nearest", "cubic": "bicubic",
               "bicubic": "bicubic"}


def _check_grid(node, constants):
    mode = node.attr("mode", "linear" if node.opset >= 20 else "bilinear")
    if mode not in _GRID_MODES:
        return f"mode={mode!r}"
    if node.attr("padding_mode", "zeros") not in ("zeros", "border", "reflection"):
        return f"padding_mode={node.attr('padding_mode')!r}"
    return None


@register("GridSample", since=16, check=_check_grid, needs=("grid_sample",))
def grid_sample(node, x, grid):
    mode = _GRID_MODES[node.attr("mode", "linear" if node.opset >= 20 else "bilinear")]
    return F.grid_sample(x, grid, mode, node.attr("padding_mode", "zeros"), bool(node.attr("align_corners", 0)))


@register("AffineGrid", since=20, needs=("affine_grid",))
def affine_grid(node, theta, size):
    return F.affine_grid(theta, tuple(int_list(size)), bool(node.attr("align_corners", 0)))


def _check_loss(node, constants):
    if node.attr("reduction", "mean") not in ("mean", "sum", "none"):
        return f"reduction={node.attr('reduction')!r}"
    return None


def _ignore(node):
    v = node.attr("ignore_index")
    return -100 if v is None else int(v)


@register("NegativeLogLikelihoodLoss", since=12, check=_check_loss, needs=("nll_loss",))
def nll_loss(node, x, target, weight=None):
    return F.nll_loss(x, target.astype(np.int64), weight, _ignore(node), node.attr("reduction", "mean")) \
        .astype(x.dtype, copy=False)


@register("SoftmaxCrossEntropyLoss", since=12, check=_check_loss, needs=("nll_loss", "log_softmax"))
def softmax_cross_entropy(node, scores, labels, weights=None):
    log_prob = F.log_softmax(scores, 1)
    loss = F.nll_loss(log_prob, labels.astype(np.int64), weights, _ignore(node), node.attr("reduction", "mean"))
    loss = np.asarray(loss).astype(scores.dtype, copy=False)
    return (loss, log_prob) if len(node.outputs) > 1 else loss


@register("ThresholdedRelu", since=10, needs=("threshold",))
def thresholded_relu(node, x):
    return F.threshold(x, float(node.attr("alpha", 1.0)), 0.0)


@register("Shrink", since=9)
def shrink(node, x):
    lambd, bias = float(node.attr("lambd", 0.5)), float(node.attr("bias", 0.0))
    if x.dtype.kind == "f" and bias == lambd and F.__dict__.get("softshrink"):
        return F.softshrink(x, lambd)
    if x.dtype.kind == "f" and bias == 0 and F.__dict__.get("hardshrink"):
        return F.hardshrink(x, lambd)
    t = x.dtype.type
    return np.where(x < -lambd, x + t(bias), np.where(x > lambd, x - t(bias), t(0))).astype(x.dtype)


@register("Swish", since=24, needs=("silu", "sigmoid"))
def swish(node, x):
    alpha = float(node.attr("alpha", 1.0))
    if alpha == 1.0:
        return F.silu(x)
    return x * F.sigmoid(x * x.dtype.type(alpha))


@register("Hardmax", since=1)
def hardmax(node, x):
    axis = int(node.attr("axis", -1 if node.opset >= 13 else 1)) % x.ndim
    if node.opset < 13:
        rows = int(np.prod(x.shape[:axis], dtype=np.int64))
        return _one_hot_max(x.reshape(rows, -1), 1).reshape(x.shape)
    return _one_hot_max(x, axis)


def _one_hot_max(x, axis):
    idx = np.expand_dims(np.argmax(x, axis=axis), axis)
    out = np.zeros_like(x)
    np.put_along_axis(out, idx, 1, axis=axis)
    return out


@register("TopK", since=1)
def topk(node, x, k=None):
    k = int(node.attr("k")) if node.opset < 10 else int(np.asarray(k).reshape(-1)[0])
    axis = int(node.attr("axis", -1)) % x.ndim
    largest, want_sorted = int(node.attr("largest", 1)), int(node.attr("sorted", 1))
    # stable sort: among equal values the lower index comes first, as ONNX asks
    order = np.argsort(-x if largest else x, axis=axis, kind="stable") if x.dtype.kind != "u" or not largest \
        else np.argsort(np.iinfo(x.dtype).max - x, axis=axis, kind="stable")
    idx = np.take(order, np.arange(k), axis=axis)
    if not want_sorted:
        idx = np.sort(idx, axis=axis)
    return np.take_along_axis(x, idx, axis=axis), idx.astype(np.int64)

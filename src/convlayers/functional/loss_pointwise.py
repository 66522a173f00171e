"""Losses that compare ``input`` and ``target`` element by element: BCE (on probabilities or logits), L1,
smooth L1, Huber and KL divergence, with PyTorch's reductions, legacy ``size_average``/``reduce`` flags,
warnings and error messages, and their gradients (:func:`pointwise_loss_backward`).

Each loss is one vectorised pass: an element-wise loss, then the reduction.
The gradient with respect to ``input`` (and ``target`` where PyTorch has one)
is the element-wise derivative times the upstream gradient, divided by the
mean's denominator.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np

from .._dispatch import tensor_aware
from .loss import _check_reduction, _float_array

__all__ = [
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "l1_loss", "smooth_l1_loss", "huber_loss",
    "kl_div", "pointwise_loss_backward", "legacy_reduction",
]


def legacy_reduction(size_average, reduce, reduction, op):
    """PyTorch's rule for the deprecated ``size_average``/``reduce`` flags (with its warning).

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     legacy_reduction(False, None, "mean", "l1_loss")
    'sum'
    """
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    result = ("mean" if size_average else "sum") if reduce else "none"
    warnings.warn(f"size_average and reduce args will be deprecated, please use reduction='{result}' instead.",
                  UserWarning, stacklevel=4)
    return result


def _same_size_or_warn(x, t, op):
    if x.shape != t.shape:
        warnings.warn(f"Using a target size ({t.shape}) that is different to the input size ({x.shape}). "
                      "This will likely lead to incorrect results due to broadcasting. "
                      "Please ensure they have the same size.", UserWarning, stacklevel=4)
    try:
        return np.broadcast_shapes(x.shape, t.shape)
    except ValueError:
        raise ValueError(f"{op}: target shape {t.shape} does not broadcast with input shape {x.shape}") from None


def _weight(weight, shape, op, name="weight", exact=False):
    if weight is None:
        return None
    w = _float_array(weight, name, op)
    if exact and w.shape != tuple(shape):
        raise ValueError("Weights and input must have the same size.")
    try:
        np.broadcast_shapes(w.shape, tuple(shape))
    except ValueError:
        raise ValueError(f"{op}: {name} shape {w.shape} does not broadcast with the input shape {tuple(shape)}") \
            from None
    return w


def _reduce(losses, reduction, dtype, weight_sum=None):
    if reduction == "none":
        return losses.astype(dtype, copy=False)
    total = losses.sum(dtype=dtype)
    if reduction == "sum":
        return np.asarray(total, dtype=dtype)
    with np.errstate(invalid="ignore", divide="ignore"):
        denominator = losses.size if weight_sum is None else weight_sum
        return np.asarray(total / denominator, dtype=dtype)


def _prepare(op, input, target, reduction, size_average=None, reduce=None, same_size=False, extra=()):
    x = _float_array(input, "input", op)
    t = _float_array(target, "target", op)
    reduction = legacy_reduction(size_average, reduce, reduction, op)
    if not (op == "kl_div" and reduction == "batchmean"):
        _check_reduction(reduction, op)
    if same_size and t.shape != x.shape:
        if op == "binary_cross_entropy":
            raise ValueError(f"Using a target size ({t.shape}) that is different to the input size ({x.shape}) "
                             "is deprecated. Please ensure they have the same size.")
        raise ValueError(f"Target size ({t.shape}) must be the same as input size ({x.shape})")
    shape = x.shape if same_size else _same_size_or_warn(x, t, op)
    return x, t, reduction, shape


# --- element-wise parts: loss, d/dinput, d/dtarget ------------------------------

def _bce_parts(x, t, w, p, grad):
    if not grad:
        # PyTorch clamps each log at -100 so that log(0) gives a finite loss.
        with np.errstate(divide="ignore"):
            loss = -(t * np.maximum(np.log(x), -100) + (1 - t) * np.maximum(np.log1p(-x), -100))
        return (loss if w is None else loss * w), None, None
    eps = x.dtype.type(1e-12)
    dx = (x - t) / np.maximum((1 - x) * x, eps)
    with np.errstate(divide="ignore"):
        dt = np.maximum(np.log1p(-x), -100) - np.maximum(np.log(x), -100)
    if w is not None:
        dx, dt = dx * w, dt * w
    return None, dx, dt


def _sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _log_sigmoid(x):
    return np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))


def _bce_logits_parts(x, t, w, p, grad):
    pw = p["pos_weight"]
    if not grad:
        softplus_neg = -_log_sigmoid(x)     # log(1 + e^-x)
        loss = (1 - t) * x + (softplus_neg if pw is None else (1 + (pw - 1) * t) * softplus_neg)
        return (loss if w is None else loss * w), None, None
    s = _sigmoid(x)
    if pw is None:
        dx, dt = s - t, -x
    else:
        dx = s * (1 + (pw - 1) * t) - pw * t
        dt = (1 - pw) * _log_sigmoid(x) - x
    if w is not None:
        dx, dt = dx * w, dt * w
    return None, dx, dt


def _l1_parts(x, t, w, p, grad):
    d = x - t
    if not grad:
        return (np.abs(d) if w is None else np.abs(d) * w), None, None
    s = np.sign(d)
    s = s if w is None else s * w
    return None, s, -s


def _smooth_l1_parts(x, t, w, p, grad):
    d = x - t
    a = np.abs(d)
    beta = x.dtype.type(p["beta"])
    if beta == 0:
        return _l1_parts(x, t, w, p, grad)
    if not grad:
        return np.where(a < beta, 0.5 * d * d / beta, a - 0.5 * beta), None, None
    dx = np.where(a < beta, d / beta, np.sign(d))
    return None, dx, -dx


def _huber_parts(x, t, w, p, grad):
    d = x - t
    a = np.abs(d)
    delta = x.dtype.type(p["delta"])
    if not grad:
        loss = np.where(a < delta, 0.5 * d * d, delta * (a - 0.5 * delta))
        return (loss if w is None else loss * w), None, None
    dx = np.clip(d, -delta, delta)
    dx = dx if w is None else dx * w
    return None, dx, -dx


def _kl_parts(x, t, w, p, grad):
    if p["log_target"]:
        et = np.exp(t)
        if not grad:
            return et * (t - x), None, None
        return None, -et, et * (t - x + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if not grad:
            # xlogy: 0 where target is 0, as PyTorch.
            return np.where(t == 0, 0, t * np.log(np.where(t == 0, 1, t))) - t * x, None, None
        # xlogy(t, t)' = log t + t/t: NaN at t = 0, as in PyTorch.
        return None, -t, np.log(t) + t / t - x


_PARTS = {
    "binary_cross_entropy": _bce_parts,
    "binary_cross_entropy_with_logits": _bce_logits_parts,
    "l1_loss": _l1_parts,
    "smooth_l1_loss": _smooth_l1_parts,
    "huber_loss": _huber_parts,
    "kl_div": _kl_parts,
}


def _finish(op, x, t, w, params, reduction, shape):
    xb, tb = np.broadcast_to(x, shape), np.broadcast_to(t, shape)
    losses, _, _ = _PARTS[op](xb, tb, w, params, False)
    losses = np.broadcast_to(np.asarray(losses, dtype=x.dtype), shape)
    if reduction == "batchmean":
        total = _reduce(losses, "sum", x.dtype)
        return np.asarray(total / shape[0], dtype=x.dtype) if len(shape) else total
    weight_sum = w.sum(dtype=x.dtype) if (op == "l1_loss" and w is not None) else None
    return _reduce(losses, reduction, x.dtype, weight_sum)


@tensor_aware
def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """``-w (t log x + (1 - t) log(1 - x))`` on probabilities ``x``, as ``torch.nn.functional.binary_cross_entropy``.

    Each log is clamped at -100 (PyTorch's rule), so ``x`` of exactly 0 or 1 gives a finite loss.

    Parameters
    ----------
    input : ndarray
        Probabilities in [0, 1].
    target : ndarray
        Same shape as ``input`` (PyTorch refuses any other).
    weight : ndarray, optional
        Broadcast against the element-wise loss.
    reduction : {'mean', 'sum', 'none'}

    Examples
    --------
    >>> import numpy as np
    >>> round(float(binary_cross_entropy(np.array([0.5, 0.5]), np.array([1.0, 0.0]))), 4)
    0.6931
    """
    op = "binary_cross_entropy"
    x, t, reduction, shape = _prepare(op, input, target, reduction, size_average, reduce, same_size=True)
    w = _weight(weight, shape, op)
    if x.size and ((x < 0) | (x > 1)).any():
        raise ValueError("binary_cross_entropy: all elements of input should be between 0 and 1")
    return _finish(op, x, t, w, {}, reduction, shape)


@tensor_aware
def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    """BCE on logits (sigmoid folded in, computed stably), as ``torch.nn.functional.binary_cross_entropy_with_logits``.

    ``pos_weight`` multiplies the positive term (broadcast over the last dimension, the classes).

    Examples
    --------
    >>> import numpy as np
    >>> round(float(binary_cross_entropy_with_logits(np.array([0.0]), np.array([1.0]))), 4)
    0.6931
    """
    op = "binary_cross_entropy_with_logits"
    x, t, reduction, shape = _prepare(op, input, target, reduction, size_average, reduce, same_size=True)
    w = _weight(weight, shape, op)
    pw = _weight(pos_weight, shape, op, "pos_weight")
    return _finish(op, x, t, w, {"pos_weight": pw}, reduction, shape)


@tensor_aware
def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean (or sum) absolute error ``|x - t|``, as ``torch.nn.functional.l1_loss``.

    With ``weight`` (the input's shape), ``'mean'`` divides by ``weight.sum()``, as PyTorch.

    Examples
    --------
    >>> import numpy as np
    >>> float(l1_loss(np.array([1.0, -3.0]), np.array([0.0, 0.0])))
    2.0
    """
    op = "l1_loss"
    x, t, reduction, shape = _prepare(op, input, target, reduction, size_average, reduce)
    w = _weight(weight, x.shape, op, exact=True)
    return _finish(op, x, t, w, {}, reduction, shape)


@tensor_aware
def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """``0.5 d² / beta`` where ``|d| < beta``, else ``|d| - beta / 2``, as ``torch.nn.functional.smooth_l1_loss``.

    Examples
    --------
    >>> import numpy as np
    >>> float(smooth_l1_loss(np.array([0.5, 3.0]), np.array([0.0, 0.0]), reduction="sum"))
    2.625
    """
    op = "smooth_l1_loss"
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real):
        raise TypeError(f"{op}: beta must be a real number, got {type(beta).__name__}")
    if beta < 0:
        raise ValueError("smooth_l1_loss does not support negative values for beta.")
    x, t, reduction, shape = _prepare(op, input, target, reduction, size_average, reduce)
    return _finish(op, x, t, None, {"beta": float(beta)}, reduction, shape)


@tensor_aware
def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """``0.5 d²`` where ``|d| < delta``, else ``delta (|d| - delta / 2)``, as ``torch.nn.functional.huber_loss``.

    Examples
    --------
    >>> import numpy as np
    >>> float(huber_loss(np.array([0.5, 3.0]), np.array([0.0, 0.0]), reduction="sum"))
    2.625
    """
    op = "huber_loss"
    if isinstance(delta, bool) or not isinstance(delta, numbers.Real):
        raise TypeError(f"{op}: delta must be a real number, got {type(delta).__name__}")
    if not delta > 0:
        raise ValueError("huber_loss does not support non-positive values for delta.")
    x, t, reduction, shape = _prepare(op, input, target, reduction)
    w = _weight(weight, x.shape, op, exact=True)
    return _finish(op, x, t, w, {"delta": float(delta)}, reduction, shape)


@tensor_aware
def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """Kullback-Leibler divergence of ``target`` from the log-probabilities ``input``, as PyTorch.

    ``t (log t - x)`` (``exp(t) (t - x)`` with ``log_target``); ``reduction='batchmean'``
    divides the sum by the batch size (the mathematically right KL); ``'mean'``
    warns, as PyTorch does, that it divides by every element.

    Examples
    --------
    >>> import numpy as np
    >>> logq = np.log(np.array([[0.5, 0.5]]))
    >>> round(float(kl_div(logq, np.array([[0.9, 0.1]]), reduction="batchmean")), 4)
    0.3681
    """
    op = "kl_div"
    if size_average is None and reduce is None and reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size."
                      "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
                      "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
                      UserWarning, stacklevel=3)
    if reduction not in ("none", "mean", "sum", "batchmean"):
        raise ValueError(f"kl_div: reduction must be one of ('none', 'mean', 'sum', 'batchmean'), got {reduction!r}")
    x, t, reduction, shape = _prepare(op, input, target, reduction, size_average, reduce)
    return _finish(op, x, t, None, {"log_target": bool(log_target)}, reduction, shape)


def pointwise_loss_backward(op, grad_output, input, target, reduction="mean", weight=None, **params):
    """Gradients of the element-wise loss ``op`` (e.g. ``"huber_loss"``) with respect to ``input`` and ``target``.

    Both come back in the broadcast shape of input and target (sum them down to
    each operand's shape for a broadcast call).

    Examples
    --------
    >>> import numpy as np
    >>> pointwise_loss_backward("l1_loss", np.array(1.0), np.array([1.0, -3.0]), np.array([0.0, 0.0]))
    (array([ 0.5, -0.5]), array([-0.5,  0.5]))
    """
    x, t = np.asarray(input), np.asarray(target)
    shape = np.broadcast_shapes(x.shape, t.shape)
    xb, tb = np.broadcast_to(x, shape), np.broadcast_to(t, shape)
    w = None if weight is None else np.asarray(weight)
    params.setdefault("pos_weight", None)
    _, dx, dt = _PARTS[op](xb, tb, w, params, True)
    g = np.asarray(grad_output)
    if reduction == "mean":
        if op == "l1_loss" and w is not None:
            g = g / w.sum()
        else:
            g = g / max(int(np.prod(shape)), 1)
    elif reduction == "batchmean" and len(shape):
        g = g / shape[0]
    gx = np.broadcast_to(np.asarray(dx * g, dtype=x.dtype), shape)
    gt = np.broadcast_to(np.asarray(dt * g, dtype=x.dtype), shape)
    return gx, gt

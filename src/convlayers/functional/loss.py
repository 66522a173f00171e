"""Softmax, log-softmax and the losses, with the backward helpers autograd uses.

Everything is vectorised NumPy: the work is a few passes over an (N, C)
array, which NumPy already does at memory speed.  The class axis is 1 for
batched inputs (N, C, d1, ...) and 0 for a single sample (C,), as in PyTorch.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np

from .._dispatch import tensor_aware

__all__ = [
    "softmax", "log_softmax", "softmin", "nll_loss", "cross_entropy", "mse_loss",
    "log_softmax_backward", "softmax_backward", "nll_loss_backward",
    "cross_entropy_backward", "mse_loss_backward",
]

_REDUCTIONS = ("none", "mean", "sum")


def _float_array(value, name, op):
    if isinstance(value, (list, tuple, numbers.Number)):
        value = np.asarray(value)
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{op}: {name} must be an ndarray, got {type(value).__name__}")
    if value.dtype.kind != "f":
        raise TypeError(f"{op}: {name} must have a floating dtype, got dtype {value.dtype}")
    return value


def _check_dim(dim, ndim, op):
    if not isinstance(dim, numbers.Integral) or isinstance(dim, bool):
        raise TypeError(f"{op}: dim must be an int, got {type(dim).__name__}")
    lo = -max(ndim, 1)
    if not lo <= dim < max(ndim, 1):
        raise ValueError(f"{op}: dim must be in [{lo}, {max(ndim, 1) - 1}] for a {ndim}-D input, got {dim}")
    return dim % ndim if ndim else 0


def _check_reduction(reduction, op):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _softmax_input(input, dim, dtype, op):
    """Validate, resolve an implicit ``dim`` as PyTorch does (with its warning), and cast to ``dtype``."""
    if dtype is not None:
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"{op}: dtype must be a NumPy floating dtype or None, got {dtype!r}") from None
        if dtype.kind != "f":
            raise TypeError(f"{op}: dtype must be a floating dtype (float32 or float64), got {dtype}")
        if isinstance(input, (list, tuple, numbers.Number)):
            input = np.asarray(input)
        if isinstance(input, np.ndarray) and input.dtype.kind in "biuf":
            input = input.astype(dtype, copy=False)
    x = _float_array(input, "input", op)
    if dim is None:
        # PyTorch's legacy rule for a missing dim: 0 for 0-, 1- and 3-D inputs, else 1.
        warnings.warn(f"Implicit dimension choice for {op} has been deprecated. "
                      "Change the call to include dim=X as an argument.", UserWarning, stacklevel=4)
        dim = 0 if x.ndim in (0, 1, 3) else 1
    return x, _check_dim(dim, x.ndim, op)


@tensor_aware
def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    """Logarithm of the softmax along ``dim``, computed stably.

    Parameters
    ----------
    input : ndarray
        Floating-point scores (integers only together with ``dtype``).
    dim : int
        The axis the probabilities sum over (PyTorch's deprecated implicit
        choice, with its warning, when omitted).
    _stacklevel : int
        Accepted for PyTorch compatibility.
    dtype : numpy floating dtype, optional
        Cast the input to it first (the result has this dtype).

    Returns
    -------
    ndarray
        ``input - logsumexp(input, dim)``, same shape and dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers.functional import log_softmax
    >>> log_softmax(np.array([[0.0, 0.0]]), dim=1)
    array([[-0.69314718, -0.69314718]])
    """
    x, d = _softmax_input(input, dim, dtype, "log_softmax")
    if x.ndim == 0:
        return x - x
    if x.size == 0:
        return np.empty_like(x)
    # Subtracting the max keeps exp() from overflowing; it cancels exactly.
    shifted = x - x.max(axis=d, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=d, keepdims=True))


@tensor_aware
def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """Softmax along ``dim``: ``exp(x) / sum(exp(x))``, computed stably.

    Parameters
    ----------
    input : ndarray
        Floating-point scores (integers only together with ``dtype``).
    dim : int
        The axis the probabilities sum over (PyTorch's deprecated implicit
        choice, with its warning, when omitted).
    _stacklevel : int
        Accepted for PyTorch compatibility.
    dtype : numpy floating dtype, optional
        Cast the input to it first (the result has this dtype).

    Returns
    -------
    ndarray
        Probabilities, same shape and dtype as ``input``.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers.functional import softmax
    >>> softmax(np.array([0.0, 0.0]), dim=0)
    array([0.5, 0.5])
    >>> softmax(np.array([1, 1]), dim=0, dtype=np.float32)
    array([0.5, 0.5], dtype=float32)
    """
    x, d = _softmax_input(input, dim, dtype, "softmax")
    return _softmax_array(x, d)


def _softmax_array(x, d):
    if x.ndim == 0:
        return np.ones_like(x)
    if x.size == 0:
        return np.empty_like(x)
    e = np.exp(x - x.max(axis=d, keepdims=True))
    return e / e.sum(axis=d, keepdims=True)


@tensor_aware
def softmin(input, dim=None, _stacklevel=3, dtype=None):
    """``softmax(-input, dim)``, as ``torch.nn.functional.softmin``.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers.functional import softmin
    >>> softmin(np.array([0.0, np.log(3.0)]), dim=0)
    array([0.75, 0.25])
    """
    x, d = _softmax_input(input, dim, dtype, "softmin")
    return _softmax_array(-x, d)


def log_softmax_backward(grad_output, output, dim):
    """Gradient of :func:`log_softmax` given its ``output``.

    Examples
    --------
    >>> import numpy as np
    >>> out = log_softmax(np.array([0.0, 0.0]), dim=0)
    >>> log_softmax_backward(np.array([1.0, 0.0]), out, dim=0)
    array([ 0.5, -0.5])
    """
    if output.ndim == 0:
        return np.zeros_like(output)
    return grad_output - np.exp(output) * grad_output.sum(axis=dim, keepdims=True)


def softmax_backward(grad_output, output, dim):
    """Gradient of :func:`softmax` given its ``output``.

    Examples
    --------
    >>> import numpy as np
    >>> softmax_backward(np.array([1.0, 0.0]), softmax(np.array([0.0, 0.0]), dim=0), dim=0)
    array([ 0.25, -0.25])
    """
    if output.ndim == 0:
        return np.zeros_like(output)
    return output * (grad_output - (grad_output * output).sum(axis=dim, keepdims=True))


# --- class-index losses -----------------------------------------------------

def _class_layout(x, target, weight, op):
    """Validate an (N, C, d...) / (C,) input against its index target.

    Returns the class axis, the number of classes and the weight (or None).
    """
    if x.ndim == 0:
        raise ValueError(f"{op}: input must be (C,) or (N, C, d1, ...), got a 0-D array")
    class_axis = 0 if x.ndim == 1 else 1
    n_classes = x.shape[class_axis]
    expected = () if x.ndim == 1 else (x.shape[0],) + x.shape[2:]
    if target.shape != expected:
        raise ValueError(
            f"{op}: target must have shape {expected} for input of shape {x.shape}, got {target.shape}"
        )
    if weight is not None:
        weight = _float_array(weight, "weight", op)
        if weight.shape != (n_classes,):
            raise ValueError(f"{op}: weight must have shape ({n_classes},), got {weight.shape}")
    return class_axis, n_classes, weight


def _check_targets(target, n_classes, ignore_index, op):
    valid = target != ignore_index
    bad = valid & ((target < 0) | (target >= n_classes))
    if bad.any():
        raise ValueError(
            f"{op}: target values must be in [0, {n_classes - 1}] or ignore_index={ignore_index}, "
            f"got {target[bad].flat[0]}"
        )
    return valid


def _index_target(target, op):
    if isinstance(target, (list, tuple, numbers.Integral)):
        target = np.asarray(target)
    if not isinstance(target, np.ndarray):
        raise TypeError(f"{op}: target must be an ndarray, got {type(target).__name__}")
    if target.dtype.kind not in "iu":
        raise TypeError(f"{op}: target must hold integer class indices, got dtype {target.dtype}")
    return target


def _picked(values, target, valid, class_axis):
    """``values[i, target[i], ...]`` along the class axis (0 where ignored)."""
    idx = np.expand_dims(np.where(valid, target, 0), class_axis)
    return np.take_along_axis(values, idx, axis=class_axis).squeeze(class_axis)


def _sample_weights(weight, target, valid, dtype):
    safe = np.where(valid, target, 0)
    w = np.ones(target.shape, dtype=dtype) if weight is None else weight[safe].astype(dtype, copy=False)
    return np.where(valid, w, 0).astype(dtype, copy=False)


def _reduce(losses, reduction, denominator):
    if reduction == "none":
        return losses
    total = losses.sum()
    if reduction == "sum":
        return total
    # All targets ignored gives 0/0 = nan, silently, as in PyTorch.
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / denominator


@tensor_aware
def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood of class indices, given log-probabilities.

    Parameters
    ----------
    input : ndarray
        Log-probabilities, (N, C, d1, ...) or (C,).
    target : ndarray of int
        Class indices, (N, d1, ...) or ().
    weight : ndarray, optional
        Per-class weights, shape (C,).
    ignore_index : int, default -100
        Target value that contributes nothing (not even to the mean's count).
    reduction : {'mean', 'sum', 'none'}
        'mean' divides by the summed weights of the counted targets.

    Returns
    -------
    ndarray
        The loss: 0-D, or shaped like ``target`` with ``reduction='none'``.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers.functional import nll_loss
    >>> nll_loss(np.log(np.array([[0.5, 0.5]])), np.array([0]))
    np.float64(0.6931471805599453)
    """
    op = "nll_loss"
    x = _float_array(input, "input", op)
    target = _index_target(target, op)
    _check_reduction(reduction, op)
    class_axis, n_classes, weight = _class_layout(x, target, weight, op)
    valid = _check_targets(target, n_classes, ignore_index, op)
    w = _sample_weights(weight, target, valid, x.dtype)
    losses = -w * _picked(x, target, valid, class_axis)
    return _reduce(losses, reduction, w.sum())[()]


def nll_loss_backward(grad_output, input, target, weight=None, ignore_index=-100, reduction="mean"):
    """Gradient of :func:`nll_loss` with respect to ``input``.

    Examples
    --------
    >>> import numpy as np
    >>> nll_loss_backward(np.array(1.0), np.zeros((2, 3)), np.array([0, 2]))
    array([[-0.5,  0. ,  0. ],
           [ 0. ,  0. , -0.5]])
    """
    class_axis = 0 if input.ndim == 1 else 1
    valid = target != ignore_index
    w = _sample_weights(weight, target, valid, input.dtype)
    scale = _per_sample_scale(grad_output, reduction, w.sum(), target.shape)
    grad = np.zeros_like(input)
    idx = np.expand_dims(np.where(valid, target, 0), class_axis)
    np.put_along_axis(grad, idx, np.expand_dims(-w * scale, class_axis), axis=class_axis)
    return grad


def _per_sample_scale(grad_output, reduction, denominator, shape):
    g = np.asarray(grad_output)
    if reduction == "mean":
        # Every target ignored: the loss is 0/0 = nan but PyTorch's gradient is 0, not nan.
        with np.errstate(invalid="ignore", divide="ignore"):
            g = np.where(np.asarray(denominator) == 0, np.zeros((), g.dtype), g / denominator)
    return np.broadcast_to(g, shape)


@tensor_aware
def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Cross-entropy between the softmax of ``input`` and ``target``.

    ``target`` holds class indices (integer dtype, shape (N, d1, ...) or ())
    or class probabilities (floating dtype, the shape of ``input``).

    Parameters
    ----------
    input : ndarray
        Unnormalised scores, (N, C, d1, ...) or (C,).
    target : ndarray
        Class indices or probabilities, see above.
    weight : ndarray, optional
        Per-class weights, shape (C,).
    ignore_index : int, default -100
        Index target value that contributes nothing (index targets only).
    reduction : {'mean', 'sum', 'none'}
        How to combine the per-sample losses, as in PyTorch.
    label_smoothing : float in [0, 1], default 0
        Mix the target with the uniform distribution by this amount.

    Returns
    -------
    ndarray
        The loss: 0-D, or per sample with ``reduction='none'``.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers.functional import cross_entropy
    >>> float(cross_entropy(np.zeros((1, 4)), np.array([2])))  # log(4)
    1.3862943611198906
    """
    op = "cross_entropy"
    x = _float_array(input, "input", op)
    _check_reduction(reduction, op)
    if not isinstance(label_smoothing, numbers.Real) or not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be a float in [0, 1], got {label_smoothing!r}")
    if isinstance(target, np.ndarray) and target.dtype.kind == "f":
        return _cross_entropy_probs(x, target, weight, reduction, label_smoothing)[()]
    target = _index_target(target, op)
    class_axis, n_classes, weight = _class_layout(x, target, weight, op)
    valid = _check_targets(target, n_classes, ignore_index, op)
    logp = log_softmax(x, class_axis)
    w = _sample_weights(weight, target, valid, x.dtype)
    nll = -w * _picked(logp, target, valid, class_axis)
    loss = _reduce(nll, reduction, w.sum())
    if label_smoothing > 0:
        # The smoothing term's mean divides by the same summed target weights
        # as the NLL term (the count of non-ignored targets when unweighted).
        smooth = -_class_weighted(logp, weight, class_axis).sum(axis=class_axis)
        smooth = np.where(valid, smooth, 0)
        loss = (1 - label_smoothing) * loss + (label_smoothing / n_classes) * _reduce(
            smooth, reduction, w.sum())
    return np.asarray(loss, dtype=x.dtype)[()]


def _class_weighted(values, weight, class_axis):
    if weight is None:
        return values
    shape = [1] * values.ndim
    shape[class_axis] = -1
    return values * weight.reshape(shape)


def _cross_entropy_probs(x, target, weight, reduction, label_smoothing):
    op = "cross_entropy"
    if target.shape != x.shape:
        raise ValueError(
            f"{op}: probability target must have the input's shape {x.shape}, got {target.shape}"
        )
    if x.ndim == 0:
        raise ValueError(f"{op}: input must be (C,) or (N, C, d1, ...), got a 0-D array")
    class_axis = 0 if x.ndim == 1 else 1
    n_classes = x.shape[class_axis]
    if weight is not None:
        weight = _float_array(weight, "weight", op)
        if weight.shape != (n_classes,):
            raise ValueError(f"{op}: weight must have shape ({n_classes},), got {weight.shape}")
    if label_smoothing > 0:
        target = target * (1 - label_smoothing) + label_smoothing / n_classes
    logp = log_softmax(x, class_axis)
    losses = -(_class_weighted(logp * target, weight, class_axis)).sum(axis=class_axis)
    return np.asarray(_reduce(losses, reduction, x.size // n_classes), dtype=x.dtype)


def cross_entropy_backward(grad_output, input, target, weight=None, ignore_index=-100,
                           reduction="mean", label_smoothing=0.0):
    """Gradient of :func:`cross_entropy` with respect to ``input``: ``softmax(input) − onehot(target)``, scaled.

    Examples
    --------
    >>> import numpy as np
    >>> cross_entropy_backward(np.array(1.0), np.zeros((1, 2)), np.array([1]))
    array([[ 0.5, -0.5]])
    """
    class_axis = 0 if input.ndim == 1 else 1
    n_classes = input.shape[class_axis]
    logp = log_softmax(input, class_axis)
    if target.dtype.kind == "f":
        if label_smoothing > 0:
            target = target * (1 - label_smoothing) + label_smoothing / n_classes
        per_sample = input.shape[:class_axis] + input.shape[class_axis + 1:]
        scale = _per_sample_scale(grad_output, reduction, input.size // n_classes, per_sample)
        g_logp = -_class_weighted(target, weight, class_axis) * np.expand_dims(scale, class_axis)
    else:
        valid = target != ignore_index
        w = _sample_weights(weight, target, valid, input.dtype)
        g_logp = nll_loss_backward(grad_output, logp, target, weight, ignore_index, reduction)
        g_logp = g_logp * (1 - label_smoothing)
        if label_smoothing > 0:
            scale = _per_sample_scale(grad_output, reduction, w.sum(), target.shape)
            scale = np.where(valid, scale, 0) * (label_smoothing / n_classes)
            ones = np.ones_like(input)
            g_logp = g_logp - _class_weighted(ones, weight, class_axis) * np.expand_dims(scale, class_axis)
    return log_softmax_backward(g_logp, logp, class_axis).astype(input.dtype, copy=False)


@tensor_aware
def mse_loss(input, target, reduction="mean"):
    """Mean squared error between ``input`` and ``target``.

    Parameters
    ----------
    input, target : ndarray
        Floating-point arrays; broadcast together (with a warning if the
        shapes differ, as PyTorch does).
    reduction : {'mean', 'sum', 'none'}
        How to combine the squared errors.

    Returns
    -------
    ndarray
        The loss.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers.functional import mse_loss
    >>> float(mse_loss(np.array([1.0, 3.0]), np.array([0.0, 0.0])))
    5.0
    """
    op = "mse_loss"
    x = _float_array(input, "input", op)
    t = _float_array(target, "target", op)
    _check_reduction(reduction, op)
    _broadcast_shape(x, t, op)
    diff = x - t
    sq = diff * diff
    return _reduce(sq, reduction, sq.size)[()]


def _broadcast_shape(x, t, op):
    try:
        shape = np.broadcast_shapes(x.shape, t.shape)
    except ValueError:
        raise ValueError(
            f"{op}: target shape {t.shape} does not broadcast with input shape {x.shape}"
        ) from None
    if x.shape != t.shape:
        warnings.warn(
            f"{op}: target shape {t.shape} differs from input shape {x.shape}; they will be "
            "broadcast, which is probably not what you want",
            UserWarning, stacklevel=3,
        )
    return shape


def mse_loss_backward(grad_output, input, target, reduction="mean"):
    """Gradient of :func:`mse_loss` with respect to ``input`` (broadcast shape; negate for ``target``).

    Examples
    --------
    >>> import numpy as np
    >>> mse_loss_backward(np.array(1.0), np.array([1.0, 3.0]), np.array([0.0, 0.0]))
    array([1., 3.])
    """
    diff = input - target
    g = np.asarray(grad_output)
    if reduction == "mean":
        g = g / diff.size
    return 2 * diff * g

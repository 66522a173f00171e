"""Batch normalisation."""

from __future__ import annotations

import numbers

import numpy as np

from .._dispatch import tensor_aware
from ._validate import as_array, float_dtype

__all__ = ["batch_norm"]


@tensor_aware
def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
               eps=1e-5):
    r"""Batch normalisation, as ``torch.nn.functional.batch_norm``.

    ``y = (x − mean) / √(var + eps) · weight + bias`` per channel (axis 1).

    In evaluation (``training=False``) mean and var are ``running_mean`` and
    ``running_var``.  In training they are the batch's statistics over every
    axis but 1 (the biased variance normalises), and the running buffers, when
    given, are updated in place: ``r ← (1 − momentum)·r + momentum·batch``,
    with the *unbiased* variance, as PyTorch does.

    Parameters
    ----------
    input : ndarray, shape (N, C, ...) 
    running_mean, running_var : ndarray, shape (C,), or None
        Required when ``training`` is False.
    weight, bias : ndarray, shape (C,), optional
        The affine scale γ and shift β.
    training : bool, default False
    momentum : float, default 0.1
    eps : float, default 1e-5

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0], [3.0]]).reshape(2, 1, 1, 1)
    >>> batch_norm(x, np.zeros(1), np.ones(1), training=True, eps=0.0).ravel()
    array([-1.,  1.])
    """
    x = as_array(input, "input")
    if x.ndim < 2:
        raise ValueError(f"batch_norm: input must be at least 2-D (N, C, ...), got shape {x.shape}")
    c = x.shape[1]
    arrays = {}
    for name, value in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                        ("bias", bias)):
        if value is None:
            arrays[name] = None
            continue
        a = as_array(value, name)
        if a.shape != (c,):
            raise ValueError(f"batch_norm: {name} must have shape ({c},) for input with {c} channels, got {a.shape}")
        arrays[name] = a
    if not training and (arrays["running_mean"] is None or arrays["running_var"] is None):
        raise ValueError("batch_norm: running_mean and running_var are required when training=False")
    if not isinstance(eps, numbers.Real) or eps < 0:
        raise ValueError(f"batch_norm: eps must be a non-negative number, got {eps!r}")
    axes = (0, *range(2, x.ndim))
    count = x.size // max(c, 1)
    if training and count <= 1:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got input shape {x.shape}")
    dtype = float_dtype(x, *(a for a in arrays.values() if a is not None))
    xf = x.astype(dtype, copy=False)
    shape = (1, c) + (1,) * (x.ndim - 2)
    if training:
        mean = xf.mean(axis=axes)
        var = xf.var(axis=axes)
        rm, rv = arrays["running_mean"], arrays["running_var"]
        if rm is not None and running_mean is not None:
            running_mean *= 1 - momentum
            running_mean += momentum * mean
        if rv is not None and running_var is not None:
            running_var *= 1 - momentum
            running_var += momentum * var * (count / (count - 1))
    else:
        mean = arrays["running_mean"].astype(dtype, copy=False)
        var = arrays["running_var"].astype(dtype, copy=False)
    scale = 1.0 / np.sqrt(var + eps)
    if arrays["weight"] is not None:
        scale = scale * arrays["weight"]
    shift = -mean * scale
    if arrays["bias"] is not None:
        shift = shift + arrays["bias"]
    return (xf * scale.astype(dtype).reshape(shape) + shift.astype(dtype).reshape(shape)).astype(dtype, copy=False)

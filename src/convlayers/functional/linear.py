"""Fully connected layer."""

from __future__ import annotations

import numpy as np

from .._dispatch import tensor_aware
from . import _threads
from ._validate import as_array, float_dtype

__all__ = ["linear"]


@tensor_aware
def linear(input, weight, bias=None):
    """``y = x Wᵀ + b``, as ``torch.nn.functional.linear``.

    Parameters
    ----------
    input : ndarray, shape (*, in_features)
    weight : ndarray, shape (out_features, in_features)
    bias : ndarray, shape (out_features,), optional

    Returns
    -------
    ndarray, shape (*, out_features)

    Examples
    --------
    >>> import numpy as np
    >>> linear(np.ones((2, 3)), np.ones((4, 3)), np.arange(4.0))
    array([[3., 4., 5., 6.],
           [3., 4., 5., 6.]])
    """
    x = as_array(input, "input")
    w = as_array(weight, "weight")
    b = None if bias is None else as_array(bias, "bias")
    if w.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape {w.shape}")
    if x.ndim < 1 or x.shape[-1] != w.shape[1]:
        raise ValueError(f"linear: input's last dimension must be in_features={w.shape[1]}, got shape {x.shape}")
    if b is not None and b.shape != (w.shape[0],):
        raise ValueError(f"linear: bias must have shape ({w.shape[0]},), got {b.shape}")
    dtype = float_dtype(x, w, b)
    out = _threads.matmul(x.astype(dtype, copy=False), w.astype(dtype, copy=False).T)
    if b is not None:
        out += b.astype(dtype, copy=False)
    return out

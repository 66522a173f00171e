"""Element-wise activations."""

from __future__ import annotations

import numpy as np

from .._dispatch import tensor_aware
from ._validate import as_array, float_dtype

__all__ = ["relu", "relu6"]


@tensor_aware
def relu(input, inplace=False):
    """``max(x, 0)``, as ``torch.nn.functional.relu``; NaN stays NaN.

    Examples
    --------
    >>> import numpy as np
    >>> relu(np.array([-1.0, 0.0, 2.0]))
    array([0., 0., 2.])
    """
    x = as_array(input, "input")
    if inplace and x.dtype.kind == "f":
        return np.maximum(x, 0, out=x)
    return np.maximum(x, 0).astype(float_dtype(x), copy=False)


@tensor_aware
def relu6(input, inplace=False):
    """``min(max(x, 0), 6)``, as ``torch.nn.functional.relu6`` (MobileNet's clipped ReLU); NaN stays NaN.

    Examples
    --------
    >>> import numpy as np
    >>> relu6(np.array([-1.0, 3.0, 9.0]))
    array([0., 3., 6.])
    """
    x = as_array(input, "input")
    if inplace and x.dtype.kind == "f":
        return np.clip(x, 0, 6, out=x)
    return np.clip(x, 0, 6).astype(float_dtype(x), copy=False)

"""Element-wise activations."""

from __future__ import annotations

import numpy as np

from .. import _kernels as _kernels_pkg
from .._dispatch import tensor_aware
from .._kernels import activation as _k
from ._validate import as_array, float_dtype

__all__ = ["relu", "relu6", "relu_backward", "relu6_backward"]

# One pass of a compare and a select is so cheap that a parallel launch only pays from ~2M elements
# (64x48x8x8: 0.04 ms serial, 0.10 ms parallel; 8x64x112x112: 1.8 ms parallel, 2.8 ms as NumPy's g * (x > 0)),
# on the workqueue layer; on tbb's ~4 µs launches from ~256K (2-core Intel Xeon VM: 64x96x8x8 0.102 -> 0.040
# ms, 64x48x8x8 0.030 -> 0.025, 16x64x8x8 0.012 -> 0.017).  None: chosen by the layer.
_PARALLEL_MIN_SIZE = None


def _parallel_min_size():
    if _PARALLEL_MIN_SIZE is not None:
        return _PARALLEL_MIN_SIZE
    return 1 << 18 if _kernels_pkg.cheap_launch() else 1 << 21


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


def relu_backward(grad_output, input):
    """Gradient of :func:`relu` with respect to its input: ``grad_output`` where ``input > 0``, else 0.

    As PyTorch's ``threshold_backward``: where ``input <= 0`` the result is 0
    even for a NaN gradient, and a NaN input passes its gradient.

    Examples
    --------
    >>> import numpy as np
    >>> relu_backward(np.array([5.0, 5.0, 5.0]), np.array([-1.0, 0.0, 2.0]))
    array([0., 0., 5.])
    """
    return _clamp_backward("relu_backward", grad_output, input, 0.0, None)


def relu6_backward(grad_output, input):
    """Gradient of :func:`relu6` with respect to its input: ``grad_output`` where ``0 < input < 6``, else 0.

    As PyTorch's vectorised ``hardtanh_backward``: nothing passes at the
    corners 0 and 6, nor for a NaN input (PyTorch's scalar path, used only for
    tensors of a few elements, passes a NaN input's gradient), and a blocked
    position is 0 even for a NaN gradient.

    Examples
    --------
    >>> import numpy as np
    >>> relu6_backward(np.ones(4), np.array([-1.0, 0.0, 3.0, 6.0]))
    array([0., 0., 1., 0.])
    """
    return _clamp_backward("relu6_backward", grad_output, input, 0.0, 6.0)


def _clamp_backward(op, grad_output, input, lo, hi):
    """``grad_output`` where ``lo < input`` (and ``input < hi`` unless hi is None), else 0."""
    g = as_array(grad_output, "grad_output")
    x = as_array(input, "input")
    if g.shape != x.shape:
        raise ValueError(f"{op}: grad_output must have the input's shape {x.shape}, got {g.shape}")
    dtype = float_dtype(g, x)
    gf = np.ascontiguousarray(g, dtype=dtype).reshape(-1)
    xf = np.ascontiguousarray(x).reshape(-1)
    out = np.empty(gf.shape, dtype=dtype)
    kernel = _k.clamp_backward.for_work(out.size, _parallel_min_size())
    kernel(gf, xf, lo, 0.0 if hi is None else hi, hi is not None, out)
    return out.reshape(x.shape)

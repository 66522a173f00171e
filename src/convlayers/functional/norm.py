"""Batch normalisation."""

from __future__ import annotations

import numbers

import numpy as np

from .. import _kernels as _kernels_pkg
from .._dispatch import tensor_aware
from .._kernels import norm as _k
from ._validate import as_array, float_dtype

__all__ = ["batch_norm"]

# Below this many elements a parallel launch costs more than the serial pass (see _kernels/norm.py): 2M on
# the workqueue layer; on tbb's ~4 µs launches 64K (2-core Intel Xeon VM, forward/backward: 64x96x8x8
# 0.22/0.25 -> 0.09/0.10 ms, 64x48x8x8 0.080/0.095 -> 0.046/0.047, 16x64x8x8 0.026/0.031 -> 0.017/0.022,
# 8x32x8x8 0.009/0.009 -> 0.010/0.012).  None: chosen by the layer.
_PARALLEL_MIN_SIZE = None


def _parallel_min_size():
    if _PARALLEL_MIN_SIZE is not None:
        return _PARALLEL_MIN_SIZE
    return 1 << 16 if _kernels_pkg.cheap_launch() else 1 << 21


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
    >>> batch_norm(x, np.zeros(1), np.ones(1), training=True, eps=1e-12).ravel()
    array([-1.,  1.])
    """
    return batch_norm_forward(input, running_mean, running_var, weight, bias, training, momentum, eps)[0]


def batch_norm_forward(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
                       eps=1e-5):
    """:func:`batch_norm` on arrays, also returning what :func:`batch_norm_train_backward` needs.

    Returns ``(out, saved)``; ``saved`` is None in evaluation mode.
    """
    x = as_array(input, "input")
    if x.size == 0 and x.ndim < 2:
        # PyTorch returns an empty copy for an empty input of any rank, buffers untouched.
        return x.astype(float_dtype(x)), None
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
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise TypeError(f"batch_norm: eps must be a real number, got {eps!r}")
    if eps < 0:
        raise ValueError(f"batch_norm: eps must be a non-negative number, got {eps!r}")
    if training and not eps > 0:  # PyTorch's rule; eps=0 divided by a zero variance inside the kernel
        raise ValueError(f"batch_norm: eps must be positive during training, got {eps!r}")
    if training:
        for name in ("running_mean", "running_var"):
            a, given = arrays[name], {"running_mean": running_mean, "running_var": running_var}[name]
            if a is not None and (not isinstance(given, np.ndarray) or a.dtype.kind != "f"
                                  or not a.flags.writeable):
                # checked for both before either is updated in place
                raise TypeError(f"batch_norm: {name} is updated in place when training, so it must be a "
                                f"writable floating-point ndarray, got {type(given).__name__} of dtype {a.dtype}"
                                + ("" if a.flags.writeable else " (read-only)"))
    count = x.size // max(c, 1)
    if training and count == 1:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got input shape {x.shape}")
    dtype = float_dtype(x, *(a for a in arrays.values() if a is not None))
    if x.size == 0:
        return x.astype(dtype), None
    if momentum is None:
        momentum = 0.0
    if training:
        x3 = np.ascontiguousarray(x, dtype=dtype).reshape(x.shape[0], c, int(np.prod(x.shape[2:])))
        w, b = arrays["weight"], arrays["bias"]
        w = np.ones(c, dtype=dtype) if w is None else np.ascontiguousarray(w, dtype=dtype)
        b = np.zeros(c, dtype=dtype) if b is None else np.ascontiguousarray(b, dtype=dtype)
        out = np.empty(x3.shape, dtype=dtype)
        mean, var = np.empty(c), np.empty(c)
        save_mean, save_invstd = np.empty(c, dtype=dtype), np.empty(c, dtype=dtype)
        kernel = _k.bn_train_forward.for_work(x3.size, _parallel_min_size())
        kernel(x3, w, b, float(eps), out, mean, var, save_mean, save_invstd)
        rm, rv = arrays["running_mean"], arrays["running_var"]
        if rm is not None and running_mean is not None:
            running_mean *= 1 - momentum
            running_mean += momentum * mean
        if rv is not None and running_var is not None:
            running_var *= 1 - momentum
            running_var += momentum * var * (count / (count - 1))
        return out.reshape(x.shape), (x3, w, save_mean, save_invstd)
    scale, shift = eval_scale_shift(arrays["running_mean"], arrays["running_var"], arrays["weight"],
                                    arrays["bias"], eps, dtype)
    x3 = np.ascontiguousarray(x, dtype=dtype).reshape(x.shape[0], c, int(np.prod(x.shape[2:])))
    out = np.empty(x3.shape, dtype=dtype)
    _k.scale_shift.for_work(x3.size)(x3, scale, shift, out)
    return out.reshape(x.shape), None


def eval_scale_shift(running_mean, running_var, weight, bias, eps, dtype):
    """Evaluation-mode batch norm as one per-channel affine map: ``y = x·scale + shift``, in ``dtype``."""
    mean = running_mean.astype(dtype, copy=False)
    var = running_var.astype(dtype, copy=False)
    scale = 1.0 / np.sqrt(var + eps)
    if weight is not None:
        scale = scale * weight
    shift = -mean * scale
    if bias is not None:
        shift = shift + bias
    return scale.astype(dtype), shift.astype(dtype)


def batch_norm_train_backward(grad_output, saved, need_input=True):
    """Gradients of training-mode :func:`batch_norm` for input, weight and bias.

    ``saved`` is the second result of :func:`batch_norm_forward`; the input
    gradient is None unless ``need_input``.
    """
    x3, w, save_mean, save_invstd = saved
    c = x3.shape[1]
    g3 = np.ascontiguousarray(grad_output, dtype=x3.dtype).reshape(x3.shape)
    grad_input = np.empty(x3.shape, dtype=x3.dtype) if need_input else np.empty((0, 0, 0), dtype=x3.dtype)
    grad_weight, grad_bias = np.empty(c, dtype=x3.dtype), np.empty(c, dtype=x3.dtype)
    kernel = _k.bn_train_backward.for_work(x3.size, _parallel_min_size())
    kernel(g3, x3, save_mean, save_invstd, w, need_input, grad_input, grad_weight, grad_bias)
    if not need_input:
        grad_input = None
    else:
        grad_input = grad_input.reshape(np.shape(grad_output))
    return grad_input, grad_weight, grad_bias

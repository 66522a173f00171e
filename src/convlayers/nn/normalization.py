"""Normalisation layers: BatchNorm1d/3d (sharing BatchNorm2d's base), GroupNorm, LayerNorm,
InstanceNorm1d/2d/3d, LocalResponseNorm and RMSNorm, with PyTorch's arguments,
``state_dict`` keys, initialisation and repr.
"""

from __future__ import annotations

import numbers

import numpy as np

from .. import functional as F
from . import init
from .layers import _BatchNorm, _float_dtype, _positive_int, _reset_running_stats, _running_stats
from .module import Module, Parameter

__all__ = ["BatchNorm1d", "BatchNorm3d", "GroupNorm", "LayerNorm", "InstanceNorm1d", "InstanceNorm2d",
           "InstanceNorm3d", "LocalResponseNorm", "RMSNorm"]


def _shape_of(x, name):
    shape = getattr(x, "shape", None)
    if shape is None:
        raise TypeError(f"{name}: input must be an ndarray or Tensor, got {type(x).__name__}")
    return tuple(shape)


class BatchNorm1d(_BatchNorm):
    r"""Batch normalisation of ``(N, C)`` or ``(N, C, L)`` input, per channel (see :class:`BatchNorm2d`).

    Parameters are :class:`BatchNorm2d`'s: ``num_features, eps=1e-5, momentum=0.1, affine=True,
    track_running_stats=True, dtype=None, *, bias=True``.

    Shape
    -----
    - Input: ``(N, C)`` or ``(N, C, L)``; output the same.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.BatchNorm1d(4)(np.ones((2, 4, 3), np.float32)).shape
    (2, 4, 3)
    """

    _ranks = (2, 3)
    _rank_text = "2D or 3D"


class BatchNorm3d(_BatchNorm):
    r"""Batch normalisation of ``(N, C, D, H, W)`` input, per channel (see :class:`BatchNorm2d`).

    Shape
    -----
    - Input: ``(N, C, D, H, W)``; output the same.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.BatchNorm3d(2)(np.ones((2, 2, 2, 3, 3), np.float32)).shape
    (2, 2, 2, 3, 3)
    """

    _ranks = (5,)
    _rank_text = "5D"


def _device(device):
    if device is not None and str(device) != "cpu":
        raise ValueError(f"device: convlayers runs on the CPU only, got {device!r}")


def _eps(eps):
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise TypeError(f"eps must be a number, got {eps!r}")
    return eps


def _flag(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def _affine_parameters(module, enabled, shape, dtype, bias):
    """Register ``weight`` (ones) and ``bias`` (zeros, or None without ``bias``), or both None, as PyTorch does."""
    if enabled:
        module.weight = Parameter(np.ones(shape, dtype))
        if bias:
            module.bias = Parameter(np.zeros(shape, dtype))
        else:
            module.register_parameter("bias", None)
    else:
        module.register_parameter("weight", None)
        module.register_parameter("bias", None)


def _reset_affine(module):
    """PyTorch's initial values: ``weight`` ones, ``bias`` zeros, where they exist."""
    if module.weight is not None:
        init.ones_(module.weight)
    if module.bias is not None:
        init.zeros_(module.bias)


class GroupNorm(Module):
    r"""Group normalisation (``torch.nn.GroupNorm``): statistics per sample over groups of channels.

    Parameters
    ----------
    num_groups : int
    num_channels : int
        Divisible by ``num_groups``.
    eps : float, default 1e-5
    affine : bool, default True
        Learn a per-channel ``weight`` (ones) and ``bias`` (zeros).
    dtype : float32 or float64, default float32

    Shape
    -----
    - Input: ``(N, C, *)``; output the same.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> gn = nn.GroupNorm(2, 4)
    >>> gn, list(gn.state_dict())
    (GroupNorm(2, 4, eps=1e-05, affine=True, bias=True), ['weight', 'bias'])
    >>> gn(np.ones((1, 4, 3), np.float32)).shape
    (1, 4, 3)
    """

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device=None, dtype=None, *, bias=True):
        super().__init__()
        _device(device)
        self.num_groups = _positive_int(num_groups, "num_groups")
        self.num_channels = _positive_int(num_channels, "num_channels")
        if self.num_channels % self.num_groups:
            raise ValueError(f"num_channels must be divisible by num_groups, got num_channels={num_channels}, "
                             f"num_groups={num_groups}")
        self.eps = _eps(eps)
        self.affine = _flag(affine, "affine")
        dtype = _float_dtype(dtype)
        _affine_parameters(self, self.affine, self.num_channels, dtype, bias)

    def reset_parameters(self):
        _reset_affine(self)

    def extra_repr(self):
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")

    def forward(self, input):
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)


def _normalized_shape(value):
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value,)
    try:
        shape = tuple(int(v) for v in value)
    except TypeError:
        raise TypeError(f"normalized_shape must be an int or a sequence of ints, got {value!r}") from None
    if any(v < 0 for v in shape):
        raise ValueError(f"normalized_shape must be non-negative, got {value!r}")
    return shape


class LayerNorm(Module):
    r"""Layer normalisation over the trailing ``normalized_shape`` axes (``torch.nn.LayerNorm``).

    Parameters
    ----------
    normalized_shape : int or tuple of ints
    eps : float, default 1e-5
    elementwise_affine : bool, default True
        Learn ``weight`` (ones) and ``bias`` (zeros) of shape ``normalized_shape``.
    bias : bool, default True
    dtype : float32 or float64, default float32

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.LayerNorm(3)
    LayerNorm((3,), eps=1e-05, elementwise_affine=True, bias=True)
    >>> nn.LayerNorm(3)(np.array([[1.0, 2.0, 3.0]], np.float32)).round(3)
    array([[-1.225,  0.   ,  1.225]], dtype=float32)
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, device=None, dtype=None):
        super().__init__()
        _device(device)
        self.normalized_shape = _normalized_shape(normalized_shape)
        self.eps = _eps(eps)
        self.elementwise_affine = _flag(elementwise_affine, "elementwise_affine")
        dtype = _float_dtype(dtype)
        _affine_parameters(self, self.elementwise_affine, self.normalized_shape, dtype, bias)

    def reset_parameters(self):
        _reset_affine(self)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")

    def forward(self, input):
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)


class RMSNorm(Module):
    r"""RMS normalisation over the trailing ``normalized_shape`` axes (``torch.nn.RMSNorm``).

    Parameters
    ----------
    normalized_shape : int or tuple of ints
    eps : float, optional
        Default: the data type's machine epsilon.
    elementwise_affine : bool, default True
        Learn ``weight`` (ones).
    dtype : float32 or float64, default float32

    Examples
    --------
    >>> from convlayers import nn
    >>> nn.RMSNorm([2, 3])
    RMSNorm((2, 3), eps=None, elementwise_affine=True)
    """

    def __init__(self, normalized_shape, eps=None, elementwise_affine=True, device=None, dtype=None):
        super().__init__()
        _device(device)
        self.normalized_shape = _normalized_shape(normalized_shape)
        self.eps = None if eps is None else _eps(eps)
        self.elementwise_affine = _flag(elementwise_affine, "elementwise_affine")
        dtype = _float_dtype(dtype)
        if self.elementwise_affine:
            self.weight = Parameter(np.ones(self.normalized_shape, dtype))
        else:
            self.register_parameter("weight", None)

    def reset_parameters(self):
        if self.elementwise_affine:
            init.ones_(self.weight)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"

    def forward(self, input):
        return F.rms_norm(input, self.normalized_shape, self.weight, self.eps)


class _InstanceNorm(Module):
    _rank = 3  # batched rank; one less is unbatched

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False, track_running_stats=False, device=None,
                 dtype=None, *, bias=True):
        super().__init__()
        _device(device)
        self.num_features = _positive_int(num_features, "num_features")
        self.eps = _eps(eps)
        if momentum is not None and (isinstance(momentum, bool) or not isinstance(momentum, numbers.Real)):
            raise TypeError(f"momentum must be a number or None, got {momentum!r}")
        self.momentum = momentum
        self.affine = _flag(affine, "affine")
        self.track_running_stats = _flag(track_running_stats, "track_running_stats")
        dtype = _float_dtype(dtype)
        _affine_parameters(self, self.affine, self.num_features, dtype, bias)
        _running_stats(self, dtype)

    def reset_running_stats(self):
        _reset_running_stats(self)

    def reset_parameters(self):
        self.reset_running_stats()
        _reset_affine(self)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")

    def forward(self, input):
        name = type(self).__name__
        shape = _shape_of(input, name)
        if len(shape) not in (self._rank - 1, self._rank):
            raise ValueError(f"{name}: expected {self._rank - 1}D or {self._rank}D input (got {len(shape)}D input)")
        unbatched = len(shape) == self._rank - 1
        x = input[None] if unbatched else input
        channels = x.shape[1]
        if channels != self.num_features and self.affine:
            raise ValueError(f"{name}: expected input's size at dim={1 - unbatched} to match num_features "
                             f"({self.num_features}), but got: {channels}.")
        out = F.instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                              self.training or not self.track_running_stats,
                              0.0 if self.momentum is None else self.momentum, self.eps)
        return out[0] if unbatched else out


class InstanceNorm1d(_InstanceNorm):
    r"""Instance normalisation of ``(N, C, L)`` or unbatched ``(C, L)`` input (``torch.nn.InstanceNorm1d``).

    Parameters
    ----------
    num_features : int
    eps : float, default 1e-5
    momentum : float or None, default 0.1
    affine : bool, default False
    track_running_stats : bool, default False
        Keep running statistics (updated in training, used in eval).
    dtype : float32 or float64, default float32

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.InstanceNorm1d(2)(np.array([[1.0, 3.0], [0.0, 2.0]], np.float32)).round(3)  # unbatched (C, L)
    array([[-1.,  1.],
           [-1.,  1.]], dtype=float32)
    """

    _rank = 3


class InstanceNorm2d(_InstanceNorm):
    r"""Instance normalisation of ``(N, C, H, W)`` or unbatched ``(C, H, W)`` input (see :class:`InstanceNorm1d`).

    Examples
    --------
    >>> from convlayers import nn
    >>> nn.InstanceNorm2d(3, affine=True)
    InstanceNorm2d(3, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=False)
    """

    _rank = 4


class InstanceNorm3d(_InstanceNorm):
    r"""Instance normalisation of ``(N, C, D, H, W)`` or unbatched ``(C, D, H, W)`` input (see :class:`InstanceNorm1d`).

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.InstanceNorm3d(2)(np.ones((2, 2, 2, 2), np.float32)).shape
    (2, 2, 2, 2)
    """

    _rank = 5


class LocalResponseNorm(Module):
    r"""Local response normalisation across channels (``torch.nn.LocalResponseNorm``, AlexNet's).

    Parameters
    ----------
    size : int
        Channels in each window.
    alpha : float, default 1e-4
    beta : float, default 0.75
    k : float, default 1.0

    Examples
    --------
    >>> from convlayers import nn
    >>> nn.LocalResponseNorm(2)
    LocalResponseNorm(2, alpha=0.0001, beta=0.75, k=1.0)
    """

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        self.size = _positive_int(size, "size")
        self.alpha, self.beta, self.k = alpha, beta, k

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"

    def forward(self, input):
        return F.local_response_norm(input, self.size, self.alpha, self.beta, self.k)

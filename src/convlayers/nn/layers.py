"""The layers: thin classes holding parameters and arguments around one functional op.

Each class takes PyTorch's arguments under PyTorch's attribute names, checks
them when constructed (so a bad layer fails where it is built, not in the
middle of a forward pass), initialises its parameters with PyTorch's default
distributions and calls one :mod:`convlayers.functional` op in ``forward``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .. import functional as F
from . import init
from .conv import Conv2d, ConvTranspose2d, _ConvNd  # noqa: F401  (the convolution layers live in nn.conv)
from .conv import _float_dtype, _positive_int  # shared argument checks
from .module import Module, Parameter

__all__ = [
    "Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "BatchNorm2d",
    "ReLU", "ReLU6", "Flatten", "Linear", "Dropout", "Identity",
]

def _check_input(x, ndim, name):
    shape = getattr(x, "shape", None)
    if shape is None:
        raise TypeError(f"{name}: input must be an ndarray or Tensor, got {type(x).__name__}")
    if len(shape) != ndim:
        raise ValueError(f"{name}: expected {ndim}D input, got {len(shape)}D input of shape {tuple(shape)}")
    return shape


def _running_stats(module, dtype):
    """Register ``running_mean``, ``running_var`` and ``num_batches_tracked`` (each None without tracking)."""
    if module.track_running_stats:
        module.register_buffer("running_mean", np.zeros(module.num_features, dtype=dtype))
        module.register_buffer("running_var", np.ones(module.num_features, dtype=dtype))
        module.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
    else:
        module.register_buffer("running_mean", None)
        module.register_buffer("running_var", None)
        module.register_buffer("num_batches_tracked", None)


def _reset_running_stats(module):
    """Running mean 0, running variance 1, no batches tracked (nothing without tracking)."""
    if module.track_running_stats:
        module.running_mean[...] = 0
        module.running_var[...] = 1
        module.num_batches_tracked[...] = 0


class _BatchNorm(Module):
    """BatchNorm1d/2d/3d: one implementation; subclasses name the input ranks they accept."""

    _ranks = (4,)
    _rank_text = "4D"

    def _check_input_dim(self, x):
        shape = getattr(x, "shape", None)
        if shape is None:
            raise TypeError(f"{type(self).__name__}: input must be an ndarray or Tensor, got {type(x).__name__}")
        if len(shape) not in self._ranks:
            raise ValueError(f"{type(self).__name__}: expected {self._rank_text} input (got {len(shape)}D input "
                             f"of shape {tuple(shape)})")
        return shape

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, dtype=None,
                 *, bias=True):
        super().__init__()
        self.num_features = _positive_int(num_features, "num_features")
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0:
            raise ValueError(f"eps must be a positive number, got {eps!r}")
        if momentum is not None and (isinstance(momentum, bool) or not isinstance(momentum, numbers.Real)
                                     or not 0 <= momentum <= 1):
            raise ValueError(f"momentum must be a number in [0, 1] or None, got {momentum!r}")
        for name, value in (("affine", affine), ("track_running_stats", track_running_stats), ("bias", bias)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be a bool, got {value!r}")
        dtype = _float_dtype(dtype)
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = Parameter(np.ones(self.num_features, dtype=dtype))
            if bias:
                self.bias = Parameter(np.zeros(self.num_features, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        _running_stats(self, dtype)

    def reset_running_stats(self):
        """Running mean 0, running variance 1, no batches tracked."""
        _reset_running_stats(self)

    def reset_parameters(self):
        """Reset the running statistics, weight to ones and bias to zeros."""
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")

    def forward(self, input):
        x = input
        shape = self._check_input_dim(x)
        if shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}: expected input with {self.num_features} channels, got "
                             f"{shape[1]} (input shape {tuple(shape)})")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked += 1
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        use_batch_stats = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        return F.batch_norm(x, self.running_mean if track else None, self.running_var if track else None,
                            self.weight, self.bias, use_batch_stats, factor, self.eps)


class BatchNorm2d(_BatchNorm):
    r"""Batch normalisation over ``(N, H, W)`` for each channel.

    ``y = (x − mean) / √(var + eps) · weight + bias``.  In training mode the
    batch's mean and (biased) variance are used and the running estimates are
    updated, ``running = (1 − momentum)·running + momentum·batch`` with the
    *unbiased* batch variance; in eval mode the running estimates are used.

    Parameters
    ----------
    num_features : int
        Channels ``C``.
    eps : float, default 1e-5
    momentum : float or None, default 0.1
        ``None`` makes the running estimates cumulative averages
        (factor ``1/num_batches_tracked``).
    affine : bool, default True
        Learn ``weight`` (ones) and ``bias`` (zeros).
    bias : bool, default True (keyword only)
        With ``affine``, whether to learn ``bias`` too (PyTorch ≥ 2.10's option).
    track_running_stats : bool, default True
        Keep ``running_mean``, ``running_var`` and ``num_batches_tracked``
        buffers; without them batch statistics are used in eval mode too.
    dtype : float32 or float64, default float32

    Shape
    -----
    - Input: ``(N, C, H, W)``
    - Output: ``(N, C, H, W)``

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> bn = nn.BatchNorm2d(3)
    >>> list(bn.state_dict())
    ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']
    >>> y = bn(np.random.default_rng(0).normal(5, 2, (8, 3, 4, 4)).astype(np.float32))
    >>> bool(abs(y.mean()) < 1e-5), int(bn.num_batches_tracked)
    (True, 1)
    """

    _ranks = (4,)
    _rank_text = "4D"


class _Activation(Module):
    """An elementwise activation with PyTorch's ``inplace`` flag (kept for compatibility and repr)."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = bool(inplace)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class ReLU(_Activation):
    """``max(x, 0)`` elementwise.

    Parameters
    ----------
    inplace : bool, default False
        Accepted for PyTorch compatibility (shown in the repr); the output is
        always a new array.

    Shape
    -----
    Any shape; output has the input's shape.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.ReLU()(np.array([-1.0, 2.0]))
    array([0., 2.])
    """

    def forward(self, input):
        return F.relu(input)


class ReLU6(_Activation):
    """``min(max(x, 0), 6)`` elementwise: MobileNet's activation, robust in low precision.

    Parameters
    ----------
    inplace : bool, default False
        Accepted for PyTorch compatibility; the output is always a new array.

    Shape
    -----
    Any shape; output has the input's shape.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.ReLU6()(np.array([-1.0, 2.0, 9.0]))
    array([0., 2., 6.])
    """

    def forward(self, input):
        return F.relu6(input)


class Flatten(Module):
    """Merge dimensions ``start_dim`` to ``end_dim`` into one.

    Parameters
    ----------
    start_dim : int, default 1
    end_dim : int, default -1

    Shape
    -----
    - Input: ``(N, *dims)``
    - Output: ``(N, ∏ dims)`` with the defaults.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.Flatten()(np.zeros((2, 3, 4, 5))).shape
    (2, 60)
    """

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        for name, value in (("start_dim", start_dim), ("end_dim", end_dim)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"{name} must be an int, got {value!r}")
        self.start_dim = int(start_dim)
        self.end_dim = int(end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"

    def forward(self, input):
        ndim = len(input.shape)
        start = self.start_dim % ndim if -ndim <= self.start_dim < ndim else None
        end = self.end_dim % ndim if -ndim <= self.end_dim < ndim else None
        if start is None or end is None or start > end:
            raise ValueError(f"Flatten: start_dim={self.start_dim}, end_dim={self.end_dim} do not fit "
                             f"an input of shape {tuple(input.shape)}")
        shape = tuple(input.shape)
        return input.reshape(shape[:start] + (int(np.prod(shape[start:end + 1])),) + shape[end + 1:])


class Linear(Module):
    r"""Affine map ``y = x Wᵀ + b`` on the last dimension.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool, default True
    dtype : float32 or float64, default float32

    Attributes
    ----------
    weight : Parameter, shape (out_features, in_features)
        U(±1/√in_features) (PyTorch's ``kaiming_uniform_(a=√5)``).
    bias : Parameter of shape (out_features,) or None
        U(±1/√in_features).

    Shape
    -----
    - Input: ``(*, in_features)``
    - Output: ``(*, out_features)``

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> fc = nn.Linear(4, 2)
    >>> fc(np.ones((3, 4), dtype=np.float32)).shape
    (3, 2)
    >>> fc.num_parameters()
    10
    """

    def __init__(self, in_features, out_features, bias=True, dtype=None):
        super().__init__()
        self.in_features = _positive_int(in_features, "in_features")
        self.out_features = _positive_int(out_features, "out_features")
        if not isinstance(bias, bool):
            raise TypeError(f"bias must be a bool, got {bias!r}")
        dtype = _float_dtype(dtype)
        self.weight = Parameter(np.empty((self.out_features, self.in_features), dtype=dtype))
        if bias:
            self.bias = Parameter(np.empty(self.out_features, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        """PyTorch's default: U(±1/√in_features) for weight and bias."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features)
            init.uniform_(self.bias, -bound, bound)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"

    def forward(self, input):
        shape = getattr(input, "shape", None)
        if shape is None or len(shape) == 0 or shape[-1] != self.in_features:
            raise ValueError(f"Linear: expected input with last dimension {self.in_features}, "
                             f"got shape {None if shape is None else tuple(shape)}")
        return F.linear(input, self.weight, self.bias)


class Dropout(Module):
    """Zero each element with probability ``p`` in training, scaling the rest by ``1/(1−p)``.

    In eval mode (and for ndarray inputs of a module in eval mode) it is the identity.

    Parameters
    ----------
    p : float, default 0.5
    inplace : bool, default False
        Accepted for PyTorch compatibility.

    Shape
    -----
    Any shape; output has the input's shape.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.Dropout(0.2).eval()(np.ones(3))
    array([1., 1., 1.])
    """

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
            raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
        self.p = p
        self.inplace = bool(inplace)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"

    def forward(self, input):
        if not self.training or self.p == 0:
            return input
        return F.dropout(input, self.p, training=True)


class Identity(Module):
    """Return the input unchanged; arguments are accepted and ignored (as in PyTorch).

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.Identity(54, unused="x")(np.arange(3))
    array([0, 1, 2])
    """

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input

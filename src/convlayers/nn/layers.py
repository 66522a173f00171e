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
from ..sizes import pair
from . import init
from .module import Module, Parameter

__all__ = [
    "Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "BatchNorm2d",
    "ReLU", "ReLU6", "Flatten", "Linear", "Dropout", "Identity",
]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return int(value)


def _pair_at_least(value, name, low):
    result = pair(value, name)
    if any(v < low for v in result):
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    return result


def _float_dtype(dtype):
    dtype = np.dtype(np.float32 if dtype is None else dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def _check_input(x, ndim, name):
    shape = getattr(x, "shape", None)
    if shape is None:
        raise TypeError(f"{name}: input must be an ndarray or Tensor, got {type(x).__name__}")
    if len(shape) != ndim:
        raise ValueError(f"{name}: expected {ndim}D input, got {len(shape)}D input of shape {tuple(shape)}")
    return shape


class _ConvNd(Module):
    def _setup(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
               padding_mode, dtype, transposed, output_padding=(0, 0)):
        self.in_channels = _positive_int(in_channels, "in_channels")
        self.out_channels = _positive_int(out_channels, "out_channels")
        self.groups = _positive_int(groups, "groups")
        if self.in_channels % self.groups:
            raise ValueError(f"in_channels must be divisible by groups, got in_channels={in_channels}, groups={groups}")
        if self.out_channels % self.groups:
            raise ValueError(f"out_channels must be divisible by groups, got out_channels={out_channels}, groups={groups}")
        self.kernel_size = _pair_at_least(kernel_size, "kernel_size", 1)
        self.stride = _pair_at_least(stride, "stride", 1)
        self.dilation = _pair_at_least(dilation, "dilation", 1)
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        self.padding_mode = padding_mode
        if isinstance(padding, str):
            if transposed:
                raise ValueError(f"padding must be an int or a pair of ints for ConvTranspose2d, got {padding!r}")
            if padding not in ("same", "valid"):
                raise ValueError(f"padding must be 'same', 'valid', an int or a pair of ints, got {padding!r}")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(f"padding='same' is not supported for strided convolutions, got stride={stride!r}")
            self.padding = padding
        else:
            self.padding = _pair_at_least(padding, "padding", 0)
        self.output_padding = _pair_at_least(output_padding, "output_padding", 0)
        if transposed:
            for op, s, d in zip(self.output_padding, self.stride, self.dilation):
                if op >= max(s, d):
                    raise ValueError(
                        f"output_padding must be smaller than either stride or dilation, got "
                        f"output_padding={self.output_padding}, stride={self.stride}, dilation={self.dilation}")
        if not isinstance(bias, bool):
            raise TypeError(f"bias must be a bool, got {bias!r}")
        dtype = _float_dtype(dtype)
        if transposed:
            shape = (self.in_channels, self.out_channels // self.groups, *self.kernel_size)
        else:
            shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        self.weight = Parameter(np.empty(shape, dtype=dtype))
        self.bias = Parameter(np.empty(self.out_channels, dtype=dtype)) if bias else None
        if not bias:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        """PyTorch's default: weight ~ kaiming_uniform(a=√5) = U(±1/√fan_in); bias ~ U(±1/√fan_in)."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init.calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.output_padding != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv2d(_ConvNd):
    r"""2-D convolution (cross-correlation, as in every deep-learning library).

    ``out[n, o] = bias[o] + Σ_c Σ_(i,j) weight[o, c, i, j] · x[n, g·C_in/groups + c, s·y + d·i, s·x + d·j]``
    over the input channels of output channel ``o``'s group ``g``.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and output; both divisible by ``groups``.
    kernel_size : int or (int, int)
        Window size ``(kH, kW)``.
    stride : int or (int, int), default 1
    padding : int, (int, int), 'same' or 'valid', default 0
        Padding added on each side; ``'same'`` keeps ``H, W`` (stride 1 only).
    dilation : int or (int, int), default 1
        Spacing between kernel taps.
    groups : int, default 1
        ``groups = in_channels`` gives a depthwise convolution.
    bias : bool, default True
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}, default 'zeros'
        What the padding is filled with.
    dtype : float32 or float64, default float32

    Attributes
    ----------
    weight : Parameter, shape (out_channels, in_channels/groups, kH, kW)
        Initialised from U(−1/√fan_in, 1/√fan_in), ``fan_in = in_channels/groups·kH·kW``
        (PyTorch's ``kaiming_uniform_(a=√5)``).
    bias : Parameter of shape (out_channels,) or None
        U(−1/√fan_in, 1/√fan_in).

    Shape
    -----
    - Input: ``(N, C_in, H, W)``
    - Output: ``(N, C_out, H_out, W_out)`` with
      ``H_out = ⌊(H + 2p − d(k−1) − 1)/s⌋ + 1`` (same for ``W``).

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
    >>> conv(np.zeros((1, 3, 32, 32), dtype=np.float32)).shape
    (1, 8, 16, 16)
    >>> conv
    Conv2d(3, 8, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1))
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", dtype=None):
        super().__init__()
        self._setup(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                    padding_mode, dtype, transposed=False)

    def check_input(self, x):
        """Raise the layer's error for an input of the wrong rank or channel count."""
        shape = _check_input(x, 4, "Conv2d")
        if shape[1] != self.in_channels:
            raise ValueError(f"Conv2d: expected input with {self.in_channels} channels, got {shape[1]} "
                             f"(input shape {tuple(shape)})")

    def forward(self, x):
        self.check_input(x)
        return F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding,
                        dilation=self.dilation, groups=self.groups, padding_mode=self.padding_mode)


class ConvTranspose2d(_ConvNd):
    r"""2-D transposed convolution: the gradient of :class:`Conv2d` with respect to its input.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (int, int)
    stride : int or (int, int), default 1
    padding : int or (int, int), default 0
        Rows/columns cropped from each side of the full output (the ``padding``
        of the convolution this one transposes).
    output_padding : int or (int, int), default 0
        Extra rows/columns added on one side to pick among the input sizes a
        strided convolution maps to the same output size; smaller than ``stride`` or ``dilation``.
    groups : int, default 1
    bias : bool, default True
    dilation : int or (int, int), default 1
    padding_mode : 'zeros'
        The only mode PyTorch supports here.
    dtype : float32 or float64, default float32

    Attributes
    ----------
    weight : Parameter, shape (in_channels, out_channels/groups, kH, kW)
        U(±1/√fan_in) with ``fan_in = out_channels/groups·kH·kW`` (PyTorch's rule,
        computed from the weight's second dimension).
    bias : Parameter of shape (out_channels,) or None

    Shape
    -----
    - Input: ``(N, C_in, H, W)``
    - Output: ``(N, C_out, H_out, W_out)`` with
      ``H_out = (H − 1)·s − 2p + d(k−1) + output_padding + 1``.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> up = nn.ConvTranspose2d(8, 3, 3, stride=2, padding=1, output_padding=1)
    >>> up(np.zeros((1, 8, 16, 16), dtype=np.float32)).shape
    (1, 3, 32, 32)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                 groups=1, bias=True, dilation=1, padding_mode="zeros", dtype=None):
        super().__init__()
        if padding_mode != "zeros":
            raise ValueError(f"padding_mode: only 'zeros' is supported for ConvTranspose2d, got {padding_mode!r}")
        self._setup(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                    padding_mode, dtype, transposed=True, output_padding=output_padding)

    def forward(self, x, output_size=None):
        shape = _check_input(x, 4, "ConvTranspose2d")
        if shape[1] != self.in_channels:
            raise ValueError(f"ConvTranspose2d: expected input with {self.in_channels} channels, got {shape[1]} "
                             f"(input shape {tuple(shape)})")
        output_padding = self.output_padding
        if output_size is not None:
            output_padding = self._output_padding_for(shape, output_size)
        return F.conv_transpose2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding,
                                  output_padding=output_padding, groups=self.groups,
                                  dilation=self.dilation)

    def _output_padding_for(self, shape, output_size):
        size = tuple(output_size)[-2:]
        result = []
        for axis in range(2):
            smallest = ((shape[2 + axis] - 1) * self.stride[axis] - 2 * self.padding[axis]
                        + self.dilation[axis] * (self.kernel_size[axis] - 1) + 1)
            extra = int(size[axis]) - smallest
            if not 0 <= extra < self.stride[axis]:
                raise ValueError(
                    f"output_size: requested {tuple(size)}, but sizes from {smallest} to "
                    f"{smallest + self.stride[axis] - 1} are possible along axis {axis + 2}")
            result.append(extra)
        return tuple(result)


class MaxPool2d(Module):
    r"""Maximum over sliding ``kernel_size`` windows.

    Parameters
    ----------
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel_size`` (non-overlapping windows).
    padding : int or (int, int), default 0
        Implicit ``−∞`` padding; at most half the kernel size.
    dilation : int or (int, int), default 1
    return_indices : bool, default False
        Also return the flat ``H·W`` index of each maximum (for unpooling).
    ceil_mode : bool, default False
        Round the output size up instead of down.

    Shape
    -----
    - Input: ``(N, C, H, W)``
    - Output: ``(N, C, H_out, W_out)``, ``H_out = ⌊(H + 2p − d(k−1) − 1)/s⌋ + 1``
      (``⌈·⌉`` with ``ceil_mode``).

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.MaxPool2d(2)(np.arange(16.0).reshape(1, 1, 4, 4))
    array([[[[ 5.,  7.],
             [13., 15.]]]])
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__()
        k = _pair_at_least(kernel_size, "kernel_size", 1)
        s = k if stride is None else _pair_at_least(stride, "stride", 1)
        p = _pair_at_least(padding, "padding", 0)
        _pair_at_least(dilation, "dilation", 1)
        if any(pi > ki // 2 for pi, ki in zip(p, k)):
            raise ValueError(f"padding should be at most half of kernel_size, got padding={padding!r}, "
                             f"kernel_size={kernel_size!r}")
        del s
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding
        self.dilation = dilation
        self.return_indices = bool(return_indices)
        self.ceil_mode = bool(ceil_mode)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")

    def forward(self, x):
        _check_input(x, 4, "MaxPool2d")
        return F.max_pool2d(x, self.kernel_size, stride=self.stride, padding=self.padding,
                            dilation=self.dilation, ceil_mode=self.ceil_mode,
                            return_indices=self.return_indices)


class AvgPool2d(Module):
    r"""Mean over sliding ``kernel_size`` windows.

    Parameters
    ----------
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel_size``.
    padding : int or (int, int), default 0
        Zero padding; at most half the kernel size.
    ceil_mode : bool, default False
    count_include_pad : bool, default True
        Whether padded zeros count in the divisor.
    divisor_override : int, optional
        Divide every window sum by this instead.

    Shape
    -----
    - Input: ``(N, C, H, W)``
    - Output: ``(N, C, H_out, W_out)``, ``H_out = ⌊(H + 2p − k)/s⌋ + 1``.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.AvgPool2d(2)(np.arange(16.0).reshape(1, 1, 4, 4))
    array([[[[ 2.5,  4.5],
             [10.5, 12.5]]]])
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        k = _pair_at_least(kernel_size, "kernel_size", 1)
        if stride is not None:
            _pair_at_least(stride, "stride", 1)
        p = _pair_at_least(padding, "padding", 0)
        if any(pi > ki // 2 for pi, ki in zip(p, k)):
            raise ValueError(f"padding should be at most half of kernel_size, got padding={padding!r}, "
                             f"kernel_size={kernel_size!r}")
        if divisor_override is not None:
            _positive_int(divisor_override, "divisor_override")
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding
        self.ceil_mode = bool(ceil_mode)
        self.count_include_pad = bool(count_include_pad)
        self.divisor_override = divisor_override

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

    def forward(self, x):
        _check_input(x, 4, "AvgPool2d")
        return F.avg_pool2d(x, self.kernel_size, stride=self.stride, padding=self.padding,
                            ceil_mode=self.ceil_mode, count_include_pad=self.count_include_pad,
                            divisor_override=self.divisor_override)


class AdaptiveAvgPool2d(Module):
    r"""Average pooling to a fixed output size, whatever the input size.

    Output cell ``i`` averages input rows ``⌊i·H/H_out⌋`` to ``⌈(i+1)·H/H_out⌉ − 1``
    (PyTorch's windows); ``output_size=1`` is global average pooling.

    Parameters
    ----------
    output_size : int or (int or None, int or None)
        ``None`` keeps that input dimension.

    Shape
    -----
    - Input: ``(N, C, H, W)``
    - Output: ``(N, C, H_out, W_out)``

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.AdaptiveAvgPool2d((1, 1))(np.ones((2, 5, 7, 7))).shape
    (2, 5, 1, 1)
    """

    def __init__(self, output_size):
        super().__init__()
        items = (output_size, output_size) if isinstance(output_size, numbers.Integral) else output_size
        try:
            items = tuple(items)
        except TypeError:
            raise TypeError(f"output_size must be an int or a pair of ints/None, got {output_size!r}") from None
        if len(items) != 2 or not all(v is None or (isinstance(v, numbers.Integral) and not isinstance(v, bool)
                                                    and v > 0) for v in items):
            raise ValueError(f"output_size must be a positive int or a pair of positive ints/None, got {output_size!r}")
        self.output_size = output_size

    def extra_repr(self):
        return f"output_size={self.output_size}"

    def forward(self, x):
        _check_input(x, 4, "AdaptiveAvgPool2d")
        return F.adaptive_avg_pool2d(x, self.output_size)


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
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(self.num_features, dtype=dtype))
            self.register_buffer("running_var", np.ones(self.num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self):
        """Running mean 0, running variance 1, no batches tracked."""
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked[...] = 0

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

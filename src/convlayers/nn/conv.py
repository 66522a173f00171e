"""Convolution layers: ``Conv1d/2d/3d`` and ``ConvTranspose1d/2d/3d`` on one N-d base class.

Each layer checks PyTorch's arguments when built, holds PyTorch's parameters
(``weight``, ``bias``) with PyTorch's default initialisation, accepts batched
and unbatched input as PyTorch does, and calls one functional op.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .. import functional as F
from . import init
from .module import Module, Parameter

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_AXES = {1: "(C, L) or (N, C, L)", 2: "(C, H, W) or (N, C, H, W)", 3: "(C, D, H, W) or (N, C, D, H, W)"}


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return int(value)


def _ntuple_at_least(value, nd, name, low):
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        result = (int(value),) * nd
    else:
        try:
            result = tuple(value)
        except TypeError:
            raise TypeError(f"{name} must be an int or a tuple of {nd} ints, got {value!r}") from None
        if len(result) == 1:
            result = result * nd
        if len(result) != nd or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                                        for v in result):
            raise TypeError(f"{name} must be an int or a tuple of {nd} ints, got {value!r}")
        result = tuple(int(v) for v in result)
    if any(v < low for v in result):
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    return result


def _float_dtype(dtype):
    dtype = np.dtype(np.float32 if dtype is None else dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


class _ConvNd(Module):
    """What every convolution layer shares: argument checks, parameters, init, repr and input checks."""

    _nd = 2
    _transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                 padding_mode, dtype, output_padding=0):
        super().__init__()
        nd, name = self._nd, type(self).__name__
        self.in_channels = _positive_int(in_channels, "in_channels")
        self.out_channels = _positive_int(out_channels, "out_channels")
        self.groups = _positive_int(groups, "groups")
        if self.in_channels % self.groups:
            raise ValueError(f"in_channels must be divisible by groups, got in_channels={in_channels}, groups={groups}")
        if self.out_channels % self.groups:
            raise ValueError(f"out_channels must be divisible by groups, got out_channels={out_channels}, groups={groups}")
        self.kernel_size = _ntuple_at_least(kernel_size, nd, "kernel_size", 1)
        self.stride = _ntuple_at_least(stride, nd, "stride", 1)
        self.dilation = _ntuple_at_least(dilation, nd, "dilation", 1)
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        if self._transposed and padding_mode != "zeros":
            raise ValueError(f"padding_mode: only 'zeros' is supported for {name}, got {padding_mode!r}")
        self.padding_mode = padding_mode
        if isinstance(padding, str):
            if self._transposed:
                raise ValueError(f"padding must be an int or a tuple of {nd} ints for {name}, got {padding!r}")
            if padding not in ("same", "valid"):
                raise ValueError(f"padding must be 'same', 'valid', an int or a tuple of ints, got {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"padding='same' is not supported for strided convolutions, got stride={stride!r}")
            self.padding = padding
        else:
            self.padding = _ntuple_at_least(padding, nd, "padding", 0)
        self.output_padding = _ntuple_at_least(output_padding, nd, "output_padding", 0)
        if self._transposed:
            for op, s, d in zip(self.output_padding, self.stride, self.dilation):
                if op >= max(s, d):
                    raise ValueError(
                        f"output_padding must be smaller than either stride or dilation, got "
                        f"output_padding={self.output_padding}, stride={self.stride}, dilation={self.dilation}")
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"bias must be a bool, got {bias!r}")
        dtype = _float_dtype(dtype)
        if self._transposed:
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
        nd = self._nd
        padding = self.padding if isinstance(self.padding, str) else _fmt(self.padding)
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={_fmt(self.kernel_size)}, stride={_fmt(self.stride)}"
        if self.padding != (0,) * nd:
            s += f", padding={padding}"
        if self.dilation != (1,) * nd:
            s += f", dilation={_fmt(self.dilation)}"
        if self.output_padding != (0,) * nd:
            s += f", output_padding={_fmt(self.output_padding)}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s

    def check_input(self, input):
        """Raise the layer's error for an input of the wrong rank or channel count; return its shape."""
        name = type(self).__name__
        shape = getattr(input, "shape", None)
        if shape is None:
            raise TypeError(f"{name}: input must be an ndarray or Tensor, got {type(input).__name__}")
        if len(shape) not in (self._nd + 1, self._nd + 2):
            raise ValueError(f"{name}: expected {self._nd + 1}-D (unbatched) or {self._nd + 2}-D (batched) input "
                             f"{_AXES[self._nd]}, got {len(shape)}-D input of shape {tuple(shape)}")
        channels = shape[-self._nd - 1]
        if channels != self.in_channels:
            raise ValueError(f"{name}: expected input with {self.in_channels} channels, got {channels} "
                             f"(input shape {tuple(shape)})")
        return tuple(shape)


def _fmt(t):
    return f"({t[0]},)" if len(t) == 1 else str(tuple(t))


class _Conv(_ConvNd):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, dtype)

    def forward(self, input):
        self.check_input(input)
        return self._op(input, self.weight, self.bias, stride=self.stride, padding=self.padding,
                        dilation=self.dilation, groups=self.groups, padding_mode=self.padding_mode)


class _ConvTranspose(_ConvNd):
    _transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                 groups=1, bias=True, dilation=1, padding_mode="zeros", dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, dtype, output_padding=output_padding)

    def forward(self, input, output_size=None):
        shape = self.check_input(input)
        output_padding = self.output_padding
        if output_size is not None:
            output_padding = self._output_padding_for(shape, output_size)
        return self._op(input, self.weight, self.bias, stride=self.stride, padding=self.padding,
                        output_padding=output_padding, groups=self.groups, dilation=self.dilation)

    def _output_padding_for(self, shape, output_size):
        nd = self._nd
        size = tuple(int(s) for s in output_size)
        if len(size) == nd + 2 or (len(size) == nd + 1 and len(shape) == nd + 1):
            size = size[-nd:]
        if len(size) != nd:
            raise ValueError(f"output_size must have {nd} or {nd + 2} elements, got {tuple(output_size)}")
        spatial = shape[-nd:]
        result = []
        for axis in range(nd):
            smallest = ((spatial[axis] - 1) * self.stride[axis] - 2 * self.padding[axis]
                        + self.dilation[axis] * (self.kernel_size[axis] - 1) + 1)
            largest = smallest + max(self.stride[axis], self.dilation[axis]) - 1
            extra = size[axis] - smallest
            if not smallest <= size[axis] <= largest:
                raise ValueError(
                    f"output_size: requested {size}, but sizes from {smallest} to {largest} are possible "
                    f"along spatial axis {axis}")
            result.append(extra)
        return tuple(result)


_CONV_DOC = r"""{nd}-D convolution (cross-correlation, as in every deep-learning library), as ``torch.nn.Conv{nd}d``.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and output; both divisible by ``groups``.
    kernel_size : int or tuple of {nd} ints
    stride : int or tuple of {nd} ints, default 1
    padding : int, tuple of {nd} ints, 'same' or 'valid', default 0
        Padding added on each side; ``'same'`` keeps the size (stride 1 only).
    dilation : int or tuple of {nd} ints, default 1
        Spacing between kernel taps.
    groups : int, default 1
        ``groups = in_channels`` gives a depthwise convolution.
    bias : bool, default True
    padding_mode : {{'zeros', 'reflect', 'replicate', 'circular'}}, default 'zeros'
        What the padding is filled with.
    dtype : float32 or float64, default float32

    Attributes
    ----------
    weight : Parameter, shape (out_channels, in_channels/groups, {kernel})
        Initialised from U(−1/√fan_in, 1/√fan_in), ``fan_in = in_channels/groups·prod(kernel_size)``
        (PyTorch's ``kaiming_uniform_(a=√5)``).
    bias : Parameter of shape (out_channels,) or None
        U(−1/√fan_in, 1/√fan_in).

    Shape
    -----
    - Input: {shape_in} (batched) or without N (unbatched)
    - Output: {shape_out}, each size ``⌊(n + 2p − d(k−1) − 1)/s⌋ + 1``.

    Examples
    --------
    {example}
    """

_TRANSPOSE_DOC = r"""{nd}-D transposed convolution, as ``torch.nn.ConvTranspose{nd}d``: the gradient of :class:`Conv{nd}d`
    with respect to its input.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or tuple of {nd} ints
    stride : int or tuple of {nd} ints, default 1
    padding : int or tuple of {nd} ints, default 0
        Cropped from each side of the full output (the ``padding`` of the
        convolution this one transposes).
    output_padding : int or tuple of {nd} ints, default 0
        Extra size on one side, smaller than ``stride`` or ``dilation``.
    groups : int, default 1
    bias : bool, default True
    dilation : int or tuple of {nd} ints, default 1
    padding_mode : 'zeros'
        The only mode PyTorch supports here.
    dtype : float32 or float64, default float32

    Attributes
    ----------
    weight : Parameter, shape (in_channels, out_channels/groups, {kernel})
        U(±1/√fan_in) with ``fan_in = out_channels/groups·prod(kernel_size)`` (PyTorch's
        rule, computed from the weight's second dimension).
    bias : Parameter of shape (out_channels,) or None

    Shape
    -----
    - Input: {shape_in} (batched) or without N (unbatched)
    - Output: {shape_out}, each size ``(n − 1)·s − 2p + d(k−1) + output_padding + 1``;
      ``forward(input, output_size)`` picks ``output_padding`` from a requested size.

    Examples
    --------
    {example}
    """

_SHAPES = {1: ("(N, C_in, L)", "(N, C_out, L_out)", "kL"),
           2: ("(N, C_in, H, W)", "(N, C_out, H_out, W_out)", "kH, kW"),
           3: ("(N, C_in, D, H, W)", "(N, C_out, D_out, H_out, W_out)", "kD, kH, kW")}


def _doc(template, nd, example):
    shape_in, shape_out, kernel = _SHAPES[nd]
    return template.format(nd=nd, kernel=kernel, shape_in=shape_in, shape_out=shape_out, example=example)


class Conv1d(_Conv):
    _nd = 1
    _op = staticmethod(F.conv1d)
    __doc__ = _doc(_CONV_DOC, 1, """>>> import numpy as np
    >>> from convlayers import nn
    >>> conv = nn.Conv1d(16, 33, 3, stride=2)
    >>> conv(np.zeros((20, 16, 50), dtype=np.float32)).shape
    (20, 33, 24)
    >>> conv
    Conv1d(16, 33, kernel_size=(3,), stride=(2,))""")


class Conv2d(_Conv):
    _nd = 2
    _op = staticmethod(F.conv2d)
    __doc__ = _doc(_CONV_DOC, 2, """>>> import numpy as np
    >>> from convlayers import nn
    >>> conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
    >>> conv(np.zeros((1, 3, 32, 32), dtype=np.float32)).shape
    (1, 8, 16, 16)
    >>> conv(np.zeros((3, 32, 32), dtype=np.float32)).shape      # unbatched
    (8, 16, 16)
    >>> conv
    Conv2d(3, 8, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1))""")


class Conv3d(_Conv):
    _nd = 3
    _op = staticmethod(F.conv3d)
    __doc__ = _doc(_CONV_DOC, 3, """>>> import numpy as np
    >>> from convlayers import nn
    >>> conv = nn.Conv3d(4, 8, (3, 5, 2), stride=(2, 1, 1), padding=(4, 2, 0))
    >>> conv(np.zeros((2, 4, 10, 12, 6), dtype=np.float32)).shape
    (2, 8, 8, 12, 5)""")


class ConvTranspose1d(_ConvTranspose):
    _nd = 1
    _op = staticmethod(F.conv_transpose1d)
    __doc__ = _doc(_TRANSPOSE_DOC, 1, """>>> import numpy as np
    >>> from convlayers import nn
    >>> up = nn.ConvTranspose1d(8, 4, 4, stride=2, padding=1)
    >>> up(np.zeros((1, 8, 100), dtype=np.float32)).shape
    (1, 4, 200)""")


class ConvTranspose2d(_ConvTranspose):
    _nd = 2
    _op = staticmethod(F.conv_transpose2d)
    __doc__ = _doc(_TRANSPOSE_DOC, 2, """>>> import numpy as np
    >>> from convlayers import nn
    >>> up = nn.ConvTranspose2d(8, 3, 3, stride=2, padding=1, output_padding=1)
    >>> up(np.zeros((1, 8, 16, 16), dtype=np.float32)).shape
    (1, 3, 32, 32)""")


class ConvTranspose3d(_ConvTranspose):
    _nd = 3
    _op = staticmethod(F.conv_transpose3d)
    __doc__ = _doc(_TRANSPOSE_DOC, 3, """>>> import numpy as np
    >>> from convlayers import nn
    >>> up = nn.ConvTranspose3d(8, 4, 3, stride=2, padding=1)
    >>> up(np.zeros((1, 8, 4, 4, 4), dtype=np.float32), output_size=(8, 8, 8)).shape
    (1, 4, 8, 8, 8)""")

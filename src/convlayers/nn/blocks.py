"""The seed's building blocks: from a plain convolution to MobileNetV2's inverted residual.

Each block trades parameters and multiply-adds for accuracy differently; the
parameter-count formulas in the docstrings are exact (BatchNorm's running
statistics are buffers and do not count).  With ``k = 3``:

================================  =================================================
block                             parameters
================================  =================================================
:class:`ConvBNReLU`               ``9·C_in·C_out/groups + 2·C_out``
:class:`DepthwiseSeparable`       ``9·C_in + 2·C_in + C_in·C_out + 2·C_out``
:class:`MobileBlock`              ``C_in·h + h + 9·h + h + h·C_out + C_out``, ``h = t·C_in``
:class:`InvertedResidual`         ``C_in·h + 2h + 9h + 2h + h·C_out + 2·C_out``
================================  =================================================
"""

from __future__ import annotations

import numbers

from .layers import BatchNorm2d, Conv2d, ReLU, ReLU6
from .module import Module, Sequential

__all__ = ["Conv2dNormActivation", "ConvBNReLU", "DepthwiseSeparable", "MobileBlock", "InvertedResidual"]


def _int_at_least(value, name, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


class Conv2dNormActivation(Sequential):
    r"""Convolution → BatchNorm → activation, as torchvision's ``Conv2dNormActivation``.

    The children are named ``0`` (conv), ``1`` (BatchNorm) and ``2``
    (activation), so state_dict keys are torchvision's (``features.0.0.weight``,
    ``features.0.1.running_mean``).  The convolution has no bias: BatchNorm's
    ``bias`` would cancel it.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int, default 3
    stride : int, default 1
    groups : int, default 1
    activation : {'relu', 'relu6', None}, default 'relu'
        ``None`` leaves the block linear (conv + BN only).
    dilation : int, default 1

    Notes
    -----
    Padding is ``(kernel_size − 1)//2 · dilation``, which keeps ``H, W`` at
    stride 1 for odd kernels.  Parameters:
    ``C_out·(C_in/groups)·k² + 2·C_out``.

    Shape
    -----
    - Input: ``(N, C_in, H, W)``
    - Output: ``(N, C_out, H_out, W_out)``, ``H_out = ⌊(H + 2p − d(k−1) − 1)/s⌋ + 1``.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers.nn import Conv2dNormActivation
    >>> block = Conv2dNormActivation(3, 32, stride=2, activation="relu6")
    >>> block.eval()(np.zeros((1, 3, 64, 64), dtype=np.float32)).shape
    (1, 32, 32, 32)
    >>> block.num_parameters()
    928
    """

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, groups=1, activation="relu",
                 dilation=1):
        kernel_size = _int_at_least(kernel_size, "kernel_size", 1)
        dilation = _int_at_least(dilation, "dilation", 1)
        if activation not in ("relu", "relu6", None):
            raise ValueError(f"activation must be 'relu', 'relu6' or None, got {activation!r}")
        padding = (kernel_size - 1) // 2 * dilation
        layers = [Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, bias=False),
                  BatchNorm2d(out_channels)]
        if activation == "relu":
            layers.append(ReLU(inplace=True))
        elif activation == "relu6":
            layers.append(ReLU6(inplace=True))
        super().__init__(*layers)
        self.out_channels = out_channels


class ConvBNReLU(Conv2dNormActivation):
    r"""The standard block: ``k×k`` convolution, BatchNorm, ReLU.

    Every output channel looks at every input channel over a ``k×k``
    window, so the convolution costs ``C_in·C_out·k²`` parameters and as many
    multiply-adds per output pixel: the baseline the efficient blocks below
    are measured against.  BatchNorm normalises each channel over the batch
    (making training fast and insensitive to the weights' scale), ReLU adds
    the non-linearity.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int, default 3
    stride : int, default 1
    groups : int, default 1
    activation : {'relu', 'relu6', None}, default 'relu'

    Notes
    -----
    Parameters: ``C_out·(C_in/groups)·k² + 2·C_out`` (conv without bias, BN's
    weight and bias).  ``ConvBNReLU(32, 64)``: 18,432 + 128 = 18,560.

    Shape
    -----
    - Input: ``(N, C_in, H, W)``
    - Output: ``(N, C_out, H_out, W_out)``,
      ``H_out = ⌊(H + 2p − d(k−1) − 1)/s⌋ + 1`` with ``p = (k−1)//2``, ``d = 1``.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers.nn import ConvBNReLU
    >>> block = ConvBNReLU(32, 64)
    >>> block.num_parameters()
    18560
    >>> block.eval()(np.zeros((2, 32, 8, 8), dtype=np.float32)).shape
    (2, 64, 8, 8)
    """

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, groups=1, activation="relu"):
        super().__init__(in_channels, out_channels, kernel_size, stride, groups, activation)


class DepthwiseSeparable(Module):
    r"""Depthwise-separable convolution (MobileNetV1): a 3×3 per channel, then a 1×1 across channels.

    A standard 3×3 convolution mixes space and channels at once.  This block
    factorises it: the *depthwise* 3×3 (``groups = C_in``) filters each
    channel on its own, the *pointwise* 1×1 then mixes channels.  Each is
    followed by BatchNorm and ReLU.  The cost falls from ``9·C_in·C_out`` to
    ``9·C_in + C_in·C_out``, about ``1/C_out + 1/9`` of it, roughly 8–9×
    fewer for wide layers.

    Parameters
    ----------
    in_channels, out_channels : int
    stride : int, default 1
        Applied by the depthwise convolution.

    Attributes
    ----------
    depthwise : ConvBNReLU
        ``Conv2d(C_in, C_in, 3, stride, padding=1, groups=C_in)`` + BN + ReLU.
    pointwise : ConvBNReLU
        ``Conv2d(C_in, C_out, 1)`` + BN + ReLU.

    Notes
    -----
    Parameters: ``9·C_in + 2·C_in + C_in·C_out + 2·C_out``.
    ``DepthwiseSeparable(32, 64)``: 288 + 64 + 2,048 + 128 = 2,528
    (the standard block has 18,560).

    Shape
    -----
    - Input: ``(N, C_in, H, W)``
    - Output: ``(N, C_out, H_out, W_out)``, ``H_out = ⌊(H + 2 − 2 − 1)/s⌋ + 1``.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers.nn import DepthwiseSeparable
    >>> block = DepthwiseSeparable(32, 64, stride=2)
    >>> block.num_parameters()
    2528
    >>> block.eval()(np.zeros((2, 32, 8, 8), dtype=np.float32)).shape
    (2, 64, 4, 4)
    """

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.depthwise = ConvBNReLU(in_channels, in_channels, 3, stride=stride, groups=in_channels)
        self.pointwise = ConvBNReLU(in_channels, out_channels, 1)
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class MobileBlock(Module):
    r"""The seed's minimal mobile block: expand 1×1 → depthwise 3×3 → project 1×1, no BatchNorm.

    The bare idea of MobileNetV2 without its training aids: widen the
    channels by ``expand_ratio`` with a cheap 1×1 convolution, filter each
    widened channel spatially with a depthwise 3×3, and project back down
    with a 1×1.  ReLU follows the first two; the projection stays linear
    (a ReLU on the narrow output would destroy information).  Without
    BatchNorm the convolutions keep their biases.  There is no residual
    connection (see :class:`InvertedResidual` for the full block).

    Parameters
    ----------
    in_channels, out_channels : int
    expand_ratio : int, default 4
        Hidden width ``h = expand_ratio · C_in``.
    stride : int, default 1
        Applied by the depthwise convolution.

    Attributes
    ----------
    expand : Conv2d
        ``Conv2d(C_in, h, 1)``.
    depthwise : Conv2d
        ``Conv2d(h, h, 3, stride, padding=1, groups=h)``.
    project : Conv2d
        ``Conv2d(h, C_out, 1)``.

    Notes
    -----
    Parameters: ``(C_in·h + h) + (9·h + h) + (h·C_out + C_out)``.
    ``MobileBlock(32, 64, expand_ratio=2)``: h = 64, 2,112 + 640 + 4,160 = 6,912.

    Shape
    -----
    - Input: ``(N, C_in, H, W)``
    - Output: ``(N, C_out, H_out, W_out)``, ``H_out = ⌊(H − 1)/s⌋ + 1``.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers.nn import MobileBlock
    >>> block = MobileBlock(32, 64, expand_ratio=2)
    >>> block.num_parameters()
    6912
    >>> block(np.zeros((2, 32, 8, 8), dtype=np.float32)).shape
    (2, 64, 8, 8)
    """

    def __init__(self, in_channels, out_channels, expand_ratio=4, stride=1):
        super().__init__()
        expand_ratio = _int_at_least(expand_ratio, "expand_ratio", 1)
        in_channels = _int_at_least(in_channels, "in_channels", 1)
        hidden = in_channels * expand_ratio
        self.expand = Conv2d(in_channels, hidden, 1)
        self.depthwise = Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden)
        self.project = Conv2d(hidden, out_channels, 1)
        self.relu = ReLU()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.expand_ratio = expand_ratio

    def forward(self, x):
        return self.project(self.relu(self.depthwise(self.relu(self.expand(x)))))


class InvertedResidual(Module):
    r"""MobileNetV2's inverted residual block, with torchvision's structure and names.

    Classic residual blocks are wide → narrow → wide; this one is
    *inverted*: narrow → wide → narrow.  A 1×1 convolution expands the
    ``C_in`` channels ``expand_ratio`` times, a depthwise 3×3 (carrying the
    stride) filters them cheaply, and a *linear* 1×1 projects back to
    ``C_out`` (no activation: ReLU in the low-dimensional bottleneck would
    lose information).  BatchNorm follows every convolution, ReLU6 the first
    two.  When ``stride == 1`` and ``C_in == C_out`` the input is added to the
    output, so the block only has to learn a correction.

    Parameters
    ----------
    inp : int
        Input channels ``C_in``.
    oup : int
        Output channels ``C_out``.
    stride : {1, 2}
    expand_ratio : int
        ``t``; hidden width ``h = round(C_in · t)``.  With ``t = 1`` the expansion is skipped.

    Attributes
    ----------
    conv : Sequential
        ``[Conv2dNormActivation(C_in, h, 1), Conv2dNormActivation(h, h, 3, stride, groups=h),
        Conv2d(h, C_out, 1, bias=False), BatchNorm2d(C_out)]`` (the first one absent when ``t = 1``),
        so keys read ``conv.0.0.weight`` ... ``conv.3.running_var`` as in torchvision.
    use_res_connect : bool
        ``stride == 1 and inp == oup``.

    Notes
    -----
    Parameters: ``(C_in·h + 2h)`` (expansion, only if ``t ≠ 1``) ``+ (9h + 2h) + (h·C_out + 2·C_out)``.
    ``InvertedResidual(24, 24, 1, 6)``: h = 144, 3,744 + 1,584 + 3,504 = 8,832.

    Shape
    -----
    - Input: ``(N, C_in, H, W)``
    - Output: ``(N, C_out, H_out, W_out)``, ``H_out = ⌊(H + 2 − 2 − 1)/s⌋ + 1``.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers.nn import InvertedResidual
    >>> block = InvertedResidual(24, 24, stride=1, expand_ratio=6)
    >>> block.use_res_connect, block.num_parameters()
    (True, 8832)
    >>> block.eval()(np.zeros((1, 24, 16, 16), dtype=np.float32)).shape
    (1, 24, 16, 16)
    """

    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        if stride not in (1, 2) or isinstance(stride, bool):
            raise ValueError(f"stride must be 1 or 2, got {stride!r}")
        inp = _int_at_least(inp, "inp", 1)
        oup = _int_at_least(oup, "oup", 1)
        if isinstance(expand_ratio, bool) or not isinstance(expand_ratio, numbers.Real) or expand_ratio <= 0:
            raise ValueError(f"expand_ratio must be a positive number, got {expand_ratio!r}")
        self.stride = stride
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers = []
        if expand_ratio != 1:
            layers.append(Conv2dNormActivation(inp, hidden, kernel_size=1, activation="relu6"))
        layers += [
            Conv2dNormActivation(hidden, hidden, stride=stride, groups=hidden, activation="relu6"),
            Conv2d(hidden, oup, 1, 1, 0, bias=False),
            BatchNorm2d(oup),
        ]
        self.conv = Sequential(*layers)
        self.out_channels = oup
        self._is_cn = stride > 1

    def forward(self, x):
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)

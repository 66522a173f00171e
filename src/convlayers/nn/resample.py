"""Resampling and reshaping layers: Upsample, UpsamplingNearest2d, UpsamplingBilinear2d,
PixelShuffle, PixelUnshuffle, ChannelShuffle, Unfold and Fold (PyTorch's arguments and repr).
"""

from __future__ import annotations

from .. import functional as F
from .layers import _positive_int
from .module import Module

__all__ = ["Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d", "PixelShuffle", "PixelUnshuffle",
           "ChannelShuffle", "Unfold", "Fold"]


class Upsample(Module):
    r"""Resample the spatial axes (``torch.nn.Upsample``): :func:`convlayers.functional.interpolate` as a layer.

    Parameters
    ----------
    size : int or tuple of ints, optional
    scale_factor : float or tuple of floats, optional
    mode : str, default 'nearest'
        ``nearest``, ``nearest-exact``, ``linear``, ``bilinear``, ``bicubic``, ``trilinear`` or ``area``.
    align_corners : bool, optional
    recompute_scale_factor : bool, optional

    Shape
    -----
    ``(N, C, *in) → (N, C, *out)``.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> up = nn.Upsample(scale_factor=2, mode="bilinear")
    >>> up
    Upsample(scale_factor=2.0, mode='bilinear')
    >>> up(np.ones((1, 3, 4, 4), np.float32)).shape
    (1, 3, 8, 8)
    """

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None,
                 recompute_scale_factor=None):
        super().__init__()
        self.name = type(self).__name__
        self.size = size
        if isinstance(scale_factor, (tuple, list)):
            self.scale_factor = tuple(float(f) for f in scale_factor)
        else:
            self.scale_factor = float(scale_factor) if scale_factor is not None else None
        self.mode = mode
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def extra_repr(self):
        if self.scale_factor is not None:
            info = f"scale_factor={self.scale_factor!r}"
        else:
            info = f"size={self.size!r}"
        return info + f", mode={self.mode!r}"

    def forward(self, input):
        return F.interpolate(input, self.size, self.scale_factor, self.mode, self.align_corners,
                             recompute_scale_factor=self.recompute_scale_factor)


class UpsamplingNearest2d(Upsample):
    r"""Nearest-neighbour upsampling of ``(N, C, H, W)`` input (``torch.nn.UpsamplingNearest2d``).

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.UpsamplingNearest2d(scale_factor=2)(np.ones((1, 1, 2, 3))).shape
    (1, 1, 4, 6)
    """

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    r"""Bilinear upsampling with ``align_corners=True`` (``torch.nn.UpsamplingBilinear2d``).

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.UpsamplingBilinear2d(size=(1, 3))(np.array([[[[0.0, 1.0]]]]))
    array([[[[0. , 0.5, 1. ]]]])
    """

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)


class PixelShuffle(Module):
    r"""``(*, C·r², H, W) → (*, C, H·r, W·r)`` (``torch.nn.PixelShuffle``, sub-pixel convolution's last step).

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.PixelShuffle(2)(np.ones((1, 8, 3, 3))).shape
    (1, 2, 6, 6)
    """

    def __init__(self, upscale_factor):
        super().__init__()
        self.upscale_factor = _positive_int(upscale_factor, "upscale_factor")

    def extra_repr(self):
        return f"upscale_factor={self.upscale_factor}"

    def forward(self, input):
        return F.pixel_shuffle(input, self.upscale_factor)


class PixelUnshuffle(Module):
    r"""``(*, C, H·r, W·r) → (*, C·r², H, W)`` (``torch.nn.PixelUnshuffle``).

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.PixelUnshuffle(2)(np.ones((1, 2, 6, 6))).shape
    (1, 8, 3, 3)
    """

    def __init__(self, downscale_factor):
        super().__init__()
        self.downscale_factor = _positive_int(downscale_factor, "downscale_factor")

    def extra_repr(self):
        return f"downscale_factor={self.downscale_factor}"

    def forward(self, input):
        return F.pixel_unshuffle(input, self.downscale_factor)


class ChannelShuffle(Module):
    r"""Interleave channel groups (``torch.nn.ChannelShuffle``, ShuffleNet).

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.ChannelShuffle(2)(np.arange(4.0).reshape(1, 4, 1)).ravel()
    array([0., 2., 1., 3.])
    """

    def __init__(self, groups):
        super().__init__()
        self.groups = _positive_int(groups, "groups")

    def extra_repr(self):
        return f"groups={self.groups}"

    def forward(self, input):
        return F.channel_shuffle(input, self.groups)


class Unfold(Module):
    r"""Sliding local blocks (``torch.nn.Unfold``): ``(N, C, H, W) → (N, C·k_h·k_w, L)``.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.Unfold(kernel_size=(2, 3))(np.ones((2, 5, 3, 4))).shape
    (2, 30, 4)
    """

    def __init__(self, kernel_size, dilation=1, padding=0, stride=1):
        super().__init__()
        self.kernel_size, self.dilation, self.padding, self.stride = kernel_size, dilation, padding, stride

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, dilation={self.dilation}, padding={self.padding}, "
                f"stride={self.stride}")

    def forward(self, input):
        return F.unfold(input, self.kernel_size, self.dilation, self.padding, self.stride)


class Fold(Module):
    r"""Sum sliding local blocks into an image (``torch.nn.Fold``): ``(N, C·k_h·k_w, L) → (N, C, *output_size)``.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.Fold(output_size=(4, 5), kernel_size=(2, 2))(np.ones((1, 12, 12))).shape
    (1, 3, 4, 5)
    """

    def __init__(self, output_size, kernel_size, dilation=1, padding=0, stride=1):
        super().__init__()
        self.output_size, self.kernel_size = output_size, kernel_size
        self.dilation, self.padding, self.stride = dilation, padding, stride

    def extra_repr(self):
        return (f"output_size={self.output_size}, kernel_size={self.kernel_size}, dilation={self.dilation}, "
                f"padding={self.padding}, stride={self.stride}")

    def forward(self, input):
        return F.fold(input, self.output_size, self.kernel_size, self.dilation, self.padding, self.stride)

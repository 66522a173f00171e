"""``torch.nn``'s building blocks on NumPy: modules, layers, initialisers and the seed's blocks.

Calling a module on an ndarray runs inference and returns an ndarray; calling
it on a :class:`~convlayers.autograd.Tensor` returns a Tensor to back-propagate.

Examples
--------
>>> import numpy as np
>>> from convlayers import nn
>>> net = nn.Sequential(nn.ConvBNReLU(1, 8), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
>>> net.eval()(np.zeros((4, 1, 8, 8), dtype=np.float32)).shape
(4, 10)
>>> list(net.state_dict())[:3]
['0.0.weight', '0.1.weight', '0.1.bias']
"""

from . import init
from .blocks import Conv2dNormActivation, ConvBNReLU, DepthwiseSeparable, InvertedResidual, MobileBlock
from .layers import (AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv2d, ConvTranspose2d, Dropout, Flatten,
                     Identity, Linear, MaxPool2d, ReLU, ReLU6)
from .module import IncompatibleKeys, Module, ModuleList, Parameter, Sequential
from .normalization import (BatchNorm1d, BatchNorm3d, GroupNorm, InstanceNorm1d, InstanceNorm2d, InstanceNorm3d,
                            LayerNorm, LocalResponseNorm, RMSNorm)
from .resample import (ChannelShuffle, Fold, PixelShuffle, PixelUnshuffle, Unfold, Upsample, UpsamplingBilinear2d,
                       UpsamplingNearest2d)

__all__ = [
    "Module", "Parameter", "Sequential", "ModuleList", "IncompatibleKeys", "init",
    "Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "BatchNorm2d",
    "ReLU", "ReLU6", "Flatten", "Linear", "Dropout", "Identity",
    "Conv2dNormActivation", "ConvBNReLU", "DepthwiseSeparable", "MobileBlock", "InvertedResidual",
    "BatchNorm1d", "BatchNorm3d", "GroupNorm", "LayerNorm", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d",
    "LocalResponseNorm", "RMSNorm", "Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d", "PixelShuffle",
    "PixelUnshuffle", "ChannelShuffle", "Unfold", "Fold",
]

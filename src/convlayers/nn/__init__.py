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
from .layers import BatchNorm2d, Conv2d, ConvTranspose2d, Dropout, Flatten, Identity, Linear, ReLU, ReLU6
from . import pooling as _pooling_module
from .pooling import *  # noqa: F401,F403  (Max/Avg/AdaptiveAvg/AdaptiveMax/LP/FractionalMax pools, MaxUnpool)
from .conv import Conv1d, Conv3d, ConvTranspose1d, ConvTranspose3d
from .padding import (CircularPad1d, CircularPad2d, CircularPad3d, ConstantPad1d, ConstantPad2d, ConstantPad3d,
                      ReflectionPad1d, ReflectionPad2d, ReflectionPad3d, ReplicationPad1d, ReplicationPad2d,
                      ReplicationPad3d, ZeroPad1d, ZeroPad2d, ZeroPad3d)
from .module import IncompatibleKeys, Module, ModuleList, Parameter, RemovableHandle, Sequential
from . import activation as _activation_module
from . import dropout as _dropout_module
from . import loss as _loss_module
from .activation import *  # noqa: F401,F403  (Sigmoid, Tanh, SiLU, Hardswish, ..., GLU)
from .container import ModuleDict, ParameterList
from .dropout import *  # noqa: F401,F403  (Dropout1d/2d/3d, AlphaDropout, FeatureAlphaDropout)
from .loss import *  # noqa: F401,F403  (CrossEntropyLoss, NLLLoss, MSELoss, BCELoss, ..., KLDivLoss)
from .normalization import (BatchNorm1d, BatchNorm3d, GroupNorm, InstanceNorm1d, InstanceNorm2d, InstanceNorm3d,
                            LayerNorm, LocalResponseNorm, RMSNorm)
from .resample import (ChannelShuffle, Fold, PixelShuffle, PixelUnshuffle, Unfold, Upsample, UpsamplingBilinear2d,
                       UpsamplingNearest2d)

__all__ = [
    "Module", "Parameter", "Sequential", "ModuleList", "IncompatibleKeys", "init",
    "Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "BatchNorm2d",
    "ReLU", "ReLU6", "Flatten", "Linear", "Dropout", "Identity",
    "Conv2dNormActivation", "ConvBNReLU", "DepthwiseSeparable", "MobileBlock", "InvertedResidual",
    "Conv1d", "Conv3d", "ConvTranspose1d", "ConvTranspose3d",
    "ZeroPad1d", "ZeroPad2d", "ZeroPad3d", "ConstantPad1d", "ConstantPad2d", "ConstantPad3d",
    "ReflectionPad1d", "ReflectionPad2d", "ReflectionPad3d", "ReplicationPad1d", "ReplicationPad2d",
    "ReplicationPad3d", "CircularPad1d", "CircularPad2d", "CircularPad3d",
    *(n for n in _pooling_module.__all__ if n not in ("MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d")),
    "ModuleDict", "ParameterList", "RemovableHandle",
    *_activation_module.__all__, *_dropout_module.__all__, *_loss_module.__all__,
    "BatchNorm1d", "BatchNorm3d", "GroupNorm", "LayerNorm", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d",
    "LocalResponseNorm", "RMSNorm", "Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d", "PixelShuffle",
    "PixelUnshuffle", "ChannelShuffle", "Unfold", "Fold",
]

"""PyTorch's ``torch.nn.functional`` on NumPy arrays.

Import as ``import convlayers.functional as F``.  Every op takes and returns
plain ndarrays; pass a :class:`convlayers.Tensor` and the op records its
backward instead (see ``convlayers._dispatch``).

The ``*_backward`` functions are the gradients the autograd layer uses; they
are public so that they can be tested and reused on their own.
"""

from .activation import relu, relu6, relu6_backward, relu_backward
from . import dropout as _dropout_module
from . import loss as _loss_module
from .convolution import conv2d, conv2d_backward, conv_transpose2d, conv_transpose2d_backward
from .convolution import (conv1d, conv1d_backward, conv3d, conv3d_backward, conv_transpose1d,
                          conv_transpose1d_backward, conv_transpose3d, conv_transpose3d_backward)
from .linear import linear
from ._conv_channels_last import from_channels_last, is_channels_last, to_channels_last
from .norm import batch_norm
from .normalization import group_norm, instance_norm, layer_norm, local_response_norm, normalize, rms_norm
from .resample import interpolate, upsample, upsample_bilinear, upsample_nearest
from .grid import affine_grid, grid_sample
from .shuffle import channel_shuffle, pixel_shuffle, pixel_unshuffle
from .sliding import fold, unfold
from .padding import pad, pad_backward
from .pooling import avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward
from .pooling_sized import adaptive_avg_pool2d, adaptive_avg_pool2d_backward, adaptive_max_pool2d
from . import pooling as _pooling_module
from . import pooling_sized as _pooling_sized_module
from .pooling import *  # noqa: F401,F403  (max/avg/lp pooling 1d-3d and their backwards)
from .pooling_sized import *  # noqa: F401,F403  (adaptive, fractional, max_unpool 1d-3d and backwards)
from ..sizes import conv_output_size
from .dropout import *  # noqa: F401,F403  (dropout, manual_seed, dropout_mask)
from .loss import *  # noqa: F401,F403  (softmax, log_softmax, nll_loss, cross_entropy, mse_loss, backwards)
from . import pointwise as _pointwise_module
from . import loss_pointwise as _loss_pointwise_module
from .pointwise import *  # noqa: F401,F403  (sigmoid, tanh, silu, hardswish, ..., glu and their backward)
from .loss_pointwise import *  # noqa: F401,F403  (binary_cross_entropy(_with_logits), l1, smooth_l1, huber, kl_div)

__all__ = [
    "conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d",
    "pad", "batch_norm", "relu", "relu6", "linear", "conv_output_size",
    "to_channels_last", "from_channels_last", "is_channels_last",
    "conv2d_backward", "conv_transpose2d_backward", "max_pool2d_backward", "avg_pool2d_backward",
    "adaptive_avg_pool2d_backward", "pad_backward", "relu_backward", "relu6_backward",
    "conv1d", "conv3d", "conv_transpose1d", "conv_transpose3d", "conv1d_backward", "conv3d_backward",
    "conv_transpose1d_backward", "conv_transpose3d_backward",
    *_dropout_module.__all__, *_loss_module.__all__,
    *(n for n in _pooling_module.__all__ + _pooling_sized_module.__all__
      if n not in ("max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d", "max_pool2d_backward",
                   "avg_pool2d_backward", "adaptive_avg_pool2d_backward")),
    "group_norm", "instance_norm", "layer_norm", "local_response_norm", "normalize", "rms_norm",
    "interpolate", "upsample", "upsample_bilinear", "upsample_nearest", "affine_grid", "grid_sample",
    "channel_shuffle", "pixel_shuffle", "pixel_unshuffle", "fold", "unfold",
    *_pointwise_module.__all__, *_loss_pointwise_module.__all__,
]

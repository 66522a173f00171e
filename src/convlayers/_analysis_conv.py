"""Shape and cost rules of ``analysis.summary`` for the 1-D and 3-D convolutions.

The output shape comes from the ops' own validation (:mod:`convlayers.functional._conv_args`)
run on a zero-strided stand-in of the traced input, so a summary refuses exactly
what the op refuses.  The receptive field and jump, kept for (height, width),
follow the last spatial axes: the length of a 1-D signal counts as the width,
a 3-D volume's depth is not tracked.
"""

from __future__ import annotations

import math

import numpy as np

from .functional._conv_args import conv_args, transpose_args


def _stand_in(x):
    return np.broadcast_to(np.zeros((), dtype=np.float32), x.shape)


def _weight(w):
    return np.broadcast_to(np.zeros((), dtype=np.float32), np.shape(w))


def rule_conv_nd(name, a):
    """``conv1d`` / ``conv3d``: (output probe, MACs = outputs · C_in/groups · prod(kernel), 0)."""
    nd = int(name[-2])
    x = a["input"]
    c = conv_args(name, nd, _stand_in(x), _weight(a["weight"]), None, a["stride"], a["padding"], a["dilation"],
                  a["groups"], a.get("padding_mode", "zeros"))
    out_shape = c.out_shape[1:] if c.unbatched else c.out_shape
    kernel = c.w.shape[2:]
    rf, jump = list(x.rf), list(x.jump)
    for i in range(min(nd, 2)):
        axis, pair = nd - 1 - i, 1 - i  # last spatial axis -> width
        span = c.dilation[axis] * (kernel[axis] - 1) + 1
        rf[pair] = x.rf[pair] + (span - 1) * x.jump[pair]
        jump[pair] = x.jump[pair] * c.stride[axis]
    out = x._like(out_shape, tuple(rf), tuple(jump))
    return out, out.size * c.w.shape[1] * math.prod(kernel), 0


def rule_conv_transpose_nd(name, a):
    """``conv_transpose1d`` / ``conv_transpose3d``: MACs = inputs · C_out/groups · prod(kernel)."""
    nd = int(name[-2])
    x = a["input"]
    c = transpose_args(name, nd, _stand_in(x), _weight(a["weight"]), None, a["stride"], a["padding"],
                       a["output_padding"], a["groups"], a["dilation"])
    out_shape = c.out_shape[1:] if c.unbatched else c.out_shape
    kernel = c.w.shape[2:]
    rf, jump = list(x.rf), list(x.jump)
    for i in range(min(nd, 2)):
        axis, pair = nd - 1 - i, 1 - i
        span = c.dilation[axis] * (kernel[axis] - 1) + 1
        rf[pair] = x.rf[pair] + (math.ceil(span / c.stride[axis]) - 1) * x.jump[pair]
        jump[pair] = x.jump[pair] / c.stride[axis]
    out = x._like(out_shape, tuple(rf), tuple(jump))
    return out, x.size * c.w.shape[1] * math.prod(kernel), 0

"""Reshaping ops: ``pixel_shuffle``, ``pixel_unshuffle`` and ``channel_shuffle``.

Each is a reshape, a transpose and a reshape (one copy); each one's gradient
is its inverse permutation (``pixel_shuffle`` ↔ ``pixel_unshuffle``, and
``channel_shuffle`` with ``C / groups`` groups).
"""

from __future__ import annotations

import numbers

import numpy as np

from .._dispatch import tensor_aware
from ._validate import as_array

__all__ = ["pixel_shuffle", "pixel_unshuffle", "channel_shuffle"]


def _factor(value, name, op):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{op}: {name} must be an int, got {value!r}")
    if value <= 0:
        raise ValueError(f"{op}: {name} must be greater than 0, but got: {value}")
    return int(value)


def _at_least_3d(x, op):
    if x.ndim < 3:
        raise ValueError(f"{op} expects input to have at least 3 dimensions, but got input with {x.ndim} "
                         f"dimension(s)")


@tensor_aware
def pixel_shuffle(input, upscale_factor):
    r"""Rearrange ``(*, C·r², H, W)`` into ``(*, C, H·r, W·r)``, as ``torch.nn.functional.pixel_shuffle``.

    ``out[..., c, h·r + i, w·r + j] = x[..., c·r² + i·r + j, h, w]``.

    Examples
    --------
    >>> import numpy as np
    >>> pixel_shuffle(np.arange(4).reshape(1, 4, 1, 1), 2)[0, 0]
    array([[0, 1],
           [2, 3]])
    """
    x = as_array(input, "input")
    _at_least_3d(x, "pixel_shuffle")
    r = _factor(upscale_factor, "upscale_factor", "pixel_shuffle")
    *lead, c, h, w = x.shape
    if c % (r * r):
        raise ValueError(f"pixel_shuffle expects its input's 'channel' dimension to be divisible by the square of "
                         f"upscale_factor, but input.size(-3)={c} is not divisible by {r * r}")
    k = len(lead)
    y = x.reshape(*lead, c // (r * r), r, r, h, w)
    y = y.transpose(*range(k), k, k + 3, k + 1, k + 4, k + 2)
    return np.ascontiguousarray(y).reshape(*lead, c // (r * r), h * r, w * r)


@tensor_aware
def pixel_unshuffle(input, downscale_factor):
    r"""Rearrange ``(*, C, H·r, W·r)`` into ``(*, C·r², H, W)``: the inverse of :func:`pixel_shuffle`.

    Examples
    --------
    >>> import numpy as np
    >>> pixel_unshuffle(np.arange(4).reshape(1, 1, 2, 2), 2).ravel()
    array([0, 1, 2, 3])
    """
    x = as_array(input, "input")
    _at_least_3d(x, "pixel_unshuffle")
    r = _factor(downscale_factor, "downscale_factor", "pixel_unshuffle")
    *lead, c, h, w = x.shape
    if h % r or w % r:
        raise ValueError(f"pixel_unshuffle expects height ({h}) and width ({w}) to be divisible by "
                         f"downscale_factor ({r})")
    k = len(lead)
    y = x.reshape(*lead, c, h // r, r, w // r, r)
    y = y.transpose(*range(k), k, k + 2, k + 4, k + 1, k + 3)
    return np.ascontiguousarray(y).reshape(*lead, c * r * r, h // r, w // r)


@tensor_aware
def channel_shuffle(input, groups):
    r"""Interleave the channel groups, as ``torch.nn.functional.channel_shuffle`` (ShuffleNet).

    ``(N, C, *)``: channels viewed as ``(groups, C/groups)``, transposed, flattened.

    Examples
    --------
    >>> import numpy as np
    >>> channel_shuffle(np.arange(6).reshape(1, 6, 1), 2).ravel()
    array([0, 3, 1, 4, 2, 5])
    """
    x = as_array(input, "input")
    if x.ndim <= 2:
        raise ValueError(f"channel_shuffle expects input with > 2 dims, but got input with sizes {list(x.shape)}")
    g = _factor(groups, "groups", "channel_shuffle")
    n, c = x.shape[:2]
    if c % g:
        raise ValueError(f"channel_shuffle: Number of channels must be divisible by groups. Got {c} channels and "
                         f"{g} groups.")
    rest = x.shape[2:]
    y = x.reshape(n, g, c // g, *rest).swapaxes(1, 2)
    return np.ascontiguousarray(y).reshape(x.shape)

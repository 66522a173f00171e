"""Output-size arithmetic shared by every sliding-window layer.

The one formula behind convolution and pooling: a window of ``k`` taps spaced
``d`` apart, moved ``s`` at a time over ``n`` samples padded by ``p`` on each
side, fits ``⌊(n + 2p − d(k−1) − 1)/s⌋ + 1`` times.
"""

from __future__ import annotations

import numbers

__all__ = ["conv_output_size", "pair"]


def pair(value, name: str) -> tuple[int, int]:
    """Normalise an int or a length-2 sequence of ints to a ``(h, w)`` tuple.

    Raises ``TypeError`` naming ``name`` for anything else.
    """
    if isinstance(value, (bool,)) or value is None:
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if isinstance(value, numbers.Integral):
        return _int64(value, name), _int64(value, name)
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}") from None
    if len(items) == 1:
        items = items * 2
    if len(items) != 2 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in items):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    return _int64(items[0], name), _int64(items[1], name)


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _int64(value, name: str) -> int:
    """``int(value)``, or a ValueError naming ``name`` outside int64: the kernels take int64 geometry, and a
    larger stride used to wrap round to a negative one there (a wrong value) or raise a bare OverflowError."""
    value = int(value)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"{name} must fit in a 64-bit signed integer, got {value}")
    return value


def conv_output_size(in_size, kernel_size, stride=1, padding=0, dilation=1, ceil_mode=False):
    """Number of window positions along one axis.

    Parameters
    ----------
    in_size : int
        Length of the input along the axis (before padding).
    kernel_size : int
        Window length ``k``.
    stride : int, default 1
        Step ``s`` between window starts.
    padding : int, default 0
        Zeros ``p`` added on *each* side.
    dilation : int, default 1
        Spacing ``d`` between window taps; the window spans ``d(k−1) + 1``.
    ceil_mode : bool, default False
        Round up instead of down, as pooling's ``ceil_mode`` does, dropping a
        last window that would start inside the right padding (PyTorch's rule).

    Returns
    -------
    int
        ``⌊(n + 2p − d(k−1) − 1)/s⌋ + 1`` (``⌈·⌉`` with ``ceil_mode``).

    Raises
    ------
    ValueError
        If an argument is out of range or the window does not fit.

    Examples
    --------
    >>> conv_output_size(32, 3, padding=1)      # 'same' size for a 3x3
    32
    >>> conv_output_size(5, 3)                   # valid convolution
    3
    >>> conv_output_size(5, 3, padding=1)        # 5 padded by 1 is 7 -> 5
    5
    >>> conv_output_size(8, 3, stride=2)
    3
    >>> conv_output_size(5, 2, stride=2, ceil_mode=True)
    3
    """
    for name, value, low in (("in_size", in_size, 0), ("kernel_size", kernel_size, 1),
                             ("stride", stride, 1), ("padding", padding, 0), ("dilation", dilation, 1)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an int, got {value!r}")
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")
        _int64(value, name)
    span = dilation * (kernel_size - 1) + 1
    room = in_size + 2 * padding - span
    if room < 0:
        raise ValueError(
            f"kernel_size {kernel_size} (dilated span {span}) is larger than the padded input "
            f"({in_size} + 2*{padding} = {in_size + 2 * padding})")
    if not ceil_mode:
        return room // stride + 1
    out = -(-room // stride) + 1
    # PyTorch: the last window must start inside the input or the left padding.
    if (out - 1) * stride >= in_size + padding:
        out -= 1
    return out

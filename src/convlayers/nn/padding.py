"""Padding layers, as ``torch.nn``'s: Zero/Constant/Reflection/Replication/CircularPad1d/2d/3d.

Each holds ``padding`` as PyTorch does (an int becomes ``2·nd`` equal widths,
``(left, right[, top, bottom[, front, back]])``) and calls :func:`convlayers.functional.pad`.
Negative widths crop, as in PyTorch.
"""

from __future__ import annotations

import numbers

from .. import functional as F
from .module import Module

__all__ = [
    "ZeroPad1d", "ZeroPad2d", "ZeroPad3d", "ConstantPad1d", "ConstantPad2d", "ConstantPad3d",
    "ReflectionPad1d", "ReflectionPad2d", "ReflectionPad3d", "ReplicationPad1d", "ReplicationPad2d",
    "ReplicationPad3d", "CircularPad1d", "CircularPad2d", "CircularPad3d",
]


def _widths(padding, nd, name):
    if isinstance(padding, numbers.Integral) and not isinstance(padding, bool):
        return (int(padding),) * (2 * nd)
    try:
        widths = tuple(padding)
    except TypeError:
        raise TypeError(f"{name}: padding must be an int or a tuple of {2 * nd} ints, got {padding!r}") from None
    if len(widths) != 2 * nd or not all(isinstance(p, numbers.Integral) and not isinstance(p, bool) for p in widths):
        raise TypeError(f"{name}: padding must be an int or a tuple of {2 * nd} ints, got {padding!r}")
    return tuple(int(p) for p in widths)


class _PadNd(Module):
    _nd = 1
    _mode = "constant"

    def __init__(self, padding):
        super().__init__()
        self.padding = _widths(padding, self._nd, type(self).__name__)

    def _check_input_dim(self, input):
        if self._mode == "constant":
            return
        ndim = len(getattr(input, "shape", ()))
        if ndim not in (self._nd + 1, self._nd + 2):
            raise ValueError(f"{type(self).__name__}: expected {self._nd + 1}-D (unbatched) or {self._nd + 2}-D "
                             f"(batched) input, got {ndim}-D input")

    def forward(self, input):
        self._check_input_dim(input)
        return F.pad(input, self.padding, self._mode)

    def extra_repr(self):
        return f"{self.padding}"


class _ConstantPadNd(_PadNd):
    def __init__(self, padding, value):
        super().__init__(padding)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{type(self).__name__}: value must be a real number, got {value!r}")
        self.value = float(value)

    def forward(self, input):
        return F.pad(input, self.padding, "constant", self.value)

    def extra_repr(self):
        return f"padding={self.padding}, value={self.value}"


class _ZeroPadNd(_ConstantPadNd):
    def __init__(self, padding):
        super().__init__(padding, 0.0)

    def extra_repr(self):
        return f"{self.padding}"


def _doc(kind, nd, rule, example):
    axes = {1: "(C, W) or (N, C, W)", 2: "(C, H, W) or (N, C, H, W)", 3: "(C, D, H, W) or (N, C, D, H, W)"}[nd]
    widths = {1: "(left, right)", 2: "(left, right, top, bottom)", 3: "(left, right, top, bottom, front, back)"}[nd]
    return f"""{kind} of the last {nd} dimension{'s' if nd > 1 else ''}, as ``torch.nn.{example[0]}``: {rule}

    Parameters
    ----------
    padding : int or tuple of {2 * nd} ints
        ``{widths}``; an int pads every side by the same amount; negative widths crop.{example[2]}

    Shape
    -----
    - Input: {axes}{' (any rank for constant padding)' if 'Pad' in example[0] and example[0].startswith(('Zero', 'Constant')) else ''}
    - Output: each padded axis grows by its two widths.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    {example[1]}
    """


class ZeroPad1d(_ZeroPadNd):
    _nd = 1
    __doc__ = _doc("Zero padding", 1, "zeros on both sides.", (
        "ZeroPad1d", """>>> nn.ZeroPad1d((1, 2))(np.ones((1, 1, 2)))
    array([[[0., 1., 1., 0., 0.]]])""", ""))


class ZeroPad2d(_ZeroPadNd):
    _nd = 2
    __doc__ = _doc("Zero padding", 2, "zeros on every side.", (
        "ZeroPad2d", """>>> nn.ZeroPad2d(1)(np.ones((1, 1, 2, 2))).shape
    (1, 1, 4, 4)""", ""))


class ZeroPad3d(_ZeroPadNd):
    _nd = 3
    __doc__ = _doc("Zero padding", 3, "zeros on every side.", (
        "ZeroPad3d", """>>> nn.ZeroPad3d((1, 1, 0, 0, 2, 0))(np.ones((1, 2, 2, 2))).shape
    (1, 4, 2, 4)""", ""))


_VALUE = "\n    value : float\n        The fill value."


class ConstantPad1d(_ConstantPadNd):
    _nd = 1
    __doc__ = _doc("Constant padding", 1, "``value`` on both sides.", (
        "ConstantPad1d", """>>> nn.ConstantPad1d(2, 3.5)(np.zeros((1, 2)))
    array([[3.5, 3.5, 0. , 0. , 3.5, 3.5]])""", _VALUE))


class ConstantPad2d(_ConstantPadNd):
    _nd = 2
    __doc__ = _doc("Constant padding", 2, "``value`` on every side.", (
        "ConstantPad2d", """>>> nn.ConstantPad2d((1, 0, 0, 1), -1.0)(np.zeros((1, 1, 1)))
    array([[[-1.,  0.],
            [-1., -1.]]])""", _VALUE))


class ConstantPad3d(_ConstantPadNd):
    _nd = 3
    __doc__ = _doc("Constant padding", 3, "``value`` on every side.", (
        "ConstantPad3d", """>>> nn.ConstantPad3d(1, 2.0)(np.zeros((1, 1, 1, 1, 1))).shape
    (1, 1, 3, 3, 3)""", _VALUE))


class ReflectionPad1d(_PadNd):
    _nd, _mode = 1, "reflect"
    __doc__ = _doc("Reflection padding", 1, "the input mirrored about its edge (the edge not repeated).", (
        "ReflectionPad1d", """>>> nn.ReflectionPad1d(2)(np.arange(4.0).reshape(1, 1, 4))
    array([[[2., 1., 0., 1., 2., 3., 2., 1.]]])""", ""))


class ReflectionPad2d(_PadNd):
    _nd, _mode = 2, "reflect"
    __doc__ = _doc("Reflection padding", 2, "the input mirrored about its edges (the edge not repeated).", (
        "ReflectionPad2d", """>>> nn.ReflectionPad2d((1, 1, 2, 0))(np.arange(9.0).reshape(1, 3, 3))[0]
    array([[7., 6., 7., 8., 7.],
           [4., 3., 4., 5., 4.],
           [1., 0., 1., 2., 1.],
           [4., 3., 4., 5., 4.],
           [7., 6., 7., 8., 7.]])""", ""))


class ReflectionPad3d(_PadNd):
    _nd, _mode = 3, "reflect"
    __doc__ = _doc("Reflection padding", 3, "the input mirrored about its faces (the face not repeated).", (
        "ReflectionPad3d", """>>> nn.ReflectionPad3d(1)(np.zeros((1, 1, 2, 2, 2))).shape
    (1, 1, 4, 4, 4)""", ""))


class ReplicationPad1d(_PadNd):
    _nd, _mode = 1, "replicate"
    __doc__ = _doc("Replication padding", 1, "the edge value repeated.", (
        "ReplicationPad1d", """>>> nn.ReplicationPad1d((2, 1))(np.arange(3.0).reshape(1, 3))
    array([[0., 0., 0., 1., 2., 2.]])""", ""))


class ReplicationPad2d(_PadNd):
    _nd, _mode = 2, "replicate"
    __doc__ = _doc("Replication padding", 2, "the edge values repeated.", (
        "ReplicationPad2d", """>>> nn.ReplicationPad2d(1)(np.arange(4.0).reshape(1, 2, 2))[0]
    array([[0., 0., 1., 1.],
           [0., 0., 1., 1.],
           [2., 2., 3., 3.],
           [2., 2., 3., 3.]])""", ""))


class ReplicationPad3d(_PadNd):
    _nd, _mode = 3, "replicate"
    __doc__ = _doc("Replication padding", 3, "the face values repeated.", (
        "ReplicationPad3d", """>>> nn.ReplicationPad3d((1, 0, 0, 0, 0, 2))(np.ones((1, 1, 1, 1, 1))).shape
    (1, 1, 3, 1, 2)""", ""))


class CircularPad1d(_PadNd):
    _nd, _mode = 1, "circular"
    __doc__ = _doc("Circular padding", 1, "the input wrapped around.", (
        "CircularPad1d", """>>> nn.CircularPad1d((2, 1))(np.arange(3.0).reshape(1, 1, 3))
    array([[[1., 2., 0., 1., 2., 0.]]])""", ""))


class CircularPad2d(_PadNd):
    _nd, _mode = 2, "circular"
    __doc__ = _doc("Circular padding", 2, "the input wrapped around.", (
        "CircularPad2d", """>>> nn.CircularPad2d(1)(np.arange(4.0).reshape(1, 1, 2, 2))[0, 0]
    array([[3., 2., 3., 2.],
           [1., 0., 1., 0.],
           [3., 2., 3., 2.],
           [1., 0., 1., 0.]])""", ""))


class CircularPad3d(_PadNd):
    _nd, _mode = 3, "circular"
    __doc__ = _doc("Circular padding", 3, "the input wrapped around.", (
        "CircularPad3d", """>>> nn.CircularPad3d(1)(np.zeros((1, 1, 2, 2, 2))).shape
    (1, 1, 4, 4, 4)""", ""))

"""Pooling layers, 1-D to 3-D, with PyTorch's names, arguments, attributes and repr.

Each is a thin class over one ``functional`` call: ``MaxPool1d/2d/3d``,
``AvgPool1d/2d/3d``, ``AdaptiveAvgPool1d/2d/3d``, ``AdaptiveMaxPool1d/2d/3d``,
``LPPool1d/2d/3d``, ``FractionalMaxPool2d/3d`` and ``MaxUnpool1d/2d/3d``.  They
take batched (N, C, *spatial) or unbatched (C, *spatial) input, as PyTorch's.
Arguments are checked when the layer is built, so that a bad one fails
before any data arrives.

Examples
--------
>>> import numpy as np
>>> from convlayers import nn
>>> pool = nn.MaxPool3d(2, return_indices=True)
>>> y, idx = pool(np.arange(64.0).reshape(1, 1, 4, 4, 4))
>>> nn.MaxUnpool3d(2)(y, idx).shape
(1, 1, 4, 4, 4)
>>> pool
MaxPool3d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
"""

from __future__ import annotations

import numbers

import numpy as np

from .. import functional as F
from ..functional.pooling import _ntuple
from ..functional.pooling_sized import _adaptive_size
from .module import Module

__all__ = [
    "MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d",
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d",
    "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d",
    "LPPool1d", "LPPool2d", "LPPool3d", "FractionalMaxPool2d", "FractionalMaxPool3d",
    "MaxUnpool1d", "MaxUnpool2d", "MaxUnpool3d",
]


def _check_window(name, dims, kernel_size, stride, padding, dilation=1):
    k = _ntuple(kernel_size, dims, "kernel_size", name, 1)
    if stride is not None and not (hasattr(stride, "__len__") and len(stride) == 0):
        _ntuple(stride, dims, "stride", name, 1)
    p = _ntuple(padding, dims, "padding", name, 0)
    _ntuple(dilation, dims, "dilation", name, 1)
    if any(pi > ki // 2 for pi, ki in zip(p, k)):
        raise ValueError(f"{name}: padding should be at most half of kernel_size, got padding={padding!r}, "
                         f"kernel_size={kernel_size!r}")


class _MaxPoolNd(Module):
    _dims = 2

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__()
        _check_window(type(self).__name__, self._dims, kernel_size, stride, padding, dilation)
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = bool(return_indices)
        self.ceil_mode = bool(ceil_mode)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")

    def forward(self, input):
        fn = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[self._dims - 1]
        return fn(input, self.kernel_size, self.stride, self.padding, self.dilation, ceil_mode=self.ceil_mode,
                  return_indices=self.return_indices)


class MaxPool1d(_MaxPoolNd):
    r"""Maximum over sliding windows of a (N, C, L) or (C, L) signal, as ``torch.nn.MaxPool1d``.

    Shape: ``L_out = ⌊(L + 2p − d(k−1) − 1)/s⌋ + 1`` (``⌈·⌉`` with ``ceil_mode``).
    See :func:`convlayers.functional.max_pool1d` for the arguments.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.MaxPool1d(2)(np.array([[1.0, 3.0, 2.0, 5.0]]))
    array([[3., 5.]])
    """
    _dims = 1


class MaxPool2d(_MaxPoolNd):
    r"""Maximum over sliding ``kernel_size`` windows, as ``torch.nn.MaxPool2d``.

    Parameters
    ----------
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel_size`` (non-overlapping windows).
    padding : int or (int, int), default 0
        Implicit ``−∞`` padding; at most half the kernel size.
    dilation : int or (int, int), default 1
    return_indices : bool, default False
        Also return the flat ``H·W`` index of each maximum (for unpooling).
    ceil_mode : bool, default False
        Round the output size up instead of down.

    Shape
    -----
    - Input: ``(N, C, H, W)`` or ``(C, H, W)``
    - Output: ``(N, C, H_out, W_out)``, ``H_out = ⌊(H + 2p − d(k−1) − 1)/s⌋ + 1``
      (``⌈·⌉`` with ``ceil_mode``).

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.MaxPool2d(2)(np.arange(16.0).reshape(1, 1, 4, 4))
    array([[[[ 5.,  7.],
             [13., 15.]]]])
    """
    _dims = 2


class MaxPool3d(_MaxPoolNd):
    r"""Maximum over sliding windows of a (N, C, D, H, W) or (C, D, H, W) volume, as ``torch.nn.MaxPool3d``.

    Shape, per spatial axis: ``out = ⌊(n + 2p − d(k−1) − 1)/s⌋ + 1``.
    See :func:`convlayers.functional.max_pool3d` for the arguments.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.MaxPool3d((1, 2, 2))(np.zeros((2, 3, 4, 6, 6))).shape
    (2, 3, 4, 3, 3)
    """
    _dims = 3


class _AvgPoolNd(Module):
    _dims = 2

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        name = type(self).__name__
        _check_window(name, self._dims, kernel_size, stride, padding)
        if divisor_override is not None:
            if isinstance(divisor_override, bool) or not isinstance(divisor_override, numbers.Integral):
                raise TypeError(f"{name}: divisor_override must be an int or None, got {divisor_override!r}")
            if divisor_override == 0:
                raise ValueError(f"{name}: divisor_override must be non-zero, got 0")
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = bool(ceil_mode)
        self.count_include_pad = bool(count_include_pad)
        self.divisor_override = divisor_override

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

    def forward(self, input):
        fn = F.avg_pool2d if self._dims == 2 else F.avg_pool3d
        return fn(input, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                  self.divisor_override)


class AvgPool1d(_AvgPoolNd):
    r"""Mean over sliding windows of a (N, C, L) or (C, L) signal, as ``torch.nn.AvgPool1d``.

    As PyTorch, it keeps ``kernel_size``, ``stride`` and ``padding`` as 1-tuples
    and has no ``divisor_override``.  Shape: ``L_out = ⌊(L + 2p − k)/s⌋ + 1``.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.AvgPool1d(2)
    AvgPool1d(kernel_size=(2,), stride=(2,), padding=(0,))
    >>> nn.AvgPool1d(2)(np.array([[1.0, 3.0, 2.0, 6.0]]))
    array([[2., 4.]])
    """
    _dims = 1

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)
        del self.divisor_override
        self.kernel_size = _ntuple(kernel_size, 1, "kernel_size", "AvgPool1d", 1)
        self.stride = _ntuple(stride if stride is not None else kernel_size, 1, "stride", "AvgPool1d", 1)
        self.padding = _ntuple(padding, 1, "padding", "AvgPool1d", 0)

    def forward(self, input):
        return F.avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)


class AvgPool2d(_AvgPoolNd):
    r"""Mean over sliding ``kernel_size`` windows, as ``torch.nn.AvgPool2d``.

    Parameters
    ----------
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel_size``.
    padding : int or (int, int), default 0
        Zero padding; at most half the kernel size.
    ceil_mode : bool, default False
    count_include_pad : bool, default True
        Whether padded zeros count in the divisor.
    divisor_override : int, optional
        Divide every window sum by this instead (non-zero).

    Shape
    -----
    - Input: ``(N, C, H, W)`` or ``(C, H, W)``
    - Output: ``(N, C, H_out, W_out)``, ``H_out = ⌊(H + 2p − k)/s⌋ + 1``.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.AvgPool2d(2)(np.arange(16.0).reshape(1, 1, 4, 4))
    array([[[[ 2.5,  4.5],
             [10.5, 12.5]]]])
    """
    _dims = 2


class AvgPool3d(_AvgPoolNd):
    r"""Mean over sliding windows of a (N, C, D, H, W) or (C, D, H, W) volume, as ``torch.nn.AvgPool3d``.

    Arguments as :class:`AvgPool2d`, per axis of three.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.AvgPool3d(2, divisor_override=1)(np.ones((1, 2, 2, 2)))
    array([[[[8.]]]])
    """
    _dims = 3


class _AdaptiveNd(Module):
    _dims = 2
    _kind = "avg"

    def __init__(self, output_size, return_indices=False):
        super().__init__()
        # The input's size stands in for None entries; only the form of output_size is checked here.
        _adaptive_size(type(self).__name__, output_size, (1,) * self._dims)
        self.output_size = output_size
        if self._kind == "max":
            self.return_indices = bool(return_indices)

    def extra_repr(self):
        return f"output_size={self.output_size}"

    def forward(self, input):
        if self._kind == "avg":
            return (F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d)[self._dims - 1](
                input, self.output_size)
        return (F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d)[self._dims - 1](
            input, self.output_size, self.return_indices)


class _AdaptiveAvgNd(_AdaptiveNd):
    def __init__(self, output_size):
        super().__init__(output_size)


class AdaptiveAvgPool1d(_AdaptiveAvgNd):
    r"""Average pooling of a (N, C, L) or (C, L) signal to ``output_size`` cells, as ``torch.nn.AdaptiveAvgPool1d``.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.AdaptiveAvgPool1d(2)(np.array([[1.0, 2.0, 3.0, 6.0]]))
    array([[1.5, 4.5]])
    """
    _dims = 1


class AdaptiveAvgPool2d(_AdaptiveAvgNd):
    r"""Average pooling to a fixed output size, whatever the input size, as ``torch.nn.AdaptiveAvgPool2d``.

    Output cell ``i`` averages input rows ``⌊i·H/H_out⌋`` to ``⌈(i+1)·H/H_out⌉ − 1``
    (PyTorch's windows); ``output_size=1`` is global average pooling.

    Parameters
    ----------
    output_size : int or (int or None, int or None)
        ``None`` keeps that input dimension.

    Shape
    -----
    - Input: ``(N, C, H, W)`` or ``(C, H, W)``
    - Output: ``(N, C, H_out, W_out)``

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.AdaptiveAvgPool2d((1, 1))(np.ones((2, 5, 7, 7))).shape
    (2, 5, 1, 1)
    """
    _dims = 2


class AdaptiveAvgPool3d(_AdaptiveAvgNd):
    r"""Average pooling of a volume to ``output_size`` cells, as ``torch.nn.AdaptiveAvgPool3d``.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.AdaptiveAvgPool3d((1, None, 2))(np.ones((2, 3, 4, 5, 6))).shape
    (2, 3, 1, 5, 2)
    """
    _dims = 3


class AdaptiveMaxPool1d(_AdaptiveNd):
    r"""Max pooling of a (N, C, L) or (C, L) signal to ``output_size`` cells, as ``torch.nn.AdaptiveMaxPool1d``.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.AdaptiveMaxPool1d(2, return_indices=True)(np.array([[1.0, 2.0, 3.0, 6.0]]))
    (array([[2., 6.]]), array([[1, 3]]))
    """
    _dims, _kind = 1, "max"


class AdaptiveMaxPool2d(_AdaptiveNd):
    r"""Max pooling to ``output_size`` cells, as ``torch.nn.AdaptiveMaxPool2d`` (windows as :class:`AdaptiveAvgPool2d`).

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.AdaptiveMaxPool2d((2, 1))(np.arange(1.0, 17.0).reshape(1, 4, 4))
    array([[[ 8.],
            [16.]]])
    """
    _dims, _kind = 2, "max"


class AdaptiveMaxPool3d(_AdaptiveNd):
    r"""Max pooling of a volume to ``output_size`` cells, as ``torch.nn.AdaptiveMaxPool3d``.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.AdaptiveMaxPool3d(1)(np.arange(8.0).reshape(1, 2, 2, 2))
    array([[[[7.]]]])
    """
    _dims, _kind = 3, "max"


class _LPPoolNd(Module):
    _dims = 2

    def __init__(self, norm_type, kernel_size, stride=None, ceil_mode=False):
        super().__init__()
        name = type(self).__name__
        if isinstance(norm_type, bool) or not isinstance(norm_type, numbers.Real) or norm_type == 0:
            raise ValueError(f"{name}: norm_type must be a non-zero number, got {norm_type!r}")
        _check_window(name, self._dims, kernel_size, stride, 0)
        self.norm_type = norm_type
        self.kernel_size = kernel_size
        self.stride = stride
        self.ceil_mode = bool(ceil_mode)

    def extra_repr(self):
        return (f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"ceil_mode={self.ceil_mode}")

    def forward(self, input):
        fn = (F.lp_pool1d, F.lp_pool2d, F.lp_pool3d)[self._dims - 1]
        return fn(input, float(self.norm_type), self.kernel_size, self.stride, self.ceil_mode)


class LPPool1d(_LPPoolNd):
    r"""Power-average pooling ``(Σ x^p)^(1/p)`` over windows of a signal, as ``torch.nn.LPPool1d``.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.LPPool1d(2, 2)(np.array([[3.0, 4.0, 6.0, 8.0]]))
    array([[ 5., 10.]])
    """
    _dims = 1


class LPPool2d(_LPPoolNd):
    r"""Power-average pooling ``(Σ x^p)^(1/p)`` over 2-D windows, as ``torch.nn.LPPool2d``.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.LPPool2d(1, 2)(np.ones((1, 4, 4)))
    array([[[4., 4.],
            [4., 4.]]])
    """
    _dims = 2


class LPPool3d(_LPPoolNd):
    r"""Power-average pooling ``(Σ x^p)^(1/p)`` over 3-D windows, as ``torch.nn.LPPool3d``.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.LPPool3d(2, 2)(np.ones((1, 2, 2, 2))).shape
    (1, 1, 1, 1)
    """
    _dims = 3


class _FractionalMaxPoolNd(Module):
    _dims = 2

    def __init__(self, kernel_size, output_size=None, output_ratio=None, return_indices=False,
                 _random_samples=None):
        super().__init__()
        name = type(self).__name__
        dims = self._dims
        self.kernel_size = _ntuple(kernel_size, dims, "kernel_size", name, 1)
        self.return_indices = bool(return_indices)
        self.register_buffer("_random_samples", None if _random_samples is None else np.asarray(_random_samples))
        self.output_size = None if output_size is None else _ntuple(output_size, dims, "output_size", name, 1)
        self.output_ratio = None
        if output_ratio is not None:
            ratio = (output_ratio,) * dims if isinstance(output_ratio, numbers.Real) else tuple(output_ratio)
            if len(ratio) != dims or not all(isinstance(r, numbers.Real) and 0 < r < 1 for r in ratio):
                raise ValueError(f"{name}: output_ratio must be a number or {dims} numbers in (0, 1), got "
                                 f"{output_ratio!r}")
            self.output_ratio = ratio
        if self.output_size is None and self.output_ratio is None:
            raise ValueError(f"{name} requires specifying either an output size, or a pooling ratio")
        if self.output_size is not None and self.output_ratio is not None:
            raise ValueError(f"{name}: only one of output_size and output_ratio may be specified")

    def forward(self, input):
        fn = F.fractional_max_pool2d if self._dims == 2 else F.fractional_max_pool3d
        return fn(input, self.kernel_size, self.output_size, self.output_ratio, self.return_indices,
                  _random_samples=self._random_samples)


class FractionalMaxPool2d(_FractionalMaxPoolNd):
    r"""Fractional max pooling (Graham, 2014), as ``torch.nn.FractionalMaxPool2d``.

    Pass ``_random_samples`` (N, C, 2) in [0, 1) to fix the windows (PyTorch's,
    exactly); otherwise each call draws them.  See
    :func:`convlayers.functional.fractional_max_pool2d`.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.FractionalMaxPool2d(3, output_ratio=0.5)(np.zeros((2, 3, 10, 12))).shape
    (2, 3, 5, 6)
    """
    _dims = 2


class FractionalMaxPool3d(_FractionalMaxPoolNd):
    r"""Fractional max pooling of volumes, as ``torch.nn.FractionalMaxPool3d``.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.FractionalMaxPool3d(2, output_size=(3, 4, 2))(np.zeros((3, 6, 8, 5))).shape
    (3, 3, 4, 2)
    """
    _dims = 3


class _MaxUnpoolNd(Module):
    _dims = 2

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        name = type(self).__name__
        self.kernel_size = _ntuple(kernel_size, self._dims, "kernel_size", name, 1)
        self.stride = _ntuple(stride if stride is not None else kernel_size, self._dims, "stride", name, 1)
        self.padding = _ntuple(padding, self._dims, "padding", name, 0)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

    def forward(self, input, indices, output_size=None):
        fn = (F.max_unpool1d, F.max_unpool2d, F.max_unpool3d)[self._dims - 1]
        return fn(input, indices, self.kernel_size, self.stride, self.padding, output_size)


class MaxUnpool1d(_MaxUnpoolNd):
    r"""Partial inverse of :class:`MaxPool1d`, as ``torch.nn.MaxUnpool1d``: values back at their indices, zeros elsewhere.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.MaxUnpool1d(2)(np.array([[3.0, 5.0]]), np.array([[1, 3]]))
    array([[0., 3., 0., 5.]])
    """
    _dims = 1


class MaxUnpool2d(_MaxUnpoolNd):
    r"""Partial inverse of :class:`MaxPool2d`, as ``torch.nn.MaxUnpool2d``.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.MaxUnpool2d(2)
    MaxUnpool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))
    """
    _dims = 2


class MaxUnpool3d(_MaxUnpoolNd):
    r"""Partial inverse of :class:`MaxPool3d`, as ``torch.nn.MaxUnpool3d``.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.MaxUnpool3d(2)(np.ones((1, 1, 1, 1)), np.array([[[[7]]]])).shape
    (1, 2, 2, 2)
    """
    _dims = 3

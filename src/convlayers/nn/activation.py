"""The activation modules beyond ReLU: thin classes over ``convlayers.functional``, with PyTorch's
names, arguments, reprs and (for PReLU) parameter and init.

Every module takes any shape and returns the input's shape (GLU halves ``dim``).
"""

from __future__ import annotations

import numbers

import numpy as np

from .. import functional as F
from .module import Module, Parameter

__all__ = ["Sigmoid", "Tanh", "SiLU", "Hardswish", "Hardsigmoid", "GELU", "Mish", "ELU", "SELU", "CELU",
           "LeakyReLU", "PReLU", "Hardtanh", "Softplus", "LogSigmoid", "Softmin", "Softmax", "Softmax2d",
           "LogSoftmax", "Softsign", "Tanhshrink", "Threshold", "Hardshrink", "Softshrink", "GLU"]


def _inplace_repr(inplace, lead=""):
    if not inplace:
        return lead
    return f"{lead}, inplace=True" if lead else "inplace=True"


class _Plain(Module):
    """An activation without arguments."""

    _fn = None

    def forward(self, input):
        return type(self)._fn(input)


class _Inplace(Module):
    _fn = None

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = bool(inplace)

    def extra_repr(self):
        return _inplace_repr(self.inplace)

    def forward(self, input):
        return type(self)._fn(input, inplace=self.inplace)


class Sigmoid(_Plain):
    """``1 / (1 + exp(-x))`` elementwise.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.Sigmoid()(np.zeros(2))
    array([0.5, 0.5])
    """

    _fn = staticmethod(F.sigmoid)


class Tanh(_Plain):
    """Hyperbolic tangent elementwise.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.Tanh()(np.zeros(1))
    array([0.])
    """

    _fn = staticmethod(F.tanh)


class LogSigmoid(_Plain):
    """``log(sigmoid(x))`` elementwise, computed stably.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.LogSigmoid()(np.zeros(1)).round(4)
    array([-0.6931])
    """

    _fn = staticmethod(F.logsigmoid)


class Softsign(_Plain):
    """``x / (1 + |x|)`` elementwise.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.Softsign()(np.array([1.0]))
    array([0.5])
    """

    _fn = staticmethod(F.softsign)


class Tanhshrink(_Plain):
    """``x - tanh(x)`` elementwise.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.Tanhshrink()(np.zeros(1))
    array([0.])
    """

    _fn = staticmethod(F.tanhshrink)


class SiLU(_Inplace):
    """``x * sigmoid(x)`` (swish), EfficientNet's activation.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.SiLU()(np.zeros(1))
    array([0.])
    """

    _fn = staticmethod(F.silu)


class Hardswish(_Inplace):
    """``x * relu6(x + 3) / 6``, MobileNetV3's activation.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.Hardswish()(np.array([3.0]))
    array([3.])
    """

    _fn = staticmethod(F.hardswish)


class Hardsigmoid(_Inplace):
    """``relu6(x + 3) / 6``, MobileNetV3's squeeze-excitation gate.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.Hardsigmoid()(np.array([0.0]))
    array([0.5])
    """

    _fn = staticmethod(F.hardsigmoid)


class Mish(_Inplace):
    """``x * tanh(softplus(x))``.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.Mish()(np.zeros(1))
    array([0.])
    """

    _fn = staticmethod(F.mish)


class SELU(_Inplace):
    """Scaled ELU with the self-normalising constants.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.SELU()(np.ones(1)).round(4)
    array([1.0507])
    """

    _fn = staticmethod(F.selu)


class GELU(Module):
    """Gaussian error linear unit; ``approximate='tanh'`` for the tanh approximation.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.GELU(approximate="tanh")
    GELU(approximate='tanh')
    """

    def __init__(self, approximate="none"):
        super().__init__()
        F.pointwise._check_approximate(approximate)
        self.approximate = approximate

    def extra_repr(self):
        return f"approximate={self.approximate!r}"

    def forward(self, input):
        return F.gelu(input, approximate=self.approximate)


class ELU(Module):
    """``x`` for ``x > 0``, else ``alpha (exp(x) - 1)``.

    Examples
    --------
    >>> from convlayers import nn
    >>> nn.ELU(alpha=0.5)
    ELU(alpha=0.5)
    """

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha = alpha
        self.inplace = bool(inplace)

    def extra_repr(self):
        return _inplace_repr(self.inplace, f"alpha={self.alpha}")

    def forward(self, input):
        return F.elu(input, self.alpha, self.inplace)


class CELU(ELU):
    """``max(0, x) + min(0, alpha (exp(x / alpha) - 1))``.

    Examples
    --------
    >>> from convlayers import nn
    >>> nn.CELU()
    CELU(alpha=1.0)
    """

    def forward(self, input):
        return F.celu(input, self.alpha, self.inplace)


class LeakyReLU(Module):
    """``x`` for ``x > 0``, else ``negative_slope * x``.

    Examples
    --------
    >>> from convlayers import nn
    >>> nn.LeakyReLU(0.2, inplace=True)
    LeakyReLU(negative_slope=0.2, inplace=True)
    """

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope = negative_slope
        self.inplace = bool(inplace)

    def extra_repr(self):
        return _inplace_repr(self.inplace, f"negative_slope={self.negative_slope}")

    def forward(self, input):
        return F.leaky_relu(input, self.negative_slope, self.inplace)


class PReLU(Module):
    """LeakyReLU with a learned slope: one for all channels, or one per channel (dim 1).

    Parameters
    ----------
    num_parameters : int, default 1
        1, or the number of channels.
    init : float, default 0.25
        The initial slope.
    dtype : float32 or float64, default float32

    Attributes
    ----------
    weight : Parameter of shape (num_parameters,)

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> m = nn.PReLU(3)
    >>> m, list(m.state_dict())
    (PReLU(num_parameters=3), ['weight'])
    >>> m(np.full((1, 3), -4.0, np.float32))
    array([[-1., -1., -1.]], dtype=float32)
    """

    def __init__(self, num_parameters=1, init=0.25, device=None, dtype=None):
        super().__init__()
        if isinstance(num_parameters, bool) or not isinstance(num_parameters, numbers.Integral) \
                or num_parameters < 1:
            raise ValueError(f"num_parameters must be a positive int, got {num_parameters!r}")
        self.num_parameters = int(num_parameters)
        self.init = init
        dtype = np.dtype(np.float32 if dtype is None else dtype)
        self.weight = Parameter(np.full(self.num_parameters, init, dtype=dtype))

    def reset_parameters(self):
        """Refill the slopes with ``init``."""
        self.weight.data[...] = self.init

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"

    def forward(self, input):
        return F.prelu(input, self.weight)


class Hardtanh(Module):
    """Clip to ``[min_val, max_val]``.

    Examples
    --------
    >>> from convlayers import nn
    >>> nn.Hardtanh(-2.0, 2.0)
    Hardtanh(min_val=-2.0, max_val=2.0)
    """

    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False, min_value=None, max_value=None):
        super().__init__()
        if min_value is not None:
            min_val = min_value
        if max_value is not None:
            max_val = max_value
        if max_val <= min_val:
            raise ValueError(f"Hardtanh: max_val ({max_val}) must be greater than min_val ({min_val})")
        self.min_val, self.max_val, self.inplace = min_val, max_val, bool(inplace)

    def extra_repr(self):
        return _inplace_repr(self.inplace, f"min_val={self.min_val}, max_val={self.max_val}")

    def forward(self, input):
        return F.hardtanh(input, self.min_val, self.max_val, self.inplace)


class Softplus(Module):
    """``log(1 + exp(beta x)) / beta``, linear above ``threshold``.

    Examples
    --------
    >>> from convlayers import nn
    >>> nn.Softplus()
    Softplus(beta=1.0, threshold=20.0)
    """

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"

    def forward(self, input):
        return F.softplus(input, self.beta, self.threshold)


class _SoftmaxBase(Module):
    _fn = None

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def extra_repr(self):
        return f"dim={self.dim}"

    def forward(self, input):
        return type(self)._fn(input, self.dim, _stacklevel=5)


class Softmax(_SoftmaxBase):
    """Softmax along ``dim``.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.Softmax(dim=0)(np.zeros(2))
    array([0.5, 0.5])
    """

    _fn = staticmethod(F.softmax)


class Softmin(_SoftmaxBase):
    """``softmax(-x)`` along ``dim``.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.Softmin(dim=0)(np.zeros(2))
    array([0.5, 0.5])
    """

    _fn = staticmethod(F.softmin)


class LogSoftmax(_SoftmaxBase):
    """``log(softmax(x))`` along ``dim``, computed stably.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.LogSoftmax(dim=0)(np.zeros(2)).round(4)
    array([-0.6931, -0.6931])
    """

    _fn = staticmethod(F.log_softmax)


class Softmax2d(Module):
    """Softmax over the channels at every location of a (N, C, H, W) or (C, H, W) input.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.Softmax2d()(np.zeros((1, 2, 1, 1))).ravel()
    array([0.5, 0.5])
    """

    def forward(self, input):
        if input.ndim not in (3, 4):
            raise ValueError(f"Softmax2d: expected input of 3 or 4 dimensions (C, H, W) or (N, C, H, W), "
                             f"got {input.ndim}-D with shape {tuple(input.shape)}")
        return F.softmax(input, -3, _stacklevel=5)


class Threshold(Module):
    """``x`` where ``x > threshold``, else ``value``.

    Examples
    --------
    >>> from convlayers import nn
    >>> nn.Threshold(0.1, 20.0)
    Threshold(threshold=0.1, value=20.0)
    """

    def __init__(self, threshold, value, inplace=False):
        super().__init__()
        self.threshold, self.value, self.inplace = threshold, value, bool(inplace)

    def extra_repr(self):
        return _inplace_repr(self.inplace, f"threshold={self.threshold}, value={self.value}")

    def forward(self, input):
        return F.threshold(input, self.threshold, self.value, self.inplace)


class Hardshrink(Module):
    """0 where ``|x| <= lambd``, else ``x``.

    Examples
    --------
    >>> from convlayers import nn
    >>> nn.Hardshrink()
    Hardshrink(0.5)
    """

    _fn = staticmethod(F.hardshrink)

    def __init__(self, lambd=0.5):
        super().__init__()
        self.lambd = lambd

    def extra_repr(self):
        return str(self.lambd)

    def forward(self, input):
        return type(self)._fn(input, self.lambd)


class Softshrink(Hardshrink):
    """Shrink towards 0 by ``lambd``.

    Examples
    --------
    >>> from convlayers import nn
    >>> nn.Softshrink(1.0)
    Softshrink(1.0)
    """

    _fn = staticmethod(F.softshrink)


class GLU(Module):
    """Gated linear unit along ``dim``: ``a * sigmoid(b)`` for the halves ``a, b``.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.GLU()(np.zeros((2, 4))).shape
    (2, 2)
    """

    def __init__(self, dim=-1):
        super().__init__()
        self.dim = dim

    def extra_repr(self):
        return f"dim={self.dim}"

    def forward(self, input):
        return F.glu(input, self.dim)

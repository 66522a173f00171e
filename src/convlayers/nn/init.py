"""Weight initialisation, in place, with PyTorch's formulas.

Every function fills a :class:`~convlayers.nn.Parameter` (or an ndarray) in
place and returns it.  Random draws come from one module-level NumPy
``Generator``; :func:`manual_seed` resets it so that models are reproducible.
The *distributions* are PyTorch's; the random streams are not (PyTorch's
generator is not reimplemented), so a fresh model matches torch statistically,
and exactly only after ``load_state_dict``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = [
    "manual_seed", "calculate_gain", "calculate_fan_in_and_fan_out", "uniform_", "normal_",
    "constant_", "zeros_", "ones_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_",
    "xavier_normal_",
]

_generator = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Reseed the generator used by every initialiser.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers.nn import init
    >>> init.manual_seed(0); a = init.normal_(np.empty(3))
    >>> init.manual_seed(0); b = init.normal_(np.empty(3))
    >>> bool((a == b).all())
    True
    """
    global _generator
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int, got {seed!r}")
    _generator = np.random.default_rng(int(seed))


def _array(tensor):
    # An ndarray's own ``.data`` is its raw buffer, so only unwrap non-arrays.
    array = tensor if isinstance(tensor, np.ndarray) else getattr(tensor, "data", None)
    if not isinstance(array, np.ndarray):
        raise TypeError(f"tensor must be a Parameter, Tensor or ndarray, got {type(tensor).__name__}")
    return array


def _fill(tensor, values):
    array = _array(tensor)
    array[...] = values.astype(array.dtype, copy=False)
    return tensor


def calculate_gain(nonlinearity: str, param=None) -> float:
    """Recommended gain for ``nonlinearity`` (PyTorch's table).

    ``'relu'`` → √2, ``'leaky_relu'`` → √(2 / (1 + a²)) with ``a = param`` (default 0.01),
    ``'tanh'`` → 5/3, ``'selu'`` → 3/4, linear and conv → 1, ``'sigmoid'`` → 1.
    """
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                        "conv_transpose2d", "conv_transpose3d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, numbers.Real):
            raise TypeError(f"param must be a number, got {param!r}")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"nonlinearity: unsupported value {nonlinearity!r}")


def calculate_fan_in_and_fan_out(tensor):
    """``(fan_in, fan_out)`` of a weight: ``shape[1]·receptive`` and ``shape[0]·receptive``.

    ``receptive`` is the product of the trailing (kernel) dimensions, so a
    conv weight ``(C_out, C_in/groups, kH, kW)`` has ``fan_in = C_in/groups·kH·kW``.
    """
    shape = _array(tensor).shape
    if len(shape) < 2:
        raise ValueError(f"tensor: fan in and fan out need at least 2 dimensions, got shape {shape}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _fan(tensor, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor, a: float = 0.0, b: float = 1.0):
    """Fill with draws from U(a, b)."""
    array = _array(tensor)
    return _fill(tensor, _generator.uniform(a, b, size=array.shape))


def normal_(tensor, mean: float = 0.0, std: float = 1.0):
    """Fill with draws from N(mean, std²)."""
    array = _array(tensor)
    return _fill(tensor, _generator.normal(mean, std, size=array.shape))


def constant_(tensor, value: float):
    """Fill with ``value``."""
    _array(tensor)[...] = value
    return tensor


def zeros_(tensor):
    """Fill with zeros."""
    return constant_(tensor, 0.0)


def ones_(tensor):
    """Fill with ones."""
    return constant_(tensor, 1.0)


def kaiming_uniform_(tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
    """He initialisation, uniform: U(−b, b) with ``b = gain·√(3 / fan)``.

    ``Conv2d`` and ``Linear`` use ``a=√5``, which gives ``b = 1/√fan_in``.
    """
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / _fan(tensor, mode))
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
    """He initialisation, normal: N(0, std²) with ``std = gain / √fan``.

    torchvision's ResNet and MobileNetV2 use ``mode='fan_out'`` for convolutions.
    """
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return normal_(tensor, 0.0, std)


def xavier_uniform_(tensor, gain: float = 1.0):
    """Glorot initialisation, uniform: ``b = gain·√(6 / (fan_in + fan_out))``."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor, gain: float = 1.0):
    """Glorot initialisation, normal: ``std = gain·√(2 / (fan_in + fan_out))``."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))

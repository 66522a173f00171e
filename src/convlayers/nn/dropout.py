"""Dropout1d/2d/3d, AlphaDropout and FeatureAlphaDropout: identity in eval mode, the functional op in
training (``convlayers.functional.dropout`` for the generator and seeding rules)."""

from __future__ import annotations

import numbers

from .. import functional as F
from .module import Module

__all__ = ["Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout"]


class _DropoutNd(Module):
    _fn = None

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = bool(inplace)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"

    def forward(self, input):
        return type(self)._fn(input, self.p, self.training, self.inplace)


class Dropout1d(_DropoutNd):
    """Zero whole channels of (N, C, L) / (C, L) inputs with probability ``p`` in training.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> nn.Dropout1d(0.3).eval()(np.ones((1, 2, 3))).sum()
    np.float64(6.0)
    """

    _fn = staticmethod(F.dropout1d)


class Dropout2d(_DropoutNd):
    """Zero whole channels of (N, C, H, W) / (C, H, W) inputs with probability ``p`` in training.

    Examples
    --------
    >>> from convlayers import nn
    >>> nn.Dropout2d(0.2)
    Dropout2d(p=0.2, inplace=False)
    """

    _fn = staticmethod(F.dropout2d)


class Dropout3d(_DropoutNd):
    """Zero whole channels of (N, C, D, H, W) / (C, D, H, W) inputs with probability ``p`` in training.

    Examples
    --------
    >>> from convlayers import nn
    >>> nn.Dropout3d()
    Dropout3d(p=0.5, inplace=False)
    """

    _fn = staticmethod(F.dropout3d)


class AlphaDropout(_DropoutNd):
    """Alpha dropout (keeps SELU's zero mean and unit variance) in training.

    Examples
    --------
    >>> from convlayers import nn
    >>> nn.AlphaDropout(0.1)
    AlphaDropout(p=0.1, inplace=False)
    """

    _fn = staticmethod(F.alpha_dropout)


class FeatureAlphaDropout(_DropoutNd):
    """Alpha dropout of whole channels in training.

    Examples
    --------
    >>> from convlayers import nn
    >>> nn.FeatureAlphaDropout(0.1)
    FeatureAlphaDropout(p=0.1, inplace=False)
    """

    _fn = staticmethod(F.feature_alpha_dropout)

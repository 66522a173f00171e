"""The loss modules: PyTorch's names, constructor arguments (legacy ``size_average``/``reduce`` too) and
``weight``/``pos_weight`` buffers, each a thin class over its ``convlayers.functional`` op.

``forward(input, target)`` returns the loss (a 0-d array, or per-element with ``reduction='none'``).
"""

from __future__ import annotations

import numpy as np

from .. import functional as F
from ..autograd import Tensor
from ..functional.loss_pointwise import legacy_reduction
from .module import Module

__all__ = ["CrossEntropyLoss", "NLLLoss", "MSELoss", "BCELoss", "BCEWithLogitsLoss", "L1Loss", "SmoothL1Loss",
           "HuberLoss", "KLDivLoss"]


def _buffer(value):
    if value is None:
        return None
    if isinstance(value, Tensor):
        value = value.data
    return np.asarray(value)


class _Loss(Module):
    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        super().__init__()
        self.reduction = legacy_reduction(size_average, reduce, reduction, type(self).__name__)


class _WeightedLoss(_Loss):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _buffer(weight))


class CrossEntropyLoss(_WeightedLoss):
    """Cross entropy of logits against class indices or probabilities.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> loss = nn.CrossEntropyLoss()
    >>> round(float(loss(np.zeros((2, 4)), np.array([0, 3]))), 4)
    1.3863
    """

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                 label_smoothing=0.0):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of class indices, given log-probabilities.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> float(nn.NLLLoss()(np.log(np.full((1, 2), 0.5)), np.array([1])).round(4))
    0.6931
    """

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class MSELoss(_Loss):
    """Mean squared error.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> float(nn.MSELoss()(np.array([1.0, 3.0]), np.zeros(2)))
    5.0
    """

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class BCELoss(_WeightedLoss):
    """Binary cross entropy on probabilities.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> round(float(nn.BCELoss()(np.array([0.5]), np.array([1.0]))), 4)
    0.6931
    """

    def forward(self, input, target):
        return F.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross entropy on logits, with optional per-class ``pos_weight``.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> m = nn.BCEWithLogitsLoss(pos_weight=np.array([2.0]))
    >>> list(m.state_dict()), round(float(m(np.zeros(1), np.ones(1))), 4)
    (['pos_weight'], 1.3863)
    """

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean", pos_weight=None):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _buffer(weight))
        self.register_buffer("pos_weight", _buffer(pos_weight))

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, self.weight, pos_weight=self.pos_weight,
                                                  reduction=self.reduction)


class L1Loss(_Loss):
    """Mean absolute error.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> float(nn.L1Loss(reduction="sum")(np.array([1.0, -3.0]), np.zeros(2)))
    4.0
    """

    def forward(self, input, target):
        return F.l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """Quadratic below ``beta``, linear above.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> float(nn.SmoothL1Loss(beta=1.0)(np.array([0.5]), np.zeros(1)))
    0.125
    """

    def __init__(self, size_average=None, reduce=None, reduction="mean", beta=1.0):
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def forward(self, input, target):
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    """Quadratic below ``delta``, ``delta``-scaled linear above.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> float(nn.HuberLoss(delta=2.0)(np.array([3.0]), np.zeros(1)))
    4.0
    """

    def __init__(self, reduction="mean", delta=1.0):
        super().__init__(reduction=reduction)
        self.delta = delta

    def forward(self, input, target):
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class KLDivLoss(_Loss):
    """Kullback-Leibler divergence; ``input`` holds log-probabilities.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> float(nn.KLDivLoss(reduction="batchmean")(np.log(np.full((1, 2), 0.5)), np.full((1, 2), 0.5)))
    0.0
    """

    def __init__(self, size_average=None, reduce=None, reduction="mean", log_target=False):
        super().__init__(size_average, reduce, reduction)
        self.log_target = log_target

    def forward(self, input, target):
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)

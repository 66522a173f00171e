"""Dropout: zero each element with probability ``p``, scale the rest by 1/(1-p).

Random numbers come from a NumPy ``Generator``: the one passed as
``generator=``, else a module-level default that :func:`manual_seed` reseeds.
The values differ from PyTorch's (a different random stream); the
distribution and the scaling are the same.
"""

from __future__ import annotations

import numbers

import numpy as np

from .._dispatch import tensor_aware

__all__ = ["dropout", "manual_seed", "dropout_mask"]

_default_generator = np.random.default_rng()


def manual_seed(seed):
    """Reseed the default generator used by :func:`dropout`.

    Parameters
    ----------
    seed : int
        Any seed ``numpy.random.default_rng`` accepts.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers.functional import dropout, manual_seed
    >>> manual_seed(0); a = dropout(np.ones(8))
    >>> manual_seed(0); b = dropout(np.ones(8))
    >>> bool((a == b).all())
    True
    """
    global _default_generator
    _default_generator = np.random.default_rng(seed)


def _check(input, p, training, generator):
    if not isinstance(input, np.ndarray):
        raise TypeError(f"dropout: input must be an ndarray, got {type(input).__name__}")
    if input.dtype.kind != "f":
        raise TypeError(f"dropout: input must have a floating dtype, got dtype {input.dtype}")
    if not isinstance(p, numbers.Real) or isinstance(p, bool) or not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be a probability in [0, 1], got {p!r}")
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"dropout: training must be a bool, got {type(training).__name__}")
    if generator is not None and not isinstance(generator, np.random.Generator):
        raise TypeError(
            f"dropout: generator must be a numpy.random.Generator, got {type(generator).__name__}"
        )


def dropout_mask(shape, p, dtype, generator=None):
    """The multiplier dropout applies: 0 with probability ``p``, else ``1/(1-p)``.

    Shared by :func:`dropout` and its autograd version, whose gradient is the
    same mask times the incoming gradient.

    Examples
    --------
    >>> import numpy as np
    >>> sorted(set(dropout_mask((1000,), 0.5, np.float32, np.random.default_rng(0)).tolist()))
    [0.0, 2.0]
    """
    if p == 1.0:
        return np.zeros(shape, dtype=dtype)
    rng = _default_generator if generator is None else generator
    keep = rng.random(shape) >= p
    return keep.astype(dtype) * np.asarray(1.0 / (1.0 - p), dtype=dtype)


@tensor_aware
def dropout(input, p=0.5, training=True, inplace=False, *, generator=None):
    """Randomly zero elements of ``input`` during training.

    Parameters
    ----------
    input : ndarray
        Floating-point array of any shape.
    p : float, default 0.5
        Probability that an element is zeroed.
    training : bool, default True
        When False, return ``input`` unchanged (no randomness used).
    inplace : bool, default False
        Write the result into ``input`` (ndarray inputs only).
    generator : numpy.random.Generator, optional
        Source of randomness; the module default otherwise.

    Returns
    -------
    ndarray
        Same shape and dtype as ``input``.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers.functional import dropout
    >>> out = dropout(np.ones(6), p=0.5, generator=np.random.default_rng(1))
    >>> sorted(set(out.tolist())) in ([0.0, 2.0], [0.0], [2.0])
    True
    """
    _check(input, p, training, generator)
    if not training or p == 0.0:
        return input
    mask = dropout_mask(input.shape, p, input.dtype, generator)
    if inplace:
        np.multiply(input, mask, out=input)
        return input
    return input * mask

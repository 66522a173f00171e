"""Dropout: zero each element with probability ``p``, scale the rest by 1/(1-p).

Random numbers come from a NumPy ``Generator``: the one passed as
``generator=``, else a module-level default that :func:`manual_seed` reseeds.
The values differ from PyTorch's (a different random stream); the
distribution and the scaling are the same.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np

from .._dispatch import tensor_aware

__all__ = ["dropout", "manual_seed", "dropout_mask", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
           "feature_alpha_dropout", "feature_dropout_mask", "dropout_plan"]

# SELU's negative saturation value -scale * alpha: alpha dropout sets dropped units to it.
_ALPHA_PRIME = 1.7580993408473766

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


def feature_dropout_mask(shape, p, dtype, generator=None, feature=True, alpha=False):
    """The multiplier and offset of a dropout variant: ``out = input * scale + shift``.

    ``feature`` draws one decision per (sample, channel) (shape ``(N, C, 1, ...)``),
    else one per element.  ``alpha`` gives alpha dropout's affine map, which
    keeps zero mean and unit variance for SELU networks:
    ``a = ((1 - p)(1 + p alpha'^2))^-1/2``, dropped units at ``-alpha' a ... + b``.
    Returns ``(scale, shift)``; shift is None for plain dropout.

    Examples
    --------
    >>> import numpy as np
    >>> scale, shift = feature_dropout_mask((2, 3, 4), 0.5, np.float64, np.random.default_rng(0))
    >>> scale.shape, shift
    ((2, 3, 1), None)
    """
    noise_shape = tuple(shape[:2]) + (1,) * (len(shape) - 2) if feature else tuple(shape)
    if p == 1.0:
        return np.zeros(noise_shape, dtype=dtype), None
    rng = _default_generator if generator is None else generator
    keep = (rng.random(noise_shape) >= p).astype(dtype)
    if not alpha:
        return keep * np.asarray(1.0 / (1.0 - p), dtype=dtype), None
    a = 1.0 / np.sqrt((_ALPHA_PRIME ** 2 * p + 1) * (1 - p))
    shift = (keep - 1) * np.asarray(_ALPHA_PRIME * a, dtype=dtype) + np.asarray(_ALPHA_PRIME * a * p, dtype=dtype)
    return keep * np.asarray(a, dtype=dtype), shift.astype(dtype, copy=False)


def _check_variant(op, input, p, training):
    if not isinstance(input, np.ndarray):
        raise TypeError(f"{op}: input must be an ndarray, got {type(input).__name__}")
    if input.dtype.kind != "f":
        raise TypeError(f"{op}: input must have a floating dtype, got dtype {input.dtype}")
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"{op}: training must be a bool, got {type(training).__name__}")


def _apply(input, plan, inplace):
    if plan is None:
        return input
    scale, shift = plan
    out = input * scale if shift is None else input * scale + shift
    if inplace:
        input[...] = out
        return input
    return out.astype(input.dtype, copy=False)


def _plan(input, p, training, generator, feature, alpha):
    if not training or p == 0.0 or input.size == 0:
        return None
    if generator is not None and not isinstance(generator, np.random.Generator):
        raise TypeError(f"generator must be a numpy.random.Generator, got {type(generator).__name__}")
    return feature_dropout_mask(input.shape, p, input.dtype, generator, feature, alpha)


def dropout_plan(op, input, p=0.5, training=True, generator=None):
    """Validate a dropout variant's call and draw its ``(scale, shift)`` (None: the identity).

    ``op`` is one of ``"dropout1d"``, ``"dropout2d"``, ``"dropout3d"``, ``"alpha_dropout"``,
    ``"feature_alpha_dropout"``; the result broadcasts against ``input``:
    ``out = input * scale (+ shift)`` and the gradient is ``grad * scale``.
    The autograd layer uses it so that the forward and the backward share one draw.

    Examples
    --------
    >>> import numpy as np
    >>> dropout_plan("dropout2d", np.ones((2, 3, 4, 4)), 0.5, training=False) is None
    True
    """
    _check_variant(op, input, p, training)
    if op == "alpha_dropout":
        return _plan(input, p, training, generator, False, True)
    if op == "feature_alpha_dropout":
        return _plan(input, p, training, generator, True, True)
    spatial = {"dropout1d": 1, "dropout2d": 2, "dropout3d": 3}[op]
    batched, unbatched = spatial + 2, spatial + 1
    if spatial == 1 and input.ndim not in (2, 3):
        raise ValueError(f"dropout1d: Expected 2D or 3D input, but received a {input.ndim}D input. Note that "
                         "dropout1d exists to provide channel-wise dropout on inputs with 1 spatial dimension, "
                         "a channel dimension, and an optional batch dimension (i.e. 2D or 3D inputs).")
    if spatial > 1 and input.ndim not in (batched, unbatched):
        warnings.warn(f"{op}: Received a {input.ndim}-D input to {op}, which is deprecated and will result in "
                      f"an error in a future release. To retain the behavior and silence this warning, please "
                      f"use dropout instead. Note that {op} exists to provide channel-wise dropout on inputs "
                      f"with {spatial} spatial dimensions, a channel dimension, and an optional batch dimension "
                      f"(i.e. {unbatched}D or {batched}D inputs).", UserWarning, stacklevel=4)
    if spatial == 2 and input.ndim == 3:
        # PyTorch's legacy reading of a 3-D input to dropout2d: (N, C, L), one decision per (N, C).
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout "
                      "behavior is desired - input is interpreted as shape (N, C, L), where C is the channel "
                      "dim. This behavior will change in a future release to interpret the input as one "
                      "without a batch dimension, i.e. shape (C, H, W). To maintain the 1D channel-wise "
                      "dropout behavior, please switch to using dropout1d instead.", UserWarning, stacklevel=4)
        return _plan(input, p, training, generator, True, False)
    if input.ndim == unbatched:
        plan = _plan(input[None], p, training, generator, True, False)
        return None if plan is None else (plan[0][0], None)
    return _plan(input, p, training, generator, True, False)


@tensor_aware
def dropout1d(input, p=0.5, training=True, inplace=False, *, generator=None):
    """Zero whole channels of an (N, C, L) or (C, L) input with probability ``p``, scale the rest by 1/(1-p).

    Examples
    --------
    >>> import numpy as np
    >>> out = dropout1d(np.ones((2, 3, 4)), 0.5, generator=np.random.default_rng(0))
    >>> bool(((out == 0).all(axis=2) | (out == 2).all(axis=2)).all())
    True
    """
    return _apply(input, dropout_plan("dropout1d", input, p, training, generator), inplace)


@tensor_aware
def dropout2d(input, p=0.5, training=True, inplace=False, *, generator=None):
    """Zero whole channels of an (N, C, H, W) or (C, H, W) input, as ``torch.nn.functional.dropout2d``.

    A 3-D input is read as (N, C, L) with PyTorch's warning (its legacy rule).

    Examples
    --------
    >>> import numpy as np
    >>> dropout2d(np.ones((1, 2, 2, 2)), 0.5, training=False).shape
    (1, 2, 2, 2)
    """
    return _apply(input, dropout_plan("dropout2d", input, p, training, generator), inplace)


@tensor_aware
def dropout3d(input, p=0.5, training=True, inplace=False, *, generator=None):
    """Zero whole channels of an (N, C, D, H, W) or (C, D, H, W) input, as ``torch.nn.functional.dropout3d``.

    Examples
    --------
    >>> import numpy as np
    >>> dropout3d(np.ones((2, 1, 1, 1)), 1.0).ravel()
    array([0., 0.])
    """
    return _apply(input, dropout_plan("dropout3d", input, p, training, generator), inplace)


@tensor_aware
def alpha_dropout(input, p=0.5, training=False, inplace=False, *, generator=None):
    """Alpha dropout for SELU networks: dropped units take SELU's saturation value, then an affine map
    restores zero mean and unit variance, as ``torch.nn.functional.alpha_dropout``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).standard_normal(200_000)
    >>> y = alpha_dropout(x, 0.2, training=True, generator=np.random.default_rng(1))
    >>> round(float(y.mean()), 1), round(float(y.std()), 1)
    (0.0, 1.0)
    """
    return _apply(input, dropout_plan("alpha_dropout", input, p, training, generator), inplace)


@tensor_aware
def feature_alpha_dropout(input, p=0.5, training=False, inplace=False, *, generator=None):
    """Alpha dropout of whole channels (one decision per sample and channel), as PyTorch.

    Examples
    --------
    >>> import numpy as np
    >>> feature_alpha_dropout(np.ones((2, 3)), 0.5).tolist()
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """
    return _apply(input, dropout_plan("feature_alpha_dropout", input, p, training, generator), inplace)

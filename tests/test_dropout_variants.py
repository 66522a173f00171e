"""Dropout1d/2d/3d, alpha and feature-alpha dropout: PyTorch's OpInfo samples (values where they are
deterministic, the structure where they are random), seeded statistics, gradients and errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from _peer import op_samples

import convlayers as cl
import convlayers.functional as F

OPS = {
    ("nn.functional.dropout2d", ""): (F.dropout2d, True, False),
    ("nn.functional.dropout3d", ""): (F.dropout3d, True, False),
    ("nn.functional.alpha_dropout", ""): (F.alpha_dropout, False, True),
    ("nn.functional.feature_alpha_dropout", "with_train"): (F.feature_alpha_dropout, True, True),
    ("nn.functional.feature_alpha_dropout", "without_train"): (F.feature_alpha_dropout, True, True),
}


def _cases():
    for (name, variant), spec in OPS.items():
        for case in op_samples(name, variant):
            yield pytest.param(case, spec, id=f"{name}-{variant}-{case}")


def _unit_map(x, y, feature):
    """Every output unit (element, or channel when ``feature``) is ``x * a + b`` for a single (a, b)."""
    units = x.shape[0] * x.shape[1] if feature and x.ndim >= 2 else x.size
    return x.reshape(units, -1), y.reshape(units, -1)


@pytest.mark.parametrize("case, spec", list(_cases()))
def test_opinfo_sample(case, spec):
    fn, feature, alpha = spec
    import inspect
    defaults = {k: v.default for k, v in inspect.signature(fn.ndarray_impl).parameters.items()}
    p, training = case.kwargs.get("p", defaults["p"]), case.kwargs.get("training", defaults["training"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = fn(case.input, *case.args, **case.kwargs, generator=np.random.default_rng(case.index))
        assert got.dtype == case.input.dtype and got.shape == case.input.shape
        if not training or p in (0.0, 1.0):
            case.check(fn)                   # deterministic: PyTorch's exact values
            return
    # random: each unit either kept (x * a + b, the same a and b everywhere) or dropped (a constant)
    a = 1 / np.sqrt((1.7580993408473766 ** 2 * p + 1) * (1 - p)) if alpha else 1 / (1 - p)
    b = 1.7580993408473766 * a * p if alpha else 0.0
    dropped = -1.7580993408473766 * a + b if alpha else 0.0
    xs, ys = _unit_map(case.input, got, feature and case.input.ndim > 1)
    kept = np.isclose(ys, xs * a + b, rtol=1e-5, atol=1e-5).all(axis=-1)
    gone = np.isclose(ys, dropped, atol=1e-5).all(axis=-1)
    assert (kept | gone).all()


@pytest.mark.parametrize("fn, alpha", [(F.dropout1d, False), (F.dropout2d, False), (F.dropout3d, False),
                                       (F.alpha_dropout, True), (F.feature_alpha_dropout, True)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_statistics_and_gradient(fn, alpha, dtype):
    spatial = {F.dropout1d: 1, F.dropout2d: 2, F.dropout3d: 3}.get(fn, 2)
    shape = (64, 32) + (4,) * spatial
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    y = fn(x, 0.3, training=True, generator=np.random.default_rng(1))
    assert y.dtype == dtype
    if alpha:
        assert abs(y.mean()) < 0.05 and abs(y.std() - 1) < 0.05      # SELU's fixed point kept
    else:
        channel = (y.reshape(64, 32, -1) == 0).all(axis=-1)
        assert abs(channel.mean() - 0.3) < 0.05                        # whole channels, rate p
    t = cl.Tensor(x, requires_grad=True)
    out = fn(t, 0.3, training=True, generator=np.random.default_rng(1))
    np.testing.assert_array_equal(out.data, y)                         # same draw, same values
    out.sum().backward()
    scale = (y - (y - x * (y != 0)) if not alpha else None)
    if not alpha:
        np.testing.assert_allclose(t.grad, np.where(y == 0, 0, 1 / 0.7), rtol=1e-6)
    else:
        assert len(np.unique(np.round(t.grad, 5))) == 2                 # kept units a, dropped 0
    del scale


def test_errors_and_unbatched():
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.dropout2d(np.ones((1, 2, 3, 3)), p=1.5)
    with pytest.raises(ValueError, match="Expected 2D or 3D input"):
        F.dropout1d(np.ones((1, 2, 3, 3)))
    with pytest.raises(TypeError, match="floating"):
        F.alpha_dropout(np.ones(3, dtype=np.int64), training=True)
    with pytest.warns(UserWarning, match="Received a 2-D input"):
        F.dropout2d(np.ones((2, 3)), training=False)
    y = F.dropout1d(np.ones((6, 5)), 0.5, generator=np.random.default_rng(0))   # (C, L): per channel
    assert ((y == 0).all(axis=1) | (y == 2).all(axis=1)).all()
    y = F.dropout3d(np.ones((6, 2, 2, 2)), 0.5, generator=np.random.default_rng(0))
    assert ((y.reshape(6, -1) == 0).all(axis=1) | (y.reshape(6, -1) == 2).all(axis=1)).all()

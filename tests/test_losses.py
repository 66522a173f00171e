"""Softmax, losses and dropout on ndarrays: forward values against PyTorch, and bad inputs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import convlayers.functional as F  # noqa: E402

TF = torch.nn.functional
TOL = {np.float32: dict(rtol=2e-6, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}
DTYPES = [np.float32, np.float64]


def close(ours, theirs, dtype):
    assert isinstance(ours, np.ndarray) or np.isscalar(ours)
    ours = np.asarray(ours)
    assert ours.dtype == dtype
    np.testing.assert_allclose(ours, theirs.numpy(), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,dim", [((4, 7), 1), ((4, 7), 0), ((2, 3, 4, 5), 1), ((6,), -1)])
def test_softmax_log_softmax(dtype, shape, dim):
    x = (np.random.default_rng(0).standard_normal(shape) * 10).astype(dtype)
    close(F.log_softmax(x, dim), TF.log_softmax(torch.tensor(x), dim), dtype)
    close(F.softmax(x, dim), TF.softmax(torch.tensor(x), dim), dtype)


def test_log_softmax_is_stable_for_huge_scores():
    x = np.array([[1000.0, 0.0, -1000.0]])
    out = F.log_softmax(x, 1)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, TF.log_softmax(torch.tensor(x), 1).numpy())


CASES = list(itertools.product(DTYPES, ["mean", "sum", "none"], [0.0, 0.15], [False, True], [False, True]))


@pytest.mark.parametrize("dtype,reduction,smoothing,weighted,ignore", CASES)
def test_cross_entropy_and_nll_class_indices(dtype, reduction, smoothing, weighted, ignore):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 5)).astype(dtype)
    t = rng.integers(0, 5, 8)
    if ignore:
        t[[0, 3]] = -100
    w = (rng.random(5) + 0.1).astype(dtype) if weighted else None
    tw = None if w is None else torch.tensor(w)
    close(F.cross_entropy(x, t, weight=w, reduction=reduction, label_smoothing=smoothing),
          TF.cross_entropy(torch.tensor(x), torch.tensor(t), weight=tw, reduction=reduction,
                           label_smoothing=smoothing), dtype)
    logp = F.log_softmax(x, 1)
    close(F.nll_loss(logp, t, weight=w, reduction=reduction),
          TF.nll_loss(torch.tensor(logp), torch.tensor(t), weight=tw, reduction=reduction), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_spatial_unbatched_custom_ignore(dtype, reduction):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 3, 5)).astype(dtype)
    t = rng.integers(0, 4, (2, 3, 5))
    t[0, 1, :2] = 3
    kw = dict(reduction=reduction, ignore_index=3, label_smoothing=0.2)
    close(F.cross_entropy(x, t, **kw), TF.cross_entropy(torch.tensor(x), torch.tensor(t), **kw), dtype)
    v = rng.standard_normal(6).astype(dtype)
    close(F.cross_entropy(v, np.array(4), reduction=reduction),
          TF.cross_entropy(torch.tensor(v), torch.tensor(4), reduction=reduction), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction,smoothing,weighted",
                         list(itertools.product(["mean", "sum", "none"], [0.0, 0.3], [False, True])))
def test_cross_entropy_probability_targets(dtype, reduction, smoothing, weighted):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 6, 2)).astype(dtype)
    p = rng.random((4, 6, 2)).astype(dtype)
    p /= p.sum(axis=1, keepdims=True)
    w = (rng.random(6) + 0.5).astype(dtype) if weighted else None
    close(F.cross_entropy(x, p, weight=w, reduction=reduction, label_smoothing=smoothing),
          TF.cross_entropy(torch.tensor(x), torch.tensor(p), weight=None if w is None else torch.tensor(w),
                           reduction=reduction, label_smoothing=smoothing), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss(dtype, reduction):
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((3, 4, 5)).astype(dtype), rng.standard_normal((3, 4, 5)).astype(dtype)
    close(F.mse_loss(x, y, reduction=reduction),
          TF.mse_loss(torch.tensor(x), torch.tensor(y), reduction=reduction), dtype)


def test_mse_loss_broadcast_warns_like_torch():
    x, y = np.ones((3, 4)), np.zeros(4)
    with pytest.warns(UserWarning, match="broadcast"):
        assert F.mse_loss(x, y) == 1.0
    with pytest.raises(ValueError, match=r"target shape \(5,\)"):
        F.mse_loss(x, np.zeros(5))


@pytest.mark.parametrize("call,exc,match", [
    (lambda: F.cross_entropy(np.zeros((2, 3)), np.array([0, 3])), ValueError, r"target values .* \[0, 2\]"),
    (lambda: F.cross_entropy(np.zeros((2, 3)), np.array([0, -1])), ValueError, "got -1"),
    (lambda: F.cross_entropy(np.zeros((2, 3)), np.array([0, 1, 2])), ValueError, r"shape \(2,\)"),
    (lambda: F.cross_entropy(np.zeros((2, 3)), np.array([0.5, 1.0])), ValueError, "probability target"),
    (lambda: F.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), weight=np.ones(4)), ValueError,
     r"weight must have shape \(3,\)"),
    (lambda: F.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), reduction="avg"), ValueError, "reduction"),
    (lambda: F.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), label_smoothing=1.5), ValueError,
     "label_smoothing"),
    (lambda: F.cross_entropy(np.zeros((2, 3), dtype=int), np.array([0, 1])), TypeError, "floating"),
    (lambda: F.cross_entropy(np.zeros(()), np.array(0)), ValueError, "0-D"),
    (lambda: F.nll_loss(np.zeros((2, 3)), np.array(["a", "b"])), TypeError, "integer class indices"),
    (lambda: F.nll_loss("scores", np.array([0])), TypeError, "input must be an ndarray"),
    (lambda: F.log_softmax(np.zeros((2, 3)), 2), ValueError, r"dim must be in \[-2, 1\]"),
    (lambda: F.softmax(np.zeros((2, 3)), 1.0), TypeError, "dim must be an int"),
    (lambda: F.mse_loss(np.zeros(3), np.zeros(3), reduction="mean "), ValueError, "reduction"),
    (lambda: F.dropout(np.ones(3), p=-0.1), ValueError, "p must be"),
    (lambda: F.dropout(np.ones(3, dtype=int)), TypeError, "floating"),
    (lambda: F.dropout(np.ones(3), training="yes"), TypeError, "training"),
    (lambda: F.dropout(np.ones(3), generator=0), TypeError, "generator"),
])
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_all_targets_ignored_gives_nan_like_torch():
    x, t = np.zeros((2, 3)), np.array([-100, -100])
    assert np.isnan(F.cross_entropy(x, t))
    assert torch.isnan(TF.cross_entropy(torch.tensor(x), torch.tensor(t)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_statistics(dtype, p):
    x = np.ones((200, 500), dtype=dtype)
    out = F.dropout(x, p=p, generator=np.random.default_rng(5))
    assert out.dtype == dtype and out.shape == x.shape
    kept = out != 0
    assert abs(1 - kept.mean() - p) < 0.01
    np.testing.assert_allclose(out[kept], 1 / (1 - p), rtol=1e-6)
    assert abs(out.mean() - 1) < 0.03          # unbiased in expectation, as in PyTorch


def test_dropout_modes_and_seeding():
    x = np.arange(1.0, 101.0)
    assert F.dropout(x, training=False) is x
    np.testing.assert_array_equal(F.dropout(x, p=0.0), x)
    assert not F.dropout(x, p=1.0).any()
    F.manual_seed(7)
    a = F.dropout(x)
    F.manual_seed(7)
    b = F.dropout(x)
    np.testing.assert_array_equal(a, b)
    c = F.dropout(x)
    assert not np.array_equal(b, c)
    y = x.copy()
    z = F.dropout(y, p=0.5, inplace=True, generator=np.random.default_rng(0))
    assert z is y and np.array_equal(z, F.dropout(x, generator=np.random.default_rng(0)))

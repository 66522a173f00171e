"""Seeded grids for the activations and element-wise losses against torch: corner points (the clip and
shrink boundaries, 0, large magnitudes), several argument values, float32/float64, forward and gradient."""

from __future__ import annotations

import numpy as np
import pytest

import convlayers as cl
import convlayers.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional

CORNERS = np.array([-50.0, -20.0, -3.0, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 3.0, 20.0, 50.0])

GRID = [
    ("sigmoid", {}), ("tanh", {}), ("silu", {}), ("hardswish", {}), ("hardsigmoid", {}), ("mish", {}),
    ("gelu", {"approximate": "none"}), ("gelu", {"approximate": "tanh"}), ("elu", {"alpha": 0.7}),
    ("selu", {}), ("celu", {"alpha": 2.0}), ("leaky_relu", {"negative_slope": 0.2}),
    ("hardtanh", {"min_val": -0.5, "max_val": 1.0}), ("softplus", {"beta": 2.0, "threshold": 10.0}),
    ("softplus", {}), ("logsigmoid", {}), ("softsign", {}), ("tanhshrink", {}),
    ("threshold", {"threshold": 0.25, "value": -2.0}), ("hardshrink", {"lambd": 0.25}),
    ("softshrink", {"lambd": 0.5}),
]


def _torch_fn(name):
    return getattr(torch, name) if name in ("sigmoid", "tanh") else getattr(TF, name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, kwargs", GRID, ids=lambda v: str(v))
def test_activation_grid(name, kwargs, dtype):
    rng = np.random.default_rng(7)
    x = np.concatenate([CORNERS, rng.standard_normal(51) * 4]).astype(dtype).reshape(8, 8)
    g = rng.standard_normal(x.shape).astype(dtype)
    tx = torch.tensor(x, requires_grad=True)
    ty = _torch_fn(name)(tx, **kwargs)
    ty.backward(torch.from_numpy(g))
    cx = cl.Tensor(x.copy(), requires_grad=True)
    cy = getattr(F, name)(cx, **kwargs)
    cy.backward(g)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert cy.dtype == dtype and cx.grad.dtype == dtype
    np.testing.assert_allclose(cy.data, ty.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(cx.grad, tx.grad.numpy(), rtol=tol * 10, atol=tol * 10)
    # the ndarray path gives the same values, without a graph
    np.testing.assert_array_equal(getattr(F, name)(x, **kwargs), cy.data)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("name, kwargs", [
    ("l1_loss", {}), ("smooth_l1_loss", {"beta": 0.5}), ("smooth_l1_loss", {"beta": 0.0}),
    ("huber_loss", {"delta": 0.5}), ("binary_cross_entropy_with_logits", {}),
    ("binary_cross_entropy_with_logits", {"pos_weight": "pw"}), ("binary_cross_entropy", {"weight": "w"}),
    ("kl_div", {"log_target": False}), ("kl_div", {"log_target": True}),
], ids=lambda v: str(v))
def test_loss_grid(name, kwargs, reduction, dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 5)).astype(dtype)
    t = rng.uniform(0.05, 0.95, (4, 5)).astype(dtype)
    if name == "binary_cross_entropy":
        x = rng.uniform(0.02, 0.98, (4, 5)).astype(dtype)
    if name == "kl_div" and kwargs["log_target"]:
        t = np.log(t)
    extra = {"w": rng.uniform(0.5, 2, (5,)).astype(dtype), "pw": rng.uniform(0.5, 3, (5,)).astype(dtype)}
    kw = {k: extra[v] if isinstance(v, str) else v for k, v in kwargs.items()}
    tkw = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    tx, tt = torch.tensor(x, requires_grad=True), torch.tensor(t, requires_grad=True)
    ty = getattr(TF, name)(tx, tt, reduction=reduction, **tkw)
    g = rng.standard_normal(ty.shape).astype(dtype)
    ty.backward(torch.from_numpy(g))
    cx, ct = cl.Tensor(x.copy(), requires_grad=True), cl.Tensor(t.copy(), requires_grad=True)
    cy = getattr(F, name)(cx, ct, reduction=reduction, **kw)
    cy.backward(g)
    tol = 2e-5 if dtype == np.float32 else 1e-11
    np.testing.assert_allclose(cy.data, ty.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(cx.grad, tx.grad.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(ct.grad, tt.grad.numpy(), rtol=tol, atol=tol)


def test_softmax_dtype_empty_and_int_inputs():
    x = np.arange(6).reshape(2, 3)
    with pytest.raises(TypeError, match="floating"):
        F.softmax(x, dim=1)                                   # PyTorch refuses Long too
    y = F.softmax(x, dim=1, dtype=np.float32)
    np.testing.assert_allclose(y, TF.softmax(torch.from_numpy(x), 1, dtype=torch.float32).numpy(), rtol=1e-6)
    assert y.dtype == np.float32
    assert F.log_softmax(np.ones((2, 3), np.float32), dim=1, dtype=np.float64).dtype == np.float64
    for shape, dim in (((0, 3), 1), ((3, 0), 1), ((2, 0, 4), 0)):
        e = np.zeros(shape, np.float32)
        assert F.softmax(e, dim).shape == shape and F.log_softmax(e, dim).shape == shape
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        np.testing.assert_allclose(F.softmax(np.zeros((2, 2))), np.full((2, 2), 0.5))
    t = cl.Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    out = F.log_softmax(t, 1, dtype=np.float64)
    assert out.dtype == np.float64
    out.sum().backward()
    assert t.grad.dtype == np.float32


@pytest.mark.parametrize("fn", [F.silu, F.gelu, F.elu, F.hardswish, F.softplus, F.glu, F.mish])
def test_integer_inputs_refused_like_torch(fn):
    with pytest.raises(TypeError, match="floating"):
        fn(np.arange(4))


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="min_val cannot be greater than max_val"):
        F.hardtanh(np.zeros(2), 1.0, -1.0)
    with pytest.raises(ValueError, match="approximate"):
        F.gelu(np.zeros(2), approximate="fast")
    with pytest.raises(ValueError, match="Halving dimension must be even"):
        F.glu(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="weight"):
        F.prelu(np.zeros((2, 3)), np.ones(2))
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.binary_cross_entropy(np.array([1.5]), np.array([1.0]))
    with pytest.raises(ValueError, match="same as input size"):
        F.binary_cross_entropy_with_logits(np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="negative values for beta"):
        F.smooth_l1_loss(np.zeros(2), np.zeros(2), beta=-1.0)
    with pytest.raises(ValueError, match="non-positive values for delta"):
        F.huber_loss(np.zeros(2), np.zeros(2), delta=0.0)

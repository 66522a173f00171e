"""NumPy functions on Tensors: run the differentiable op, or raise a TypeError saying what to call — the graph
is never dropped silently.  Gradients compared with torch's for the NumPy spellings."""

from __future__ import annotations

import numpy as np
import pytest

import convlayers as cl

torch = pytest.importorskip("torch")


def _pair(shape=(2, 3), seed=0):
    x = np.random.default_rng(seed).standard_normal(shape)
    return cl.Tensor(x.copy(), requires_grad=True), torch.tensor(x, requires_grad=True)


@pytest.mark.parametrize("np_fn, torch_fn", [
    (lambda a: np.concatenate([a, a * 2], axis=1), lambda a: torch.cat([a, a * 2], 1)),
    (lambda a: np.stack([a, a], axis=0), lambda a: torch.stack([a, a], 0)),
    (lambda a: np.exp(a), torch.exp),
    (lambda a: np.sqrt(np.abs(a)), lambda a: torch.sqrt(torch.abs(a))),
    (lambda a: np.maximum(a, 0.1 * a), lambda a: torch.maximum(a, 0.1 * a)),
    (lambda a: np.where(np.asarray(a) > 0, a, -a), lambda a: torch.where(a > 0, a, -a)),
    (lambda a: np.sum(a, axis=0), lambda a: a.sum(0)),
    (lambda a: np.mean(a, axis=1, keepdims=True), lambda a: a.mean(1, keepdim=True)),
    (lambda a: np.var(a, axis=1), lambda a: a.var(1, unbiased=False)),
    (lambda a: np.max(a, axis=1), lambda a: a.max(1).values),
    (lambda a: np.transpose(a), lambda a: a.T),
    (lambda a: np.reshape(a, (3, 2)), lambda a: a.reshape(3, 2)),
    (lambda a: np.clip(a, -0.5, 0.5), lambda a: a.clamp(-0.5, 0.5)),
    (lambda a: np.ones((2, 3)) * a + np.ones(3), lambda a: torch.ones(2, 3, dtype=a.dtype) * a + 1),
    (lambda a: np.matmul(a, np.ones((3, 2))), lambda a: a @ torch.ones(3, 2, dtype=a.dtype)),
], ids=range(15))
def test_numpy_spelling_keeps_the_graph(np_fn, torch_fn):
    c, t = _pair()
    out = np_fn(c)
    assert isinstance(out, cl.Tensor) and out.requires_grad
    ref = torch_fn(t)
    g = np.random.default_rng(1).standard_normal(ref.shape)
    out.backward(g)
    ref.backward(torch.from_numpy(g))
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(c.grad, t.grad.numpy(), rtol=1e-12)


def test_unsupported_numpy_function_refuses_instead_of_dropping_the_graph():
    c, _ = _pair()
    for call in (lambda: np.sin(c), lambda: np.cumsum(c), lambda: np.linalg.norm(c), lambda: np.sort(c)):
        with pytest.raises(TypeError, match="drop the autograd graph.*detach"):
            call()
    # nothing to lose: no gradient wanted, or an integer/bool result
    assert np.sin(c.detach()).shape == (2, 3)
    with cl.no_grad():
        assert isinstance(np.cumsum(c), np.ndarray)
    assert np.argsort(c).dtype.kind == "i" and np.isnan(c).dtype == bool
    assert np.shape(c) == (2, 3) and np.ndim(c) == 2


def test_tensor_methods_and_size():
    c, t = _pair((2, 1, 3))
    assert c.size == 6 and c.size(0) == 2 and c.size() == (2, 1, 3)
    assert c.squeeze().shape == (2, 3) and c.unsqueeze(0).shape == (1, 2, 1, 3)
    assert c.expand(4, 2, 5, 3).shape == (4, 2, 5, 3) and c.expand(-1, 4, -1).shape == (2, 4, 3)
    assert c.permute(2, 0, 1).shape == (3, 2, 1) and c.transpose(0, 2).shape == (3, 1, 2)
    assert c.contiguous() is c and c.transpose(0, 2).contiguous().data.flags.c_contiguous
    out = c.expand(4, 2, 5, 3).sum() + c.var(dim=2).sum() + c.mean(dim=(0, 2)).sum()
    ref = t.expand(4, 2, 5, 3).sum() + t.var(dim=2).sum() + t.mean(dim=(0, 2)).sum()
    out.backward()
    ref.backward()
    np.testing.assert_allclose(c.grad, t.grad.numpy(), rtol=1e-12)
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(c > 0)
    assert {c: 1}[c] == 1                          # hashable by identity, as torch.Tensor


def test_max_min_ties_and_chunks_like_torch():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])
    c, t = cl.Tensor(x.copy(), requires_grad=True), torch.tensor(x, requires_grad=True)
    (cl.max(c) + cl.min(c, dim=1).values.sum() + cl.maximum(c, cl.tensor(np.full(3, 2.0))).sum()).backward()
    (torch.max(t) + torch.min(t, dim=1).values.sum() + torch.maximum(t, torch.full((3,), 2.0,
                                                                                    dtype=t.dtype)).sum()).backward()
    np.testing.assert_allclose(c.grad, t.grad.numpy())
    assert [p.shape for p in cl.chunk(cl.tensor(np.zeros(5)), 4)] == [tuple(p.shape) for p in
                                                                    torch.chunk(torch.zeros(5), 4)]
    with pytest.raises(IndexError, match="Dimension out of range"):
        cl.cat([cl.tensor(np.zeros((2, 2)))], dim=2)
    with pytest.raises(ValueError, match="Sizes of tensors must match"):
        cl.cat([cl.tensor(np.zeros((2, 2))), cl.tensor(np.zeros((3, 3)))], dim=0)

"""Autograd: Tensor arithmetic and every functional op's gradients against torch.autograd.

Everything runs in float64 with tight tolerances; a few ops are also checked
by central finite differences, which do not depend on PyTorch at all.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import convlayers as cl  # noqa: E402
import convlayers.functional as F  # noqa: E402
from convlayers._dispatch import tensor_aware  # noqa: E402
from convlayers.autograd import Tensor, is_grad_enabled, no_grad  # noqa: E402

TF = torch.nn.functional
# torch's own note about how it implements padding='same' with even kernels.
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")
RTOL, ATOL = 1e-9, 1e-11


def rand(rng, *shape):
    return rng.standard_normal(shape)


def compare(cl_fn, torch_fn, arrays, grad_mask=None, seed=0, rtol=RTOL, atol=ATOL):
    """Run both frameworks on the same float64 arrays; compare outputs and input gradients.

    ``cl_fn`` / ``torch_fn`` take the wrapped inputs; a random upstream
    gradient makes every element of the output matter.
    """
    grad_mask = grad_mask or [True] * len(arrays)
    ours = [cl.tensor(a, requires_grad=m) for a, m in zip(arrays, grad_mask)]
    theirs = [torch.tensor(a, requires_grad=m) for a, m in zip(arrays, grad_mask)]
    out = cl_fn(*ours)
    ref = torch_fn(*theirs)
    assert isinstance(out, Tensor)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=rtol, atol=atol)
    upstream = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(upstream)
    ref.backward(torch.tensor(upstream))
    for i, (o, t, m) in enumerate(zip(ours, theirs, grad_mask)):
        if not m:
            assert o.grad is None
            continue
        assert o.grad is not None, f"input {i} got no gradient"
        assert o.grad.shape == o.shape and o.grad.dtype == o.dtype
        np.testing.assert_allclose(o.grad, t.grad.numpy(), rtol=rtol, atol=atol,
                                   err_msg=f"gradient of input {i}")


def finite_difference_check(fn, arrays, eps=1e-6, rtol=1e-5, atol=1e-7, seed=1):
    """Compare autograd's gradient of sum(fn(*x) * r) with central differences."""
    r = None
    tensors = [cl.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*tensors)
    r = np.random.default_rng(seed).standard_normal(out.shape)
    (out * r).sum().backward()
    for t, a in zip(tensors, arrays):
        numeric = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            plus, minus = a.copy(), a.copy()
            plus[idx] += eps
            minus[idx] -= eps
            args_p = [plus if b is a else b for b in arrays]
            args_m = [minus if b is a else b for b in arrays]
            fp = (np.asarray(fn(*args_p)) * r).sum()
            fm = (np.asarray(fn(*args_m)) * r).sum()
            numeric[idx] = (fp - fm) / (2 * eps)
        np.testing.assert_allclose(t.grad, numeric, rtol=rtol, atol=atol)


# --- Tensor basics ------------------------------------------------------------

def test_tensor_attributes_and_repr():
    t = cl.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    assert t.shape == (2, 2) and t.dtype == np.float64 and t.ndim == 2 and t.size == 4
    assert t.numpy() is t.data and t.grad is None and t.is_leaf
    assert repr(t).startswith("tensor([[1., 2.],") and repr(t).endswith("requires_grad=True)")
    assert "float32" in repr(cl.tensor(np.ones(2, np.float32)))
    d = (t * 2).detach()
    assert not d.requires_grad and d.is_leaf
    assert cl.tensor(3.0).item() == 3.0


def test_dtype_is_kept():
    t = cl.tensor(np.ones(3, np.float32), requires_grad=True)
    y = (t * 2.0 + 1).sum()
    assert y.dtype == np.float32
    y.backward()
    assert t.grad.dtype == np.float32


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match="requires_grad"):
        cl.tensor([1, 2, 3], requires_grad=True)
    assert cl.tensor([1, 2]).dtype.kind == "i"


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((2, 3, 4), (4,)), ((3, 1), (1, 4)),
                                    ((2, 1, 4), (3, 1)), ((), (2, 3))])
def test_binary_broadcasting(op, shapes):
    rng = np.random.default_rng(0)
    a, b = rand(rng, *shapes[0]), rand(rng, *shapes[1]) + (3.0 if op == "div" else 0.0)
    fn = {"add": lambda x, y: x + y, "sub": lambda x, y: x - y,
          "mul": lambda x, y: x * y, "div": lambda x, y: x / y}[op]
    compare(fn, fn, [a, b])


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "matmul"])
def test_reflected_operands_ndarray_and_scalar(op):
    rng = np.random.default_rng(1)
    a, c = rand(rng, 3, 3) + 4.0, rand(rng, 3, 3) + 4.0
    fn = {"add": lambda x, y: y + x, "sub": lambda x, y: y - x, "mul": lambda x, y: y * x,
          "div": lambda x, y: y / x, "matmul": lambda x, y: y @ x}[op]
    # ndarray on the left must defer to Tensor (not broadcast element by element)
    compare(lambda x: fn(x, c), lambda x: fn(x, torch.tensor(c)), [a])
    if op != "matmul":
        compare(lambda x: fn(x, 2.5), lambda x: fn(x, 2.5), [a])
        compare(lambda x: fn(2.5, x), lambda x: fn(2.5, x), [a])


def test_neg_pow_exp_log():
    rng = np.random.default_rng(2)
    a = np.abs(rand(rng, 4, 3)) + 0.5
    compare(lambda x: -x, lambda x: -x, [a])
    for p in (2, 3, 0.5, -1.5):
        compare(lambda x: x ** p, lambda x: x ** p, [a])
    compare(lambda x: x.exp(), lambda x: x.exp(), [a])
    compare(lambda x: x.log(), lambda x: x.log(), [a])
    with pytest.raises(TypeError, match="exponent"):
        cl.tensor(a) ** cl.tensor(a)


@pytest.mark.parametrize("shapes", [((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)),
                                    ((2, 3, 4), (4, 5)), ((2, 1, 3, 4), (5, 4, 2))])
def test_matmul(shapes):
    rng = np.random.default_rng(3)
    compare(lambda x, y: x @ y, lambda x, y: x @ y, [rand(rng, *shapes[0]), rand(rng, *shapes[1])])


@pytest.mark.parametrize("axis,keepdims", [(None, False), (0, False), (1, True), ((0, 2), False),
                                           (-1, True), ((1, -1), True)])
def test_sum_and_mean(axis, keepdims):
    a = rand(np.random.default_rng(4), 2, 3, 4)
    dim = axis if axis is not None else tuple(range(3))
    compare(lambda x: x.sum(axis=axis, keepdims=keepdims),
            lambda x: x.sum(dim=dim, keepdim=keepdims), [a])
    compare(lambda x: x.mean(axis=axis, keepdims=keepdims),
            lambda x: x.mean(dim=dim, keepdim=keepdims), [a])


def test_reshape_flatten_transpose():
    a = rand(np.random.default_rng(5), 2, 3, 4)
    compare(lambda x: x.reshape(4, -1) * 2, lambda x: x.reshape(4, -1) * 2, [a])
    compare(lambda x: x.reshape((6, 4)), lambda x: x.reshape((6, 4)), [a])
    compare(lambda x: x.flatten(), lambda x: x.flatten(), [a])
    compare(lambda x: x.flatten(1), lambda x: x.flatten(1), [a])
    compare(lambda x: x.flatten(0, 1), lambda x: x.flatten(0, 1), [a])
    compare(lambda x: x.transpose(2, 0, 1), lambda x: x.permute(2, 0, 1), [a])
    compare(lambda x: x.reshape(6, 4).T, lambda x: x.reshape(6, 4).T, [a])
    with pytest.raises(ValueError, match="start_dim"):
        cl.tensor(a).flatten(2, 1)


@pytest.mark.parametrize("index", [
    (0,), (slice(1, None),), (Ellipsis, 1), (slice(None), [0, 2, 2]), ([1, 1, 0],),
    (np.array([[True, False, True], [False, True, True]]),), (slice(None, None, 2), 1, slice(0, 3, 2)),
])
def test_indexing(index):
    a = rand(np.random.default_rng(6), 2, 3, 4)
    compare(lambda x: x[index], lambda x: x[index], [a])


def test_indexing_negative_step():
    # torch has no negative steps: compare with flip.
    a = rand(np.random.default_rng(6), 2, 3, 4)
    compare(lambda x: x[::-1, 1, ::-2] * 3, lambda x: x.flip(0)[:, 1].flip(-1)[:, ::2] * 3, [a])


def test_value_used_twice_and_residual_graph():
    rng = np.random.default_rng(7)
    x, w1, w2 = rand(rng, 5, 4), rand(rng, 4, 4), rand(rng, 4, 4)

    def block(x, w1, w2, relu):
        h = relu(x @ w1)
        y = h @ w2 + x          # residual add: x reaches y along two paths
        return (y * y).mean() + (x * x).sum() * 0.1   # and x is used again

    compare(lambda *t: block(*t, F.relu), lambda *t: block(*t, torch.relu), [x, w1, w2])


def test_deep_chain_does_not_hit_recursion_limit():
    x = cl.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.backward()
    np.testing.assert_allclose(x.grad, 1.0001 ** 5000, rtol=1e-9)


def test_gradients_accumulate_over_backward_calls():
    x = cl.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [5.0, 7.0])


def test_no_grad_and_grad_mode():
    x = cl.tensor([1.0], requires_grad=True)
    assert is_grad_enabled()
    with no_grad():
        assert not is_grad_enabled()
        y = x * 2 + F.relu(x)
        with cl.autograd.enable_grad():
            assert (x * 2).requires_grad
    assert is_grad_enabled() and not y.requires_grad and isinstance(y, Tensor)

    @no_grad()
    def f(t):
        return t * 2
    assert not f(x).requires_grad and is_grad_enabled()
    with pytest.raises(RuntimeError):
        y.backward()


def test_constants_get_no_grad():
    a = cl.tensor([1.0, 2.0], requires_grad=True)
    b = cl.tensor([3.0, 4.0])
    (a * b).sum().backward()
    assert b.grad is None and not b.requires_grad
    np.testing.assert_array_equal(a.grad, [3.0, 4.0])


def test_backward_errors():
    x = cl.tensor(np.ones((2, 2)), requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar"):
        (x * 2).backward()
    with pytest.raises(ValueError, match="gradient"):
        (x * 2).backward(np.ones(3))
    (x * 2).backward(np.ones((2, 2)))
    np.testing.assert_array_equal(x.grad, 2 * np.ones((2, 2)))


def test_functional_without_tensors_returns_ndarrays():
    out = F.relu(np.array([-1.0, 1.0]))
    assert type(out) is np.ndarray
    out = F.conv2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)))
    assert type(out) is np.ndarray


def test_unsupported_op_raises_clearly():
    @tensor_aware
    def mystery(input):
        return input

    with pytest.raises(TypeError, match="mystery does not support Tensor inputs yet"):
        mystery(cl.tensor([1.0]))


# --- functional ops vs torch ---------------------------------------------------

CONV_CASES = [
    # (N, Cin, H, W, Cout, kh, kw, kwargs)
    (2, 3, 7, 6, 4, 3, 3, {}),
    (2, 3, 7, 6, 4, 3, 3, {"stride": 2}),
    (1, 2, 8, 9, 3, 3, 2, {"stride": (2, 3), "padding": (1, 2)}),
    (2, 2, 7, 7, 2, 3, 3, {"padding": "same"}),
    (2, 2, 7, 7, 2, 4, 2, {"padding": "same", "dilation": 2}),
    (2, 2, 7, 7, 2, 3, 3, {"padding": "valid"}),
    (2, 3, 9, 8, 3, 3, 3, {"dilation": (2, 1), "padding": 2}),
    (2, 4, 6, 6, 6, 3, 3, {"groups": 2, "padding": 1}),
    (2, 4, 6, 6, 4, 3, 3, {"groups": 4, "padding": 1}),            # depthwise
    (2, 3, 6, 7, 6, 3, 3, {"groups": 3, "stride": 2, "padding": 1}),  # depthwise, multiplier 2
    (1, 2, 6, 6, 3, 1, 1, {"stride": 2}),
    (2, 2, 6, 7, 3, 3, 3, {"padding": 2, "padding_mode": "reflect"}),
    (2, 2, 6, 7, 3, 3, 2, {"padding": (1, 2), "padding_mode": "replicate", "stride": 2}),
    (2, 2, 6, 7, 3, 3, 3, {"padding": 1, "padding_mode": "circular", "dilation": 2}),
    (1, 2, 7, 7, 2, 3, 3, {"padding": "same", "padding_mode": "reflect"}),
]


def _torch_conv2d(x, w, b, padding_mode="zeros", **kw):
    if padding_mode == "zeros":
        return TF.conv2d(x, w, b, **kw)
    conv = torch.nn.Conv2d(x.shape[1], w.shape[0], w.shape[2:], padding_mode=padding_mode,
                           bias=b is not None, dtype=torch.float64, **kw)
    return conv._conv_forward(x, w, b)


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: str(c[-1]) or "plain")
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_gradients(case, bias):
    n, cin, h, w_, cout, kh, kw, kwargs = case
    groups = kwargs.get("groups", 1)
    rng = np.random.default_rng(hash((h, w_, kh, kw, cout)) % 2**32)
    arrays = [rand(rng, n, cin, h, w_), rand(rng, cout, cin // groups, kh, kw)]
    if bias:
        arrays.append(rand(rng, cout))
        compare(lambda x, w, b: F.conv2d(x, w, b, **kwargs),
                lambda x, w, b: _torch_conv2d(x, w, b, **kwargs), arrays)
    else:
        compare(lambda x, w: F.conv2d(x, w, **kwargs),
                lambda x, w: _torch_conv2d(x, w, None, **kwargs), arrays)


def test_conv2d_partial_requires_grad_and_unbatched():
    rng = np.random.default_rng(8)
    arrays = [rand(rng, 2, 5, 5), rand(rng, 3, 2, 3, 3), rand(rng, 3)]
    for mask in [(True, False, False), (False, True, False), (False, False, True), (False, True, True)]:
        compare(lambda x, w, b: F.conv2d(x, w, b, padding=1),
                lambda x, w, b: TF.conv2d(x, w, b, padding=1), arrays, grad_mask=list(mask))


TRANSPOSE_CASES = [
    (2, 3, 4, 5, 2, 3, 3, {}),
    (2, 3, 4, 5, 2, 3, 3, {"stride": 2}),
    (1, 2, 4, 4, 3, 3, 3, {"stride": 2, "padding": 1, "output_padding": 1}),
    (2, 2, 3, 5, 2, 4, 3, {"stride": (3, 2), "output_padding": (2, 1), "padding": (1, 0)}),
    (2, 4, 4, 4, 6, 3, 3, {"groups": 2, "stride": 2, "padding": 1}),
    (2, 3, 4, 4, 2, 3, 2, {"dilation": 2, "stride": 2, "output_padding": 1}),
    (2, 4, 3, 3, 4, 3, 3, {"groups": 4, "padding": 1}),
]


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=lambda c: str(c[-1]) or "plain")
def test_conv_transpose2d_gradients(case):
    n, cin, h, w_, cout_g, kh, kw, kwargs = case
    groups = kwargs.get("groups", 1)
    rng = np.random.default_rng(h * 100 + w_ + kh)
    arrays = [rand(rng, n, cin, h, w_), rand(rng, cin, cout_g, kh, kw), rand(rng, cout_g * groups)]
    compare(lambda x, w, b: F.conv_transpose2d(x, w, b, **kwargs),
            lambda x, w, b: TF.conv_transpose2d(x, w, b, **kwargs), arrays)


MAXPOOL_CASES = [
    {"kernel_size": 2}, {"kernel_size": 3, "stride": 2}, {"kernel_size": 3, "stride": 2, "padding": 1},
    {"kernel_size": (3, 2), "stride": (2, 1), "padding": (1, 1), "ceil_mode": True},
    {"kernel_size": 2, "dilation": 2}, {"kernel_size": 3, "stride": 2, "ceil_mode": True},
]


@pytest.mark.parametrize("kwargs", MAXPOOL_CASES, ids=str)
def test_max_pool2d_gradients(kwargs):
    a = rand(np.random.default_rng(9), 2, 3, 7, 8)
    compare(lambda x: F.max_pool2d(x, **kwargs), lambda x: TF.max_pool2d(x, **kwargs), [a])


def test_max_pool2d_return_indices_and_ties():
    a = np.zeros((1, 1, 4, 4))   # all ties: both pick the first maximum of each window
    out, idx = F.max_pool2d(cl.tensor(a, requires_grad=True), 2, return_indices=True)
    assert isinstance(out, Tensor) and isinstance(idx, np.ndarray)
    compare(lambda x: F.max_pool2d(x, 2), lambda x: TF.max_pool2d(x, 2), [a])


AVGPOOL_CASES = [
    {"kernel_size": 2}, {"kernel_size": 3, "stride": 2, "padding": 1},
    {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False},
    {"kernel_size": 3, "stride": 2, "ceil_mode": True},
    {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False},
    {"kernel_size": (2, 3), "stride": (1, 2), "divisor_override": 5},
]


@pytest.mark.parametrize("kwargs", AVGPOOL_CASES, ids=str)
def test_avg_pool2d_gradients(kwargs):
    a = rand(np.random.default_rng(10), 2, 3, 7, 8)
    compare(lambda x: F.avg_pool2d(x, **kwargs), lambda x: TF.avg_pool2d(x, **kwargs), [a])


@pytest.mark.parametrize("output_size", [1, 3, (2, 5), (7, 8), (4, None)], ids=str)
@pytest.mark.parametrize("kind", ["avg", "max"])
def test_adaptive_pool_gradients(output_size, kind):
    a = rand(np.random.default_rng(11), 2, 3, 7, 8)
    ours = F.adaptive_avg_pool2d if kind == "avg" else F.adaptive_max_pool2d
    theirs = TF.adaptive_avg_pool2d if kind == "avg" else TF.adaptive_max_pool2d
    compare(lambda x: ours(x, output_size), lambda x: theirs(x, output_size), [a])


@pytest.mark.parametrize("mode,pad", [("constant", (1, 2)), ("constant", (1, 0, 2, 3)),
                                      ("constant", (-1, 2, 1, -2)), ("reflect", (2, 1, 1, 3)),
                                      ("replicate", (3, 1, 0, 2)), ("circular", (2, 3, 1, 2))])
def test_pad_gradients(mode, pad):
    a = rand(np.random.default_rng(12), 2, 3, 5, 6)
    kwargs = {"value": 1.5} if mode == "constant" else {}
    compare(lambda x: F.pad(x, pad, mode=mode, **kwargs), lambda x: TF.pad(x, pad, mode=mode, **kwargs), [a])


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (3, 2, 4, 5)])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_gradients_and_running_stats(shape, training, affine):
    rng = np.random.default_rng(13)
    c = shape[1]
    x = rand(rng, *shape) * 2 + 1
    rm, rv = rand(rng, c), np.abs(rand(rng, c)) + 0.5
    ours_rm, ours_rv, their_rm, their_rv = rm.copy(), rv.copy(), torch.tensor(rm), torch.tensor(rv)
    arrays = [x] + ([rand(rng, c), rand(rng, c)] if affine else [])

    def ours(x, *wb):
        return F.batch_norm(x, ours_rm, ours_rv, *wb, training=training, momentum=0.3, eps=1e-4)

    def theirs(x, *wb):
        return TF.batch_norm(x, their_rm, their_rv, *wb, training=training, momentum=0.3, eps=1e-4)

    compare(ours, theirs, arrays)
    np.testing.assert_allclose(ours_rm, their_rm.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours_rv, their_rv.numpy(), rtol=1e-12)
    assert training or np.array_equal(ours_rm, rm)


def test_batch_norm_running_stats_as_tensors_are_updated():
    x = cl.tensor(rand(np.random.default_rng(14), 4, 2, 3, 3), requires_grad=True)
    rm, rv = cl.tensor(np.zeros(2)), cl.tensor(np.ones(2))
    F.batch_norm(x, rm, rv, training=True).sum().backward()
    assert not np.array_equal(rm.data, np.zeros(2)) and x.grad is not None


def test_relu_and_relu6_gradients_including_boundaries():
    a = np.array([[-2.0, -1e-9, 0.0, 1e-9, 3.0, 6.0 - 1e-9, 6.0, 6.0 + 1e-9, 9.0]])
    compare(F.relu, torch.relu, [a])
    compare(F.relu6, TF.relu6, [a])
    b = rand(np.random.default_rng(15), 3, 4, 5) * 5
    compare(F.relu, torch.relu, [b])
    compare(F.relu6, TF.relu6, [b])


@pytest.mark.parametrize("x_shape", [(5,), (3, 5), (2, 3, 5)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradients(x_shape, bias):
    rng = np.random.default_rng(16)
    arrays = [rand(rng, *x_shape), rand(rng, 4, 5)] + ([rand(rng, 4)] if bias else [])
    compare(lambda *t: F.linear(*t), lambda *t: TF.linear(*t), arrays)


def test_dropout_gradient_is_the_mask():
    a = rand(np.random.default_rng(17), 50, 40) + 10.0   # no zeros in the input
    x = cl.tensor(a, requires_grad=True)
    out = F.dropout(x, p=0.3, generator=np.random.default_rng(0))
    out.sum().backward()
    mask = out.data / a
    np.testing.assert_allclose(x.grad, mask, rtol=1e-12)
    assert set(np.round(np.unique(mask), 12)) == {0.0, round(1 / 0.7, 12)}
    y = cl.tensor(a, requires_grad=True)
    assert F.dropout(y, p=0.3, training=False) is y
    z = cl.tensor(a, requires_grad=True)
    F.dropout(z, p=1.0).sum().backward()
    assert not z.grad.any()
    with pytest.raises(ValueError, match="p must be"):
        F.dropout(cl.tensor(a), p=1.5)


@pytest.mark.parametrize("shape,dim", [((4, 5), 1), ((4, 5), 0), ((2, 3, 4), -1), ((5,), 0)])
def test_softmax_and_log_softmax_gradients(shape, dim):
    a = rand(np.random.default_rng(18), *shape) * 3
    compare(lambda x: F.log_softmax(x, dim), lambda x: TF.log_softmax(x, dim), [a])
    compare(lambda x: F.softmax(x, dim), lambda x: TF.softmax(x, dim), [a])


CE_CASES = list(itertools.product(["mean", "sum", "none"], [0.0, 0.25], [False, True], [False, True]))


@pytest.mark.parametrize("reduction,smoothing,weighted,ignore", CE_CASES)
def test_cross_entropy_gradients(reduction, smoothing, weighted, ignore):
    rng = np.random.default_rng(19)
    a = rand(rng, 6, 5)
    target = rng.integers(0, 5, 6)
    if ignore:
        target[[1, 4]] = 2
    w = rng.random(5) + 0.2 if weighted else None
    kw = dict(reduction=reduction, label_smoothing=smoothing, ignore_index=2 if ignore else -100)
    compare(lambda x: F.cross_entropy(x, target, weight=w, **kw),
            lambda x: TF.cross_entropy(x, torch.tensor(target), weight=None if w is None else torch.tensor(w),
                                       **kw), [a])
    compare(lambda x: F.nll_loss(x, target, weight=w, reduction=reduction, ignore_index=kw["ignore_index"]),
            lambda x: TF.nll_loss(x, torch.tensor(target), weight=None if w is None else torch.tensor(w),
                                  reduction=reduction, ignore_index=kw["ignore_index"]), [a])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_spatial_unbatched_and_probability_targets(reduction):
    rng = np.random.default_rng(20)
    a, t = rand(rng, 2, 4, 3, 3), rng.integers(0, 4, (2, 3, 3))
    compare(lambda x: F.cross_entropy(x, t, reduction=reduction, label_smoothing=0.1),
            lambda x: TF.cross_entropy(x, torch.tensor(t), reduction=reduction, label_smoothing=0.1), [a])
    v = rand(rng, 5)
    compare(lambda x: F.cross_entropy(x, np.array(3), reduction=reduction),
            lambda x: TF.cross_entropy(x, torch.tensor(3), reduction=reduction), [v])
    p = rng.random((3, 4))
    p /= p.sum(axis=1, keepdims=True)
    w = rng.random(4) + 0.5
    compare(lambda x: F.cross_entropy(x, p, weight=w, reduction=reduction, label_smoothing=0.2),
            lambda x: TF.cross_entropy(x, torch.tensor(p), weight=torch.tensor(w), reduction=reduction,
                                       label_smoothing=0.2), [rand(rng, 3, 4)])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("target_shape", [(3, 4), (4,)])
def test_mse_loss_gradients(reduction, target_shape):
    rng = np.random.default_rng(21)
    with pytest.warns(UserWarning) if target_shape != (3, 4) else _no_warning():
        compare(lambda x, t: F.mse_loss(x, t, reduction=reduction),
                lambda x, t: TF.mse_loss(x, t, reduction=reduction),
                [rand(rng, 3, 4), rand(rng, *target_shape)])


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_cross_entropy_rejects_gradients_for_target():
    t = cl.tensor(np.full((2, 3), 1 / 3), requires_grad=True)
    with pytest.raises(TypeError, match="target"):
        F.cross_entropy(cl.tensor(np.zeros((2, 3)), requires_grad=True), t)


def test_small_cnn_end_to_end():
    """conv -> bn -> relu6 -> pool -> linear -> cross-entropy, with a residual add."""
    rng = np.random.default_rng(22)
    x, w1, w2 = rand(rng, 4, 2, 8, 8), rand(rng, 3, 2, 3, 3) * 0.5, rand(rng, 3, 3, 3, 3) * 0.5
    g, b, lw, lb = rand(rng, 3), rand(rng, 3), rand(rng, 5, 3 * 4 * 4), rand(rng, 5)
    target = rng.integers(0, 5, 4)
    rm, rv = np.zeros(3), np.ones(3)

    def net(mod, x, w1, w2, g, b, lw, lb):
        h = mod.relu6(mod.batch_norm(mod.conv2d(x, w1, padding=1), rm if mod is F else torch.tensor(rm),
                                     rv if mod is F else torch.tensor(rv), g, b, training=True))
        h = h + mod.conv2d(h, w2, padding="same")
        h = mod.max_pool2d(h, 2)
        h = h.flatten(1) if mod is F else h.flatten(1)
        tgt = target if mod is F else torch.tensor(target)
        return mod.cross_entropy(mod.linear(h, lw, lb), tgt, label_smoothing=0.1)

    compare(lambda *t: net(F, *t), lambda *t: net(TF, *t), [x, w1, w2, g, b, lw, lb], rtol=1e-8)


# --- finite differences ----------------------------------------------------------

def test_finite_differences_conv2d_reflect_and_groups():
    rng = np.random.default_rng(23)
    finite_difference_check(
        lambda x, w: F.conv2d(x, w, padding=1, groups=2, stride=2, padding_mode="reflect"),
        [rand(rng, 1, 4, 5, 5), rand(rng, 2, 2, 3, 3)])


def test_finite_differences_batch_norm_training():
    rng = np.random.default_rng(24)
    finite_difference_check(
        lambda x, g, b: F.batch_norm(x, None, None, g, b, training=True),
        [rand(rng, 3, 2, 2, 2), rand(rng, 2), rand(rng, 2)])


def test_finite_differences_losses_and_pools():
    rng = np.random.default_rng(25)
    t = rng.integers(0, 4, 3)
    finite_difference_check(lambda x: F.cross_entropy(x, t, label_smoothing=0.3), [rand(rng, 3, 4)])
    finite_difference_check(lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
                            [rand(rng, 1, 1, 5, 6)])
    finite_difference_check(lambda x: F.pad(x, (2, 1, 1, 2), mode="reflect"), [rand(rng, 1, 1, 3, 4)])
    finite_difference_check(lambda x, w: F.conv_transpose2d(x, w, stride=2, output_padding=1),
                            [rand(rng, 1, 2, 3, 3), rand(rng, 2, 1, 3, 3)])


# --- randomised grid (hypothesis) ---------------------------------------------------

from hypothesis import given, settings, strategies as st  # noqa: E402


@st.composite
def conv_configs(draw):
    groups = draw(st.sampled_from([1, 2, 3]))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    mode = draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate", "circular"]))
    if draw(st.booleans()):
        padding, stride = "same", (1, 1)
    else:
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    # Reflect padding needs pad < size; keep the image comfortably large.
    h, w = draw(st.integers(dh * (kh - 1) + 3, 9)), draw(st.integers(dw * (kw - 1) + 3, 9))
    return dict(shape=(draw(st.integers(1, 2)), cin, h, w), wshape=(cout, cin // groups, kh, kw),
                kwargs=dict(stride=stride, padding=padding, dilation=(dh, dw), groups=groups, padding_mode=mode))


@settings(max_examples=40, deadline=None, derandomize=True)
@given(conv_configs(), st.integers(0, 2**32 - 1))
def test_conv2d_gradients_random_grid(cfg, seed):
    rng = np.random.default_rng(seed)
    arrays = [rand(rng, *cfg["shape"]), rand(rng, *cfg["wshape"]), rand(rng, cfg["wshape"][0])]
    compare(lambda x, w, b: F.conv2d(x, w, b, **cfg["kwargs"]),
            lambda x, w, b: _torch_conv2d(x, w, b, **cfg["kwargs"]), arrays)


def test_float32_gradients_keep_dtype_and_match_torch():
    rng = np.random.default_rng(26)
    x, w = rand(rng, 2, 3, 6, 6).astype(np.float32), rand(rng, 4, 3, 3, 3).astype(np.float32)
    xt, wt = cl.tensor(x, requires_grad=True), cl.tensor(w, requires_grad=True)
    out = F.avg_pool2d(F.relu(F.conv2d(xt, wt, padding=1)), 2)
    loss = F.cross_entropy(out.flatten(1), np.array([0, 5]))
    loss.backward()
    assert loss.dtype == np.float32 and xt.grad.dtype == np.float32 and wt.grad.dtype == np.float32
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    ref = TF.cross_entropy(TF.avg_pool2d(torch.relu(TF.conv2d(tx, tw, padding=1)), 2).flatten(1),
                           torch.tensor([0, 5]))
    ref.backward()
    np.testing.assert_allclose(loss.item(), ref.item(), rtol=1e-5)
    np.testing.assert_allclose(xt.grad, tx.grad.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(wt.grad, tw.grad.numpy(), rtol=1e-4, atol=1e-6)

"""Normalisation ops vs PyTorch: OpInfo samples (forward, gradients, errors) and seeded grids."""

from __future__ import annotations

import numpy as np
import pytest

import convlayers as cl
import convlayers.functional as F
from _peer import op_error_cases, op_samples
from conftest import assert_close

torch = pytest.importorskip("torch")
TF = torch.nn.functional

# (OpInfo name, variant, convlayers op, arguments to differentiate)
OPS = [
    ("nn.functional.batch_norm", "", F.batch_norm, ("input", 2, 3)),
    ("nn.functional.batch_norm", "without_cudnn", F.batch_norm, ("input", 2, 3)),
    ("nn.functional.group_norm", "", F.group_norm, None),
    ("nn.functional.instance_norm", "", F.instance_norm, ("input", "weight", "bias")),
    ("nn.functional.layer_norm", "", F.layer_norm, None),
    ("nn.functional.rms_norm", "", F.rms_norm, None),
    ("nn.functional.local_response_norm", "", F.local_response_norm, None),
    ("nn.functional.normalize", "", F.normalize, None),
]

FORWARD = [(c, fn) for name, v, fn, _ in OPS for c in op_samples(name, v)]
GRAD = [(c, fn, wrt) for name, v, fn, wrt in OPS for c in op_samples(name, v)]
ERRORS = [(e, fn) for name, v, fn, _ in OPS for e in op_error_cases(name, v)]


def _present(case, wrt):
    """The arguments of ``wrt`` this sample passes as floating-point arrays (some pass None)."""
    root = {"input": case.input, **dict(enumerate(case.args)), **case.kwargs}
    return [w for w in wrt if isinstance(root.get(w), np.ndarray) and root[w].dtype.kind == "f"] if wrt else None


@pytest.mark.parametrize("case,fn", FORWARD, ids=[str(c) for c, _ in FORWARD])
def test_opinfo_forward(case, fn):
    case.check(fn)


@pytest.mark.parametrize("case,fn,wrt", GRAD, ids=[str(c) for c, _, _ in GRAD])
def test_opinfo_grad(case, fn, wrt):
    case.check_grad(fn, wrt=_present(case, wrt))


@pytest.mark.parametrize("case,fn", ERRORS, ids=[str(e) for e, _ in ERRORS])
def test_opinfo_errors(case, fn):
    case.check(fn)


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(4, 3), (4, 3, 7), (2, 3, 5, 6), (2, 3, 2, 3, 4)])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batch_norm_nd_module_training(rng, dtype, shape, momentum):
    """BatchNorm1d/2d/3d: three training steps (running stats, cumulative average) then eval, as torch."""
    cls = {2: "BatchNorm1d", 3: "BatchNorm1d", 4: "BatchNorm2d", 5: "BatchNorm3d"}[len(shape)]
    ours = getattr(cl.nn, cls)(3, momentum=momentum, dtype=dtype)
    theirs = getattr(torch.nn, cls)(3, momentum=momentum).to(torch.float64 if dtype == np.float64 else torch.float32)
    for _ in range(3):
        x = rng.normal(2, 3, shape).astype(dtype)
        assert_close(ours(x), theirs(_t(x)).detach().numpy(), dtype=dtype)
    for key, value in theirs.state_dict().items():
        assert_close(np.asarray(ours.state_dict()[key]), value.numpy(), dtype=dtype)
    ours.eval(), theirs.eval()
    x = rng.normal(2, 3, shape).astype(dtype)
    assert_close(ours(x), theirs(_t(x)).detach().numpy(), dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,groups", [((2, 6, 5), 3), ((3, 8, 4, 5), 4), ((2, 4, 2, 3, 3), 2), ((2, 4), 1)])
def test_group_norm_grid(rng, dtype, shape, groups):
    x = rng.normal(1, 2, shape).astype(dtype)
    w, b = rng.standard_normal(shape[1]).astype(dtype), rng.standard_normal(shape[1]).astype(dtype)
    xt, wt, bt = (_t(a).requires_grad_() for a in (x, w, b))
    want = TF.group_norm(xt, groups, wt, bt, 1e-3)
    go = rng.standard_normal(shape).astype(dtype)
    gx, gw, gb = torch.autograd.grad(want, (xt, wt, bt), _t(go))
    xs, ws, bs = (cl.Tensor(a, requires_grad=True) for a in (x, w, b))
    got = F.group_norm(xs, groups, ws, bs, 1e-3)
    got.backward(go)
    assert_close(got.data, want.detach().numpy(), dtype=dtype)
    for ours, theirs in ((xs, gx), (ws, gw), (bs, gb)):
        assert_close(ours.grad, theirs.numpy(), dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [2.0, 1.0, 3.0, 1.5, 0.5, float("inf"), 0.0])
def test_normalize_grad_grid(rng, dtype, p):
    x = rng.standard_normal((3, 4, 5)).astype(dtype)
    x[0, 0] = 0  # a zero vector: eps decides, and the subgradient rules
    xt = _t(x).requires_grad_()
    want = TF.normalize(xt, p=p, dim=1, eps=1e-6)
    go = rng.standard_normal(x.shape).astype(dtype)
    (gx,) = torch.autograd.grad(want, (xt,), _t(go))
    xs = cl.Tensor(x, requires_grad=True)
    got = F.normalize(xs, p=p, dim=1, eps=1e-6)
    got.backward(go)
    assert_close(got.data, want.detach().numpy(), dtype=dtype)
    assert_close(xs.grad, gx.numpy(), dtype=dtype)


def test_instance_norm_running_stats(rng):
    x = rng.normal(3, 2, (4, 3, 10)).astype(np.float64)
    rm, rv = np.zeros(3), np.ones(3)
    trm, trv = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    got = F.instance_norm(x, rm, rv, momentum=0.3)
    want = TF.instance_norm(_t(x), trm, trv, momentum=0.3)
    assert_close(got, want.numpy())
    assert_close(rm, trm.numpy()), assert_close(rv, trv.numpy())
    assert_close(F.instance_norm(x, rm, rv, use_input_stats=False),
                 TF.instance_norm(_t(x), trm, trv, use_input_stats=False).numpy())


@pytest.mark.parametrize("call,match", [
    (lambda: F.group_norm(np.zeros((2, 6, 3)), 4), "divisible"),
    (lambda: F.group_norm(np.zeros((2, 6, 3)), 0), "num_groups"),
    (lambda: F.group_norm(np.zeros((2, 6, 3)), 2, weight=np.ones(5)), "weight"),
    (lambda: F.layer_norm(np.zeros((2, 3)), (4,)), "normalized_shape"),
    (lambda: F.instance_norm(np.zeros((2, 3, 1))), "spatial"),
    (lambda: F.instance_norm(np.zeros((2, 3, 4)), use_input_stats=False), "running_mean"),
    (lambda: F.local_response_norm(np.zeros((2, 3)), 2), "3D"),
    (lambda: F.normalize(np.zeros((2, 3)), dim=2), "dim"),
    (lambda: F.batch_norm(np.zeros((2, 3)), np.zeros(3), np.ones(3), eps="x"), "eps"),
])
def test_bad_arguments(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


@pytest.mark.parametrize("offset", [0.0, 1e3, -3e4])
def test_float32_statistics_in_one_read_do_not_cancel(offset):
    # float32 rows are summed in one read, shifted by their first element: a large common offset must not
    # cost the variance its digits.  The statistics are checked against float64; the outputs against
    # PyTorch's float32 kernels.
    from convlayers.functional.normalization import group_norm_forward

    rng = np.random.default_rng(5)
    x = (rng.standard_normal((2, 8, 30, 31)) * 0.5 + offset).astype(np.float32)
    x[0, 0, 0, 0] = offset + 40.0  # an outlier as the shift of the first group
    groups = x.astype(np.float64).reshape(2, 4, -1)
    _, (_, mean, rstd) = group_norm_forward(x, 4)
    np.testing.assert_allclose(mean, groups.mean(axis=2), rtol=1e-6)
    np.testing.assert_allclose(rstd, 1 / np.sqrt(groups.var(axis=2) + 1e-5), rtol=1e-5)
    if abs(offset) <= 1e3:  # further out, float32 outputs round differently in each library (before too)
        assert_close(F.group_norm(x, 4), TF.group_norm(torch.from_numpy(x), 4).numpy())
        assert_close(F.layer_norm(x, (30, 31)), TF.layer_norm(torch.from_numpy(x), (30, 31)).numpy())

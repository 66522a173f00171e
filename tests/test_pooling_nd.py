"""The pooling core over 1-D and 3-D (and lp_pool, max_unpool, fractional pooling at every rank) against PyTorch.

A seeded grid of window geometries per op: forward in float32 and float64,
indices, input gradients through the autograd Tensor (float64), modules'
repr, unbatched and empty-batch inputs, and bad arguments.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")
TF = torch.nn.functional

import convlayers as cl  # noqa: E402
import convlayers.functional as F  # noqa: E402
from convlayers import nn  # noqa: E402
from conftest import assert_close  # noqa: E402

DTYPES = [np.float32, np.float64]


def _window_cases(count, seed, dims, dilation):
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        k = tuple(int(v) for v in rng.integers(1, 5, dims))
        s = tuple(int(v) for v in rng.integers(1, 4, dims))
        p = tuple(int(rng.integers(0, ki // 2 + 1)) for ki in k)
        d = tuple(int(v) for v in rng.integers(1, 3, dims)) if dilation else (1,) * dims
        size = tuple(int(v) for v in rng.integers(3, 10 if dims == 1 else 7, dims))
        if any(n + 2 * pi < di * (ki - 1) + 1 for n, pi, di, ki in zip(size, p, d, k)):
            continue
        c = {"kernel_size": k if rng.random() < 0.7 else k[0], "stride": s if rng.random() < 0.8 else None,
             "padding": p, "ceil_mode": bool(rng.random() < 0.4), "size": size,
             "batched": bool(rng.random() < 0.8)}
        if dilation:
            c["dilation"] = d
        if isinstance(c["kernel_size"], int):
            c["padding"] = tuple(min(pi, c["kernel_size"] // 2) for pi in p)
            if any(n + 2 * pi < di * (c["kernel_size"] - 1) + 1 for n, pi, di in zip(size, c["padding"], d)):
                continue
        cases.append(c)
    return cases


def _input(case, rng, dtype):
    shape = ((2, 3) if case["batched"] else (3,)) + case["size"]
    return rng.standard_normal(shape).astype(dtype)


def _kw(case):
    return {k: v for k, v in case.items() if k not in ("size", "batched")}


def _grad_check(ours, theirs, x, seed=0):
    """Output and input gradient of ``ours`` (on a Tensor) against ``theirs`` (on a torch tensor), float64."""
    xt = torch.tensor(x, requires_grad=True)
    ref = theirs(xt)
    ref = ref[0] if isinstance(ref, tuple) else ref
    up = np.random.default_rng(seed).standard_normal(tuple(ref.shape))
    ref.backward(torch.tensor(up))
    xc = cl.tensor(x, requires_grad=True)
    out = ours(xc)
    out = out[0] if isinstance(out, tuple) else out
    assert isinstance(out, cl.Tensor)
    assert_close(out.data, ref.detach().numpy())
    out.backward(up)
    assert_close(xc.grad, xt.grad.numpy())


MAX_CASES = {d: _window_cases(40, 20 + d, d, True) for d in (1, 3)}
AVG_CASES = {d: _window_cases(40, 30 + d, d, False) for d in (1, 3)}


@pytest.mark.parametrize("dims, case", [(d, c) for d in (1, 3) for c in MAX_CASES[d]], ids=str)
def test_max_pool_1d_3d_grid(dims, case):
    ours, theirs = (F.max_pool1d, F.max_pool3d)[dims == 3], (TF.max_pool1d, TF.max_pool3d)[dims == 3]
    rng = np.random.default_rng(1)
    for dtype in DTYPES:
        x = _input(case, rng, dtype)
        got, idx = ours(x, return_indices=True, **_kw(case))
        want, want_idx = theirs(torch.from_numpy(x), return_indices=True, **_kw(case))
        assert got.dtype == dtype and idx.dtype == np.int64
        np.testing.assert_array_equal(got, want.numpy())
        np.testing.assert_array_equal(idx, want_idx.numpy())
        np.testing.assert_array_equal(ours(x, **_kw(case)), want.numpy())  # the no-indices (inference) path
    _grad_check(lambda t: ours(t, **_kw(case)), lambda t: theirs(t, **_kw(case)), x)


@pytest.mark.parametrize("dims, case", [(d, c) for d in (1, 3) for c in AVG_CASES[d]], ids=str)
def test_avg_pool_1d_3d_grid(dims, case):
    rng = np.random.default_rng(2)
    kw = _kw(case)
    kw["count_include_pad"] = bool(rng.random() < 0.5)
    if dims == 3 and rng.random() < 0.3:
        kw["divisor_override"] = int(rng.choice([-3, 1, 2, 5]))
    ours, theirs = (F.avg_pool1d, F.avg_pool3d)[dims == 3], (TF.avg_pool1d, TF.avg_pool3d)[dims == 3]
    for dtype in DTYPES:
        x = _input(case, rng, dtype)
        if dims == 3 and any(n < k for n, k in zip(case["size"], np.broadcast_to(case["kernel_size"], 3))):
            with pytest.raises(RuntimeError):  # avg_pool3d refuses an input smaller than the kernel ...
                theirs(torch.from_numpy(x), **kw)
            with pytest.raises(ValueError, match="smaller than kernel_size"):  # ... and so does convlayers
                ours(x, **kw)
            return
        got = ours(x, **kw)
        assert got.dtype == dtype
        assert_close(got, theirs(torch.from_numpy(x), **kw).numpy())
    _grad_check(lambda t: ours(t, **kw), lambda t: theirs(t, **kw), x)


def _fits_unpadded(c):
    return all(n >= k for n, k in zip(c["size"], np.broadcast_to(c["kernel_size"], len(c["size"]))))


LP_CASES = [(d, p, c) for d in (1, 2, 3) for p in (1, 2, 3, 1.5, float("inf"))
            for c in [c for c in _window_cases(12, 40 + d, d, False) if _fits_unpadded(c)][:3]]


@pytest.mark.parametrize("dims, norm, case", LP_CASES, ids=str)
def test_lp_pool_grid(dims, norm, case):
    ours = (F.lp_pool1d, F.lp_pool2d, F.lp_pool3d)[dims - 1]
    theirs = (TF.lp_pool1d, TF.lp_pool2d, TF.lp_pool3d)[dims - 1]
    kw = {"kernel_size": case["kernel_size"], "stride": case["stride"], "ceil_mode": case["ceil_mode"]}
    if dims == 1 and not isinstance(kw["kernel_size"], int):
        kw["kernel_size"] = kw["kernel_size"][0]  # torch's lp_pool1d multiplies by kernel_size: an int
    rng = np.random.default_rng(3)
    for dtype in DTYPES:
        x = _input(case, rng, dtype)
        if norm == 1.5:
            x = np.abs(x) + dtype(0.1)  # a fractional power of a negative number is NaN in both
        got = ours(x, norm, **kw)
        assert got.dtype == dtype
        assert_close(got, theirs(torch.from_numpy(x), norm, **kw).numpy())
    _grad_check(lambda t: ours(t, norm, **kw), lambda t: theirs(t, norm, **kw), x)


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("kind", ["avg", "max"])
def test_adaptive_pools_grid(dims, kind):
    rng = np.random.default_rng(4 + dims)
    name = f"adaptive_{kind}_pool{dims}d"
    ours, theirs = getattr(F, name), getattr(TF, name)
    for size in [1, 2, 3, 5] + [tuple(int(v) for v in rng.integers(1, 7, dims)) for _ in range(3)] \
            + ([(None,) + (2,) * (dims - 1)] if dims > 1 else []):  # torch's 1-D takes no None
        for dtype in DTYPES:
            x = rng.standard_normal((2, 3) + tuple(int(v) for v in rng.integers(3, 8, dims))).astype(dtype)
            if kind == "avg":
                assert_close(ours(x, size), theirs(torch.from_numpy(x), size).numpy())
            else:
                got, idx = ours(x, size, return_indices=True)
                want, want_idx = theirs(torch.from_numpy(x), size, return_indices=True)
                np.testing.assert_array_equal(got, want.numpy())
                np.testing.assert_array_equal(idx, want_idx.numpy())
        _grad_check(lambda t: ours(t, size), lambda t: theirs(t, size), x)


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_max_unpool_inverts_max_pool_with_gradients(dims):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3) + (8,) * dims)
    pool = getattr(F, f"max_pool{dims}d")
    unpool, tunpool = getattr(F, f"max_unpool{dims}d"), getattr(TF, f"max_unpool{dims}d")
    y, idx = pool(x, 3, 2, 1, return_indices=True)
    for output_size in (x.shape, x.shape[2:]):  # the default size (7) would not hold index 7 of an 8-wide input
        got = unpool(y, idx, 3, 2, 1, output_size=output_size)
        want = tunpool(torch.from_numpy(y), torch.from_numpy(idx), 3, 2, 1, output_size=output_size)
        np.testing.assert_array_equal(got, want.numpy())
    _grad_check(lambda t: unpool(t, idx, 3, 2, 1, output_size=x.shape),
                lambda t: tunpool(t, torch.from_numpy(idx), 3, 2, 1, output_size=x.shape), y)
    # the whole round trip differentiates through both ops
    _grad_check(lambda t: unpool(*pool(t, 2, return_indices=True), 2),
                lambda t: tunpool(*TF.__dict__[f"max_pool{dims}d"](t, 2, return_indices=True), 2), x)


@pytest.mark.parametrize("dims", [2, 3])
def test_fractional_max_pool_grid(dims):
    rng = np.random.default_rng(6)
    ours, theirs = getattr(F, f"fractional_max_pool{dims}d"), getattr(TF, f"fractional_max_pool{dims}d")
    for trial in range(6):
        size = tuple(int(v) for v in rng.integers(5, 12, dims))
        k = tuple(int(v) for v in rng.integers(1, 4, dims))
        slack = 1 if dims == 2 else 0  # 3-D wants output + kernel - 1 < input, 2-D <=
        kw = {"output_size": tuple(int(rng.integers(1, n - kk + 1 + slack)) for n, kk in zip(size, k))} if trial % 2 \
            else {"output_ratio": tuple(float(v) for v in rng.uniform(0.3, 0.7, dims))}
        for dtype in DTYPES:
            x = rng.standard_normal((2, 3) + size).astype(dtype)
            samples = rng.random((2, 3, dims)).astype(dtype)
            got, idx = ours(x, k, return_indices=True, _random_samples=samples, **kw)
            want, want_idx = theirs(torch.from_numpy(x), k, return_indices=True,
                                    _random_samples=torch.from_numpy(samples), **kw)
            np.testing.assert_array_equal(got, want.numpy())
            np.testing.assert_array_equal(idx, want_idx.numpy())
        _grad_check(lambda t: ours(t, k, _random_samples=samples, **kw),
                    lambda t: theirs(t, k, _random_samples=torch.from_numpy(samples), **kw), x)
    # without samples the windows are random, but the output has the asked-for size
    assert ours(np.zeros((2, 3) + (9,) * dims), 2, output_ratio=0.5).shape == (2, 3) + (4,) * dims


def test_nan_propagates_in_3d_max_paths():
    x = np.random.default_rng(7).standard_normal((1, 2, 4, 4, 4))
    x[0, 1, 2, 1, 3] = np.nan
    for kw in ({}, {"return_indices": True}):
        got = F.max_pool3d(x, 2, **kw)
        want = TF.max_pool3d(torch.from_numpy(x), 2, **kw)
        for g, w in zip(got if kw else (got,), want if kw else (want,)):
            np.testing.assert_array_equal(g, w.numpy())
    np.testing.assert_array_equal(F.adaptive_max_pool3d(x, 3), TF.adaptive_max_pool3d(torch.from_numpy(x), 3))


MODULES = [
    ("MaxPool1d", (3,), {"stride": 2, "padding": 1, "dilation": 1, "ceil_mode": True}, (3, 11)),
    ("MaxPool3d", ((1, 2, 3),), {"padding": (0, 1, 1)}, (2, 3, 4, 5, 6)),
    ("AvgPool1d", (3, 2, 1), {"count_include_pad": False}, (3, 9)),
    ("AvgPool3d", (2,), {"stride": 1, "divisor_override": -2}, (3, 4, 4, 4)),
    ("AdaptiveAvgPool1d", (4,), {}, (2, 3, 9)),
    ("AdaptiveAvgPool3d", ((2, None, 1),), {}, (3, 4, 5, 6)),
    ("AdaptiveMaxPool1d", (4,), {"return_indices": True}, (3, 9)),
    ("AdaptiveMaxPool2d", ((3, 2),), {}, (2, 3, 7, 5)),
    ("AdaptiveMaxPool3d", (2,), {}, (3, 4, 5, 6)),
    ("LPPool1d", (2, 3), {"stride": 2}, (3, 9)),
    ("LPPool2d", (1, (2, 3)), {"ceil_mode": True}, (2, 3, 7, 8)),
    ("LPPool3d", (3, 2), {}, (3, 4, 4, 4)),
    ("MaxPool2d", (3, 2, 1), {}, (3, 7, 7)),
    ("AvgPool2d", (3,), {"stride": 2, "padding": 1}, (3, 7, 7)),
]


@pytest.mark.parametrize("name, args, kwargs, shape", MODULES, ids=[m[0] for m in MODULES])
def test_modules_match_torch(name, args, kwargs, shape):
    ours, theirs = getattr(nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
    assert repr(ours) == repr(theirs)
    x = np.random.default_rng(8).standard_normal(shape)
    if name.startswith("LP"):
        x = np.abs(x)
    got, want = ours(x), theirs(torch.from_numpy(x))
    for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
        if g.dtype.kind == "i":
            np.testing.assert_array_equal(g, w.numpy())
        else:
            assert_close(g, w.numpy())
    _grad_check(ours, theirs, x)
    # an empty batch gives an empty batch, as PyTorch
    if len(shape) == int(name[-2]) + 2:
        empty = ours(np.zeros((0,) + shape[1:]))
        empty = empty[0] if isinstance(empty, tuple) else empty
        want = theirs(torch.zeros((0,) + shape[1:], dtype=torch.float64))
        assert empty.shape == tuple((want[0] if isinstance(want, tuple) else want).shape)


def test_unpool_and_fractional_modules():
    assert repr(nn.MaxUnpool1d(2)) == repr(torch.nn.MaxUnpool1d(2)) == "MaxUnpool1d(kernel_size=(2,), stride=(2,), padding=(0,))"
    assert repr(nn.MaxUnpool3d(2, 1)) == repr(torch.nn.MaxUnpool3d(2, 1))
    assert repr(nn.FractionalMaxPool3d(2, output_ratio=0.5)) == "FractionalMaxPool3d()"
    samples = np.random.default_rng(9).random((1, 3, 2))
    ours = nn.FractionalMaxPool2d(2, output_size=(3, 4), return_indices=True, _random_samples=samples)
    theirs = torch.nn.FractionalMaxPool2d(2, output_size=(3, 4), return_indices=True,
                                          _random_samples=torch.from_numpy(samples))
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["_random_samples"]
    x = np.random.default_rng(10).standard_normal((3, 8, 9))
    (y, idx), (ty, tidx) = ours(x), theirs(torch.from_numpy(x))
    np.testing.assert_array_equal(y, ty.numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    assert list(nn.FractionalMaxPool2d(2, output_ratio=0.5).state_dict()) == []


@pytest.mark.parametrize("call, match", [
    (lambda: F.max_pool3d(np.zeros((1, 4, 4)), 2), "input must be 4-D"),
    (lambda: F.max_pool1d(np.zeros((1, 0, 4)), 2), "non-zero sizes"),
    (lambda: F.max_pool3d(np.zeros((1, 1, 4, 4, 4)), (2, 2)), "kernel_size"),
    (lambda: F.max_pool3d(np.zeros((1, 1, 4, 4, 4)), 2, stride=0), "stride"),
    (lambda: F.max_pool1d(np.zeros((1, 1, 4)), 2, padding=2), "padding"),
    (lambda: F.avg_pool3d(np.zeros((1, 1, 4, 4, 4)), 2, divisor_override=0), "divisor_override"),
    (lambda: F.avg_pool3d(np.zeros((1, 1, 4, 4, 4)), 2, divisor_override=1.5), "divisor_override"),
    (lambda: F.lp_pool2d(np.zeros((1, 1, 4, 4)), 0, 2), "norm_type"),
    (lambda: F.adaptive_avg_pool3d(np.zeros((1, 1, 4, 4, 4)), (2, 2)), "output_size"),
    (lambda: F.adaptive_max_pool1d(np.zeros((1, 1, 4)), -1), "output_size"),
    (lambda: F.max_unpool2d(np.zeros((1, 1, 2, 2)), np.full((1, 1, 2, 2), 16), 2), "invalid max index"),
    (lambda: F.max_unpool2d(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 2, 2)), 2), "indices must be integers"),
    (lambda: F.max_unpool1d(np.zeros((1, 1, 2)), np.zeros((1, 1, 2), np.int64), 2, output_size=(9,)),
     "output_size"),
    (lambda: F.fractional_max_pool2d(np.zeros((1, 1, 8, 8)), 2), "output_size or an output_ratio"),
    (lambda: F.fractional_max_pool2d(np.zeros((1, 1, 8, 8)), 2, output_ratio=1.5), "output_ratio"),
    (lambda: F.fractional_max_pool2d(np.zeros((1, 1, 8, 8)), 4, output_size=6), "too large"),
    (lambda: F.fractional_max_pool2d(np.zeros((1, 1, 8, 8)), 2, output_size=3,
                                     _random_samples=np.full((1, 1, 3), 0.5)), "_random_samples must have shape"),
    (lambda: nn.MaxPool3d(2, padding=2), "padding"),
    (lambda: nn.AvgPool2d(2, divisor_override=0), "divisor_override"),
    (lambda: nn.FractionalMaxPool3d(2), "output size"),
    (lambda: nn.LPPool1d(0, 2), "norm_type"),
    (lambda: nn.AdaptiveMaxPool3d((1, 2)), "output_size"),
])
def test_bad_arguments_name_themselves(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_3d_kernels_are_thread_safe():
    rng = np.random.default_rng(11)
    xs = [rng.standard_normal((4, 8, 10, 12, 12)) for _ in range(4)]
    want = [(F.max_pool3d(x, 3, 2, 1), F.avg_pool3d(x, 3, 2, 1), F.max_pool3d(x, 2, return_indices=True)[1])
            for x in xs]
    got = [None] * len(xs)

    def work(i):
        x = xs[i]
        got[i] = (F.max_pool3d(x, 3, 2, 1), F.avg_pool3d(x, 3, 2, 1), F.max_pool3d(x, 2, return_indices=True)[1])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for g, w in zip(got, want):
        for a, b in zip(g, w):
            np.testing.assert_array_equal(a, b)

"""convlayers.functional against PyTorch 2.13.0 over seeded grids, plus bad inputs.

Every grid case draws its arguments from a seeded generator so that the whole
argument space (odd/even/rectangular kernels, stride/padding/dilation pairs,
groups incl. depthwise with multipliers, padding modes, ceil_mode,
count_include_pad, unbatched and non-contiguous inputs, float32/float64) is
covered reproducibly; the case id names the arguments.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from conftest import assert_close

import convlayers.functional as F

torch.set_num_threads(2)
DTYPES = [np.float32, np.float64]
TORCH_DTYPE = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def t(a, grad=False):
    return torch.tensor(np.ascontiguousarray(a), requires_grad=grad)


def noncontig(rng, shape, dtype):
    """A transposed view: same values as a C array of `shape`, other strides."""
    base = rng.standard_normal(shape[:-2] + (shape[-1], shape[-2])).astype(dtype)
    return np.swapaxes(base, -1, -2)


def make_input(rng, shape, dtype, layout):
    if layout == "noncontig":
        return noncontig(rng, shape, dtype)
    return rng.standard_normal(shape).astype(dtype)


# --------------------------------------------------------------------------- conv2d grid


def conv_cases(count, seed):
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        kind = rng.choice(["standard", "grouped", "depthwise", "pointwise"])
        kh, kw = (1, 1) if kind == "pointwise" else (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
        if kind == "standard":
            groups, cin_g, cout_g = 1, int(rng.integers(1, 5)), int(rng.integers(1, 5))
        elif kind == "grouped":
            groups, cin_g, cout_g = int(rng.integers(2, 4)), int(rng.integers(2, 4)), int(rng.integers(1, 3))
        elif kind == "depthwise":
            groups, cin_g, cout_g = int(rng.integers(2, 6)), 1, int(rng.integers(1, 3))
        else:
            groups = int(rng.choice([1, 2]))
            cin_g, cout_g = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        mode = str(rng.choice(["zeros", "zeros", "reflect", "replicate", "circular"]))
        pchoice = rng.integers(0, 4)
        if pchoice == 0 and stride == (1, 1):
            padding = "same"
        elif pchoice == 1:
            padding = "valid"
        elif pchoice == 2:
            padding = int(rng.integers(0, 3))
        else:
            padding = (int(rng.integers(0, 3)), int(rng.integers(0, 3)))
        h, w = int(rng.integers(max(kh * dilation[0], 3), 12)), int(rng.integers(max(kw * dilation[1], 3), 12))
        cases.append(dict(
            n=int(rng.integers(1, 3)), groups=groups, cin_g=cin_g, cout_g=cout_g, k=(kh, kw), stride=stride,
            dilation=dilation, padding=padding, mode=mode, h=h, w=w, bias=bool(rng.integers(0, 2)),
            dtype=DTYPES[len(cases) % 2],
            layout=str(rng.choice(["contig", "contig", "noncontig", "unbatched"]))))
    return cases


def _case_id(c):
    return "-".join(f"{k}={v if not isinstance(v, type) else v.__name__}" for k, v in c.items())


def torch_padding(c):
    """(left, right, top, bottom) that PyTorch's Conv2d pads with, and the conv padding left over."""
    kh, kw = c["k"]
    if c["padding"] == "same":
        th, tw = c["dilation"][0] * (kh - 1), c["dilation"][1] * (kw - 1)
        return (tw // 2, tw - tw // 2, th // 2, th - th // 2)
    if c["padding"] == "valid":
        return (0, 0, 0, 0)
    ph, pw = (c["padding"],) * 2 if isinstance(c["padding"], int) else c["padding"]
    return (pw, pw, ph, ph)


def torch_conv2d(x, w, b, c):
    """PyTorch's own answer, via nn.Conv2d's recipe for padding modes."""
    xt = t(x if x.ndim == 4 else x[None])
    if c["mode"] != "zeros":
        xt = TF.pad(xt, torch_padding(c), mode=c["mode"])
        padding = 0
    else:
        padding = c["padding"]
    out = TF.conv2d(xt, t(w), None if b is None else t(b), stride=c["stride"], padding=padding,
                    dilation=c["dilation"], groups=c["groups"])
    return out if x.ndim == 4 else out[0]


def conv_arrays(c, rng):
    cin, cout = c["cin_g"] * c["groups"], c["cout_g"] * c["groups"]
    shape = (c["n"], cin, c["h"], c["w"])
    if c["layout"] == "unbatched":
        shape = shape[1:]
    x = make_input(rng, shape, c["dtype"], c["layout"])
    w = rng.standard_normal((cout, c["cin_g"], *c["k"])).astype(c["dtype"])
    b = rng.standard_normal(cout).astype(c["dtype"]) if c["bias"] else None
    return x, w, b


def mode_is_valid(c):
    """Reflect padding must be smaller than the input side (PyTorch refuses otherwise)."""
    left, right, top, bottom = torch_padding(c)
    if c["mode"] == "reflect":
        return max(left, right) < c["w"] and max(top, bottom) < c["h"]
    return True


CONV_CASES = [c for c in conv_cases(260, seed=2) if mode_is_valid(c)]


@pytest.mark.parametrize("case", CONV_CASES, ids=_case_id)
def test_conv2d_matches_torch(case):
    rng = np.random.default_rng(zlib.crc32(_case_id(case).encode()))
    x, w, b = conv_arrays(case, rng)
    got = F.conv2d(x, w, b, stride=case["stride"], padding=case["padding"], dilation=case["dilation"],
                   groups=case["groups"], padding_mode=case["mode"])
    want = torch_conv2d(x, w, b, case).detach().numpy()
    assert got.dtype == case["dtype"]
    assert_close(got, want)


@pytest.mark.parametrize("case", CONV_CASES[::3], ids=_case_id)
def test_conv2d_backward_matches_torch(case):
    rng = np.random.default_rng(zlib.crc32(_case_id(case).encode()) + 1)
    x, w, b = conv_arrays(case, rng)
    xt, wt = t(x, grad=True), t(w, grad=True)
    bt = t(b, grad=True) if b is not None else None
    xin = xt if x.ndim == 4 else xt[None]
    if case["mode"] != "zeros":
        xin = TF.pad(xin, torch_padding(case), mode=case["mode"])
        padding = 0
    else:
        padding = case["padding"]
    out = TF.conv2d(xin, wt, bt, stride=case["stride"], padding=padding, dilation=case["dilation"],
                    groups=case["groups"])
    if x.ndim == 3:
        out = out[0]
    go = rng.standard_normal(tuple(out.shape)).astype(case["dtype"])
    out.backward(t(go))
    gi, gw, gb = F.conv2d_backward(go, x, w, stride=case["stride"], padding=case["padding"],
                                   dilation=case["dilation"], groups=case["groups"], padding_mode=case["mode"])
    assert_close(gi, xt.grad.numpy())
    assert_close(gw, wt.grad.numpy())
    if b is not None:
        assert_close(gb, bt.grad.numpy())


def test_conv2d_backward_output_mask():
    x, w = np.ones((1, 2, 4, 4)), np.ones((3, 2, 3, 3))
    gi, gw, gb = F.conv2d_backward(np.ones((1, 3, 2, 2)), x, w, output_mask=(False, True, False))
    assert gi is None and gb is None and gw.shape == w.shape


# --------------------------------------------------------------------------- conv_transpose2d grid


def transpose_cases(count, seed):
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        groups = int(rng.choice([1, 1, 2, 3]))
        cin_g = int(rng.choice([1, 2, 3])) if rng.random() < 0.8 else 1
        cout_g = 1 if (cin_g == 1 and rng.random() < 0.5) else int(rng.integers(1, 4))
        k = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
        stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        padding = (int(rng.integers(0, 3)), int(rng.integers(0, 3)))
        output_padding = tuple(int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation))
        h, w = int(rng.integers(1, 7)), int(rng.integers(1, 7))
        ho = (h - 1) * stride[0] - 2 * padding[0] + dilation[0] * (k[0] - 1) + output_padding[0] + 1
        wo = (w - 1) * stride[1] - 2 * padding[1] + dilation[1] * (k[1] - 1) + output_padding[1] + 1
        if ho <= 0 or wo <= 0:
            continue
        cases.append(dict(n=int(rng.integers(1, 3)), groups=groups, cin_g=cin_g, cout_g=cout_g, k=k,
                          stride=stride, padding=padding, output_padding=output_padding, dilation=dilation,
                          h=h, w=w, bias=bool(rng.integers(0, 2)), dtype=DTYPES[len(cases) % 2],
                          unbatched=bool(rng.random() < 0.2)))
    return cases


TRANSPOSE_CASES = transpose_cases(120, seed=3)


def transpose_arrays(c, rng):
    cin = c["cin_g"] * c["groups"]
    shape = (cin, c["h"], c["w"]) if c["unbatched"] else (c["n"], cin, c["h"], c["w"])
    x = rng.standard_normal(shape).astype(c["dtype"])
    w = rng.standard_normal((cin, c["cout_g"], *c["k"])).astype(c["dtype"])
    b = rng.standard_normal(c["cout_g"] * c["groups"]).astype(c["dtype"]) if c["bias"] else None
    return x, w, b


def _transpose_kwargs(c):
    return dict(stride=c["stride"], padding=c["padding"], output_padding=c["output_padding"], groups=c["groups"],
                dilation=c["dilation"])


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=_case_id)
def test_conv_transpose2d_matches_torch(case):
    rng = np.random.default_rng(zlib.crc32(_case_id(case).encode()))
    x, w, b = transpose_arrays(case, rng)
    got = F.conv_transpose2d(x, w, b, **_transpose_kwargs(case))
    want = TF.conv_transpose2d(t(x), t(w), None if b is None else t(b), **_transpose_kwargs(case)).numpy()
    assert got.dtype == case["dtype"]
    assert_close(got, want)


@pytest.mark.parametrize("case", TRANSPOSE_CASES[::3], ids=_case_id)
def test_conv_transpose2d_backward_matches_torch(case):
    rng = np.random.default_rng(zlib.crc32(_case_id(case).encode()) + 1)
    x, w, b = transpose_arrays(case, rng)
    xt, wt = t(x, grad=True), t(w, grad=True)
    bt = t(b, grad=True) if b is not None else None
    out = TF.conv_transpose2d(xt, wt, bt, **_transpose_kwargs(case))
    go = rng.standard_normal(tuple(out.shape)).astype(case["dtype"])
    out.backward(t(go))
    gi, gw, gb = F.conv_transpose2d_backward(go, x, w, **_transpose_kwargs(case))
    assert_close(gi, xt.grad.numpy())
    assert_close(gw, wt.grad.numpy())
    if b is not None:
        assert_close(gb, bt.grad.numpy())


# --------------------------------------------------------------------------- pooling grid


def pool_cases(count, seed, with_dilation):
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        k = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
        stride = None if rng.random() < 0.25 else (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        padding = (int(rng.integers(0, k[0] // 2 + 1)), int(rng.integers(0, k[1] // 2 + 1)))
        dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3))) if with_dilation else (1, 1)
        h = int(rng.integers(dilation[0] * (k[0] - 1) + 1, 11))
        w = int(rng.integers(dilation[1] * (k[1] - 1) + 1, 11))
        cases.append(dict(n=int(rng.integers(1, 3)), c=int(rng.integers(1, 4)), h=h, w=w, k=k, stride=stride,
                          padding=padding, dilation=dilation, ceil_mode=bool(rng.integers(0, 2)),
                          count_include_pad=bool(rng.integers(0, 2)),
                          divisor_override=None if rng.random() < 0.8 else int(rng.integers(1, 7)),
                          dtype=DTYPES[len(cases) % 2],
                          layout=str(rng.choice(["contig", "contig", "noncontig", "unbatched"]))))
    return cases


MAX_CASES = pool_cases(160, seed=4, with_dilation=True)
AVG_CASES = pool_cases(160, seed=5, with_dilation=False)


def pool_input(c, rng):
    shape = (c["n"], c["c"], c["h"], c["w"])
    if c["layout"] == "unbatched":
        shape = shape[1:]
    x = make_input(rng, shape, c["dtype"], c["layout"])
    if rng.random() < 0.3:  # ties exercise the first-maximum rule
        x = np.round(x).astype(c["dtype"])
    return x


@pytest.mark.parametrize("case", MAX_CASES, ids=_case_id)
def test_max_pool2d_matches_torch(case):
    rng = np.random.default_rng(zlib.crc32(_case_id(case).encode()))
    x = pool_input(case, rng)
    kw = dict(kernel_size=case["k"], stride=case["stride"], padding=case["padding"], dilation=case["dilation"],
              ceil_mode=case["ceil_mode"])
    got, idx = F.max_pool2d(x, return_indices=True, **kw)
    xt = t(x, grad=True)
    want, want_idx = TF.max_pool2d(xt, return_indices=True, **kw)
    assert got.dtype == case["dtype"]
    assert_close(got, want.detach().numpy())
    np.testing.assert_array_equal(idx, want_idx.numpy())
    assert_close(F.max_pool2d(x, **kw), want.detach().numpy())  # the inference kernel, without indices
    go = rng.standard_normal(got.shape).astype(case["dtype"])
    want.backward(t(go))
    assert_close(F.max_pool2d_backward(go, idx, x.shape), xt.grad.numpy())


@pytest.mark.parametrize("case", AVG_CASES, ids=_case_id)
def test_avg_pool2d_matches_torch(case):
    rng = np.random.default_rng(zlib.crc32(_case_id(case).encode()))
    x = pool_input(case, rng)
    kw = dict(kernel_size=case["k"], stride=case["stride"], padding=case["padding"], ceil_mode=case["ceil_mode"],
              count_include_pad=case["count_include_pad"], divisor_override=case["divisor_override"])
    got = F.avg_pool2d(x, **kw)
    xt = t(x, grad=True)
    want = TF.avg_pool2d(xt, **kw)
    assert got.dtype == case["dtype"]
    assert_close(got, want.detach().numpy())
    go = rng.standard_normal(got.shape).astype(case["dtype"])
    want.backward(t(go))
    assert_close(F.avg_pool2d_backward(go, x.shape, **kw), xt.grad.numpy())


ADAPTIVE_CASES = [dict(h=h, w=w, oh=oh, ow=ow, dtype=dt, unbatched=ub)
                  for (h, w, oh, ow), dt, ub in zip(
                      [(7, 7, 1, 1), (7, 9, 3, 4), (5, 5, 5, 5), (10, 3, 4, 2), (6, 6, 4, 4), (3, 8, 2, 5),
                       (11, 13, 7, 6), (4, 4, 8, 8), (9, 9, None, 3), (1, 1, 1, 1), (8, 5, 3, None),
                       (13, 2, 6, 2)] * 4,
                      DTYPES * 24, [False] * 24 + [True] * 24)]


@pytest.mark.parametrize("case", ADAPTIVE_CASES, ids=_case_id)
def test_adaptive_pools_match_torch(case):
    rng = np.random.default_rng(zlib.crc32(_case_id(case).encode()))
    shape = (3, case["h"], case["w"]) if case["unbatched"] else (2, 3, case["h"], case["w"])
    x = rng.standard_normal(shape).astype(case["dtype"])
    size = (case["oh"], case["ow"])
    xt = t(x, grad=True)
    want = TF.adaptive_avg_pool2d(xt, size)
    got = F.adaptive_avg_pool2d(x, size)
    assert_close(got, want.detach().numpy())
    go = rng.standard_normal(got.shape).astype(case["dtype"])
    want.backward(t(go))
    assert_close(F.adaptive_avg_pool2d_backward(go, x.shape), xt.grad.numpy())
    got, idx = F.adaptive_max_pool2d(x, size, return_indices=True)
    want, want_idx = TF.adaptive_max_pool2d(t(x), size, return_indices=True)
    assert_close(got, want.numpy())
    np.testing.assert_array_equal(idx, want_idx.numpy())


# --------------------------------------------------------------------------- pad, batch_norm, activations, linear


PAD_CASES = [(shape, pad, mode, dt)
             for shape, pads in [((2, 3, 5, 6), [(1, 2, 0, 3), (2, 2), (0, 0, 4, 1), (1, 1, 1, 1, 1, 1)]),
                                 ((3, 5, 6), [(1, 2, 0, 3), (3, 1), (5, 5, 4, 4)]),
                                 ((2, 7), [(3, 2)])]
             for pad in pads
             for mode in ["constant", "reflect", "replicate", "circular"]
             for dt in DTYPES]


@pytest.mark.parametrize("shape,pad,mode,dtype", PAD_CASES)
def test_pad_matches_torch(shape, pad, mode, dtype):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(shape).astype(dtype)
    xt = t(x, grad=True)
    try:
        want = TF.pad(xt, pad, mode=mode)
    except (RuntimeError, NotImplementedError, ValueError):
        with pytest.raises(ValueError):
            F.pad(x, pad, mode=mode)
        return
    got = F.pad(x, pad, mode=mode)
    assert_close(got, want.detach().numpy())
    go = rng.standard_normal(got.shape).astype(dtype)
    want.backward(t(go))
    assert_close(F.pad_backward(go, x.shape, pad, mode), xt.grad.numpy())


@pytest.mark.parametrize("dtype", DTYPES)
def test_pad_constant_value_and_negative_crop(dtype):
    x = np.arange(20, dtype=dtype).reshape(1, 4, 5)
    for pad, value in [((1, 2, 3, 0), 2.5), ((-1, 2, 0, -2), 0.0), ((-2, -1), 1.0)]:
        want = TF.pad(t(x), pad, value=value).numpy()
        assert_close(F.pad(x, pad, value=value), want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("ndim", [2, 4])
def test_batch_norm_matches_torch(dtype, training, affine, ndim):
    rng = np.random.default_rng(11)
    shape = (5, 3) if ndim == 2 else (4, 3, 5, 6)
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    rm, rv = rng.standard_normal(3).astype(dtype), rng.uniform(0.5, 2, 3).astype(dtype)
    w = rng.standard_normal(3).astype(dtype) if affine else None
    b = rng.standard_normal(3).astype(dtype) if affine else None
    trm, trv = t(rm), t(rv)
    want = TF.batch_norm(t(x), trm, trv, None if w is None else t(w), None if b is None else t(b),
                         training=training, momentum=0.3, eps=1e-3).numpy()
    got = F.batch_norm(x, rm, rv, w, b, training=training, momentum=0.3, eps=1e-3)
    assert got.dtype == dtype
    assert_close(got, want)
    assert_close(rm, trm.numpy())
    assert_close(rv, trv.numpy())


@pytest.mark.parametrize("dtype", DTYPES)
def test_activations_and_linear_match_torch(dtype):
    rng = np.random.default_rng(12)
    x = (rng.standard_normal((4, 7)) * 5).astype(dtype)
    x[0, :3] = [0.0, 6.0, np.nan]
    assert_close(F.relu(x), TF.relu(t(x)).numpy())
    assert_close(F.relu6(x), TF.relu6(t(x)).numpy())
    assert F.relu(x).dtype == dtype and F.relu6(x).dtype == dtype
    w, b = rng.standard_normal((3, 7)).astype(dtype), rng.standard_normal(3).astype(dtype)
    x = rng.standard_normal((2, 4, 7)).astype(dtype)
    assert_close(F.linear(x, w, b), TF.linear(t(x), t(w), t(b)).numpy())
    assert_close(F.linear(x, w), TF.linear(t(x), t(w)).numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ours, theirs", [(F.relu_backward, TF.relu), (F.relu6_backward, TF.relu6)],
                         ids=["relu", "relu6"])
def test_activation_gradients_match_torch_including_nan_and_boundaries(ours, theirs, dtype):
    # 105 elements: PyTorch's vectorised kernels (its scalar path for a few elements treats a NaN
    # input differently in ReLU6's backward)
    rng = np.random.default_rng(13)
    x = (rng.standard_normal((3, 5, 7)) * 5).astype(dtype)
    x[0, 0, :6] = [0.0, 6.0, np.nan, np.inf, -np.inf, -0.0]
    g = rng.standard_normal(x.shape).astype(dtype)
    g[1, 0, :2] = np.nan                          # a NaN gradient where the input is ...
    x[1, 0, :2] = [-1.0, 2.0]                     # ... blocked (0 comes out) and passed (NaN comes out)
    xt = t(x).requires_grad_()
    theirs(xt).backward(t(g))
    got = ours(g, x)
    assert got.dtype == dtype and got.shape == x.shape
    np.testing.assert_array_equal(got, xt.grad.numpy())  # a mask: exact, NaNs in the same places
    with pytest.raises(ValueError, match="grad_output"):
        ours(g[:1], x)


# --------------------------------------------------------------------------- dtypes, NaN/Inf, special shapes


def test_mixed_dtypes_promote_to_float64_and_ints_compute_in_float64():
    x32 = np.ones((1, 2, 4, 4), np.float32)
    w64 = np.ones((1, 2, 3, 3), np.float64)
    assert F.conv2d(x32, w64).dtype == np.float64
    assert F.conv2d(x32, w64.astype(np.float32)).dtype == np.float32
    xi = np.arange(32).reshape(1, 2, 4, 4)
    # PyTorch has no integer convolution (its OpInfo error_inputs refuse an int64 input): neither has convlayers
    with pytest.raises(TypeError, match="input must be a floating-point array"):
        F.conv2d(xi, np.ones((1, 2, 1, 1), np.int64))
    assert F.max_pool2d(xi, 2).dtype == np.float64


def test_nan_and_inf_propagate_like_torch():
    x = np.arange(50, dtype=np.float64).reshape(1, 2, 5, 5)
    x[0, 0, 2, 2] = np.nan
    x[0, 1, 0, 0] = np.inf
    w = np.ones((3, 2, 3, 3))
    assert_close(F.conv2d(x, w, padding=1), TF.conv2d(t(x), t(w), padding=1).numpy())
    got, idx = F.max_pool2d(x, 2, return_indices=True)
    want, want_idx = TF.max_pool2d(t(x), 2, return_indices=True)
    assert_close(got, want.numpy())
    np.testing.assert_array_equal(idx, want_idx.numpy())
    for k, s, p in [(2, 2, 0), (3, 2, 1), (3, 1, 1)]:
        assert_close(F.max_pool2d(x, k, s, p), TF.max_pool2d(t(x), k, s, p).numpy())
    assert_close(F.avg_pool2d(x, 3, 1, 1), TF.avg_pool2d(t(x), 3, 1, 1).numpy())
    ninf = np.full((1, 1, 4, 4), -np.inf)
    got, idx = F.max_pool2d(ninf, 2, return_indices=True)
    want, want_idx = TF.max_pool2d(t(ninf), 2, return_indices=True)
    np.testing.assert_array_equal(idx, want_idx.numpy())


def test_empty_batch_gives_empty_output():
    out = F.conv2d(np.zeros((0, 3, 5, 5)), np.zeros((4, 3, 3, 3)))
    assert out.shape == (0, 4, 3, 3)
    assert F.max_pool2d(np.zeros((0, 3, 4, 4)), 2).shape == (0, 3, 2, 2)
    assert F.batch_norm(np.zeros((0, 3, 4, 4)), np.zeros(3), np.ones(3)).shape == (0, 3, 4, 4)


def test_seed_worked_example_and_depthwise_separable():
    image = np.arange(1.0, 17.0).reshape(1, 1, 4, 4)
    kernel = np.tile([1.0, 0.0, -1.0], (3, 1)).reshape(1, 1, 3, 3)
    np.testing.assert_array_equal(F.conv2d(image, kernel)[0, 0], [[-6, -6], [-6, -6]])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8, 10, 10))
    dw, pw = rng.standard_normal((8, 1, 3, 3)), rng.standard_normal((16, 8, 1, 1))
    got = F.conv2d(F.conv2d(x, dw, padding=1, groups=8), pw)
    want = TF.conv2d(TF.conv2d(t(x), t(dw), padding=1, groups=8), t(pw)).numpy()
    assert_close(got, want)


def test_row_tiling_does_not_change_results(monkeypatch):
    import convlayers.functional.conv as conv_module
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((5, 3, 9, 9)), rng.standard_normal((4, 3, 3, 3))
    whole = F.conv2d(x, w, padding=1)
    monkeypatch.setattr(conv_module, "_COLS_BUDGET_BYTES", 1)  # one output row per tile
    monkeypatch.setattr(conv_module, "_WORKER_COLS_BUDGET_BYTES", 1)
    np.testing.assert_allclose(F.conv2d(x, w, padding=1), whole, rtol=1e-13)
    gi, gw, _ = F.conv2d_backward(np.ones_like(whole), x, w, padding=1)
    monkeypatch.undo()
    gi2, gw2, _ = F.conv2d_backward(np.ones_like(whole), x, w, padding=1)
    np.testing.assert_allclose(gi, gi2, rtol=1e-13)
    np.testing.assert_allclose(gw, gw2, rtol=1e-12)


@pytest.mark.parametrize("direct", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("stride, dilation, padding", [((1, 2), (1, 1), (1, 2)), ((2, 3), (2, 1), (0, 3)),
                                                       ((3, 2), (1, 2), (2, 0))])
def test_both_unrolls_match_torch(monkeypatch, direct, dtype, stride, dilation, padding):
    """Strided convs unroll straight from the input or through stride phases, by width: check both ways."""
    import convlayers.functional.conv as conv_module
    monkeypatch.setattr(conv_module, "_DIRECT_MAX_STRIDED_WIDTH", 10**9 if direct else 0)
    _conv_and_gradients_match_torch((2, 3, 13, 75), (4, 3, 3, 4), dict(stride=stride, dilation=dilation,
                                                                       padding=padding), dtype, seed=7)


def _conv_and_gradients_match_torch(x_shape, w_shape, kw, dtype, seed):
    """conv2d and its input and weight gradients against torch on random data; returns nothing."""
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype)
    got = F.conv2d(x, w, **kw)
    xt, wt = t(x).requires_grad_(), t(w).requires_grad_()
    want = TF.conv2d(xt, wt, **kw)
    assert_close(got, want.detach().numpy())
    go = rng.standard_normal(got.shape).astype(dtype)
    want.backward(t(go))
    gi, gw, _ = F.conv2d_backward(go, x, w, **kw)
    assert_close(gi, xt.grad.numpy())
    assert_close(gw, wt.grad.numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, w_shape, kw", [
    ((3, 4, 6, 5), (5, 4, 3, 3), dict(padding=1)),
    ((2, 3, 9, 8), (4, 3, 2, 3), dict(stride=(2, 1), padding=(0, 1), dilation=(1, 2))),
    ((4, 2, 7, 7), (3, 2, 5, 5), dict(stride=3, padding=2)),
    ((64, 6, 4, 4), (5, 6, 3, 3), dict(padding=1)),      # big enough to go channels-last unforced
])
def test_channels_last_unroll_matches_torch(monkeypatch, x_shape, w_shape, kw, dtype):
    """Small images unroll channels-last (one channel vector per tap): forward and both gradients."""
    import convlayers.functional.conv as conv_module
    if x_shape[0] < 64:
        monkeypatch.setattr(conv_module, "_CHANNELS_LAST_MIN_PIXELS", 0)
    # float32 weight gradients go to the register-blocked product (tests/test_conv_grad.py): kept off here so
    # that this path stays tested in both dtypes
    from convlayers.functional import _conv_grad
    monkeypatch.setattr(_conv_grad, "weight_grad_route", lambda *a: None)
    monkeypatch.setattr(conv_module, "_implicit_route", lambda *a: False)  # likewise the float32 forward
    calls = []
    real = conv_module._unrolled_nhwc
    monkeypatch.setattr(conv_module, "_unrolled_nhwc", lambda *a: calls.append(1) or real(*a))
    _conv_and_gradients_match_torch(x_shape, w_shape, kw, dtype, seed=11)
    assert len(calls) >= 2, "the channels-last unroll did not run for the forward and the weight gradient"


@pytest.mark.parametrize("x_shape, cout", [((64, 1, 8, 8), 48), ((64, 3, 8, 8), 32), ((40, 2, 6, 5), 17)])
def test_few_channel_small_images_run_the_implicit_product(monkeypatch, x_shape, cout):
    """The digits CNN's 1-channel stem (and alike: few channels, at most 256 pixels) goes channels-last implicit."""
    import convlayers.functional.conv as conv_module
    calls = []
    real = conv_module._implicit_route
    monkeypatch.setattr(conv_module, "_implicit_route", lambda *a: calls.append(real(*a)) or calls[-1])
    rng = np.random.default_rng(5)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal((cout, x_shape[1], 3, 3)).astype(np.float32)
    got = F.conv2d(x, w, padding=1)
    assert calls == [True]
    want64 = TF.conv2d(t(x.astype(np.float64)), t(w.astype(np.float64)), padding=1).numpy()
    want32 = TF.conv2d(t(x), t(w), padding=1).numpy()
    assert np.abs(got - want64).max() <= 4 * np.abs(want32 - want64).max() + 1e-6


# --------------------------------------------------------------------------- bad input


X = np.zeros((1, 4, 8, 8))
W = np.zeros((6, 2, 3, 3))

BAD_CONV = [
    ("kernel larger than padded input", dict(input=np.zeros((1, 2, 2, 2)), weight=np.zeros((1, 2, 3, 3))),
     ValueError, "kernel size"),
    ("channels mismatch", dict(input=np.zeros((1, 3, 8, 8)), weight=W, groups=2), ValueError, "channels"),
    ("groups do not divide out", dict(input=X, weight=np.zeros((5, 2, 3, 3)), groups=2), ValueError, "divisible"),
    ("groups do not divide in", dict(input=np.zeros((1, 3, 8, 8)), weight=np.zeros((4, 1, 3, 3)), groups=2),
     ValueError, "divisible"),
    ("stride zero", dict(input=X, weight=W, groups=2, stride=0), ValueError, "stride"),
    ("stride negative pair", dict(input=X, weight=W, groups=2, stride=(1, -1)), ValueError, "stride"),
    ("dilation zero", dict(input=X, weight=W, groups=2, dilation=0), ValueError, "dilation"),
    ("negative padding", dict(input=X, weight=W, groups=2, padding=-1), ValueError, "padding"),
    ("same with stride", dict(input=X, weight=W, groups=2, padding="same", stride=2), ValueError, "same"),
    ("unknown padding string", dict(input=X, weight=W, groups=2, padding="full"), ValueError, "padding"),
    ("unknown padding mode", dict(input=X, weight=W, groups=2, padding=1, padding_mode="mirror"), ValueError,
     "padding_mode"),
    ("input rank 2", dict(input=np.zeros((8, 8)), weight=W), ValueError, "3-D"),
    ("input rank 5", dict(input=np.zeros((1, 1, 4, 8, 8)), weight=W), ValueError, "4-D"),
    ("weight rank 3", dict(input=X, weight=np.zeros((6, 3, 3))), ValueError, "weight"),
    ("string dtype", dict(input=np.full((1, 4, 8, 8), "a"), weight=W, groups=2), TypeError, "dtype"),
    ("object dtype", dict(input=np.zeros((1, 4, 8, 8), dtype=object), weight=W, groups=2), TypeError, "dtype"),
    ("complex dtype", dict(input=np.zeros((1, 4, 8, 8), complex), weight=W, groups=2), TypeError, "dtype"),
    ("bias shape", dict(input=X, weight=W, groups=2, bias=np.zeros(5)), ValueError, "bias"),
    ("float stride", dict(input=X, weight=W, groups=2, stride=1.5), TypeError, "stride"),
    ("groups zero", dict(input=X, weight=W, groups=0), ValueError, "groups"),
]


@pytest.mark.parametrize("name,kwargs,exc,match", BAD_CONV, ids=[c[0] for c in BAD_CONV])
def test_conv2d_bad_input(name, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        F.conv2d(**kwargs)


BAD_OTHER = [
    ("transpose output_padding", lambda: F.conv_transpose2d(X, np.zeros((4, 2, 3, 3)), stride=2,
                                                            output_padding=2), ValueError, "output_padding"),
    ("transpose channels", lambda: F.conv_transpose2d(X, np.zeros((3, 2, 3, 3))), ValueError, "channels"),
    ("transpose empty output", lambda: F.conv_transpose2d(np.zeros((1, 1, 1, 1)), np.zeros((1, 1, 1, 1)),
                                                          padding=1), ValueError, "empty"),
    ("pool padding over half", lambda: F.max_pool2d(X, 2, padding=2), ValueError, "half"),
    ("avg pool padding over half", lambda: F.avg_pool2d(X, 3, padding=2), ValueError, "half"),
    ("pool stride zero", lambda: F.max_pool2d(X, 2, stride=0), ValueError, "stride"),
    ("pool kernel zero", lambda: F.max_pool2d(X, 0), ValueError, "kernel_size"),
    ("pool window too large", lambda: F.max_pool2d(np.zeros((1, 1, 2, 2)), 3), ValueError, "larger"),
    ("pool dilation zero", lambda: F.max_pool2d(X, 2, dilation=0), ValueError, "dilation"),
    ("pool rank 2", lambda: F.avg_pool2d(np.zeros((4, 4)), 2), ValueError, "3-D"),
    ("divisor zero", lambda: F.avg_pool2d(X, 2, divisor_override=0), ValueError, "divisor_override"),
    ("adaptive size negative", lambda: F.adaptive_avg_pool2d(X, -1), ValueError, "output_size"),
    ("adaptive size type", lambda: F.adaptive_max_pool2d(X, "2"), TypeError, "output_size"),
    ("pad odd length", lambda: F.pad(X, (1, 2, 3)), ValueError, "even"),
    ("pad unknown mode", lambda: F.pad(X, (1, 1), mode="mirror"), ValueError, "mode"),
    ("pad reflect too large", lambda: F.pad(X, (8, 8, 1, 1), mode="reflect"), ValueError, "reflect"),
    ("pad int", lambda: F.pad(X, 1), TypeError, "tuple"),
    ("linear shape", lambda: F.linear(np.zeros((2, 3)), np.zeros((4, 5))), ValueError, "in_features"),
    ("batch_norm shape", lambda: F.batch_norm(X, np.zeros(3), np.ones(3)), ValueError, "running_mean"),
    ("batch_norm missing stats", lambda: F.batch_norm(X, None, None), ValueError, "running_mean"),
    ("batch_norm one value", lambda: F.batch_norm(np.zeros((1, 4)), None, None, training=True), ValueError,
     "more than 1"),
    ("relu string", lambda: F.relu(np.array(["a"])), TypeError, "dtype"),
]


@pytest.mark.parametrize("name,call,exc,match", BAD_OTHER, ids=[c[0] for c in BAD_OTHER])
def test_other_ops_bad_input(name, call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_errors_match_where_torch_refuses():
    """Each conv2d bad-geometry case above is refused by PyTorch too (no stricter, no looser)."""
    for name, kwargs, _, _ in BAD_CONV:
        if "dtype" in name or name in ("unknown padding mode", "float stride"):
            continue
        targs = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
        with pytest.raises((RuntimeError, ValueError, TypeError, IndexError)):
            TF.conv2d(**targs)


@pytest.mark.parametrize("x_shape, w_shape, kw", [
    ((2, 16, 96, 96), (8, 16, 3, 3), dict(stride=2, padding=1)),
    ((1, 32, 130, 129), (40, 32, 3, 3), dict(stride=2, padding=0, bias=True)),
    ((3, 16, 101, 99), (33, 16, 5, 3), dict(stride=(3, 2), padding=(2, 1), dilation=(2, 1), bias=True)),
    ((4, 24, 64, 64), (16, 24, 7, 7), dict(stride=2, padding=3)),
    ((64, 48, 8, 8), (96, 48, 3, 3), dict(padding=1, bias=True)),      # stride 1, a small image
    ((8, 32, 28, 28), (16, 32, 5, 5), dict(padding=2)),                # stride 1, no Winograd for 5x5
])
def test_float32_convolutions_through_the_implicit_product_match_torch(monkeypatch, x_shape, w_shape, kw):
    """NCHW k×k float32 convolutions the route picks (strided ones with enough output pixels, stride 1 on
    small images or without Winograd) take the channels-last implicit product (its padding copy reads
    NCHW); the output is C-ordered NCHW and PyTorch's numbers."""
    from convlayers.functional import _conv_channels_last as cl
    taken = []
    plan = cl.plan
    monkeypatch.setattr(cl, "plan", lambda *a, **k: taken.append(1) or plan(*a, **k))
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    kw = dict(kw)
    b = rng.standard_normal(w_shape[0]).astype(np.float32) if kw.pop("bias", False) else None
    got = F.conv2d(x, w, b, **kw)
    want = TF.conv2d(torch.from_numpy(x), torch.from_numpy(w), None if b is None else torch.from_numpy(b),
                     **kw).numpy()
    assert taken and got.flags.c_contiguous and got.shape == want.shape
    assert_close(got, want)
    # conv2d_affine (Conv-BN-ReLU fused) takes the same route with its epilogue
    scale, shift = rng.uniform(0.5, 2, w_shape[0]), rng.standard_normal(w_shape[0])
    from convlayers.functional.conv import conv2d_affine
    got = conv2d_affine(x, w, b, kw.get("stride", 1), kw.get("padding", 0), kw.get("dilation", 1), 1, "zeros",
                        scale.astype(np.float32), shift.astype(np.float32), 0.0, 6.0)
    assert_close(got, np.clip(want * scale[:, None, None].astype(np.float32)
                              + shift[:, None, None].astype(np.float32), 0, 6))

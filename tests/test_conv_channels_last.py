"""Channels-last convolutions (``functional._conv_channels_last``, ``_kernels.gemm``, ONNX's channels-last mode).

A channels-last array has the shape (N, C, H, W) and NHWC memory, as
``torch.channels_last``.  ``conv2d`` / ``conv2d_affine`` given one run the
channels-last paths (depthwise, 1×1 as one product, dense k×k unrolled or read
in place) and return a channels-last result; grouped convolutions and channel
multipliers go through the NCHW path and are converted back.  PyTorch, fed its
own channels-last tensors, is the oracle; the NCHW path of convlayers is the
second one (bit for bit where the module promises it).  Every grid test also
checks *which* path ran, so that a dispatch that silently fell back to NCHW
would fail here rather than pass on the NCHW path's numbers.
"""

from __future__ import annotations

import contextlib
import re
import threading
import warnings

import numpy as np
import pytest
from conftest import assert_close
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import convlayers.functional as F
from convlayers import _kernels
from convlayers._kernels import gemm
from convlayers.functional import _conv_channels_last as cl
from convlayers.functional.conv import conv2d_affine

torch = pytest.importorskip("torch")
TF = torch.nn.functional

GRID = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
SIDE = st.one_of(st.sampled_from([1, 7]), st.integers(1, 12))
DTYPES = [np.float32, np.float64]



# --------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _spy(name="forward"):
    """Record whether each call of ``_conv_channels_last.<name>`` returned something (``forward``: the
    channels-last path ran; ``plan``: it had a path for the call) or None (the NCHW path)."""
    calls = []
    real = getattr(cl, name)

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        calls.append(out is not None)
        return out

    setattr(cl, name, spy)
    try:
        yield calls
    finally:
        setattr(cl, name, real)


def _torch_cl(a):
    return torch.from_numpy(np.ascontiguousarray(a)).contiguous(memory_format=torch.channels_last)


def _torch_conv(x, w, b, kw):
    """torch's conv2d on its own channels-last tensor (its result is channels-last too)."""
    return TF.conv2d(_torch_cl(x), torch.from_numpy(w), None if b is None else torch.from_numpy(b), **kw)


def _out_hw(h, wd, kh, kw, stride, padding, dilation):
    ho = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (wd + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    return ho, wo


def _check(x_shape, w_shape, kw, dtype, seed, bias, channels_last_path):
    """conv2d on a channels-last input against torch's channels-last conv2d; returns (got, x, w, b).

    ``channels_last_path``: whether ``_conv_channels_last.forward`` must have produced the result (True) or
    declined it for the NCHW path (False).
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype) if bias else None
    xc = cl.to_channels_last(x)
    assert cl.is_channels_last(xc) == (x_shape[1] > 1 and x_shape[2] * x_shape[3] > 1)
    with _spy() as calls:
        got = F.conv2d(xc, w, b, **kw)
    want = _torch_conv(x, w, b, kw)
    assert got.dtype == dtype
    assert got.shape == tuple(want.shape)
    assert_close(got, want.numpy())
    if cl.is_channels_last(xc):
        assert calls == [channels_last_path], f"channels-last path ran: {calls}, expected [{channels_last_path}]"
        # NHWC memory in every case, and channels-last (not merely C-contiguous) whenever that is a distinction
        assert got.transpose(0, 2, 3, 1).flags.c_contiguous, got.strides
        n, cout, ho, wo = got.shape
        if cout > 1 and ho * wo > 1 and n > 0:
            assert cl.is_channels_last(got)
            assert want.is_contiguous(memory_format=torch.channels_last)  # PyTorch agrees on the layout
    return got, x, w, b


# --------------------------------------------------------------------------- conv2d against PyTorch


@GRID
@given(c=st.sampled_from([2, 3, 16, 17, 33]), n=st.integers(1, 2), h=SIDE, wd=SIDE, kh=st.integers(1, 5),
       kw=st.integers(1, 5), stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       padding=st.tuples(st.integers(0, 2), st.integers(0, 2)), bias=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_depthwise_float32_matches_torch_and_the_nchw_path_bit_for_bit(c, n, h, wd, kh, kw, stride, dilation,
                                                                      padding, bias, seed):
    ho, wo = _out_hw(h, wd, kh, kw, stride, padding, dilation)
    assume(ho >= 1 and wo >= 1)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=c)
    got, x, w, b = _check((n, c, h, wd), (c, 1, kh, kw), kwargs, np.float32, seed, bias, True)
    # the NHWC kernel sums tap by tap in the NCHW kernel's order: the module promises the same numbers
    np.testing.assert_array_equal(got, F.conv2d(x, w, b, **kwargs))


@pytest.mark.parametrize("c, hw, k, stride, dilation, padding", [
    (17, (7, 7), (3, 3), (1, 1), (1, 1), (1, 1)),   # the 3x3 vector path
    (3, (9, 8), (5, 2), (2, 3), (1, 2), (2, 0)),
    (33, (7, 1), (1, 1), (1, 1), (1, 1), (0, 0)),
])
def test_depthwise_float64_matches_torch_and_the_nchw_path(c, hw, k, stride, dilation, padding):
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=c)
    got, x, w, b = _check((2, c) + hw, (c, 1) + k, kwargs, np.float64, 5, True, True)
    np.testing.assert_array_equal(got, F.conv2d(x, w, b, **kwargs))


@GRID
@given(dtype=st.sampled_from(DTYPES), n=st.integers(1, 3), cin=st.integers(2, 40),
       cout=st.one_of(st.sampled_from([1, gemm.NR - 1, gemm.NR, gemm.NR + 1, 2 * gemm.NR]), st.integers(1, 70)),
       h=SIDE, wd=SIDE, stride=st.tuples(st.integers(1, 3), st.integers(1, 3)), padding=st.integers(0, 1),
       bias=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_pointwise_matches_torch(dtype, n, cin, cout, h, wd, stride, padding, bias, seed):
    # padding 0: one product over the (strided) pixels; padding 1: the k x k path with a 1x1 window
    kwargs = dict(stride=stride, padding=padding)
    _check((n, cin, h, wd), (cout, cin, 1, 1), kwargs, dtype, seed, bias, True)


@GRID
@given(dtype=st.sampled_from(DTYPES), n=st.integers(1, 2), cin=st.integers(2, 12),
       cout=st.one_of(st.sampled_from([1, gemm.NR, gemm.NR + 3]), st.integers(1, 40)), h=SIDE, wd=SIDE,
       k=st.one_of(st.sampled_from([(3, 3), (5, 5)]), st.tuples(st.integers(1, 5), st.integers(1, 5))),
       stride=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       padding=st.tuples(st.integers(0, 2), st.integers(0, 2)), bias=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_dense_matches_torch(dtype, n, cin, cout, h, wd, k, stride, dilation, padding, bias, seed):
    # float32: windows read in place (dilation along W 1) or unrolled (dilation along W 2); float64: BLAS
    ho, wo = _out_hw(h, wd, k[0], k[1], stride, padding, dilation)
    assume(ho >= 1 and wo >= 1)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation)
    _check((n, cin, h, wd), (cout, cin) + k, kwargs, dtype, seed, bias, True)


@GRID
@given(dtype=st.sampled_from(DTYPES), kind=st.sampled_from(["grouped", "multiplier"]), groups=st.integers(2, 4),
       cin_g=st.integers(2, 4), m=st.integers(1, 3), n=st.integers(1, 2), h=SIDE, wd=SIDE, k=st.integers(1, 3),
       stride=st.integers(1, 2), padding=st.integers(0, 1), bias=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_grouped_and_channel_multiplier_fall_back_and_stay_channels_last(dtype, kind, groups, cin_g, m, n, h, wd, k,
                                                                          stride, padding, bias, seed):
    if kind == "grouped":   # 1 < groups < C_in
        cin, cout, wcin = groups * cin_g, groups * m, cin_g
    else:                   # depthwise with a channel multiplier: C_out = (m + 1)·C_in
        cin, cout, wcin = groups, groups * (m + 1), 1
    ho, wo = _out_hw(h, wd, k, k, (stride, stride), (padding, padding), (1, 1))
    assume(ho >= 1 and wo >= 1)
    kwargs = dict(stride=stride, padding=padding, groups=groups)
    got, x, w, b = _check((n, cin, h, wd), (cout, wcin, k, k), kwargs, dtype, seed, bias, False)
    np.testing.assert_array_equal(got, F.conv2d(x, w, b, **kwargs))  # it is the NCHW path's result


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_modes_give_torch_values(mode, rng):
    x = rng.standard_normal((2, 6, 9, 8)).astype(np.float32)
    w = rng.standard_normal((5, 6, 3, 3)).astype(np.float32)
    conv = torch.nn.Conv2d(6, 5, 3, padding=1, padding_mode=mode, bias=False)
    conv.weight.data = torch.from_numpy(w)
    want = conv(_torch_cl(x)).detach().numpy()
    got = F.conv2d(cl.to_channels_last(x), w, padding=1, padding_mode=mode)
    assert_close(got, want)


@pytest.mark.parametrize("mode", ["reflect", "replicate"])
def test_padding_modes_keep_the_layout_as_torch(mode, rng):
    x = rng.standard_normal((2, 6, 9, 8)).astype(np.float32)
    w = rng.standard_normal((5, 6, 3, 3)).astype(np.float32)
    conv = torch.nn.Conv2d(6, 5, 3, padding=1, padding_mode=mode, bias=False)
    assert conv(_torch_cl(x)).is_contiguous(memory_format=torch.channels_last)
    assert cl.is_channels_last(F.conv2d(cl.to_channels_last(x), w, padding=1, padding_mode=mode))


def test_torch_channels_last_tensor_memory_goes_straight_in(rng):
    # the same memory as torch's channels_last tensor (its .numpy() view), not only the same strides pattern
    t = torch.from_numpy(rng.standard_normal((2, 16, 10, 10)).astype(np.float32)).contiguous(
        memory_format=torch.channels_last)
    x = t.numpy()
    assert cl.is_channels_last(x)
    assert x.strides == tuple(s * 4 for s in t.stride())
    w = rng.standard_normal((24, 16, 3, 3)).astype(np.float32)
    with _spy() as calls:
        got = F.conv2d(x, w, padding=1)
    assert calls == [True]
    assert_close(got, TF.conv2d(t, torch.from_numpy(w), padding=1).numpy())


NETWORK_SIZES = [  # (x shape, w shape, kwargs): several product tiles, worker splits, the stem
    ((2, 64, 40, 40), (64, 64, 3, 3), dict(padding=1, dilation=(1, 2))),  # float32: unrolled in 2+ tiles
    ((2, 64, 40, 40), (48, 64, 3, 3), dict(padding=1)),                    # float64: BLAS tiles over workers
    ((4, 32, 30, 30), (96, 32, 1, 1), dict(stride=2)),
    ((1, 3, 64, 64), (24, 3, 7, 7), dict(padding=3, stride=2)),
    ((4, 96, 30, 30), (96, 1, 3, 3), dict(padding=1, groups=96, stride=2)),
]


@pytest.mark.parametrize("x_shape, w_shape, kw, dtype", [
    (*case, dtype) for case in NETWORK_SIZES for dtype in DTYPES])
def test_network_sizes_match_torch(x_shape, w_shape, kw, dtype):
    rng = np.random.default_rng(9)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = (rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[1:]))).astype(dtype)
    with _spy() as calls:
        got = F.conv2d(cl.to_channels_last(x), w, **kw)
    assert calls == [True] and cl.is_channels_last(got)
    assert_close(got, _torch_conv(x, w, None, kw).numpy())


# --------------------------------------------------------------------------- conv2d_affine


AFFINE_CASES = {  # name: (x shape, w shape, stride, padding, dilation, groups, channels-last path)
    "depthwise 3x3": ((2, 17, 9, 9), (17, 1, 3, 3), 1, 1, 1, 17, True),
    "depthwise 5x5/2": ((1, 33, 11, 10), (33, 1, 5, 5), 2, 2, 1, 33, True),
    "pointwise": ((2, 24, 7, 7), (40, 24, 1, 1), 1, 0, 1, 1, True),
    "pointwise/2": ((2, 24, 9, 8), (16, 24, 1, 1), 2, 0, 1, 1, True),
    "dense 3x3": ((2, 8, 9, 11), (33, 8, 3, 3), 1, 1, 1, 1, True),
    "dense 5x5 dilated": ((1, 6, 13, 12), (7, 6, 5, 5), 1, 2, (2, 2), 1, True),
    "dense 3x3/2": ((3, 5, 10, 10), (12, 5, 3, 3), 2, 1, 1, 1, True),
    "grouped": ((2, 8, 9, 9), (12, 4, 3, 3), 1, 1, 1, 2, False),
    "multiplier": ((2, 4, 9, 9), (8, 1, 3, 3), 1, 1, 1, 4, False),
}


def _affine_params(case, dtype):
    return (case, dtype)


@pytest.mark.parametrize("lo, hi", [(0.0, 6.0), (-np.inf, np.inf), (-0.5, np.inf)])
@pytest.mark.parametrize("case, dtype", [_affine_params(c, d) for c in AFFINE_CASES for d in DTYPES])
def test_conv2d_affine_channels_last_equals_nchw_and_torch(case, dtype, lo, hi):
    xs, ws, stride, padding, dilation, groups, path = AFFINE_CASES[case]
    rng = np.random.default_rng(7)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype)
    scale = (rng.random(ws[0]) + 0.5).astype(dtype) * np.where(np.arange(ws[0]) % 3 == 0, -1, 1).astype(dtype)
    shift = rng.standard_normal(ws[0]).astype(dtype)
    args = (b, stride, padding, dilation, groups, "zeros", scale, shift, lo, hi)
    with _spy() as calls:
        got = conv2d_affine(cl.to_channels_last(x), w, *args)
    assert calls == [path]
    assert cl.is_channels_last(got)
    nchw = conv2d_affine(x, w, *args)
    assert nchw.flags.c_contiguous and got.shape == nchw.shape and got.dtype == dtype
    if case.startswith("depthwise") or not path:
        np.testing.assert_array_equal(got, nchw)  # same kernel order / the NCHW path itself
    else:
        assert_close(got, nchw)
    y = _torch_conv(x, w, b, dict(stride=stride, padding=padding, dilation=dilation, groups=groups))
    want = torch.clamp(y * torch.from_numpy(scale)[:, None, None] + torch.from_numpy(shift)[:, None, None], lo, hi)
    assert_close(got, want.numpy())
    if lo == 0.0 and hi == 6.0:
        assert got.min() == 0.0 and got.max() == 6.0  # both bounds active: the clamp is tested, not vacuous


# --------------------------------------------------------------------------- the fused float32 GEMM kernel


CANARY = np.float32(-12345.5)
FRONT = 3  # c starts 3 floats into its buffer: unaligned, with canaries before it too


@GRID
@given(p=st.one_of(st.sampled_from([1, gemm.MR - 1, gemm.MR, gemm.MR + 1, 8 * gemm.MR, 8 * gemm.MR + 1, 200]),
                   st.integers(1, 200)),
       k=st.one_of(st.sampled_from([1, 2, 300]), st.integers(1, 300)),
       n=st.one_of(st.sampled_from([1, gemm.NR - 1, gemm.NR, gemm.NR + 1, 2 * gemm.NR, 100]), st.integers(1, 100)),
       bounds=st.sampled_from([(-np.inf, np.inf), (0.0, 6.0), (-0.5, 0.5)]),
       build=st.sampled_from(["serial", "parallel"]), nan=st.booleans(), residual=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_gemm_epilogue_against_float64_numpy(p, k, n, bounds, build, nan, residual, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((p, k)).astype(np.float32)
    bmat = rng.standard_normal((k, n)).astype(np.float32)
    alpha = rng.standard_normal(n).astype(np.float32)
    beta = rng.standard_normal(n).astype(np.float32)
    res = rng.standard_normal((p, n)).astype(np.float32) if residual else None
    if nan:
        a[rng.integers(p), rng.integers(k)] = np.nan  # that row of the product is NaN in every column
    lo, hi = np.float32(bounds[0]), np.float32(bounds[1])
    buf = np.full(FRONT + p * n + 2 * gemm.NR + 5, CANARY, dtype=np.float32)
    c = buf[FRONT:FRONT + p * n].reshape(p, n)
    assert c.flags.c_contiguous
    kernel = getattr(gemm.gemm_epilogue, build)
    nans = kernel(a, gemm.pack_panels(bmat), c, gemm.pad_columns(alpha, n), gemm.pad_columns(beta, n), lo, hi, res)

    prod = a.astype(np.float64) @ bmat.astype(np.float64)
    exact = prod * alpha + beta + (0 if res is None else res)
    want = np.clip(exact, bounds[0], bounds[1])  # NaN stays NaN through the clamp, as in the kernel
    assert (buf[:FRONT] == CANARY).all(), "written before c"
    assert (buf[FRONT + p * n:] == CANARY).all(), "written past the end of c (a partial panel's stores)"
    assert nans == np.isnan(want).sum()
    np.testing.assert_array_equal(np.isnan(c), np.isnan(want))
    # float32 sums of k products, then the affine map: (k + 3) roundings of at most eps each, relative to the
    # sum of the magnitudes (the clamp is 1-Lipschitz, so the bound holds after it)
    mag = (np.abs(a.astype(np.float64)) @ np.abs(bmat.astype(np.float64))) * np.abs(alpha) + np.abs(beta)
    if res is not None:
        mag = mag + np.abs(res)
    tol = (k + 3) * float(np.finfo(np.float32).eps) * mag + 1e-30
    ok = ~np.isnan(want)
    err = np.abs(c.astype(np.float64) - want)
    assert (err[ok] <= tol[ok]).all(), f"max error {err[ok].max()} (tolerance {tol[ok][np.argmax(err[ok])]})"


@GRID
@given(s_n=st.integers(1, 3),
       m=st.one_of(st.sampled_from([1, gemm.MR - 1, gemm.MR, gemm.MR + 1, 3 * gemm.MR]), st.integers(1, 50)),
       k=st.one_of(st.sampled_from([1, 2, 200]), st.integers(1, 200)),
       p=st.one_of(st.sampled_from([1, gemm.NR - 1, gemm.NR, gemm.NR + 1, gemm.ROWS_PANELS * gemm.NR + 3]),
                   st.integers(1, 300)),
       bounds=st.sampled_from([(-np.inf, np.inf), (0.0, 6.0), (-0.5, 0.5)]),
       build=st.sampled_from(["serial", "parallel"]), nan=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_gemm_rows_against_float64_numpy(s_n, m, k, p, bounds, build, nan, seed):
    """The NCHW 1×1 form: x read in place (its last row may end inside a panel: masked loads), the affine
    map per row, canaries on both sides of the output."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((m, k)).astype(np.float32)
    x = rng.standard_normal((s_n, k, p)).astype(np.float32)
    alpha, beta = rng.standard_normal(m).astype(np.float32), rng.standard_normal(m).astype(np.float32)
    if nan:
        x[rng.integers(s_n), rng.integers(k), rng.integers(p)] = np.nan  # one column of one sample NaN
    lo, hi = np.float32(bounds[0]), np.float32(bounds[1])
    buf = np.full(FRONT + s_n * m * p + 2 * gemm.NR + 5, CANARY, dtype=np.float32)
    out = buf[FRONT:FRONT + s_n * m * p].reshape(s_n, m, p)
    nans = getattr(gemm.gemm_rows, build)(w, x, out, alpha, beta, lo, hi)
    prod = np.einsum("mk,skp->smp", w.astype(np.float64), x.astype(np.float64))
    want = np.clip(prod * alpha[:, None] + beta[:, None], bounds[0], bounds[1])
    assert (buf[:FRONT] == CANARY).all() and (buf[FRONT + s_n * m * p:] == CANARY).all()
    assert nans == np.isnan(want).sum()
    np.testing.assert_array_equal(np.isnan(out), np.isnan(want))
    mag = np.einsum("mk,skp->smp", np.abs(w.astype(np.float64)), np.abs(x.astype(np.float64))) \
        * np.abs(alpha[:, None]) + np.abs(beta[:, None])
    tol = (k + 3) * float(np.finfo(np.float32).eps) * mag + 1e-30
    ok = ~np.isnan(want)
    assert (np.abs(out.astype(np.float64) - want)[ok] <= tol[ok]).all()


def test_gemm_panels_and_padded_columns():
    rng = np.random.default_rng(0)
    for k, n in [(1, 1), (5, gemm.NR - 1), (7, gemm.NR), (3, gemm.NR + 1), (2, 3 * gemm.NR + 2)]:
        bmat = rng.standard_normal((k, n))
        panels = gemm.pack_panels(bmat)
        count = -(-n // gemm.NR)
        assert panels.shape == (count, k, gemm.NR) and panels.dtype == np.float32 and panels.flags.c_contiguous
        for j in range(count * gemm.NR):
            col = panels[j // gemm.NR, :, j % gemm.NR]
            np.testing.assert_array_equal(col, bmat[:, j].astype(np.float32) if j < n else 0)
        v = gemm.pad_columns(np.arange(1, n + 1), n)
        assert v.shape == (count * gemm.NR,) and v.dtype == np.float32
        np.testing.assert_array_equal(v[:n], np.arange(1, n + 1))
        np.testing.assert_array_equal(v[n:], 0)


def test_gemm_serial_and_parallel_builds_agree_bit_for_bit():
    rng = np.random.default_rng(1)
    p, k, n = 197, 77, 70
    a, bmat = rng.standard_normal((p, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
    args = (gemm.pack_panels(bmat), None, gemm.pad_columns(np.ones(n), n), gemm.pad_columns(np.zeros(n), n),
            np.float32(-np.inf), np.float32(np.inf), None)
    outs = []
    for kernel in (gemm.gemm_epilogue.serial, gemm.gemm_epilogue.parallel):
        c = np.empty((p, n), np.float32)
        assert kernel(a, args[0], c, *args[2:]) == 0
        outs.append(c)
    np.testing.assert_array_equal(outs[0], outs[1])
    assert_close(outs[0], a.astype(np.float64) @ bmat, dtype=np.float32)


# --------------------------------------------------------------------------- non-finite values


NONFINITE = {  # name: (x shape, w shape, kwargs)
    "depthwise": ((2, 16, 9, 9), (16, 1, 3, 3), dict(padding=1, groups=16)),
    "depthwise 5x5 strided": ((2, 17, 11, 11), (17, 1, 5, 5), dict(padding=2, stride=2, groups=17)),
    "dense 3x3": ((2, 8, 9, 9), (6, 8, 3, 3), dict(padding=1)),
    "dense 3x3 dilated W": ((2, 8, 9, 10), (6, 8, 3, 3), dict(padding=2, dilation=(1, 2))),
    "1x1 padded": ((2, 8, 6, 6), (5, 8, 1, 1), dict(padding=1)),
}


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("case", list(NONFINITE))
def test_nonfinite_weight_on_zero_padding_matches_nchw_and_torch(case, bad):
    xs, ws, kw = NONFINITE[case]
    rng = np.random.default_rng(2)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    w[1, 0, 0, 0] = bad  # the top-left tap: on the zero padding along the top rows and left columns
    b = rng.standard_normal(ws[0]).astype(np.float32)
    got = F.conv2d(cl.to_channels_last(x), w, b, **kw)
    nchw = F.conv2d(x, w, b, **kw)
    np.testing.assert_array_equal(got, nchw)  # NaN and ±inf at the same places, the same finite values
    assert cl.is_channels_last(got)
    want = _torch_conv(x, w, b, kw).numpy()
    for mask in (np.isnan, np.isposinf, np.isneginf):
        np.testing.assert_array_equal(mask(got), mask(want))
    assert 0 < (~np.isfinite(got[:, 1])).sum() < got[:, 1].size  # only where the tap meets the input
    fin = np.isfinite(want)
    np.testing.assert_allclose(got[fin], want[fin], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", ["dense 3x3", "pointwise", "depthwise"])
def test_float32_overflow_gives_inf_never_nan(case):
    xs, ws, kw = {"dense 3x3": ((2, 8, 10, 10), (4, 8, 3, 3), dict(padding=1)),
                  "pointwise": ((2, 8, 10, 10), (4, 8, 1, 1), {}),
                  "depthwise": ((2, 8, 10, 10), (8, 1, 3, 3), dict(padding=1, groups=8))}[case]
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(xs) * 1e37).astype(np.float32)  # finite data whose sums overflow float32
    w = (rng.standard_normal(ws) * 10).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = F.conv2d(cl.to_channels_last(x), w, **kw)
        exact = F.conv2d(x.astype(np.float64), w.astype(np.float64), **kw)
    want = TF.conv2d(_torch_cl(x), torch.from_numpy(w), **kw).numpy()
    assert cl.is_channels_last(got)
    assert not np.isnan(want).any() and not np.isnan(got).any()
    assert np.isinf(got).any()
    far = np.abs(exact) > 2 * float(np.finfo(np.float32).max)
    assert far.any() and np.isinf(got[far]).all() and np.isinf(want[far]).all()
    both = np.isfinite(got) & np.isfinite(want)
    np.testing.assert_allclose(got[both], want[both], rtol=1e-3)


def test_nan_input_propagates_as_torch(rng):
    x = rng.standard_normal((2, 8, 9, 9)).astype(np.float32)
    x[1, 3, 4, 5] = np.nan
    for w, kw in [(rng.standard_normal((6, 8, 3, 3)), dict(padding=1)), (rng.standard_normal((6, 8, 1, 1)), {}),
                  (rng.standard_normal((8, 1, 3, 3)), dict(padding=1, groups=8))]:
        w = w.astype(np.float32)
        got = F.conv2d(cl.to_channels_last(x), w, **kw)
        want = TF.conv2d(_torch_cl(x), torch.from_numpy(w), **kw).numpy()
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        assert np.isnan(got).any() and not np.isnan(got[0]).any()
        np.testing.assert_allclose(got[~np.isnan(got)], want[~np.isnan(want)], rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- ONNX channels-last mode


OUTPUTS = ("logits", "h", "d")


def _onnx_graph(dtype=np.float32):
    """Every channels-last path in one graph, a fused residual Add, asymmetric pads, a MaxPool, the fallbacks.

    x (n, 3, 12, 12) -> Conv 3x3/2 + BN + Relu -> a (16 @6x6)
    a -> Conv depthwise 3x3 + Clip(0, 6) -> Conv 1x1 -> Add(a) -> Relu -> d       (residual fused into the 1x1)
    d -> Conv 3x3 pads (0, 0, 1, 1) -> MaxPool 2 -> f (24 @4x4)
    f -> Conv multiplier (group 24 -> 48) + Conv grouped (group 4 -> 48) -> Add -> h   (the NCHW fallbacks)
    h -> GlobalAveragePool -> Flatten -> Gemm -> logits;   outputs: logits, h and d (channels-last inside)
    """
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(11)
    init = {}

    def const(name, shape, scale=0.3, positive=False):
        v = rng.random(shape) + 0.5 if positive else rng.standard_normal(shape) * scale
        init[name] = numpy_helper.from_array(np.asarray(v, dtype=dtype), name)
        return name

    node = helper.make_node
    nodes = [
        node("Conv", ["x", const("w0", (16, 3, 3, 3)), const("b0", (16,))], ["c0"], strides=[2, 2], pads=[1] * 4),
        node("BatchNormalization", ["c0", const("g", (16,), positive=True), const("be", (16,)),
                                    const("m", (16,)), const("v", (16,), positive=True)], ["bn"]),
        node("Relu", ["bn"], ["a"]),
        node("Conv", ["a", const("w1", (16, 1, 3, 3)), const("b1", (16,))], ["c1"], group=16, pads=[1] * 4),
        node("Clip", ["c1", const("lo", (), 0), ""], ["c1c"]),
        node("Conv", ["c1c", const("w2", (16, 16, 1, 1))], ["c2"]),
        node("Add", ["c2", "a"], ["s"]),
        node("Relu", ["s"], ["d"]),
        node("Conv", ["d", const("w3", (24, 16, 3, 3)), const("b3", (24,))], ["e"], pads=[0, 0, 1, 1]),
        node("MaxPool", ["e"], ["f"], kernel_shape=[2, 2], strides=[1, 1]),
        node("Conv", ["f", const("w4", (48, 1, 3, 3))], ["g1"], group=24, pads=[1] * 4),
        node("Conv", ["f", const("w5", (48, 6, 1, 1)), const("b5", (48,))], ["g2"], group=4),
        node("Add", ["g1", "g2"], ["h"]),
        node("GlobalAveragePool", ["h"], ["p"]),
        node("Flatten", ["p"], ["q"]),
        node("Gemm", ["q", const("wf", (5, 48)), const("bf", (5,))], ["logits"], transB=1),
    ]
    init["lo"] = numpy_helper.from_array(np.asarray(0, dtype=dtype), "lo")
    elem = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    graph = helper.make_graph(nodes, "cl", [helper.make_tensor_value_info("x", elem, ["n", 3, 12, 12])],
                              [helper.make_tensor_value_info(name, elem, None) for name in OUTPUTS],
                              initializer=list(init.values()))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _run_all(model, xs):
    outs = []
    for x in xs:
        got = model.run(None, {"x": x})
        for v in got:
            assert isinstance(v, np.ndarray) and v.flags.c_contiguous and not cl.is_channels_last(v)
        outs.append(got)
    return outs


def test_onnx_channels_last_mode_agrees_with_nchw_mode_and_onnxruntime():
    pytest.importorskip("onnx")
    import convlayers.onnx as co

    proto = _onnx_graph()
    rng = np.random.default_rng(12)
    # batch 1, 3, then 1 again (the prepared per-shape plans run from the second call of a shape on)
    xs = [rng.standard_normal((b, 3, 12, 12)).astype(np.float32) for b in (1, 3)]
    xs = xs + xs + [xs[0]]
    auto, on, off = co.load(proto), co.load(proto, channels_last=True), co.load(proto, channels_last=False)
    assert auto.channels_last and on.channels_last and not off.channels_last
    assert any("Add" in n.attrs.get("_fused", []) for n in on.nodes)  # the residual Add did fuse
    with _spy("plan") as planned:
        got_on = _run_all(on, xs)
    assert sum(planned) >= 2, planned  # the channels-last convolutions ran (first calls and per-shape plans)
    with _spy("plan") as planned:
        got_off = _run_all(off, xs)
    assert planned == []  # and nothing is channels-last without the mode
    got_auto = _run_all(auto, xs)
    for x, a, b, c in zip(xs, got_on, got_off, got_auto):
        for name, u, v, t in zip(OUTPUTS, a, b, c):
            assert u.shape == v.shape, name
            np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-5, err_msg=name)
            np.testing.assert_array_equal(u, t, err_msg=name)  # auto is the channels-last mode here
    for i in (2, 3, 4):  # the same input again gives the same numbers (plans, reused buffers)
        for u, v in zip(got_on[i], got_on[i - 2 if i < 4 else 0]):
            np.testing.assert_array_equal(u, v)
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for x, a in zip(xs[:2], got_on[:2]):
        for name, u, v in zip(OUTPUTS, a, sess.run(None, {"x": x})):
            np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-5, err_msg=name)


def test_onnx_float64_depthwise_graph_runs_in_channels_last_mode():
    pytest.importorskip("onnx")
    import convlayers.onnx as co

    proto = _onnx_graph(np.float64)
    x = np.random.default_rng(13).standard_normal((2, 3, 12, 12))
    on, off = co.load(proto), co.load(proto, channels_last=False)
    assert on.channels_last
    for u, v in zip(on.run(None, {"x": x}), off.run(None, {"x": x})):
        assert u.flags.c_contiguous
        np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-12)


def test_onnx_float16_conv_model_runs_in_the_default_mode():
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    import convlayers.onnx as co

    w = np.random.default_rng(1).standard_normal((8, 64, 3, 3)).astype(np.float16)
    g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1] * 4)], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 64, 16, 17])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT16, None)],
                          initializer=[numpy_helper.from_array(w, "w")])
    proto = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    x = np.random.default_rng(2).standard_normal((1, 64, 16, 17)).astype(np.float16)
    want = co.load(proto, channels_last=False)(x)
    model = co.load(proto)
    assert model.channels_last
    got = model(x)
    # both compute in float32 (the NCHW path by Winograd, channels-last by the product), rounded to float16
    assert got.dtype == np.float16 and got.shape == want.shape
    ref = TF.conv2d(torch.from_numpy(x.astype(np.float32)), torch.from_numpy(w.astype(np.float32)), padding=1)
    np.testing.assert_allclose(got.astype(np.float32), ref.numpy(), rtol=2e-3, atol=2e-2)
    np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), rtol=2e-3, atol=2e-2)


def test_onnx_channels_last_feeds_and_two_threads():
    pytest.importorskip("onnx")
    import convlayers.onnx as co

    proto = _onnx_graph()
    rng = np.random.default_rng(14)
    xs = [[rng.standard_normal((b, 3, 12, 12)).astype(np.float32) for b in (1, 2)] for _ in range(2)]
    ref = co.load(proto, channels_last=False)
    want = [[ref.run(None, {"x": x}) for x in t] for t in xs]
    for mode in (True, False):  # a channels-last feed: the same outputs, C-ordered
        m = co.load(proto, channels_last=mode)
        for got, w in zip(_run_all(m, [cl.to_channels_last(x) for x in xs[0]]), want[0]):
            for u, v in zip(got, w):
                np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-5)
    model = co.load(proto)
    barrier, errors = threading.Barrier(2), []

    def work(t):
        try:
            barrier.wait()
            for _ in range(10):
                for x, w in zip(xs[t], want[t]):
                    for u, v in zip(model.run(None, {"x": x}), w):
                        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-5)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads) and not errors, errors


def _single_conv_model(w_shape, group):
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).standard_normal(w_shape).astype(np.float32)
    g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], group=group, pads=[1] * 4)], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8, 6, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          initializer=[numpy_helper.from_array(w, "w")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("w_shape, group, auto", [
    ((8, 1, 3, 3), 8, True),     # depthwise
    ((12, 8, 3, 3), 1, True),    # dense: load() now picks channels-last for every graph it has a path for
    ((12, 4, 3, 3), 2, False),   # grouped only: no channels-last path
    ((16, 1, 3, 3), 8, False),   # channel multiplier only: no channels-last path
])
def test_onnx_auto_mode_and_c_ordered_outputs(w_shape, group, auto):
    pytest.importorskip("onnx")
    import convlayers.onnx as co

    proto = _single_conv_model(w_shape, group)
    model = co.load(proto)
    assert model.channels_last is auto
    assert co.load(proto, channels_last=True).channels_last and not co.load(proto, channels_last=False).channels_last
    x = np.random.default_rng(1).standard_normal((2, 8, 6, 6)).astype(np.float32)
    w = np.random.default_rng(0).standard_normal(w_shape).astype(np.float32)
    want = TF.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=1, groups=group).numpy()
    for mode in (None, True, False):
        m = co.load(proto, channels_last=mode)
        with _spy("plan") as planned:
            for _ in range(2):
                y = m(x)
                assert y.flags.c_contiguous and y.shape == want.shape
                assert_close(y, want)
        # channels-last convolutions ran exactly when the mode is on and the graph has a path for them
        assert (any(planned) if m.channels_last and auto else not planned), (mode, planned)


# --------------------------------------------------------------------------- threads


THREAD_CASES = [  # (x shape, w shape, kwargs, dtype)
    ((2, 16, 11, 11), (16, 1, 3, 3), dict(padding=1, groups=16), np.float32),
    ((2, 17, 10, 9), (17, 1, 5, 5), dict(padding=2, stride=2, groups=17), np.float32),
    ((2, 16, 11, 11), (40, 16, 1, 1), {}, np.float32),
    ((2, 16, 11, 11), (33, 16, 3, 3), dict(padding=1), np.float32),
    ((2, 8, 12, 12), (12, 8, 3, 3), dict(padding=2, dilation=(1, 2)), np.float32),
    ((2, 16, 11, 11), (40, 16, 1, 1), dict(stride=2), np.float64),
    ((2, 8, 11, 11), (12, 8, 3, 3), dict(padding=1), np.float64),
    ((2, 8, 11, 11), (12, 4, 3, 3), dict(padding=1, groups=2), np.float32),
]


def test_two_threads_at_once_give_the_serial_results(monkeypatch):
    # every kernel's parallel build, however small the work, so both threads launch parallel regions at once
    monkeypatch.setattr(_kernels.KernelPair, "for_work", lambda self, work, minimum=0: self)
    rng = np.random.default_rng(5)

    def cases():  # each thread its own data of the same shapes: a buffer shared between threads would show
        return [(cl.to_channels_last(rng.standard_normal(xs).astype(dt)), rng.standard_normal(ws).astype(dt), kw)
                for xs, ws, kw, dt in THREAD_CASES]

    per_thread = [cases(), cases()]
    serial = [[F.conv2d(x, w, **kw) for x, w, kw in c] for c in per_thread]
    for (x, w, kw), s in zip(per_thread[0], serial[0]):
        assert_close(s, TF.conv2d(_torch_cl(x), torch.from_numpy(w), **kw).numpy())
    barrier = threading.Barrier(2)
    errors = []

    def work(t, order):
        try:
            barrier.wait()
            for _ in range(20):
                for i in order:
                    x, w, kw = per_thread[t][i]
                    got = F.conv2d(x, w, **kw)
                    if not cl.is_channels_last(got):
                        raise AssertionError(f"case {i}: result not channels-last")
                    if x.dtype == np.float32:
                        np.testing.assert_array_equal(got, serial[t][i], err_msg=f"case {i}")
                    else:
                        np.testing.assert_allclose(got, serial[t][i], rtol=1e-13, atol=1e-13, err_msg=f"case {i}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    order = list(range(len(THREAD_CASES)))
    threads = [threading.Thread(target=work, args=(0, order)), threading.Thread(target=work, args=(1, order))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors


# --------------------------------------------------------------------------- layout helpers and bad input


@pytest.mark.parametrize("shape", [(3, 4, 5), (4, 5), (1, 2, 3, 4, 5), ()])
def test_to_channels_last_needs_4d(shape):
    with pytest.raises(ValueError, match=re.escape(str(shape))):
        cl.to_channels_last(np.zeros(shape))


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 64, 16, 17), (3, 1, 4, 4), (2, 5, 1, 1), (0, 3, 4, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.bool_])
def test_to_and_from_channels_last_keep_values_and_match_torch_strides(shape, dtype):
    # (1, 64, 16, 17) is above the blocked-copy threshold; the rest take NumPy's copy
    x = (np.random.default_rng(0).standard_normal(shape) * 10).astype(dtype)
    y = cl.to_channels_last(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    np.testing.assert_array_equal(y, x)
    assert y.transpose(0, 2, 3, 1).flags.c_contiguous
    if x.size and x.dtype != np.bool_:
        t = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
        # the same strides along every axis longer than 1 (a length-1 axis's stride is arbitrary)
        assert [s for s, d in zip(y.strides, shape) if d > 1] == \
            [s * x.itemsize for s, d in zip(t.stride(), shape) if d > 1]
    assert cl.is_channels_last(y) == (x.size > 0 and shape[1] > 1 and shape[2] * shape[3] > 1)
    assert not cl.is_channels_last(x)
    back = cl.from_channels_last(y)
    assert back.flags.c_contiguous
    np.testing.assert_array_equal(back, x)
    # a non-contiguous input (every other column) converts too
    z = cl.to_channels_last(x[..., ::2])
    np.testing.assert_array_equal(z, x[..., ::2])
    assert z.transpose(0, 2, 3, 1).flags.c_contiguous


@pytest.mark.parametrize("dtype", [np.float16, ">f4", ">f8", np.longdouble])
@pytest.mark.parametrize("op", ["to", "from"])
def test_layout_conversions_take_every_dtype_at_every_size(op, dtype):
    x = np.random.default_rng(0).standard_normal((1, 64, 16, 17)).astype(dtype)  # 17408 elements
    small = x[:, :, :4, :4]
    if op == "to":
        np.testing.assert_array_equal(cl.to_channels_last(small), small)  # NumPy's copy: fine
        y = cl.to_channels_last(x)
    else:
        np.testing.assert_array_equal(cl.from_channels_last(cl.to_channels_last(small)), small)
        y = cl.from_channels_last(np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2))
    assert y.dtype == x.dtype
    np.testing.assert_array_equal(y, x)


def test_is_channels_last_rejects_what_is_not_a_channels_last_array():
    y = cl.to_channels_last(np.zeros((1, 3, 4, 4)))
    assert cl.is_channels_last(y)
    assert not cl.is_channels_last(y.tolist())
    assert not cl.is_channels_last(torch.zeros(1, 3, 4, 4).contiguous(memory_format=torch.channels_last))
    assert not cl.is_channels_last(np.zeros((3, 4, 4)))
    assert not cl.is_channels_last(y[:, :, ::2])        # strided view: neither layout
    assert not cl.is_channels_last(y.transpose(0, 1, 3, 2))


def test_bad_conv_arguments_on_channels_last_input_are_the_same_named_errors():
    x = cl.to_channels_last(np.zeros((1, 4, 8, 8), np.float32))
    with pytest.raises(ValueError, match="channels"):
        F.conv2d(x, np.zeros((6, 3, 3, 3), np.float32))
    with pytest.raises(ValueError, match="kernel size"):
        F.conv2d(x, np.zeros((6, 4, 9, 9), np.float32))
    with pytest.raises(ValueError, match="scale and shift"):
        conv2d_affine(x, np.zeros((6, 4, 1, 1), np.float32), None, 1, 0, 1, 1, "zeros", np.ones(5), np.zeros(6))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 9), h=st.integers(1, 12), w=st.integers(1, 12), pt=st.integers(0, 3),
       pl=st.integers(0, 3), extra=st.tuples(st.integers(-1, 3), st.integers(-1, 3)), layout=st.sampled_from(["nchw", "cl"]),
       build=st.sampled_from(["parallel", "serial"]), seed=st.integers(0, 2**31 - 1))
def test_padding_into_channels_last_from_either_layout(n, c, h, w, pt, pl, extra, layout, build, seed):
    # pad_into from an NCHW input's transposed view or a channels-last one; it writes every element of the
    # buffer, which may end before the input does (the last window's reach)
    from convlayers._kernels import conv_nhwc
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    hp, wp = max(1, pt + h + extra[0]), max(1, pl + w + extra[1])
    want = np.zeros((n, hp + h + 8, wp + w + 8, c), np.float32)
    want[:, pt:pt + h, pl:pl + w] = x.transpose(0, 2, 3, 1)
    want = want[:, :hp, :wp]
    got = np.full((n, hp, wp, c), np.nan, np.float32)
    src = x if layout == "nchw" else cl.to_channels_last(x)
    getattr(conv_nhwc.pad_into, build)(src.transpose(0, 2, 3, 1), pt, pl, got)
    np.testing.assert_array_equal(got, want)

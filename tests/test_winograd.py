"""The Winograd F(4×4, 3×3) path of conv2d (functional._winograd) against PyTorch, and when it is used."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from conftest import assert_close
from hypothesis import given, settings
from hypothesis import strategies as st

import convlayers.functional as F
from convlayers.autograd import Tensor
from convlayers.functional import _winograd
from convlayers.functional.conv import conv2d_affine


@contextlib.contextmanager
def _thresholds(**values):
    """``_winograd``'s size thresholds set for the block (hypothesis tests cannot take function-scoped
    fixtures such as ``monkeypatch``)."""
    old = {name: getattr(_winograd, name) for name in values}
    for name, value in values.items():
        setattr(_winograd, name, value)
    try:
        yield
    finally:
        for name, value in old.items():
            setattr(_winograd, name, value)


@pytest.fixture
def always(monkeypatch):
    """Winograd for every 3×3 stride-1 convolution it can take, however narrow its products."""
    monkeypatch.setattr(_winograd, "_MIN_TILES", 0)
    monkeypatch.setattr(_winograd, "_MIN_CHANNELS", 1)
    monkeypatch.setattr(_winograd, "_MIN_SIDE", 1)


def _torch_conv(x, w, pads):
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[1]), (pads[2], pads[3])))
    return TF.conv2d(torch.from_numpy(xp), torch.from_numpy(w)).numpy()


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3), cin=st.integers(1, 20), cout=st.integers(1, 20), h=st.integers(1, 19),
       w=st.integers(1, 19), pads=st.tuples(*[st.integers(0, 2)] * 4), double=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_matches_torch_on_a_grid(n, cin, cout, h, w, pads, double, seed):
    # every tile geometry: outputs not a multiple of 4, 1-wide outputs, asymmetric padding, one channel
    rng = np.random.default_rng(seed)
    dtype = np.float64 if double else np.float32
    x = rng.standard_normal((n, cin, h, w)).astype(dtype)
    wt = rng.standard_normal((cout, cin, 3, 3)).astype(dtype)
    ho, wo = h + pads[0] + pads[1] - 2, w + pads[2] + pads[3] - 2
    with _thresholds(_MIN_TILES=0, _MIN_CHANNELS=1, _MIN_SIDE=1):
        got = _winograd.forward(x, wt, pads)
    if ho <= 0 or wo <= 0:
        assert got is None
        return
    assert got is not None and got.dtype == dtype
    assert_close(got, _torch_conv(x, wt, pads))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(8, 64, 56, 56, 64), (1, 64, 56, 56, 32), (8, 256, 14, 14, 256),
                                   (2, 16, 30, 31, 24)])
def test_conv2d_takes_it_at_network_sizes_and_agrees(shape, dtype, rng):
    n, cin, h, w, cout = shape
    x = rng.standard_normal((n, cin, h, w)).astype(dtype)
    wt = (rng.standard_normal((cout, cin, 3, 3)) / np.sqrt(9 * cin)).astype(dtype)
    assert _winograd.applies(x.shape, wt.shape, (1, 1), (1, 1), 1)
    assert _winograd.forward(x, wt, (1, 1, 1, 1)) is not None  # the default thresholds take these
    b = rng.standard_normal(cout).astype(dtype)
    expected = TF.conv2d(torch.from_numpy(x), torch.from_numpy(wt), torch.from_numpy(b), 1, 1).numpy()
    assert_close(F.conv2d(x, wt, b, 1, 1), expected)


@pytest.mark.parametrize("kwargs", [dict(stride=2), dict(dilation=2), dict(groups=2)])
def test_other_3x3_convolutions_are_not_taken(kwargs):
    s, d, g = kwargs.get("stride", 1), kwargs.get("dilation", 1), kwargs.get("groups", 1)
    assert not _winograd.applies((8, 64, 56, 56), (64, 64 // g, 3, 3), (s, s), (d, d), g)
    assert not _winograd.applies((8, 64, 56, 56), (64, 64, 5, 5), (1, 1), (1, 1), 1)
    assert not _winograd.applies((8, 8, 56, 56), (64, 8, 3, 3), (1, 1), (1, 1), 1)  # few input channels


def test_small_images_go_to_im2col(rng):
    x = rng.standard_normal((64, 96, 4, 4)).astype(np.float32)
    assert _winograd.forward(x, np.ones((192, 96, 3, 3), np.float32), (1, 1, 1, 1)) is None
    assert _winograd.forward(x[:, :, :, :3].repeat(3, axis=2), np.ones((192, 96, 3, 3), np.float32),
                             (1, 1, 1, 1)) is None  # 12x3: too narrow


def test_narrow_products_go_to_im2col(rng):
    # 512 channels at 7x7 are 4 tiles per sample: measured slower than im2col, so forward declines
    x = rng.standard_normal((8, 512, 7, 7)).astype(np.float32)
    assert _winograd.forward(x, np.ones((512, 512, 3, 3), np.float32), (1, 1, 1, 1)) is None


@pytest.mark.parametrize("lo, hi", [(0.0, np.inf), (0.0, 6.0), (-np.inf, np.inf)])
def test_fused_epilogue(lo, hi, rng, always):
    x = rng.standard_normal((2, 16, 13, 17)).astype(np.float32)
    wt = rng.standard_normal((24, 16, 3, 3)).astype(np.float32)
    scale, shift = rng.standard_normal(24).astype(np.float32), rng.standard_normal(24).astype(np.float32)
    got = conv2d_affine(x, wt, None, 1, 1, 1, 1, "zeros", scale, shift, lo, hi)
    y = TF.conv2d(torch.from_numpy(x), torch.from_numpy(wt), None, 1, 1)
    expected = torch.clamp(y * torch.from_numpy(scale)[:, None, None] + torch.from_numpy(shift)[:, None, None],
                           lo, hi).numpy()
    assert _winograd.forward(x, wt, (1, 1, 1, 1), (scale, shift, lo, hi)) is not None
    assert_close(got, expected)


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("where", ["input", "weight"])
def test_non_finite_values_land_where_torch_puts_them(bad, where, rng, always):
    # a transform mixes a whole 6x6 patch, so a non-finite value sends the call to im2col
    x = rng.standard_normal((2, 16, 12, 12)).astype(np.float32)
    wt = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    if where == "input":
        x[0, 3, 5, 6] = bad
    else:
        wt[0, 3, 1, 2] = bad
    assert _winograd.forward(x, wt, (1, 1, 1, 1)) is None
    expected = TF.conv2d(torch.from_numpy(x), torch.from_numpy(wt), None, 1, 1).numpy()
    got = F.conv2d(x, wt, None, 1, 1)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(expected))
    finite = np.isfinite(expected)
    assert_close(got[finite], expected[finite])


def test_float32_overflow_becomes_torchs_infinities(always):
    x = np.full((1, 16, 8, 8), 3e37, np.float32)
    x[0, :, :, 4:] = -3e37
    wt = np.ones((16, 16, 3, 3), np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        got = F.conv2d(x, wt, None, 1, 1)
        expected = TF.conv2d(torch.from_numpy(x), torch.from_numpy(wt), None, 1, 1).numpy()
    np.testing.assert_array_equal(got, expected)


def test_input_gradient_goes_through_it_and_matches_torch(rng, always):
    # at stride 1 the input gradient is itself a 3x3 stride-1 convolution
    x = rng.standard_normal((2, 16, 15, 15))
    wt = rng.standard_normal((24, 16, 3, 3))
    go = rng.standard_normal((2, 24, 15, 15))
    xt, wtt = Tensor(x, requires_grad=True), Tensor(wt, requires_grad=True)
    F.conv2d(xt, wtt, None, 1, 1).backward(go)
    xr, wr = torch.tensor(x, requires_grad=True), torch.tensor(wt, requires_grad=True)
    TF.conv2d(xr, wr, None, 1, 1).backward(torch.tensor(go))
    assert_close(xt.grad, xr.grad.numpy())
    assert_close(wtt.grad, wr.grad.numpy())


def test_weight_transform_is_exact_for_a_delta_filter():
    # G e_ij G^T for a unit filter: the outer product of G's columns i and j
    w = np.zeros((1, 1, 3, 3))
    w[0, 0, 2, 1] = 1.0
    u = _winograd.weight_transform(w).reshape(6, 6)
    np.testing.assert_allclose(u, np.outer(_winograd._G[:, 2], _winograd._G[:, 1]), rtol=1e-15)


def test_one_and_two_threads_both_agree_with_torch(rng):
    # two workers split the samples (or a sample's tile rows); one thread takes budget-sized blocks
    import numba

    x = rng.standard_normal((3, 32, 40, 40)).astype(np.float32)
    wt = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    two = _winograd.forward(x, wt, (1, 1, 1, 1))
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        one = _winograd.forward(x, wt, (1, 1, 1, 1))
    finally:
        numba.set_num_threads(before)
    assert two is not None and one is not None
    expected = _torch_conv(x, wt, (1, 1, 1, 1))
    assert_close(one, expected)
    assert_close(two, expected)
    assert_close(_winograd.forward(x[:1], wt, (1, 1, 1, 1)), expected[:1])  # tile rows split


# ---------------------------------------------------------------------------------- weight gradient


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3), cin=st.integers(1, 12), cout=st.integers(1, 12), h=st.integers(3, 19),
       w=st.integers(3, 19), pads=st.tuples(*[st.integers(0, 2)] * 4), double=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_weight_gradient_matches_torch_on_a_grid(n, cin, cout, h, w, pads, double, seed):
    rng = np.random.default_rng(seed)
    dtype = np.float64 if double else np.float32
    x = rng.standard_normal((n, cin, h, w)).astype(dtype)
    ho, wo = h + pads[0] + pads[1] - 2, w + pads[2] + pads[3] - 2
    go = rng.standard_normal((n, cout, ho, wo)).astype(dtype)
    with _thresholds(_GRAD_MIN_TILES=0, _GRAD_MIN_SIDE=1, _MIN_CHANNELS=1):
        got = _winograd.weight_grad(x, go, pads)
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[1]), (pads[2], pads[3])))
    expected = torch.nn.grad.conv2d_weight(torch.from_numpy(xp), (cout, cin, 3, 3), torch.from_numpy(go)).numpy()
    assert got is not None and got.dtype == dtype
    assert_close(got, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_backward_takes_it_at_network_sizes(dtype, rng):
    x = rng.standard_normal((8, 32, 28, 28)).astype(dtype)
    wt = (rng.standard_normal((48, 32, 3, 3)) / 17).astype(dtype)
    go = rng.standard_normal((8, 48, 28, 28)).astype(dtype)
    assert _winograd.weight_grad(x, go, (1, 1, 1, 1)) is not None  # the default thresholds take it
    gx, gw, gb = F.conv2d_backward(go, x, wt, padding=1)
    xr, wr = torch.tensor(x, requires_grad=True), torch.tensor(wt, requires_grad=True)
    TF.conv2d(xr, wr, None, 1, 1).backward(torch.from_numpy(go))
    assert_close(gw, wr.grad.numpy())
    assert_close(gx, xr.grad.numpy())


def test_small_weight_gradients_keep_im2col(rng):
    x, go = rng.standard_normal((2, 64, 12, 12)), rng.standard_normal((2, 64, 12, 12))
    assert _winograd.weight_grad(x, go, (1, 1, 1, 1)) is None  # 18 tiles
    x, go = rng.standard_normal((64, 48, 8, 8)), rng.standard_normal((64, 96, 8, 8))
    assert _winograd.weight_grad(x, go, (1, 1, 1, 1)) is None  # 8x8 outputs


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_weight_gradient_with_non_finite_values_is_torchs(bad, rng):
    x = rng.standard_normal((8, 16, 24, 24)).astype(np.float32)
    go = rng.standard_normal((8, 16, 24, 24)).astype(np.float32)
    x[1, 2, 5, 7] = bad
    assert _winograd.weight_grad(x, go, (1, 1, 1, 1)) is None
    _, gw, _ = F.conv2d_backward(go, x, np.ones((16, 16, 3, 3), np.float32), padding=1)
    expected = torch.nn.grad.conv2d_weight(torch.from_numpy(x), (16, 16, 3, 3), torch.from_numpy(go), 1, 1).numpy()
    np.testing.assert_array_equal(np.isnan(gw), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(gw), np.isinf(expected))
    finite = np.isfinite(expected)
    assert_close(gw[finite], expected[finite])


def test_packed_transform_is_kept_and_checked(rng):
    x = rng.standard_normal((1, 32, 28, 28)).astype(np.float32)
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    ones, zeros = np.ones(32, np.float32), np.zeros(32, np.float32)
    packed = {}
    first = conv2d_affine(x, w, None, 1, 1, 1, 1, "zeros", ones, zeros, packed=packed)
    assert packed["winograd"].shape == (36, 32, 32)
    np.testing.assert_array_equal(conv2d_affine(x, w, None, 1, 1, 1, 1, "zeros", ones, zeros, packed=packed), first)
    assert_close(first, _torch_conv(x, w, (1, 1, 1, 1)))
    # a kept transform of another shape or dtype is not used: it is made again for this weight
    w2 = rng.standard_normal((16, 32, 3, 3)).astype(np.float32)
    got = conv2d_affine(x, w2, None, 1, 1, 1, 1, "zeros", ones[:16], zeros[:16], packed=packed)
    assert_close(got, _torch_conv(x, w2, (1, 1, 1, 1)))
    assert packed["winograd"].shape == (36, 16, 32)

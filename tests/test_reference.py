"""The textbook loops: the seed's worked examples, and the compiled ops checked against them without PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close

import convlayers.functional as F
from convlayers import conv_output_size, reference

POOL_IMAGE = np.array([[1, 2, 5, 6], [3, 4, 7, 8], [9, 10, 13, 14], [11, 12, 15, 16]])


def test_convolve2d_worked_example():
    image = np.arange(1, 17).reshape(4, 4)
    kernel = np.array([[1, 0, -1]] * 3)
    np.testing.assert_array_equal(reference.convolve2d(image, kernel), [[-6, -6], [-6, -6]])


def test_convolve2d_padding_and_stride():
    image = np.arange(25.0).reshape(5, 5)
    kernel = np.ones((3, 3))
    same = reference.convolve2d(image, kernel, padding=1)
    assert same.shape == (5, 5)
    assert same[0, 0] == image[:2, :2].sum()
    assert reference.convolve2d(np.ones((8, 8)), kernel, stride=2).shape == (3, 3)


def test_pool_worked_examples(capsys):
    np.testing.assert_array_equal(reference.max_pool2d(POOL_IMAGE, verbose=True), [[4, 8], [12, 16]])
    trace = capsys.readouterr().out.splitlines()
    assert trace == ["window (0, 0): [1 2; 3 4] -> max 4", "window (0, 1): [5 6; 7 8] -> max 8",
                     "window (1, 0): [9 10; 11 12] -> max 12", "window (1, 1): [13 14; 15 16] -> max 16"]
    np.testing.assert_array_equal(reference.avg_pool2d(POOL_IMAGE, verbose=True), [[2.5, 6.5], [10.5, 14.5]])
    assert "-> mean 14.5" in capsys.readouterr().out


@pytest.mark.parametrize("args,expected", [
    ((32, 3, 1, 1), 32), ((5, 3), 3), ((7, 3), 5), ((5, 3, 1, 1), 5), ((8, 3, 2), 3),
    ((224, 7, 2, 3), 112), ((10, 3, 1, 2, 2), 10), ((5, 2, 2, 0, 1, True), 3), ((6, 3, 2, 1, 1, True), 4),
])
def test_conv_output_size(args, expected):
    assert conv_output_size(*args) == expected


def test_conv_output_size_matches_the_padded_loop():
    """The formula agrees with counting window positions one by one."""
    for n in range(1, 12):
        for k in range(1, 5):
            for s in range(1, 4):
                for p in range(0, 3):
                    for d in range(1, 3):
                        span = d * (k - 1) + 1
                        if n + 2 * p < span:
                            with pytest.raises(ValueError, match="larger than the padded input"):
                                conv_output_size(n, k, s, p, d)
                            continue
                        count = len(range(0, n + 2 * p - span + 1, s))
                        assert conv_output_size(n, k, s, p, d) == count


@pytest.mark.parametrize("bad,exc", [((0, 0), ValueError), ((5, 0), ValueError), ((5, 3, 0), ValueError),
                                     ((5, 3, 1, -1), ValueError), ((5, 3, 1, 0, 0), ValueError),
                                     ((5.0, 3), TypeError), ((5, "3"), TypeError)])
def test_conv_output_size_bad_input(bad, exc):
    with pytest.raises(exc):
        conv_output_size(*bad)


def _grid(seed, count):
    rng = np.random.default_rng(seed)
    for i in range(count):
        groups = int(rng.choice([1, 2, 3]))
        cin_g, cout_g = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        yield dict(x=rng.standard_normal((2, cin_g * groups, 7, 6)),
                   w=rng.standard_normal((cout_g * groups, cin_g, *k)),
                   b=rng.standard_normal(cout_g * groups) if i % 2 else None,
                   stride=(int(rng.integers(1, 3)), int(rng.integers(1, 3))),
                   padding=(int(rng.integers(0, 2)), int(rng.integers(0, 2))),
                   dilation=(int(rng.integers(1, 3)), 1), groups=groups,
                   dtype=[np.float32, np.float64][i % 2])


@pytest.mark.parametrize("case", list(_grid(0, 40)))
def test_compiled_conv2d_matches_loops(case):
    dt = case["dtype"]
    kw = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"], groups=case["groups"])
    b = None if case["b"] is None else case["b"].astype(dt)
    got = F.conv2d(case["x"].astype(dt), case["w"].astype(dt), b, **kw)
    want = reference.conv2d_nchw(case["x"].astype(dt), case["w"].astype(dt), b, **kw)
    assert_close(got, want, dtype=dt)


@pytest.mark.parametrize("case", list(_grid(1, 20)))
def test_compiled_conv_transpose2d_matches_loops(case):
    x, w = case["x"], np.swapaxes(case["w"], 0, 1)  # (C_in, C_out/g) for a transpose with groups=1
    if case["groups"] != 1:
        w = case["w"]
        x = np.random.default_rng(0).standard_normal((2, w.shape[0], 4, 3))
    kw = dict(stride=case["stride"], padding=(0, 0), dilation=case["dilation"], groups=case["groups"])
    got = F.conv_transpose2d(x, w, None, **kw)
    want = reference.conv_transpose2d_nchw(x, w, None, **kw)
    assert_close(got, want, dtype=np.float64)


@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("count_include_pad", [False, True])
@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1), (3, 1, 1), ((2, 3), (1, 2), (1, 0)), (3, 3, 1)])
def test_compiled_pools_match_loops(ceil_mode, count_include_pad, k, s, p):
    x = np.random.default_rng(5).standard_normal((2, 3, 7, 8))
    got, idx = F.max_pool2d(x, k, s, p, ceil_mode=ceil_mode, return_indices=True)
    want, want_idx = reference.max_pool2d_nchw(x, k, s, p, ceil_mode=ceil_mode)
    assert_close(got, want)
    np.testing.assert_array_equal(idx, want_idx)
    assert_close(F.max_pool2d(x, k, s, p, ceil_mode=ceil_mode), want)
    got = F.avg_pool2d(x, k, s, p, ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    assert_close(got, reference.avg_pool2d_nchw(x, k, s, p, ceil_mode, count_include_pad))


@pytest.mark.parametrize("size", [1, 2, 3, (4, 5), (7, 2)])
def test_compiled_adaptive_pools_match_loops(size):
    x = np.random.default_rng(6).standard_normal((2, 3, 7, 9))
    assert_close(F.adaptive_avg_pool2d(x, size), reference.adaptive_avg_pool2d_nchw(x, size))
    assert_close(F.adaptive_max_pool2d(x, size), reference.adaptive_max_pool2d_nchw(x, size))


def test_textbook_2d_matches_compiled():
    rng = np.random.default_rng(9)
    image, kernel = rng.standard_normal((9, 11)), rng.standard_normal((3, 2))
    got = F.conv2d(image[None, None], kernel[None, None], stride=2, padding=1)[0, 0]
    assert_close(got, reference.convolve2d(image, kernel, padding=1, stride=2))
    assert_close(F.max_pool2d(image[None], 2)[0], reference.max_pool2d(image[:8, :10]))
    assert_close(F.avg_pool2d(image[None], 3)[0], reference.avg_pool2d(image, 3))


# ----------------------------------------------------------------------------- the seed's code blocks

def test_seed_constants_are_the_worked_examples():
    np.testing.assert_array_equal(reference.SEED_IMAGE, [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12],
                                                         [13, 14, 15, 16]])
    np.testing.assert_array_equal(reference.POOL_IMAGE, POOL_IMAGE)
    np.testing.assert_array_equal(reference.convolve2d(reference.SEED_IMAGE, reference.SEED_KERNELS["vertical"]),
                                  [[-6, -6], [-6, -6]])
    assert list(reference.SEED_KERNELS) == ["vertical", "horizontal", "sobel_x", "sobel_y", "blur", "laplacian"]


def test_seed_filter_loop_number_for_number():
    """The seed's loop — scipy.signal.convolve2d(mode='same', boundary='symm') per filter — on the cat."""
    scipy_signal = pytest.importorskip("scipy.signal")
    from convlayers.filters import filter_bank
    from convlayers.io import chelsea

    cat = chelsea().astype(np.float64)
    ours = reference.seed_filter_bank(cat)
    fast = filter_bank(cat)
    for name, kernel in reference.SEED_KERNELS.items():
        seed = scipy_signal.convolve2d(cat, np.array(kernel), mode="same", boundary="symm")
        if name == "blur":  # 1/9 is inexact: summation order moves the last bit
            np.testing.assert_allclose(ours[name], seed, rtol=1e-13, atol=1e-12)
            np.testing.assert_allclose(fast[name], seed, rtol=1e-13, atol=1e-12)
        else:  # integer taps on integer pixels: exact in float64
            np.testing.assert_array_equal(ours[name], seed, err_msg=name)
            np.testing.assert_array_equal(fast[name], seed, err_msg=name)


@pytest.mark.parametrize("kshape", [(1, 1), (2, 2), (2, 3), (3, 3), (4, 5)])
def test_filter_same_symm_even_and_odd_kernels(kshape):
    scipy_signal = pytest.importorskip("scipy.signal")
    rng = np.random.default_rng(kshape[0] * 10 + kshape[1])
    x, k = rng.standard_normal((7, 9)), rng.standard_normal(kshape)
    np.testing.assert_allclose(reference.filter_same_symm(x, k),
                               scipy_signal.convolve2d(x, k, "same", "symm"), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="2-D"):
        reference.filter_same_symm(x[0], k)


@pytest.mark.parametrize("shape, padding", [((1, 1, 4, 4), 1), ((2, 3, 9, 10), 1), ((1, 2, 5, 13), 0),
                                            ((1, 4, 7, 7), 2)])
def test_winograd_textbook_equals_the_direct_sum(shape, padding):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(shape), rng.standard_normal((3, shape[1], 3, 3))
    np.testing.assert_allclose(reference.winograd_conv2d_3x3(x, w, padding),
                               reference.conv2d_nchw(x, w, padding=padding), rtol=1e-11, atol=1e-11)


def test_winograd_kernels_transform_as_the_textbook():
    # the compiled transforms, tile by tile, against the textbook's matrices (no shared code)
    from convlayers._kernels import winograd as wk
    from convlayers.functional import _winograd

    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 10, 9))
    th, tw = 3, 3  # 10x9 outputs at padding 1
    v = np.empty((36, 3, 2 * th * tw))
    wk.winograd_input(x, 0, 2, 0, th, tw, 1, 1, v)
    bt = reference.WINOGRAD_F43["BT"]
    xp = np.zeros((2, 3, 4 * th + 2, 4 * tw + 2))
    xp[:, :, 1:11, 1:10] = x
    for s in range(2):
        for ty in range(th):
            for tx in range(tw):
                d = xp[s, :, 4 * ty:4 * ty + 6, 4 * tx:4 * tx + 6]
                t = (s * th + ty) * tw + tx
                want = np.einsum("ai,cij,bj->abc", bt, d, bt).reshape(36, 3)
                np.testing.assert_allclose(v[:, :, t], want, rtol=1e-12, atol=1e-12)
    w = rng.standard_normal((4, 3, 3, 3))
    g = reference.WINOGRAD_F43["G"]
    np.testing.assert_allclose(_winograd.weight_transform(w),
                               np.einsum("ai,ocij,bj->aboc", g, w, g).reshape(36, 4, 3), rtol=1e-12, atol=1e-13)
    m = rng.standard_normal((36, 4, 2 * th * tw))
    out = np.empty((2, 4, 10, 9))
    none = np.empty(0)
    wk.winograd_output(m, 0, 2, 0, th, tw, out, none, none, 0.0, 0.0, False)
    at = reference.WINOGRAD_F43["AT"]
    for s in range(2):
        for ty in range(th):
            for tx in range(tw):
                t = (s * th + ty) * tw + tx
                y = np.einsum("ia,abo,jb->oij", at, m[:, :, t].reshape(6, 6, 4), at)
                rows, cols = min(4, 10 - 4 * ty), min(4, 9 - 4 * tx)
                np.testing.assert_allclose(out[s, :, 4 * ty:4 * ty + rows, 4 * tx:4 * tx + cols],
                                           y[:, :rows, :cols], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("x_shape, w_shape, padding, match", [
    ((1, 2, 6, 6), (3, 2, 5, 5), 1, "weight must be"),
    ((1, 2, 6, 6), (3, 4, 3, 3), 1, "weight must be"),
    ((2, 6, 6), (3, 2, 3, 3), 1, "x must be"),
    ((1, 2, 6, 6), (3, 2, 3, 3), -1, "padding"),
    ((1, 2, 6, 6), (3, 2, 3, 3), 1.5, "padding"),
    ((1, 2, 1, 6), (3, 2, 3, 3), 0, "smaller than"),
])
def test_winograd_textbook_bad_inputs(x_shape, w_shape, padding, match):
    with pytest.raises(ValueError, match=match):
        reference.winograd_conv2d_3x3(np.zeros(x_shape), np.zeros(w_shape), padding)

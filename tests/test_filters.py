"""convlayers.filters against scipy.signal: shapes, modes, boundaries, fill values, dtypes, methods."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

scipy_signal = pytest.importorskip("scipy.signal")

from convlayers import filters as F  # noqa: E402
from convlayers.filters import (FILTERS, SEED_FILTERS, apply, convolve2d, correlate2d,  # noqa: E402
                                filter_bank, gradient_magnitude)
from convlayers.io import chelsea  # noqa: E402

FUNCS = [(convolve2d, scipy_signal.convolve2d), (correlate2d, scipy_signal.correlate2d)]
MODES = ["full", "same", "valid"]
BOUNDARIES = ["fill", "wrap", "symm"]
IN_SHAPES = [(1, 1), (5, 7), (8, 4), (6, 6)]
# odd, even, rectangular, 1-D, larger-than-input kernels
K_SHAPES = [(1, 1), (3, 3), (2, 2), (2, 5), (4, 1), (1, 3), (7, 7), (9, 3)]
METHODS = ["direct", "fft", "separable"]


def _tol(ref, dtype):
    scale = 1.0 + float(np.abs(ref).max()) if ref.size else 1.0
    if np.dtype(dtype) in (np.float32, np.complex64):
        return dict(rtol=1e-5, atol=1e-5 * scale)
    return dict(rtol=1e-9, atol=1e-9 * scale)


def _rank1(rng, shape, dtype):
    u = rng.standard_normal(shape[0])
    v = rng.standard_normal(shape[1])
    return np.outer(u, v).astype(dtype)


def _grid_cases():
    for dtype in (np.float64, np.float32):
        for s, k in itertools.product(IN_SHAPES, K_SHAPES):
            yield dtype, s, k


@pytest.mark.parametrize("dtype,in_shape,k_shape", list(_grid_cases()))
def test_parity_grid(dtype, in_shape, k_shape):
    """Every mode x boundary x fillvalue x function x method against scipy."""
    rng = np.random.default_rng(hash((in_shape, k_shape)) % 2**32)
    a = rng.standard_normal(in_shape).astype(dtype)
    k_dense = rng.standard_normal(k_shape).astype(dtype)
    k_rank1 = _rank1(rng, k_shape, dtype)
    checked = 0
    for (ours, theirs), mode, boundary, fill in itertools.product(
            FUNCS, MODES, BOUNDARIES, [0, 2.5]):
        for k, methods in ((k_dense, ["auto", "direct", "fft"]), (k_rank1, ["auto", "separable"])):
            try:
                ref = theirs(a, k, mode=mode, boundary=boundary, fillvalue=fill)
            except ValueError:
                with pytest.raises(ValueError, match="valid"):
                    ours(a, k, mode=mode, boundary=boundary, fillvalue=fill)
                continue
            swapped = mode == "valid" and not (in_shape[0] >= k_shape[0]
                                               and in_shape[1] >= k_shape[1])
            if swapped:  # scipy swaps: in1 becomes the kernel, and it is not rank 1
                methods = [m for m in methods if m != "separable"]
            for method in methods:
                got = ours(a, k, mode=mode, boundary=boundary, fillvalue=fill, method=method)
                assert got.shape == ref.shape, (mode, boundary, method)
                assert got.dtype == ref.dtype, (mode, boundary, method)
                np.testing.assert_allclose(got, ref, **_tol(ref, dtype),
                                           err_msg=f"{ours.__name__} {mode} {boundary} "
                                                   f"fill={fill} {method}")
                checked += 1
    assert checked > 0


@pytest.mark.parametrize("func", FUNCS, ids=["convolve2d", "correlate2d"])
def test_valid_swaps_when_second_is_larger(func):
    ours, theirs = func
    a = np.arange(6.0).reshape(2, 3)
    b = np.arange(20.0).reshape(4, 5) ** 1.5
    np.testing.assert_allclose(ours(a, b, "valid"), theirs(a, b, "valid"), rtol=1e-12)
    with pytest.raises(ValueError, match="at least as large"):
        ours(np.ones((3, 5)), np.ones((4, 2)), "valid")


@pytest.mark.parametrize("d1,d2", [
    (np.uint8, np.uint8), (np.int16, np.uint8), (np.int32, np.float32), (np.int64, np.int64),
    (np.float32, np.float32), (np.float32, np.float64), (np.float32, np.int64),
    (np.uint64, np.uint64), (np.int8, np.int8), (bool, np.uint8), (np.float16, np.float32),
])
def test_dtype_rules_and_integer_wraparound(d1, d2):
    rng = np.random.default_rng(1)
    a = rng.integers(0, 120, (9, 11)).astype(d1)
    k = rng.integers(0, 5, (3, 4)).astype(d2)
    for ours, theirs in FUNCS:
        for boundary in BOUNDARIES:
            ref = theirs(a, k, "same", boundary)
            got = ours(a, k, "same", boundary)
            assert got.dtype == ref.dtype
            if ref.dtype.kind in "iu":
                np.testing.assert_array_equal(got, ref)  # uint8/int8 overflow wraps the same way
            else:
                np.testing.assert_allclose(got, ref, **_tol(ref, ref.dtype))


@pytest.mark.parametrize("dtype", [np.complex128, np.complex64])
def test_complex_conjugates_in_correlate(dtype):
    rng = np.random.default_rng(2)
    a = (rng.standard_normal((6, 5)) + 1j * rng.standard_normal((6, 5))).astype(dtype)
    k = (rng.standard_normal((3, 2)) + 1j * rng.standard_normal((3, 2))).astype(dtype)
    for (ours, theirs), mode, method in itertools.product(FUNCS, MODES, ["direct", "fft"]):
        ref = theirs(a, k, mode, "symm")
        got = ours(a, k, mode, "symm", method=method)
        assert got.dtype == ref.dtype
        np.testing.assert_allclose(got, ref, **_tol(ref, dtype))


def test_fillvalue_casting_like_scipy():
    a = np.arange(9, dtype=np.int64).reshape(3, 3)
    k = np.ones((2, 2), np.int64)
    np.testing.assert_array_equal(convolve2d(a, k, fillvalue=1.9),
                                  scipy_signal.convolve2d(a, k, fillvalue=1.9))  # truncates
    np.testing.assert_array_equal(convolve2d(a, k, fillvalue=np.array([3])),
                                  scipy_signal.convolve2d(a, k, fillvalue=np.array([3])))
    u = np.ones((2, 2), np.uint64)
    np.testing.assert_array_equal(convolve2d(u, u, fillvalue=2**64 - 1),
                                  scipy_signal.convolve2d(u, u, fillvalue=2**64 - 1))
    for bad in (256, -1, np.nan):
        with pytest.raises(ValueError, match="fillvalue"):
            convolve2d(a.astype(np.uint8), k.astype(np.uint8), fillvalue=bad)
    with pytest.raises(ValueError, match="fillvalue"):
        convolve2d(a.astype(float), k, fillvalue=1 + 0j)
    with pytest.raises(ValueError, match="fillvalue"):
        convolve2d(a, k, fillvalue=[1, 2])


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 9), w=st.integers(1, 9), kh=st.integers(1, 6), kw=st.integers(1, 6),
       mode=st.sampled_from(MODES), boundary=st.sampled_from(BOUNDARIES),
       fill=st.floats(-3, 3), seed=st.integers(0, 2**16))
def test_property_matches_scipy(h, w, kh, kw, mode, boundary, fill, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((h, w))
    k = rng.standard_normal((kh, kw))
    for ours, theirs in FUNCS:
        try:
            ref = theirs(a, k, mode=mode, boundary=boundary, fillvalue=fill)
        except ValueError:
            with pytest.raises(ValueError):
                ours(a, k, mode=mode, boundary=boundary, fillvalue=fill)
            continue
        np.testing.assert_allclose(ours(a, k, mode=mode, boundary=boundary, fillvalue=fill),
                                   ref, **_tol(ref, np.float64))


def test_auto_method_choice():
    r1 = np.outer(np.ones(7), np.arange(7.0))
    dense = np.random.default_rng(3).standard_normal((5, 5))
    assert F._choose_method((3, 3), F._rank1_factors(FILTERS["blur"]), False, 8) == "direct"
    assert F._choose_method((7, 7), F._rank1_factors(r1), False, 8) == "separable"
    assert F._rank1_factors(dense) is None
    assert F._choose_method((31, 31), None, False, 8) == "fft"
    assert F._choose_method((31, 31), None, True, 8) == "direct"
    assert F._choose_method((201, 201), F._rank1_factors(np.ones((201, 201))), False, 8) == "fft"


def test_large_kernels_all_methods_agree():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((40, 33))
    k = F.gaussian(25, 4.0)
    ref = scipy_signal.convolve2d(a, k, "same", "symm")
    for method in ["auto", "direct", "separable", "fft"]:
        np.testing.assert_allclose(convolve2d(a, k, "same", "symm", method=method), ref,
                                   rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("func", [convolve2d, correlate2d])
def test_bad_arguments(func):
    a, k = np.ones((4, 4)), np.ones((2, 2))
    with pytest.raises(ValueError, match="in1 must be a 2-D"):
        func(np.ones((2, 3, 3)), k)
    with pytest.raises(ValueError, match="in2 must be a 2-D"):
        func(a, np.ones(3))
    with pytest.raises(ValueError, match="mode"):
        func(a, k, mode="middle")
    with pytest.raises(ValueError, match="boundary"):
        func(a, k, boundary="reflect")
    with pytest.raises(ValueError, match="method"):
        func(a, k, method="winograd")
    with pytest.raises(ValueError, match="in2 must not be empty"):
        func(a, np.ones((0, 3)))
    with pytest.raises(ValueError, match="in1 must not be empty"):
        func(np.ones((3, 0)), k)
    with pytest.raises(TypeError, match="numeric"):
        func(np.array([["a", "b"]]), k)
    with pytest.raises(TypeError, match="not supported"):
        func(a.astype(bool), k.astype(bool))
    with pytest.raises(TypeError, match="not supported"):
        func(a.astype(np.longdouble), k)
    with pytest.raises(ValueError, match="separable"):
        func(a, np.eye(3), method="separable")


def test_aliases_accepted():
    a = np.arange(12.0).reshape(3, 4)
    k = np.array([[1.0, 2.0], [3.0, 4.0]])
    for ours, theirs in (("symmetric", "symm"), ("circular", "wrap"), ("pad", "fill")):
        np.testing.assert_allclose(convolve2d(a, k, "same", ours), convolve2d(a, k, "same", theirs))


# ----------------------------------------------------------------------------- filter bank

def test_seed_kernels_exact():
    """The six kernels literally as the seed writes them (the seed's Sobel signs, not OpenCV's)."""
    seed = {
        "vertical": [[1, 0, -1], [1, 0, -1], [1, 0, -1]],
        "horizontal": [[1, 1, 1], [0, 0, 0], [-1, -1, -1]],
        "sobel_x": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
        "sobel_y": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
        "blur": np.ones((3, 3)) / 9,
        "laplacian": [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]],
    }
    for name, k in seed.items():
        np.testing.assert_array_equal(FILTERS[name], k, err_msg=name)
        assert FILTERS[name].dtype == np.float64
    assert list(FILTERS)[:6] == list(seed)
    assert SEED_FILTERS == ("vertical", "horizontal", "sobel_x", "sobel_y", "blur", "laplacian")
    for name in ("gaussian", "box", "sharpen", "emboss", "prewitt_x", "prewitt_y", "scharr_x",
                 "scharr_y", "identity"):
        assert name in FILTERS
    with pytest.raises(ValueError):
        FILTERS["blur"][0, 0] = 1.0  # read-only


def test_gaussian_and_box():
    g = F.gaussian(7, 1.5)
    assert g.shape == (7, 7) and abs(g.sum() - 1) < 1e-12 and np.allclose(g, g.T)
    assert g[3, 3] == g.max()
    np.testing.assert_allclose(F.box(4), np.full((4, 4), 1 / 16))
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="size"):
            F.gaussian(bad, 1.0)
        with pytest.raises(ValueError, match="n must"):
            F.box(bad)
    with pytest.raises(ValueError, match="sigma"):
        F.gaussian(3, 0.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_seed_filters_on_bundled_cat(dtype):
    img = chelsea().astype(dtype)
    assert img.shape == (300, 451)
    bank = filter_bank(img)
    assert list(bank) == list(SEED_FILTERS)
    for name, resp in bank.items():
        ref = scipy_signal.convolve2d(img, FILTERS[name].astype(dtype), "same", "symm")
        assert resp.dtype == dtype
        np.testing.assert_allclose(resp, ref, **_tol(ref, dtype), err_msg=name)
    # an edge filter responds strongly somewhere; blur keeps the mean
    assert np.abs(bank["sobel_x"]).max() > 100
    assert abs(bank["blur"].mean() - img.mean()) < 1.0


def test_apply_uint8_and_colour():
    rgb = chelsea("RGB")[:40, :50]
    out = apply(rgb, "sobel_y")
    assert out.shape == rgb.shape and out.dtype == np.float64
    for c in range(3):
        ref = scipy_signal.convolve2d(rgb[:, :, c].astype(float), FILTERS["sobel_y"], "same", "symm")
        np.testing.assert_allclose(out[:, :, c], ref, rtol=1e-12, atol=1e-9)
    gray = rgb[:, :, 0]
    np.testing.assert_allclose(apply(gray, [[0, 0, 0], [0, 1, 0], [0, 0, 0]]), gray)
    assert apply(gray.astype(np.int16), "blur").dtype == np.float64
    assert apply(gray.astype(np.float32), "blur", mode="valid").shape == (38, 48)


def test_gradient_magnitude_and_bank_errors():
    img = np.zeros((6, 6)); img[:, 3:] = 1.0
    gm = gradient_magnitude(img)
    gx = scipy_signal.convolve2d(img, FILTERS["sobel_x"], "same", "symm")
    gy = scipy_signal.convolve2d(img, FILTERS["sobel_y"], "same", "symm")
    np.testing.assert_allclose(gm, np.sqrt(gx**2 + gy**2))
    with pytest.raises(ValueError, match="unknown filter 'nope'"):
        filter_bank(img, ["blur", "nope"])
    with pytest.raises(ValueError, match="unknown filter"):
        apply(img, "nope")
    with pytest.raises(ValueError, match="image must be"):
        apply(np.ones((2, 2, 2, 2)), "blur")
    with pytest.raises(TypeError, match="image must be a real"):
        apply(np.ones((4, 4), complex), "blur")
    with pytest.raises(ValueError, match="kernel must not be empty"):
        apply(img, np.ones((0, 0)))
    assert list(filter_bank(img, "blur, laplacian")) == ["blur", "laplacian"]


def test_zero_taps_propagate_inf_like_scipy():
    a = np.ones((6, 7))
    a[3, 3] = np.inf
    for name in ("vertical", "sobel_y", "laplacian"):
        np.testing.assert_array_equal(
            convolve2d(a, FILTERS[name], "same", "symm"),
            scipy_signal.convolve2d(a, FILTERS[name], "same", "symm"))


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("k_shape", [(3, 3), (2, 5)])
def test_direct_row_blocks_on_two_threads(boundary, k_shape):
    """Large enough to be split into row blocks across threads; every block must match."""
    import numba
    rng = np.random.default_rng(7)
    a = rng.standard_normal((301, 257)).astype(np.float32)
    k = rng.standard_normal(k_shape).astype(np.float32)
    old = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    try:
        for mode in MODES:
            ref = scipy_signal.convolve2d(a, k, mode, boundary, fillvalue=1.5)
            got = convolve2d(a, k, mode, boundary, fillvalue=1.5, method="direct")
            np.testing.assert_allclose(got, ref, **_tol(ref, np.float32))
    finally:
        numba.set_num_threads(old)

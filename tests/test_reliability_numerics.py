"""NaN/Inf and overflow as PyTorch computes them, and the raw errors of issue #10 turned into named ones.

Each case here failed before the fix: a NaN weight tap turned its whole
output channel NaN, float32 overflow gave NaN where PyTorch gives ±inf, and
the bad arguments below raised ZeroDivisionError / UFuncTypeError /
OverflowError or returned a wrong value.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import convlayers.functional as F
from convlayers.functional import conv as conv_module

torch = pytest.importorskip("torch")
TF = torch.nn.functional

# (input shape, weight shape, kwargs): the paths whose PyTorch float32 kernels skip the zero padding
NAN_PATHS = {
    "3x3 im2col": ((2, 8, 20, 20), (4, 8, 3, 3), dict(padding=1)),
    "3x3 im2col strided": ((2, 8, 40, 40), (4, 8, 3, 3), dict(padding=1, stride=2)),
    "5x5 dilated": ((2, 4, 24, 24), (3, 4, 5, 5), dict(padding=3, dilation=2)),
    "channels-last": ((8, 8, 6, 6), (4, 8, 3, 3), dict(padding=1)),
    "strided implicit": ((2, 16, 96, 96), (4, 16, 3, 3), dict(padding=1, stride=2)),  # NCHW -> implicit product
    "small-image implicit": ((32, 16, 8, 8), (4, 16, 3, 3), dict(padding=1)),
    "depthwise": ((2, 8, 10, 10), (8, 1, 3, 3), dict(padding=1, groups=8)),
    "depthwise strided": ((2, 8, 21, 21), (8, 1, 3, 3), dict(padding=1, groups=8, stride=2)),
}


def _torch(op, *arrays, **kw):
    return getattr(TF, op)(*[torch.from_numpy(a) for a in arrays], **kw).numpy()


@pytest.mark.parametrize("tap", [0, 4, 8, "all-of-one-filter"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("path", list(NAN_PATHS))
def test_nonfinite_weight_taps_reach_only_the_outputs_they_touch(path, bad, tap):
    xs, ws, kw = NAN_PATHS[path]
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(xs).astype(np.float32), rng.standard_normal(ws).astype(np.float32)
    if tap == "all-of-one-filter":
        w[1] = bad
    else:
        w[0, 0].flat[min(tap, w[0, 0].size - 1)] = bad
    want = _torch("conv2d", x, w, **kw)
    got = F.conv2d(x, w, **kw)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
    fin = np.isfinite(want)
    np.testing.assert_allclose(got[fin], want[fin], rtol=1e-4, atol=1e-4)


def test_nonfinite_tap_with_bias_and_fused_epilogue():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((2, 3, 9, 9)), rng.standard_normal((4, 3, 3, 3))
    w[2, 1, 0, 2] = np.nan
    b, scale, shift = rng.standard_normal(4), rng.random(4) + 0.5, rng.standard_normal(4)
    plain = F.conv2d(x, w, b, padding=1)
    assert 0 < np.isnan(plain[:, 2]).sum() < plain[:, 2].size  # not the whole channel
    fused = conv_module.conv2d_affine(x, w, b, 1, 1, 1, 1, "zeros", scale, shift, 0.0, 6.0)
    expect = np.clip(plain * scale[:, None, None] + shift[:, None, None], 0, 6)
    np.testing.assert_array_equal(np.isnan(fused), np.isnan(plain))
    np.testing.assert_allclose(fused[~np.isnan(fused)], expect[~np.isnan(expect)], rtol=1e-12)


def test_nan_input_still_propagates_and_finite_weights_take_the_fast_path(monkeypatch):
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((2, 3, 8, 8)), rng.standard_normal((4, 3, 3, 3))
    x[0, 1, 0, 0] = np.nan
    monkeypatch.setattr(conv_module, "_forward_nonfinite_weight", lambda *a: pytest.fail("slow path taken"))
    got = F.conv2d(x, w, padding=1)
    want = _torch("conv2d", x, w, padding=1)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))


# big enough (>= _threads._SPLIT_MIN_MACS) that the samples are split over the workers, each checking its own
POINTWISE_SPLIT = ((8, 64, 32, 32), (32, 64, 1, 1), {})


def test_nan_input_in_a_split_1x1_reaches_only_its_sample(monkeypatch):
    """The workers' own NaN checks find it (so the repairs look), and it stays where PyTorch puts it."""
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal(POINTWISE_SPLIT[0]).astype(np.float32), rng.standard_normal(POINTWISE_SPLIT[1])
    w = w.astype(np.float32)
    x[6, 3, 5, 7] = np.nan
    looked = []
    repair = conv_module._overflow_as_inf
    monkeypatch.setattr(conv_module, "_overflow_as_inf", lambda *a: looked.append(1) or repair(*a))
    got, want = F.conv2d(x, w), _torch("conv2d", x, w)
    assert looked == [1]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.isnan(got[6, :, 5, 7]).all() and np.isnan(got).sum() == 32
    np.testing.assert_allclose(got[~np.isnan(got)], want[~np.isnan(want)], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("path", list(NAN_PATHS) + ["1x1", "1x1 split", "grouped"])
def test_float32_overflow_gives_inf_never_nan(path):
    xs, ws, kw = {**NAN_PATHS, "1x1": ((2, 8, 10, 10), (4, 8, 1, 1), {}), "1x1 split": POINTWISE_SPLIT,
                  "grouped": ((2, 8, 10, 10), (4, 2, 3, 3), dict(padding=1, groups=4))}[path]
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(xs) * 1e37).astype(np.float32)  # finite data whose sums overflow float32
    w = (rng.standard_normal(ws) * 10).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NumPy's matmul reports the overflow as a RuntimeWarning
        got = F.conv2d(x, w, **kw)
        exact = F.conv2d(x.astype(np.float64), w.astype(np.float64), **kw)
    want = _torch("conv2d", x, w, **kw)
    assert not np.isnan(want).any() and not np.isnan(got).any()  # before the fix: up to 1137 NaNs here
    assert np.isinf(got).any()
    # beyond twice float32's range every order of summation overflows (to an order-dependent sign)
    far = np.abs(exact) > 2 * float(np.finfo(np.float32).max)
    assert np.isinf(got[far]).all() and np.isinf(want[far]).all()
    both = np.isfinite(got) & np.isfinite(want)
    np.testing.assert_allclose(got[both], want[both], rtol=1e-3)


# ---- raw errors and wrong values of issue #10, now PyTorch's answer or a named ValueError/TypeError -------------


def test_conv2d_with_no_input_channels_is_a_named_error():
    with pytest.raises(ValueError, match="input has no channels"):
        F.conv2d(np.ones((1, 0, 5, 5)), np.ones((4, 0, 3, 3)))
    with pytest.raises(ValueError, match="weight"):
        F.conv_transpose2d(np.ones((1, 0, 5, 5)), np.ones((0, 4, 3, 3)))
    with pytest.raises(RuntimeError):  # as torch refuses the transposed case
        TF.conv_transpose2d(torch.ones(1, 0, 5, 5), torch.ones(0, 4, 3, 3))


@pytest.mark.parametrize("eps", [0.0, -1e-5])
def test_batch_norm_training_needs_positive_eps(eps):
    x = np.random.default_rng(0).standard_normal((4, 3, 5, 5))
    rm, rv = np.zeros(3), np.ones(3)
    with pytest.raises(ValueError, match="eps"):
        F.batch_norm(x, rm, rv, training=True, eps=eps)
    with pytest.raises(ValueError, match="eps must be positive"):
        TF.batch_norm(torch.from_numpy(x), torch.zeros(3), torch.ones(3), training=True, eps=eps)
    assert (rm == 0).all() and (rv == 1).all()


@pytest.mark.parametrize("which", ["running_mean", "running_var"])
@pytest.mark.parametrize("bad", [np.ones(3, np.uint8), np.ones(3, np.int64), [1.0, 1.0, 1.0], "read-only"])
def test_batch_norm_running_stats_are_checked_before_either_is_updated(which, bad):
    x = np.random.default_rng(0).standard_normal((4, 3, 5, 5))
    stats = {"running_mean": np.zeros(3), "running_var": np.ones(3)}
    before = {k: v.copy() for k, v in stats.items()}
    if isinstance(bad, str):
        bad = np.ones(3)
        bad.flags.writeable = False
    stats[which] = bad
    with pytest.raises(TypeError, match=which):
        F.batch_norm(x, stats["running_mean"], stats["running_var"], training=True)
    for k in stats:
        if k != which:
            np.testing.assert_array_equal(stats[k], before[k])  # nothing half-updated


def test_avg_pool2d_divides_by_a_negative_divisor_override_as_torch():
    x = np.arange(32.0).reshape(1, 2, 4, 4)
    for d in (-2, -1, 3):
        np.testing.assert_allclose(F.avg_pool2d(x, 2, divisor_override=d),
                                   _torch("avg_pool2d", x, kernel_size=2, divisor_override=d))
        g = F.avg_pool2d_backward(np.ones((1, 2, 2, 2)), x.shape, 2, divisor_override=d)
        np.testing.assert_allclose(g, np.full(x.shape, 1.0 / d))
    with pytest.raises(ValueError, match="divisor_override"):
        F.avg_pool2d(x, 2, divisor_override=0)


@pytest.mark.parametrize("widths, size", [((3, -3), 2), ((-3, 3), 2), ((-2, -2), 3), ((1, -2), 3), ((-1, -1), 2),
                                          ((2, -1), 1), ((0, -1), 1)])
def test_constant_pad_crops_before_it_pads_as_torch(widths, size):
    x = np.arange(1.0, size + 1)
    try:
        want = TF.pad(torch.from_numpy(x), widths).numpy()
    except RuntimeError:
        with pytest.raises(ValueError, match="crops more than"):
            F.pad(x, widths)
        return
    np.testing.assert_array_equal(F.pad(x, widths), want)


@pytest.mark.parametrize("big", [2**63, 2**64 + 1, -(2**63) - 1])
@pytest.mark.parametrize("op, kw", [
    ("max_pool2d", "stride"), ("avg_pool2d", "stride"), ("conv2d", "stride"), ("conv2d", "dilation"),
    ("avg_pool2d", "padding"), ("max_pool2d", "dilation"),
])
def test_geometry_beyond_int64_is_a_named_error_not_a_wrapped_value(op, kw, big):
    x = np.ones((1, 1, 4, 4))
    args = (np.ones((1, 1, 2, 2)),) if op == "conv2d" else (2,)
    with pytest.raises(ValueError, match=kw):
        getattr(F, op)(x, *args, **{kw: big})


def test_int64_geometry_check_in_conv_output_size():
    from convlayers.sizes import conv_output_size

    with pytest.raises(ValueError, match="stride"):
        conv_output_size(4, 2, stride=2**63)
    assert conv_output_size(4, 2, stride=2**62) == 1


@pytest.mark.parametrize("op", ["adaptive_avg_pool2d", "adaptive_max_pool2d"])
@pytest.mark.parametrize("size", [0, (0, 2), (2, 0)])
def test_adaptive_pooling_to_size_zero_is_empty_as_torch(op, size):
    x = np.ones((1, 2, 3, 3))
    assert getattr(F, op)(x, size).shape == tuple(getattr(TF, op)(torch.from_numpy(x), size).shape)

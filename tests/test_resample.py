"""Resampling and reshaping ops vs PyTorch: OpInfo samples (forward, gradients, errors) and seeded grids."""

from __future__ import annotations

import numpy as np
import pytest

import convlayers as cl
import convlayers.functional as F
from _peer import op_error_cases, op_samples
from _peer_grad import check_grad
from conftest import assert_close

torch = pytest.importorskip("torch")
TF = torch.nn.functional

OPS = [("nn.functional.interpolate", v, F.interpolate)
       for v in ("nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area")] + [
    ("nn.functional.upsample_bilinear", "", F.upsample_bilinear),
    ("nn.functional.upsample_nearest", "", F.upsample_nearest),
    ("nn.functional.grid_sample", "", F.grid_sample),
    ("nn.functional.pixel_shuffle", "", F.pixel_shuffle),
    ("nn.functional.pixel_unshuffle", "", F.pixel_unshuffle),
    ("nn.functional.channel_shuffle", "", F.channel_shuffle),
    ("nn.functional.unfold", "", F.unfold),
]

FORWARD = [(c, fn) for name, v, fn in OPS for c in op_samples(name, v)]
ERRORS = [(e, fn) for name, v, fn in OPS for e in op_error_cases(name, v)]


def _ids(cases):
    return [f"{c}-{c.kwargs.get('mode', '')}" for c, *_ in cases]


@pytest.mark.parametrize("case,fn", FORWARD, ids=_ids(FORWARD))
def test_opinfo_forward(case, fn):
    case.check(fn)


@pytest.mark.parametrize("case,fn", FORWARD, ids=_ids(FORWARD))
def test_opinfo_grad(case, fn):
    check_grad(case, fn)


@pytest.mark.parametrize("case,fn", ERRORS, ids=[str(e) for e, _ in ERRORS])
def test_opinfo_errors(case, fn):
    case.check(fn)


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def _both(rng, ours, theirs, x, *more, dtype):
    """Forward and every input's gradient of ``ours`` vs ``theirs`` on the arrays ``x, *more``."""
    arrays = (x,) + more
    ts = [_t(a).requires_grad_() for a in arrays]
    want = theirs(*ts)
    go = rng.standard_normal(tuple(want.shape)).astype(dtype)
    grads = torch.autograd.grad(want, ts, _t(go))
    cs = [cl.Tensor(a, requires_grad=True) for a in arrays]
    got = ours(*cs)
    got.backward(go)
    assert_close(got.data, want.detach().numpy(), dtype=dtype)
    for c, g in zip(cs, grads):
        assert_close(c.grad, g.numpy(), dtype=dtype)


GRID = [
    ("bilinear", (2, 3, 17, 23), dict(size=(5, 7), antialias=True)),
    ("bilinear", (2, 3, 10, 10), dict(scale_factor=0.37, antialias=True, align_corners=True)),
    ("bicubic", (2, 3, 30, 20), dict(size=(11, 41), antialias=True)),
    ("bicubic", (2, 3, 12, 9), dict(scale_factor=(0.5, 0.61), antialias=True, recompute_scale_factor=True)),
    ("bilinear", (2, 3, 56, 56), dict(scale_factor=2)),
    ("bicubic", (1, 2, 7, 9), dict(scale_factor=1.7, align_corners=True)),
    ("trilinear", (1, 2, 3, 4, 5), dict(scale_factor=(2.5, 0.5, 1.3))),
    ("area", (2, 3, 11, 13), dict(size=(4, 6))),
    ("nearest", (2, 3, 5, 7), dict(scale_factor=(1.3, 2.7))),
    ("nearest-exact", (2, 3, 9), dict(size=4)),
    ("linear", (2, 3, 9), dict(scale_factor=0.75, recompute_scale_factor=False)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode,shape,kw", GRID, ids=[f"{m}-{s}-{sorted(k)}" for m, s, k in GRID])
def test_interpolate_grid(rng, dtype, mode, shape, kw):
    x = rng.standard_normal(shape).astype(dtype)
    _both(rng, lambda a: F.interpolate(a, mode=mode, **kw), lambda a: TF.interpolate(a, mode=mode, **kw), x,
          dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("nd", [4, 5])
def test_grid_sample_grid(rng, dtype, mode, padding_mode, align_corners, nd):
    if nd == 5 and mode == "bicubic":
        pytest.skip("bicubic is 4-D only (as in PyTorch)")
    x = rng.standard_normal((2, 3) + (4, 5, 6)[:nd - 2]).astype(dtype)
    grid = (rng.standard_normal((2,) + (3, 4, 2)[:nd - 2] + (nd - 2,)) * 1.3).astype(dtype)
    kw = dict(mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    _both(rng, lambda a, g: F.grid_sample(a, g, **kw), lambda a, g: TF.grid_sample(a, g, **kw), x, grid,
          dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [(2, 3, 5, 7), (2, 1, 1, 4), (1, 2, 3, 4, 5)])
@pytest.mark.parametrize("align_corners", [False, True])
def test_affine_grid_grid(rng, dtype, size, align_corners):
    d = len(size) - 2
    theta = rng.standard_normal((size[0], d, d + 1)).astype(dtype)
    _both(rng, lambda t: F.affine_grid(t, size, align_corners=align_corners),
          lambda t: TF.affine_grid(t, size, align_corners=align_corners), theta, dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=(2, 3), dilation=(2, 1), padding=1, stride=2),
                                dict(kernel_size=3, padding=(0, 2), stride=(1, 3))])
def test_fold_grid(rng, dtype, kw):
    x = rng.standard_normal((2, 3, 7, 8)).astype(dtype)
    cols = TF.unfold(_t(x), **kw).numpy()
    _both(rng, lambda c: F.fold(c, (7, 8), **kw), lambda c: TF.fold(c, (7, 8), **kw), cols, dtype=dtype)
    _both(rng, lambda c: F.fold(c, (7, 8), **kw), lambda c: TF.fold(c, (7, 8), **kw), cols[0], dtype=dtype)


@pytest.mark.parametrize("call,match", [
    (lambda: F.interpolate(np.zeros((1, 1, 4)), size=2, scale_factor=2), "only one"),
    (lambda: F.interpolate(np.zeros((1, 1, 4))), "either size or scale_factor"),
    (lambda: F.interpolate(np.zeros((1, 1, 4)), size=2, mode="bilinear"), "4D"),
    (lambda: F.interpolate(np.zeros((1, 1, 4)), size=2, align_corners=True), "align_corners"),
    (lambda: F.interpolate(np.zeros((1, 1, 4, 4)), size=2, mode="nearest", antialias=True), "Anti-alias"),
    (lambda: F.interpolate(np.zeros((1, 1, 4, 4)), size=(2, 2, 2)), "spatial dimensions"),
    (lambda: F.interpolate(np.zeros((1, 1, 4, 4)), size=0), "greater than 0"),
    (lambda: F.interpolate(np.zeros((1, 1, 4, 4)), size=2, mode="cubic"), "mode"),
    (lambda: F.interpolate(np.zeros((1, 1, 4, 4)), size=2, recompute_scale_factor=True), "recompute"),
    (lambda: F.grid_sample(np.zeros((1, 1, 4, 4)), np.zeros((1, 2, 2, 3))), "grid"),
    (lambda: F.grid_sample(np.zeros((1, 1, 2, 4, 4)), np.zeros((1, 2, 2, 2, 3)), mode="bicubic"), "bicubic"),
    (lambda: F.grid_sample(np.zeros((1, 1, 4, 4)), np.zeros((1, 2, 2, 2)), padding_mode="wrap"), "padding_mode"),
    (lambda: F.affine_grid(np.zeros((1, 2, 3)), (1, 1, 2, 2, 2)), "theta"),
    (lambda: F.pixel_shuffle(np.zeros((1, 3, 2, 2)), 2), "divisible"),
    (lambda: F.pixel_unshuffle(np.zeros((1, 3, 3, 2)), 2), "divisible"),
    (lambda: F.pixel_shuffle(np.zeros((4, 2)), 2), "at least 3"),
    (lambda: F.channel_shuffle(np.zeros((1, 5, 2)), 2), "divisible"),
    (lambda: F.unfold(np.zeros((1, 1, 2, 2)), 3), "at least one"),
    (lambda: F.fold(np.zeros((1, 4, 5)), (3, 3), 2), "sliding blocks"),
    (lambda: F.fold(np.zeros((1, 5, 4)), (3, 3), 2), "divisible"),
])
def test_bad_arguments(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()

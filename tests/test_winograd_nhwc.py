"""The channels-last fused Winograd plan (functional._winograd_nhwc) against PyTorch, and when it is used."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from conftest import assert_close
from hypothesis import given, settings
from hypothesis import strategies as st

import convlayers.functional as F
from convlayers.benchmark import limit_threads
from convlayers.functional import _conv_channels_last as cl
from convlayers.functional import _winograd_nhwc as wn


def _torch(x, w, pads, scale, shift, lo, hi, res=None):
    xp = np.pad(x, ((0, 0), (0, 0), pads[:2], pads[2:]))
    y = TF.conv2d(torch.from_numpy(xp).double(), torch.from_numpy(w).double())
    y = y * torch.from_numpy(scale).double()[:, None, None] + torch.from_numpy(shift).double()[:, None, None]
    if res is not None:
        y = y + torch.from_numpy(res).double()
    return torch.clamp(y, lo, hi).numpy()


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 3), cin=st.integers(1, 40), cout=st.integers(1, 70), h=st.integers(3, 21),
       w=st.integers(3, 21), pads=st.tuples(*[st.integers(0, 2)] * 4), residual=st.booleans(),
       bounds=st.sampled_from([(-np.inf, np.inf), (0.0, np.inf), (0.0, 6.0)]), threads=st.sampled_from([1, 2]),
       block=st.sampled_from([None, 1]), seed=st.integers(0, 2**31 - 1))
def test_matches_torch_on_a_grid(n, cin, cout, h, w, pads, residual, bounds, threads, block, seed):
    # every tile geometry (outputs not a multiple of 4, asymmetric padding), partial panels of output
    # channels, channel counts below a vector, blocks of one row group or many, the fused epilogue
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, cin, h, w)).astype(np.float32)
    wt = rng.standard_normal((cout, cin, 3, 3)).astype(np.float32)
    scale = rng.standard_normal(cout).astype(np.float32)
    shift = rng.standard_normal(cout).astype(np.float32)
    ho, wo = h + pads[0] + pads[1] - 2, w + pads[2] + pads[3] - 2
    res = rng.standard_normal((n, cout, ho, wo)).astype(np.float32) if residual else None
    old = wn._BLOCK_BYTES
    wn._BLOCK_BYTES = block
    try:
        with limit_threads(threads):
            run = wn.plan(x.shape, cout, pads, (scale, shift, *bounds), wn.weight_panels(wt), 1 << 19)
            out, bad = run(cl.to_channels_last(x), res=None if res is None else cl.to_channels_last(res))
    finally:
        wn._BLOCK_BYTES = old
    assert bad == 0 and out.shape == (n, ho, wo, cout)
    assert_close(out.transpose(0, 3, 1, 2), _torch(x, wt, pads, scale, shift, *bounds, res))


@pytest.mark.parametrize("n, c, hw", [(1, 64, 56), (1, 128, 28), (4, 256, 14), (64, 96, 8)])
def test_the_channels_last_plan_takes_it_where_it_won(n, c, hw, rng, monkeypatch):
    # only for a weight the caller keeps (``packed``): redone every call, the transform costs more than it saves
    calls = []
    real = wn.plan
    monkeypatch.setattr(wn, "plan", lambda *a: calls.append(1) or real(*a))
    x = rng.standard_normal((n, c, hw, hw)).astype(np.float32)
    wt = (rng.standard_normal((c, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
    assert cl.plan(x.shape, np.float32, wt, (1, 1), (1, 1, 1, 1), (1, 1), 1) is not None and not calls
    run = cl.plan(x.shape, np.float32, wt, (1, 1), (1, 1, 1, 1), (1, 1), 1, packed={})  # a kept weight
    assert calls
    expected = TF.conv2d(torch.from_numpy(x), torch.from_numpy(wt), padding=1).numpy()
    assert_close(run(cl.to_channels_last(x)), expected)


@pytest.mark.parametrize("shape, wshape, kw", [((1, 512, 7, 7), (512, 512, 3, 3), {}),
                                               ((2, 256, 14, 14), (256, 256, 3, 3), {}),  # 32 tiles, 9.4 MB
                                               ((1, 16, 20, 20), (16, 16, 3, 3), {}),
                                               ((1, 64, 6, 6), (64, 64, 3, 3), {}),
                                               ((1, 64, 20, 20), (64, 64, 3, 3), dict(stride=(2, 2))),
                                               ((1, 64, 20, 20), (64, 64, 3, 3), dict(dilation=(2, 2)))])
def test_other_layers_keep_the_implicit_product(shape, wshape, kw, monkeypatch):
    monkeypatch.setattr(wn, "plan", lambda *a: pytest.fail("not a Winograd layer"))
    w = np.zeros(wshape, np.float32)
    assert cl.plan(shape, np.float32, w, kw.get("stride", (1, 1)), (1, 1, 1, 1), kw.get("dilation", (1, 1)),
                   1, packed={}) is not None


def test_float64_keeps_its_own_path(monkeypatch):
    monkeypatch.setattr(wn, "plan", lambda *a: pytest.fail("float32 only"))
    assert cl.plan((1, 64, 20, 20), np.float64, np.zeros((64, 64, 3, 3)), (1, 1), (1, 1, 1, 1), (1, 1), 1,
                   packed={})


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_non_finite_values_are_reported_and_placed_as_torch_by_the_caller(bad, rng):
    x = rng.standard_normal((2, 32, 12, 12)).astype(np.float32)
    wt = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    x[1, 3, 5, 6] = bad
    ones, zeros = np.ones(32, np.float32), np.zeros(32, np.float32)
    _, count = wn.plan(x.shape, wt.shape[0], (1, 1, 1, 1), (ones, zeros, -np.inf, np.inf), wn.weight_panels(wt),
                       1 << 19)(cl.to_channels_last(x))
    assert count > 0
    assert cl.plan(x.shape, np.float32, wt, (1, 1), (1, 1, 1, 1), (1, 1), 1, packed={})(cl.to_channels_last(x)) \
        is None
    got = F.conv2d(x, wt, padding=1)  # functional recomputes the call where the plan declines
    expected = TF.conv2d(torch.from_numpy(x), torch.from_numpy(wt), padding=1).numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(expected))
    finite = np.isfinite(expected)
    assert_close(got[finite], expected[finite])


def test_transformed_weights_are_kept_in_packed(rng):
    # the channels-last plan keeps them with the weight (``packed``): a second shape reuses them
    wt = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    packed = {}
    assert cl.plan((1, 32, 16, 16), np.float32, wt, (1, 1), (1, 1, 1, 1), (1, 1), 1, packed=packed) is not None
    kept = packed["nhwc_winograd"]
    assert kept.shape == (36, 1, 32, 32)
    np.testing.assert_array_equal(kept, wn.weight_panels(wt))
    assert cl.plan((2, 32, 24, 24), np.float32, wt, (1, 1), (1, 1, 1, 1), (1, 1), 1, packed=packed) is not None
    assert packed["nhwc_winograd"] is kept

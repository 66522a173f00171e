"""The one-launch inverted residual block (_kernels.inverted_residual) and the work claims it runs on (_kernels.claims)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from conftest import assert_close
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import prange

from convlayers._kernels import claims, njit, parallel_kernel
from convlayers.benchmark import limit_threads
from convlayers.functional import _conv_channels_last as cl


def _epilogue(rng, c, bounds):
    return (rng.standard_normal(c).astype(np.float32) * 0.2 + 1, rng.standard_normal(c).astype(np.float32) * 0.2,
            np.float32(bounds[0]), np.float32(bounds[1]))


def _torch_block(x, w1, e1, wd, e, w2, e2, pad, dilation, res, stride=1):
    t = lambda a: torch.from_numpy(np.asarray(a)).double()  # noqa: E731

    def finish(y, ep):
        return torch.clamp(y * t(ep[0])[:, None, None] + t(ep[1])[:, None, None], float(ep[2]), float(ep[3]))

    y = finish(TF.conv2d(t(x), t(w1)), e1)
    y = finish(TF.conv2d(y, t(wd), stride=stride, padding=pad, dilation=dilation, groups=wd.shape[0]), e)
    y = TF.conv2d(y, t(w2)) * t(e2[0])[:, None, None] + t(e2[1])[:, None, None]
    if res is not None:
        y = y + t(res)
    return torch.clamp(y, float(e2[2]), float(e2[3])).numpy()


def _block(rng, n, c, ce, cout, h, w, k, pad, dilation, residual, stride=1):
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    w1 = (rng.standard_normal((ce, c, 1, 1)) / np.sqrt(c)).astype(np.float32)
    wd = (rng.standard_normal((ce, 1, k, k)) / k).astype(np.float32)
    w2 = (rng.standard_normal((cout, ce, 1, 1)) / np.sqrt(ce)).astype(np.float32)
    e1, e = _epilogue(rng, ce, (0, 6)), _epilogue(rng, ce, (0, 6))
    e2 = _epilogue(rng, cout, (-np.inf, np.inf))
    ho = (h + 2 * pad - dilation * (k - 1) - 1) // stride + 1
    wo = (w + 2 * pad - dilation * (k - 1) - 1) // stride + 1
    res = rng.standard_normal((n, cout, ho, wo)).astype(np.float32) if residual else None
    return x, w1, e1, wd, e, w2, e2, res


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 20), ce=st.integers(2, 70), cout=st.integers(1, 40),
       h=st.integers(1, 13), w=st.integers(1, 13), k=st.sampled_from([1, 3, 5]), pad=st.integers(0, 2),
       dilation=st.sampled_from([1, 2]), stride=st.sampled_from([1, 2]), residual=st.booleans(),
       threads=st.sampled_from([1, 2]), items=st.one_of(st.none(), st.tuples(st.integers(1, 30), st.integers(1, 4))),
       seed=st.integers(0, 2**31 - 1))
def test_matches_torch_on_a_grid(n, c, ce, cout, h, w, k, pad, dilation, stride, residual, threads, items, seed):
    # chunks and bands of every size (not whole tiles, not whole rows, past the image), windows
    # reaching past the image on both sides, dilated taps, stride 1 or 2, residual or not, one thread or two
    if h + 2 * pad - dilation * (k - 1) < 1 or w + 2 * pad - dilation * (k - 1) < 1:
        return
    rng = np.random.default_rng(seed)
    x, w1, e1, wd, e, w2, e2, res = _block(rng, n, c, ce, cout, h, w, k, pad, dilation, residual, stride)
    packed = ({}, {}, {})
    with limit_threads(threads):
        run = cl.plan_expand_depthwise_pointwise(x.shape, w1, e1, wd, (stride,) * 2, (pad,) * 4, (dilation,) * 2,
                                                 e, w2, e2, *packed, residual)
        assert run is not None
        ho = (h + 2 * pad - dilation * (k - 1) - 1) // stride + 1
        wo = (w + 2 * pad - dilation * (k - 1) - 1) // stride + 1
        if items is not None or stride > 1:  # the same block with the items given (a small strided one: by default)
            run = cl._inverted_residual(x.shape, (packed[0]["nhwc_panels"], cl._gemm.epilogue_columns(e1, ce)),
                                        packed[1]["nhwc_taps"], (stride,) * 2, (pad,) * 4, (dilation,) * 2, e,
                                        (packed[2]["nhwc_panels"], cl._gemm.epilogue_columns(e2, cout)),
                                        (n, ho, wo, cout), items)
        got = run(cl.to_channels_last(x), res=None if res is None else cl.to_channels_last(res))
    assert cl.is_channels_last(got) or got.shape[1] == 1 or got.shape[2] * got.shape[3] == 1
    assert_close(got, _torch_block(x, w1, e1, wd, e, w2, e2, pad, dilation, res, stride))


@pytest.mark.parametrize("n, c, ce, cout, hw", [(1, 64, 384, 64, 14), (1, 160, 960, 160, 7), (2, 24, 144, 24, 9)])
def test_same_sums_as_the_layers_apart(n, c, ce, cout, hw):
    # the expansion and the depthwise->1x1 pair run apart give the same bits: the block only moves work
    rng = np.random.default_rng(hw)
    x, w1, e1, wd, e, w2, e2, res = _block(rng, n, c, ce, cout, hw, hw, 3, 1, 1, c == cout)
    xc = cl.to_channels_last(x)
    rc = None if res is None else cl.to_channels_last(res)
    fused = cl.plan_expand_depthwise_pointwise(x.shape, w1, e1, wd, (1, 1), (1,) * 4, (1, 1), e, w2, e2, {}, {}, {},
                                               rc is not None)
    expand = cl.plan(x.shape, np.float32, w1, (1, 1), (0,) * 4, (1, 1), 1, e1, {})
    pair = cl.plan_depthwise_pointwise((n, ce, hw, hw), wd, (1, 1), (1,) * 4, (1, 1), e, w2, e2, {}, {},
                                       rc is not None)
    for threads in (1, 2):
        with limit_threads(threads):
            np.testing.assert_array_equal(fused(xc, res=rc), pair(expand(xc), res=rc))


def test_a_non_finite_result_gives_none_for_the_callers_repairs():
    rng = np.random.default_rng(3)
    x, w1, e1, wd, e, w2, e2, _ = _block(rng, 1, 8, 24, 8, 6, 6, 3, 1, 1, False)
    x[0, 2, 3, 3] = np.nan
    run = cl.plan_expand_depthwise_pointwise(x.shape, w1, e1, wd, (1, 1), (1,) * 4, (1, 1), e, w2, e2, {}, {}, {})
    assert run(cl.to_channels_last(x)) is None


def test_a_residual_of_another_shape_or_layout_is_refused():
    rng = np.random.default_rng(4)
    x, w1, e1, wd, e, w2, e2, res = _block(rng, 1, 8, 24, 8, 6, 6, 3, 1, 1, True)
    run = cl.plan_expand_depthwise_pointwise(x.shape, w1, e1, wd, (1, 1), (1,) * 4, (1, 1), e, w2, e2, {}, {}, {},
                                             True)
    assert run(cl.to_channels_last(x), res=res) is None  # NCHW memory: not the layout the kernel reads
    assert run(cl.to_channels_last(x), res=cl.to_channels_last(res[:, :, :5])) is None
    assert run(cl.to_channels_last(x), res=cl.to_channels_last(res)) is not None


# ---- claims ----------------------------------------------------------------------------------------------


@parallel_kernel()
def _claim_all(items, threads, taken, order):
    """Every task claims until none is left; ``taken[i]`` counts item i, ``order[t]`` the task's claims."""
    state = claims.runs(items, threads)
    for t in prange(threads):
        cursor = 0
        k = 0
        while True:
            i, cursor = claims.claim(state, t, threads, cursor)
            if i < 0:
                break
            taken[i] += 1
            order[t, k] = i
            k += 1
    return 0


@pytest.mark.parametrize("items, threads", [(0, 2), (1, 2), (2, 2), (7, 2), (100, 2), (5, 3), (64, 4), (3, 8)])
@pytest.mark.parametrize("build", ["parallel", "serial"])
def test_claims_hand_out_every_item_once(items, threads, build):
    # serial: one task runs alone and must steal every other run (a launch whose other threads never came)
    kernel = getattr(_claim_all, build)
    for _ in range(50):
        taken = np.zeros(max(items, 1), np.int64)
        order = np.full((threads, max(items, 1)), -1, np.int64)
        kernel(items, threads, taken, order)
        assert (taken[:items] == 1).all()
        for t in range(threads):  # each task's own run comes first, in order
            mine = order[t][order[t] >= 0]
            lo, hi = items * t // threads, items * (t + 1) // threads
            own = mine[(mine >= lo) & (mine < hi)]
            assert list(own) == sorted(own)


@njit(cache=False)
def _one_task_steals(items, threads):
    state = claims.runs(items, threads)
    got = []
    cursor = 0
    while True:
        i, cursor = claims.claim(state, 0, threads, cursor)
        if i < 0:
            break
        got.append(i)
    return got


def test_a_lone_task_takes_its_run_then_the_others_from_their_backs():
    assert list(_one_task_steals(6, 2)) == [0, 1, 2, 5, 4, 3]
    assert list(_one_task_steals(0, 2)) == []

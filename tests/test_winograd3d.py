"""conv3d by Winograd over the depth planes (functional._winograd.forward3d) against PyTorch, and when it is used."""

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
from convlayers.benchmark import limit_threads
from convlayers.functional import _conv_nd, _winograd


@contextlib.contextmanager
def _anything():
    """Winograd for every size it can take, and blocks of a single plane when ``block`` (hypothesis tests
    cannot take function-scoped fixtures)."""
    names = ("_MIN_TILES", "_MIN_SIDE")
    old = {k: getattr(_winograd, k) for k in names}
    _winograd._MIN_TILES, _winograd._MIN_SIDE = 0, 1
    try:
        yield
    finally:
        for k, v in old.items():
            setattr(_winograd, k, v)


def _torch_conv3d(x, w, pads):
    xp = np.pad(x, ((0, 0), (0, 0), pads[0:2], pads[2:4], pads[4:6]))
    return TF.conv3d(torch.from_numpy(xp), torch.from_numpy(w)).numpy()


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3), cin=st.integers(1, 12), cout=st.integers(1, 20), d=st.integers(1, 7),
       h=st.integers(1, 13), w=st.integers(1, 13), kd=st.integers(1, 4), pads=st.tuples(*[st.integers(0, 2)] * 6),
       double=st.booleans(), threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**31 - 1))
def test_matches_torch_on_a_grid(n, cin, cout, d, h, w, kd, pads, double, threads, seed):
    # depth padding past the input (all-zero planes), asymmetric pads, one-plane outputs, kD = 1, blocks
    # that end inside a sample, partial tiles and partial panels of the products
    rng = np.random.default_rng(seed)
    dtype = np.float64 if double else np.float32
    x = rng.standard_normal((n, cin, d, h, w)).astype(dtype)
    wt = rng.standard_normal((cout, cin, kd, 3, 3)).astype(dtype)
    do, ho, wo = d + pads[0] + pads[1] - kd + 1, h + pads[2] + pads[3] - 2, w + pads[4] + pads[5] - 2
    with _anything(), limit_threads(threads):
        got = _winograd.forward3d(x, wt, pads)
    if min(do, ho, wo) <= 0:
        assert got is None
        return
    assert got is not None and got.dtype == dtype and got.shape == (n, cout, do, ho, wo)
    assert_close(got, _torch_conv3d(x, wt, pads))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, padding", [((2, 32, 9, 20, 20, 40), 1), ((1, 16, 6, 16, 17, 24), (2, 1, 0)),
                                            ((3, 24, 4, 12, 12, 16), 0)])
def test_conv3d_takes_it_and_agrees(shape, padding, dtype, rng, monkeypatch):
    n, cin, d, h, w, cout = shape
    x = rng.standard_normal((n, cin, d, h, w)).astype(dtype)
    wt = (rng.standard_normal((cout, cin, 3, 3, 3)) / np.sqrt(27 * cin)).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype)
    calls = []
    real = _winograd.forward3d
    monkeypatch.setattr(_winograd, "forward3d", lambda *a: calls.append(1) or real(*a))
    expected = TF.conv3d(torch.from_numpy(x), torch.from_numpy(wt), torch.from_numpy(b), padding=padding).numpy()
    got = F.conv3d(x, wt, b, padding=padding)
    assert calls, "conv3d did not take the Winograd path"
    assert_close(got, expected)


def test_depth_stride_and_dilation_keep_the_gathered_planes(rng, monkeypatch):
    x = rng.standard_normal((2, 16, 9, 12, 12)).astype(np.float32)
    wt = rng.standard_normal((16, 16, 3, 3, 3)).astype(np.float32)
    monkeypatch.setattr(_winograd, "forward3d", lambda *a: pytest.fail("forward3d takes stride 1 only"))
    for kw in (dict(stride=(2, 1, 1)), dict(dilation=(2, 1, 1))):
        expected = TF.conv3d(torch.from_numpy(x), torch.from_numpy(wt), padding=1, **kw).numpy()
        assert_close(F.conv3d(x, wt, padding=1, **kw), expected)


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_non_finite_inputs_land_where_torch_puts_them(bad, rng):
    # a transform mixes a whole patch: forward3d declines, and conv3d recomputes by the gathered planes
    x = rng.standard_normal((1, 16, 5, 12, 12)).astype(np.float32)
    wt = rng.standard_normal((16, 16, 3, 3, 3)).astype(np.float32)
    x[0, 3, 2, 5, 6] = bad
    with _anything():
        assert _winograd.forward3d(x, wt, (1,) * 6) is None
        got = F.conv3d(x, wt, padding=1)
    expected = TF.conv3d(torch.from_numpy(x), torch.from_numpy(wt), padding=1).numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(expected))
    finite = np.isfinite(expected)
    assert_close(got[finite], expected[finite])


def test_blocks_cover_every_plane_once(rng, monkeypatch):
    # blocks of 4(kD - 1) planes when the chunk budget holds fewer: 16 output planes of kD = 3 in two blocks
    # per sample; a lone sample's planes split between two workers; the budget's planes when more
    seen = []
    real = _winograd._k.winograd_output

    def spy(m, o0, o1, *rest):
        seen.append((o0, o1))
        return real(m, o0, o1, *rest)

    monkeypatch.setattr(_winograd._k, "winograd_output", spy)
    x = rng.standard_normal((2, 16, 16, 12, 12)).astype(np.float32)
    wt = rng.standard_normal((16, 16, 3, 3, 3)).astype(np.float32)
    with limit_threads(2):
        assert _winograd.forward3d(x, wt, (1,) * 6) is not None
        assert sorted(seen) == [(0, 16), (0, 16)]  # 41 KB a plane: whole samples in the 2 MiB budget
        monkeypatch.setattr(_winograd, "_CHUNK_BYTES", 1)
        seen.clear()
        assert _winograd.forward3d(x, wt, (1,) * 6) is not None
        assert sorted(seen) == [(0, 8), (0, 8), (8, 16), (8, 16)]
        seen.clear()
        with _anything():  # 54 tiles in two blocks are narrower products than the default takes
            assert _winograd.forward3d(x[:1, :, :6], wt, (1,) * 6) is not None
        assert sorted(seen) == [(0, 3), (3, 6)]


def test_gathered_and_in_place_planes_agree(rng):
    # the two 3-D Winograd routes compute the same sums in different orders
    x = rng.standard_normal((2, 16, 6, 14, 14)).astype(np.float32)
    wt = rng.standard_normal((24, 16, 3, 3, 3)).astype(np.float32)
    pads = (1, 1, 1, 1, 1, 1)
    assert_close(_winograd.forward3d(x, wt, pads),
                 _conv_nd._forward3d_gathered(x, wt, (1, 1, 1), pads, (1, 1, 1), 1))

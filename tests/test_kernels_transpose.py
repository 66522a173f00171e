"""The vector-tile layout copies (``_kernels.transpose``) against NumPy, and their dispatch in ``functional._layout``."""

import numpy as np
import pytest

from convlayers._kernels._ir import VW
from convlayers._kernels import conv_nhwc, transpose
from convlayers.functional import _layout

GUARD = 2 * VW  # elements past the output that a masked store must leave alone

# sizes around the tile's width: one lane, a partial tile, exact tiles, a tile and a bit
EDGES = sorted({1, 3, VW - 1, VW, VW + 1, 2 * VW + 5})


def _guarded(shape, fill=np.nan):
    buf = np.full(int(np.prod(shape)) + GUARD, fill, np.float32)
    return buf, buf[:-GUARD].reshape(shape)


@pytest.mark.parametrize("build", ["serial", "parallel"])
@pytest.mark.parametrize("m", EDGES)
@pytest.mark.parametrize("n", EDGES)
def test_transpose_matches_numpy(build, m, n):
    rng = np.random.default_rng(m * 100 + n)
    a = rng.standard_normal((3, m, n)).astype(np.float32)
    buf, out = _guarded((3, n, m))
    getattr(transpose.transpose_f32, build)(a, out)
    np.testing.assert_array_equal(out, a.transpose(0, 2, 1))
    assert np.isnan(buf[-GUARD:]).all()


def test_transpose_keeps_bits():
    """A copy, not arithmetic: NaN payloads, signed zeros, infinities and subnormals come through unchanged."""
    bits = np.array([0x7FC00001, 0x80000000, 0x7F800000, 0xFF800000, 0x00000001, 0x3F800000], np.uint32)
    a = np.resize(bits, (2, 21, 19)).view(np.float32)
    out = np.empty((2, 19, 21), np.float32)
    transpose.transpose_f32.parallel(a, out)
    assert np.array_equal(out.view(np.uint32), a.transpose(0, 2, 1).view(np.uint32))


def _padded_reference(x, pt, pl, hp, wp):
    n, c, h, w = x.shape
    ref = np.zeros((n, hp, wp, c), x.dtype)
    xh = x.transpose(0, 2, 3, 1)
    for r in range(h):
        for q in range(w):
            if 0 <= r + pt < hp and 0 <= q + pl < wp:
                ref[:, r + pt, q + pl] = xh[:, r, q]
    return ref


# (C, H, W, pt, pl, Hp, Wp): padding on every side, none, a crop on the right (Wp < pl + W), a negative left
# offset (the first columns dropped), rows beyond Hp, and channel counts around the tile's width
PADS = [(c, 5, 7, 1, 1, 7, 9) for c in EDGES] + [
    (VW, 6, 2 * VW + 3, 2, 3, 11, 2 * VW + 9),
    (VW + 3, 4, 5, 0, 0, 4, 5),
    (20, 5, 9, 1, 2, 6, 8),
    (17, 5, 5, 0, -1, 5, 3),
    (9, 6, 4, 2, 0, 5, 4),
    (8, 3, 3, 4, 4, 5, 5),
]


@pytest.mark.parametrize("build", ["serial", "parallel"])
@pytest.mark.parametrize("c, h, w, pt, pl, hp, wp", PADS)
def test_pad_nchw_matches_reference(build, c, h, w, pt, pl, hp, wp):
    rng = np.random.default_rng(c * 7 + h)
    x = rng.standard_normal((2, c, h, w)).astype(np.float32)
    buf, xp = _guarded((2, hp, wp, c))  # NaN everywhere: every element must be written
    getattr(transpose.pad_nchw_f32, build)(x, pt, pl, xp)
    np.testing.assert_array_equal(xp, _padded_reference(x, pt, pl, hp, wp))
    assert np.isnan(buf[-GUARD:]).all()
    # the element-wise kernel it stands in for gives the same
    old = np.full_like(xp, np.nan)
    conv_nhwc.pad_into.serial(x.transpose(0, 2, 3, 1), pt, pl, old)
    np.testing.assert_array_equal(xp, old)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["nchw", "channels_last", "strided"])
@pytest.mark.parametrize("c", [3, 16])
def test_pad_channels_last_any_layout(dtype, layout, c):
    rng = np.random.default_rng(c)
    x = rng.standard_normal((2, c, 9, 11)).astype(dtype)
    ref = _padded_reference(x, 1, 2, 11, 14)
    if layout == "channels_last":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    elif layout == "strided":
        x = np.repeat(x, 2, axis=3)[:, :, :, ::2]
    xp = np.full((2, 11, 14, c), np.nan, dtype)
    _layout.pad_channels_last(x, 1, 2, xp)
    np.testing.assert_array_equal(xp, ref)


def _spy(monkeypatch, module, name):
    calls = []
    pair = getattr(module, name)

    class Spy:
        def for_work(self, work, *minimum):
            calls.append(name)
            return pair.for_work(work, *minimum)

    monkeypatch.setattr(module, name, Spy())
    return calls


@pytest.mark.parametrize("c, tiled", [(3, False), (_layout._MIN_TILE_CHANNELS - 1, False),
                                      (_layout._MIN_TILE_CHANNELS, True), (64, True)])
def test_dispatch_by_channels(monkeypatch, c, tiled):
    """The tile kernels take float32 C-ordered arrays with enough channels; the rest keep the element copies."""
    pad_calls = _spy(monkeypatch, transpose, "pad_nchw_f32")
    tr_calls = _spy(monkeypatch, transpose, "transpose_f32")
    x = np.ones((1, c, 40, 40), np.float32)
    _layout.pad_channels_last(x, 1, 1, np.empty((1, 42, 42, c), np.float32))
    _layout.transpose_last2(x.reshape(1, c, 1600), np.empty((1, 1600, c), np.float32))
    assert bool(pad_calls) == tiled and bool(tr_calls) == tiled
    # never for float64, nor for a strided source
    _layout.pad_channels_last(x.astype(np.float64), 1, 1, np.empty((1, 42, 42, c)))
    _layout.transpose_last2(np.ones((1, 1600, 2 * c), np.float32)[:, :, ::2], np.empty((1, c, 1600), np.float32))
    assert bool(pad_calls) == tiled and bool(tr_calls) == tiled

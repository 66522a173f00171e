"""convlayers.viz: every picture checked for what it must show (panels, numbers, colour scales, sizes)."""

import time

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from PIL import Image  # noqa: E402

from convlayers import reference, viz  # noqa: E402
from convlayers.filters import FILTERS, SEED_FILTERS, apply, filter_bank  # noqa: E402
from convlayers.io import chelsea  # noqa: E402
from convlayers.viz import _common, costs, features, gallery, windows  # noqa: E402


def _by_gid(fig, prefix):
    return [ax for ax in fig.axes if (ax.get_gid() or "").startswith(prefix)]


def _png_array(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _assert_not_blank(arr):
    assert arr.std() > 10, "picture looks blank"
    assert (arr < 250).mean() > 0.02


# ----------------------------------------------------------------------------- helpers

def test_downsample_is_the_block_mean():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((103, 77))
    d = _common.downsample(a, max_side=20)
    f = 6  # ceil(103 / 20)
    ref = a[:17 * f, :12 * f].reshape(17, f, 12, f).mean(axis=(1, 3))
    np.testing.assert_allclose(d, ref, rtol=1e-12)
    assert _common.downsample(a, max_side=200).shape == a.shape
    with pytest.raises(ValueError, match="2-D"):
        _common.downsample(np.ones((2, 2, 2)))


@pytest.mark.parametrize("value,text", [(1, "1"), (-2, "-2"), (1 / 9, "1/9"), (0.0625, "1/16"),
                                        (0.0585, ".06"), (0.0030, ".003"), (8.0, "8")])
def test_number_text(value, text):
    assert _common.number_text(value) == text


def test_grid_rows_never_leave_an_empty_cell():
    for n in range(1, 17):
        rows = gallery.grid_rows(n)
        assert sum(rows) == n and all(r == rows[0] for r in rows[:-1]) and rows[-1] <= rows[0]
    assert gallery.grid_rows(7) == [4, 3]
    with pytest.raises(ValueError, match="ncols"):
        gallery.grid_rows(3, 0)


# ----------------------------------------------------------------------------- gallery

def test_gallery_panels_kernels_and_colour_scales(tmp_path):
    cat = chelsea()
    bank = filter_bank(cat)
    fig = viz.gallery_figure(cat, bank, image_name="the cat", boundary="symm", note="converted")
    panels = _by_gid(fig, "panel")
    assert len(panels) == 1 + len(SEED_FILTERS)       # the input and six responses, nothing empty
    assert all(ax.images for ax in panels)
    titles = [ax.get_title() for ax in panels]
    assert titles == ["input"] + list(SEED_FILTERS)
    kernels = _by_gid(fig, "kernel")
    assert len(kernels) == len(SEED_FILTERS)
    for ax, name in zip(kernels, SEED_FILTERS):       # the kernel panel's numbers are the kernel
        texts = [t.get_text() for t in ax.texts]
        expected = [_common.number_text(v) for v in FILTERS[name].ravel()]
        assert texts == expected, name
    assert [t.get_text() for t in kernels[2].texts] == ["-1", "0", "1", "-2", "0", "2", "-1", "0", "1"]
    for ax, name in zip(panels[1:], SEED_FILTERS):    # signed responses: diverging map centred at 0
        im = ax.images[0]
        lo, hi = im.get_clim()
        if (FILTERS[name] < 0).any():
            assert im.get_cmap().name == _common.SIGNED_CMAP and lo == -hi and hi > 0
        else:
            assert im.get_cmap().name == "gray" and (lo, hi) == (0.0, 255.0)
    assert panels[0].images[0].get_cmap().name == "gray"
    text = " ".join(t.get_text() for t in fig.texts) + fig._suptitle.get_text()
    assert "the cat" in text and "boundary='symm'" in text and "mode='same'" in text and "converted" in text
    assert "300 x 451 px, height x width" in text
    bars = _by_gid(fig, "colorbar")
    assert len(bars) == 1 + len(SEED_FILTERS)
    for cax, ax in zip(bars, panels):                 # each colour bar spans its panel's colour scale
        assert cax.get_ylim() == pytest.approx(ax.images[0].get_clim())
    path = viz.save_gallery(tmp_path / "g.png", cat, bank)
    arr = _png_array(path)
    assert arr.shape[1] > arr.shape[0] > 400
    _assert_not_blank(arr)


@pytest.mark.parametrize("name,step,sign", [
    ("vertical", "right", 1), ("sobel_x", "right", -1), ("horizontal", "below", 1), ("sobel_y", "below", -1)])
def test_captions_say_the_right_sign(name, step, sign):
    """'red: brighter on the right' must be true of convolve2d's output on a step image."""
    img = np.zeros((9, 9))
    if step == "right":
        img[:, 5:] = 1.0
    else:
        img[5:, :] = 1.0
    r = apply(img, name)
    assert np.sign(r[4, 4] + r[4, 5] if step == "right" else r[4, 4] + r[5, 4]) == sign
    caption = gallery.CAPTIONS[name]
    brighter = "brighter on the right" in caption or "brighter below" in caption
    assert brighter == (sign > 0), caption


def test_gallery_drawing_cost_does_not_grow_with_the_image():
    small = np.random.default_rng(1).random((300, 300))
    big = np.kron(small, np.ones((20, 20)))           # 6000 x 6000
    views = {"sobel_x": viz.downsample(apply(big, "sobel_x"))}
    times = []
    for img, resp in ((small, {"sobel_x": apply(small, "sobel_x")}), (big, views)):
        t = time.perf_counter()
        fig = viz.gallery_figure(img, resp)
        _common.png_bytes(fig)
        times.append(time.perf_counter() - t)
        assert max(fig.axes[1].images[0].get_array().shape) <= viz.VIEW_PIXELS
    assert times[1] < 3 * times[0] + 1.0, times
    text = " ".join(t.get_text() for t in fig.texts)
    assert "1/12 scale" in text                        # says the view is shrunk


def test_gallery_bad_input():
    with pytest.raises(ValueError, match="non-empty dict"):
        viz.gallery_figure(np.ones((4, 4)), {})
    with pytest.raises(ValueError, match="response 'x'"):
        viz.gallery_figure(np.ones((4, 4)), {"x": np.ones(3)})
    fig = viz.gallery_figure(np.ones((4, 4)), {"mine": -np.ones((4, 4))})   # no kernel known: still no gap
    assert len(_by_gid(fig, "panel")) == 2 and not _by_gid(fig, "kernel")


# ----------------------------------------------------------------------------- sliding window, pooling, shapes

@pytest.mark.parametrize("padding,stride", [(0, 1), (1, 1), (1, 2), (2, 3), (0, 2)])
def test_conv_steps_match_the_reference_loop(padding, stride):
    steps = windows.conv_steps(padding=padding, stride=stride)
    ref = reference.convolve2d(reference.SEED_IMAGE, reference.SEED_KERNELS["vertical"], padding, stride)
    assert len(steps) == ref.size
    for s in steps:
        assert s["value"] == ref[s["out"]] == sum(s["products"])
        assert len(s["products"]) == 9
        assert (s["top"], s["left"]) == (s["out"][0] * stride, s["out"][1] * stride)
    assert [s["value"] for s in windows.conv_steps()] == [-6.0] * 4


def test_conv_pictures(tmp_path):
    paths, text = windows.explain_conv(tmp_path)
    assert [p.rsplit("/", 1)[1] for p in paths] == ["conv.png", "conv.gif"]
    _assert_not_blank(_png_array(paths[0]))
    with Image.open(paths[1]) as gif:
        assert gif.n_frames == 4 and gif.info.get("loop") == 0
    assert text.count("= -6 -> out[") == 4
    assert "1*1 + 2*0 + 3*(-1) + 5*1 + 6*0 + 7*(-1) + 9*1 + 10*0 + 11*(-1) = -6" in text
    fig = windows.conv_step_figure(1)
    out_ax = fig.axes[2]
    assert [t.get_text() for t in out_ax.texts] == ["-6", "-6", "", ""]   # filled up to step 2 only
    paths, text = windows.explain_conv(tmp_path, padding=1, stride=2)
    assert paths[0].endswith("conv_p1_s2.png")
    with Image.open(paths[1]) as gif:
        assert gif.n_frames == 4
    assert "-8" in text and "-30" in text
    fig = windows.conv_overview_figure(padding=1, stride=2)
    crossed = [ln for ax in fig.axes for ln in ax.lines if ln.get_marker() == "x"]
    assert crossed                                      # the skipped positions are marked
    with pytest.raises(ValueError, match="stride"):
        windows.conv_steps(stride=0)
    with pytest.raises(ValueError, match="n must be"):
        windows.conv_step_figure(4)


def test_pool_picture(tmp_path, capsys):
    paths, text = windows.explain_pool(tmp_path)
    _assert_not_blank(_png_array(paths[0]))
    assert "window (1, 1): [13 14; 15 16] -> max 16" in text and "-> mean 14.5" in text
    fig = windows.pool_figure()
    out_max = [ax for ax in fig.axes if ax.get_gid() == "pool-max-output"][0]
    out_avg = [ax for ax in fig.axes if ax.get_gid() == "pool-average-output"][0]
    assert [t.get_text() for t in out_max.texts] == ["4", "8", "12", "16"]
    assert [t.get_text() for t in out_avg.texts] == ["2.5", "6.5", "10.5", "14.5"]
    rings = [ln for ax in fig.axes if ax.get_gid() == "pool-max-input" for ln in ax.lines]
    assert len(rings) == 4
    assert capsys.readouterr().out == ""                 # the trace goes into the text, not stdout


def test_shapes_picture(tmp_path):
    paths, text = windows.explain_shapes(tmp_path)
    _assert_not_blank(_png_array(paths[0]))
    fig = windows.shapes_figure()
    strips = _by_gid(fig, "shape")
    assert len(strips) == len(windows.SHAPE_CASES) == 5
    for ax, (_, n, k, s, p) in zip(strips, windows.SHAPE_CASES):
        out = reference.convolve2d(np.ones((n, n)), np.ones((k, k)), p, s).shape[0]
        assert len(ax.patches) == n + 2 * p            # one cell per padded input position
        assert len(ax.lines) == 3 * out                 # one bracket (3 strokes) per output
        assert ax.get_title(loc="left").endswith(f"= {out}   ({out} window positions, red)")
    for expected in ("= 3", "= 5", "= 32"):
        assert expected in text


# ----------------------------------------------------------------------------- costs

def test_efficient_picture(tmp_path):
    from convlayers.analysis import compare_convs

    paths, text = costs.explain_efficient(tmp_path)
    _assert_not_blank(_png_array(paths[0]))
    table = compare_convs()
    fig = costs.efficient_figure(table)
    bars = {ax.get_gid(): ax for ax in fig.axes if (ax.get_gid() or "").startswith("bars")}
    widths = [p.get_width() for p in bars["bars-params"].patches]
    assert widths == [r.params for r in table.rows] == [73728, 2048, 576, 8768, 18432]
    assert [p.get_width() for p in bars["bars-macs"].patches] == [r.macs for r in table.rows]
    blocks = _by_gid(fig, "weights")
    assert len(blocks) == 6                              # separable shows its two parts
    dw = [ax for ax in blocks if ax.get_gid() == "weights-depthwise"][0].images[0].get_array()
    np.testing.assert_array_equal(np.asarray(dw) > 0, np.eye(64, dtype=bool))
    assert "8.4x" in text


def test_receptive_field_picture(tmp_path):
    from convlayers.analysis import summary
    from convlayers.models import digits_cnn

    rows = costs.receptive_field_rows()
    s = summary(digits_cnn("standard", width=8), (1, 1, 8, 8))
    assert [r[1] for r in rows] == [int(r.receptive_field[0]) for r in s.rows if len(r.output_shape) == 4]
    paths, text = costs.explain_receptive_field(tmp_path)
    _assert_not_blank(_png_array(paths[0]))
    assert "receptive field 5x5 with 18 weights" in text and "5x5 with 25" in text
    fig = costs.receptive_field_figure()
    growth = [ax for ax in fig.axes if ax.get_gid() == "model-growth"][0]
    rf = growth.lines[0].get_ydata()
    assert np.all(np.diff(rf) >= 0) and rf[-1] > 224   # grows, ends past the image


# ----------------------------------------------------------------------------- features

@pytest.fixture(scope="module")
def small_model():
    return features.train_digits_model(subset=128, epochs=1)


def test_training_is_reproducible(small_model):
    model, history, _ = small_model
    again, history2, _ = features.train_digits_model(subset=128, epochs=1)
    assert history["test_accuracy"] == history2["test_accuracy"]
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=k)


def test_features_picture(tmp_path, small_model):
    model, history, test = small_model
    x = test[0][:1]
    outs = features.layer_outputs(model, x)
    np.testing.assert_allclose(outs[-1][1], np.asarray(model(x)), rtol=1e-6, atol=1e-6)
    paths, text = features.explain_features(tmp_path, model, history, test)
    _assert_not_blank(_png_array(paths[0]))
    assert "seeded" in text
    fig = features.features_figure(model, test[0][0, 0], 3, 3)
    assert len(_by_gid(fig, "filter")) == 16             # width 16: sixteen 3x3 first-layer filters
    maps = _by_gid(fig, "map")
    assert maps and all(ax.images for ax in maps)
    w = model.state_dict()["0.0.weight"]
    np.testing.assert_array_equal(_by_gid(fig, "filter")[0].images[0].get_array(), w[0, 0])

"""convlayers.analysis: counting rules against hand-computed values, published totals, receptive fields."""

import json
import time

import numpy as np
import pytest

import convlayers.functional as F
from convlayers import nn
from convlayers.analysis import compare_convs, flops, summary
from convlayers.models import digits_cnn, mobilenet_v2, resnet18


def only(s, kind):
    rows = [r for r in s.rows if r.type == kind]
    assert len(rows) == 1, [r.type for r in s.rows]
    return rows[0]


# ---- counting rules, by hand -------------------------------------------------------------------------

def test_conv_macs_are_output_elements_times_cin_over_groups_times_kernel():
    s = summary(nn.Conv2d(3, 8, 3, padding=1), (2, 3, 10, 10))
    r = only(s, "Conv2d")
    assert r.output_shape == (2, 8, 10, 10)
    assert r.params == 8 * 3 * 9 + 8 == 224
    assert r.macs == (2 * 8 * 10 * 10) * 3 * 9 == 43_200      # bias adds are not counted
    assert s.total_macs == 43_200 and s.total_flops == 86_400 == flops(43_200)
    assert r.activation_bytes == 2 * 8 * 10 * 10 * 4            # float32


def test_grouped_strided_conv():
    s = summary(nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=4, bias=False), (1, 8, 9, 9))
    r = only(s, "Conv2d")
    assert r.output_shape == (1, 16, 5, 5)
    assert r.params == 16 * 2 * 9 == 288
    assert r.macs == 16 * 25 * (8 // 4) * 9 == 7_200
    assert r.receptive_field == (3, 3) and r.jump == (2, 2)


def test_depthwise_and_pointwise():
    s = summary(nn.Sequential(nn.Conv2d(64, 64, 3, padding=1, groups=64, bias=False),
                              nn.Conv2d(64, 128, 1, bias=False)), (1, 64, 56, 56))
    dw, pw = s.rows
    assert dw.macs == 64 * 56 * 56 * 1 * 9 and pw.macs == 128 * 56 * 56 * 64
    assert s.total_params == 64 * 9 + 64 * 128 == 8_768


def test_rectangular_dilated_and_same_padding():
    s = summary(nn.Conv2d(2, 4, (3, 5), dilation=(1, 2), padding="same", bias=False), (1, 2, 11, 12))
    r = s.rows[0]
    assert r.output_shape == (1, 4, 11, 12)
    assert r.macs == 4 * 11 * 12 * 2 * 3 * 5
    assert r.receptive_field == (3, 9)            # k_eff = d(k-1)+1 = 3 and 2*4+1


def test_linear_macs_are_in_times_out_per_row():
    s = summary(nn.Linear(10, 5), (4, 10))
    assert s.rows[0].macs == 4 * 10 * 5 and s.total_params == 55
    s = summary(nn.Linear(10, 5, bias=False), (2, 3, 10))
    assert s.rows[0].output_shape == (2, 3, 5) and s.rows[0].macs == 6 * 50


def test_conv_transpose_macs_count_input_elements():
    layer = nn.ConvTranspose2d(8, 3, 3, stride=2, padding=1, output_padding=1, bias=False)
    s = summary(layer, (1, 8, 16, 16))
    r = s.rows[0]
    assert r.output_shape == (1, 3, 32, 32) == layer(np.zeros((1, 8, 16, 16), np.float32)).shape
    assert r.macs == 8 * 16 * 16 * 3 * 9
    assert r.jump == (0.5, 0.5) and r.receptive_field == (2, 2)   # ceil(3/2) inputs per axis


def test_bn_activations_pooling_are_other_ops_not_macs():
    net = nn.Sequential(nn.BatchNorm2d(2), nn.ReLU(), nn.ReLU6(), nn.MaxPool2d(2), nn.AvgPool2d(2, stride=1),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.5), nn.Identity())
    s = summary(net, (1, 2, 4, 4))
    assert s.total_macs == 0
    ops = {r.type: r.other_ops for r in s.rows}
    assert ops["BatchNorm2d"] == ops["ReLU"] == ops["ReLU6"] == 32
    assert ops["MaxPool2d"] == 8 * 4            # output elements x window taps
    assert ops["AvgPool2d"] == 2 * 1 * 1 * 4
    assert ops["AdaptiveAvgPool2d"] == 2         # one add per input element (1x1 input here)
    assert ops["Flatten"] == ops["Dropout"] == ops["Identity"] == 0
    assert s.total_other_ops == sum(ops.values())
    assert s.total_params == 4 and s.output_shape == (1, 2)


def test_shapes_match_a_real_forward(rng):
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 4, 3, stride=2, padding=1)
            self.b = nn.Conv2d(3, 4, 1, stride=2)
            self.up = nn.ConvTranspose2d(8, 2, 4, stride=2, padding=1)

        def forward(self, x):
            y = np.concatenate([self.a(x), self.b(x)], axis=1)
            y = F.pad(y, (1, 1, 0, 2))
            y = F.max_pool2d(F.relu(self.up(y)), 3, stride=2, ceil_mode=True)
            return F.adaptive_max_pool2d(y, (2, 3)).mean(axis=1)

    x = rng.standard_normal((2, 3, 13, 11)).astype(np.float32)
    for model in (Odd(), digits_cnn("standard", width=4), digits_cnn("mobile", width=4)):
        shape = (2, 3, 13, 11) if isinstance(model, Odd) else (2, 1, 8, 8)
        expected = model.eval()(x if isinstance(model, Odd) else x[:, :1, :8, :8]).shape
        assert summary(model, shape).output_shape == expected


# ---- published numbers --------------------------------------------------------------------------------

def test_mobilenet_v2_published_totals_quickly():
    model = mobilenet_v2()
    start = time.perf_counter()
    s = summary(model, (1, 3, 224, 224))
    assert time.perf_counter() - start < 1.0
    assert s.total_params == s.trainable_params == 3_504_872
    assert s.total_macs == 300_774_272 and round(s.total_macs / 1e6, 1) == 300.8
    assert s.output_shape == (1, 1000)
    assert sum(r.params for r in s.rows) == s.total_params
    assert "Total params: 3,504,872" in str(s)
    # torchvision's block: features.3 is the first residual 24 -> 24 block, at 56x56
    assert [r.type for r in s.rows if r.name.startswith("features.3")][-1] == "add"


def test_resnet18_published_totals():
    s = summary(resnet18(), (1, 3, 224, 224))
    assert s.total_params == 11_689_512
    assert s.total_macs == 1_814_073_344 and round(s.total_macs / 1e9, 3) == 1.814
    conv1 = s.rows[0]
    assert (conv1.name, conv1.output_shape, conv1.macs) == ("conv1", (1, 64, 112, 112), 112 * 112 * 64 * 3 * 49)
    last_conv = [r for r in s.rows if r.name == "layer4.1.conv2"][0]
    assert last_conv.receptive_field == (435, 435) and last_conv.jump == (32, 32)   # the published value
    # global pooling merges the 7x7 map: 435 + 6 * 32
    assert s.receptive_field == (627, 627)


def test_batch_size_scales_macs_not_params():
    one, four = summary(digits_cnn(width=32), (1, 1, 8, 8)), summary(digits_cnn(width=32), (4, 1, 8, 8))
    assert four.total_macs == 4 * one.total_macs and four.total_params == one.total_params == 94_186


# ---- receptive fields ---------------------------------------------------------------------------------

def test_two_3x3_see_what_one_5x5_sees_with_fewer_weights():
    two = nn.Sequential(nn.Conv2d(1, 1, 3, bias=False), nn.Conv2d(1, 1, 3, bias=False))
    one = nn.Conv2d(1, 1, 5, bias=False)
    s2, s1 = summary(two, (1, 1, 32, 32)), summary(one, (1, 1, 32, 32))
    assert s2.receptive_field == s1.receptive_field == (5, 5)
    assert (s2.total_params, s1.total_params) == (18, 25)
    assert s2.output_shape == s1.output_shape == (1, 1, 28, 28)


def test_receptive_field_recurrence_with_strides():
    net = nn.Sequential(nn.Conv2d(1, 1, 3, stride=2), nn.Conv2d(1, 1, 3), nn.MaxPool2d(2), nn.Conv2d(1, 1, 3))
    s = summary(net, (1, 1, 64, 64))
    # r: 1 -> 3 (j 2) -> 3 + 2*2 = 7 -> 7 + 1*2 = 9 (j 4) -> 9 + 2*4 = 17
    assert [r.receptive_field[0] for r in s.rows] == [3, 7, 9, 17]
    assert [r.jump[0] for r in s.rows] == [2, 2, 4, 4]


def test_residual_add_takes_the_larger_branch():
    block = nn.InvertedResidual(8, 8, stride=1, expand_ratio=2)
    s = summary(block, (1, 8, 10, 10))
    add = s.rows[-1]
    assert add.type == "add" and add.name == "add"
    assert add.receptive_field == (3, 3)      # the 3x3 depthwise branch, not the identity's 1


# ---- side effects, bad input --------------------------------------------------------------------------

def test_summary_leaves_the_model_untouched():
    model = mobilenet_v2()
    model.train()
    model.features[1].eval()
    bn = model.features[0][1]
    before = bn.running_mean.copy(), int(bn.num_batches_tracked)
    summary(model, (1, 3, 64, 64))
    assert model.training and not model.features[1].training and model.features[2].training
    assert np.array_equal(bn.running_mean, before[0]) and int(bn.num_batches_tracked) == before[1]
    assert not any("forward" in vars(m) for m in model.modules())
    assert model.eval()(np.zeros((1, 3, 32, 32), np.float32)).shape == (1, 1000)


def test_to_dict_is_json_ready():
    d = summary(digits_cnn("separable", width=8), (1, 1, 8, 8)).to_dict()
    d2 = json.loads(json.dumps(d))
    assert d2["total_flops"] == 2 * d2["total_macs"]
    assert d2["rows"][0]["output_shape"] == [1, 8, 8, 8]


@pytest.mark.parametrize("shape, exc, words", [
    ("1,3,224,224", TypeError, "input_shape"),
    ((1, 3, 2.0, 4), TypeError, "input_shape"),
    ((), TypeError, "input_shape"),
    ((1, 0, 8, 8), ValueError, "positive"),
    ((1, 3, 8, 8), ValueError, "channels"),
])
def test_bad_input_shape(shape, exc, words):
    with pytest.raises(exc, match=words):
        summary(digits_cnn(width=4), shape)


def test_errors_name_the_layer_and_reject_non_modules():
    with pytest.raises(ValueError, match="features.0"):
        summary(mobilenet_v2(), (1, 1, 224, 224))
    with pytest.raises(ValueError, match="larger than"):
        summary(nn.Conv2d(1, 1, 5), (1, 1, 3, 3))
    with pytest.raises(TypeError, match="Module"):
        summary(lambda x: x, (1, 3))

    class Indexing(nn.Module):
        def forward(self, x):
            return x[0]

    with pytest.raises(TypeError, match="Indexing"):
        summary(Indexing(), (1, 3))


# ---- compare_convs ------------------------------------------------------------------------------------

def test_compare_convs_seed_examples():
    t = compare_convs()
    assert [r.kind for r in t.rows] == ["standard", "pointwise", "depthwise", "separable", "grouped"]
    got = {r.kind: (r.in_channels, r.out_channels, r.params, r.macs) for r in t.rows}
    hw = 56 * 56
    assert got == {
        "standard": (64, 128, 73_728, 73_728 * hw),
        "pointwise": (64, 32, 2_048, 2_048 * hw),
        "depthwise": (64, 64, 576, 576 * hw),
        "separable": (64, 128, 8_768, 8_768 * hw),
        "grouped": (64, 128, 18_432, 18_432 * hw),
    }
    for r in t.rows:
        assert r.ratio == pytest.approx(r.theory, rel=1e-12)
    assert 8 <= t["separable"].saving <= 9                 # the seed's "8-9x cheaper"
    assert t["pointwise"].standard_params == 64 * 32 * 9
    text = str(t)
    assert "1/N + 1/k^2" in text and "8,768" in text and "0.1189" in text


def test_compare_convs_custom_and_bad_arguments():
    t = compare_convs(32, 64, kernel_size=5, groups=8, height=7, width=9)
    assert t["pointwise"].out_channels == 64 and t["standard"].macs == 64 * 32 * 25 * 63
    assert t["separable"].ratio == pytest.approx(1 / 64 + 1 / 25)
    assert json.loads(json.dumps(t.to_dict()))["rows"][3]["kind"] == "separable"
    with pytest.raises(ValueError, match="groups"):
        compare_convs(64, 128, groups=3)
    with pytest.raises(TypeError, match="both"):
        compare_convs(64)
    with pytest.raises(ValueError, match="kernel_size"):
        compare_convs(8, 8, kernel_size=4)
    with pytest.raises(TypeError, match="in_channels"):
        compare_convs(8.0, 8)

"""mobilenet_v2 and resnet18 against PyTorch reference modules with torchvision's structure and names.

torchvision is not a dependency, so the references below are written with
torch.nn only, following torchvision's module tree (and therefore its
state_dict keys) exactly.
"""

import numpy as np
import pytest
import torch
from torch import nn as tnn

from convlayers import models


# ---------------------------------------------------------------- references (torch.nn only)

def _make_divisible(v, divisor=8):
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class TvConv2dNormActivation(tnn.Sequential):
    def __init__(self, cin, cout, kernel_size=3, stride=1, groups=1, activation=tnn.ReLU6):
        layers = [tnn.Conv2d(cin, cout, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
                  tnn.BatchNorm2d(cout)]
        if activation is not None:
            layers.append(activation(inplace=True))
        super().__init__(*layers)


class TvInvertedResidual(tnn.Module):
    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers = []
        if expand_ratio != 1:
            layers.append(TvConv2dNormActivation(inp, hidden, kernel_size=1))
        layers += [TvConv2dNormActivation(hidden, hidden, stride=stride, groups=hidden),
                   tnn.Conv2d(hidden, oup, 1, 1, 0, bias=False), tnn.BatchNorm2d(oup)]
        self.conv = tnn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class TvMobileNetV2(tnn.Module):
    def __init__(self, num_classes=1000, width_mult=1.0):
        super().__init__()
        settings = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2],
                    [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]]
        cin = _make_divisible(32 * width_mult)
        last = _make_divisible(1280 * max(1.0, width_mult))
        features = [TvConv2dNormActivation(3, cin, stride=2)]
        for t, c, n, s in settings:
            cout = _make_divisible(c * width_mult)
            for i in range(n):
                features.append(TvInvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        features.append(TvConv2dNormActivation(cin, last, kernel_size=1))
        self.features = tnn.Sequential(*features)
        self.classifier = tnn.Sequential(tnn.Dropout(0.2), tnn.Linear(last, num_classes))

    def forward(self, x):
        x = tnn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


class TvBasicBlock(tnn.Module):
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = tnn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.relu = tnn.ReLU(inplace=True)
        self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class TvResNet18(tnn.Module):
    def __init__(self, num_classes=1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = tnn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = tnn.BatchNorm2d(64)
        self.relu = tnn.ReLU(inplace=True)
        self.maxpool = tnn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(64, 2)
        self.layer2 = self._make_layer(128, 2, 2)
        self.layer3 = self._make_layer(256, 2, 2)
        self.layer4 = self._make_layer(512, 2, 2)
        self.avgpool = tnn.AdaptiveAvgPool2d((1, 1))
        self.fc = tnn.Linear(512, num_classes)

    def _make_layer(self, planes, blocks, stride=1):
        down = None
        if stride != 1 or self.inplanes != planes:
            down = tnn.Sequential(tnn.Conv2d(self.inplanes, planes, 1, stride, bias=False), tnn.BatchNorm2d(planes))
        layers = [TvBasicBlock(self.inplanes, planes, stride, down)]
        self.inplanes = planes
        layers += [TvBasicBlock(planes, planes) for _ in range(1, blocks)]
        return tnn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def randomise(model, seed):
    """Non-trivial BN statistics and weights, so that a wrong key mapping would show."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, value in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                value.fill_(7)
            elif name.endswith("running_var"):
                value.copy_(torch.rand(value.shape, generator=g) + 0.5)
            elif name.endswith("running_mean") or name.endswith("bias"):
                value.copy_(torch.randn(value.shape, generator=g) * 0.1)
            elif value.ndim == 1:   # BN weight
                value.copy_(torch.rand(value.shape, generator=g) + 0.5)
    return model


# ---------------------------------------------------------------- tests

@pytest.mark.parametrize("build, reference, expected", [
    (lambda: models.mobilenet_v2(), lambda: TvMobileNetV2(), 3_504_872),
    (lambda: models.resnet18(), lambda: TvResNet18(), 11_689_512),
    (lambda: models.mobilenet_v2(num_classes=10, width_mult=0.5), lambda: TvMobileNetV2(10, 0.5), None),
    (lambda: models.mobilenet_v2(num_classes=7, width_mult=1.4), lambda: TvMobileNetV2(7, 1.4), None),
    (lambda: models.resnet18(num_classes=3), lambda: TvResNet18(3), None),
])
def test_parameter_counts_and_keys_match_torchvision(build, reference, expected):
    ours, ref = build(), reference()
    if expected is not None:
        assert ours.num_parameters() == expected
    ref_state = ref.state_dict()
    ours_state = ours.state_dict()
    assert list(ours_state) == list(ref_state)
    assert [v.shape for v in ours_state.values()] == [tuple(v.shape) for v in ref_state.values()]
    assert ours.num_parameters() == sum(p.numel() for p in ref.parameters())


def test_well_known_keys_exist():
    mb = models.mobilenet_v2().state_dict()
    for key in ("features.0.0.weight", "features.0.1.running_mean", "features.1.conv.0.0.weight",
                "features.1.conv.1.weight", "features.2.conv.0.0.weight", "features.2.conv.3.running_var",
                "features.18.0.weight", "classifier.1.weight"):
        assert key in mb, key
    rn = models.resnet18().state_dict()
    for key in ("conv1.weight", "bn1.num_batches_tracked", "layer2.0.downsample.0.weight",
                "layer2.0.downsample.1.running_var", "layer4.1.bn2.bias", "fc.weight"):
        assert key in rn, key
    assert "layer1.0.downsample.0.weight" not in rn


def test_torchvision_initialisation():
    model = models.mobilenet_v2()
    stem = model.features[0][0].weight.data      # kaiming_normal fan_out: std = sqrt(2 / (32*9))
    assert abs(stem.std() - np.sqrt(2 / (32 * 9))) < 0.1 * np.sqrt(2 / (32 * 9))
    fc = model.classifier[1]
    assert abs(fc.weight.data.std() - 0.01) < 0.001 and not fc.bias.data.any()
    assert all((m.weight.data == 1).all() for m in model.modules() if type(m).__name__ == "BatchNorm2d")


@pytest.mark.parametrize("dtype, rtol, atol", [(np.float32, 1e-4, 1e-4), (np.float64, 1e-9, 1e-10)])
@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet18"])
def test_whole_model_matches_reference(name, dtype, rtol, atol):
    torch.manual_seed(0)
    if name == "mobilenet_v2":
        ref, ours, size = TvMobileNetV2(num_classes=10), models.mobilenet_v2(num_classes=10), 64
    else:
        ref, ours, size = TvResNet18(num_classes=10), models.resnet18(num_classes=10), 64
    randomise(ref, 1)
    ref = ref.double() if dtype == np.float64 else ref.float()
    ref.eval()
    ours.to(dtype)
    result = ours.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()}, strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    ours.eval()
    x = np.random.default_rng(2).standard_normal((2, 3, size, size)).astype(dtype)
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    got = ours(x)
    assert got.dtype == dtype and got.shape == (2, 10)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol * scale)
    assert (got.argmax(1) == expected.argmax(1)).all()
    # and back: our state_dict loads into the reference strictly
    fresh = TvMobileNetV2(num_classes=10) if name == "mobilenet_v2" else TvResNet18(num_classes=10)
    fresh.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()}, strict=True)


def test_repr_matches_reference_for_resnet():
    # Class names of the building blocks differ (BasicBlock vs TvBasicBlock); everything else is torch's.
    ours = repr(models.resnet18()).replace("BasicBlock", "TvBasicBlock").replace("ResNet", "TvResNet18")
    assert ours == repr(TvResNet18())


def test_mobilenet_uses_the_nn_inverted_residual_and_residual_rule():
    from convlayers.nn import InvertedResidual
    model = models.mobilenet_v2()
    blocks = [m for m in model.features if isinstance(m, InvertedResidual)]
    assert len(blocks) == 17
    assert [b.use_res_connect for b in blocks].count(True) == 10


@pytest.mark.parametrize("call, match", [
    (lambda: models.mobilenet_v2(num_classes=0), "num_classes"),
    (lambda: models.mobilenet_v2(width_mult=0), "width_mult"),
    (lambda: models.resnet18(num_classes=2.5), "num_classes"),
    (lambda: models.digits_cnn("huge"), "kind"),
    (lambda: models.digits_cnn(width=0), "width"),
])
def test_bad_model_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_make_divisible():
    assert models.make_divisible(32 * 0.35) == 16   # 8 would lose more than 10 %
    assert models.make_divisible(1280 * 1.4) == 1792
    assert models.make_divisible(24 * 0.75) == 24   # 18 -> 16 would lose >10 %, so 24

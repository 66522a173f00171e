"""convlayers.interop: the torch twin of a model has the same keys and computes the same outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import assert_close

from convlayers import models, nn
from convlayers.interop import state_dict_from_torch, state_dict_to_torch, to_torch


def _randomise_bn(model, rng):
    """Non-trivial running statistics, so that eval-mode BN is really exercised."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean[...] = rng.standard_normal(m.num_features)
            m.running_var[...] = rng.uniform(0.5, 2.0, m.num_features)
            m.weight.data[...] = rng.uniform(0.5, 1.5, m.num_features)
            m.bias.data[...] = rng.standard_normal(m.num_features) * 0.1
    return model


MODULES = [
    lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1, padding_mode="reflect"),
    lambda: nn.ConvTranspose2d(3, 4, 3, stride=2, output_padding=1),
    lambda: nn.Sequential(nn.ConvBNReLU(3, 8), nn.MaxPool2d(2), nn.AvgPool2d(3, 1, 1), nn.AdaptiveAvgPool2d(2),
                          nn.Flatten(), nn.Linear(32, 5), nn.ReLU6(), nn.Dropout(), nn.Identity()),
    lambda: nn.DepthwiseSeparable(3, 8, stride=2),
    lambda: nn.MobileBlock(3, 8),
    lambda: nn.InvertedResidual(3, 3, 1, 6),
    lambda: nn.InvertedResidual(3, 8, 2, 1),
    lambda: models.digits_cnn("separable", width=8),
]


@pytest.mark.parametrize("make", MODULES)
def test_twin_matches(make):
    rng = np.random.default_rng(0)
    module = _randomise_bn(make(), rng).eval()
    twin = to_torch(module)
    assert list(twin.state_dict()) == list(module.state_dict())
    shape = (2, 1, 8, 8) if isinstance(module, nn.Sequential) and module[0].__class__.__name__ == "ConvBNReLU" \
        and module[0][0].in_channels == 1 else (2, 3, 8, 8)
    x = rng.standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        assert_close(module(x), twin(torch.from_numpy(x)).numpy())


@pytest.mark.parametrize("build", [models.mobilenet_v2, models.resnet18])
def test_model_twins_match_in_float64(build):
    rng = np.random.default_rng(1)
    model = _randomise_bn(build(num_classes=7), rng).eval()
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean = m.running_mean.astype(np.float64)
            m.running_var = m.running_var.astype(np.float64)
    twin = to_torch(model)
    x = rng.standard_normal((1, 3, 48, 48))
    with torch.no_grad():
        assert_close(model(x), twin(torch.from_numpy(x)).numpy())


def test_state_dict_round_trip():
    model = models.digits_cnn("standard", width=4)
    back = state_dict_from_torch(state_dict_to_torch(model.state_dict()))
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(back[k], v)


def test_unknown_module_is_refused():
    class Odd(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(TypeError, match="no torch twin for Odd"):
        to_torch(Odd())

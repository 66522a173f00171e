"""convlayers.nn.fusion: Conv2d -> BatchNorm2d (eval) -> ReLU/ReLU6 fused in inference.

The fused pass must give the unfused layers' numbers (and PyTorch's), happen
only when nothing can tell the difference, and leave the shape probe of
``analysis.summary`` counting every layer.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convlayers import Tensor, analysis, models, nn
from convlayers.functional import conv as conv_module
from convlayers.interop import to_torch
from convlayers.nn import fusion

CASES = [  # (in, out, kernel, stride, groups, bias, padding_mode, activation, input shape)
    (4, 6, 3, 1, 1, False, "zeros", nn.ReLU, (3, 4, 9, 8)),
    (6, 6, 3, 2, 6, False, "zeros", nn.ReLU6, (2, 6, 11, 11)),     # depthwise, stride 2
    (3, 3, 3, 1, 3, False, "zeros", nn.ReLU6, (2, 3, 60, 61)),     # depthwise, large planes read in place
    (4, 4, 3, 1, 4, False, "zeros", nn.ReLU, (2, 4, 9, 9)),        # depthwise, small planes
    (8, 4, 1, 1, 1, True, "zeros", None, (3, 8, 5, 7)),            # 1x1 with conv bias, no activation
    (4, 8, 3, 1, 2, True, "reflect", nn.ReLU, (1, 4, 10, 10)),     # grouped, one sample, reflect padding
    (3, 5, 5, 3, 1, False, "zeros", nn.ReLU6, (4, 3, 16, 13)),
]


def _stack(cin, cout, k, s, g, bias, mode, act, dtype, rng):
    conv = nn.Conv2d(cin, cout, k, stride=s, padding=k // 2, groups=g, bias=bias, padding_mode=mode, dtype=dtype)
    bn = nn.BatchNorm2d(cout, dtype=dtype)
    bn.running_mean[:] = rng.standard_normal(cout)
    bn.running_var[:] = rng.uniform(0.2, 3.0, cout)
    bn.weight.data[:] = rng.standard_normal(cout)
    bn.bias.data[:] = rng.standard_normal(cout)
    layers = [conv, bn] + ([act()] if act else [])
    return nn.Sequential(*layers).eval()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1]}-k{c[2]}-s{c[3]}-g{c[4]}-{c[6]}")
def test_fused_equals_unfused_and_torch(monkeypatch, case, dtype):
    *spec, shape = case
    rng = np.random.default_rng(len(shape) + spec[0])
    seq = _stack(*spec, dtype, rng)
    x = rng.standard_normal(shape).astype(dtype)
    x[0, 0, 0, :2] = np.nan  # NaN goes through the clamp as through ReLU
    calls = []
    real = conv_module.conv2d_affine
    monkeypatch.setattr(conv_module, "conv2d_affine", lambda *a, **k: calls.append(1) or real(*a, **k))
    fused = seq(x)
    assert calls, "the inference call did not take the fused path"
    unfused = x
    for layer in seq:
        unfused = layer(unfused)
    assert fused.dtype == dtype and fused.shape == unfused.shape
    np.testing.assert_array_equal(np.isnan(fused), np.isnan(unfused))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(fused, unfused, rtol=tol, atol=tol)
    with torch.no_grad():
        want = to_torch(seq)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(fused, want, rtol=10 * tol, atol=10 * tol)


def test_fusion_only_when_nothing_can_tell(monkeypatch):
    rng = np.random.default_rng(0)
    seq = _stack(3, 4, 3, 1, 1, False, "zeros", nn.ReLU, np.float64, rng)
    x = rng.standard_normal((2, 3, 6, 6))
    calls = []
    real = conv_module.conv2d_affine
    monkeypatch.setattr(conv_module, "conv2d_affine", lambda *a, **k: calls.append(1) or real(*a, **k))
    seq.train()
    seq(x)                                   # training: batch statistics, running stats updated
    assert not calls
    seq.eval()
    out = seq(Tensor(x, requires_grad=True))  # gradients recorded: the graph needs every layer
    out.sum().backward()
    assert not calls and seq[0].weight.grad is not None
    seq(x)
    assert len(calls) == 1
    with pytest.raises(ValueError, match="expected input with 3 channels"):
        seq(np.zeros((1, 5, 6, 6)))


def test_summary_still_sees_every_layer():
    rows = analysis.summary(models.resnet18(), (1, 3, 64, 64)).rows
    names = {row.name for row in rows}
    assert {"bn1", "relu", "layer1.0.bn1", "layer1.0.bn2", "layer2.0.downsample.1"} <= names


@pytest.mark.parametrize("make", [models.resnet18, models.mobilenet_v2])
def test_models_fused_inference_matches_torch(make):
    model = make().eval()
    rng = np.random.default_rng(1)
    for m in model.modules():  # non-trivial running statistics, so the folded map matters
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean[:] = rng.standard_normal(m.num_features) * 0.1
            m.running_var[:] = rng.uniform(0.5, 2.0, m.num_features)
    x = rng.standard_normal((2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        want = to_torch(model)(torch.from_numpy(x)).numpy()
    got = model(x)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    assert fusion.run_sequential([], x) is x

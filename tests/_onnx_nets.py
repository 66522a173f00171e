"""PyTorch definitions of the networks the ONNX tests export (torchvision's wheel here is a CUDA build).

ResNet-18 and MobileNetV2 are the ``convlayers.interop`` twins of
``convlayers.models``; the others are small PyTorch modules in the style of
their namesakes: MobileNetV3-small (Hardswish, squeeze-excite with
Hardsigmoid), EfficientNet-B0 (SiLU, squeeze-excite, no stochastic depth), a
UNet (nearest and bilinear Upsample + Concat, ConvTranspose), a 1-D conv net.
"""

from __future__ import annotations

import io

import numpy as np


def _torch():
    import torch
    return torch


def randomize_bn(model, seed=0):
    """Give every BatchNorm random running statistics and affine parameters (defaults would hide the fold)."""
    torch = _torch()
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.1)
    return model.eval()


def build(name):
    """``(torch module, input shape)`` for a network name."""
    torch = _torch()
    nn = torch.nn
    torch.manual_seed(0)
    if name == "resnet18":
        from convlayers import models
        from convlayers.interop import to_torch
        return randomize_bn(to_torch(models.resnet18(num_classes=10))), (2, 3, 64, 64)
    if name == "mobilenet_v2":
        from convlayers import models
        from convlayers.interop import to_torch
        return randomize_bn(to_torch(models.mobilenet_v2(num_classes=10, width_mult=0.5))), (2, 3, 64, 64)

    class SE(nn.Module):
        def __init__(self, c, r, gate):
            super().__init__()
            self.fc1, self.fc2, self.gate = nn.Conv2d(c, r, 1), nn.Conv2d(r, c, 1), gate

        def forward(self, x):
            s = torch.nn.functional.adaptive_avg_pool2d(x, 1)
            s = self.fc2(torch.nn.functional.relu(self.fc1(s)) if isinstance(self.gate, nn.Hardsigmoid)
                         else torch.nn.functional.silu(self.fc1(s)))
            return x * self.gate(s)

    def cba(cin, cout, k, s, act, groups=1):
        return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout),
                             act())

    class MBBlock(nn.Module):
        def __init__(self, cin, exp, cout, k, s, act, se_gate):
            super().__init__()
            layers = [cba(cin, exp, 1, 1, act)] if exp != cin else []
            layers += [cba(exp, exp, k, s, act, groups=exp)]
            if se_gate is not None:
                layers.append(SE(exp, max(8, exp // 4), se_gate))
            layers += [nn.Conv2d(exp, cout, 1, bias=False), nn.BatchNorm2d(cout)]
            self.body = nn.Sequential(*layers)
            self.residual = s == 1 and cin == cout

        def forward(self, x):
            y = self.body(x)
            return x + y if self.residual else y

    if name == "mobilenet_v3_small":
        hs = nn.Hardswish
        net = nn.Sequential(
            cba(3, 16, 3, 2, hs),
            MBBlock(16, 16, 16, 3, 2, nn.ReLU, nn.Hardsigmoid()),
            MBBlock(16, 72, 24, 3, 2, nn.ReLU, None),
            MBBlock(24, 88, 24, 3, 1, nn.ReLU, None),
            MBBlock(24, 96, 40, 5, 2, hs, nn.Hardsigmoid()),
            MBBlock(40, 240, 40, 5, 1, hs, nn.Hardsigmoid()),
            cba(40, 96, 1, 1, hs),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(96, 128), hs(), nn.Dropout(0.2), nn.Linear(128, 10))
        return randomize_bn(net), (2, 3, 64, 64)
    if name == "efficientnet_b0":
        silu = nn.SiLU
        net = nn.Sequential(
            cba(3, 32, 3, 2, silu),
            MBBlock(32, 32, 16, 3, 1, silu, nn.Sigmoid()),
            MBBlock(16, 96, 24, 3, 2, silu, nn.Sigmoid()),
            MBBlock(24, 144, 24, 3, 1, silu, nn.Sigmoid()),
            MBBlock(24, 144, 40, 5, 2, silu, nn.Sigmoid()),
            MBBlock(40, 240, 40, 5, 1, silu, nn.Sigmoid()),
            cba(40, 160, 1, 1, silu),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(160, 10))
        return randomize_bn(net), (2, 3, 64, 64)
    if name == "unet":
        class UNet(nn.Module):
            def __init__(self, c=8):
                super().__init__()
                def dbl(i, o):
                    return nn.Sequential(cba(i, o, 3, 1, nn.ReLU), cba(o, o, 3, 1, nn.ReLU))
                self.e1, self.e2, self.e3 = dbl(3, c), dbl(c, 2 * c), dbl(2 * c, 4 * c)
                self.pool = nn.MaxPool2d(2)
                self.up_nearest = nn.Upsample(scale_factor=2, mode="nearest")
                self.up_bilinear = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
                self.d2, self.d1 = dbl(6 * c, 2 * c), dbl(3 * c, c)
                self.tconv = nn.ConvTranspose2d(c, c, 2, stride=2)
                self.head = nn.Conv2d(c, 2, 1)

            def forward(self, x):
                a = self.e1(x)
                b = self.e2(self.pool(a))
                z = self.e3(self.pool(b))
                y = self.d2(torch.cat([self.up_nearest(z), b], 1))
                y = self.d1(torch.cat([self.up_bilinear(y), a], 1))
                return self.head(torch.nn.functional.max_pool2d(self.tconv(y), 2))
        return randomize_bn(UNet()), (2, 3, 32, 32)
    if name == "conv1d":
        net = nn.Sequential(
            nn.Conv1d(4, 16, 5, padding=2), nn.BatchNorm1d(16), nn.ReLU(),
            nn.MaxPool1d(2), nn.Conv1d(16, 32, 3, stride=2, padding=1, dilation=1), nn.ReLU(),
            nn.AvgPool1d(2), nn.Conv1d(32, 32, 3, padding=2, dilation=2, groups=4), nn.ReLU(),
            nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(32, 5))
        return randomize_bn(net), (2, 4, 64)
    raise KeyError(name)


NETS = ["resnet18", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "unet", "conv1d"]


def export(model, shape, opset, dynamic_batch=True):
    """``torch.onnx.export`` (the TorchScript exporter: the dynamo one wants onnxscript) to bytes."""
    torch = _torch()
    buf = io.BytesIO()
    x = torch.from_numpy(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
    kwargs = {"dynamic_axes": {"input": {0: "batch"}, "output": {0: "batch"}}} if dynamic_batch else {}
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), buf, input_names=["input"], output_names=["output"], opset_version=opset,
                          dynamo=False, **kwargs)
    return buf.getvalue()

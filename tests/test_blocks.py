"""The seed's blocks: shapes, exact parameter counts, the residual rule and parity with torch.nn."""

import numpy as np
import pytest
import torch
from torch import nn as tnn

from convlayers import Tensor, nn


def torch_cbr(cin, cout, k=3, s=1, g=1, act=tnn.ReLU):
    return tnn.Sequential(tnn.Conv2d(cin, cout, k, s, (k - 1) // 2, groups=g, bias=False), tnn.BatchNorm2d(cout),
                          act(inplace=True))


class TorchDepthwiseSeparable(tnn.Module):
    def __init__(self, cin, cout, s=1):
        super().__init__()
        self.depthwise = torch_cbr(cin, cin, 3, s, cin)
        self.pointwise = torch_cbr(cin, cout, 1)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class TorchMobileBlock(tnn.Module):
    def __init__(self, cin, cout, t=4, s=1):
        super().__init__()
        h = cin * t
        self.expand = tnn.Conv2d(cin, h, 1)
        self.depthwise = tnn.Conv2d(h, h, 3, s, 1, groups=h)
        self.project = tnn.Conv2d(h, cout, 1)
        self.relu = tnn.ReLU()

    def forward(self, x):
        return self.project(self.relu(self.depthwise(self.relu(self.expand(x)))))


class TorchInvertedResidual(tnn.Module):
    def __init__(self, inp, oup, stride, t):
        super().__init__()
        h = int(round(inp * t))
        self.use_res_connect = stride == 1 and inp == oup
        layers = [torch_cbr(inp, h, 1, act=tnn.ReLU6)] if t != 1 else []
        layers += [torch_cbr(h, h, 3, stride, h, act=tnn.ReLU6), tnn.Conv2d(h, oup, 1, bias=False), tnn.BatchNorm2d(oup)]
        self.conv = tnn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


def count(cin, cout, h=1):
    return dict(
        standard=9 * cin * cout + 2 * cout,
        separable=9 * cin + 2 * cin + cin * cout + 2 * cout,
        mobile=(cin * h + h) + (9 * h + h) + (h * cout + cout),
        inverted=((cin * h + 2 * h) if h != cin else 0) + (9 * h + 2 * h) + (h * cout + 2 * cout),
    )


@pytest.mark.parametrize("cin, cout, stride", [(8, 16, 1), (16, 16, 2), (3, 5, 1)])
def test_parameter_count_formulas(cin, cout, stride):
    assert nn.ConvBNReLU(cin, cout, stride=stride).num_parameters() == count(cin, cout)["standard"]
    assert nn.DepthwiseSeparable(cin, cout, stride).num_parameters() == count(cin, cout)["separable"]
    assert nn.MobileBlock(cin, cout, 4, stride).num_parameters() == count(cin, cout, 4 * cin)["mobile"]
    for t in (1, 6):
        block = nn.InvertedResidual(cin, cout, stride, t)
        assert block.num_parameters() == count(cin, cout, cin * t)["inverted"]
    # the seed's efficiency claim in one line: separable is several times cheaper than standard
    assert nn.DepthwiseSeparable(64, 128).num_parameters() * 7 < nn.ConvBNReLU(64, 128).num_parameters()


@pytest.mark.parametrize("cin, cout, stride, t, residual", [
    (16, 16, 1, 6, True), (16, 16, 2, 6, False), (16, 24, 1, 6, False), (16, 16, 1, 1, True), (32, 16, 1, 1, False),
])
def test_inverted_residual_rule_and_keys(cin, cout, stride, t, residual):
    block = nn.InvertedResidual(cin, cout, stride, t)
    assert block.use_res_connect is residual
    ref = TorchInvertedResidual(cin, cout, stride, t)
    assert list(block.state_dict()) == list(ref.state_dict())
    first = "conv.0.0.weight"
    assert first in block.state_dict()
    assert ("conv.3.weight" in block.state_dict()) == (t != 1)


def test_residual_is_actually_added():
    block = nn.InvertedResidual(4, 4, 1, 2).eval()
    for p in block.parameters():
        p.data[...] = 0     # the branch outputs exactly zero, so the block is the identity
    x = np.random.default_rng(0).standard_normal((1, 4, 5, 5)).astype(np.float32)
    np.testing.assert_array_equal(block(x), x)
    no_res = nn.InvertedResidual(4, 4, 2, 2).eval()
    for p in no_res.parameters():
        p.data[...] = 0
    assert not no_res(x).any()


@pytest.mark.parametrize("ours, theirs, shape", [
    (lambda: nn.ConvBNReLU(3, 8, stride=2), lambda: torch_cbr(3, 8, 3, 2), (2, 3, 9, 9)),
    (lambda: nn.ConvBNReLU(3, 8, activation="relu6"), lambda: torch_cbr(3, 8, act=tnn.ReLU6), (2, 3, 6, 6)),
    (lambda: nn.DepthwiseSeparable(4, 8, 2), lambda: TorchDepthwiseSeparable(4, 8, 2), (2, 4, 8, 8)),
    (lambda: nn.MobileBlock(4, 6, 3, 2), lambda: TorchMobileBlock(4, 6, 3, 2), (2, 4, 7, 7)),
    (lambda: nn.InvertedResidual(8, 8, 1, 6), lambda: TorchInvertedResidual(8, 8, 1, 6), (2, 8, 6, 6)),
    (lambda: nn.InvertedResidual(8, 16, 2, 1), lambda: TorchInvertedResidual(8, 16, 2, 1), (2, 8, 6, 6)),
])
@pytest.mark.parametrize("train", [False, True])
def test_blocks_match_torch(ours, theirs, shape, train):
    ours, theirs = ours().double(), theirs().double()
    with torch.no_grad():
        for name, value in theirs.state_dict().items():
            if name.endswith("running_var"):
                value.uniform_(0.5, 1.5)
            elif name.endswith("running_mean"):
                value.normal_()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    ours.train(train)
    theirs.train(train)
    x = np.random.default_rng(1).standard_normal(shape)
    xt = torch.from_numpy(x).requires_grad_(True)
    expected = theirs(xt)
    got = ours(Tensor(x, requires_grad=True))
    np.testing.assert_allclose(got.data, expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    expected.square().sum().backward()
    (got * got).sum().backward()
    for (name, p), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-8, atol=1e-10, err_msg=name)


@pytest.mark.parametrize("make, shape, out", [
    (lambda: nn.ConvBNReLU(1, 8), (2, 1, 8, 8), (2, 8, 8, 8)),
    (lambda: nn.ConvBNReLU(1, 8, kernel_size=5, stride=2), (2, 1, 9, 9), (2, 8, 5, 5)),
    (lambda: nn.DepthwiseSeparable(8, 16, stride=2), (2, 8, 7, 7), (2, 16, 4, 4)),
    (lambda: nn.MobileBlock(8, 4), (2, 8, 5, 6), (2, 4, 5, 6)),
    (lambda: nn.InvertedResidual(8, 16, 2, 6), (2, 8, 8, 8), (2, 16, 4, 4)),
])
def test_block_shapes(make, shape, out):
    assert make().eval()(np.zeros(shape, dtype=np.float32)).shape == out


@pytest.mark.parametrize("make, match", [
    (lambda: nn.InvertedResidual(8, 8, 3, 6), "stride"),
    (lambda: nn.InvertedResidual(8, 8, 1, 0), "expand_ratio"),
    (lambda: nn.MobileBlock(8, 8, expand_ratio=0), "expand_ratio"),
    (lambda: nn.ConvBNReLU(8, 8, activation="gelu"), "activation"),
    (lambda: nn.DepthwiseSeparable(8, 0), "out_channels"),
    (lambda: nn.ConvBNReLU(8, 8, kernel_size=2.5), "kernel_size"),
])
def test_bad_block_arguments(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_blocks_are_documented_with_examples():
    for cls in (nn.ConvBNReLU, nn.DepthwiseSeparable, nn.MobileBlock, nn.InvertedResidual):
        doc = cls.__doc__
        assert "Shape" in doc and "Examples" in doc and ">>>" in doc and "Parameters:" in doc, cls.__name__

"""convlayers.onnx.freeze: a module tree as an inference graph, against PyTorch and the module itself."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from convlayers import models, nn  # noqa: E402
from convlayers.interop import to_torch  # noqa: E402
from convlayers.onnx import FreezeError, freeze  # noqa: E402

TOL = {np.float32: dict(rtol=1e-4, atol=1e-4), np.float64: dict(rtol=1e-9, atol=1e-9)}


def _randomize(module, rng, dtype):
    """Non-trivial BatchNorm statistics and affine maps (the init's ones and zeros would hide a lost fold)."""
    module.to(dtype) if hasattr(module, "to") else None
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean[...] = rng.standard_normal(m.num_features) * 0.1
            m.running_var[...] = rng.uniform(0.5, 2.0, m.num_features)
            if m.weight is not None:
                m.weight.data[...] = rng.uniform(0.5, 1.5, m.num_features)
                m.bias.data[...] = rng.standard_normal(m.num_features) * 0.1
    return module.eval()


def _torch_twin(module):
    """The torch twin, activations included (interop covers the layers; the activations are one-liners)."""
    acts = {nn.Sigmoid: torch.nn.Sigmoid, nn.Tanh: torch.nn.Tanh, nn.Hardswish: torch.nn.Hardswish,
            nn.Hardsigmoid: torch.nn.Hardsigmoid, nn.SiLU: torch.nn.SiLU}
    if isinstance(module, nn.Sequential):
        return torch.nn.Sequential(*[_torch_twin(c) for c in module.children()])
    for cls, tcls in acts.items():
        if type(module) is cls:
            return tcls()
    if isinstance(module, nn.LeakyReLU):
        return torch.nn.LeakyReLU(module.negative_slope)
    if isinstance(module, nn.GELU):
        return torch.nn.GELU(approximate=module.approximate)
    return to_torch(module)


def _check(module, shape, dtype=np.float32, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    module = _randomize(module, rng, dtype)
    frozen = freeze(module)
    x = (rng.standard_normal(shape) * scale).astype(dtype)
    twin = _torch_twin(module).to(torch.float64 if dtype == np.float64 else torch.float32).eval()
    with torch.no_grad():
        want = twin(torch.from_numpy(x)).numpy()
    got = frozen(x)
    assert got.dtype == dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, **TOL[dtype])
    np.testing.assert_allclose(got, module(x), **TOL[dtype])
    return frozen


LAYER_NETS = {
    "conv-bn-relu": lambda: nn.Sequential(nn.ConvBNReLU(3, 8), nn.ConvBNReLU(8, 8, stride=2)),
    "conv bias, dilation, same": lambda: nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=2, dilation=2), nn.ReLU6(), nn.Conv2d(6, 6, 3, padding="same"),
        nn.Conv2d(6, 4, (1, 3), stride=(2, 1), padding=(0, 1))),
    "grouped, depthwise, valid": lambda: nn.Sequential(
        nn.Conv2d(4, 8, 3, groups=2, padding="valid"), nn.BatchNorm2d(8), nn.Conv2d(8, 8, 3, padding=1, groups=8),
        nn.BatchNorm2d(8, affine=False), nn.ReLU()),
    "pools": lambda: nn.Sequential(
        nn.Conv2d(3, 4, 1), nn.MaxPool2d(3, 2, 1), nn.AvgPool2d(2, ceil_mode=True),
        nn.MaxPool2d(2, ceil_mode=True), nn.AvgPool2d(3, 1, 1, count_include_pad=False)),
    "activations": lambda: nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.Sigmoid(), nn.Conv2d(4, 4, 1), nn.Tanh(), nn.Conv2d(4, 4, 1),
        nn.Hardswish(), nn.Conv2d(4, 4, 1), nn.Hardsigmoid(), nn.Conv2d(4, 4, 1), nn.SiLU(),
        nn.Conv2d(4, 4, 1), nn.LeakyReLU(0.2), nn.Conv2d(4, 4, 1), nn.GELU(), nn.Conv2d(4, 4, 1),
        nn.GELU(approximate="tanh")),
    "head": lambda: nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Dropout(0.5),
                                  nn.Linear(8, 5), nn.ReLU(), nn.Identity(), nn.Linear(5, 3, bias=False)),
    "blocks": lambda: nn.Sequential(
        nn.ConvBNReLU(3, 16), nn.InvertedResidual(16, 16, 1, 6), nn.InvertedResidual(16, 24, 2, 1),
        nn.DepthwiseSeparable(24, 32, stride=2), nn.MobileBlock(32, 16), nn.Conv2dNormActivation(16, 8, 1, activation=None)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", sorted(LAYER_NETS))
def test_each_layer_rule_gives_pytorchs_numbers(name, dtype):
    for seed, shape in enumerate([(2, 3, 13, 11), (1, 3, 8, 8)]):
        net = LAYER_NETS[name]()
        if name == "grouped, depthwise, valid":
            shape = (shape[0], 4) + shape[2:]
        _check(net, shape, dtype, seed)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_clamps_reach_their_bounds(dtype):
    """Inputs large enough that ReLU6's upper bound and the Hardtanh-like activations clip."""
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU6(), nn.Conv2d(4, 4, 1), nn.Hardsigmoid(), nn.Conv2d(4, 4, 1),
                        nn.BatchNorm2d(4), nn.ReLU6())
    frozen = _check(net, (2, 3, 5, 5), dtype, scale=40.0)
    y = frozen((np.ones((1, 3, 2, 2)) * 1e3).astype(dtype))
    assert y.max() <= 6.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("kind", models.DIGIT_MODELS)
def test_digit_models(kind, dtype):
    _check(models.digits_cnn(kind), (5, 1, 8, 8), dtype)


@pytest.mark.parametrize("arch", ["mobilenet_v2", "resnet18"])
def test_models_any_batch_and_size_match_pytorch(arch):
    net = getattr(models, arch)(num_classes=10)
    frozen = _check(net, (2, 3, 64, 64))
    # one frozen model, new input shapes: each planned on first sight
    rng = np.random.default_rng(1)
    twin = to_torch(net).eval()
    for shape in [(1, 3, 96, 80), (3, 3, 64, 64)]:
        x = rng.standard_normal(shape).astype(np.float32)
        with torch.no_grad():
            np.testing.assert_allclose(frozen(x), twin(torch.from_numpy(x)).numpy(), rtol=1e-4, atol=1e-4)


def test_the_graph_is_fused_and_the_weights_a_snapshot():
    net = _randomize(nn.Sequential(nn.ConvBNReLU(3, 4), nn.InvertedResidual(4, 4, 1, 2)), np.random.default_rng(0),
                     np.float32)
    frozen = freeze(net)
    # BN, ReLU6 and the Add folded in; the block's expansion and depthwise run inside its projection node
    assert [n.op_type for n in frozen.nodes] == ["Conv", "Conv"]
    assert frozen.nodes[1].attrs["_pre0"].op_type == frozen.nodes[1].attrs["_pre"].op_type == "Conv"
    x = np.random.default_rng(1).standard_normal((1, 3, 6, 6)).astype(np.float32)
    before = net(x)
    np.testing.assert_allclose(frozen(x), before, rtol=1e-5, atol=1e-5)
    net[0][0].weight.data[...] = 0.0                        # changed after freezing: the frozen graph keeps its copy
    net[0][1].running_mean[...] = 5.0
    np.testing.assert_allclose(frozen(x), before, rtol=1e-5, atol=1e-5)
    assert not np.allclose(net(x), before)


def test_input_is_checked_at_run():
    frozen = freeze(_randomize(nn.ConvBNReLU(3, 4), np.random.default_rng(0), np.float32))
    assert frozen.inputs[0].shape == ("N", 3, "H", "W")
    with pytest.raises(ValueError, match="axis 1: expected 3, got 2"):
        frozen(np.zeros((1, 2, 5, 5), np.float32))
    with pytest.raises(TypeError, match="dtype float32, got float64"):
        frozen(np.zeros((1, 3, 5, 5)))
    with pytest.raises(ValueError, match="4-D"):
        frozen(np.zeros((3, 5, 5), np.float32))


def test_threads_share_one_frozen_model():
    net = models.mobilenet_v2(num_classes=10).eval()
    frozen = freeze(net)
    xs = [np.random.default_rng(i).standard_normal((1, 3, 48, 48)).astype(np.float32) for i in range(4)]
    want = [net(x) for x in xs]
    with ThreadPoolExecutor(4) as pool:   # four threads at once on one model; a worker's exception re-raises here
        runs = list(pool.map(lambda i: [frozen(xs[i]) for _ in range(5)], range(4)))
    for i, outs in enumerate(runs):
        for y in outs:
            np.testing.assert_allclose(y, want[i], rtol=1e-4, atol=1e-5)


class _OwnForward(nn.Sequential):
    def forward(self, x):
        return super().forward(x) * 2


@pytest.mark.parametrize("make, match", [
    (lambda: nn.ConvBNReLU(3, 4).train(), r"'\(root\)' \(ConvBNReLU\) is in training mode"),
    (lambda: nn.Sequential(nn.Conv2d(3, 4, 1), nn.GroupNorm(2, 4)).eval(), r"'1' \(GroupNorm\): no graph rule"),
    (lambda: nn.Sequential(nn.MaxPool2d(2, return_indices=True)).eval(), "return_indices"),
    (lambda: nn.Sequential(nn.AvgPool2d(2, divisor_override=3)).eval(), "divisor_override"),
    (lambda: nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect")).eval(), "padding_mode='reflect'"),
    (lambda: nn.Sequential(nn.AdaptiveAvgPool2d(2)).eval(), r"output_size=2"),
    (lambda: nn.Sequential(nn.Flatten(0)).eval(), r"Flatten\(0, -1\)"),
    (lambda: nn.Sequential(nn.BatchNorm2d(3, track_running_stats=False)).eval(), "track_running_stats=False"),
    (lambda: nn.Sequential(_OwnForward(nn.ReLU())).eval(), r"'0' \(_OwnForward\): overrides Sequential.forward"),
])
def test_what_cannot_be_frozen_is_refused_by_name(make, match):
    with pytest.raises(FreezeError, match=match):
        freeze(make())


def test_hooks_and_non_modules_are_refused():
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU()).eval()
    net[1].register_forward_hook(lambda m, i, o: o)
    with pytest.raises(FreezeError, match=r"'1' \(ReLU\) has hooks"):
        freeze(net)
    with pytest.raises(TypeError, match="convlayers.nn.Module, got function"):
        freeze(lambda x: x)
    assert issubclass(FreezeError, ValueError)

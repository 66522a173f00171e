"""The normalisation and resampling layers vs torch.nn: ModuleInfo inputs, state_dict keys, init, repr."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import convlayers as cl
from convlayers import nn
from _peer import module_cases
from conftest import assert_close

torch = pytest.importorskip("torch")

MODULES = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "GroupNorm", "LayerNorm", "InstanceNorm1d",
           "InstanceNorm2d", "InstanceNorm3d", "LocalResponseNorm", "RMSNorm"]
EVAL = [c for name in MODULES for c in module_cases(name)]
TRAIN = [c for name in MODULES for c in module_cases(name, training=True)]


@pytest.mark.parametrize("case", EVAL, ids=str)
def test_moduleinfo_eval(case):
    case.check(getattr(nn, case.cls_name))


@pytest.mark.parametrize("case", TRAIN, ids=str)
def test_moduleinfo_training(case):
    case.check(getattr(nn, case.cls_name), training=True)


@pytest.mark.parametrize("case", EVAL, ids=str)
def test_moduleinfo_state_dict_and_repr(case):
    """Same keys, shapes and initial values as torch's freshly built module, and the same repr."""
    ours = case.build(getattr(nn, case.cls_name), load_state=False)
    theirs = getattr(torch.nn, case.cls_name)(*case.constructor_args, **case.constructor_kwargs)
    mine = ours.state_dict()
    assert list(mine) == list(theirs.state_dict())
    for key, value in theirs.state_dict().items():
        np.testing.assert_array_equal(np.asarray(mine[key]), value.numpy())
    assert repr(ours) == repr(theirs)


LAYERS = [
    (lambda m: m.Upsample(scale_factor=2, mode="bilinear"), (2, 3, 5, 6)),
    (lambda m: m.Upsample(size=(7, 4), mode="bicubic", align_corners=True), (2, 3, 5, 6)),
    (lambda m: m.Upsample(scale_factor=(1.5, 2, 0.5), mode="trilinear"), (1, 2, 4, 4, 6)),
    (lambda m: m.Upsample(scale_factor=3), (2, 3, 5)),
    (lambda m: m.Upsample(size=3, mode="area"), (2, 3, 7, 8)),
    (lambda m: m.UpsamplingNearest2d(scale_factor=2), (2, 3, 5, 6)),
    (lambda m: m.UpsamplingBilinear2d(size=(9, 4)), (2, 3, 5, 6)),
    (lambda m: m.PixelShuffle(2), (2, 8, 3, 4)),
    (lambda m: m.PixelUnshuffle(2), (2, 2, 4, 6)),
    (lambda m: m.ChannelShuffle(3), (2, 6, 3, 4)),
    (lambda m: m.Unfold((2, 3), dilation=(1, 2), padding=1, stride=2), (2, 3, 7, 8)),
    (lambda m: m.Fold((5, 6), 2, padding=1), (2, 12, 42)),
    (lambda m: m.InstanceNorm2d(3), (3, 5, 6)),  # unbatched
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("i", range(len(LAYERS)))
def test_layers_match_torch_with_gradients(rng, i, dtype):
    make, shape = LAYERS[i]
    ours, theirs = make(nn), make(torch.nn)
    assert repr(ours) == repr(theirs)
    x = rng.standard_normal(shape).astype(dtype)
    xt = torch.from_numpy(x).requires_grad_()
    want = theirs(xt)
    go = rng.standard_normal(tuple(want.shape)).astype(dtype)
    (gx,) = torch.autograd.grad(want, (xt,), torch.from_numpy(go))
    xs = cl.Tensor(x, requires_grad=True)
    got = ours(xs)
    got.backward(go)
    assert_close(got.data, want.detach().numpy(), dtype=dtype)
    assert_close(xs.grad, gx.numpy(), dtype=dtype)
    assert_close(ours(x), want.detach().numpy(), dtype=dtype)


def test_batchnorm_rank_errors():
    with pytest.raises(ValueError, match="2D or 3D"):
        nn.BatchNorm1d(3)(np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="5D"):
        nn.BatchNorm3d(3)(np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="divisible"):
        nn.GroupNorm(4, 6)


def test_fusion_still_fuses_batchnorm2d(rng):
    """BatchNorm2d on the shared base still takes the fused Conv->BN->ReLU path, and gives the unfused result."""
    from convlayers.autograd import no_grad
    from convlayers.nn import fusion
    conv, bn = nn.Conv2d(3, 4, 3, bias=False).eval(), nn.BatchNorm2d(4).eval()
    bn.running_mean[...] = rng.standard_normal(4)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    with no_grad():
        assert fusion._fusable(conv, bn, x)
        fused = fusion.conv_bn_act(conv, bn, nn.ReLU(), x)
    assert_close(fused, np.maximum(bn(conv(x)), 0))
    assert not isinstance(nn.BatchNorm1d(4), nn.BatchNorm2d)


def test_summary_traces_the_new_layers():
    """analysis.summary has shape rules for the new ops: shapes as PyTorch's, jump shrinks when upsampling."""
    from convlayers.analysis import summary
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.Upsample(scale_factor=2, mode="bilinear"),
                        nn.Conv2d(8, 12, 3, padding=1), nn.PixelShuffle(2), nn.LayerNorm(64), nn.InstanceNorm2d(3),
                        nn.UpsamplingNearest2d(size=(32, 32)), nn.PixelUnshuffle(2), nn.ChannelShuffle(4))
    s = summary(net, (1, 3, 16, 16))
    x = torch.zeros(1, 3, 16, 16)
    shapes = []
    tnet = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.GroupNorm(2, 8),
                               torch.nn.Upsample(scale_factor=2, mode="bilinear"), torch.nn.Conv2d(8, 12, 3, padding=1),
                               torch.nn.PixelShuffle(2), torch.nn.LayerNorm(64), torch.nn.InstanceNorm2d(3),
                               torch.nn.UpsamplingNearest2d(size=(32, 32)), torch.nn.PixelUnshuffle(2),
                               torch.nn.ChannelShuffle(4))
    for m in tnet:
        x = m(x)
        shapes.append(tuple(x.shape))
    assert [tuple(r.output_shape) for r in s.rows] == shapes
    assert s.rows[2].jump == (0.5, 0.5) and s.rows[4].jump == (0.25, 0.25)


@pytest.mark.parametrize("case", TRAIN, ids=str)
def test_moduleinfo_training_gradients(case, rng):
    """Training-mode gradients for the input and every parameter, vs torch autograd on the same weights."""
    tdtype = torch.float64 if case.dtype == np.float64 else torch.float32
    theirs = getattr(torch.nn, case.cls_name)(*case.constructor_args, **case.constructor_kwargs).to(tdtype).train()
    theirs.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in case.state_dict.items()})
    cls = getattr(nn, case.cls_name)
    extra = {"dtype": case.dtype} if "dtype" in inspect.signature(cls.__init__).parameters else {}
    ours = cls(*case.constructor_args, **case.constructor_kwargs, **extra).train()
    ours.load_state_dict(case.state_dict)
    x = np.array(case.forward_args[0])
    if x.size == 0:
        pytest.skip("empty input")
    xt = torch.from_numpy(x.copy()).requires_grad_()
    want = theirs(xt)
    go = rng.standard_normal(tuple(want.shape)).astype(case.dtype)
    params = dict(theirs.named_parameters())
    grads = torch.autograd.grad(want, [xt, *params.values()], torch.from_numpy(go))
    xs = cl.Tensor(x.copy(), requires_grad=True)
    got = ours(xs)
    got.backward(go)
    assert_close(got.data, want.detach().numpy(), dtype=case.dtype)
    assert_close(xs.grad, grads[0].numpy(), dtype=case.dtype)
    mine = dict(ours.named_parameters())
    for (name, _), g in zip(params.items(), grads[1:]):
        assert_close(mine[name].grad, g.numpy(), dtype=case.dtype)


def test_interop_twins_of_the_new_layers(rng):
    """interop.to_torch builds a twin with the same weights; both give the same output."""
    from convlayers.interop import to_torch
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GroupNorm(4, 8), nn.BatchNorm2d(8),
                        nn.InstanceNorm2d(8, affine=True, track_running_stats=True),
                        nn.Upsample(scale_factor=2, mode="bicubic"), nn.LocalResponseNorm(3), nn.PixelUnshuffle(2),
                        nn.ChannelShuffle(4), nn.PixelShuffle(2), nn.UpsamplingBilinear2d(size=(9, 9)),
                        nn.LayerNorm(9), nn.RMSNorm([8, 9, 9]), nn.Unfold(2), nn.Fold((9, 9), 2)).eval()
    net[1].weight.data[...] = rng.standard_normal(8)
    twin = to_torch(net).eval()
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    with torch.no_grad():
        want = twin(torch.from_numpy(x)).numpy()
    assert_close(net(x), want)
    bn = nn.BatchNorm1d(5, momentum=None)
    assert repr(to_torch(bn)) == repr(bn)

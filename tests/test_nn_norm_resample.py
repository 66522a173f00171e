"""The normalisation and resampling layers vs torch.nn: ModuleInfo inputs, state_dict keys, init, repr."""

from __future__ import annotations

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

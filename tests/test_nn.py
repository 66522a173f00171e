"""convlayers.nn against torch.nn: forward/backward parity, state_dict, repr, BatchNorm modes, errors."""

import math
from collections import OrderedDict

import numpy as np
import pytest
import torch

from convlayers import Tensor, nn

TOL = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}
DTYPES = [np.float32, np.float64]


def to_numpy_state(module):
    return {k: v.detach().numpy() for k, v in module.state_dict().items()}


def paired(ours, theirs, dtype):
    """Cast both to ``dtype`` and give ours torch's weights."""
    theirs = theirs.double() if dtype == np.float64 else theirs.float()
    ours.to(dtype)
    ours.load_state_dict(to_numpy_state(theirs))
    return ours, theirs


def check_forward(ours, theirs, shape, dtype, seed=0, train=False, backward=False):
    ours, theirs = paired(ours, theirs, dtype)
    ours.train(train)
    theirs.train(train)
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    xt = torch.from_numpy(x.copy()).requires_grad_(backward)
    expected = theirs(xt)
    if backward:
        got_t = ours(Tensor(x, requires_grad=True))
        assert isinstance(got_t, Tensor)
        got = got_t.data
    else:
        got = ours(x)
        assert isinstance(got, np.ndarray)
    assert got.dtype == dtype
    assert got.shape == tuple(expected.shape)
    np.testing.assert_allclose(got, expected.detach().numpy(), **TOL[dtype])
    if backward:
        g = np.random.default_rng(seed + 1).standard_normal(got.shape).astype(dtype)
        expected.backward(torch.from_numpy(g))
        got_t.backward(g)
        for (name, p), (tname, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
            assert name == tname
            np.testing.assert_allclose(p.grad, tp.grad.numpy(), **TOL[dtype], err_msg=name)
    return ours, theirs


CONV_CASES = [
    # in, out, k, stride, padding, dilation, groups, bias, padding_mode, H, W
    (3, 4, 3, 1, 0, 1, 1, True, "zeros", 7, 6),
    (3, 4, 3, 2, 1, 1, 1, False, "zeros", 8, 9),
    (4, 6, (3, 2), (2, 1), (1, 0), (1, 2), 2, True, "zeros", 9, 8),
    (6, 6, 3, 1, 1, 1, 6, False, "zeros", 6, 6),          # depthwise
    (2, 3, 3, 1, 2, 1, 1, True, "reflect", 6, 7),
    (2, 3, 3, 2, 1, 2, 1, True, "replicate", 7, 7),
    (2, 3, (2, 3), 1, (1, 2), 1, 1, True, "circular", 5, 6),
    (2, 3, 3, 1, "same", 2, 1, True, "zeros", 8, 7),
    (2, 3, 4, 1, "same", 1, 1, False, "reflect", 8, 7),
    (2, 3, 3, 1, "valid", 1, 1, True, "zeros", 5, 5),
    (3, 2, 1, 1, 0, 1, 1, True, "zeros", 4, 4),           # pointwise
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_matches_torch(case, dtype):
    cin, cout, k, s, p, d, g, b, mode, h, w = case
    kwargs = dict(stride=s, padding=p, dilation=d, groups=g, bias=b, padding_mode=mode)
    check_forward(nn.Conv2d(cin, cout, k, **kwargs), torch.nn.Conv2d(cin, cout, k, **kwargs),
                  (2, cin, h, w), dtype)


@pytest.mark.parametrize("case", [CONV_CASES[1], CONV_CASES[2], CONV_CASES[4], CONV_CASES[7]])
def test_conv2d_gradients_match_torch(case):
    cin, cout, k, s, p, d, g, b, mode, h, w = case
    kwargs = dict(stride=s, padding=p, dilation=d, groups=g, bias=b, padding_mode=mode)
    check_forward(nn.Conv2d(cin, cout, k, **kwargs), torch.nn.Conv2d(cin, cout, k, **kwargs),
                  (2, cin, h, w), np.float64, backward=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [
    # in, out, k, stride, padding, output_padding, groups, bias, dilation
    (3, 2, 3, 1, 0, 0, 1, True, 1),
    (4, 6, 3, 2, 1, 1, 2, False, 1),
    (2, 3, (3, 2), (2, 3), (1, 0), (0, 2), 1, True, 1),
    (2, 2, 3, 2, 2, 1, 1, True, 2),
])
def test_conv_transpose2d_matches_torch(case, dtype):
    cin, cout, k, s, p, op, g, b, d = case
    kwargs = dict(stride=s, padding=p, output_padding=op, groups=g, bias=b, dilation=d)
    check_forward(nn.ConvTranspose2d(cin, cout, k, **kwargs), torch.nn.ConvTranspose2d(cin, cout, k, **kwargs),
                  (2, cin, 5, 4), dtype, backward=dtype == np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=(3, 2), stride=(1, 2)),
    dict(kernel_size=3, stride=2, ceil_mode=True), dict(kernel_size=2, dilation=2, padding=1),
])
def test_max_pool2d_matches_torch(kwargs, dtype):
    check_forward(nn.MaxPool2d(**kwargs), torch.nn.MaxPool2d(**kwargs), (2, 3, 7, 8), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
    dict(kernel_size=3, stride=2, ceil_mode=True), dict(kernel_size=(2, 3), divisor_override=4),
])
def test_avg_pool2d_matches_torch(kwargs, dtype):
    check_forward(nn.AvgPool2d(**kwargs), torch.nn.AvgPool2d(**kwargs), (2, 3, 7, 8), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [1, (1, 1), (3, 2), (5, 7), (None, 3)])
def test_adaptive_avg_pool2d_matches_torch(size, dtype):
    check_forward(nn.AdaptiveAvgPool2d(size), torch.nn.AdaptiveAvgPool2d(size), (2, 3, 7, 9), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make", [
    lambda m: m.ReLU(), lambda m: m.ReLU6(), lambda m: m.Flatten(), lambda m: m.Flatten(2, 3),
    lambda m: m.Identity(), lambda m: m.Linear(5, 3), lambda m: m.Linear(5, 2, bias=False),
    lambda m: m.Dropout(0.3),
])
def test_simple_layers_match_torch(make, dtype):
    ours, theirs = make(nn), make(torch.nn)
    shape = (2, 3, 4, 5)
    check_forward(ours, theirs, shape, dtype, backward=dtype == np.float64 and isinstance(ours, nn.Linear))


def test_relu6_clips_at_six():
    x = np.array([-3.0, 0.5, 6.0, 9.0])
    np.testing.assert_array_equal(nn.ReLU6()(x), [0, 0.5, 6, 6])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kwargs", [
    dict(), dict(momentum=0.3, eps=1e-3), dict(momentum=None), dict(affine=False),
    dict(track_running_stats=False),
])
def test_batchnorm_train_then_eval_matches_torch(kwargs, dtype):
    ours, theirs = paired(nn.BatchNorm2d(3, **kwargs), torch.nn.BatchNorm2d(3, **kwargs), dtype)
    if ours.affine:  # non-trivial affine parameters
        with torch.no_grad():
            theirs.weight.uniform_(0.5, 1.5)
            theirs.bias.uniform_(-1, 1)
        ours.load_state_dict(to_numpy_state(theirs))
    rng = np.random.default_rng(3)
    ours.train()
    theirs.train()
    for step in range(3):
        x = (rng.standard_normal((4, 3, 5, 6)) * (step + 1) + step).astype(dtype)
        np.testing.assert_allclose(ours(x), theirs(torch.from_numpy(x)).detach().numpy(), **TOL[dtype])
    # The running statistics (unbiased variance, momentum / cumulative average) must agree too.
    for key, value in to_numpy_state(theirs).items():
        np.testing.assert_allclose(ours.state_dict()[key], value, **TOL[dtype], err_msg=key)
    if ours.track_running_stats:
        assert int(ours.num_batches_tracked) == 3
    ours.eval()
    theirs.eval()
    x = rng.standard_normal((2, 3, 5, 6)).astype(dtype)
    y_eval = ours(x)
    np.testing.assert_allclose(y_eval, theirs(torch.from_numpy(x)).detach().numpy(), **TOL[dtype])
    if ours.track_running_stats:
        before = ours.state_dict()
        ours(x)
        for key, value in ours.state_dict().items():
            np.testing.assert_array_equal(value, before[key])   # eval does not update the statistics
        ours.train()
        assert not np.allclose(ours(x), y_eval)                   # train mode uses batch statistics


def test_batchnorm_gradients_match_torch():
    check_forward(nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3), (4, 3, 5, 5), np.float64, train=True, backward=True)


def test_sequential_model_matches_torch_and_reprs_agree():
    def build(m):
        return m.Sequential(
            m.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), m.BatchNorm2d(8), m.ReLU6(inplace=True),
            m.Conv2d(8, 8, 3, padding=1, groups=8, padding_mode="reflect"), m.ReLU(),
            m.MaxPool2d(2), m.AvgPool2d(2, stride=1), m.ConvTranspose2d(8, 4, 2, stride=2),
            m.AdaptiveAvgPool2d((1, 1)), m.Flatten(), m.Dropout(0.0), m.Linear(4, 5), m.Identity())
    ours, theirs = build(nn), build(torch.nn)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    check_forward(ours, theirs, (2, 3, 16, 16), np.float32)
    check_forward(ours, theirs, (2, 3, 16, 16), np.float64, train=True, backward=True)


@pytest.mark.parametrize("make", [
    lambda m: m.Conv2d(3, 6, (3, 5), stride=(2, 1), padding=(1, 2), dilation=(2, 1), groups=3, bias=False,
                       padding_mode="circular"),
    lambda m: m.Conv2d(2, 2, 3, padding="same"),
    lambda m: m.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1, dilation=1),
    lambda m: m.MaxPool2d(3, 2, 1, ceil_mode=True), lambda m: m.AvgPool2d((2, 2)),
    lambda m: m.BatchNorm2d(4, momentum=None, affine=False), lambda m: m.Linear(3, 4, bias=False),
    lambda m: m.Dropout(), lambda m: m.Flatten(0, 2), lambda m: m.ReLU(), lambda m: m.Identity(),
    lambda m: m.AdaptiveAvgPool2d(3),
])
def test_repr_matches_torch(make):
    assert repr(make(nn)) == repr(make(torch.nn))


def test_state_dict_round_trips_in_both_directions():
    def build(m):
        return m.Sequential(m.Conv2d(2, 4, 3), m.BatchNorm2d(4), m.ReLU(), m.Flatten(), m.Linear(4 * 4 * 4, 3))
    ours, theirs = build(nn), build(torch.nn)
    theirs.train()
    theirs(torch.randn(5, 2, 6, 6))   # non-trivial running statistics and num_batches_tracked
    # torch -> ours
    ours.load_state_dict(to_numpy_state(theirs))
    for key, value in theirs.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[key], value.numpy())
        assert ours.state_dict()[key].dtype == value.numpy().dtype
    assert int(ours[1].num_batches_tracked) == 1
    # ours -> torch, after changing ours
    ours.train()
    ours(np.random.default_rng(0).standard_normal((5, 2, 6, 6)).astype(np.float32))
    fresh = build(torch.nn)
    result = fresh.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()}, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert int(fresh[1].num_batches_tracked) == 2
    for key, value in ours.state_dict().items():
        np.testing.assert_array_equal(fresh.state_dict()[key].numpy(), value)
    # torch tensors are accepted directly as well
    ours.load_state_dict(theirs.state_dict())
    np.testing.assert_array_equal(ours[0].weight.data, theirs[0].weight.detach().numpy())


def test_state_dict_values_are_copies():
    conv = nn.Conv2d(1, 1, 1)
    state = conv.state_dict()
    state["weight"][...] = 123
    assert conv.weight.data.item() != 123


def test_load_state_dict_errors_list_every_problem():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    state = model.state_dict()
    del state["1.running_var"]
    state["extra.weight"] = np.zeros(1)
    state["0.weight"] = np.zeros((2, 1, 5, 5))
    with pytest.raises(ValueError) as info:
        model.load_state_dict(state)
    message = str(info.value)
    assert "1.running_var" in message and "extra.weight" in message
    assert "0.weight" in message and "(2, 1, 3, 3)" in message and "(2, 1, 5, 5)" in message
    before = model[0].bias.data.copy()
    state["0.bias"] = np.full(2, 7.0)
    with pytest.raises(ValueError):   # shape errors abort even with strict=False, before any copy
        model.load_state_dict(state, strict=False)
    np.testing.assert_array_equal(model[0].bias.data, before)
    state["0.weight"] = np.zeros((2, 1, 3, 3))
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert missing == ["1.running_var"] and unexpected == ["extra.weight"]
    np.testing.assert_array_equal(model[0].bias.data, [7.0, 7.0])
    with pytest.raises(TypeError, match="state_dict"):
        model.load_state_dict([1, 2])


def test_module_traversal_modes_and_grads():
    model = nn.Sequential(OrderedDict(conv=nn.Conv2d(1, 2, 3), bn=nn.BatchNorm2d(2), act=nn.ReLU(),
                                      head=nn.Sequential(nn.Flatten(), nn.Linear(2 * 6 * 6, 3))))
    assert [n for n, _ in model.named_parameters()] == [
        "conv.weight", "conv.bias", "bn.weight", "bn.bias", "head.1.weight", "head.1.bias"]
    assert [type(m).__name__ for m in model.children()] == ["Conv2d", "BatchNorm2d", "ReLU", "Sequential"]
    assert len(list(model.modules())) == 7
    assert [n for n, _ in model.named_buffers()] == ["bn.running_mean", "bn.running_var", "bn.num_batches_tracked"]
    assert model.num_parameters() == 2 * 9 + 2 + 2 + 2 + 72 * 3 + 3
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in model.parameters())
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    x = np.random.default_rng(0).standard_normal((4, 1, 8, 8)).astype(np.float32)
    out = model(Tensor(x))
    assert isinstance(out, Tensor)
    out.sum().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    assert isinstance(model(x), np.ndarray)
    assert model[3][1] is model.head[1]
    assert len(model[1:]) == 3
    shared = nn.Linear(2, 2)
    assert len(list(nn.Sequential(shared, shared).parameters())) == 2   # shared parameters counted once


def test_assigning_wrong_types_is_refused():
    conv = nn.Conv2d(1, 1, 1)
    with pytest.raises(TypeError, match="weight"):
        conv.weight = np.zeros((1, 1, 1, 1))
    bn = nn.BatchNorm2d(2)
    with pytest.raises(TypeError, match="running_mean"):
        bn.running_mean = [0, 0]


@pytest.mark.parametrize("make, match", [
    (lambda: nn.Conv2d(3, 4, 3, groups=2), "in_channels must be divisible by groups"),
    (lambda: nn.Conv2d(4, 3, 3, groups=2), "out_channels must be divisible by groups"),
    (lambda: nn.Conv2d(1, 1, 0), "kernel_size"),
    (lambda: nn.Conv2d(1, 1, 3, stride=0), "stride"),
    (lambda: nn.Conv2d(1, 1, 3, padding=-1), "padding"),
    (lambda: nn.Conv2d(1, 1, 3, padding="half"), "padding"),
    (lambda: nn.Conv2d(1, 1, 3, stride=2, padding="same"), "same"),
    (lambda: nn.Conv2d(1, 1, 3, padding_mode="mirror"), "padding_mode"),
    (lambda: nn.Conv2d(0, 1, 3), "in_channels"),
    (lambda: nn.ConvTranspose2d(1, 1, 3, stride=2, output_padding=2), "output_padding"),
    (lambda: nn.ConvTranspose2d(1, 1, 3, padding_mode="reflect"), "padding_mode"),
    (lambda: nn.MaxPool2d(2, padding=2), "padding"),
    (lambda: nn.AvgPool2d(3, padding=2), "padding"),
    (lambda: nn.AdaptiveAvgPool2d(-1), "output_size"),
    (lambda: nn.BatchNorm2d(3, momentum=2), "momentum"),
    (lambda: nn.BatchNorm2d(3, eps=0), "eps"),
    (lambda: nn.Linear(0, 3), "in_features"),
    (lambda: nn.Dropout(1.5), "p must"),
    (lambda: nn.Conv2d(1, 1, 3, dtype=np.int32), "dtype"),
])
def test_bad_layer_arguments_raise_before_work(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


@pytest.mark.parametrize("layer, shape, match", [
    (nn.Conv2d(3, 4, 3), (1, 2, 8, 8), "3 channels, got 2"),
    (nn.Conv2d(3, 4, 3), (8, 8), "expected 3-D \\(unbatched\\) or 4-D"),  # (C, H, W) is unbatched, as PyTorch
    (nn.BatchNorm2d(3), (2, 4, 5, 5), "3 channels, got 4"),
    (nn.Linear(4, 2), (3, 5), "last dimension 4"),
    (nn.MaxPool2d(2), (2, 2), "3-D .* or 4-D"),
])
def test_bad_inputs_name_the_layer(layer, shape, match):
    with pytest.raises(ValueError, match=match):
        layer(np.zeros(shape, dtype=np.float32))


def test_default_initialisation_follows_torch():
    nn.init.manual_seed(0)
    conv = nn.Conv2d(16, 32, 3)
    bound = 1 / math.sqrt(16 * 9)
    w = conv.weight.data
    assert w.dtype == np.float32 and np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.05 * bound     # uniform(-b, b) has std b/sqrt(3)
    assert np.abs(conv.bias.data).max() <= bound
    lin = nn.Linear(200, 50)
    assert np.abs(lin.weight.data).max() <= 1 / math.sqrt(200)
    t = nn.ConvTranspose2d(4, 6, 3, groups=2)   # fan_in from weight.shape[1] = 6/2
    assert np.abs(t.weight.data).max() <= 1 / math.sqrt(3 * 9)
    weight = nn.Parameter(np.empty((256, 128, 3, 3), dtype=np.float32))
    nn.init.kaiming_normal_(weight, mode="fan_out", nonlinearity="relu")
    assert abs(weight.data.std() - math.sqrt(2 / (256 * 9))) < 0.02 * math.sqrt(2 / (256 * 9))
    nn.init.manual_seed(1)
    a = nn.Linear(3, 3).weight.data.copy()
    nn.init.manual_seed(1)
    np.testing.assert_array_equal(nn.Linear(3, 3).weight.data, a)


def test_double_casts_floats_but_not_counters():
    bn = nn.BatchNorm2d(2).double()
    assert bn.weight.data.dtype == np.float64 and bn.running_var.dtype == np.float64
    assert bn.num_batches_tracked.dtype == np.int64
    out = bn(np.ones((2, 2, 3, 3)))
    assert out.dtype == np.float64


def test_init_functions_accept_plain_arrays():
    nn.init.manual_seed(0)
    a = nn.init.normal_(np.empty(1000))
    assert abs(a.std() - 1) < 0.1
    b = nn.init.kaiming_uniform_(np.empty((8, 4, 3, 3), dtype=np.float32), a=math.sqrt(5))
    assert b.dtype == np.float32 and np.abs(b).max() <= 1 / math.sqrt(36)
    with pytest.raises(TypeError, match="tensor"):
        nn.init.zeros_([1, 2])


def test_top_level_manual_seed_makes_init_and_dropout_reproducible():
    import convlayers
    from convlayers import functional as F

    def draw():
        layer = nn.Conv2d(2, 3, 3)
        return layer.weight.numpy().copy(), F.dropout(np.ones(64), p=0.5)

    convlayers.manual_seed(123)
    w1, d1 = draw()
    convlayers.manual_seed(123)
    w2, d2 = draw()
    convlayers.manual_seed(124)
    w3, _ = draw()
    np.testing.assert_array_equal(w1, w2)
    np.testing.assert_array_equal(d1, d2)
    assert not np.array_equal(w1, w3)

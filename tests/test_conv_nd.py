"""conv1d/2d/3d, conv_transpose1d/2d/3d, N-d pad and their modules against PyTorch 2.13.0.

Three sources of cases: PyTorch's own OpInfo ``sample_inputs`` and
``error_inputs`` and ModuleInfo inputs (through ``_peer``), forward in float32
and float64 and the gradients of every floating argument against torch's
autograd; seeded grids of our own for 1-D and 3-D (like test_functional's 2-D
grid); and a tiny 1-D and 3-D network trained side by side with torch.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from _peer import module_cases, op_error_cases, op_samples
from conftest import assert_close

import convlayers
import convlayers.functional as F
from convlayers import nn

torch.set_num_threads(2)
TORCH_DTYPE = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}

CONV_OPS = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"]
PAD_VARIANTS = ["constant", "reflect", "replicate", "replicate_negative", "circular"]
CONV_MODULES = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"]
PAD_MODULES = [f"{kind}Pad{nd}d" for kind in ("Zero", "Constant", "Reflection", "Replication", "Circular")
               for nd in (1, 2, 3)]


def _samples(name, variant=""):
    return op_samples(f"nn.functional.{name}", variant)


def _fn(name):
    return getattr(F, name.split(".")[-1])


# --------------------------------------------------------------------------- OpInfo: forward

@pytest.mark.parametrize("case", [c for op in CONV_OPS for c in _samples(op)], ids=str)
def test_conv_opinfo_forward(case):
    case.check(_fn(case.op_name))


@pytest.mark.parametrize("case", [c for v in PAD_VARIANTS for c in _samples("pad", v)], ids=str)
def test_pad_opinfo_forward(case):
    case.check(F.pad)


# --------------------------------------------------------------------------- OpInfo: gradients


def _grad_check(case, fn):
    """Gradients of every floating ndarray argument (input, weight, bias) against torch's autograd."""
    rng = np.random.default_rng(case.index)
    arrays = [case.input, *case.args]
    diff = [isinstance(a, np.ndarray) and a.dtype.kind == "f" and a.size > 0 for a in arrays]
    ours = [convlayers.tensor(a, requires_grad=True) if d else a for a, d in zip(arrays, diff)]
    theirs = [torch.tensor(a, requires_grad=True) if d else (torch.from_numpy(a) if isinstance(a, np.ndarray) else a)
              for a, d in zip(arrays, diff)]
    out = fn(ours[0], *ours[1:], **case.kwargs)
    want = getattr(TF, fn.__name__)(theirs[0], *theirs[1:], **case.kwargs)
    if not any(diff):  # empty input: nothing to differentiate, an array comes back
        assert_close(out, want.numpy(), dtype=case.dtype)
        return
    assert_close(out.data, want.detach().numpy(), dtype=case.dtype)
    if out.data.size == 0:
        return
    go = rng.standard_normal(out.shape).astype(case.dtype)
    out.backward(go)
    want.backward(torch.from_numpy(go))
    for o, t, d in zip(ours, theirs, diff):
        if d:
            assert o.grad is not None
            assert_close(o.grad, t.grad.numpy(), dtype=case.dtype)


@pytest.mark.parametrize("case", [c for op in CONV_OPS for c in _samples(op)], ids=str)
def test_conv_opinfo_gradients(case):
    _grad_check(case, _fn(case.op_name))


@pytest.mark.parametrize("case", [c for v in PAD_VARIANTS for c in _samples("pad", v)], ids=str)
def test_pad_opinfo_gradients(case):
    _grad_check(case, F.pad)


# --------------------------------------------------------------------------- OpInfo: errors

@pytest.mark.parametrize("case", [c for op in CONV_OPS for c in op_error_cases(f"nn.functional.{op}")], ids=str)
def test_conv_opinfo_errors(case):
    case.check(_fn(case.op_name))


# --------------------------------------------------------------------------- ModuleInfo


def _module_case_list(names):
    return [c for name in names for c in module_cases(name)]


@pytest.mark.parametrize("case", _module_case_list(CONV_MODULES + PAD_MODULES), ids=str)
def test_moduleinfo_forward(case):
    case.check(getattr(nn, case.cls_name))


@pytest.mark.parametrize("case", _module_case_list(CONV_MODULES), ids=str)
def test_moduleinfo_gradients(case):
    """Input and parameter gradients of each ModuleInfo input against torch's module."""
    cls = getattr(nn, case.cls_name)
    module = cls(*case.constructor_args, **case.constructor_kwargs, dtype=case.dtype)  # float64 gradients
    module.load_state_dict(case.state_dict)
    ref = getattr(torch.nn, case.cls_name)(*case.constructor_args, **case.constructor_kwargs).to(
        TORCH_DTYPE[case.dtype])
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in case.state_dict.items()})
    x = case.forward_args[0]
    xt = torch.tensor(x, requires_grad=True)
    out = module(convlayers.tensor(x, requires_grad=True) if x.size else convlayers.tensor(x),
                 *case.forward_args[1:], **case.forward_kwargs)
    want = ref(xt, *case.forward_args[1:], **case.forward_kwargs)
    assert_close(out.data, want.detach().numpy(), dtype=case.dtype)
    if out.data.size == 0:
        return
    go = np.random.default_rng(case.index).standard_normal(out.shape).astype(case.dtype)
    out.backward(go)
    want.backward(torch.from_numpy(go))
    for name, p in module.named_parameters():
        assert_close(p.grad, dict(ref.named_parameters())[name].grad.numpy(), dtype=case.dtype)


@pytest.mark.parametrize("name", CONV_MODULES + PAD_MODULES)
def test_module_state_dict_keys_and_repr_match_torch(name):
    args = {"Conv": (4, 6, 3), "ConvTranspose": (4, 6, 3)}
    kind = "ConvTranspose" if name.startswith("ConvTranspose") else "Conv" if name.startswith("Conv") else None
    if kind:
        kwargs = dict(stride=2, padding=1, dilation=1, groups=2, bias=False)
        ours, theirs = getattr(nn, name)(*args[kind], **kwargs), getattr(torch.nn, name)(*args[kind], **kwargs)
        assert list(ours.state_dict()) == list(theirs.state_dict())
        assert ours.weight.shape == tuple(theirs.weight.shape)
        ours, theirs = getattr(nn, name)(4, 6, 3), getattr(torch.nn, name)(4, 6, 3)
        assert list(ours.state_dict()) == list(theirs.state_dict())
    else:
        extra = (2.5,) if name.startswith("Constant") else ()
        ours, theirs = getattr(nn, name)(2, *extra), getattr(torch.nn, name)(2, *extra)
    assert repr(ours) == repr(theirs)


@pytest.mark.parametrize("name, kwargs", [
    ("Conv1d", dict(padding="same", dilation=2)), ("Conv3d", dict(padding=(1, 0, 2), padding_mode="reflect")),
    ("Conv2d", dict(padding="valid", padding_mode="circular")), ("ConvTranspose3d", dict(output_padding=1, stride=2)),
    ("ConvTranspose1d", dict(groups=2, dilation=3))])
def test_module_repr_with_options_matches_torch(name, kwargs):
    assert repr(getattr(nn, name)(4, 6, 3, **kwargs)) == repr(getattr(torch.nn, name)(4, 6, 3, **kwargs))


@pytest.mark.parametrize("name", CONV_MODULES)
def test_module_init_distribution_matches_torch(name):
    """PyTorch's kaiming_uniform(a=√5) bound, 1/√fan_in, for weight and bias (fan_in from weight.shape[1:])."""
    nn.init.manual_seed(0)  # unseeded, 12 bias values all under half the bound happen once in ~4000 runs
    m = getattr(nn, name)(8, 12, 3, groups=2)
    fan_in = int(np.prod(m.weight.shape[1:]))
    bound = 1 / np.sqrt(fan_in)
    for p in (m.weight.data, m.bias.data):
        assert np.abs(p).max() <= bound + 1e-7
        assert np.abs(p).max() > 0.5 * bound


@pytest.mark.parametrize("name, shape", [("Conv1d", (4, 9)), ("Conv2d", (4, 3, 4)), ("Conv3d", (4, 3, 4, 5)),
                                         ("ConvTranspose1d", (4, 9)), ("ConvTranspose2d", (4, 3, 4)),
                                         ("ConvTranspose3d", (4, 3, 4, 5))])
def test_modules_accept_unbatched_and_empty_batches(name, shape):
    m = getattr(nn, name)(4, 5, 3, padding=1, dtype=np.float64)
    ref = getattr(torch.nn, name)(4, 5, 3, padding=1).double()
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()})
    x = np.random.default_rng(0).standard_normal(shape)
    assert_close(m(x), ref(torch.from_numpy(x)).detach().numpy())
    empty = np.zeros((0,) + shape)
    got = m(empty)
    assert got.shape == tuple(ref(torch.from_numpy(empty)).shape)


def test_module_forward_argument_is_named_input():
    x = np.zeros((1, 2, 5), np.float32)
    assert nn.Conv1d(2, 3, 3)(x).shape == nn.Conv1d(2, 3, 3).forward(input=x).shape
    assert nn.ReflectionPad1d(1).forward(input=x).shape == (1, 2, 7)


@pytest.mark.parametrize("name, shape, message", [
    ("Conv1d", (2, 4, 3, 5), "expected 2-D"), ("Conv3d", (4, 5, 5), "expected 4-D"),
    ("Conv2d", (1, 3, 5, 5), "expected input with 4 channels"), ("ConvTranspose3d", (4, 5), "expected 4-D")])
def test_module_bad_inputs(name, shape, message):
    with pytest.raises(ValueError, match=message):
        getattr(nn, name)(4, 5, 3)(np.zeros(shape, np.float32))


def test_conv_transpose_output_size_matches_torch():
    m = nn.ConvTranspose1d(3, 2, 3, stride=3)
    ref = torch.nn.ConvTranspose1d(3, 2, 3, stride=3)
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()})
    x = np.random.default_rng(1).standard_normal((2, 3, 4)).astype(np.float32)
    for size in (12, 13, 14):
        assert_close(m(x, output_size=[size]), ref(torch.from_numpy(x), output_size=[size]).detach().numpy())
    with pytest.raises(ValueError, match="output_size"):
        m(x, output_size=[15])


# --------------------------------------------------------------------------- seeded 1-D / 3-D grids


def _grid(nd, count, seed, transposed=False):
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        groups = int(rng.choice([1, 1, 2, 3]))
        depthwise = not transposed and rng.random() < 0.2
        cin_g = 1 if depthwise else int(rng.integers(1, 4))
        cout_g = int(rng.integers(1, 4))
        k = tuple(int(rng.integers(1, 4 if nd == 3 else 6)) for _ in range(nd))
        stride = tuple(int(rng.integers(1, 3)) for _ in range(nd))
        dilation = tuple(int(rng.integers(1, 3)) for _ in range(nd))
        size = tuple(int(rng.integers(4, 9 if nd == 3 else 30)) for _ in range(nd))
        n = int(rng.integers(0, 3)) if rng.random() < 0.1 else int(rng.integers(1, 3))
        kw = dict(stride=stride, dilation=dilation, groups=groups)
        if transposed:
            kw["padding"] = tuple(int(rng.integers(0, d * (kk - 1) // 2 + 1)) for d, kk in zip(dilation, k))
            kw["output_padding"] = tuple(int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation))
            w_shape = (cin_g * groups, cout_g, *k)
        else:
            mode = str(rng.choice(["zeros", "zeros", "reflect", "replicate", "circular"]))
            if rng.random() < 0.2 and stride == (1,) * nd:
                kw["padding"] = str(rng.choice(["same", "valid"]))
            else:
                kw["padding"] = tuple(int(rng.integers(0, min(3, s))) for s in size)
            kw["padding_mode"] = mode
            w_shape = (cout_g * groups, cin_g, *k)
        x_shape = (n, cin_g * groups, *size)
        if rng.random() < 0.15:
            x_shape = x_shape[1:]  # unbatched
        spans = [d * (kk - 1) + 1 for d, kk in zip(dilation, k)]
        if not transposed:
            pads = kw["padding"] if not isinstance(kw["padding"], str) else (
                (0,) * nd if kw["padding"] == "valid" else tuple(s // 2 + 1 for s in spans))
            if any(sz + 2 * p < sp for sz, p, sp in zip(size, pads, spans)):
                continue
        bias = bool(rng.random() < 0.7)
        dtype = np.float32 if rng.random() < 0.5 else np.float64
        cases.append(pytest.param(x_shape, w_shape, kw, bias, dtype, int(rng.integers(1 << 30)),
                                  id=f"{nd}d-x{x_shape}-w{w_shape}-{kw}-bias={bias}-{np.dtype(dtype).name}"))
    return cases


def _torch_conv(nd, xt, wt, bt, kw):
    kw = dict(kw)
    mode = kw.pop("padding_mode", "zeros")
    if mode == "zeros":
        return getattr(TF, f"conv{nd}d")(xt, wt, bt, **kw)
    # nn.ConvNd's rule: pad explicitly with the mode (reversed, both sides), then convolve unpadded
    padding = kw.pop("padding")
    if padding == "valid":
        padding = (0,) * nd
    if padding == "same":
        pads = []
        for d, k in zip(reversed(kw["dilation"]), reversed(wt.shape[2:])):
            total = d * (k - 1)
            pads += [total // 2, total - total // 2]
    else:
        pads = [p for p in reversed(padding) for _ in range(2)]
    return getattr(TF, f"conv{nd}d")(TF.pad(xt, pads, mode=mode), wt, bt, **kw)


def _check_grid_case(nd, x_shape, w_shape, kw, bias, dtype, seed, transposed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    cout = w_shape[1] * kw["groups"] if transposed else w_shape[0]
    b = rng.standard_normal(cout).astype(dtype) if bias else None
    name = f"conv_transpose{nd}d" if transposed else f"conv{nd}d"
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    bt = None if b is None else torch.tensor(b, requires_grad=True)
    want = getattr(TF, name)(xt, wt, bt, **kw) if transposed else _torch_conv(nd, xt, wt, bt, kw)
    got = getattr(F, name)(x, w, b, **kw)
    assert got.dtype == dtype
    assert_close(got, want.detach().numpy())
    if got.size == 0:
        return
    go = rng.standard_normal(got.shape).astype(dtype)
    want.backward(torch.from_numpy(go))
    gi, gw, gb = getattr(F, f"{name}_backward")(go, x, w, **kw)
    assert_close(gi, xt.grad.numpy())
    assert_close(gw, wt.grad.numpy())
    if bias:
        assert_close(gb, bt.grad.numpy())


@pytest.mark.parametrize("x_shape, w_shape, kw, bias, dtype, seed", _grid(1, 60, 101))
def test_conv1d_grid(x_shape, w_shape, kw, bias, dtype, seed):
    _check_grid_case(1, x_shape, w_shape, kw, bias, dtype, seed, False)


@pytest.mark.parametrize("x_shape, w_shape, kw, bias, dtype, seed", _grid(3, 40, 303))
def test_conv3d_grid(x_shape, w_shape, kw, bias, dtype, seed):
    _check_grid_case(3, x_shape, w_shape, kw, bias, dtype, seed, False)


@pytest.mark.parametrize("x_shape, w_shape, kw, bias, dtype, seed", _grid(1, 30, 111, transposed=True))
def test_conv_transpose1d_grid(x_shape, w_shape, kw, bias, dtype, seed):
    _check_grid_case(1, x_shape, w_shape, kw, bias, dtype, seed, True)


@pytest.mark.parametrize("x_shape, w_shape, kw, bias, dtype, seed", _grid(3, 30, 313, transposed=True))
def test_conv_transpose3d_grid(x_shape, w_shape, kw, bias, dtype, seed):
    _check_grid_case(3, x_shape, w_shape, kw, bias, dtype, seed, True)


def test_conv3d_slices_of_the_batch_do_not_change_results(monkeypatch):
    """The depth gather runs on slices of the batch when large: forcing one sample per slice changes nothing."""
    from convlayers.functional import _conv_nd
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((3, 4, 6, 5, 5)), rng.standard_normal((2, 4, 3, 2, 3))
    whole = F.conv3d(x, w, padding=1, stride=(2, 1, 1))
    go = rng.standard_normal(whole.shape)
    grads = F.conv3d_backward(go, x, w, padding=1, stride=(2, 1, 1))
    monkeypatch.setattr(_conv_nd, "_GATHER_BUDGET_BYTES", 1)
    np.testing.assert_allclose(F.conv3d(x, w, padding=1, stride=(2, 1, 1)), whole, rtol=1e-13)
    for a, b in zip(F.conv3d_backward(go, x, w, padding=1, stride=(2, 1, 1)), grads):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- pad: exhaustive small grid

@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_pad_negative_widths_match_torch_everywhere_torch_defines_them(mode):
    """Every (before, after) in -5..5 on axes of size 1..5: same values and gradients, or both refuse.

    Circular padding that wraps past the elements a negative width leaves is refused: PyTorch returns
    uninitialised memory there or fails with an internal error.
    """
    rng = np.random.default_rng(0)
    agreed = refused_undefined = 0
    for size, before, after in itertools.product(range(1, 6), range(-5, 6), range(-5, 6)):
        x = rng.standard_normal((2, size))
        kept = size - max(-before, 0) - max(-after, 0)
        try:
            got = F.pad(x, (before, after), mode=mode)
        except ValueError:
            if mode == "circular" and max(before, after) > max(kept, 0) and before <= size and after <= size:
                refused_undefined += 1
                continue
            with pytest.raises((RuntimeError, ValueError)):
                TF.pad(torch.from_numpy(x), (before, after), mode=mode)
            agreed += 1
            continue
        xt = torch.tensor(x, requires_grad=True)
        want = TF.pad(xt, (before, after), mode=mode)
        np.testing.assert_array_equal(got, want.detach().numpy())
        go = rng.standard_normal(got.shape)
        want.backward(torch.from_numpy(go))
        np.testing.assert_allclose(F.pad_backward(go, x.shape, (before, after), mode), xt.grad.numpy(), rtol=1e-12)
        agreed += 1
    assert agreed > 200


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("pad", [(1, 2, -1, 1), (-1, 1, -2, 1), (2, 1, 1, 0, 1, 1), (0, -1, 2, -1, 1, 1), (1, 1)])
def test_pad_nd_matches_torch(mode, pad):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 4, 5, 6)[-(len(pad) // 2 + 2):])
    xt = torch.tensor(x, requires_grad=True)
    want = TF.pad(xt, pad, mode=mode)
    t = convlayers.tensor(x, requires_grad=True)
    got = F.pad(t, pad, mode=mode)
    np.testing.assert_array_equal(got.data, want.detach().numpy())
    go = rng.standard_normal(got.shape)
    got.backward(go)
    want.backward(torch.from_numpy(go))
    np.testing.assert_allclose(t.grad, xt.grad.numpy(), rtol=1e-12)


# --------------------------------------------------------------------------- tiny nets trained against torch


def _train_side_by_side(ours, theirs, x, y, steps=5, lr=0.05):
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    opt = convlayers.optim.SGD(ours.parameters(), lr=lr)
    topt = torch.optim.SGD(theirs.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(ours(convlayers.tensor(x)), y)
        loss.backward()
        opt.step()
        topt.zero_grad()
        tloss = TF.cross_entropy(theirs(torch.from_numpy(x)), torch.from_numpy(y))
        tloss.backward()
        topt.step()
        losses.append((loss.item(), tloss.item()))
    return losses


@pytest.mark.parametrize("nd", [1, 3])
def test_tiny_net_trains_like_torch(nd):
    """A conv → ReLU → transposed conv → conv → flatten → linear net: five SGD steps, the same losses."""
    rng = np.random.default_rng(nd)
    size = (24,) if nd == 1 else (6, 6, 6)
    Conv, Up = getattr(nn, f"Conv{nd}d"), getattr(nn, f"ConvTranspose{nd}d")
    TConv, TUp = getattr(torch.nn, f"Conv{nd}d"), getattr(torch.nn, f"ConvTranspose{nd}d")
    flat = 4 * int(np.prod([(s - 1) // 2 + 1 for s in size]))

    def build(C, U, Lin, Relu, Flat, Seq, **dt):
        return Seq(C(3, 6, 3, padding=1, padding_mode="reflect", **dt), Relu(), U(6, 4, 2, stride=2, **dt), Relu(),
                   C(4, 4, 3, stride=4, padding=1, groups=2, **dt), Flat(), Lin(flat, 5, **dt))

    ours = build(Conv, Up, nn.Linear, nn.ReLU, nn.Flatten, nn.Sequential, dtype=np.float64)
    theirs = build(TConv, TUp, torch.nn.Linear, torch.nn.ReLU, torch.nn.Flatten, torch.nn.Sequential,
                   dtype=torch.float64)
    x = rng.standard_normal((4, 3, *size))
    y = rng.integers(0, 5, 4)
    losses = _train_side_by_side(ours, theirs, x, y)
    for a, b in losses:
        assert abs(a - b) <= 1e-9 * max(1, abs(b))
    assert losses[-1][0] < losses[0][0]


# --------------------------------------------------------------------------- analysis.summary


def test_summary_counts_conv1d_and_conv3d_macs_and_params():
    from convlayers import analysis
    net = nn.Sequential(nn.Conv1d(3, 8, 5, padding=2), nn.ReLU(), nn.Conv1d(8, 8, 3, stride=2),
                        nn.ConvTranspose1d(8, 4, 2, stride=2))
    s = analysis.summary(net, (2, 3, 100))
    assert [r.output_shape for r in s.rows] == [(2, 8, 100), (2, 8, 100), (2, 8, 49), (2, 4, 98)]
    assert [r.macs for r in s.rows] == [2 * 8 * 100 * 3 * 5, 0, 2 * 8 * 49 * 8 * 3, 2 * 8 * 49 * 4 * 2]
    assert s.total_params == sum(p.size for p in net.parameters())
    net3 = nn.Sequential(nn.Conv3d(2, 4, 3, padding=1, groups=2), nn.ConvTranspose3d(4, 2, 2, stride=2))
    s3 = analysis.summary(net3, (1, 2, 4, 8, 8))
    assert [r.output_shape for r in s3.rows] == [(1, 4, 4, 8, 8), (1, 2, 8, 16, 16)]
    assert s3.total_macs == 4 * 4 * 8 * 8 * 1 * 27 + 4 * 4 * 8 * 8 * 2 * 8
    assert s3.total_params == sum(p.size for p in net3.parameters())
    with pytest.raises(ValueError, match="kernel size"):
        analysis.summary(nn.Conv3d(2, 4, 5), (1, 2, 3, 8, 8))


def test_interop_twins_of_nd_layers_match():
    from convlayers.interop import to_torch
    net = nn.Sequential(nn.ReflectionPad1d((2, 1)), nn.Conv1d(2, 4, 3, padding="same", padding_mode="circular"),
                        nn.ConstantPad1d(1, 0.5), nn.ConvTranspose1d(4, 2, 3, stride=2), nn.ZeroPad1d((0, -1)))
    x = np.random.default_rng(2).standard_normal((2, 2, 9)).astype(np.float32)
    assert_close(net(x), to_torch(net)(torch.from_numpy(x)).detach().numpy())
    net3 = nn.Sequential(nn.ReplicationPad3d(1), nn.Conv3d(2, 2, 3, groups=2), nn.CircularPad3d((1, 0, 0, 1, 1, 0)),
                         nn.ConvTranspose3d(2, 3, 2, stride=2, dilation=1))
    x3 = np.random.default_rng(3).standard_normal((1, 2, 3, 4, 4)).astype(np.float32)
    assert_close(net3(x3), to_torch(net3)(torch.from_numpy(x3)).detach().numpy())


def test_pad_dtypes_follow_torch():
    x = np.arange(6).reshape(1, 2, 3)
    for mode in ("constant", "reflect", "replicate", "circular"):
        assert F.pad(x, (1, 1), mode=mode).dtype == np.int64
        np.testing.assert_array_equal(F.pad(x, (1, 1), mode=mode), TF.pad(torch.from_numpy(x), (1, 1), mode=mode))
    b = np.ones((1, 2, 3), bool)
    for mode in ("reflect", "replicate"):
        with pytest.raises(TypeError, match="bool"):
            F.pad(b, (1, 1), mode=mode)
    assert F.pad(b, (1, 1), mode="circular").dtype == np.bool_


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv3d_plane_tasks_in_bands_and_on_threads_match_torch(monkeypatch, dtype):
    """The 3-D forward runs output planes (or bands of their rows) as tasks: one row per band changes nothing."""
    from convlayers.functional import conv as conv_module
    rng = np.random.default_rng(9)
    x, w = rng.standard_normal((2, 6, 5, 7, 6)).astype(dtype), rng.standard_normal((4, 3, 2, 3, 2)).astype(dtype)
    kw = dict(stride=(2, 1, 2), padding=(1, 1, 0), dilation=(1, 2, 1), groups=2)
    want = TF.conv3d(torch.from_numpy(x), torch.from_numpy(w), **kw).numpy()
    assert_close(F.conv3d(x, w, **kw), want)
    monkeypatch.setattr(conv_module, "_COLS_BUDGET_BYTES", 1)
    monkeypatch.setattr(conv_module, "_WORKER_COLS_BUDGET_BYTES", 1)
    assert_close(F.conv3d(x, w, **kw), want)


def test_conv3d_nonfinite_weight_taps_follow_the_2d_rule():
    """A NaN weight tap reaches only the outputs whose window puts it on the input in H and W (as conv2d)."""
    x = np.ones((1, 1, 1, 4, 4), np.float32)
    w = np.ones((1, 1, 1, 3, 3), np.float32)
    w[0, 0, 0, 0, 0] = np.nan
    got = F.conv3d(x, w, padding=(0, 1, 1))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(F.conv2d(x[:, :, 0], w[:, :, 0], padding=1))[:, :, None])


# ------------------------------------------------------------------ blocked reorders (functional._layout)


@pytest.mark.parametrize("shape, groups", [((512, 256, 3, 3), 1), ((96, 32, 3, 3), 3), ((40, 8, 2, 5), 4),
                                           ((8, 4, 3, 3), 1), ((300, 300, 1, 1), 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blocked_reorders_equal_numpys(shape, groups, dtype):
    from convlayers.functional import _layout

    w = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    cout, cin_g, kh, kw = shape
    cout_g = cout // groups
    flipped = w.reshape(groups, cout_g, cin_g, kh, kw).transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]
    np.testing.assert_array_equal(_layout.flipped_transposed(w, groups),
                                  flipped.reshape(groups * cin_g, cout_g, kh, kw))
    if groups == 1:
        m = _layout.taps_channels_out(w)
        np.testing.assert_array_equal(m, w.transpose(2, 3, 1, 0).reshape(kh * kw * cin_g, cout))
        np.testing.assert_array_equal(_layout.from_taps_channels_out(m, shape), w)
    a = w.reshape(cout, -1)
    np.testing.assert_array_equal(_layout.transposed(a), a.T)
    np.testing.assert_array_equal(_layout.transposed(a[::2, 1::3]), a[::2, 1::3].T)  # strided views too


# ------------------------------------------------------------------ rows longer than a tile (functional.conv)


@pytest.mark.parametrize("case", [dict(k=9, stride=1, padding=4), dict(k=5, stride=2, padding=3, dilation=2),
                                  dict(k=3, stride=3, padding=0, groups=2), dict(k=1, stride=1, padding=0),
                                  dict(k=4, stride=1, padding=5)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv1d_on_long_signals_matches_torch_in_column_bands(case, dtype, monkeypatch):
    from convlayers.functional import conv as conv_core

    # a tiny tile budget, so that every row of these signals is cut into bands of columns
    monkeypatch.setattr(conv_core, "_WORKER_COLS_BUDGET_BYTES", 4096)
    monkeypatch.setattr(conv_core, "_COLS_BUDGET_BYTES", 4096)
    calls = []
    banded = conv_core._forward_row_bands
    monkeypatch.setattr(conv_core, "_forward_row_bands", lambda *a: calls.append(1) or banded(*a))
    rng = np.random.default_rng(0)
    case = dict(case)
    k, groups = case.pop("k"), case.get("groups", 1)
    x = rng.standard_normal((3, 4, 2000)).astype(dtype)
    w = rng.standard_normal((6, 4 // groups, k)).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    expected = torch.nn.functional.conv1d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), **case)
    assert_close(F.conv1d(x, w, b, **case), expected.numpy())
    assert calls or k == 1  # the banded path ran (1x1 kernels are plain products)


def test_conv2d_with_rows_longer_than_a_tile_matches_torch(monkeypatch):
    from convlayers.functional import conv as conv_core

    monkeypatch.setattr(conv_core, "_WORKER_COLS_BUDGET_BYTES", 4096)
    monkeypatch.setattr(conv_core, "_COLS_BUDGET_BYTES", 4096)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 5, 900)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    scale, shift = rng.standard_normal(4).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    y = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), None, (1, 2), (1, 2))
    expected = torch.clamp(y * torch.from_numpy(scale)[:, None, None] + torch.from_numpy(shift)[:, None, None], 0, 6)
    got = conv_core.conv2d_affine(x, w, None, (1, 2), (1, 2), 1, 1, "zeros", scale, shift, 0.0, 6.0)
    assert_close(got, expected.numpy())

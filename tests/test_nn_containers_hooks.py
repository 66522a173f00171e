"""ModuleDict, ParameterList, ModuleList, forward hooks and module traversal, against PyTorch's behaviour."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

import convlayers as cl
from convlayers import nn

torch = pytest.importorskip("torch")


def _twin_nets():
    mine = nn.Sequential(OrderedDict(block=nn.Sequential(nn.Linear(3, 4), nn.ReLU()),
                                     heads=nn.ModuleDict({"a": nn.Linear(4, 2), "b": nn.Identity()})))
    theirs = torch.nn.Sequential(OrderedDict(block=torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU()),
                                             heads=torch.nn.ModuleDict({"a": torch.nn.Linear(4, 2),
                                                                        "b": torch.nn.Identity()})))
    return mine, theirs


def test_traversal_names_match_torch():
    mine, theirs = _twin_nets()
    assert [n for n, _ in mine.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in mine.named_children()] == [n for n, _ in theirs.named_children()]
    assert list(mine.state_dict()) == list(theirs.state_dict())
    assert [type(m).__name__ for m in mine.modules()] == [type(m).__name__ for m in theirs.modules()]
    shared = nn.ReLU()
    twice = nn.Sequential(shared, shared)
    assert len(list(twice.named_modules())) == 2
    assert len(list(twice.named_modules(remove_duplicate=False))) == 3
    visited = []
    mine.apply(lambda m: visited.append(type(m).__name__))
    assert visited[-1] == "Sequential" and visited[0] == "Linear"      # children first, as torch


def test_module_dict():
    d = nn.ModuleDict([("x", nn.ReLU()), ("y", nn.Tanh())])
    d["z"] = nn.Sigmoid()
    assert list(d.keys()) == ["x", "y", "z"] and len(d) == 3 and "y" in d
    assert type(d.pop("y")).__name__ == "Tanh" and list(d) == ["x", "z"]
    with pytest.raises(TypeError, match="must be Modules"):
        d["bad"] = 3
    with pytest.raises(NotImplementedError):
        d(np.zeros(1))
    d.update({"w": nn.Identity()})
    assert repr(d) == repr(torch.nn.ModuleDict({"x": torch.nn.ReLU(), "z": torch.nn.Sigmoid(),
                                                "w": torch.nn.Identity()}))


def test_parameter_list_registers_and_trains():
    params = nn.ParameterList([np.ones(3, np.float32)])
    params.append(np.zeros((2, 2), np.float32))
    assert len(params) == 2 and len(list(params.parameters())) == 2
    assert list(params.state_dict()) == ["0", "1"]
    x = cl.Tensor(np.full(3, 2.0, np.float32))
    (params[0] * x).sum().backward()
    np.testing.assert_array_equal(params[0].grad, np.full(3, 2.0, np.float32))
    with pytest.raises(TypeError):
        params.append("nope")


def test_module_list_edits():
    layers = nn.ModuleList([nn.ReLU(), nn.Tanh()])
    layers.insert(1, nn.Sigmoid())
    layers.extend([nn.Identity()])
    assert [type(m).__name__ for m in layers] == ["ReLU", "Sigmoid", "Tanh", "Identity"]
    del layers[0]
    layers[0] = nn.GELU()
    assert list(dict(layers.named_children())) == ["0", "1", "2"]
    assert isinstance(layers[1:], nn.ModuleList) and len(layers[1:]) == 2


def test_forward_hooks_match_torch_order_and_removal():
    mine, theirs = _twin_nets()
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in mine.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    log_m, log_t = [], []
    handles = []
    for log, net in ((log_m, mine), (log_t, theirs)):
        handles.append(net.block[0].register_forward_pre_hook(lambda m, a, log=log: log.append("pre")))
        handles.append(net.block[0].register_forward_hook(lambda m, a, o, log=log: log.append(tuple(o.shape))))
        handles.append(net.block[0].register_forward_hook(lambda m, a, o, log=log: log.append("first"),
                                                          prepend=True))
        handles.append(net.block.register_forward_hook(lambda m, a, o: o * 2))       # replaces the output
    out_m = mine.block(x)
    out_t = theirs.block(torch.from_numpy(x)).detach().numpy()
    assert log_m == log_t == ["pre", "first", (5, 4)]
    np.testing.assert_allclose(out_m, out_t, rtol=1e-6)
    for h in handles:
        h.remove()
    np.testing.assert_allclose(mine.block(x), out_t / 2, rtol=1e-6)
    assert log_m == ["pre", "first", (5, 4)]                                         # removed: not called


def test_hooks_with_kwargs_and_pre_hook_rewrites_input():
    lin = nn.Linear(2, 2)
    with lin.register_forward_pre_hook(lambda m, args, kwargs: ((), {"input": kwargs["input"] * 0}),
                                       with_kwargs=True):
        out = lin(input=np.ones((1, 2), np.float32))
    np.testing.assert_allclose(out, lin.bias.data[None])
    seen = []
    lin.register_forward_hook(lambda m, args, kwargs, out: seen.append(sorted(kwargs)), with_kwargs=True)
    lin(input=np.ones((1, 2), np.float32))
    assert seen == [["input"]]


def test_hooks_fire_inside_fused_inference():
    block = nn.ConvBNReLU(3, 4).eval()
    seen = []
    block[1].register_forward_hook(lambda m, a, o: seen.append(o.shape))
    y = block(np.zeros((1, 3, 6, 6), np.float32))
    assert seen == [(1, 4, 6, 6)] and y.shape == (1, 4, 6, 6)


def test_linear_input_keyword_and_forward_argument_names():
    import inspect
    lin = nn.Linear(3, 2)
    x = np.ones((4, 3), np.float32)
    np.testing.assert_array_equal(lin(input=x), lin(x))
    assert isinstance(lin(input=x), np.ndarray)
    for name in ("Linear", "ReLU", "ReLU6", "Sigmoid", "Hardswish", "PReLU", "GLU", "Dropout", "Dropout2d",
                 "Softmax", "Flatten", "Identity"):
        assert list(inspect.signature(getattr(nn, name).forward).parameters)[1] == "input", name

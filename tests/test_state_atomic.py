"""``load_state_dict`` is all or nothing: modules, optimizers and schedules (issue #10 item 5)."""

import copy

import numpy as np
import pytest
import torch

import convlayers as cl
from convlayers import nn
from convlayers.optim import SGD, Adam, AdamW, CosineAnnealingLR, StepLR


def small():
    nn.init.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))


def snapshot(model):
    return {k: (v.copy(), v.dtype) for k, v in model.state_dict().items()}


def assert_unchanged(model, before):
    after = model.state_dict()
    assert list(after) == list(before)
    for key, (value, dtype) in before.items():
        assert after[key].dtype == dtype, key
        np.testing.assert_array_equal(after[key], value, err_msg=key)


def with_value(model, key, value):
    state = model.state_dict()
    state[key] = value
    return state


# The last key of the model's state_dict gets the bad value, so a loader that assigns as it goes would already
# have overwritten every other tensor when it fails (the old loop overwrote 8 of 9).
@pytest.mark.parametrize("key, value, match", [
    ("4.bias", np.array(["a", "b", "c"]), "non-numeric dtype <U1"),
    ("4.bias", np.array([None, None, None], dtype=object), "non-numeric dtype object"),
    ("4.bias", np.array([1 + 2j, 0, 0]), "complex"),
    ("4.bias", [[1.0], [2.0, 3.0]], "cannot be read as an array"),
    ("4.bias", np.zeros(4), "size mismatch for 4.bias"),
    ("4.bias", np.array([1e300, 0.0, 0.0]), "overflow float32"),
    ("1.num_batches_tracked", np.array(1e30), "does not fit int64"),
    ("1.num_batches_tracked", np.array(2.0**63), "does not fit int64"),
    ("1.num_batches_tracked", np.array(-1e19), "does not fit int64"),
    ("1.num_batches_tracked", np.array(np.nan), "NaN or infinite"),
    ("1.num_batches_tracked", np.array(2.5), "non-integer"),
    ("1.num_batches_tracked", np.array(2**64 - 1, dtype=np.uint64), "does not fit int64"),
])
def test_bad_value_leaves_the_module_unchanged(key, value, match):
    model = small().float()
    source = small()
    for p in source.parameters():
        p.data = p.data + 1.0   # every other value differs from the model's, so a partial load would show
    state = {k: v for k, v in source.state_dict().items()}
    state[key] = value
    state = {k: state[k] for k in [k for k in state if k != key] + [key]}   # the bad key last
    before = snapshot(model)
    with pytest.raises(ValueError, match=match) as info:
        model.load_state_dict(state)
    assert "nothing was loaded" in str(info.value)
    assert_unchanged(model, before)


def test_every_problem_is_listed_at_once():
    model = small()
    state = model.state_dict()
    state["0.weight"] = np.array(["x"] * 18).reshape(2, 1, 3, 3)
    state["1.num_batches_tracked"] = np.array(1e30)
    del state["4.bias"]
    state["extra"] = np.zeros(1)
    with pytest.raises(ValueError) as info:
        model.load_state_dict(state)
    message = str(info.value)
    for needle in ("0.weight", "num_batches_tracked", "missing keys: 4.bias", "unexpected keys: extra"):
        assert needle in message


def test_a_mapping_that_fails_to_give_a_value_is_refused_whole():
    class Flaky(dict):
        def __getitem__(self, key):
            if key == "4.bias":
                raise KeyError("storage went away")
            return super().__getitem__(key)

    model = small()
    other = small()
    for p in other.parameters():
        p.data = p.data * 0
    before = snapshot(model)
    with pytest.raises(KeyError):
        model.load_state_dict(Flaky(other.state_dict()))
    assert_unchanged(model, before)


def test_good_values_convert_as_pytorch_does():
    model = small().float()
    state = model.state_dict()
    state["1.num_batches_tracked"] = np.array(7.0)          # integral float -> int64
    state["1.running_mean"] = np.array([1, 2])              # int -> float32
    state["4.bias"] = torch.tensor([1.0, np.nan, -np.inf], dtype=torch.bfloat16)   # torch, bfloat16, NaN kept
    state["0.bias"] = np.array([True, False])               # bool -> float, as torch's copy_
    model.load_state_dict(state)
    got = model.state_dict()
    assert got["1.num_batches_tracked"].dtype == np.int64 and int(got["1.num_batches_tracked"]) == 7
    assert got["1.running_mean"].dtype == np.float32 and got["1.running_mean"].tolist() == [1, 2]
    assert got["4.bias"][0] == 1 and np.isnan(got["4.bias"][1]) and got["4.bias"][2] == -np.inf
    assert got["0.bias"].tolist() == [1.0, 0.0]
    # and the model owns copies: changing the source afterwards changes nothing
    source = {k: np.array(v) for k, v in got.items()}
    model.load_state_dict(source)
    source["4.linear"] = None
    source["0.bias"][:] = 5
    assert model.state_dict()["0.bias"].tolist() == [1.0, 0.0]


def test_torch_state_dict_still_loads():
    tm = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.ReLU(), torch.nn.Flatten(),
                             torch.nn.Linear(32, 3))
    model = small()
    model.load_state_dict(tm.state_dict())
    for key, value in tm.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[key], value.numpy())


# ---- optimizers ------------------------------------------------------------------------------------------------

def trained(opt_class, **kw):
    w = cl.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    b = cl.tensor(np.ones(3), requires_grad=True)
    opt = opt_class([{"params": [w]}, {"params": [b], "lr": 0.01}], **kw)
    for _ in range(3):
        opt.zero_grad()
        ((w * w).sum() + (b * b * b).sum()).backward()
        opt.step()
    return opt


def opt_snapshot(opt):
    return copy.deepcopy(opt.state_dict())


def assert_same(a, b):
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for i in a["state"]:
        assert a["state"][i].keys() == b["state"][i].keys()
        for k in a["state"][i]:
            np.testing.assert_array_equal(a["state"][i][k], b["state"][i][k])


def bad_variants():
    def set_state(key, value, index=1):
        def f(sd):
            sd["state"][index][key] = value
        return f

    def set_group(key, value, index=1):
        def f(sd):
            sd["param_groups"][index][key] = value
        return f

    def drop_group_key(key):
        def f(sd):
            del sd["param_groups"][1][key]
        return f

    return [
        (set_state("exp_avg", np.zeros(4)), "expected shape \\(3,\\)"),
        (set_state("exp_avg", np.array(["a"] * 3)), "real numeric"),
        (set_state("exp_avg_sq", np.array([None] * 3, dtype=object)), "real numeric"),
        (set_state("step", -1), "non-negative integer"),
        (set_state("step", 2.5), "non-negative integer"),
        (set_state("step", float("nan")), "non-negative integer"),
        (set_group("lr", "fast"), "'lr'"),
        (set_group("lr", -1.0), "finite number >= 0"),
        (set_group("lr", float("inf")), "finite number >= 0"),
        (set_group("amsgrad", 1), "'amsgrad'"),
        (set_group("betas", (0.9,)), "'betas'"),
        (drop_group_key("eps"), "lacks 'eps'"),
        (lambda sd: sd["state"].__setitem__(7, {"step": 1}), "no such parameter id"),
        (lambda sd: sd["param_groups"][1].__setitem__("params", [0]), "distinct"),
        (lambda sd: sd["param_groups"].pop(), "do not match"),
        (lambda sd: sd.pop("state"), "missing \\['state'\\]"),
    ]


@pytest.mark.parametrize("mutate, match", bad_variants())
def test_bad_optimizer_state_leaves_it_unchanged(mutate, match):
    opt = trained(Adam, lr=0.1)
    donor = opt_snapshot(trained(Adam, lr=0.2, amsgrad=False))
    for entry in donor["state"].values():   # every saved value differs, so a partial load would show
        entry["exp_avg"] = entry["exp_avg"] + 1
    mutate(donor)
    before = opt_snapshot(opt)
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(donor)
    assert_same(opt.state_dict(), before)


def test_optimizer_round_trip_continues_identically():
    for opt_class, kw in ((SGD, dict(lr=0.1, momentum=0.9)), (Adam, dict(lr=0.1)), (AdamW, dict(lr=0.1))):
        a = trained(opt_class, **kw)
        b = trained(opt_class, **kw)
        b.load_state_dict(copy.deepcopy(a.state_dict()))
        assert_same(a.state_dict(), b.state_dict())


def test_torch_adam_state_dict_loads_and_continues_like_torch():
    w0 = np.arange(6.0).reshape(2, 3)
    tw = torch.tensor(w0, requires_grad=True)
    topt = torch.optim.Adam([tw], lr=0.1)
    for _ in range(2):
        topt.zero_grad()
        (tw * tw).sum().backward()
        topt.step()
    w = cl.tensor(tw.detach().numpy().copy(), requires_grad=True)
    opt = Adam([w], lr=0.1)
    opt.load_state_dict(topt.state_dict())
    assert opt.state[w]["step"] == 2
    topt.zero_grad()
    (tw * tw).sum().backward()
    topt.step()
    opt.zero_grad()
    (w * w).sum().backward()
    opt.step()
    np.testing.assert_allclose(w.data, tw.detach().numpy(), rtol=1e-12, atol=1e-12)


def test_scheduler_load_state_dict_is_checked():
    opt = trained(SGD, lr=1.0)
    sched = StepLR(opt, step_size=2)
    before = sched.state_dict()
    for bad, match in (({"last_epoch": "3"}, "last_epoch"), ({"nonsense": 1}, "unexpected key"),
                       ({"base_lrs": [1.0]}, "base_lrs"), ({"optimizer": None}, "unexpected key")):
        with pytest.raises(ValueError, match=match):
            sched.load_state_dict(bad)
        assert sched.state_dict() == before
    other = CosineAnnealingLR(trained(SGD, lr=1.0), T_max=5)
    other.step()
    state = other.state_dict()
    again = CosineAnnealingLR(trained(SGD, lr=1.0), T_max=5)
    again.load_state_dict(state)
    assert again.state_dict() == state

"""Optimizers and LR schedules: trajectories against torch.optim in float64."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import convlayers as cl  # noqa: E402
from convlayers import optim  # noqa: E402

TOL = dict(rtol=1e-12, atol=1e-14)


def _loss_ours(params, data):
    a, b = params
    x, y = data
    pred = cl.functional.linear(cl.tensor(x), a, b)
    return ((pred - y) * (pred - y)).mean() + (a * a * a).sum() * 0.01


def _loss_torch(params, data):
    a, b = params
    x, y = (torch.tensor(v) for v in data)
    pred = torch.nn.functional.linear(x, a, b)
    return ((pred - y) * (pred - y)).mean() + (a * a * a).sum() * 0.01


def run_both(make_ours, make_theirs, steps=25, groups=False, scheduler=None, skip_grad_of=None):
    """Optimise the same small problem with both libraries; compare parameters at every step."""
    rng = np.random.default_rng(0)
    init = [rng.standard_normal((3, 4)), rng.standard_normal(3)]
    data = (rng.standard_normal((10, 4)), rng.standard_normal((10, 3)))
    ours = [cl.tensor(v, requires_grad=True) for v in init]
    theirs = [torch.tensor(v, requires_grad=True) for v in init]
    if groups:
        opt_o = make_ours([{"params": [ours[0]]}, {"params": [ours[1]], "lr": 0.05}])
        opt_t = make_theirs([{"params": [theirs[0]]}, {"params": [theirs[1]], "lr": 0.05}])
    else:
        opt_o, opt_t = make_ours(ours), make_theirs(theirs)
    sched_o = sched_t = None
    if scheduler:
        sched_o, sched_t = scheduler[0](opt_o), scheduler[1](opt_t)
    for step in range(steps):
        opt_o.zero_grad()
        opt_t.zero_grad()
        _loss_ours(ours, data).backward()
        _loss_torch(theirs, data).backward()
        if skip_grad_of is not None and step % 3 == 0:   # a parameter without a gradient is left alone
            ours[skip_grad_of].grad = None
            theirs[skip_grad_of].grad = None
        opt_o.step()
        opt_t.step()
        if scheduler:
            sched_o.step()
            sched_t.step()
            np.testing.assert_allclose(sched_o.get_last_lr(), sched_t.get_last_lr(), **TOL)
        for o, t in zip(ours, theirs):
            np.testing.assert_allclose(o.data, t.detach().numpy(), **TOL, err_msg=f"step {step}")
    return ours


SGD_CONFIGS = [
    dict(lr=0.1), dict(lr=0.05, momentum=0.9), dict(lr=0.05, momentum=0.9, dampening=0.3),
    dict(lr=0.05, momentum=0.9, nesterov=True), dict(lr=0.05, momentum=0.8, weight_decay=0.1),
    dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01, maximize=True),
]


@pytest.mark.parametrize("kw", SGD_CONFIGS, ids=str)
def test_sgd_matches_torch(kw):
    run_both(lambda p: optim.SGD(p, **kw), lambda p: torch.optim.SGD(p, **kw))


ADAM_CONFIGS = [
    dict(lr=0.01), dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6), dict(lr=0.01, weight_decay=0.1),
    dict(lr=0.01, amsgrad=True), dict(lr=0.01, amsgrad=True, weight_decay=0.05, maximize=True),
    dict(lr=0.01, betas=(0.3, 0.9)),    # beta1 < 0.5 takes lerp's other branch
]


@pytest.mark.parametrize("kw", ADAM_CONFIGS, ids=str)
@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_adam_and_adamw_match_torch(name, kw):
    run_both(lambda p: getattr(optim, name)(p, **kw), lambda p: getattr(torch.optim, name)(p, **kw))


def test_adamw_default_weight_decay_is_decoupled():
    run_both(lambda p: optim.AdamW(p, lr=0.05), lambda p: torch.optim.AdamW(p, lr=0.05), steps=10)
    assert optim.AdamW([cl.tensor([1.0], requires_grad=True)]).param_groups[0]["weight_decay"] == 1e-2


def test_param_groups_and_missing_gradients():
    run_both(lambda p: optim.SGD(p, lr=0.1, momentum=0.9), lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
             groups=True, skip_grad_of=1)
    run_both(lambda p: optim.Adam(p, lr=0.01), lambda p: torch.optim.Adam(p, lr=0.01), groups=True,
             skip_grad_of=0)


@pytest.mark.parametrize("kind", ["step", "cosine", "cosine_restart"])
def test_schedulers_match_torch(kind):
    if kind == "step":
        ours, theirs = (lambda o: optim.StepLR(o, step_size=4, gamma=0.5),
                        lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=4, gamma=0.5))
    elif kind == "cosine":
        ours, theirs = (lambda o: optim.CosineAnnealingLR(o, T_max=20, eta_min=0.001),
                        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=20, eta_min=0.001))
    else:   # past T_max the cosine goes back up
        ours, theirs = (lambda o: optim.lr_scheduler.CosineAnnealingLR(o, T_max=6),
                        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=6))
    run_both(lambda p: optim.SGD(p, lr=0.1, momentum=0.9), lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
             steps=25, groups=True, scheduler=(ours, theirs))


def test_cosine_closed_form_values():
    opt = optim.SGD([cl.tensor([0.0], requires_grad=True)], lr=1.0)
    sched = optim.CosineAnnealingLR(opt, T_max=10, eta_min=0.1)
    lrs = [sched.get_last_lr()[0]]
    for _ in range(10):
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    expected = [0.1 + 0.9 * (1 + math.cos(math.pi * t / 10)) / 2 for t in range(11)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-12, atol=1e-15)


def test_zero_grad():
    w = cl.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.SGD([w], lr=0.1)
    (w * w).sum().backward()
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(w.grad, [0.0, 0.0])
    opt.zero_grad()
    assert w.grad is None
    opt.step()                       # no gradient: nothing moves
    np.testing.assert_array_equal(w.data, [1.0, 2.0])


def test_state_dict_round_trip_continues_identically():
    def make():
        w = cl.tensor([1.0, -2.0, 0.5], requires_grad=True)
        return w, optim.Adam([w], lr=0.1, amsgrad=True)

    def step(w, opt):
        opt.zero_grad()
        (w * w * w).sum().backward()
        opt.step()

    w1, o1 = make()
    for _ in range(3):
        step(w1, o1)
    w2, o2 = make()
    w2.data[...] = w1.data
    o2.load_state_dict(o1.state_dict())
    for _ in range(3):
        step(w1, o1)
        step(w2, o2)
    np.testing.assert_array_equal(w1.data, w2.data)


def test_update_is_in_place():
    w = cl.tensor([1.0], requires_grad=True)
    data = w.data
    opt = optim.SGD([w], lr=0.5, momentum=0.5)
    for _ in range(2):
        (w * w).sum().backward()
        opt.step()
    assert w.data is data


@pytest.mark.parametrize("call,exc,match", [
    (lambda w: optim.SGD(w, lr=0.1), TypeError, "iterable"),
    (lambda w: optim.SGD([], lr=0.1), ValueError, "empty"),
    (lambda w: optim.SGD([np.ones(2)], lr=0.1), TypeError, "Tensors"),
    (lambda w: optim.SGD([w * 2], lr=0.1), ValueError, "non-leaf"),
    (lambda w: optim.SGD([w, w], lr=0.1), ValueError, "more than once"),
    (lambda w: optim.SGD([{"params": [w]}, {"params": [w]}], lr=0.1), ValueError, "more than one"),
    (lambda w: optim.SGD([w], lr=-1), ValueError, "lr"),
    (lambda w: optim.SGD([w], lr=0.1, momentum=-0.5), ValueError, "momentum"),
    (lambda w: optim.SGD([w], lr=0.1, nesterov=True), ValueError, "nesterov"),
    (lambda w: optim.Adam([w], betas=(0.9, 1.0)), ValueError, "betas"),
    (lambda w: optim.AdamW([w], eps=-1e-8), ValueError, "eps"),
    (lambda w: optim.StepLR(optim.SGD([w], lr=0.1), step_size=0), ValueError, "step_size"),
    (lambda w: optim.CosineAnnealingLR(optim.SGD([w], lr=0.1), T_max=0), ValueError, "T_max"),
    (lambda w: optim.StepLR(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1), 2), TypeError,
     "Optimizer"),
])
def test_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call(cl.tensor([1.0], requires_grad=True))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kw", [dict(lr=1e-3), dict(lr=0.05, betas=(0.3, 0.9), weight_decay=0.1),
                                dict(lr=0.01, maximize=True)])
@pytest.mark.parametrize("cls", ["Adam", "AdamW"])
def test_compiled_adam_step_is_the_numpy_step_bit_for_bit(monkeypatch, dtype, kw, cls):
    """The one-pass kernel (``_kernels.optim.adam_update``) gives the NumPy update's bits, both lerp formulas."""
    import convlayers.optim as optim_module
    rng = np.random.default_rng(8)
    start = rng.standard_normal((7, 33)).astype(dtype)
    grads = [rng.standard_normal((7, 33)).astype(dtype) for _ in range(4)]
    calls = []
    real = optim_module._optim_k.adam_update
    monkeypatch.setattr(optim_module._optim_k, "adam_update", type("K", (), {
        "for_work": staticmethod(lambda n: (lambda *a: calls.append(1) or real(*a)))}))

    def run(fused):
        monkeypatch.setattr(optim_module, "_fused_adam_fits", (lambda *a: True) if fused else (lambda *a: False))
        w = cl.tensor(start.copy(), requires_grad=True)
        opt = getattr(optim, cls)([w], **kw)
        for g in grads:
            w.grad = g.copy()
            opt.step()
        return w.data, opt.state[w]

    (fast, fs), (slow, ss) = run(True), run(False)
    assert calls and fast.dtype == dtype
    np.testing.assert_array_equal(fast, slow)
    np.testing.assert_array_equal(fs["exp_avg"], ss["exp_avg"])
    np.testing.assert_array_equal(fs["exp_avg_sq"], ss["exp_avg_sq"])

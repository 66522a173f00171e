"""Optimizers and learning-rate schedules, step for step like ``torch.optim``.

Parameters are :class:`convlayers.Tensor` objects; ``step()`` reads their
``.grad`` and updates ``.data`` in place.  The arithmetic follows PyTorch's
single-tensor code paths operation by operation, so trajectories agree with
PyTorch's to rounding.

Examples
--------
>>> import numpy as np
>>> import convlayers as cl
>>> from convlayers.optim import SGD
>>> w = cl.tensor([1.0, -2.0], requires_grad=True)
>>> opt = SGD([w], lr=0.1, momentum=0.9)
>>> for _ in range(3):
...     opt.zero_grad()
...     (w * w).sum().backward()
...     opt.step()
>>> w.data.round(4)
array([ 0.062, -0.124])
"""

from __future__ import annotations

import copy
import math
import numbers
import sys

import numpy as np

from ._kernels import optim as _optim_k
from .autograd import Tensor

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "LRScheduler", "StepLR", "CosineAnnealingLR"]


def _check_nonnegative(value, name, owner):
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not value >= 0:
        raise ValueError(f"{owner}: {name} must be a number >= 0, got {value!r}")


class Optimizer:
    """Base class: parameter groups, per-parameter state and ``zero_grad``.

    Parameters
    ----------
    params : iterable of Tensor or of dict
        The Tensors to optimise, or groups ``{"params": [...], "lr": ...}``
        whose keys override ``defaults``.
    defaults : dict
        Hyper-parameters applied to groups that do not set them.
    """

    def __init__(self, params, defaults):
        if isinstance(params, (Tensor, np.ndarray)):
            raise TypeError(
                "params: expected an iterable of Tensors or dicts, got a single "
                f"{type(params).__name__}"
            )
        params = list(params)
        if not params:
            raise ValueError("params: got an empty parameter list")
        self.defaults = dict(defaults)
        self.state: dict[Tensor, dict] = {}
        self.param_groups: list[dict] = []
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group):
        """Add a group ``{"params": [...], **overrides}``."""
        if not isinstance(group, dict):
            raise TypeError(f"param_group: expected a dict, got {type(group).__name__}")
        group = dict(group)
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"params: expected Tensors, got {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("params: can't optimize a non-leaf Tensor (the result of an operation)")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("params: some parameters appear in more than one parameter group")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("params: some parameters appear more than once in a group")
        group["params"] = params
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none=True):
        """Reset the gradients of all parameters (to None, or to zeros)."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad[...] = 0

    def step(self):
        """Update every parameter that has a gradient."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, np.asarray(p.grad, dtype=p.dtype), group, self.state.setdefault(p, {}))

    def _update(self, param, grad, group, state):  # pragma: no cover - abstract
        raise NotImplementedError

    def state_dict(self):
        """Hyper-parameters and state, with parameters replaced by their positions."""
        index = {id(p): i for i, p in enumerate(p for g in self.param_groups for p in g["params"])}
        groups = [{**{k: v for k, v in g.items() if k != "params"},
                   "params": [index[id(p)] for p in g["params"]]} for g in self.param_groups]
        state = {index[id(p)]: copy.deepcopy(s) for p, s in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore what :meth:`state_dict` returned (same parameter layout), all or nothing.

        Everything is checked and copied first: the group layout, every
        hyper-parameter's type (a number for a number, a bool for a bool, a
        pair for ``betas``), every state array's shape and dtype against its
        parameter, ``step`` a non-negative integer.  On any error a ValueError
        lists what is wrong and the optimizer is unchanged.  PyTorch's own
        ``optimizer.state_dict()`` (tensors, extra flags) loads too.
        """
        groups, state = _checked_optimizer_state(self, state_dict)
        for group, saved in zip(self.param_groups, groups):
            group.update(saved)
        self.state = state

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(g.items()) if k != "params"]
        return "\n".join(lines + [")"])


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov and weight decay.

    Parameters
    ----------
    params : iterable of Tensor or dict
        Parameters or parameter groups.
    lr : float, default 1e-3
        Learning rate.
    momentum, dampening, weight_decay : float, default 0
        As in ``torch.optim.SGD``.
    nesterov : bool, default False
        Nesterov momentum; needs ``momentum > 0`` and ``dampening == 0``.
    maximize : bool, default False
        Ascend instead of descend.

    Examples
    --------
    >>> import convlayers as cl
    >>> w = cl.tensor([1.0], requires_grad=True)
    >>> opt = cl.optim.SGD([w], lr=0.5)
    >>> (w * w).sum().backward(); opt.step(); w.data
    array([0.])
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False):
        for name, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
            _check_nonnegative(value, name, "SGD")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(
                f"SGD: nesterov requires momentum > 0 and dampening = 0, got momentum={momentum}, "
                f"dampening={dampening}"
            )
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov, maximize=maximize))

    def _update(self, p, grad, group, state):
        if group["maximize"]:
            grad = -grad
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * p.data
        momentum = group["momentum"]
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = grad.copy()
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * grad
            grad = grad + momentum * buf if group["nesterov"] else buf
        p.data -= group["lr"] * grad


class Adam(Optimizer):
    """Adam, optionally AMSGrad, with L2 weight decay added to the gradient.

    Parameters
    ----------
    params : iterable of Tensor or dict
        Parameters or parameter groups.
    lr : float, default 1e-3
        Learning rate.
    betas : (float, float), default (0.9, 0.999)
        Decay rates of the first and second moment estimates.
    eps : float, default 1e-8
        Added to the denominator.
    weight_decay : float, default 0
        L2 penalty coefficient.
    amsgrad : bool, default False
        Use the running maximum of the second moment.
    maximize : bool, default False
        Ascend instead of descend.

    Examples
    --------
    >>> import convlayers as cl
    >>> w = cl.tensor([1.0], requires_grad=True)
    >>> opt = cl.optim.Adam([w], lr=0.1)
    >>> (w * w).sum().backward(); opt.step(); w.data.round(6)
    array([0.9])
    """

    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, maximize=False):
        owner = type(self).__name__
        _check_nonnegative(lr, "lr", owner)
        _check_nonnegative(eps, "eps", owner)
        _check_nonnegative(weight_decay, "weight_decay", owner)
        if len(tuple(betas)) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"{owner}: betas must be two numbers in [0, 1), got {betas!r}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))

    def _update(self, p, grad, group, state):
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if group["maximize"]:
            grad = -grad
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(p.data)
            state["exp_avg_sq"] = np.zeros_like(p.data)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(p.data)
        state["step"] += 1
        step = state["step"]
        if wd != 0:
            if self._decoupled:
                p.data *= 1 - lr * wd
            else:
                grad = grad + wd * p.data
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        step_size = lr / (1 - beta1 ** step)
        bias_correction2_sqrt = (1 - beta2 ** step) ** 0.5
        if not group["amsgrad"] and _fused_adam_fits(p.data, grad, exp_avg, exp_avg_sq):
            # One compiled pass, the same operations as below: the digits CNN's Adam step (11 parameters,
            # 0.23M values) spent ~0.8 ms in the NumPy passes (2-core Intel Xeon VM).
            t = p.data.dtype.type
            kernel = _optim_k.adam_update.for_work(p.data.size)
            kernel(p.data.reshape(-1), grad.reshape(-1), exp_avg.reshape(-1), exp_avg_sq.reshape(-1), t(1 - beta1),
                   t(beta2), t(1 - beta2), t(bias_correction2_sqrt), t(eps), t(-step_size))
            return
        _lerp_(exp_avg, grad, 1 - beta1)
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * (grad * grad)
        second = exp_avg_sq
        if group["amsgrad"]:
            np.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
            second = state["max_exp_avg_sq"]
        denom = np.sqrt(second) / bias_correction2_sqrt + eps
        p.data += -step_size * (exp_avg / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (``param *= 1 - lr * weight_decay``).

    Same parameters as :class:`Adam`, with ``weight_decay`` defaulting to 0.01.

    Examples
    --------
    >>> import convlayers as cl
    >>> w = cl.tensor([1.0], requires_grad=True)
    >>> opt = cl.optim.AdamW([w], lr=0.1)
    >>> (w * w).sum().backward(); opt.step(); w.data.round(6)
    array([0.899])
    """

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize)


def _fused_adam_fits(param, grad, exp_avg, exp_avg_sq):
    """Whether the compiled Adam step takes these arrays: one float dtype, all C-contiguous, same shape."""
    arrays = (param, grad, exp_avg, exp_avg_sq)
    return (param.dtype in (np.float32, np.float64) and all(a.dtype == param.dtype and a.shape == param.shape
                                                          and a.flags.c_contiguous for a in arrays)
            and param.flags.writeable)


def _lerp_(start, end, weight):
    # torch.lerp switches formula at weight 0.5 to stay exact at both ends.
    if weight < 0.5:
        start += weight * (end - start)
    else:
        start[...] = end - (end - start) * (1 - weight)


def _same_kind(current, value):
    """Whether ``value`` may replace ``current`` in saved state: bool for bool, real for real, same-length
    sequence of same kinds for a sequence, anything for None."""
    if current is None or value is None:
        return True
    if isinstance(current, bool):
        return isinstance(value, (bool, np.bool_))
    if isinstance(current, numbers.Real):
        return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    if isinstance(current, (list, tuple)):
        return (isinstance(value, (list, tuple)) and len(value) == len(current)
                and all(_same_kind(c, v) for c, v in zip(current, value)))
    return isinstance(value, type(current))


def _state_array(value):
    if isinstance(value, Tensor):
        return np.asarray(value.data)
    if hasattr(value, "detach") and hasattr(value, "cpu") and hasattr(value, "numpy"):   # a torch.Tensor
        value = value.detach().cpu()
        return (value.float() if str(value.dtype) == "torch.bfloat16" else value).numpy()   # NumPy lacks bfloat16
    return np.asarray(value)


def _checked_optimizer_state(optimizer, state_dict):
    """(group updates, new state) from ``state_dict``, or ValueError listing every problem."""
    if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
        raise TypeError(f"state_dict must be a mapping with 'state' and 'param_groups', "
                        f"got {type(state_dict).__name__}")
    name = type(optimizer).__name__
    missing = [k for k in ("state", "param_groups") if k not in state_dict]
    if missing:
        raise ValueError(f"{name}.load_state_dict: missing {missing} (nothing was loaded)")
    saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
    problems = []
    if (not isinstance(saved_groups, (list, tuple)) or not all(isinstance(g, dict) and "params" in g
                                                              for g in saved_groups)):
        raise ValueError(f"{name}.load_state_dict: param_groups must be a list of dicts with 'params' "
                         "(nothing was loaded)")
    if [len(g["params"]) for g in saved_groups] != [len(g["params"]) for g in optimizer.param_groups]:
        raise ValueError(f"{name}.load_state_dict: parameter groups of sizes "
                         f"{[len(g['params']) for g in saved_groups]} do not match this optimizer's "
                         f"{[len(g['params']) for g in optimizer.param_groups]} (nothing was loaded)")
    # As PyTorch: saved ids map, in order, onto this optimizer's parameters.
    saved_ids = [i for g in saved_groups for i in g["params"]]
    params = [p for g in optimizer.param_groups for p in g["params"]]
    try:
        id_map = dict(zip(saved_ids, params))
    except TypeError:
        id_map = {}
    if len(id_map) != len(params):
        problems.append("parameter ids in param_groups must be distinct integers")
    groups = []
    for gi, (group, saved) in enumerate(zip(optimizer.param_groups, saved_groups)):
        update = {}
        for key, current in group.items():
            if key == "params":
                continue
            if key not in saved:
                problems.append(f"param_groups[{gi}] lacks {key!r}")
            elif not _same_kind(current, saved[key]):
                problems.append(f"param_groups[{gi}][{key!r}]: expected {type(current).__name__} like "
                                f"{current!r}, got {saved[key]!r}")
            elif (isinstance(current, numbers.Real) and not isinstance(current, bool)
                  and not (math.isfinite(saved[key]) and (saved[key] >= 0 or key == "initial_lr"))):
                problems.append(f"param_groups[{gi}][{key!r}]: expected a finite number >= 0, got {saved[key]!r}")
            else:
                update[key] = copy.deepcopy(saved[key])
        update.update({k: copy.deepcopy(v) for k, v in saved.items() if k != "params" and k not in group})
        groups.append(update)
    state = {}
    if not isinstance(saved_state, dict):
        problems.append(f"state must be a dict of parameter id to dict, got {type(saved_state).__name__}")
        saved_state = {}
    for pid, entry in saved_state.items():
        if pid not in id_map:
            problems.append(f"state[{pid!r}]: no such parameter id in param_groups")
            continue
        if not isinstance(entry, dict):
            problems.append(f"state[{pid!r}]: expected a dict, got {type(entry).__name__}")
            continue
        param, new = id_map[pid], {}
        for key, value in entry.items():
            where = f"state[{pid!r}][{key!r}]"
            if value is None or isinstance(value, (bool, str)):
                new[key] = value
                continue
            try:
                array = _state_array(value)
            except Exception as exc:  # noqa: BLE001 -- report, never half-load
                problems.append(f"{where}: cannot be read as an array ({exc})")
                continue
            if array.dtype.hasobject or array.dtype.kind not in "biuf":
                problems.append(f"{where}: expected a real numeric value, got dtype {array.dtype}")
            elif key == "step":
                if array.size != 1 or not np.isfinite(array).all() or array.reshape(-1)[0] < 0 \
                        or array.reshape(-1)[0] != int(array.reshape(-1)[0]):
                    problems.append(f"{where}: expected a non-negative integer, got {value!r}")
                else:
                    new[key] = int(array.reshape(-1)[0])
            elif array.ndim == 0:
                new[key] = array.item()
            elif array.shape != param.data.shape:
                problems.append(f"{where}: expected shape {param.data.shape} (the parameter's), got {array.shape}")
            else:
                new[key] = np.array(array, dtype=param.data.dtype)
        state[param] = new
    if problems:
        raise ValueError(f"{name}.load_state_dict: " + "; ".join(problems) + " (nothing was loaded)")
    return groups, state


class LRScheduler:
    """Base class of the schedules: sets ``group["lr"]`` at every :meth:`step`.

    Like PyTorch, constructing a schedule records ``initial_lr`` in each group
    and takes step 0; call :meth:`step` once per epoch after ``optimizer.step()``.
    """

    def __init__(self, optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer: expected an Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = -1
        self.step()

    def get_lr(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def step(self):
        """Advance one epoch and write the new learning rates into the optimizer."""
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self):
        """The learning rates set by the latest :meth:`step`."""
        return list(self._last_lr)

    def state_dict(self):
        """Everything but the optimizer."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict):
        """Restore what :meth:`state_dict` returned; on a key this schedule lacks, or a value of another
        type, raise ValueError and change nothing."""
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        current = self.state_dict()
        problems = [f"unexpected key {k!r}" for k in state_dict if k not in current]
        for key, value in state_dict.items():
            if key in current and not _same_kind(current[key], value):
                problems.append(f"{key}: expected {type(current[key]).__name__}, got {type(value).__name__}")
        if problems:
            raise ValueError(f"{type(self).__name__}.load_state_dict: " + "; ".join(problems)
                             + " (nothing was loaded)")
        self.__dict__.update(copy.deepcopy(state_dict))


class StepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs.

    Examples
    --------
    >>> import convlayers as cl
    >>> opt = cl.optim.SGD([cl.tensor([0.0], requires_grad=True)], lr=1.0)
    >>> sched = cl.optim.StepLR(opt, step_size=2, gamma=0.5)
    >>> [(sched.step(), sched.get_last_lr()[0])[1] for _ in range(4)]
    [1.0, 0.5, 0.5, 0.25]
    """

    def __init__(self, optimizer, step_size, gamma=0.1):
        if not isinstance(step_size, numbers.Integral) or step_size < 1:
            raise ValueError(f"StepLR: step_size must be a positive int, got {step_size!r}")
        _check_nonnegative(gamma, "gamma", "StepLR")
        self.step_size, self.gamma = int(step_size), gamma
        super().__init__(optimizer)

    def get_lr(self):
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return [group["lr"] for group in self.optimizer.param_groups]
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]


class CosineAnnealingLR(LRScheduler):
    """Anneal the learning rate from its initial value to ``eta_min`` along a cosine.

    Uses PyTorch's recursive update, so the values match ``torch.optim``'s.

    Examples
    --------
    >>> import convlayers as cl
    >>> opt = cl.optim.SGD([cl.tensor([0.0], requires_grad=True)], lr=1.0)
    >>> sched = cl.optim.CosineAnnealingLR(opt, T_max=2)
    >>> sched.step(); round(sched.get_last_lr()[0], 6)
    0.5
    """

    def __init__(self, optimizer, T_max, eta_min=0.0):
        if not isinstance(T_max, numbers.Integral) or T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be a positive int, got {T_max!r}")
        _check_nonnegative(eta_min, "eta_min", "CosineAnnealingLR")
        self.T_max, self.eta_min = int(T_max), eta_min
        super().__init__(optimizer)

    def get_lr(self):
        groups = self.optimizer.param_groups
        t, T, eta_min = self.last_epoch, self.T_max, self.eta_min
        if t == 0:
            return [group["lr"] for group in groups]
        if (t - 1 - T) % (2 * T) == 0:
            return [group["lr"] + (base - eta_min) * (1 - math.cos(math.pi / T)) / 2
                    for base, group in zip(self.base_lrs, groups)]
        return [(1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
                * (group["lr"] - eta_min) + eta_min for group in groups]


# ``convlayers.optim.lr_scheduler.StepLR`` works as in PyTorch.
lr_scheduler = sys.modules[__name__]

"""The differentiable versions of the ops in :mod:`convlayers.functional`.

Each entry unwraps its Tensor arguments, runs the NumPy op on plain arrays
(so the dispatch hook does not fire again), and records a closure that maps
the output gradient to the gradients of the Tensor arguments, mostly through
the backward helpers that sit next to the forward ops in ``functional``.

Entries are keyed by the public function object, which is what
:func:`convlayers._dispatch.tensor_aware` hands to
``Tensor.__convlayers_function__``.
"""

from __future__ import annotations

import functools
import importlib
import inspect

import numpy as np

from . import functional as F
from .autograd import Tensor, _result, _unbroadcast, is_grad_enabled
from .functional import _threads
from .functional import loss as _loss
from .functional import norm as _norm
from .functional.dropout import dropout_mask

_PENDING: list[tuple[str, object]] = []
_REGISTRY: dict[object, object] = {}
# Where to look for an op if the package namespace does not (yet) re-export it.
_FALLBACK_MODULES = ("loss", "dropout")


def _register(name):
    def decorate(impl):
        _PENDING.append((name, impl))
        return impl
    return decorate


def _lookup(name):
    func = getattr(F, name, None)
    if func is None:
        for module in _FALLBACK_MODULES:
            func = getattr(importlib.import_module(f"{F.__name__}.{module}"), name, None)
            if func is not None:
                break
    return func


def _resolve():
    while _PENDING:
        name, impl = _PENDING.pop()
        func = _lookup(name)
        if func is not None:
            _REGISTRY[func] = impl


@functools.lru_cache(maxsize=None)
def _signature(func):
    return inspect.signature(func)


@functools.lru_cache(maxsize=None)
def _binder(func):
    """A fast ``signature.bind`` + ``apply_defaults`` for the common, well-formed call.

    ``inspect``'s binding costs tens of µs, paid on every op of every step.
    Calls the fast path cannot settle (too many positionals, an unknown or
    repeated keyword, a missing argument) go through ``inspect`` so the
    errors stay Python's own.
    """
    sig = _signature(func)
    params = list(sig.parameters.values())
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY) for p in params):
        return None
    positional = tuple(p.name for p in params if p.kind == p.POSITIONAL_OR_KEYWORD)
    names = tuple(p.name for p in params)
    defaults = {p.name: p.default for p in params if p.default is not p.empty}
    keyword_only = frozenset(p.name for p in params if p.kind == p.KEYWORD_ONLY)

    def bind(args, kwargs):
        if len(args) > len(positional):
            return None
        arguments = dict(zip(positional, args))
        for key, value in kwargs.items():
            if key in arguments or (key not in keyword_only and key not in positional):
                return None
            arguments[key] = value
        if len(arguments) < len(names):
            for name in names:
                if name not in arguments:
                    if name not in defaults:
                        return None
                    arguments[name] = defaults[name]
        # Same order as inspect's BoundArguments.arguments.
        return {name: arguments[name] for name in names}

    return bind


def differentiable(func):
    """Return a callable running ``func`` on Tensors and recording its backward."""
    if _PENDING:
        _resolve()
    impl = _REGISTRY.get(func)
    if impl is None:
        name = getattr(func, "__name__", repr(func))
        raise TypeError(f"{name} does not support Tensor inputs yet")
    fast = _binder(func)

    def call(*args, **kwargs):
        arguments = None if fast is None else fast(args, kwargs)
        if arguments is None:
            bound = _signature(func).bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = bound.arguments
        return impl(func, arguments)

    return call


def _d(value):
    """The ndarray inside a Tensor; anything else unchanged."""
    return value.data if isinstance(value, Tensor) else value


def _needs(value):
    return isinstance(value, Tensor) and value.requires_grad


def _plain(args, *names):
    return {name: _d(args[name]) for name in names}


# --- convolution ----------------------------------------------------------------

def _conv(func, a):
    x, w, b = a["input"], a["weight"], a["bias"]
    kw = _plain(a, "stride", "padding", "dilation", "groups", "padding_mode")
    xd, wd = _d(x), _d(w)
    out = func(xd, wd, _d(b), **kw)
    grad = getattr(F, f"{func.__name__}_backward")

    def backward(g):
        mask = (_needs(x), _needs(w), _needs(b))
        return grad(g, xd, wd, output_mask=mask, **kw)

    return _result(out, (x, w, b), backward)


def _conv_transpose(func, a):
    x, w, b = a["input"], a["weight"], a["bias"]
    kw = _plain(a, "stride", "padding", "output_padding", "groups", "dilation")
    xd, wd = _d(x), _d(w)
    out = func(xd, wd, _d(b), **kw)
    grad = getattr(F, f"{func.__name__}_backward")

    def backward(g):
        mask = (_needs(x), _needs(w), _needs(b))
        return grad(g, xd, wd, output_mask=mask, **kw)

    return _result(out, (x, w, b), backward)


for _nd in (1, 2, 3):
    _register(f"conv{_nd}d")(_conv)
    _register(f"conv_transpose{_nd}d")(_conv_transpose)


# --- pooling and padding ----------------------------------------------------

def _max_pool_backward_for(dims):
    def op(func, a):
        x = a["input"]
        xd = _d(x)
        args = {k: _d(v) for k, v in a.items() if k not in ("input", "return_indices")}
        if not a["return_indices"] and not (is_grad_enabled() and _needs(x)):
            # nothing will back-propagate: the inference kernel, which skips the indices
            return Tensor(func(xd, **args))
        out, indices = func(xd, **args, return_indices=True)

        def backward(g):
            return (F.max_pool_backward(g, indices, xd.shape, dims),)

        result = _result(out, (x,), backward)
        return (result, indices) if a["return_indices"] else result
    return op


_max_pool = _max_pool_backward_for(2)
for _dims in (1, 2, 3):
    for _name in ("max_pool", "adaptive_max_pool", "fractional_max_pool"):
        if _name != "fractional_max_pool" or _dims > 1:
            _register(f"{_name}{_dims}d")(_max_pool_backward_for(_dims))


def _avg_pool_for(dims):
    def op(func, a):
        x = a["input"]
        xd = _d(x)
        kw = {k: _d(v) for k, v in a.items() if k != "input"}
        out = func(xd, **kw)
        return _result(out, (x,), lambda g: (F.avg_pool_backward(g, xd.shape, dims=dims, **kw),))
    return op


def _adaptive_avg_pool_for(dims):
    def op(func, a):
        x = a["input"]
        xd = _d(x)
        out = func(xd, _d(a["output_size"]))
        return _result(out, (x,), lambda g: (F.adaptive_avg_pool_backward(g, xd.shape, dims),))
    return op


def _lp_pool_for(dims):
    def op(func, a):
        x = a["input"]
        xd = _d(x)
        kw = {k: _d(v) for k, v in a.items() if k != "input"}
        out = func(xd, **kw)
        return _result(out, (x,), lambda g: (F.lp_pool_backward(g, xd, dims=dims, **kw),))
    return op


def _max_unpool_for(dims):
    def op(func, a):
        x = a["input"]
        xd = _d(x)
        indices = np.asarray(_d(a["indices"]))
        kw = {k: _d(v) for k, v in a.items() if k not in ("input", "indices")}
        out = func(xd, indices, **kw)
        return _result(out, (x,), lambda g: (F.max_unpool_backward(g, indices, dims),))
    return op


for _dims in (1, 2, 3):
    _register(f"avg_pool{_dims}d")(_avg_pool_for(_dims))
    _register(f"adaptive_avg_pool{_dims}d")(_adaptive_avg_pool_for(_dims))
    _register(f"lp_pool{_dims}d")(_lp_pool_for(_dims))
    _register(f"max_unpool{_dims}d")(_max_unpool_for(_dims))


@_register("pad")
def _pad(func, a):
    x = a["input"]
    xd = _d(x)
    kw = {k: _d(v) for k, v in a.items() if k not in ("input", "value")}
    out = func(xd, value=a["value"], **kw)

    def backward(g):
        return (F.pad_backward(g, xd.shape, kw["pad"], kw["mode"]).astype(xd.dtype, copy=False),)

    return _result(out, (x,), backward)


# --- normalisation and activations ------------------------------------------

@_register("batch_norm")
def _batch_norm(func, a):
    x, w, b = a["input"], a["weight"], a["bias"]
    xd, wd = _d(x), _d(w)
    running_mean, running_var = _d(a["running_mean"]), _d(a["running_var"])
    training, eps = a["training"], a["eps"]
    if not training and running_mean is not None and running_var is not None:
        # The forward may be followed by a training step that updates the
        # running statistics in place; the backward needs today's values.
        saved_mean, saved_var = np.array(running_mean), np.array(running_var)
    out, saved = _norm.batch_norm_forward(xd, running_mean, running_var, wd, _d(b), training=training,
                                          momentum=a["momentum"], eps=eps)

    def backward(g):
        if saved is not None:
            return _norm.batch_norm_train_backward(g, saved, need_input=_needs(x))
        if xd.size == 0:  # an empty batch: nothing flows (PyTorch gives zeros for weight and bias)
            zeros = [None if v is None else np.zeros(np.shape(_d(v)), out.dtype) for v in (w, b)]
            return np.zeros(xd.shape, out.dtype), zeros[0], zeros[1]
        axes = (0,) + tuple(range(2, xd.ndim))
        shape = [1] * xd.ndim
        shape[1] = -1
        mean, var = saved_mean.reshape(shape), saved_var.reshape(shape)
        invstd = 1.0 / np.sqrt(var + eps)
        xhat = (xd - mean) * invstd
        gamma = 1.0 if wd is None else wd.reshape(shape)
        grad_bias = g.sum(axis=axes)
        grad_weight = (g * xhat).sum(axis=axes)
        grad_input = None
        if _needs(x):
            grad_input = (g * gamma * invstd).astype(xd.dtype, copy=False)
        return grad_input, grad_weight, grad_bias

    return _result(out, (x, w, b), backward)


@_register("relu")
def _relu(func, a):
    x = a["input"]
    xd = _d(x)
    out = func(xd)
    # d relu / dx at 0 is taken as 0, as in PyTorch.
    return _result(out, (x,), lambda g: (F.relu_backward(g, xd),))


@_register("relu6")
def _relu6(func, a):
    x = a["input"]
    xd = _d(x)
    out = func(xd)
    # PyTorch's hardtanh backward passes nothing at the corners 0 and 6.
    return _result(out, (x,), lambda g: (F.relu6_backward(g, xd),))


@_register("linear")
def _linear(func, a):
    x, w, b = a["input"], a["weight"], a["bias"]
    xd, wd = _d(x), _d(w)
    out = func(xd, wd, _d(b))

    def backward(g):
        g2 = g.reshape(-1, wd.shape[0])
        grad_input = _threads.matmul(g, wd) if _needs(x) else None
        grad_weight = _threads.matmul(g2.T, xd.reshape(-1, wd.shape[1])) if _needs(w) else None
        grad_bias = g2.sum(axis=0) if _needs(b) else None
        return grad_input, grad_weight, grad_bias

    return _result(out, (x, w, b), backward)


@_register("dropout")
def _dropout(func, a):
    x, p, training = a["input"], a["p"], a["training"]
    # Validate through the NumPy op on an empty array: same messages, no work.
    func(np.empty((0,), dtype=_d(x).dtype), p=p, training=training, generator=a["generator"])
    if not training or p == 0.0:
        return x
    mask = dropout_mask(_d(x).shape, p, _d(x).dtype, a["generator"])
    return _result(_d(x) * mask, (x,), lambda g: (g * mask,))


# --- softmax and losses ---------------------------------------------------------

def _softmax_like(backward_of):
    def impl(func, a):
        x = a["input"]
        out = func(_d(x), a["dim"], dtype=a["dtype"])
        # dim=None was resolved (with PyTorch's warning) by func; the same rule here.
        dim = a["dim"] if a["dim"] is not None else (0 if out.ndim in (0, 1, 3) else 1)
        axis = dim % out.ndim if out.ndim else 0
        in_dtype = _d(x).dtype if _d(x).dtype.kind == "f" else out.dtype

        def backward(g):
            grad = backward_of(g, out, axis)
            return (np.asarray(grad).astype(in_dtype, copy=False),)

        return _result(out, (x,), backward)
    return impl


_register("log_softmax")(_softmax_like(_loss.log_softmax_backward))
_register("softmax")(_softmax_like(_loss.softmax_backward))
_register("softmin")(_softmax_like(lambda g, out, axis: -_loss.softmax_backward(g, out, axis)))


@_register("nll_loss")
def _nll_loss(func, a):
    x = a["input"]
    kw = _plain(a, "target", "weight", "ignore_index", "reduction")
    xd = _d(x)
    out = func(xd, **kw)
    return _result(out, (x,), lambda g: (_loss.nll_loss_backward(g, xd, **kw),))


@_register("cross_entropy")
def _cross_entropy(func, a):
    x = a["input"]
    kw = _plain(a, "target", "weight", "ignore_index", "reduction", "label_smoothing")
    if _needs(a["target"]) or _needs(a["weight"]):
        raise TypeError("cross_entropy: gradients with respect to target or weight are not supported")
    xd = _d(x)
    out = func(xd, **kw)
    return _result(out, (x,), lambda g: (_loss.cross_entropy_backward(g, xd, **kw),))


@_register("mse_loss")
def _mse_loss(func, a):
    x, t, reduction = a["input"], a["target"], a["reduction"]
    xd, td = _d(x), _d(t)
    out = func(xd, td, reduction=reduction)

    def backward(g):
        grad = _loss.mse_loss_backward(g, xd, td, reduction)
        return _unbroadcast(grad, xd.shape), _unbroadcast(-grad, td.shape)

    return _result(out, (x, t), backward)


# Normalisation, resampling and reshaping ops register themselves (their own module, to keep this one short).
from . import _autograd_norm_resample  # noqa: E402,F401
# The activations, dropout variants and element-wise losses register themselves from their own file.
from . import _autograd_act  # noqa: E402,F401

"""PyTorch's Tensor methods, and NumPy's protocols, for :class:`~convlayers.autograd.Tensor`.

:func:`install` (called at the end of ``autograd``) adds the method forms of
the ops in :mod:`convlayers._tensor_ops` and the two NumPy hooks:

* ``__array_ufunc__``: ``np.exp(t)``, ``ndarray + t``, ``np.maximum(t, u)``
  ... run the differentiable op;
* ``__array_function__``: ``np.concatenate``, ``np.stack``, ``np.where``,
  ``np.sum``, ``np.reshape`` ... run the differentiable op.

Anything else NumPy is asked to do with a Tensor runs on the plain data when
nothing is lost: no argument requires a gradient (or recording is off), or
the result is not floating point (``np.argsort``, ``np.isnan``...).  Otherwise
it raises a ``TypeError`` that names the convlayers call to use: the graph is
never dropped silently.
"""

from __future__ import annotations

import numbers

import numpy as np

from . import _tensor_ops as ops
from .autograd import Tensor, _as_array, _result, is_grad_enabled


def _axes(dim, ndim):
    """``dim`` (None, an int, or a sequence; ``[]`` is every dim, as PyTorch) as a tuple of axes."""
    if dim is None or (isinstance(dim, (tuple, list)) and len(dim) == 0):
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, numbers.Integral) else tuple(dim)
    n = max(ndim, 1)
    for d in dims:
        if not -n <= d < n:
            raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {d})")
    return tuple(sorted({int(d) % n for d in dims})) if ndim else ()


def _dims(args):
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return tuple(args)


def _axis_kw(dim, axis, keepdim, keepdims):
    return (dim if axis is None else axis), bool(keepdim or keepdims)


def _sum(self, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=False):
    """Sum over ``dim`` (all dimensions by default), as ``torch.Tensor.sum``."""
    dim, keepdim = _axis_kw(dim, axis, keepdim, keepdims)
    ax = _axes(dim, self.ndim)
    shape = self.shape
    data = self.data if dtype is None else self.data.astype(dtype)

    def backward(g):
        if not keepdim:
            g = np.expand_dims(g, ax)
        return (np.broadcast_to(g, shape).astype(self.dtype, copy=True),)

    return _result(data.sum(axis=ax, keepdims=keepdim), (self,), backward)


def _mean(self, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=False):
    """Arithmetic mean over ``dim`` (all dimensions by default), as ``torch.Tensor.mean``."""
    dim, keepdim = _axis_kw(dim, axis, keepdim, keepdims)
    if self.dtype.kind != "f" and dtype is None:
        raise TypeError(f"mean(): could not infer output dtype. Input dtype must be either a floating point or "
                        f"complex dtype. Got: {self.dtype}")
    if dtype is not None and np.dtype(dtype).kind != "f":
        raise TypeError(f"mean(): could not infer output dtype. Optional dtype must be either a floating point "
                        f"or complex dtype. Got: {np.dtype(dtype)}")
    x = self if dtype is None else _cast(self, dtype)
    ax = _axes(dim, x.ndim)
    count = int(np.prod([x.shape[i] for i in ax]))
    with np.errstate(invalid="ignore", divide="ignore"):
        return _sum(x, ax, keepdim) / np.asarray(count, dtype=x.dtype)


def _var(self, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=False):
    """Variance over ``dim`` with Bessel's correction by default, as ``torch.Tensor.var``."""
    dim, keepdim = _axis_kw(dim, axis, keepdim, keepdims)
    if isinstance(dim, bool):
        dim, unbiased = None, dim
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    ax = _axes(dim, self.ndim)
    count = int(np.prod([self.shape[i] for i in ax])) if self.ndim else 1
    centred = self - _mean(self, ax, True)
    with np.errstate(invalid="ignore", divide="ignore"):
        denominator = np.asarray(builtins_max(count - correction, 0), dtype=self.dtype)
        return _sum(centred * centred, ax, keepdim) / denominator


def builtins_max(a, b):
    return a if a > b else b


def _cast(t, dtype):
    dtype = np.dtype(dtype)
    old = t.dtype
    return _result(t.data.astype(dtype), (t,), lambda g: (g.astype(old),))


def _to(self, dtype):
    """A copy in ``dtype`` (differentiable between floating dtypes), as ``torch.Tensor.to(dtype)``."""
    return _cast(self, dtype)


def _expand(self, *sizes):
    """Broadcast to ``sizes`` (``-1`` keeps a dimension) without copying, as ``torch.Tensor.expand``."""
    sizes = _dims(sizes)
    lead = len(sizes) - self.ndim
    if lead < 0:
        raise ValueError(f"expand: the number of sizes provided ({len(sizes)}) must be greater or equal to the "
                         f"number of dimensions in the tensor ({self.ndim})")
    target = tuple(self.shape[i - lead] if (s == -1 and i >= lead) else s for i, s in enumerate(sizes))
    if builtins_any(s < 0 for s in target):
        raise ValueError(f"expand: -1 is not allowed in a leading, non-existing dimension, got {sizes}")
    shape = self.shape
    try:
        out = np.broadcast_to(self.data, target)
    except ValueError:
        raise ValueError(f"expand: the expanded size {target} must match the existing size {shape} at every "
                         "non-singleton dimension") from None
    from .autograd import _unbroadcast
    return _result(out, (self,), lambda g: (_unbroadcast(g, shape),))


def builtins_any(iterable):
    for v in iterable:
        if v:
            return True
    return False


def _contiguous(self, memory_format=None):
    """Self if C-contiguous, else a C-contiguous copy (differentiable), as ``torch.Tensor.contiguous``."""
    if self.data.flags.c_contiguous:
        return self
    return _result(np.ascontiguousarray(self.data), (self,), lambda g: (g,))


def _transpose(self, *axes):
    """``transpose(dim0, dim1)`` swaps two dimensions, as PyTorch; any other form permutes, as NumPy."""
    axes = _dims(axes)
    if len(axes) == 2 and all(isinstance(a, numbers.Integral) for a in axes):
        return ops.transpose(self, axes[0], axes[1])
    axes = axes or tuple(reversed(range(self.ndim)))
    return ops.permute(self, axes)


class _Size(int):
    """``t.size`` is the element count (NumPy's attribute) and ``t.size(dim)`` PyTorch's method."""

    def __new__(cls, count, shape):
        obj = super().__new__(cls, count)
        obj._shape = shape
        return obj

    def __call__(self, dim=None):
        return self._shape if dim is None else self._shape[dim]


def _bool(self):
    if self.data.size != 1:
        raise RuntimeError(f"Boolean value of Tensor with more than one value is ambiguous (shape {self.shape})")
    return bool(self.data)


_METHODS = {
    "permute": lambda self, *dims: ops.permute(self, _dims(dims)),
    "transpose": _transpose,
    "squeeze": lambda self, dim=None: ops.squeeze(self, dim),
    "unsqueeze": lambda self, dim: ops.unsqueeze(self, dim),
    "expand": _expand,
    "expand_as": lambda self, other: _expand(self, *other.shape),
    "contiguous": _contiguous,
    "sum": _sum,
    "mean": _mean,
    "var": _var,
    "to": _to,
    "double": lambda self: _cast(self, np.float64),
    "float": lambda self: _cast(self, np.float32),
    "dim": lambda self: self.ndim,
    "numel": lambda self: self.data.size,
    "flatten": lambda self, start_dim=0, end_dim=-1: ops.flatten(self, start_dim, end_dim),
    "split": lambda self, split_size, dim=0: ops.split(self, split_size, dim),
    "chunk": lambda self, chunks, dim=0: ops.chunk(self, chunks, dim),
    "clamp": lambda self, min=None, max=None: ops.clamp(self, min, max),
    "clip": lambda self, min=None, max=None: ops.clamp(self, min, max),
    "max": lambda self, dim=None, keepdim=False: ops.max(self, dim, keepdim),
    "min": lambda self, dim=None, keepdim=False: ops.min(self, dim, keepdim),
    "argmax": lambda self, dim=None, keepdim=False: ops.argmax(self, dim, keepdim),
    "argmin": lambda self, dim=None, keepdim=False: ops.argmin(self, dim, keepdim),
    "maximum": lambda self, other: ops.maximum(self, other),
    "minimum": lambda self, other: ops.minimum(self, other),
    "exp": lambda self: ops.exp(self),
    "log": lambda self: ops.log(self),
    "sqrt": lambda self: ops.sqrt(self),
    "abs": lambda self: ops.abs(self),
    "matmul": lambda self, other: ops.matmul(self, other),
    "eq": lambda self, other: ops.eq(self, other),
    "ne": lambda self, other: ops.ne(self, other),
    "lt": lambda self, other: ops.lt(self, other),
    "le": lambda self, other: ops.le(self, other),
    "gt": lambda self, other: ops.gt(self, other),
    "ge": lambda self, other: ops.ge(self, other),
    "__eq__": lambda self, other: ops.eq(self, other),
    "__ne__": lambda self, other: ops.ne(self, other),
    "__lt__": lambda self, other: ops.lt(self, other),
    "__le__": lambda self, other: ops.le(self, other),
    "__gt__": lambda self, other: ops.gt(self, other),
    "__ge__": lambda self, other: ops.ge(self, other),
    "__abs__": lambda self: ops.abs(self),
    "__bool__": _bool,
    # Elementwise __eq__ makes a class unhashable; Tensors hash by identity, as in PyTorch.
    "__hash__": object.__hash__,
}


# --- NumPy protocols --------------------------------------------------------------

def _neg(x):
    return -ops._t(x)


_UFUNCS = {
    np.add: lambda a, b: ops._t(a) + b if isinstance(a, Tensor) else ops._t(b).__radd__(a),
    np.subtract: lambda a, b: ops._t(a) - b if isinstance(a, Tensor) else ops._t(b).__rsub__(a),
    np.multiply: lambda a, b: ops._t(a) * b if isinstance(a, Tensor) else ops._t(b).__rmul__(a),
    np.true_divide: lambda a, b: ops._t(a) / b if isinstance(a, Tensor) else ops._t(b).__rtruediv__(a),
    np.matmul: lambda a, b: ops._t(a) @ b if isinstance(a, Tensor) else ops._t(b).__rmatmul__(a),
    np.negative: _neg,
    np.positive: lambda a: a,
    np.exp: ops.exp,
    np.log: ops.log,
    np.sqrt: ops.sqrt,
    np.absolute: ops.abs,
    np.maximum: ops.maximum,
    np.minimum: ops.minimum,
}


def _array_ufunc(self, ufunc, method, *inputs, **kwargs):
    impl = _UFUNCS.get(ufunc)
    if impl is not None and method == "__call__" and not kwargs:
        return impl(*inputs)
    if ufunc is np.power and method == "__call__" and not kwargs and isinstance(inputs[0], Tensor) \
            and isinstance(inputs[1], numbers.Number):
        return inputs[0] ** inputs[1]
    if ufunc is np.tanh and method == "__call__" and not kwargs:
        from .functional import tanh
        return tanh(*inputs)
    return _fallback(f"np.{ufunc.__name__}" + ("" if method == "__call__" else f".{method}"),
                     lambda: getattr(ufunc, method)(*_plain(inputs), **_plain(kwargs)), (inputs, kwargs))


def _np_concatenate(arrays, axis=0, out=None, **kw):
    if out is not None or kw:
        return NotImplemented
    if axis is None:
        return ops.cat([ops.flatten(a) for a in arrays], 0)
    return ops.cat(list(arrays), axis)


def _np_reduce(name):
    def impl(a, axis=None, dtype=None, out=None, keepdims=False, **kw):
        if out is not None or kw:
            return NotImplemented
        t = ops._t(a)
        return {"sum": _sum, "mean": _mean}[name](t, axis, keepdims, dtype=dtype)
    return impl


def _np_var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
    if out is not None or dtype is not None or kw:
        return NotImplemented
    return _var(ops._t(a), axis, keepdim=keepdims, correction=ddof)


def _np_extreme(largest):
    def impl(a, axis=None, out=None, keepdims=False, **kw):
        if out is not None or kw:
            return NotImplemented
        t = ops._t(a)
        if axis is None:
            result = ops.max(t) if largest else ops.min(t)
            return result.reshape((1,) * t.ndim) if keepdims else result
        return (ops.max if largest else ops.min)(t, axis, keepdims).values
    return impl


_FUNCTIONS = {
    np.concatenate: _np_concatenate,
    np.stack: lambda arrays, axis=0, out=None: ops.stack(list(arrays), axis) if out is None else NotImplemented,
    np.where: lambda condition, *xy: ops.where(condition, *xy),
    np.clip: lambda a, a_min=None, a_max=None, out=None: ops.clamp(a, a_min, a_max) if out is None
    else NotImplemented,
    np.sum: _np_reduce("sum"),
    np.mean: _np_reduce("mean"),
    np.var: _np_var,
    np.max: _np_extreme(True),
    np.amax: _np_extreme(True),
    np.min: _np_extreme(False),
    np.amin: _np_extreme(False),
    np.reshape: lambda a, shape=None, order="C", **kw: ops._t(a).reshape(kw.get("newshape", shape))
    if order == "C" else NotImplemented,
    np.transpose: lambda a, axes=None: ops.permute(a, axes if axes is not None
                                                   else tuple(reversed(range(np.ndim(a.data))))),
    np.swapaxes: lambda a, axis1, axis2: ops.transpose(a, axis1, axis2),
    np.squeeze: lambda a, axis=None: ops.squeeze(a, axis),
    np.expand_dims: lambda a, axis: ops.unsqueeze(a, axis),
    np.matmul: lambda a, b, **kw: ops.matmul(a, b) if not kw else NotImplemented,
    np.ravel: lambda a, order="C": ops.flatten(a) if order == "C" else NotImplemented,
    np.split: lambda a, indices_or_sections, axis=0: _np_split(a, indices_or_sections, axis),
}

# Shape and type queries: never values, so never a graph to lose.
_QUERIES = {np.shape, np.ndim, np.size, np.result_type, np.can_cast, np.iscomplexobj, np.isrealobj}


def _np_split(a, sections, axis):
    t = ops._t(a)
    n = t.shape[axis]
    if isinstance(sections, numbers.Integral):
        if n % sections:
            return NotImplemented
        return list(ops.split(t, n // sections, axis))
    bounds = [0, *sections, n]
    return list(ops.split(t, [b - a for a, b in zip(bounds[:-1], bounds[1:])], axis))


def _plain(obj):
    if isinstance(obj, Tensor):
        return obj.data
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


def _needs_grad(obj):
    if isinstance(obj, Tensor):
        return obj.requires_grad
    if isinstance(obj, (list, tuple)):
        return any(_needs_grad(o) for o in obj)
    if isinstance(obj, dict):
        return any(_needs_grad(v) for v in obj.values())
    return False


def _fallback(name, run, args):
    result = run()
    floating = any(np.asarray(r).dtype.kind in "fc" for r in (result if isinstance(result, (tuple, list))
                                                              else (result,)) if r is not None)
    if floating and is_grad_enabled() and _needs_grad(args):
        raise TypeError(
            f"{name} on a Tensor that requires grad would drop the autograd graph: convlayers has no "
            f"differentiable {name}. Use the convlayers op (convlayers.cat, stack, split, chunk, flatten, where, "
            "clamp, maximum, minimum, max, min, exp, log, sqrt, abs, matmul, Tensor.sum/mean/var/reshape/permute,"
            " convlayers.functional.*), or call .detach() first to compute outside the graph.")
    return result


def _array_function(self, func, types, args, kwargs):
    if func in _QUERIES:
        return func(*_plain(args), **_plain(kwargs))
    impl = _FUNCTIONS.get(func)
    if impl is not None:
        result = impl(*args, **kwargs)
        if result is not NotImplemented:
            return result
    return _fallback(f"np.{func.__name__}", lambda: func(*_plain(args), **_plain(kwargs)), (args, kwargs))


def install(cls):
    """Add the PyTorch methods and NumPy protocols to ``cls`` (the Tensor class)."""
    for name, fn in _METHODS.items():
        setattr(cls, name, fn)
    cls.__array_ufunc__ = _array_ufunc
    cls.__array_function__ = _array_function
    cls.size = property(lambda self: _Size(self.data.size, self.data.shape))
    cls.T = property(lambda self: _transpose(self))
    cls.mT = property(lambda self: ops.transpose(self, -2, -1))
    _ = _as_array

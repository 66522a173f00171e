"""Reverse-mode automatic differentiation over NumPy arrays.

A :class:`Tensor` wraps an ndarray.  Every differentiable operation computes
its result with NumPy and, when gradients are being recorded, returns a new
Tensor that remembers its parents and a closure mapping the gradient of the
result to the gradients of the parents.  :meth:`Tensor.backward` sorts the
graph topologically and runs those closures from the output back to the
leaves, adding (``+=``) into the ``.grad`` of every leaf that requires it;
intermediate gradients are dropped, as in PyTorch.

The ops of :mod:`convlayers.functional` reach this module through the
dispatch hook in :mod:`convlayers._dispatch`: their differentiable versions
live in :mod:`convlayers._autograd_ops`.

dtype rules: ``tensor(data)`` keeps NumPy's dtype (Python floats become
float64, unlike PyTorch's float32 default).  Only floating-point tensors may
require gradients; anything else raises ``TypeError``, as in PyTorch.

Examples
--------
>>> import convlayers as cl
>>> x = cl.tensor([1.0, 2.0, 3.0], requires_grad=True)
>>> y = (x * x).sum() + x[0]
>>> y.backward()
>>> x.grad
array([3., 4., 6.])
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np

__all__ = ["Tensor", "tensor", "no_grad", "enable_grad", "is_grad_enabled"]

_state = threading.local()


def is_grad_enabled() -> bool:
    """Return whether operations on Tensors are currently being recorded.

    Examples
    --------
    >>> import convlayers as cl
    >>> with cl.no_grad():
    ...     cl.autograd.is_grad_enabled()
    False
    """
    return getattr(_state, "enabled", True)


class _GradMode(contextlib.ContextDecorator):
    _enabled = True

    def __enter__(self):
        self._previous = is_grad_enabled()
        _state.enabled = self._enabled
        return self

    def __exit__(self, *exc):
        _state.enabled = self._previous
        return False


class no_grad(_GradMode):
    """Context manager (or decorator) that stops recording the graph.

    Inside it, results of Tensor operations have ``requires_grad=False``.

    Examples
    --------
    >>> import convlayers as cl
    >>> w = cl.tensor([1.0], requires_grad=True)
    >>> with cl.no_grad():
    ...     y = w * 2
    >>> y.requires_grad
    False
    """

    _enabled = False


class enable_grad(_GradMode):
    """Context manager (or decorator) that turns recording back on inside ``no_grad``.

    Examples
    --------
    >>> import convlayers as cl
    >>> w = cl.tensor([1.0], requires_grad=True)
    >>> with cl.no_grad(), cl.autograd.enable_grad():
    ...     (w * 2).requires_grad
    True
    """


def _as_array(value):
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, (int, float)):
        # Python scalars stay "weak" so float32 * 2.0 remains float32 (NEP 50).
        return value
    return np.asarray(value)


def _unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape``: the adjoint of NumPy broadcasting."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    kept = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if kept:
        grad = grad.sum(axis=kept, keepdims=True)
    return grad


def _result(data, parents, backward):
    """Wrap ``data``; record ``backward`` only if some parent needs a gradient.

    ``parents`` may hold non-Tensors (constants); ``backward(grad)`` returns
    one gradient (or None) per parent, in the same order.
    """
    data = np.asarray(data)
    if is_grad_enabled() and any(isinstance(p, Tensor) and p.requires_grad for p in parents):
        out = Tensor(data, requires_grad=True)
        out._parents = tuple(parents)
        out._backward = backward
        return out
    return Tensor(data)


class Tensor:
    """An ndarray that records the operations applied to it.

    Parameters
    ----------
    data : array_like
        The values; kept as given (no copy for ndarrays).
    requires_grad : bool, default False
        Accumulate the gradient of :meth:`backward` into ``.grad``.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import Tensor
    >>> a = Tensor(np.ones((2, 2)), requires_grad=True)
    >>> (a @ a).sum().backward()
    >>> a.grad
    array([[4., 4.],
           [4., 4.]])
    """

    # Make ``ndarray <op> Tensor`` defer to Tensor's reflected operators.
    __array_ufunc__ = None

    def __init__(self, data, requires_grad=False):
        if isinstance(data, Tensor):
            data = data.data
        data = np.asarray(data)
        if requires_grad and not np.issubdtype(data.dtype, np.floating):
            raise TypeError(
                "requires_grad: only floating-point tensors can require gradients, "
                f"got dtype {data.dtype}"
            )
        self.data = data
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._parents = ()
        self._backward = None

    # --- introspection ----------------------------------------------------
    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    is_leaf = property(lambda self: self._backward is None)

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        body = np.array2string(self.data, separator=", ", prefix="tensor(")
        extra = ", requires_grad=True" if self.requires_grad else ""
        if self.data.dtype != np.float64:
            extra = f", dtype={self.data.dtype}" + extra
        return f"tensor({body}{extra})"

    def __array__(self, dtype=None, copy=None):
        if dtype is None:
            return self.data
        return self.data.astype(dtype)

    def numpy(self):
        """Return the underlying ndarray (shared, not copied)."""
        return self.data

    def item(self):
        """Return the single element as a Python scalar."""
        return self.data.item()

    def __float__(self):
        return float(self.data)

    def detach(self):
        """Return a Tensor sharing the data, cut from the graph."""
        return Tensor(self.data)

    def zero_grad(self):
        """Forget the accumulated gradient."""
        self.grad = None

    @classmethod
    def __convlayers_function__(cls, func, args, kwargs):
        from ._autograd_ops import differentiable

        return differentiable(func)(*args, **kwargs)

    # --- the engine -------------------------------------------------------
    def backward(self, gradient=None):
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires it.

        Parameters
        ----------
        gradient : array_like, optional
            The gradient of some scalar with respect to ``self``; may be
            omitted only when ``self`` holds a single element.
        """
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no graph")
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(
                    "backward: gradient can be implicitly created only for scalar outputs, "
                    f"got shape {self.shape}"
                )
            gradient = np.ones_like(self.data)
        gradient = np.asarray(_as_array(gradient), dtype=self.dtype)
        if gradient.shape != self.shape:
            raise ValueError(
                f"gradient: expected shape {self.shape} (the tensor's), got {gradient.shape}"
            )

        # Iterative depth-first search: deep graphs must not hit the recursion limit.
        order, seen, stack = [], set(), [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            for parent in node._parents:
                if isinstance(parent, Tensor) and parent.requires_grad and id(parent) not in seen:
                    stack.append((parent, False))

        grads = {id(self): gradient}
        for node in reversed(order):
            grad = grads.pop(id(node), None)
            if grad is None:
                continue
            if node._backward is None:
                grad = np.asarray(grad, dtype=node.dtype).reshape(node.shape)
                node.grad = grad.copy() if node.grad is None else node.grad + grad
                continue
            for parent, g in zip(node._parents, node._backward(grad)):
                if g is None or not (isinstance(parent, Tensor) and parent.requires_grad):
                    continue
                key = id(parent)
                grads[key] = g if key not in grads else grads[key] + g

    # --- arithmetic ---------------------------------------------------------
    def __add__(self, other):
        a, b = self.data, _as_array(other)
        return _result(a + b, (self, other),
                       lambda g: (_unbroadcast(g, a.shape), _unbroadcast(g, np.shape(b))))

    def __radd__(self, other):
        return Tensor(_as_array(other)) + self

    def __sub__(self, other):
        a, b = self.data, _as_array(other)
        return _result(a - b, (self, other),
                       lambda g: (_unbroadcast(g, a.shape), _unbroadcast(-g, np.shape(b))))

    def __rsub__(self, other):
        return Tensor(_as_array(other)) - self

    def __mul__(self, other):
        a, b = self.data, _as_array(other)
        return _result(a * b, (self, other),
                       lambda g: (_unbroadcast(g * b, a.shape), _unbroadcast(g * a, np.shape(b))))

    def __rmul__(self, other):
        return Tensor(_as_array(other)) * self

    def __truediv__(self, other):
        a, b = self.data, _as_array(other)
        return _result(a / b, (self, other),
                       lambda g: (_unbroadcast(g / b, a.shape),
                                  _unbroadcast(-g * a / (b * b), np.shape(b))))

    def __rtruediv__(self, other):
        return Tensor(_as_array(other)) / self

    def __neg__(self):
        return _result(-self.data, (self,), lambda g: (-g,))

    def __pos__(self):
        return self

    def __pow__(self, exponent):
        if isinstance(exponent, (Tensor, np.ndarray)):
            raise TypeError(
                f"exponent: expected a Python number, got {type(exponent).__name__}"
            )
        a = self.data
        return _result(a ** exponent, (self,),
                       lambda g: (g * exponent * a ** (exponent - 1),))

    def __matmul__(self, other):
        a, b = self.data, _as_array(other)
        return _result(a @ b, (self, other), lambda g: _matmul_backward(g, a, b))

    def __rmatmul__(self, other):
        return Tensor(_as_array(other)) @ self

    # --- elementwise functions --------------------------------------------
    def exp(self):
        """Elementwise e**x."""
        out = np.exp(self.data)
        return _result(out, (self,), lambda g: (g * out,))

    def log(self):
        """Elementwise natural logarithm."""
        a = self.data
        return _result(np.log(a), (self,), lambda g: (g / a,))

    # --- reductions and shape -----------------------------------------------
    def sum(self, axis=None, keepdims=False):
        """Sum over ``axis`` (all axes by default)."""
        shape = self.shape
        ax = _normalize_axes(axis, self.ndim)

        def backward(g):
            if not keepdims:
                g = np.expand_dims(g, ax)
            return (np.broadcast_to(g, shape).copy(),)

        return _result(self.data.sum(axis=ax, keepdims=keepdims), (self,), backward)

    def mean(self, axis=None, keepdims=False):
        """Arithmetic mean over ``axis`` (all axes by default)."""
        ax = _normalize_axes(axis, self.ndim)
        count = int(np.prod([self.shape[i] for i in ax]))
        return self.sum(axis=ax, keepdims=keepdims) / np.asarray(count, dtype=self.dtype)

    def reshape(self, *shape):
        """Return the same values in a new shape (``-1`` allowed)."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        old = self.shape
        return _result(self.data.reshape(shape), (self,), lambda g: (g.reshape(old),))

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1):
        """Merge dimensions ``start_dim`` .. ``end_dim`` into one, like ``torch.flatten``."""
        if self.ndim == 0:
            return self.reshape(1)
        start, end = start_dim % self.ndim, end_dim % self.ndim
        if start > end:
            raise ValueError(
                f"flatten: start_dim ({start_dim}) must not come after end_dim ({end_dim})"
            )
        shape = self.shape[:start] + (-1,) + self.shape[end + 1:]
        return self.reshape(shape)

    def transpose(self, *axes):
        """Permute the axes (reverse them by default), like ``ndarray.transpose``."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        axes = axes or tuple(reversed(range(self.ndim)))
        inverse = np.argsort(axes)
        return _result(self.data.transpose(axes), (self,), lambda g: (g.transpose(inverse),))

    T = property(lambda self: self.transpose())

    def __getitem__(self, index):
        if isinstance(index, Tensor):
            index = index.data
        elif isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        shape, dtype = self.shape, self.dtype

        def backward(g):
            full = np.zeros(shape, dtype=dtype)
            # add.at, not assignment: repeated fancy indices must accumulate.
            np.add.at(full, index, g)
            return (full,)

        return _result(self.data[index], (self,), backward)


def _normalize_axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    return tuple(int(a) % ndim if ndim else int(a) for a in axis)


def _matmul_backward(g, a, b):
    # Promote 1-D operands as np.matmul does, then undo the promotion.
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    if a.ndim == 1 and b.ndim == 1:
        g2 = np.reshape(g, (1, 1))
    elif a.ndim == 1:
        g2 = np.expand_dims(g, -2)
    elif b.ndim == 1:
        g2 = np.expand_dims(g, -1)
    else:
        g2 = g
    ga = g2 @ np.swapaxes(b2, -1, -2)
    gb = np.swapaxes(a2, -1, -2) @ g2
    if a.ndim == 1:
        ga = ga[..., 0, :]
    if b.ndim == 1:
        gb = gb[..., :, 0]
    return _unbroadcast(ga, a.shape), _unbroadcast(gb, b.shape)


def tensor(data, requires_grad=False, dtype=None):
    """Create a :class:`Tensor` from array-like ``data``.

    Parameters
    ----------
    data : array_like
        Values; copied into a new array.
    requires_grad : bool, default False
        Record operations for :meth:`Tensor.backward`; needs a floating dtype.
    dtype : numpy dtype, optional
        Convert to this dtype (NumPy's inference otherwise).

    Examples
    --------
    >>> import convlayers as cl
    >>> cl.tensor([[1.0, 2.0]], requires_grad=True).shape
    (1, 2)
    """
    if isinstance(data, Tensor):
        data = data.data
    return Tensor(np.array(data, dtype=dtype), requires_grad=requires_grad)


# PyTorch's Tensor methods (permute, squeeze, expand, sum/mean/var(dim), comparisons, ...) and
# NumPy's __array_ufunc__/__array_function__ live next to the ops they call.
from . import _tensor_methods  # noqa: E402

_tensor_methods.install(Tensor)

"""The tensor operations a model's ``forward`` needs, differentiable, with PyTorch's names and arguments.

Functions (re-exported lazily as ``convlayers.cat`` etc.): ``cat``, ``stack``,
``split``, ``chunk``, ``flatten``, ``where``, ``clamp``, ``maximum``,
``minimum``, ``max``, ``min``, ``argmax``, ``exp``, ``log``, ``sqrt``, ``abs``,
``matmul`` and the comparisons ``eq`` ... ``ge``.  :func:`install` adds the
method forms (``permute``, ``transpose(dim0, dim1)``, ``squeeze``,
``unsqueeze``, ``expand``, ``contiguous``, ``sum/mean/var(dim, keepdim)``,
...) to :class:`~convlayers.autograd.Tensor`.

Each op computes with NumPy and records its backward beside it.  Arguments may
mix Tensors, ndarrays and Python numbers; the gradient of a broadcast operand
is summed back to its shape.  Ties follow PyTorch: ``maximum``/``minimum``
split the gradient evenly between equal operands, a full ``max()``/``min()``
spreads it evenly over every maximal element, ``max(dim)`` sends it to the
returned index.
"""

from __future__ import annotations

import builtins
import numbers
from collections import namedtuple

import numpy as np

from .autograd import Tensor, _as_array, _result, _unbroadcast, is_grad_enabled

__all__ = ["cat", "concat", "stack", "split", "chunk", "flatten", "where", "clamp", "clip", "maximum", "minimum",
           "max", "min", "argmax", "argmin", "exp", "log", "sqrt", "abs", "matmul", "eq", "ne", "lt", "le", "gt",
           "ge", "permute", "transpose", "squeeze", "unsqueeze", "reshape"]

# What max(dim=...) / min(dim=...) return, as torch.return_types.max.
MaxResult = namedtuple("MaxResult", ["values", "indices"])


def _t(value):
    return value if isinstance(value, Tensor) else Tensor(np.asarray(value))


def _dim(dim, ndim, op, name="dim"):
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"{op}: {name} must be an int, got {type(dim).__name__}")
    n = builtins.max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"{op}: Dimension out of range (expected to be in range of [{-n}, {n - 1}], "
                         f"but got {dim})")
    return dim % n


def _sequence(tensors, op):
    if isinstance(tensors, (Tensor, np.ndarray)) or not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{op}: tensors must be a list or tuple of Tensors, got {type(tensors).__name__}")
    if not tensors:
        raise ValueError(f"{op}: expected a non-empty list of Tensors")
    return [_t(x) for x in tensors]


# --- joining and splitting -----------------------------------------------------

def cat(tensors, dim=0, *, axis=None):
    """Join ``tensors`` along an existing dimension, as ``torch.cat``.

    1-D empty tensors are skipped, as PyTorch's legacy rule allows.

    Examples
    --------
    >>> import convlayers as cl
    >>> cl.cat([cl.tensor([[1.0]]), cl.tensor([[2.0]])], dim=1).shape
    (1, 2)
    """
    dim = dim if axis is None else axis
    ts = _sequence(tensors, "cat")
    kept = [t for t in ts if not (t.ndim == 1 and t.shape[0] == 0)] or ts[:1]
    ref = kept[0]
    if ref.ndim == 0 or builtins.any(t.ndim == 0 for t in kept):
        raise ValueError("cat: zero-dimensional tensor cannot be concatenated")
    d = _dim(dim, ref.ndim, "cat")
    for i, t in enumerate(kept):
        if t.ndim != ref.ndim:
            raise ValueError(f"cat: Tensors must have same number of dimensions: got {ref.ndim} and {t.ndim}")
        for k in range(ref.ndim):
            if k != d and t.shape[k] != ref.shape[k]:
                raise ValueError(f"cat: Sizes of tensors must match except in dimension {d}. Expected size "
                                 f"{ref.shape[k]} but got size {t.shape[k]} for tensor number {i} in the list.")
    dtype = np.result_type(*[t.dtype for t in kept])
    out = np.concatenate([t.data.astype(dtype, copy=False) for t in kept], axis=d)
    bounds = np.cumsum([0] + [t.shape[d] for t in kept])

    def backward(g):
        pieces = dict(zip(map(id, kept), (np.take(g, np.arange(bounds[i], bounds[i + 1]), axis=d)
                                           .astype(t.dtype, copy=False) for i, t in enumerate(kept))))
        return tuple(pieces.get(id(t)) for t in ts)

    return _result(out, tuple(ts), backward)


concat = cat


def stack(tensors, dim=0):
    """Join same-shaped ``tensors`` along a new dimension, as ``torch.stack``.

    Examples
    --------
    >>> import convlayers as cl
    >>> cl.stack([cl.tensor([1.0, 2.0]), cl.tensor([3.0, 4.0])], dim=1).shape
    (2, 2)
    """
    ts = _sequence(tensors, "stack")
    for i, t in enumerate(ts):
        if t.shape != ts[0].shape:
            raise ValueError(f"stack expects each tensor to be equal size, but got {ts[0].shape} at entry 0 "
                             f"and {t.shape} at entry {i}")
    d = _dim(dim, ts[0].ndim + 1, "stack")
    return cat([unsqueeze(t, d) for t in ts], d)


def split(tensor, split_size_or_sections, dim=0):
    """Split into pieces of ``split_size_or_sections`` (an int) or of the listed sizes, as ``torch.split``.

    Examples
    --------
    >>> import convlayers as cl
    >>> [p.shape for p in cl.split(cl.tensor([1.0, 2.0, 3.0]), 2)]
    [(2,), (1,)]
    """
    t = _t(tensor)
    d = _dim(dim, t.ndim, "split")
    n = t.shape[d] if t.ndim else 1
    if isinstance(split_size_or_sections, numbers.Integral) and not isinstance(split_size_or_sections, bool):
        size = int(split_size_or_sections)
        if size < 0 or (size == 0 and n != 0):
            raise ValueError(f"split: split_size must be positive (or 0 for an empty dimension), got {size}")
        sizes = [size] * (n // size) + ([n % size] if n % size else []) if size else [0]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if builtins.sum(sizes) != n or builtins.any(s < 0 for s in sizes):
            raise ValueError(f"split: split_sizes {sizes} must be non-negative and sum to the size {n} of "
                             f"dimension {d}")
    starts = np.cumsum([0] + sizes)
    return tuple(_narrow(t, d, int(starts[i]), s) for i, s in enumerate(sizes))


def chunk(input, chunks, dim=0):
    """Split into ``chunks`` pieces of ``ceil(size / chunks)`` (fewer if it runs out), as ``torch.chunk``.

    Examples
    --------
    >>> import convlayers as cl
    >>> [p.shape for p in cl.chunk(cl.tensor([1.0, 2.0, 3.0, 4.0, 5.0]), 3)]
    [(2,), (2,), (1,)]
    """
    if isinstance(chunks, bool) or not isinstance(chunks, numbers.Integral) or chunks <= 0:
        raise ValueError(f"chunk: chunks must be a positive int, got {chunks!r}")
    t = _t(input)
    d = _dim(dim, t.ndim, "chunk")
    n = t.shape[d]
    size = -(-n // chunks) if n else 0
    if size == 0:
        return tuple(_narrow(t, d, 0, 0) for _ in range(chunks))
    return split(t, size, d)


def _narrow(t, d, start, length):
    index = (slice(None),) * d + (slice(start, start + length),)
    return t[index]


def flatten(input, start_dim=0, end_dim=-1):
    """Merge dimensions ``start_dim`` .. ``end_dim``, as ``torch.flatten``.

    Examples
    --------
    >>> import convlayers as cl
    >>> cl.flatten(cl.tensor([[1.0, 2.0], [3.0, 4.0]])).shape
    (4,)
    """
    t = _t(input)
    if t.ndim == 0:
        return t.reshape(1)
    s, e = _dim(start_dim, t.ndim, "flatten", "start_dim"), _dim(end_dim, t.ndim, "flatten", "end_dim")
    if s > e:
        raise ValueError("flatten() has invalid args: start_dim cannot come after end_dim")
    return t.reshape(t.shape[:s] + (-1 if 0 not in t.shape else int(np.prod(t.shape[s:e + 1])),) + t.shape[e + 1:])


# --- selection and clamping ----------------------------------------------------

def where(condition, input=None, other=None):
    """``input`` where ``condition``, else ``other`` (broadcast), as ``torch.where``; one argument: indices.

    Examples
    --------
    >>> import numpy as np
    >>> import convlayers as cl
    >>> cl.where(np.array([True, False]), cl.tensor([1.0, 2.0]), 0.0)
    tensor([1., 0.])
    """
    cond = np.asarray(_as_array(condition))
    if input is None and other is None:
        return tuple(Tensor(i) for i in np.nonzero(cond))
    if cond.dtype != np.bool_:
        raise TypeError(f"where: condition must be a bool array, got dtype {cond.dtype}")
    a, b = _as_array(input), _as_array(other)
    out = np.where(cond, a, b)
    sa, sb = np.shape(a), np.shape(b)

    def backward(g):
        zero = np.zeros((), g.dtype)
        return (_unbroadcast(np.where(cond, g, zero), sa) if isinstance(input, Tensor) else None,
                _unbroadcast(np.where(cond, zero, g), sb) if isinstance(other, Tensor) else None)

    return _result(out, (input, other), backward)


def clamp(input, min=None, max=None):
    """Limit to ``[min, max]`` (numbers or Tensors), as ``torch.clamp``; the gradient passes where
    ``min <= x <= max``.

    Examples
    --------
    >>> import convlayers as cl
    >>> cl.clamp(cl.tensor([-2.0, 0.5, 2.0]), min=-1.0, max=1.0)
    tensor([-1. ,  0.5,  1. ])
    """
    if min is None and max is None:
        raise ValueError("clamp: At least one of 'min' or 'max' must not be None")
    x = _t(input)
    lo, hi = _as_array(min), _as_array(max)
    out = x.data
    if min is not None:
        out = np.maximum(out, lo)
    if max is not None:
        out = np.minimum(out, hi)
    bounds = [np.asarray(_as_array(b)) for b in (min, max) if b is not None and not isinstance(b, numbers.Number)]
    if x.dtype.kind == "f":
        # PyTorch's promotion: integer bounds never widen a floating input.
        out = np.asarray(out).astype(np.result_type(x.dtype, *[b.dtype for b in bounds if b.dtype.kind == "f"]),
                                     copy=False)

    def backward(g):
        zero = np.zeros((), g.dtype)
        keep = np.ones(x.shape, bool)
        if min is not None:
            keep = keep & (x.data >= lo)
        if max is not None:
            keep = keep & (x.data <= hi)
        gx = _unbroadcast(np.where(keep, g, zero), x.shape)
        gmin = gmax = None
        if isinstance(min, Tensor):
            below = (x.data < lo) if max is None else (x.data < lo) & (lo <= hi)
            gmin = _unbroadcast(np.where(below, g, zero), min.shape)
        if isinstance(max, Tensor):
            above = (x.data > hi) | ((lo > hi) if min is not None else False)
            gmax = _unbroadcast(np.where(above, g, zero), max.shape)
        return gx, gmin, gmax

    return _result(out, (x, min, max), backward)


clip = clamp


def _tensor_operands(op, *values):
    for name, v in zip(("input", "other"), values):
        if not isinstance(v, (Tensor, np.ndarray)):
            raise TypeError(f"{op}(): argument '{name}' must be a Tensor, not {type(v).__name__}")


def _binary_extreme(a, b, pick, op):
    _tensor_operands(op, a, b)
    ad, bd = _as_array(a), _as_array(b)
    out = pick(ad, bd)

    def backward(g):
        first = (ad > bd) if pick is np.maximum else (ad < bd)
        tie = ad == bd
        half = g / 2
        zero = np.zeros((), g.dtype)
        ga = np.where(tie, half, np.where(first, g, zero))
        gb = np.where(tie, half, np.where(first, zero, g))
        return _unbroadcast(ga, np.shape(ad)), _unbroadcast(gb, np.shape(bd))

    return _result(out, (a, b), backward)


def maximum(input, other):
    """Element-wise maximum (NaN propagates; ties split the gradient), as ``torch.maximum``.

    Examples
    --------
    >>> import convlayers as cl
    >>> cl.maximum(cl.tensor([1.0, 5.0]), cl.tensor([3.0, 2.0]))
    tensor([3., 5.])
    """
    return _binary_extreme(input, other, np.maximum, "maximum")


def minimum(input, other):
    """Element-wise minimum (NaN propagates; ties split the gradient), as ``torch.minimum``.

    Examples
    --------
    >>> import convlayers as cl
    >>> cl.minimum(cl.tensor([1.0, 5.0]), cl.tensor([3.0, 2.0]))
    tensor([1., 2.])
    """
    return _binary_extreme(input, other, np.minimum, "minimum")


def _reduce_extreme(input, dim, keepdim, other, largest, op):
    if isinstance(dim, (Tensor, np.ndarray)) and other is None:
        dim, other = None, dim
    if other is not None:
        return (maximum if largest else minimum)(input, other)
    x = _t(input)
    if dim is None:
        if x.size == 0:
            raise ValueError(f"{op}(): Expected reduction dim to be specified for input.numel() == 0. "
                             "Specify the reduction dim with the 'dim' argument.")
        value = np.max(x.data) if largest else np.min(x.data)

        def backward(g):
            # PyTorch spreads the gradient evenly over every element equal to the extreme.
            hit = (x.data == value) | (np.isnan(value) & np.isnan(x.data)) if x.dtype.kind == "f" else \
                (x.data == value)
            return (np.where(hit, g / np.count_nonzero(hit), np.zeros((), g.dtype)).astype(x.dtype),)

        return _result(np.asarray(value), (x,), backward)
    d = _dim(dim, x.ndim, op)
    data = x.data if x.ndim else x.data.reshape(1)
    if data.shape[d] == 0:
        raise IndexError(f"{op}(): Expected reduction dim {d} to have non-zero size.")
    idx = np.argmax(data, axis=d) if largest else np.argmin(data, axis=d)
    if data.dtype.kind == "f":
        # argmax ignores NaN ordering rules; PyTorch returns the first NaN, as the max is NaN.
        nan = np.isnan(data)
        idx = np.where(nan.any(axis=d), np.argmax(nan, axis=d), idx)
    idx_k = np.expand_dims(idx, d)
    values = np.take_along_axis(data, idx_k, axis=d)
    if not keepdim:
        values, idx_out = np.squeeze(values, d), idx
    else:
        idx_out = idx_k
    if x.ndim == 0:
        values, idx_out = values.reshape(()), np.asarray(idx_out).reshape(())

    def backward(g):
        full = np.zeros(data.shape, g.dtype)
        np.put_along_axis(full, idx_k, g.reshape(idx_k.shape), axis=d)
        return (full.reshape(x.shape),)

    return MaxResult(_result(values, (x,), backward), Tensor(np.asarray(idx_out, dtype=np.int64)))


def max(input, dim=None, keepdim=False, *, other=None):
    """The largest element; with ``dim``, ``(values, indices)`` along it; with a Tensor, :func:`maximum`.

    Examples
    --------
    >>> import convlayers as cl
    >>> v, i = cl.max(cl.tensor([[1.0, 3.0], [4.0, 2.0]]), dim=1)
    >>> v, i
    (tensor([3., 4.]), tensor([1, 0], dtype=int64))
    """
    return _reduce_extreme(input, dim, keepdim, other, True, "max")


def min(input, dim=None, keepdim=False, *, other=None):
    """The smallest element; with ``dim``, ``(values, indices)`` along it; with a Tensor, :func:`minimum`.

    Examples
    --------
    >>> import convlayers as cl
    >>> cl.min(cl.tensor([[1.0, 3.0], [4.0, 2.0]]))
    tensor(1.)
    """
    return _reduce_extreme(input, dim, keepdim, other, False, "min")


def _arg_extreme(input, dim, keepdim, largest, op):
    x = _t(input)
    if dim is None:
        if x.size == 0:
            raise ValueError(f"{op}(): Expected reduction dim to be specified for input.numel() == 0.")
        flat = x.data.reshape(-1)
        i = np.argmax(flat) if largest else np.argmin(flat)
        if flat.dtype.kind == "f" and np.isnan(flat).any():
            i = np.argmax(np.isnan(flat))
        out = np.asarray(i, dtype=np.int64)
        return Tensor(out.reshape((1,) * x.ndim) if keepdim else out)
    return _reduce_extreme(x.detach(), dim, keepdim, None, largest, op)[1]


def argmax(input, dim=None, keepdim=False):
    """Index of the largest element (of the flattened input, or along ``dim``), as ``torch.argmax``.

    Examples
    --------
    >>> import convlayers as cl
    >>> cl.argmax(cl.tensor([[1.0, 3.0], [4.0, 2.0]]), dim=0)
    tensor([1, 0], dtype=int64)
    """
    return _arg_extreme(input, dim, keepdim, True, "argmax")


def argmin(input, dim=None, keepdim=False):
    """Index of the smallest element, as ``torch.argmin``.

    Examples
    --------
    >>> import convlayers as cl
    >>> int(cl.argmin(cl.tensor([3.0, 1.0, 2.0])).item())
    1
    """
    return _arg_extreme(input, dim, keepdim, False, "argmin")


# --- element-wise functions ------------------------------------------------------

def _float(x):
    return x if x.dtype.kind == "f" else x.astype(np.float64)


def exp(input):
    """Element-wise ``e**x``.

    Examples
    --------
    >>> import convlayers as cl
    >>> cl.exp(cl.tensor([0.0]))
    tensor([1.])
    """
    x = _t(input)
    out = np.exp(_float(x.data))
    return _result(out, (x,), lambda g: (g * out,))


def log(input):
    """Element-wise natural logarithm.

    Examples
    --------
    >>> import convlayers as cl
    >>> cl.log(cl.tensor([1.0]))
    tensor([0.])
    """
    x = _t(input)
    xd = _float(x.data)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(xd)
    return _result(out, (x,), lambda g: (g / xd,))


def sqrt(input):
    """Element-wise square root (NaN below 0, as PyTorch).

    Examples
    --------
    >>> import convlayers as cl
    >>> cl.sqrt(cl.tensor([4.0]))
    tensor([2.])
    """
    x = _t(input)
    with np.errstate(invalid="ignore"):
        out = np.sqrt(_float(x.data))
    with np.errstate(divide="ignore", invalid="ignore"):
        return _result(out, (x,), lambda g: (g / (2 * out),))


def abs(input):
    """Element-wise absolute value; the gradient is ``sign(x)`` (0 at 0), as PyTorch.

    Examples
    --------
    >>> import convlayers as cl
    >>> cl.abs(cl.tensor([-2.0, 3.0]))
    tensor([2., 3.])
    """
    x = _t(input)
    return _result(np.abs(x.data), (x,), lambda g: (g * np.sign(x.data),))


def matmul(input, other):
    """Matrix product with NumPy's (and PyTorch's) broadcasting rules, as ``torch.matmul``.

    Examples
    --------
    >>> import convlayers as cl
    >>> cl.matmul(cl.tensor([[1.0, 2.0]]), cl.tensor([[3.0], [4.0]]))
    tensor([[11.]])
    """
    a = _t(input)
    if a.ndim == 0 or np.ndim(_as_array(other)) == 0:
        raise ValueError("matmul: both arguments need to be at least 1D, got 0-D")
    return a @ other


def _compare(op, ufunc):
    def compare(input, other):
        _tensor_operands(op, input)
        return Tensor(ufunc(_as_array(input), _as_array(other)))

    compare.__name__ = op
    compare.__doc__ = f"Element-wise ``{op}`` comparison (a bool Tensor, no gradient), as ``torch.{op}``."
    return compare


eq = _compare("eq", np.equal)
ne = _compare("ne", np.not_equal)
lt = _compare("lt", np.less)
le = _compare("le", np.less_equal)
gt = _compare("gt", np.greater)
ge = _compare("ge", np.greater_equal)


# --- shape ------------------------------------------------------------------------

def permute(input, dims):
    """Reorder the dimensions, as ``torch.permute``.

    Examples
    --------
    >>> import convlayers as cl
    >>> cl.permute(cl.tensor([[[1.0, 2.0]]]), (2, 0, 1)).shape
    (2, 1, 1)
    """
    x = _t(input)
    dims = tuple(_dim(d, x.ndim, "permute") for d in dims)
    if len(dims) != x.ndim or len(set(dims)) != len(dims):
        raise ValueError(f"permute: dims {dims} must be a permutation of the {x.ndim} dimensions")
    inverse = tuple(np.argsort(dims)) if dims else ()
    return _result(x.data.transpose(dims), (x,), lambda g: (g.transpose(inverse),))


def transpose(input, dim0, dim1):
    """Swap two dimensions, as ``torch.transpose``.

    Examples
    --------
    >>> import convlayers as cl
    >>> cl.transpose(cl.tensor([[1.0, 2.0]]), 0, 1).shape
    (2, 1)
    """
    x = _t(input)
    a, b = _dim(dim0, x.ndim, "transpose"), _dim(dim1, x.ndim, "transpose")
    if x.ndim == 0:
        return x
    return _result(np.swapaxes(x.data, a, b), (x,), lambda g: (np.swapaxes(g, a, b),))


def squeeze(input, dim=None):
    """Drop size-1 dimensions (all, or those listed in ``dim``), as ``torch.squeeze``.

    Examples
    --------
    >>> import convlayers as cl
    >>> cl.squeeze(cl.tensor([[[1.0], [2.0]]])).shape
    (2,)
    """
    x = _t(input)
    if dim is None:
        dims = tuple(i for i, n in enumerate(x.shape) if n == 1)
    else:
        dims = (dim,) if isinstance(dim, numbers.Integral) else tuple(dim)
        dims = tuple(i for i in (_dim(d, x.ndim, "squeeze") for d in dims) if x.ndim and x.shape[i] == 1)
    shape = x.shape
    return _result(np.squeeze(x.data, dims) if dims else x.data, (x,), lambda g: (g.reshape(shape),))


def unsqueeze(input, dim):
    """Insert a size-1 dimension at ``dim``, as ``torch.unsqueeze``.

    Examples
    --------
    >>> import convlayers as cl
    >>> cl.unsqueeze(cl.tensor([1.0, 2.0]), 0).shape
    (1, 2)
    """
    x = _t(input)
    d = _dim(dim, x.ndim + 1, "unsqueeze")
    shape = x.shape
    return _result(np.expand_dims(x.data, d), (x,), lambda g: (g.reshape(shape),))


def reshape(input, shape):
    """The same values in a new shape (``-1`` inferred), as ``torch.reshape``.

    Examples
    --------
    >>> import convlayers as cl
    >>> cl.reshape(cl.tensor([1.0, 2.0]), (2, 1)).shape
    (2, 1)
    """
    return _t(input).reshape(tuple(shape))

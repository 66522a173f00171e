"""Shape and data-movement ops: Reshape, Transpose, Concat, Slice, Gather, Pad, ... (plain NumPy).

Opset changes that moved an attribute into an input (Squeeze/Unsqueeze/
Split axes at 13, Slice at 10, Pad at 11) are read from wherever the node's
opset keeps them.  Pad goes through :func:`convlayers.functional.pad` when
its mode and rank are ones that op covers.
"""

from __future__ import annotations

import numpy as np

from ... import functional as F
from ._registry import int_list, register


def _axis(axis, ndim, node):
    a = int(axis)
    if not -ndim <= a < max(ndim, 1):
        raise ValueError(f"{node.op_type} {node.label()!r}: axis {a} is out of range for rank {ndim}")
    return a % max(ndim, 1)


@register("Identity", since=1)
def identity(node, x):
    return x


@register("Dropout", since=1, check=lambda n, c: "training_mode" if n.attr("is_test", 1) == 0 else None)
def dropout(node, x, ratio=None, training=None):
    if training is not None and bool(np.asarray(training)):
        raise ValueError(f"Dropout {node.label()!r}: training_mode=True is not supported (inference only)")
    if len(node.outputs) > 1 and node.outputs[1]:
        return x, np.ones(x.shape, dtype=bool)
    return x


@register("Constant", since=1)
def constant(node):
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if key in node.attrs:
            v = node.attrs[key]
            if key == "value":
                return np.asarray(v)
            return np.asarray(v, dtype=np.float32 if "float" in key else np.int64)
    raise ValueError(f"Constant {node.label()!r}: no numeric value (sparse and string constants are not supported)")


@register("ConstantOfShape", since=9)
def constant_of_shape(node, shape):
    value = node.attr("value")
    value = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
    return np.full(tuple(int_list(shape)), value[0], dtype=value.dtype)


@register("Shape", since=1)
def shape(node, x):
    dims = np.array(x.shape, dtype=np.int64)
    start, end = node.attr("start", 0), node.attr("end")
    return dims[slice(start, end)]


@register("Size", since=1)
def size(node, x):
    return np.array(x.size, dtype=np.int64)


@register("Reshape", since=1)
def reshape(node, x, shape=None):
    shape = int_list(node.attr("shape") if node.opset < 5 else shape)
    if not int(node.attr("allowzero", 0)):
        shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
    return x.reshape(shape)


@register("Flatten", since=1)
def flatten(node, x):
    axis = int(node.attr("axis", 1))
    axis = axis % x.ndim if axis < 0 else axis
    rows = int(np.prod(x.shape[:axis], dtype=np.int64))
    return x.reshape(rows, -1) if x.size or rows else x.reshape(rows, int(np.prod(x.shape[axis:])))


@register("Transpose", since=1)
def transpose(node, x):
    perm = node.attr("perm")
    return np.ascontiguousarray(np.transpose(x, None if perm is None else int_list(perm)))


@register("Concat", since=1)
def concat(node, *xs):
    xs = [x for x in xs if x is not None]
    return np.concatenate(xs, axis=_axis(node.attr("axis", 1 if node.opset < 4 else 0), xs[0].ndim, node))


@register("Split", since=2)
def split(node, x, split=None):
    axis = _axis(node.attr("axis", 0), x.ndim, node)
    if node.opset < 13:
        split = node.attr("split")
    n = len(node.outputs)
    if split is None:
        parts = node.attr("num_outputs", n)
        size = -(-x.shape[axis] // parts)
        sizes = [min(size, x.shape[axis] - i * size) for i in range(parts)]
    else:
        sizes = int_list(split)
    return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=axis))


@register("Slice", since=1)
def slice_(node, x, starts=None, ends=None, axes=None, steps=None):
    if node.opset < 10:
        starts, ends, axes = node.attr("starts"), node.attr("ends"), node.attr("axes")
    starts, ends = int_list(starts), int_list(ends)
    axes = list(range(len(starts))) if axes is None else [a % x.ndim for a in int_list(axes)]
    steps = [1] * len(starts) if steps is None else int_list(steps)
    index = [slice(None)] * x.ndim
    for a, s, e, st in zip(axes, starts, ends, steps):
        if st == 0:
            raise ValueError(f"Slice {node.label()!r}: steps must not be 0")
        index[a] = slice(s, e, st)
    return np.ascontiguousarray(x[tuple(index)])


def _axes_arg(node, axes, attr="axes"):
    if node.opset < 13:
        axes = node.attr(attr)
    return None if axes is None else int_list(axes)


@register("Squeeze", since=1)
def squeeze(node, x, axes=None):
    axes = _axes_arg(node, axes)
    if axes is None:
        return np.squeeze(x)
    return np.squeeze(x, axis=tuple(a % x.ndim for a in axes))


@register("Unsqueeze", since=1)
def unsqueeze(node, x, axes=None):
    axes = _axes_arg(node, axes)
    rank = x.ndim + len(axes)
    return np.expand_dims(x, tuple(sorted(a % rank for a in axes)))


@register("Expand", since=8)
def expand(node, x, shape):
    target = np.broadcast_shapes(x.shape, tuple(int_list(shape)))
    return np.array(np.broadcast_to(x, target))


@register("Tile", since=6)
def tile(node, x, repeats):
    return np.tile(x, int_list(repeats))


@register("Gather", since=1)
def gather(node, x, indices):
    axis = _axis(node.attr("axis", 0), x.ndim, node)
    idx = np.asarray(indices).astype(np.int64)
    n = x.shape[axis]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise ValueError(f"Gather {node.label()!r}: indices out of range for axis {axis} of size {n}")
    return np.take(x, np.where(idx < 0, idx + n, idx), axis=axis)


@register("GatherElements", since=11)
def gather_elements(node, x, indices):
    axis = _axis(node.attr("axis", 0), x.ndim, node)
    idx = np.asarray(indices).astype(np.int64)
    return np.take_along_axis(x, np.where(idx < 0, idx + x.shape[axis], idx), axis=axis)


@register("NonZero", since=9)
def nonzero(node, x):
    return np.array(np.nonzero(x), dtype=np.int64).reshape(x.ndim, -1)


@register("Range", since=11)
def range_(node, start, limit, delta):
    dtype = np.asarray(start).dtype
    start, limit, delta = start.item(), limit.item(), delta.item()
    n = max(int(np.ceil((limit - start) / delta)), 0)
    return (start + np.arange(n) * delta).astype(dtype)


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}


def _check_pad(node, constants):
    mode = node.attr("mode", "constant")
    if mode not in _PAD_MODES:
        return f"mode={mode!r}"
    return None


@register("Pad", since=2, check=_check_pad)
def pad(node, x, pads=None, value=None, axes=None):
    mode = node.attr("mode", "constant")
    if node.opset < 11:
        pads, value = node.attr("pads"), node.attr("value", 0.0)
    pads = int_list(pads)
    ndim = x.ndim
    axes = list(range(ndim)) if axes is None else [a % ndim for a in int_list(axes)]
    k = len(axes)
    begins, ends = [0] * ndim, [0] * ndim
    for i, a in enumerate(axes):
        begins[a], ends[a] = pads[i], pads[k + i]
    fill = None if value is None else np.asarray(value).reshape(-1)
    fill = 0 if fill is None or fill.size == 0 else fill[0].item()
    widths = []
    for b, e in zip(reversed(begins), reversed(ends)):
        widths += [b, e]
    # trailing zero widths of the leading axes are dropped: F.pad's non-constant modes cover 1-3 last axes
    while len(widths) > 2 and widths[-1] == widths[-2] == 0:
        widths = widths[:-2]
    torch_mode = _PAD_MODES[mode]
    if torch_mode == "constant":
        return F.pad(x, tuple(widths), value=fill)
    try:
        return F.pad(x, tuple(widths), mode=torch_mode)
    except ValueError:
        if any(w < 0 for w in widths):
            raise
        np_mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[torch_mode]
        return np.pad(x, list(zip(begins, ends)), mode=np_mode)


def _block(node, x, inverse):
    b = int(node.attr("blocksize"))
    n, c, h, w = x.shape
    if not inverse:  # DepthToSpace
        if node.attr("mode", "DCR") == "DCR":
            y = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
        else:
            y = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
        return np.ascontiguousarray(y).reshape(n, c // (b * b), h * b, w * b)
    if node.attr("mode", "DCR") == "CRD":
        y = x.reshape(n, c, h // b, b, w // b, b).transpose(0, 1, 3, 5, 2, 4)
    else:
        y = x.reshape(n, c, h // b, b, w // b, b).transpose(0, 3, 5, 1, 2, 4)
    return np.ascontiguousarray(y).reshape(n, c * b * b, h // b, w // b)


@register("DepthToSpace", since=1)
def depth_to_space(node, x):
    return _block(node, x, False)


@register("SpaceToDepth", since=1)
def space_to_depth(node, x):
    return _block(node, x, True)


@register("Trilu", since=14)
def trilu(node, x, k=None):
    k = 0 if k is None else int(np.asarray(k))
    return np.triu(x, k) if int(node.attr("upper", 1)) else np.tril(x, k)


@register("CumSum", since=11)
def cumsum(node, x, axis):
    a = int(np.asarray(axis)) % x.ndim
    y = np.flip(x, a) if node.attr("reverse", 0) else x
    out = np.cumsum(y, axis=a, dtype=x.dtype)
    if node.attr("exclusive", 0):
        out = np.concatenate([np.zeros_like(np.take(out, [0], axis=a)), np.delete(out, -1, axis=a)], axis=a)
    return np.ascontiguousarray(np.flip(out, a) if node.attr("reverse", 0) else out)

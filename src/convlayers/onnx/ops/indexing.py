"""Indexing, scatter and bitwise ops (plain NumPy): OneHot, ScatterElements, ScatterND, GatherND, EyeLike,
CumProd, Compress, ReverseSequence, MeanVarianceNormalization, the Bitwise ops and BitShift."""

from __future__ import annotations

import numpy as np

from ._registry import int_list, register


@register("OneHot", since=9)
def one_hot(node, indices, depth, values):
    depth = int(np.asarray(depth).reshape(-1)[0])
    axis = int(node.attr("axis", -1))
    idx = np.asarray(indices).astype(np.int64)
    idx = np.where(idx < 0, idx + depth, idx)
    hot = idx[..., None] == np.arange(depth)
    out = np.where(hot, values[1], values[0]).astype(values.dtype)
    return np.moveaxis(out, -1, axis % out.ndim)


def _reduce_into(reduction):
    return {"none": None, "add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}[reduction]


def _check_scatter(node, constants):
    r = node.attr("reduction", "none")
    return None if r in ("none", "add", "mul", "max", "min") else f"reduction={r!r}"


@register("ScatterElements", since=11, check=_check_scatter)
def scatter_elements(node, data, indices, updates):
    axis = int(node.attr("axis", 0)) % data.ndim
    idx = np.asarray(indices).astype(np.int64)
    idx = np.where(idx < 0, idx + data.shape[axis], idx)
    out = data.copy()
    grid = list(np.indices(idx.shape, sparse=True))
    grid[axis] = idx
    ufunc = _reduce_into(node.attr("reduction", "none"))
    if ufunc is None:
        out[tuple(grid)] = updates
    else:
        ufunc.at(out, tuple(np.broadcast_arrays(*grid)), updates)
    return out


@register("ScatterND", since=11, check=_check_scatter)
def scatter_nd(node, data, indices, updates):
    out = data.copy()
    idx = np.asarray(indices).astype(np.int64)
    k = idx.shape[-1]
    flat = idx.reshape(-1, k)
    upd = updates.reshape((flat.shape[0],) + data.shape[k:])
    flat = np.where(flat < 0, flat + np.array(data.shape[:k]), flat)
    ufunc = _reduce_into(node.attr("reduction", "none"))
    if ufunc is None:
        out[tuple(flat.T)] = upd
    else:  # unbuffered: repeated index tuples accumulate, as ONNX's reductions ask
        ufunc.at(out, tuple(flat.T), upd)
    return out


@register("GatherND", since=11)
def gather_nd(node, data, indices):
    b = int(node.attr("batch_dims", 0))
    idx = np.asarray(indices).astype(np.int64)
    k = idx.shape[-1]
    batch = data.shape[:b]
    nb = int(np.prod(batch, dtype=np.int64))
    d = data.reshape((nb,) + data.shape[b:])
    ix = idx.reshape((nb, -1, k))
    out = d[(np.arange(nb)[:, None],) + tuple(ix.transpose(2, 0, 1))]
    return out.reshape(idx.shape[:-1] + data.shape[b + k:])


@register("EyeLike", since=9)
def eye_like(node, x):
    import onnx
    dtype = x.dtype if node.attr("dtype") is None else np.dtype(onnx.helper.tensor_dtype_to_np_dtype(
        int(node.attr("dtype"))))
    return np.eye(x.shape[0], x.shape[1], int(node.attr("k", 0)), dtype=dtype)


@register("CumProd", since=26)
def cumprod(node, x, axis):
    a = int(np.asarray(axis).reshape(())) % x.ndim
    y = np.flip(x, a) if node.attr("reverse", 0) else x
    out = np.cumprod(y, axis=a, dtype=x.dtype)
    if node.attr("exclusive", 0):
        ones = np.ones_like(np.take(out, [0], axis=a))
        out = np.concatenate([ones, np.delete(out, -1, axis=a)], axis=a)
    return np.ascontiguousarray(np.flip(out, a) if node.attr("reverse", 0) else out)


@register("Compress", since=9)
def compress(node, x, condition):
    axis = node.attr("axis")
    return np.compress(np.asarray(condition).astype(bool), x, axis=None if axis is None else int(axis))


@register("ReverseSequence", since=10)
def reverse_sequence(node, x, lens):
    batch_axis, time_axis = int(node.attr("batch_axis", 1)), int(node.attr("time_axis", 0))
    out = x.copy()
    for b, n in enumerate(int_list(lens)):
        src = [slice(None)] * x.ndim
        src[batch_axis], src[time_axis] = b, slice(n - 1, None, -1) if n else slice(0, 0)
        dst = [slice(None)] * x.ndim
        dst[batch_axis], dst[time_axis] = b, slice(0, n)
        out[tuple(dst)] = x[tuple(src)]
    return out


@register("MeanVarianceNormalization", since=9)
def mean_variance_normalization(node, x):
    axes = tuple(int_list(node.attr("axes", [0, 2, 3])))
    mean = x.mean(axis=axes, keepdims=True)
    std = np.sqrt(np.square(x - mean).mean(axis=axes, keepdims=True))
    return ((x - mean) / (std + x.dtype.type(1e-9))).astype(x.dtype, copy=False)


for _name, _f in {"BitwiseAnd": np.bitwise_and, "BitwiseOr": np.bitwise_or,
                  "BitwiseXor": np.bitwise_xor}.items():
    def _bitwise(node, a, b, _f=_f):
        return _f(a, b)
    register(_name, since=18)(_bitwise)


@register("BitwiseNot", since=18)
def bitwise_not(node, x):
    return np.invert(x)


@register("BitShift", since=11)
def bit_shift(node, x, y):
    left = node.attr("direction") == "LEFT"
    return (np.left_shift(x, y) if left else np.right_shift(x, y)).astype(x.dtype)

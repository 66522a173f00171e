"""Pooling: MaxPool, AveragePool, LpPool and the global pools, through ``convlayers.functional``'s pools.

Symmetric padding of at most half the kernel (what PyTorch's pools accept,
and every PyTorch export) goes straight to ``max_pool2d``/``avg_pool2d``.
ONNX also allows asymmetric or larger padding: the input is then padded
explicitly (``-inf`` for max, zeros for average, with a ones-mask pooled
beside it when the padding must not count) and the result cropped to ONNX's
output size.  1-D pools run as 2-D ones over a height-1 image.  LpPool is
``(Σ|x|^p)^(1/p)`` = ``(avg_pool(|x|^p)·k)^(1/p)``, as PyTorch's
``lp_pool2d`` itself computes it.
"""

from __future__ import annotations

import numpy as np

from ... import functional as F
from ..._kernels import pool as _pool_k
from ...functional import _conv_channels_last as _channels_last
from ._registry import has_functional, int_list, register
from .conv import resolve_pads, torch_pad


def _check_pool(node, constants):
    auto = node.attr("auto_pad", "NOTSET") or "NOTSET"
    if auto not in ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"):
        return f"auto_pad={auto!r}"
    k = node.attr("kernel_shape")
    if k is None:
        return "no kernel_shape"
    if len(k) == 3 and not has_functional("max_pool3d", "avg_pool3d"):
        return "3-D windows (convlayers.functional has no 3-D pools yet)"
    if len(k) > 3:
        return f"{len(k)}-D windows"
    if node.op_type in ("AveragePool", "LpPool") and any(d != 1 for d in node.attr("dilations", [1] * len(k))):
        return "dilated average pooling (convlayers.functional.avg_pool2d has no dilation)"
    return None


def _geometry(node, x):
    k = int_list(node.attr("kernel_shape"))
    nd = len(k)
    if x.ndim != nd + 2:
        raise ValueError(f"{node.op_type} {node.label()!r}: a {nd}-D window needs a {nd + 2}-D input, "
                         f"got shape {x.shape}")
    s = int_list(node.attr("strides", [1] * nd))
    d = int_list(node.attr("dilations", [1] * nd))
    pads = resolve_pads(node, x.shape[2:], k, s, d)
    return nd, k, s, d, pads[:nd], pads[nd:], bool(node.attr("ceil_mode", 0))


def _out_size(size, k, s, d, b, e, ceil):
    span = (k - 1) * d + 1
    num = size + b + e - span
    out = (-(-num // s) if ceil else num // s) + 1
    if ceil and (out - 1) * s >= size + b:  # a last window starting in the end padding is dropped
        out -= 1
    return out


def _as_2d(x, k, s, d, b, e):
    """A 1-D pool as a 2-D one over a height-1 image."""
    return x[:, :, None, :], [1] + k, [1] + s, [1] + d, [0] + b, [0] + e


def _direct(k, b, e):
    return b == e and all(p <= kk // 2 for p, kk in zip(b, k))


def _crop(y, outs):
    return y[(slice(None), slice(None)) + tuple(slice(0, o) for o in outs)]


@register("MaxPool", since=1, check=_check_pool)
def max_pool(node, x):
    nd, k, s, d, b, e, ceil = _geometry(node, x)
    want_idx = len(node.outputs) > 1 and bool(node.outputs[1])
    spatial = x.shape[2:]
    outs = [_out_size(spatial[i], k[i], s[i], d[i], b[i], e[i], ceil) for i in range(nd)]
    x0 = x
    if nd == 1:
        x, k, s, d, b, e = _as_2d(x, k, s, d, b, e)
        outs = [1] + outs
    pool = F.max_pool2d if len(k) == 2 else F.max_pool3d
    if _direct(k, b, e):
        r = pool(x, tuple(k), tuple(s), tuple(b), tuple(d), ceil, want_idx)
        padded_shape, offsets = x.shape[2:], [0] * len(k)
    else:
        fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
        xp = F.pad(x, torch_pad(b, e), value=fill)
        r = pool(xp, tuple(k), tuple(s), 0, tuple(d), True, want_idx)
        padded_shape, offsets = xp.shape[2:], b
    if not want_idx:
        return _crop(r, outs).reshape(x0.shape[:2] + tuple(outs[-nd:])).astype(x0.dtype, copy=False)
    y, idx = r
    y = y.astype(x0.dtype, copy=False)
    y, idx = _crop(y, outs), _crop(idx, outs)
    # index within the (padded) plane -> coordinates in the input -> ONNX's flat index over the whole tensor
    coords = np.unravel_index(idx, tuple(padded_shape))
    coords = tuple(c - o for c, o in zip(coords, offsets))
    spatial = x.shape[2:]
    order = "F" if int(node.attr("storage_order", 0)) == 1 else "C"
    flat = np.ravel_multi_index(coords, spatial, order=order, mode="wrap")
    n, c = x.shape[:2]
    plane = int(np.prod(spatial))
    flat = flat + (np.arange(n * c, dtype=np.int64) * plane).reshape((n, c) + (1,) * len(spatial))
    shape = x0.shape[:2] + tuple(outs[-nd:])
    return y.reshape(shape), flat.astype(np.int64).reshape(shape)


def _avg(node, x, k, s, b, e, ceil, include_pad, outs):
    pool = F.avg_pool2d if len(k) == 2 else F.avg_pool3d
    if _direct(k, b, e):
        return _crop(pool(x, tuple(k), tuple(s), tuple(b), ceil, include_pad), outs)
    xp = F.pad(x, torch_pad(b, e))
    y = _crop(pool(xp, tuple(k), tuple(s), 0, True, True), outs)
    if not include_pad:
        mask = F.pad(np.ones((1, 1) + x.shape[2:], dtype=x.dtype), torch_pad(b, e))
        y = y / _crop(pool(mask, tuple(k), tuple(s), 0, True, True), outs)
    return y


@register("AveragePool", since=1, check=_check_pool)
def average_pool(node, x):
    nd, k, s, d, b, e, ceil = _geometry(node, x)
    spatial = x.shape[2:]
    outs = [_out_size(spatial[i], k[i], s[i], d[i], b[i], e[i], ceil) for i in range(nd)]
    x0 = x
    if nd == 1:
        x, k, s, d, b, e = _as_2d(x, k, s, d, b, e)
        outs = [1] + outs
    y = _avg(node, x, k, s, b, e, ceil, bool(node.attr("count_include_pad", 0)), outs)
    return y.reshape(x0.shape[:2] + tuple(outs[-nd:]))


@register("LpPool", since=2, check=_check_pool)
def lp_pool(node, x):
    nd, k, s, d, b, e, ceil = _geometry(node, x)
    p = float(node.attr("p", 2))
    spatial = x.shape[2:]
    outs = [_out_size(spatial[i], k[i], s[i], d[i], b[i], e[i], ceil) for i in range(nd)]
    x0 = x
    if nd == 1:
        x, k, s, d, b, e = _as_2d(x, k, s, d, b, e)
        outs = [1] + outs
    y = _avg(node, np.abs(x) ** p, k, s, b, e, ceil, True, outs) * float(np.prod(k))
    return (y ** (1.0 / p)).astype(x.dtype, copy=False).reshape(x0.shape[:2] + tuple(outs[-nd:]))


def _global(fn, x):
    """``fn`` (an adaptive 2-D pool to 1×1) over all spatial axes of an (N, C, ...) input."""
    if x.ndim < 3:
        raise ValueError(f"global pooling needs an (N, C, ...) input, got shape {x.shape}")
    x4 = x if x.ndim == 4 else x.reshape(x.shape[0], x.shape[1], 1, -1)
    y = fn(x4, 1)
    return y.reshape(x.shape[:2] + (1,) * (x.ndim - 2))


@register("GlobalAveragePool", since=1)
def global_average_pool(node, x):
    if _channels_last.is_channels_last(x) and x.dtype.kind == "f":
        # channels-last (the runner's mode): a sum over the pixel rows of its NHWC memory, no layout copy
        n, c, h, w = x.shape
        rows = x.transpose(0, 2, 3, 1).reshape(n, h * w, c)
        # float32 sums for small planes (8x1280x7x7: 0.08 ms, against 0.24 ms widening to float64), float64
        # above a thousand terms, where a float32 running sum would drift
        acc = np.float64 if x.dtype.itemsize < 8 and h * w > 1024 else x.dtype
        if rows.flags.c_contiguous and x.dtype in (np.float32, np.float64) and h * w:
            out = np.empty((n, c), x.dtype)
            _pool_k.mean_pixels.for_work(x.size, 1 << 22)(rows, np.empty(0, acc), out)
            return out.reshape(n, c, 1, 1)
        return (rows.sum(axis=1, dtype=acc) / (h * w)).astype(x.dtype).reshape(n, c, 1, 1)
    return _global(F.adaptive_avg_pool2d, x)


@register("GlobalMaxPool", since=1)
def global_max_pool(node, x):
    return _global(F.adaptive_max_pool2d, x)


@register("GlobalLpPool", since=2)
def global_lp_pool(node, x):
    p = float(node.attr("p", 2))
    count = float(np.prod(x.shape[2:]))
    y = _global(F.adaptive_avg_pool2d, np.abs(x) ** p) * count
    return (y ** (1.0 / p)).astype(x.dtype, copy=False)


def _check_unpool(node, constants):
    k = node.attr("kernel_shape")
    if k is None:
        return "no kernel_shape"
    need = {1: "max_unpool1d", 2: "max_unpool2d", 3: "max_unpool3d"}.get(len(k))
    if need is None or not has_functional(need):
        return f"{len(k)}-D windows (convlayers.functional has no {need or 'such op'})"
    return None


@register("MaxUnpool", since=9, check=_check_unpool, needs=("max_unpool2d",))
def max_unpool(node, x, indices, output_shape=None):
    k = int_list(node.attr("kernel_shape"))
    nd = len(k)
    s = int_list(node.attr("strides", [1] * nd))
    pads = int_list(node.attr("pads", [0] * (2 * nd)))
    spatial = x.shape[2:]
    default = [(spatial[i] - 1) * s[i] + k[i] - pads[i] - pads[nd + i] for i in range(nd)]
    out = default if output_shape is None else int_list(output_shape)[-nd:]
    n, c = x.shape[:2]
    # ONNX's indices run over the whole tensor of the default output shape; PyTorch's over one plane of the
    # output it writes.  Coordinates stay put when output_shape enlarges the planes.
    idx = np.asarray(indices).astype(np.int64)
    idx = idx - (np.arange(n * c, dtype=np.int64) * int(np.prod(default))).reshape((n, c) + (1,) * nd)
    if out != default:
        idx = np.ravel_multi_index(np.unravel_index(idx, tuple(default)), tuple(out))
    fn = {1: getattr(F, "max_unpool1d", None), 2: F.max_unpool2d, 3: getattr(F, "max_unpool3d", None)}[nd]
    return fn(x, idx, tuple(k), tuple(s), tuple(pads[:nd]), tuple(out)).astype(x.dtype, copy=False)

"""Differentiable versions of the normalisation, resampling and reshaping ops (see ``_autograd_ops``).

Registered into ``_autograd_ops``' table on import; each entry runs the NumPy
op on plain arrays and records the backward helper that sits beside it in
``functional``.
"""

from __future__ import annotations

import numpy as np

from ._autograd_ops import _d, _needs, _register
from .autograd import _result
from .functional import sliding as _fold
from .functional import grid as _grid
from .functional import normalization as _n
from .functional import resample as _r
from .functional import shuffle as _s


# --------------------------------------------------------------------------- normalisation

@_register("group_norm")
def _group_norm(func, a):
    x, w, b = a["input"], a["weight"], a["bias"]
    out, saved = _n.group_norm_forward(_d(x), a["num_groups"], _d(w), _d(b), _d(a["eps"]))
    return _result(out, (x, w, b), lambda g: _n.group_norm_backward(g, saved, _d(w), need_input=_needs(x)))


@_register("layer_norm")
def _layer_norm(func, a):
    x, w, b = a["input"], a["weight"], a["bias"]
    out, saved = _n.layer_norm_forward(_d(x), a["normalized_shape"], _d(w), _d(b), _d(a["eps"]))

    def backward(g):
        gi, gw, gb = _n.row_norm_backward(g, saved, _d(w), need_input=_needs(x))
        shape = np.shape(_d(w)) if w is not None else None
        return gi, None if shape is None else gw.reshape(shape), None if b is None else gb.reshape(np.shape(_d(b)))

    return _result(out, (x, w, b), backward)


@_register("rms_norm")
def _rms_norm(func, a):
    x, w = a["input"], a["weight"]
    out, saved = _n.rms_norm_forward(_d(x), a["normalized_shape"], _d(w), _d(a["eps"]))

    def backward(g):
        gi, gw, _ = _n.row_norm_backward(g, saved, _d(w), need_input=_needs(x))
        return gi, None if w is None else gw.reshape(np.shape(_d(w)))

    return _result(out, (x, w), backward)


@_register("instance_norm")
def _instance_norm(func, a):
    x, w, b = a["input"], a["weight"], a["bias"]
    rm, rv = _d(a["running_mean"]), _d(a["running_var"])
    xd = _d(x)
    if not a["use_input_stats"]:
        frozen_mean, frozen_var = np.array(rm), np.array(rv)
    out, saved = _n.instance_norm_forward(xd, rm, rv, _d(w), _d(b), a["use_input_stats"], a["momentum"],
                                          a["eps"])

    def backward(g):
        if saved is not None:
            return _n.group_norm_backward(g, saved, _d(w), need_input=_needs(x))
        shape = (1, -1) + (1,) * (xd.ndim - 2)
        axes = (0,) + tuple(range(2, xd.ndim))
        invstd = 1.0 / np.sqrt(frozen_var.astype(np.float64) + a["eps"])
        xhat = (xd - frozen_mean.reshape(shape)) * invstd.reshape(shape)
        scale = invstd if w is None else invstd * _d(w)
        gi = (g * scale.reshape(shape)).astype(xd.dtype) if _needs(x) else None
        return gi, (g * xhat).sum(axis=axes).astype(xd.dtype), g.sum(axis=axes).astype(xd.dtype)

    return _result(out, (x, w, b), backward)


@_register("local_response_norm")
def _local_response_norm(func, a):
    x = a["input"]
    kw = {k: a[k] for k in ("size", "alpha", "beta", "k")}
    xd = _d(x)
    out = func(xd, **kw)
    return _result(out, (x,), lambda g: (_n.local_response_norm_backward(g, xd, **kw),))


@_register("normalize")
def _normalize(func, a):
    x = a["input"]
    if a["out"] is not None:
        raise TypeError("normalize: out= is not supported with Tensor inputs")
    kw = {k: a[k] for k in ("p", "dim", "eps")}
    xd = _d(x)
    out = func(xd, **kw)
    return _result(out, (x,), lambda g: (_n.normalize_backward(g, xd, **kw),))


# --------------------------------------------------------------------------- resampling

def _resample(x, shape, tables, out):
    return _result(out, (x,), lambda g: (_r.interpolate_backward(g, shape, tables).astype(out.dtype, copy=False),))


@_register("interpolate")
def _interpolate(func, a):
    x = a["input"]
    xd = _d(x)
    args = {k: v for k, v in a.items() if k != "input"}
    tables = _r.interpolate_tables(xd, **args)
    return _resample(x, xd.shape, tables, func(xd, **args))


@_register("upsample")
def _upsample(func, a):
    x = a["input"]
    xd = _d(x)
    args = {k: v for k, v in a.items() if k != "input"}
    return _resample(x, xd.shape, _r.interpolate_tables(xd, **args), func(xd, **args))


@_register("upsample_nearest")
def _upsample_nearest(func, a):
    x = a["input"]
    xd = _d(x)
    tables = _r.interpolate_tables(xd, a["size"], a["scale_factor"], "nearest")
    return _resample(x, xd.shape, tables, func(xd, a["size"], a["scale_factor"]))


@_register("upsample_bilinear")
def _upsample_bilinear(func, a):
    x = a["input"]
    xd = _d(x)
    tables = _r.interpolate_tables(xd, a["size"], a["scale_factor"], "bilinear", True)
    return _resample(x, xd.shape, tables, func(xd, a["size"], a["scale_factor"]))


@_register("grid_sample")
def _grid_sample(func, a):
    x, grid = a["input"], a["grid"]
    kw = {k: a[k] for k in ("mode", "padding_mode", "align_corners")}
    xd, gd = _d(x), _d(grid)
    out = func(xd, gd, **kw)

    def backward(g):
        return _grid.grid_sample_backward(g, xd, gd, **kw, need_input=_needs(x), need_grid=_needs(grid))

    return _result(out, (x, grid), backward)


@_register("affine_grid")
def _affine_grid(func, a):
    theta = a["theta"]
    td = _d(theta)
    out = func(td, a["size"], a["align_corners"])
    return _result(out, (theta,),
                   lambda g: (_grid.affine_grid_backward(g, a["size"], a["align_corners"], out.dtype),))


# --------------------------------------------------------------------------- reshaping

@_register("pixel_shuffle")
def _pixel_shuffle(func, a):
    x, r = a["input"], a["upscale_factor"]
    return _result(func(_d(x), r), (x,), lambda g: (_s.pixel_unshuffle(g, r),))


@_register("pixel_unshuffle")
def _pixel_unshuffle(func, a):
    x, r = a["input"], a["downscale_factor"]
    return _result(func(_d(x), r), (x,), lambda g: (_s.pixel_shuffle(g, r),))


@_register("channel_shuffle")
def _channel_shuffle(func, a):
    x, groups = a["input"], a["groups"]
    xd = _d(x)
    out = func(xd, groups)
    return _result(out, (x,), lambda g: (_s.channel_shuffle(g, xd.shape[1] // groups),))


@_register("unfold")
def _unfold(func, a):
    x = a["input"]
    xd = _d(x)
    kw = {k: a[k] for k in ("kernel_size", "dilation", "padding", "stride")}
    out = func(xd, **kw)
    return _result(out, (x,), lambda g: (_fold.fold(g, xd.shape[-2:], **kw).astype(xd.dtype, copy=False),))


@_register("fold")
def _fold_op(func, a):
    x = a["input"]
    kw = {k: a[k] for k in ("kernel_size", "dilation", "padding", "stride")}
    out = func(_d(x), a["output_size"], **kw)
    return _result(out, (x,), lambda g: (_fold.unfold(g, **kw),))

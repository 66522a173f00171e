"""Conv and ConvTranspose: ONNX's padding rules mapped onto ``convlayers.functional``'s convolutions.

ONNX allows asymmetric padding (``pads = [begin..., end...]``) and
``auto_pad``; the functional ops take one padding per axis.  Symmetric
padding goes straight through; anything else is an explicit zero
:func:`~convlayers.functional.pad` first (or, for the transposed
convolution, a crop/extension of its unpadded output).  1-D convolutions run
as 2-D ones over a height-1 image when no ``conv1d`` exists.  A Conv that the
optimizer fused with a following BatchNormalization and/or Relu/Clip carries
``_scale``/``_shift``/``_lo``/``_hi`` and runs as one
:func:`~convlayers.functional.conv.conv2d_affine` pass.
"""

from __future__ import annotations

import numpy as np

from ... import functional as F
from ...functional import _conv_channels_last as _channels_last
from ...functional import conv as _conv_mod
from .. import _buffers
from ._registry import has_functional, int_list, register

_AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


def resolve_pads(node, spatial, kernel, strides, dilations):
    """ONNX ``pads`` as ``[begin..., end...]`` after ``auto_pad``."""
    nd = len(spatial)
    auto = node.attr("auto_pad", "NOTSET") or "NOTSET"
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        begins, ends = [], []
        for i in range(nd):
            out = -(-spatial[i] // strides[i])
            total = max((out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - spatial[i], 0)
            begin = total // 2 if auto == "SAME_UPPER" else total - total // 2
            begins.append(begin)
            ends.append(total - begin)
        return begins + ends
    if auto == "VALID":
        return [0] * (2 * nd)
    pads = node.attr("pads")
    return [0] * (2 * nd) if pads is None else [int(p) for p in pads]


def torch_pad(begins, ends):
    """``[begin...], [end...]`` (leading axis first) as ``F.pad``'s ``(last_begin, last_end, ...)``."""
    out = []
    for b, e in zip(reversed(begins), reversed(ends)):
        out += [int(b), int(e)]
    return tuple(out)


def _check_conv(node, constants):
    auto = node.attr("auto_pad", "NOTSET") or "NOTSET"
    if auto not in _AUTO_PADS:
        return f"auto_pad={auto!r}"
    w = constants.get(node.inputs[1]) if len(node.inputs) > 1 else None
    if w is not None:
        nd = w.ndim - 2
        need = {1: "conv2d", 2: "conv2d", 3: "conv3d"}.get(nd)
        if node.op_type == "ConvTranspose":
            need = {1: "conv_transpose2d", 2: "conv_transpose2d", 3: "conv_transpose3d"}.get(nd)
        if need is None or not has_functional(need):
            return f"{nd}-D kernels (convlayers.functional has no {need or 'such op'})"
    return None


def _geometry(node, x, w):
    nd = x.ndim - 2
    kernel = list(w.shape[2:])
    strides = int_list(node.attr("strides", [1] * nd))
    dilations = int_list(node.attr("dilations", [1] * nd))
    return nd, kernel, strides, dilations


@register("Conv", since=1, check=_check_conv)
def conv(node, x, w, b=None, res=None):
    """A Conv node; ``res`` is the other input of an Add the optimizer fused in (``_residual``): the result is
    then ``clamp(conv·scale + shift + res, lo, hi)``, the Add's broadcasting kept."""
    if x.ndim < 3 or w.ndim != x.ndim:
        raise ValueError(f"Conv {node.label()!r}: input and weight must have the same rank >= 3, "
                         f"got {x.shape} and {w.shape}")
    if res is not None and "_plans" in node.attrs and isinstance(res, np.ndarray) and res.ndim == 4 \
            and res.dtype == np.float32 and res.shape[1] > 1 and res.shape[2] * res.shape[3] > 1 \
            and res.flags.c_contiguous:
        # an NCHW residual (the graph's own input, say) in a channels-last run: the fused plans read
        # channels-last ones only, and without them the node ran the NCHW path, a single-block model 2.4x
        # slower than with this copy (64->384->64 @14, 2 threads)
        res = _channels_last.to_channels_last(res)
    pre = node.attrs.get("_pre")
    if pre is not None:
        return _depthwise_pointwise(node, pre, x, w, b, res)
    return _single(node, x, w, b, res)


def reads_as_nchw(node, x):
    """Whether this Conv node's channels-last plan takes ``x`` as it is: a C-ordered NCHW float32 input of a node
    the runner marked ``_reads_nchw`` (a dense k×k convolution, whose zero-padding copy moves it anyway)."""
    return bool(node.attrs.get("_reads_nchw")) and isinstance(x, np.ndarray) and x.ndim == 4 \
        and x.dtype == np.float32 and x.flags.c_contiguous


def _single(node, x, w, b, res):
    """A Conv node by itself: its prepared channels-last plan, else the functional convolution."""
    plans = node.attrs.get("_plans")
    residual = res is not None
    key = (x.shape, x.dtype.str, w.shape, b is None, residual)
    # a C-ordered (N, C, 1, 1) input has channels-last memory too; a dense k×k plan reads NCHW as it is
    nhwc = plans is not None and (_channels_last.is_channels_last(x) or reads_as_nchw(node, x) or (
        x.ndim == 4 and x.shape[2] * x.shape[3] == 1 and x.flags.c_contiguous))
    run = plans.get(key) if nhwc else None
    if nhwc and key not in plans:  # planned on first sight, so that the first run computes as every later one
        run = plans[key] = _plan(node, x, w, b, residual)
    if run is not None:
        y = run(x, _buffers.current_alloc(), res) if residual else run(x, _buffers.current_alloc())
        if y is not None:
            return y
    if residual:
        y = _conv(node, x, w, b, unclamped=True)
        return _add_clamp(node, y, res)
    return _conv(node, x, w, b)


def _depthwise_pointwise(node, pre, x, w, b, res):
    """A 1×1 Conv with the depthwise Conv before it fused in (``optimize.fuse_depthwise_pointwise``), and
    with ``_pre0`` the 1×1 expansion before that too (``x`` is then the expansion's input)."""
    ex = node.attrs.get("_pre0")
    if ex is not None:
        return _expand_depthwise_pointwise(node, ex, pre, x, w, b, res)
    return _pair(node, pre, x, w, b, res)


def _pair(node, pre, x, w, b, res):
    """The depthwise → 1×1 pair on the depthwise's input ``x``: fused where it can be, else apart."""
    plans = node.attrs["_plans"]
    key = ("pre", x.shape, x.dtype.str, b is None, res is not None)
    run = plans.get(key) if _channels_last.is_channels_last(x) else None
    if run is not None:
        y = run(x, _buffers.current_alloc(), res)
        if y is not None:
            return y
    elif key not in plans and _channels_last.is_channels_last(x) and x.dtype == np.float32 \
            and w.dtype == np.float32 and pre.attrs.get("_packed") is not None:
        plans[key] = _plan_pair(node, pre, x, w, b, res is not None)
        if plans[key] is not None:
            return _pair(node, pre, x, w, b, res)
    # apart: the depthwise node, then this one without it
    t = conv(pre, x, node.attrs["_pre_w"], node.attrs["_pre_b"])
    return _single(node, t, w, b, res)


def _expand_depthwise_pointwise(node, ex, pre, x, w, b, res):
    plans = node.attrs["_plans"]
    key = ("pre0", x.shape, x.dtype.str, b is None, res is not None)
    nhwc = _channels_last.is_channels_last(x)
    run = plans.get(key) if nhwc else None
    if run is not None:
        y = run(x, _buffers.current_alloc(), res)
        if y is not None:
            return y
    elif nhwc and key not in plans and x.dtype == np.float32 and w.dtype == np.float32:
        plans[key] = _plan_triple(node, ex, pre, x, w, b, res is not None)
        if plans[key] is not None:
            return _expand_depthwise_pointwise(node, ex, pre, x, w, b, res)
    # apart: the expansion, then the depthwise -> 1x1 pair (itself fused where it can be)
    return _pair(node, pre, conv(ex, x, node.attrs["_pre0_w"], node.attrs["_pre0_b"]), w, b, res)


def _plan_triple(node, ex, pre, x, w, b, residual):
    """The fused plan of an expansion → depthwise → 1×1 chain for inputs like ``x``, or None."""
    w1, wd = node.attrs["_pre0_w"], node.attrs["_pre_w"]
    if x.ndim != 4 or w1.dtype != x.dtype or wd.dtype != x.dtype:
        return None
    # the 1x1 stride-1 expansion keeps the spatial size: the depthwise's geometry is that of x
    nd, kernel, strides, dilations = _geometry(pre, x, wd)
    pads = resolve_pads(pre, x.shape[2:], kernel, strides, dilations)
    if pads[:2] != pads[2:] or nd != 2:
        return None
    return _channels_last.plan_expand_depthwise_pointwise(
        x.shape, w1, _epilogue(ex, node.attrs["_pre0_b"], x.dtype, w1.shape[0]), wd, tuple(strides),
        (pads[0], pads[2], pads[1], pads[3]), tuple(dilations), _epilogue(pre, node.attrs["_pre_b"], x.dtype,
                                                                          wd.shape[0]),
        w, _epilogue(node, b, x.dtype, w.shape[0]), ex.attrs["_packed"], pre.attrs["_packed"], node.attrs["_packed"],
        residual)


def _plan_pair(node, pre, x, w, b, residual):
    """The fused plan of a depthwise → 1×1 pair for inputs like ``x``, or None."""
    wd = node.attrs["_pre_w"]
    nd, kernel, strides, dilations = _geometry(pre, x, wd)
    pads = resolve_pads(pre, x.shape[2:], kernel, strides, dilations)
    if pads[:2] != pads[2:] or nd != 2 or wd.dtype != x.dtype:
        return None
    return _channels_last.plan_depthwise_pointwise(
        x.shape, wd, tuple(strides), (pads[0], pads[2], pads[1], pads[3]), tuple(dilations),
        _epilogue(pre, node.attrs["_pre_b"], x.dtype, wd.shape[0]), w, _epilogue(node, b, x.dtype, w.shape[0]),
        pre.attrs["_packed"], node.attrs["_packed"], residual)


def _epilogue(node, b, dtype, cout):
    """The (scale, shift, lo, hi) a node's Conv output is mapped through, its bias folded into the shift."""
    if "_scale" in node.attrs:
        scale = np.asarray(node.attrs["_scale"], dtype=dtype)
        shift = np.asarray(node.attrs["_shift"], dtype=dtype)
        if b is not None:
            shift = shift + b.astype(dtype) * scale
        return scale, shift, dtype.type(node.attrs["_lo"]), dtype.type(node.attrs["_hi"])
    beta = np.zeros(cout, dtype) if b is None else b.astype(dtype)
    return np.ones(cout, dtype), beta, dtype.type(-np.inf), dtype.type(np.inf)


def _add_clamp(node, y, res):
    """The fused Add (ONNX broadcasting, the conv output's dtype) and the clamp after it."""
    r = np.add(y, res if res.dtype == y.dtype or res.dtype.kind != "f" else res.astype(y.dtype))
    r = r.astype(y.dtype, copy=False)
    lo, hi = node.attrs.get("_lo", -np.inf), node.attrs.get("_hi", np.inf)
    if lo > -np.inf:
        r = np.maximum(r, np.asarray(lo, dtype=r.dtype))
    if hi < np.inf:
        r = np.minimum(r, np.asarray(hi, dtype=r.dtype))
    return r


def _plan(node, x, w, b, residual=False):
    """A prepared channels-last run of this node for inputs like ``x`` (see ``_conv_channels_last.plan``), or None.

    Only for a weight and bias that are the graph's constants (the node's ``_packed`` cache belongs to them).
    """
    if x.ndim != 4 or x.dtype not in (np.float32, np.float64) or w.dtype != x.dtype or "_packed" not in node.attrs:
        return None  # the channels-last kernels are float32/float64 (float16 runs the functional path)
    nd, kernel, strides, dilations = _geometry(node, x, w)
    pads = resolve_pads(node, x.shape[2:], kernel, strides, dilations)
    if pads[:2] != pads[2:]:
        return None
    dtype = x.dtype
    epilogue = _epilogue(node, b, dtype, w.shape[0])
    return _channels_last.plan(x.shape, dtype, w, tuple(strides), (pads[0], pads[2], pads[1], pads[3]),
                               tuple(dilations), int(node.attr("group", 1)), epilogue, node.attrs["_packed"],
                               residual)


def _conv(node, x, w, b, unclamped=False):
    x0 = x
    nd, kernel, strides, dilations = _geometry(node, x, w)
    group = int(node.attr("group", 1))
    pads = resolve_pads(node, x.shape[2:], kernel, strides, dilations)
    begins, ends = pads[:nd], pads[nd:]
    if begins != ends:
        x = F.pad(x, torch_pad(begins, ends))
        begins = [0] * nd
    squeeze = False
    fused = "_scale" in node.attrs
    if nd == 1 and (fused or not has_functional("conv1d")):
        x, w = x[:, :, None, :], w[:, :, None, :]
        strides, dilations, begins, nd, squeeze = [1] + strides, [1] + dilations, [0] + begins, 2, True
    if fused:
        lo, hi = (-np.inf, np.inf) if unclamped else (node.attrs["_lo"], node.attrs["_hi"])
        y = _conv_mod.conv2d_affine(x, w, b, tuple(strides), tuple(begins), tuple(dilations), group, "zeros",
                                    node.attrs["_scale"], node.attrs["_shift"], lo, hi,
                                    packed=node.attrs.get("_packed"))
    else:
        fn = {1: getattr(F, "conv1d", None), 2: F.conv2d, 3: getattr(F, "conv3d", None)}.get(nd)
        if fn is None:
            raise ValueError(f"Conv {node.label()!r}: {nd}-D convolution is not available")
        y = fn(x, w, b, tuple(strides), tuple(begins), tuple(dilations), group)
    y = y[:, :, 0, :] if squeeze else y
    return y if y.dtype == x0.dtype or x0.dtype.kind != "f" else y.astype(x0.dtype)


@register("ConvTranspose", since=1, check=_check_conv)
def conv_transpose(node, x, w, b=None):
    if x.ndim < 3 or w.ndim != x.ndim:
        raise ValueError(f"ConvTranspose {node.label()!r}: input and weight must have the same rank >= 3, "
                         f"got {x.shape} and {w.shape}")
    x0 = x
    nd, kernel, strides, dilations = _geometry(node, x, w)
    group = int(node.attr("group", 1))
    spatial = x.shape[2:]
    out_pad = int_list(node.attr("output_padding", [0] * nd))
    full = [strides[i] * (spatial[i] - 1) + out_pad[i] + (kernel[i] - 1) * dilations[i] + 1 for i in range(nd)]
    output_shape = node.attr("output_shape")
    auto = node.attr("auto_pad", "NOTSET") or "NOTSET"
    if output_shape is not None or auto in ("SAME_UPPER", "SAME_LOWER"):
        target = int_list(output_shape)[-nd:] if output_shape is not None else \
            [spatial[i] * strides[i] for i in range(nd)]
        total = [full[i] - target[i] for i in range(nd)]
        # a target larger than the full output extends it at the end (as output_padding would)
        small = [int(t / 2) if t > 0 else 0 for t in total]  # C division: toward zero
        if auto == "SAME_UPPER":
            begins = small
        else:
            begins = [max(t, 0) - h for t, h in zip(total, small)]
        ends = [total[i] - begins[i] for i in range(nd)]
    elif auto == "VALID":
        begins, ends = [0] * nd, [0] * nd
    else:
        pads = int_list(node.attr("pads", [0] * (2 * nd)))
        begins, ends = pads[:nd], pads[nd:]
    squeeze = False
    if nd == 1:
        x, w = x[:, :, None, :], w[:, :, None, :]
        strides, dilations, out_pad, begins, ends = [1] + strides, [1] + dilations, [0] + out_pad, [0] + begins, \
            [0] + ends
        nd, squeeze = 2, True
    fn = {2: F.conv_transpose2d, 3: getattr(F, "conv_transpose3d", None)}.get(nd)
    if fn is None:
        raise ValueError(f"ConvTranspose {node.label()!r}: {nd}-D transposed convolution is not available")
    simple = begins == ends and all(p >= 0 for p in begins) and \
        all(o < max(s, d) for o, s, d in zip(out_pad, strides, dilations))
    if simple:
        y = fn(x, w, b, tuple(strides), tuple(begins), tuple(out_pad), group, tuple(dilations))
    else:
        y = fn(x, w, None, tuple(strides), 0, 0, group, tuple(dilations))
        y = F.pad(y, torch_pad([-p for p in begins], [o - e for o, e in zip(out_pad, ends)]))
        if b is not None:
            y = y + b.reshape(-1, *[1] * nd).astype(y.dtype, copy=False)
    y = y[:, :, 0, :] if squeeze else y
    return y if y.dtype == x0.dtype or x0.dtype.kind != "f" else y.astype(x0.dtype)

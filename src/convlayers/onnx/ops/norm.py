"""Normalisations and resampling: BatchNormalization, Instance/Layer/GroupNormalization, LRN, Resize, Col2Im.

Each maps onto its ``convlayers.functional`` op (``batch_norm``,
``instance_norm``, ``layer_norm``, ``group_norm``, ``local_response_norm``,
``interpolate``, ``fold``); an op whose functional counterpart is not in
this build is left out of the table, so :func:`convlayers.onnx.load` reports
it as unsupported rather than running a second implementation.
"""

from __future__ import annotations

import numpy as np

from ... import functional as F
from ._registry import int_list, register


def _check_bn(node, constants):
    if node.opset < 9 and int(node.attr("spatial", 1)) == 0:
        return "spatial=0 (per-activation statistics)"
    if int(node.attr("training_mode", 0)):
        return "training_mode=1 (only inference is supported)"
    if len([o for o in node.outputs if o]) > 1:
        return "running-statistics outputs (training)"
    return None


@register("BatchNormalization", since=1, check=_check_bn)
def batch_norm(node, x, scale, bias, mean, var):
    return F.batch_norm(x, mean, var, scale, bias, False, 0.0, float(node.attr("epsilon", 1e-5)))


@register("InstanceNormalization", since=1, needs=("instance_norm",))
def instance_norm(node, x, scale, bias):
    return F.instance_norm(x, None, None, scale, bias, True, 0.1, float(node.attr("epsilon", 1e-5)))


@register("LayerNormalization", since=17, needs=("layer_norm",))
def layer_norm(node, x, scale, bias=None):
    axis = int(node.attr("axis", -1)) % x.ndim
    shape = x.shape[axis:]
    eps = float(node.attr("epsilon", 1e-5))
    scale = np.broadcast_to(scale, shape)
    bias = None if bias is None else np.broadcast_to(bias, shape)
    y = F.layer_norm(x, shape, scale, bias, eps)
    if len(node.outputs) == 1:
        return y
    # the optional statistics outputs (training graphs keep them): mean and 1/sqrt(var + eps) per row
    axes = tuple(range(axis, x.ndim))
    mean = x.mean(axis=axes, keepdims=True, dtype=np.float64 if x.dtype == np.float64 else np.float32)
    var = np.square(x - mean).mean(axis=axes, keepdims=True)
    return y, mean, (1.0 / np.sqrt(var + eps)).astype(mean.dtype)


@register("GroupNormalization", since=18, needs=("group_norm",))
def group_norm(node, x, scale, bias):
    groups = int(node.attr("num_groups"))
    c = x.shape[1]
    if node.opset < 21 and scale.size == groups and groups != c:  # opset 18: one scale per group
        scale, bias = np.repeat(scale, c // groups), np.repeat(bias, c // groups)
    return F.group_norm(x, groups, scale, bias, float(node.attr("epsilon", 1e-5)))


@register("LRN", since=1, needs=("local_response_norm",))
def lrn(node, x):
    return F.local_response_norm(x, int(node.attr("size")), float(node.attr("alpha", 1e-4)),
                                 float(node.attr("beta", 0.75)), float(node.attr("bias", 1.0)))


# --------------------------------------------------------------------------- Resize / Upsample

def _resize_mode(node):
    """``(torch mode, align_corners, antialias)`` for a Resize/Upsample node, or a reason string."""
    mode = node.attr("mode", "nearest")
    if node.op_type == "Upsample":
        if mode == "nearest":
            return "nearest", None, False
        return f"Upsample mode={mode!r} (asymmetric linear has no functional.interpolate counterpart)"
    coord = node.attr("coordinate_transformation_mode", "half_pixel")
    antialias = bool(node.attr("antialias", 0))
    a = float(node.attr("cubic_coeff_a", -0.75))
    if node.attr("keep_aspect_ratio_policy", "stretch") != "stretch":
        return "keep_aspect_ratio_policy other than 'stretch'"
    if node.attr("exclude_outside", 0):
        return "exclude_outside=1"
    if mode == "nearest":
        nearest = node.attr("nearest_mode", "round_prefer_floor")
        if antialias:
            return "antialiased nearest"
        if coord == "asymmetric" and nearest == "floor":
            return "nearest", None, False
        if coord == "half_pixel" and nearest == "round_prefer_ceil":
            return "nearest-exact", None, False
        return f"nearest with coordinate_transformation_mode={coord!r}, nearest_mode={nearest!r}"
    if mode == "linear" and antialias:  # measured: ONNX's border weights differ from PyTorch's (2.875 vs 3.14)
        return "antialiased linear (ONNX's triangle filter is normalised differently at the borders)"
    if mode in ("linear", "cubic"):
        # PyTorch's bicubic uses A = -0.75; its antialiased bicubic (PIL's filter) A = -0.5
        if mode == "cubic" and a != (-0.5 if antialias else -0.75):
            return f"cubic_coeff_a={a}{' with antialias' if antialias else ''}"
        if coord == "align_corners" and not antialias:
            return mode, True, False
        if coord in ("half_pixel", "pytorch_half_pixel"):
            return mode, False, antialias
        return f"{mode} with coordinate_transformation_mode={coord!r}{' and antialias' if antialias else ''}"
    return f"mode={mode!r}"


def _check_resize(node, constants):
    r = _resize_mode(node)
    return r if isinstance(r, str) else None


_LINEAR = {3: "linear", 4: "bilinear", 5: "trilinear"}



def _full(values, axes, ndim, fill):
    """Per-axis ``values`` given for ``axes`` (Resize-18's attribute) spread over all ``ndim`` axes."""
    if axes is None:
        return list(values)
    full = [fill(i) for i in range(ndim)]
    for a, v in zip(axes, values):
        full[a % ndim] = v
    return full


def _interpolate(node, x, scales, sizes):
    mode, align, antialias = _resize_mode(node)
    nd = x.ndim - 2
    axes = node.attr("axes")
    coord = node.attr("coordinate_transformation_mode", "half_pixel")
    if sizes is not None and np.asarray(sizes).size:
        sizes = _full(int_list(sizes), axes, x.ndim, lambda i: x.shape[i])
        if len(sizes) != x.ndim or tuple(sizes[:2]) != x.shape[:2]:
            raise ValueError(f"{node.op_type} {node.label()!r}: only spatial axes can be resized, "
                             f"got sizes {sizes} for input {x.shape}")
        out = sizes[2:]
        kw = {"size": tuple(out)}
    else:
        scales = _full([float(v) for v in np.asarray(scales).reshape(-1)], axes, x.ndim, lambda i: 1.0)
        if len(scales) != x.ndim or scales[0] != 1 or scales[1] != 1:
            raise ValueError(f"{node.op_type} {node.label()!r}: only spatial axes can be resized, "
                             f"got scales {scales} for input {x.shape}")
        if all(s == 1 for s in scales):
            return x.copy()
        out = [int(np.floor(n * s)) for n, s in zip(x.shape[2:], scales[2:])]
        if align:
            # ONNX divides by the unrounded in·scale − 1, PyTorch by out − 1: equal only when in·scale is whole
            if any(n * s != o for n, s, o in zip(x.shape[2:], scales[2:], out)):
                raise ValueError(f"{node.op_type} {node.label()!r}: align_corners with a fractional output "
                                 "size (in·scale) has no functional.interpolate counterpart")
            kw = {"size": tuple(out)}
        else:
            kw = {"scale_factor": tuple(scales[2:])}
    if coord == "pytorch_half_pixel" and any(o == 1 for o in out) and not antialias:
        # PyTorch's own convention for a length-1 output: sample index 0 (interpolate would take the centre)
        x = x[(slice(None), slice(None)) + tuple(slice(0, 1) if o == 1 else slice(None) for o in out)]
        kw = {"size": tuple(out)}
    if mode == "linear":
        mode = _LINEAR.get(x.ndim)
    elif mode == "cubic":
        if nd != 2:
            raise ValueError(f"{node.op_type} {node.label()!r}: cubic resize needs a 4-D input, got {x.shape}")
        mode = "bicubic"
    if mode is None:
        raise ValueError(f"{node.op_type} {node.label()!r}: linear resize needs a 3- to 5-D input, got {x.shape}")
    if antialias:
        kw["antialias"] = True
    return F.interpolate(x, mode=mode, align_corners=align, **kw)


@register("Resize", since=10, check=_check_resize, needs=("interpolate",))
def resize(node, x, roi=None, scales=None, sizes=None):
    if node.opset == 10:  # Resize-10: (X, scales)
        roi, scales = None, roi
    return _interpolate(node, x, scales, sizes)


@register("Upsample", since=7, check=_check_resize, needs=("interpolate",))
def upsample(node, x, scales=None):
    if scales is None:
        scales = node.attr("scales")
    return _interpolate(node, x, scales, None)


def _check_col2im(node, constants):
    pads = node.attr("pads")
    if pads is not None and len(pads) != 4:
        return f"{len(pads) // 2}-D blocks (convlayers.functional.fold is 2-D)"
    if pads is not None and (pads[0] != pads[2] or pads[1] != pads[3]):
        return "asymmetric pads"
    return None


@register("Col2Im", since=18, check=_check_col2im, needs=("fold",))
def col2im(node, x, image_shape, block_shape):
    image, block = int_list(image_shape), int_list(block_shape)
    if len(image) != 2:
        raise ValueError(f"Col2Im {node.label()!r}: only 2-D images are supported, got image_shape {image}")
    pads = int_list(node.attr("pads", [0, 0, 0, 0]))
    return F.fold(x, tuple(image), tuple(block), tuple(int_list(node.attr("dilations", [1, 1]))),
                  (pads[0], pads[1]), tuple(int_list(node.attr("strides", [1, 1]))))

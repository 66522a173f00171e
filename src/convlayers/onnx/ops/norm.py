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


def _check_ln(node, constants):
    if len([o for o in node.outputs if o]) > 1:
        return "Mean / InvStdDev outputs"
    return None


@register("LayerNormalization", since=17, check=_check_ln, needs=("layer_norm",))
def layer_norm(node, x, scale, bias=None):
    axis = int(node.attr("axis", -1)) % x.ndim
    shape = x.shape[axis:]
    scale = np.broadcast_to(scale, shape)
    bias = None if bias is None else np.broadcast_to(bias, shape)
    return F.layer_norm(x, shape, scale, bias, float(node.attr("epsilon", 1e-5)))


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
    """``(torch mode, align_corners)`` for a Resize/Upsample node, or a reason string."""
    mode = node.attr("mode", "nearest")
    if node.op_type == "Upsample":
        if mode == "nearest":
            return "nearest", None
        return f"Upsample mode={mode!r} (asymmetric linear has no functional.interpolate counterpart)"
    coord = node.attr("coordinate_transformation_mode", "half_pixel")
    if node.attr("antialias", 0) or node.attr("keep_aspect_ratio_policy", "stretch") != "stretch" \
            or node.attr("exclude_outside", 0):
        return "antialias / keep_aspect_ratio_policy / exclude_outside"
    if mode == "nearest":
        nearest = node.attr("nearest_mode", "round_prefer_floor")
        if coord == "asymmetric" and nearest == "floor":
            return "nearest", None
        if coord == "half_pixel" and nearest == "round_prefer_ceil":
            return "nearest-exact", None
        return f"nearest with coordinate_transformation_mode={coord!r}, nearest_mode={nearest!r}"
    if mode in ("linear", "cubic"):
        if mode == "cubic" and float(node.attr("cubic_coeff_a", -0.75)) != -0.75:
            return "cubic_coeff_a other than -0.75"
        if coord == "align_corners":
            return mode, True
        if coord in ("half_pixel", "pytorch_half_pixel"):
            return mode, False
        return f"{mode} with coordinate_transformation_mode={coord!r}"
    return f"mode={mode!r}"


def _check_resize(node, constants):
    r = _resize_mode(node)
    if isinstance(r, str):
        return r
    if node.attr("axes") is not None:
        return "axes"
    return None


_LINEAR = {3: "linear", 4: "bilinear", 5: "trilinear"}


def _interpolate(node, x, scales, sizes):
    mode, align = _resize_mode(node)
    nd = x.ndim - 2
    if sizes is not None and len(sizes):
        sizes = int_list(sizes)
        if len(sizes) != x.ndim or tuple(sizes[:2]) != x.shape[:2]:
            raise ValueError(f"{node.op_type} {node.label()!r}: only spatial axes can be resized, "
                             f"got sizes {sizes} for input {x.shape}")
        kw = {"size": tuple(sizes[2:])}
    else:
        scales = [float(v) for v in np.asarray(scales).reshape(-1)]
        if len(scales) != x.ndim or scales[0] != 1 or scales[1] != 1:
            raise ValueError(f"{node.op_type} {node.label()!r}: only spatial axes can be resized, "
                             f"got scales {scales} for input {x.shape}")
        if all(s == 1 for s in scales):
            return x.copy()
        kw = {"scale_factor": tuple(scales[2:])}
    if mode == "linear":
        mode = _LINEAR.get(x.ndim)
    elif mode == "cubic":
        if nd != 2:
            raise ValueError(f"{node.op_type} {node.label()!r}: cubic resize needs a 4-D input, got {x.shape}")
        mode = "bicubic"
    if mode is None:
        raise ValueError(f"{node.op_type} {node.label()!r}: linear resize needs a 3- to 5-D input, got {x.shape}")
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

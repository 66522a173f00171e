"""Load-time graph rewrites: constant folding, Conv+BatchNormalization folding, activation fusion, pre-packing.

All of them run once, in :func:`convlayers.onnx.load`, on the topologically
ordered node list:

* **constant folding** — a node whose inputs are all initializers (or
  folded values) is run now and replaced by its outputs (exporters emit
  ``Shape → Gather → Unsqueeze → Concat`` chains over constants, and
  Constant nodes everywhere);
* **Conv → BatchNormalization** — evaluation-mode batch norm is a per-channel
  ``y·scale + shift``; the Conv node takes it as its epilogue and the BN
  node goes.  The weights are not rescaled: the convolution's products are
  the unfused ones, and the map is applied to each output tile while it is
  in cache (``functional.conv.conv2d_affine``, the same path as
  ``nn.fusion``);
* **activation fusion** — a Relu, or a Clip with constant bounds (ReLU6),
  right after a Conv becomes the epilogue's clamp;
* **residual fusion** — an Add of a Conv's output (with no clamp yet) and
  another value becomes that Conv's fourth input, added in its epilogue
  before the clamp (so a following Relu fuses too): a residual block's
  Conv → Add → Relu is one pass over the output;
* **depthwise → 1×1** — a depthwise Conv read only by a 1×1 Conv runs
  inside it, a row of its output at a time (MobileNet's blocks);
* **pre-packing** — weights made contiguous in the compute dtype once, and a
  Gemm's ``B`` stored transposed when that turns it into ``F.linear``'s
  ``x·Wᵀ`` form.

A fusion only happens when the intermediate value has no other reader and is
not a graph output, so every value a caller can observe is unchanged.
"""

from __future__ import annotations

import numpy as np

from ..functional import norm as _norm
from .ops import OPS

__all__ = ["optimize"]

# Ops never folded: their output is not a function of their inputs alone.
_NONDETERMINISTIC = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
                     "Bernoulli", "Dropout"}
# Folding must not turn a small graph into a huge constant table (ConstantOfShape / Expand / Tile of big shapes).
_FOLD_MAX_ELEMENTS = 1 << 22


def _consumers(nodes, outputs):
    readers = {}
    for i, node in enumerate(nodes):
        for name in node.inputs:
            if name:
                readers.setdefault(name, []).append(i)
    for name in outputs:
        readers.setdefault(name, []).append(-1)
    return readers


def fold_constants(nodes, constants):
    """Run the nodes whose inputs are all constants; return the remaining nodes."""
    kept = []
    for node in nodes:
        if node.op_type in _NONDETERMINISTIC or not all(n == "" or n in constants for n in node.inputs):
            kept.append(node)
            continue
        fn = OPS[node.op_type][0]
        args = [constants[n] if n else None for n in node.inputs]
        result = fn(node, *args)
        result = result if isinstance(result, tuple) else (result,)
        if sum(np.asarray(r).size for r in result) > _FOLD_MAX_ELEMENTS:
            kept.append(node)
            continue
        for name, value in zip(node.outputs, result):
            if name:
                constants[name] = np.asarray(value)
    return kept


def _is_float_const(constants, name):
    return name in constants and constants[name].dtype.kind == "f"


def _clamp_bounds(node, constants):
    """``(lo, hi)`` of a Relu or a constant-bound Clip, else None."""
    if node.op_type == "Relu":
        return 0.0, np.inf
    if node.op_type != "Clip":
        return None
    if node.opset < 11:
        return float(node.attr("min", -np.inf)), float(node.attr("max", np.inf))
    bounds = []
    for i, default in ((1, -np.inf), (2, np.inf)):
        name = node.inputs[i] if len(node.inputs) > i else ""
        if not name:
            bounds.append(default)
        elif name in constants and constants[name].size == 1:
            bounds.append(float(constants[name].reshape(())))
        else:
            return None
    return tuple(bounds)


def _fuse_residual(nodes, j, producer, readers, constants):
    """Fold the Add at ``nodes[j]`` into the Conv producing one of its inputs (a residual block's sum).

    The Conv must have no clamp yet (a Relu after the Add then becomes it) and be the Add's only source of
    that input; the Add's other input becomes the Conv's fourth input.  Returns whether it fused.
    """
    add = nodes[j]
    if len(add.inputs) != 2 or not all(add.inputs) or add.inputs[0] == add.inputs[1] \
            or any(n in constants for n in add.inputs):
        return False
    for side in (1, 0):  # prefer the later input's producer: the other input is then usually ready
        name = add.inputs[side]
        if name not in producer:
            continue
        conv = nodes[producer[name]]
        if conv.op_type != "Conv" or len(conv.inputs) < 2 or len(conv.inputs) > 3 \
                or not _is_float_const(constants, conv.inputs[1]) or constants[conv.inputs[1]].ndim != 4 \
                or readers.get(name) != [j] or conv.attrs.get("_lo", -np.inf) != -np.inf \
                or conv.attrs.get("_hi", np.inf) != np.inf:
            continue
        cout, dtype = constants[conv.inputs[1]].shape[0], constants[conv.inputs[1]].dtype
        if "_scale" not in conv.attrs:
            conv.attrs.update(_scale=np.ones(cout, dtype), _shift=np.zeros(cout, dtype))
        conv.attrs.update(_lo=-np.inf, _hi=np.inf, _residual=True)
        conv.inputs = list(conv.inputs[:3]) + [""] * (3 - len(conv.inputs)) + [add.inputs[1 - side]]
        conv.attrs.setdefault("_fused", []).append("Add")
        conv.outputs = [add.outputs[0]]
        # the fused Conv takes the Add's place: both its inputs are ready there (the order stays topological)
        i = producer[name]
        nodes[j] = conv
        del nodes[i]
        return True
    return False


def fuse(nodes, constants, outputs):
    """Fold BatchNormalization and Relu/Clip into the Conv nodes before them; return the new node list."""
    nodes = list(nodes)
    changed = True
    while changed:
        changed = False
        readers = _consumers(nodes, outputs)
        producer = {out: i for i, node in enumerate(nodes) for out in node.outputs}
        for j, nxt in enumerate(nodes):
            if nxt.op_type == "Add" and _fuse_residual(nodes, j, producer, readers, constants):
                changed = True
                break
            if not nxt.inputs or nxt.inputs[0] not in producer:
                continue
            i = producer[nxt.inputs[0]]
            conv = nodes[i]
            if conv.op_type != "Conv" or len(conv.inputs) < 2 or not _is_float_const(constants, conv.inputs[1]):
                continue
            if constants[conv.inputs[1]].ndim not in (3, 4) or readers.get(conv.outputs[0]) != [j]:
                continue
            cout = constants[conv.inputs[1]].shape[0]
            dtype = constants[conv.inputs[1]].dtype
            if nxt.op_type == "BatchNormalization" and "_scale" not in conv.attrs and "_lo" not in conv.attrs:
                params = nxt.inputs[1:5]
                if len(params) < 4 or not all(_is_float_const(constants, p) for p in params) \
                        or any(constants[p].shape != (cout,) for p in params) \
                        or len([o for o in nxt.outputs if o]) != 1 or OPS["BatchNormalization"][2](nxt, constants):
                    continue
                g, b, mean, var = (constants[p] for p in params)
                scale, shift = _norm.eval_scale_shift(mean, var, g, b, float(nxt.attr("epsilon", 1e-5)), dtype)
                conv.attrs.update(_scale=scale, _shift=shift, _lo=-np.inf, _hi=np.inf)
            elif _clamp_bounds(nxt, constants) is not None and conv.attrs.get("_lo", -np.inf) == -np.inf \
                    and conv.attrs.get("_hi", np.inf) == np.inf:
                lo, hi = _clamp_bounds(nxt, constants)
                if "_scale" not in conv.attrs:
                    conv.attrs.update(_scale=np.ones(cout, dtype), _shift=np.zeros(cout, dtype))
                conv.attrs.update(_lo=lo, _hi=hi)
            else:
                continue
            conv.attrs.setdefault("_fused", []).append(nxt.op_type)
            conv.outputs = [nxt.outputs[0]]
            del nodes[j]
            changed = True
            break
    return nodes


def prepack(nodes, constants):
    """Contiguous weights, Gemm's constant B stored transposed when that makes it ``x·Wᵀ``, the bias of
    every remaining 1-D/2-D float Conv applied in the epilogue (one pass less over its output), and a cache
    for the transformed weights of every Conv whose weight is a constant (the Winograd path's)."""
    for node in nodes:
        if node.op_type == "Conv" and "_scale" not in node.attrs and len(node.inputs) > 2 and node.inputs[2] \
                and _is_float_const(constants, node.inputs[1]) and constants[node.inputs[1]].ndim in (3, 4):
            cout, dtype = constants[node.inputs[1]].shape[0], constants[node.inputs[1]].dtype
            node.attrs.update(_scale=np.ones(cout, dtype), _shift=np.zeros(cout, dtype), _lo=-np.inf, _hi=np.inf)
        if node.op_type in ("Conv", "ConvTranspose", "MatMul") and len(node.inputs) > 1 \
                and node.inputs[1] in constants:
            constants[node.inputs[1]] = np.ascontiguousarray(constants[node.inputs[1]])
            if node.op_type == "Conv":
                # where the functional core keeps this constant weight's transforms after their first use
                node.attrs["_packed"] = {}
                # prepared channels-last runs of the node, one per input shape (ops.conv._plan)
                node.attrs["_plans"] = {}
        if node.op_type == "Gemm" and len(node.inputs) > 1 and node.inputs[1] in constants \
                and not int(node.attr("transB", 0)) and constants[node.inputs[1]].ndim == 2:
            node.attrs["_bt"] = np.ascontiguousarray(constants[node.inputs[1]].T)
        if node.op_type == "Gemm" and len(node.inputs) > 1 and node.inputs[1] in constants \
                and constants[node.inputs[1]].ndim == 2 \
                and (len(node.inputs) < 3 or not node.inputs[2] or node.inputs[2] in constants):
            node.attrs["_prepared"] = ""  # ops.linalg.gemm packs the constant weight for the fused kernel once
    return nodes


def fuse_depthwise_pointwise(nodes, constants, outputs):
    """A depthwise Conv whose only reader is a 1×1 Conv runs inside it (``_pre``: the depthwise node).

    The pair then computes each row of the wide depthwise output into a buffer
    and projects it at once (``_conv_channels_last.plan_depthwise_pointwise``);
    the 1×1 node keeps the depthwise node, weight and bias to run them apart
    when the fused path does not apply.  Runs after :func:`prepack` (both
    nodes have their ``_packed`` caches).
    """
    readers = _consumers(nodes, outputs)
    producer = {out: i for i, node in enumerate(nodes) for out in node.outputs}
    drop = set()
    for j, pw in enumerate(nodes):
        if pw.op_type != "Conv" or "_packed" not in pw.attrs or "_pre" in pw.attrs or not pw.inputs \
                or pw.inputs[0] not in producer:
            continue
        w2 = constants.get(pw.inputs[1])
        strides = [int(v) for v in (pw.attr("strides") or [1, 1])]
        pads = [int(v) for v in (pw.attr("pads") or [0])]
        if w2 is None or w2.ndim != 4 or w2.shape[2:] != (1, 1) or int(pw.attr("group", 1)) != 1 \
                or any(v != 1 for v in strides) or any(pads) \
                or (pw.attr("auto_pad", "NOTSET") or "NOTSET") not in ("NOTSET", "VALID"):
            continue
        i = producer[pw.inputs[0]]
        dw = nodes[i]
        w = constants.get(dw.inputs[1]) if dw.op_type == "Conv" and len(dw.inputs) > 1 else None
        if w is None or w.ndim != 4 or w.shape[1] != 1 or w.shape[0] < 2 or int(dw.attr("group", 1)) != w.shape[0] \
                or w.shape[0] != w2.shape[1] or "_packed" not in dw.attrs or dw.attrs.get("_residual") \
                or readers.get(pw.inputs[0]) != [j] or i in drop:
            continue
        pw.attrs["_pre"] = dw
        pw.attrs["_pre_w"] = w
        pw.attrs["_pre_b"] = constants.get(dw.inputs[2]) if len(dw.inputs) > 2 and dw.inputs[2] else None
        pw.inputs = [dw.inputs[0]] + list(pw.inputs[1:])
        drop.add(i)
        # a depthwise whose input is a 1x1 expansion read by it alone: the expansion runs inside too
        k = producer.get(dw.inputs[0])
        ex = nodes[k] if k is not None else None
        w1 = constants.get(ex.inputs[1]) if ex is not None and ex.op_type == "Conv" and len(ex.inputs) > 1 else None
        if w1 is not None and w1.ndim == 4 and w1.shape[2:] == (1, 1) and w1.shape[0] == w.shape[0] \
                and int(ex.attr("group", 1)) == 1 and "_packed" in ex.attrs and "_pre" not in ex.attrs \
                and not ex.attrs.get("_residual") and readers.get(dw.inputs[0]) == [i] and k not in drop \
                and all(int(v) == 1 for v in (ex.attr("strides") or [1, 1])) \
                and not any(int(v) for v in (ex.attr("pads") or [0])) \
                and (ex.attr("auto_pad", "NOTSET") or "NOTSET") in ("NOTSET", "VALID"):
            pw.attrs["_pre0"] = ex
            pw.attrs["_pre0_w"] = w1
            pw.attrs["_pre0_b"] = constants.get(ex.inputs[2]) if len(ex.inputs) > 2 and ex.inputs[2] else None
            pw.inputs = [ex.inputs[0]] + list(pw.inputs[1:])
            drop.add(k)
    return [node for k, node in enumerate(nodes) if k not in drop]


def prune(nodes, outputs):
    """Drop the nodes no graph output depends on."""
    needed = set(outputs)
    kept = []
    for node in reversed(nodes):
        if any(o in needed for o in node.outputs if o):
            kept.append(node)
            needed.update(n for n in node.inputs if n)
    return kept[::-1]


def optimize(nodes, constants, outputs, level=1):
    """All rewrites in order (``level=0``: none, the graph as written)."""
    if level <= 0:
        return list(nodes)
    nodes = fold_constants(nodes, constants)
    nodes = fuse(nodes, constants, outputs)
    nodes = prepack(nodes, constants)
    nodes = fuse_depthwise_pointwise(nodes, constants, outputs)
    return prune(nodes, outputs)

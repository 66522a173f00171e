"""``convlayers summary model.onnx``: the graph's layers with output shapes, parameters and MACs.

The shapes come from running the loaded (optimized) graph once on zeros of
the input shape — exact for every op, including the shape-computing
subgraphs exporters write — and the parameters and multiply-accumulates from
each node's constant inputs and those shapes.  A Conv that absorbed a
BatchNormalization and an activation is one row (``Conv+BatchNormalization+Relu``)
and counts the batch norm's parameters too.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["summary", "OnnxSummary", "LayerRow"]


@dataclass
class LayerRow:
    name: str
    op: str
    output_shape: tuple
    params: int
    macs: int


@dataclass
class OnnxSummary:
    rows: list
    input_shapes: dict

    @property
    def total_params(self):
        return sum(r.params for r in self.rows)

    @property
    def total_macs(self):
        return sum(r.macs for r in self.rows)

    def to_dict(self):
        return {"inputs": {k: list(v) for k, v in self.input_shapes.items()},
                "layers": [dict(asdict(r), output_shape=list(r.output_shape)) for r in self.rows],
                "total_params": self.total_params, "total_macs": self.total_macs}

    def to_json(self):
        return json.dumps(self.to_dict(), indent=1)

    def __str__(self):
        header = ("layer", "op", "output shape", "params", "MACs")
        body = [(r.name, r.op, "x".join(map(str, r.output_shape)), f"{r.params:,}", f"{r.macs:,}") for r in self.rows]
        widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]
        def line(cells):
            return "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        out = [line(header), line(["-" * w for w in widths])] + [line(b) for b in body]
        out.append(f"total: {self.total_params:,} parameters, {self.total_macs:,} MACs "
                   f"({self.total_macs / 1e9:.3f} GMACs) on {self.input_shapes}")
        return "\n".join(out)


def _macs(node, args, outputs):
    op = node.op_type
    y = outputs[0] if outputs else None
    if op == "Conv" and len(args) > 1:
        w = args[1]
        return int(y.size * int(np.prod(w.shape[1:])))
    if op == "ConvTranspose" and len(args) > 1:
        x, w = args[0], args[1]
        return int(x.size * int(np.prod(w.shape[1:])))
    if op in ("Gemm", "MatMul") and len(args) > 1:
        a = args[0]
        k = a.shape[0] if op == "Gemm" and int(node.attr("transA", 0)) else a.shape[-1]
        return int(y.size * k)
    return 0


def summary(model, input_shapes=None):
    """Per-node output shape, parameters and MACs of a loaded ONNX model.

    Parameters
    ----------
    model : OnnxModel
    input_shapes : dict of str to tuple, optional
        A shape for each input; by default the declared one, with symbolic
        dimensions set to 1.

    Returns
    -------
    OnnxSummary
        ``str()`` gives the table; ``to_dict()`` the same as data.

    Examples
    --------
    >>> import numpy as np
    >>> from onnx import TensorProto, helper, numpy_helper
    >>> import convlayers.onnx
    >>> from convlayers.onnx.summary import summary
    >>> g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], name="conv1")], "g",
    ...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 8, 8])],
    ...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    ...     initializer=[numpy_helper.from_array(np.zeros((4, 3, 3, 3), np.float32), "w")])
    >>> s = summary(convlayers.onnx.load(helper.make_model(g)))
    >>> s.rows[0]
    LayerRow(name='conv1', op='Conv', output_shape=(1, 4, 6, 6), params=108, macs=3888)
    """
    shapes = {}
    for v in model.inputs:
        given = (input_shapes or {}).get(v.name)
        if given is None:
            if v.shape is None:
                raise ValueError(f"summary: input {v.name!r} has no declared shape; give input_shapes")
            given = tuple(d if isinstance(d, int) else 1 for d in v.shape)
        shapes[v.name] = tuple(int(d) for d in given)
    feeds = {v.name: np.zeros(shapes[v.name], dtype=v.dtype or np.float32) for v in model.inputs}
    constants = model.graph.constants
    rows = []

    def trace(node, args, outputs):
        ex = node.attrs.get("_pre0")
        if ex is not None and args:  # a 1x1 expansion fused in before the depthwise: its row first
            w = node.attrs["_pre0_w"]
            b = node.attrs["_pre0_b"]
            shape = (args[0].shape[0], w.shape[0]) + tuple(args[0].shape[2:])
            rows.append(LayerRow(ex.label(), "+".join(["Conv"] + list(ex.attrs.get("_fused", ()))), shape,
                                 int(w.size) + (0 if b is None else int(b.size)),
                                 int(np.prod(shape)) * int(np.prod(w.shape[1:]))))
        pre = node.attrs.get("_pre")
        if pre is not None and outputs:  # a depthwise Conv fused into this 1x1 one: its own row first
            w = node.attrs["_pre_w"]
            b = node.attrs["_pre_b"]
            y = np.shape(outputs[0])
            shape = (y[0], w.shape[0]) + tuple(y[2:])
            rows.append(LayerRow(pre.label(), "+".join(["Conv"] + list(pre.attrs.get("_fused", ()))), shape,
                                 int(w.size) + (0 if b is None else int(b.size)),
                                 int(np.prod(shape)) * int(np.prod(w.shape[1:]))))
        params = sum(int(constants[n].size) for n in node.inputs if n in constants and constants[n].dtype.kind == "f")
        for key in ("_scale", "_shift"):  # a folded batch norm's four vectors
            if key in node.attrs and "BatchNormalization" in node.attrs.get("_fused", ()):
                params += 2 * int(node.attrs[key].size)
        op = "+".join([node.op_type] + list(node.attrs.get("_fused", ())))
        shape = tuple(np.shape(outputs[0])) if outputs else ()
        rows.append(LayerRow(node.label(), op, shape, params, _macs(node, args, outputs)))

    with np.errstate(all="ignore"):
        model.run(None, feeds, _trace=trace)
    return OnnxSummary(rows, shapes)


def run_command(args):
    """``convlayers summary model.onnx [--input N,C,H,W] [--json]`` (called by ``commands.summary``)."""
    import os

    from ..cli import InputError, UsageError
    from ..commands.summary import parse_shape
    from . import load

    if not os.path.isfile(args.model):
        raise InputError(f"{args.model}: no such ONNX file")
    try:
        model = load(args.model)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{args.model}: {exc}") from None
    shapes = None
    if args.input is not None:
        if len(model.inputs) != 1:
            raise UsageError(f"--input: the model has {len(model.inputs)} inputs; its declared shapes are used")
        shapes = {model.inputs[0].name: parse_shape(args.input)}
    try:
        result = summary(model, shapes)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"--input does not fit {args.model}: {exc}") from None
    if args.json:
        print(result.to_json())
    else:
        print(f"{os.path.basename(args.model)} on {result.input_shapes}")
        print(result)
    return 0

"""Run ONNX models on convlayers: ``convlayers.onnx.load(path)(x)``.

Needs the ``onnx`` package for parsing only (the ``onnx`` extra); every node
runs through :mod:`convlayers.functional` (convolutions, pools, norms,
activations) or plain NumPy (elementwise, shape and reduction ops).

* :func:`load` reads a path, bytes or ``onnx.ModelProto``, checks every node
  against :func:`supported_ops` (all unsupported ones are listed at once,
  before any work), then folds constants, folds BatchNormalization and
  Relu/Clip into the convolutions before them, pre-packs weights and plans
  the run (topological order, each intermediate freed after its last use).
* The returned :class:`~convlayers.onnx.model.OnnxModel` is a
  :class:`convlayers.nn.Module`: ``model(x)``, or ``model.run(names, feeds)``
  as ``onnxruntime.InferenceSession.run``.

Examples
--------
>>> import numpy as np
>>> from onnx import TensorProto, helper, numpy_helper
>>> import convlayers.onnx
>>> w = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "w")
>>> graph = helper.make_graph(
...     [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])],
...     "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 4, 4])],
...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=[w])
>>> model = convlayers.onnx.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
>>> model(np.ones((1, 1, 4, 4), np.float32))[0, 0]
array([[4., 6., 6., 4.],
       [6., 9., 9., 6.],
       [6., 9., 9., 6.],
       [4., 6., 6., 4.]], dtype=float32)
>>> [n.op_type for n in model.nodes]            # the Relu became the convolution's epilogue
['Conv']
"""

from __future__ import annotations

from .graph import DEFAULT_DOMAINS, ValueInfo, parse, plan, read_model
from .model import OnnxModel
from .ops import MIN_OPSET, OPS, newest_opset
from .optimize import optimize

__all__ = ["load", "freeze", "FreezeError", "supported_ops", "UnsupportedModelError", "OnnxModel", "ValueInfo"]


class UnsupportedModelError(ValueError):
    """A model with nodes convlayers cannot run; ``.unsupported`` lists ``(op, opset, node name, reason)``."""

    def __init__(self, unsupported):
        self.unsupported = unsupported
        lines = [f"  {op} (opset {opset}) at node {name!r}" + (f": {why}" if why else "")
                 for op, opset, name, why in unsupported]
        super().__init__(f"load: the model has {len(unsupported)} unsupported node(s):\n" + "\n".join(lines))


def supported_ops():
    """The ONNX operators this build runs, as ``{op_type: (first opset, last opset)}`` (default domain).

    Ops whose ``convlayers.functional`` counterpart is missing from this build
    are absent.

    Examples
    --------
    >>> import convlayers.onnx
    >>> convlayers.onnx.supported_ops()["Conv"][0]
    1
    """
    newest = newest_opset()
    return {op: (max(since, MIN_OPSET), newest) for op, (fn, since, check) in sorted(OPS.items())}


def _unsupported(graph):
    found = []
    newest = newest_opset()
    for name in graph.extra.get("non_tensor", ()):
        found.append(("(graph value)", graph.opsets.get("", 0), name, "sequence, map or optional value (tensors only)"))
    for node in graph.nodes:
        opset = node.opset
        if node.domain not in DEFAULT_DOMAINS:
            found.append((f"{node.domain}.{node.op_type}", opset, node.label(), "custom domain"))
            continue
        entry = OPS.get(node.op_type)
        if entry is None:
            found.append((node.op_type, opset, node.label(), ""))
            continue
        lo = max(entry[1], MIN_OPSET)
        if opset < lo or opset > newest:
            found.append((node.op_type, opset, node.label(), f"opsets {lo} to {newest} are supported"))
            continue
        check = entry[2]
        reason = check(node, graph.constants) if check is not None else None
        if reason:
            found.append((node.op_type, opset, node.label(), reason))
    return found


def load(source, *, optimize_level=1, channels_last=None):
    """Load an ONNX model from a path, bytes or an ``onnx.ModelProto``.

    Parameters
    ----------
    source : str, os.PathLike, bytes or onnx.ModelProto
        External weight files (``location`` entries) are read relative to the
        model's directory and must stay inside it.
    optimize_level : int, default 1
        0 runs the graph exactly as written (no folding or fusion).
    channels_last : bool or None, default None
        Run the 2-D convolutions on channels-last arrays (see
        ``functional._conv_channels_last``); None chooses it for every graph
        with a 2-D convolution it has a path for (mobilenet_v2 batch 1: 12 ->
        5 ms, resnet18: 23 -> 14 ms; see the README's ONNX table).  Inputs and
        outputs stay ordinary C-ordered arrays.

    Returns
    -------
    OnnxModel

    Raises
    ------
    UnsupportedModelError (a ValueError)
        Listing every unsupported node (op, opset, node name), before any work.
    ValueError, TypeError
        Malformed protobuf, dangling node inputs, external data outside the
        model's directory, a source of the wrong type.
    """
    model, base_dir = read_model(source)
    graph = parse(model, base_dir)
    bad = _unsupported(graph)
    if bad:
        raise UnsupportedModelError(bad)
    return build(graph, optimize_level=optimize_level, channels_last=channels_last)


def build(graph, *, optimize_level=1, channels_last=None):
    """The load-time work on a parsed :class:`~convlayers.onnx.graph.Graph` (from a file or :func:`freeze`):
    order, rewrite, plan; an :class:`~convlayers.onnx.model.OnnxModel`."""
    order, _ = plan(graph)  # validates references and acyclicity before anything runs
    graph.nodes = optimize(order, graph.constants, [v.name for v in graph.outputs], optimize_level)
    order, last_use = plan(graph)
    used = {n for node in order for n in node.inputs} | {v.name for v in graph.outputs}
    graph.constants = {k: v for k, v in graph.constants.items() if k in used}
    return OnnxModel(graph, order, last_use, channels_last)


from .freeze import FreezeError, freeze  # noqa: E402 -- it builds through build() above

"""Reading an ONNX model: protobuf parsing, tensors (external data confined), nodes and the run plan.

Nothing here computes: :func:`parse` turns a ``ModelProto`` into plain
Python objects (:class:`Node`, :class:`ValueInfo`, initializer arrays), and
:func:`plan` orders the nodes topologically and records, for every value,
the step after which nothing reads it, so that the runner can drop each
intermediate array as soon as it is dead (peak memory of a ResNet-18 is then
a few activations, not all sixty).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Node", "ValueInfo", "Graph", "parse", "read_model", "plan"]

DEFAULT_DOMAINS = ("", "ai.onnx")


def _onnx():
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - the extra is documented
        raise ImportError("convlayers.onnx needs the 'onnx' package for parsing: pip install convlayers[onnx]") \
            from exc
    return onnx


@dataclass
class ValueInfo:
    """A graph input or output: name, shape (ints, dim_param strings or None) and NumPy dtype."""

    name: str
    shape: tuple | None
    dtype: np.dtype | None

    def __repr__(self):
        return f"ValueInfo(name={self.name!r}, shape={self.shape}, dtype={self.dtype})"


@dataclass
class Node:
    """One ONNX node with decoded attributes; ``inputs`` keep ``''`` for omitted optional inputs."""

    op_type: str
    name: str
    domain: str
    inputs: list
    outputs: list
    attrs: dict
    opset: int

    def attr(self, key, default=None):
        return self.attrs.get(key, default)

    def label(self):
        return self.name or f"{self.op_type}->{','.join(self.outputs)}"


@dataclass
class Graph:
    nodes: list
    inputs: list          # ValueInfo of the inputs a caller feeds (initializers excluded)
    outputs: list         # ValueInfo of the graph outputs
    constants: dict       # initializer name -> array
    opsets: dict          # domain -> version
    extra: dict = field(default_factory=dict)


def _dtype(elem_type):
    onnx = _onnx()
    if not elem_type:
        return None
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, TypeError, ValueError):
        return None


def _value_info(vi):
    t = vi.type
    if not t.HasField("tensor_type"):
        return ValueInfo(vi.name, None, None)
    tt = t.tensor_type
    shape = None
    if tt.HasField("shape"):
        dims = []
        for d in tt.shape.dim:
            if d.HasField("dim_value"):
                dims.append(int(d.dim_value))
            elif d.HasField("dim_param"):
                dims.append(d.dim_param)
            else:
                dims.append(None)
        shape = tuple(dims)
    return ValueInfo(vi.name, shape, _dtype(tt.elem_type))


def _confined(base_dir, location, what):
    """The real path of external data ``location``, which must stay inside ``base_dir``."""
    if base_dir is None:
        raise ValueError(f"{what}: external data file {location!r} needs a model loaded from a path "
                         "(bytes and ModelProto have no directory to resolve it against)")
    if os.path.isabs(location) or location.startswith(("/", "\\")) or ":" in location:
        raise ValueError(f"{what}: external data location {location!r} must be a relative path inside the "
                         f"model's directory {base_dir!r}")
    root = os.path.realpath(base_dir)
    path = os.path.realpath(os.path.join(root, location))
    if os.path.commonpath([root, path]) != root:
        raise ValueError(f"{what}: external data location {location!r} resolves outside the model's directory "
                         f"{base_dir!r}")
    if not os.path.isfile(path):
        raise ValueError(f"{what}: external data file {location!r} not found in {base_dir!r}")
    return path


def tensor_to_array(tensor, base_dir=None):
    """An initializer / Constant ``TensorProto`` as an ndarray, reading confined external data."""
    onnx = _onnx()
    from onnx import numpy_helper

    what = f"tensor {tensor.name!r}" if tensor.name else "tensor"
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        info = {e.key: e.value for e in tensor.external_data}
        if "location" not in info:
            raise ValueError(f"{what}: external data without a 'location'")
        path = _confined(base_dir, info["location"], what)
        dtype = _dtype(tensor.data_type)
        if dtype is None or dtype == object:
            raise ValueError(f"{what}: external data of element type {tensor.data_type} is not supported")
        offset, size = int(info.get("offset", 0)), os.path.getsize(path)
        count = int(np.prod(tensor.dims, dtype=np.int64))
        length = int(info.get("length", count * dtype.itemsize))
        if offset < 0 or length != count * dtype.itemsize or offset + length > size:
            raise ValueError(f"{what}: external data ({offset=}, {length=}) does not fit {count} elements of "
                             f"{dtype} within {info['location']!r} ({size} bytes)")
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(length)
        return np.frombuffer(data, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(tuple(tensor.dims))
    try:
        return numpy_helper.to_array(tensor).copy()
    except Exception as exc:  # malformed raw_data sizes and the like
        raise ValueError(f"{what}: cannot decode ({exc})") from None


def _attr_value(a, base_dir):
    onnx = _onnx()
    A = onnx.AttributeProto
    if a.type == A.FLOAT:
        return float(a.f)
    if a.type == A.INT:
        return int(a.i)
    if a.type == A.STRING:
        return a.s.decode("utf-8", "replace")
    if a.type == A.TENSOR:
        return tensor_to_array(a.t, base_dir)
    if a.type == A.FLOATS:
        return [float(v) for v in a.floats]
    if a.type == A.INTS:
        return [int(v) for v in a.ints]
    if a.type == A.STRINGS:
        return [s.decode("utf-8", "replace") for s in a.strings]
    if a.type == A.TENSORS:
        return [tensor_to_array(t, base_dir) for t in a.tensors]
    if a.type == A.GRAPH:
        return a.g  # kept raw: control flow is not supported, and the op check says so
    return None


def read_model(source):
    """``(ModelProto, base_dir)`` from a path, bytes or a ModelProto; ValueError for malformed input."""
    onnx = _onnx()
    if isinstance(source, onnx.ModelProto):
        return source, None
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, base_dir, what = bytes(source), None, "the bytes given"
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise ValueError(f"load: no ONNX file at {path!r}")
        with open(path, "rb") as f:
            data = f.read()
        base_dir, what = os.path.dirname(os.path.abspath(path)), repr(path)
    else:
        raise TypeError(f"load: expected a path, bytes or onnx.ModelProto, got {type(source).__name__}")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as exc:
        raise ValueError(f"load: {what} is not a valid ONNX protobuf ({type(exc).__name__}: {exc})") from None
    if not model.HasField("graph") or (not model.graph.node and not model.graph.output):
        raise ValueError(f"load: {what} is not an ONNX model (no graph with nodes or outputs)")
    return model, base_dir


def parse(model, base_dir=None) -> Graph:
    """Decode ``model`` into a :class:`Graph` (no computation; external data read confined)."""
    opsets = {}
    for imp in model.opset_import:
        opsets[imp.domain or ""] = int(imp.version)
    if "ai.onnx" in opsets:
        opsets.setdefault("", opsets["ai.onnx"])
    if "" not in opsets:
        opsets[""] = 1 if model.ir_version < 3 else _onnx().defs.onnx_opset_version()
    g = model.graph
    constants = {}
    for t in g.initializer:
        constants[t.name] = tensor_to_array(t, base_dir)
    inputs = [_value_info(vi) for vi in g.input if vi.name not in constants]
    outputs = [_value_info(vi) for vi in g.output]
    non_tensor = [vi.name for vi in list(g.input) + list(g.output) if not vi.type.HasField("tensor_type")]
    nodes = []
    for n in g.node:
        domain = n.domain or ""
        opset = opsets.get("" if domain == "ai.onnx" else domain, 0)
        attrs = {}
        for a in n.attribute:
            if a.ref_attr_name:
                raise ValueError(f"load: node {n.name or n.op_type!r} uses a function attribute reference")
            attrs[a.name] = _attr_value(a, base_dir)
        nodes.append(Node(n.op_type, n.name, domain, list(n.input), list(n.output), attrs, opset))
    return Graph(nodes, inputs, outputs, constants, opsets, {"non_tensor": non_tensor})


def plan(graph: Graph):
    """Order ``graph.nodes`` topologically; return ``(order, last_use)``.

    ``last_use[name]`` is the index in ``order`` of the last node reading that
    value; graph outputs are never freed.  ValueError for a node reading a
    value nothing produces, or a cycle.
    """
    available = set(graph.constants) | {vi.name for vi in graph.inputs} | {""}
    producers = {}
    for i, node in enumerate(graph.nodes):
        for out in node.outputs:
            if out:
                producers[out] = i
    for node in graph.nodes:
        for name in node.inputs:
            if name not in available and name not in producers:
                raise ValueError(f"load: node {node.label()!r} ({node.op_type}) reads {name!r}, which is neither "
                                 "a graph input, an initializer nor any node's output")
    for vi in graph.outputs:
        if vi.name not in available and vi.name not in producers:
            raise ValueError(f"load: graph output {vi.name!r} is produced by no node")
    # Kahn's algorithm, keeping the file's order among ready nodes (exporters write a sensible one).
    waiting = []
    for node in graph.nodes:
        waiting.append({name for name in node.inputs if name not in available})
    consumers = {}
    for i, deps in enumerate(waiting):
        for name in deps:
            consumers.setdefault(name, []).append(i)
    import heapq
    ready = [i for i, deps in enumerate(waiting) if not deps]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(graph.nodes[i])
        for out in graph.nodes[i].outputs:
            for j in consumers.get(out, ()):
                waiting[j].discard(out)
                if not waiting[j]:
                    heapq.heappush(ready, j)
    if len(order) != len(graph.nodes):
        stuck = [graph.nodes[i].label() for i, deps in enumerate(waiting) if deps][:5]
        raise ValueError(f"load: the graph has a cycle (nodes never ready: {stuck})")
    keep = {vi.name for vi in graph.outputs}
    last_use = {}
    for step, node in enumerate(order):
        for name in node.inputs:
            if name and name not in keep:
                last_use[name] = step
    return order, last_use

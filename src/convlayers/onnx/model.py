"""``OnnxModel``: a loaded ONNX graph as a :class:`convlayers.nn.Module` that runs like an InferenceSession."""

from __future__ import annotations

import numpy as np

from .._kernels import busy
from ..functional._conv_channels_last import from_channels_last, is_channels_last, to_channels_last
from ..nn.module import Module
from . import _buffers, _tape
from .ops import OPS
from .ops.conv import reads_as_nchw

__all__ = ["OnnxModel"]

# Ops whose output depends only on the *shape* of their input: with every other input constant, their whole
# downstream chain (Gather, Concat, Reshape's target ...) is computed once per input shape and cached.
_SHAPE_ONLY = {"Shape", "Size"}
# Ops that take channels-last arrays as they are (convolutions keep the layout, NumPy's ufuncs follow their
# inputs'); every other op gets its channels-last inputs as ordinary C-ordered arrays, as without the mode.
_CHANNELS_LAST_SAFE = {"Conv", "MaxPool", "GlobalAveragePool", "Add", "Sub", "Mul", "Div", "Clip", "Relu",
                       "Identity"}


_SEEN = object()  # a shape's tape: run once, not captured yet


def _channels_last_conv(node, constants):
    """Whether a Conv node has a channels-last path: a 4-D constant weight, dense or depthwise."""
    w = constants.get(node.inputs[1]) if node.op_type == "Conv" and len(node.inputs) > 1 else None
    if w is None or w.ndim != 4:
        return False
    group = int(node.attr("group", 1))
    return group == 1 or (w.shape[1] == 1 and w.shape[0] == group)


def _reads_nchw(node, constants):
    """Whether a channels-last Conv node's plan takes a C-ordered NCHW input as it is: a dense k×k float32
    convolution, whose zero-padding copy moves the input channels-last anyway (one copy, not two: the 3→32
    stride-2 stem of mobilenet_v2 0.245 -> 0.203 ms at batch 1, resnet18's 7×7 stem at batch 8 7.48 -> 7.01)."""
    w = constants[node.inputs[1]]
    return int(node.attr("group", 1)) == 1 and w.shape[2] * w.shape[3] > 1 and w.dtype == np.float32


def _has_channels_last_conv(order, constants):
    return any(_channels_last_conv(node, constants) for node in order)


class OnnxModel(Module):
    """A loaded ONNX graph.  Build one with :func:`convlayers.onnx.load`.

    ``model(x)`` runs a one-input graph on an array and returns the output
    (a tuple for several outputs); ``model.run(names, feeds)`` returns a list,
    as ``onnxruntime.InferenceSession.run``.

    Examples
    --------
    >>> import numpy as np
    >>> from onnx import TensorProto, helper
    >>> import convlayers.onnx
    >>> g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
    ...                       [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2])],
    ...                       [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2])])
    >>> m = convlayers.onnx.load(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    >>> m(np.array([[-1.0, 2.0]], np.float32))
    array([[0., 2.]], dtype=float32)
    >>> m.inputs
    [ValueInfo(name='x', shape=('n', 2), dtype=float32)]
    """

    def __init__(self, graph, order, last_use, channels_last=None):
        super().__init__()
        self.training = False
        object.__setattr__(self, "graph", graph)
        object.__setattr__(self, "_order", order)
        object.__setattr__(self, "_last_use", last_use)
        object.__setattr__(self, "_static", self._static_steps(order, graph.constants))
        object.__setattr__(self, "_shape_cache", {})
        object.__setattr__(self, "_tapes", {})  # per input shape: _SEEN (run once), a Tape, or False (none)
        if channels_last is None:
            channels_last = _has_channels_last_conv(order, graph.constants)
        object.__setattr__(self, "channels_last", bool(channels_last))
        object.__setattr__(self, "_to_channels_last", frozenset(
            step for step, node in enumerate(order) if _channels_last_conv(node, graph.constants)))
        for step in self._to_channels_last if self.channels_last else ():
            if _reads_nchw(order[step], graph.constants):
                order[step].attrs["_reads_nchw"] = True
        object.__setattr__(self, "_plan", self._run_plan())

    # -- metadata ---------------------------------------------------------------

    @property
    def inputs(self):
        """The graph inputs a caller feeds: name, shape (symbolic dims kept as strings), dtype."""
        return list(self.graph.inputs)

    @property
    def outputs(self):
        """The graph outputs: name, shape, dtype."""
        return list(self.graph.outputs)

    @property
    def nodes(self):
        """The nodes in run order, after the load-time rewrites."""
        return list(self._order)

    def extra_repr(self):
        ins = ", ".join(f"{v.name}{list(v.shape) if v.shape is not None else ''}" for v in self.graph.inputs)
        outs = ", ".join(v.name for v in self.graph.outputs)
        return f"inputs=[{ins}], outputs=[{outs}], nodes={len(self._order)}"

    def train(self, mode=True):
        if mode:
            raise ValueError("OnnxModel runs inference only; train(True) is not supported")
        return self

    # -- shape-only subgraph -----------------------------------------------------

    @staticmethod
    def _static_steps(order, constants):
        static_values = set(constants)
        steps = set()
        for step, node in enumerate(order):
            if node.op_type in _SHAPE_ONLY or (node.inputs and all(n == "" or n in static_values
                                                                  for n in node.inputs)):
                steps.add(step)
                static_values.update(o for o in node.outputs if o)
        return frozenset(steps)

    # -- running -----------------------------------------------------------------

    def _check_feeds(self, feeds):
        if not isinstance(feeds, dict):
            raise TypeError(f"run: feeds must be a dict {{input name: array}}, got {type(feeds).__name__}")
        known = {v.name: v for v in self.graph.inputs}
        unknown = [k for k in feeds if k not in known]
        if unknown:
            raise ValueError(f"run: unknown input name(s) {unknown}; the model's inputs are {list(known)}")
        missing = [k for k in known if k not in feeds]
        if missing:
            raise ValueError(f"run: missing input(s) {missing}; the model's inputs are {list(known)}")
        dims = {}
        arrays = {}
        for name, value in feeds.items():
            if hasattr(value, "data") and not isinstance(value, np.ndarray) and isinstance(
                    getattr(value, "data"), np.ndarray):
                value = value.data  # a convlayers Tensor
            if isinstance(value, np.generic):  # a NumPy scalar: a 0-d array
                value = np.asarray(value)
            if not isinstance(value, np.ndarray):
                raise TypeError(f"run: input {name!r} must be a numpy.ndarray, got {type(value).__name__}")
            info = known[name]
            if info.dtype is not None and value.dtype != info.dtype:
                raise TypeError(f"run: input {name!r} must have dtype {info.dtype}, got {value.dtype}")
            if info.shape is not None:
                if value.ndim != len(info.shape):
                    raise ValueError(f"run: input {name!r} must be {len(info.shape)}-D with shape "
                                     f"{_fmt(info.shape)}, got shape {value.shape}")
                for axis, (want, got) in enumerate(zip(info.shape, value.shape)):
                    if isinstance(want, int) and want != got:
                        raise ValueError(f"run: input {name!r} must have shape {_fmt(info.shape)}, got "
                                         f"{value.shape} (axis {axis}: expected {want}, got {got})")
                    if isinstance(want, str):
                        if dims.setdefault(want, got) != got:
                            raise ValueError(f"run: dimension {want!r} is {dims[want]} in one input and {got} in "
                                             f"input {name!r}")
            arrays[name] = value
        return arrays

    def run(self, output_names, feeds, *, _trace=None):
        """Run the graph; return the requested outputs (all for None) as a list of arrays.

        Parameters
        ----------
        output_names : list of str or None
        feeds : dict of str to ndarray
            Every graph input, with its declared dtype and rank (fixed dims must match).
        """
        names = [v.name for v in self.graph.outputs]
        if output_names is None:
            output_names = names
        else:
            bad = [n for n in output_names if n not in names]
            if bad:
                raise ValueError(f"run: unknown output name(s) {bad}; the model's outputs are {names}")
        arrays = self._check_feeds(feeds)
        key = tuple((k, v.shape, v.dtype.str) for k, v in sorted(arrays.items()))
        if _trace is None and self.channels_last:
            outs = self._taped(key, arrays)
            if outs is not None:
                return [outs[n] for n in output_names]
        env, fresh = self._execute(arrays, key, _trace)
        out = []
        for n in output_names:
            v = env[n]
            if is_channels_last(v):
                v = from_channels_last(v)
            if n in self.graph.constants or n in fresh or n in arrays:
                v = np.array(v, copy=True)
            out.append(v)
        return out

    def _taped(self, key, arrays):
        """The outputs by this input shape's tape (:mod:`._tape`), or None to run the graph.

        The first run of a shape runs the graph; the second captures its tape
        (None when the run cannot be taped: it then runs the graph, always).
        """
        tape = self._tapes.get(key)
        if tape is None:
            if len(self._tapes) > 16:
                self._tapes.clear()
            self._tapes[key] = _SEEN
            return None
        if tape is _SEEN:
            self._tapes[key] = False  # a run of this shape on another thread meanwhile runs the graph

            def execute(feeds):
                env, _ = self._execute(feeds, key, None)
                return [env[v.name] for v in self.graph.outputs]

            try:
                with np.errstate(all="ignore"):  # the captures run on random inputs: their warnings are not the caller's
                    tape = _tape.capture(execute, arrays)
            except Exception:  # noqa: BLE001  (a graph that fails on random inputs, e.g. data-dependent shapes:
                tape = None    # not taped; the caller's own input runs the graph below)
            self._tapes[key] = tape or False
            if tape:
                _buffers.pool().free.clear()  # this thread's runs of the shape now replay into the tape's own
        if not tape:
            return None
        outs = tape.run(arrays)
        return None if outs is None else dict(zip((v.name for v in self.graph.outputs), outs))

    def _execute(self, arrays, key, _trace):
        """Run the graph's steps on the checked feeds; (the environment of values, the names computed
        fresh for the shape cache)."""
        env = dict(self.graph.constants)
        env.update(arrays)
        cached = self._shape_cache.get(key)
        record = cached is None and bool(self._static)
        if _trace is not None:
            cached, record = None, False
        if cached:
            env.update(cached)
        fresh = {}
        buffers = _buffers.pool() if self.channels_last else None
        if buffers is not None:
            _buffers.activate(buffers)
        try:
            # one fork-gate mark for the whole run: the kernels inside then skip the gate's lock (~3 µs a call)
            with busy():
                self._steps(env, cached, record, fresh, buffers, _trace)
        finally:
            if buffers is not None:
                buffers.end()
                _buffers.activate(None)
        if record:
            if len(self._shape_cache) > 16:
                self._shape_cache.clear()
            self._shape_cache[key] = fresh
        return env, fresh

    def _run_plan(self):
        """Per step, what :meth:`_steps` needs, settled once: the op, its inputs, the layout rule for them and
        the values whose last reader it is (Python work per node 4 -> ~2 µs: mobilenet_v2's 34 nodes).

        Layout rule: 1 a convolution's input made channels-last, 2 channels-last inputs made C-ordered, 0 as
        they are.  Released: not constants, not graph outputs, not values of the shape-only subgraph (those
        are cached per input shape)."""
        outputs = {v.name for v in self.graph.outputs}
        static_values = {o for step in self._static for o in self._order[step].outputs if o}
        keep = set(self.graph.constants) | outputs | static_values
        steps = []
        for step, node in enumerate(self._order):
            if not self.channels_last:
                layout = 0
            elif step in self._to_channels_last:
                layout = 1
            else:
                layout = 0 if node.op_type in _CHANNELS_LAST_SAFE else 2
            release = tuple(n for n in dict.fromkeys(node.inputs)
                            if n and self._last_use.get(n) == step and n not in keep)
            steps.append((step, node, node.op_type, tuple(node.inputs), layout, release, step in self._static))
        return steps

    def _steps(self, env, cached, record, fresh, buffers, _trace):
        skip_static = cached is not None
        for step, node, op, inputs, layout, release, static in self._plan:
            if static and skip_static:
                continue
            args = [env[n] if n else None for n in inputs]
            while args and args[-1] is None:
                args.pop()
            if layout:
                args = self._layout_args(layout, node, args)
            try:
                result = OPS[op][0](node, *args)  # looked up per run: a caller may wrap an op (tracing)
            except (ValueError, TypeError) as exc:
                if node.label() in str(exc):
                    raise
                raise type(exc)(f"{node.op_type} node {node.label()!r}: {exc}") from exc
            except Exception as exc:
                raise RuntimeError(f"{node.op_type} node {node.label()!r} failed: {type(exc).__name__}: {exc}") \
                    from exc
            if not isinstance(result, tuple):
                result = (result,)
            if _trace is not None:
                _trace(node, args, result)
            for name, value in zip(node.outputs, result):
                if name:
                    env[name] = value
                    if record and static:
                        fresh[name] = value
            del args, result
            for name in release:
                if buffers is not None:
                    buffers.release(env.pop(name, None))
                else:
                    env.pop(name, None)

    def _layout_args(self, layout, node, args):
        """Channels-last mode: a convolution's input made channels-last (``layout`` 1), other ops' inputs
        C-ordered (2)."""
        if layout == 1:
            x = args[0]
            if isinstance(x, np.ndarray) and x.ndim == 4 and x.dtype.kind == "f" and x.shape[1] > 1 \
                    and x.shape[2] * x.shape[3] > 1 and not is_channels_last(x) and not reads_as_nchw(node, x):
                args = [to_channels_last(x)] + args[1:]
            return args
        return [from_channels_last(a) if is_channels_last(a) else a for a in args]

    def forward(self, *args):
        if len(args) != len(self.graph.inputs):
            raise ValueError(f"expected {len(self.graph.inputs)} input array(s) "
                             f"({[v.name for v in self.graph.inputs]}), got {len(args)}; "
                             "use run(None, {name: array}) to pass them by name")
        outs = self.run(None, {v.name: a for v, a in zip(self.graph.inputs, args)})
        return outs[0] if len(outs) == 1 else tuple(outs)

    def __call__(self, *args):
        return self.forward(*args)


def _fmt(shape):
    return "(" + ", ".join(str(d) if d is not None else "?" for d in shape) + ")"

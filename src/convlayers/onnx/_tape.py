"""A model run kept as the kernel calls it made, and replayed without the graph's Python.

Why: in a mobilenet_v2 batch-1 run on the ONNX runner (2 threads, 2-core
Intel Xeon VM) 0.54 ms of 4.55 passed outside the kernels: the runner, the
ops and the plans, each node's Python running on caches the kernel before it
had just filled with weights (Flatten: 47 µs as the run reaches it, 5 µs
called again at once).  Replaying the 21 kernel calls of that run alone took
0.86 of the run.  So once a model has run twice with an input shape, a third
run is captured: every kernel call with its arguments (``_kernels.capturing``),
and what each argument is —

* a view of a graph input: rebuilt on each replay over the new input;
* a view of memory some kernel of the run wrote (an activation, a scratch
  buffer): a *slot*, the same view of a buffer of this thread's own;
* anything else: a constant (weights, packed panels, epilogue vectors), kept.

Two captures are made, from two random inputs, and the tape is kept only if
they agree call by call (same kernels, same constants by content, the same
slots in the same places, the same return values), and if a replay on slots
poisoned with NaN, run twice, gives the second capture's outputs bit for bit.
So a run that moves data through NumPy rather than kernels (an input a
kernel reads that no kernel wrote and that differs between the captures), or
changes a kernel's output in place, or depends on a buffer's old contents, is
not taped: it runs as before.  A replay whose kernel returns something else
than at capture (a NaN count, which the plans repair in Python) stops and the
run goes the ordinary way.

Each thread replays into its own slots (``threading.local``), so threads
share a tape but no memory.
"""

from __future__ import annotations

import threading

import numpy as np
from numpy.lib.array_utils import byte_bounds

from .._kernels import KernelPair, busy, capturing, unguarded
from .._kernels.aligned import aligned_empty
from ..functional._conv_channels_last import from_channels_last, is_channels_last


class _Reject(Exception):
    """The run cannot be taped (the reason is the message)."""


def _owner(a):
    """(address, bytes) of the memory block ``a`` is a view of."""
    r = a
    while isinstance(r.base, np.ndarray):
        r = r.base
    if r.base is not None:
        try:
            r = np.frombuffer(r.base, np.uint8)  # the raw bytes an aligned buffer is a view of
        except (TypeError, ValueError):
            pass
    lo, hi = byte_bounds(r)
    return lo, hi - lo


def _address(a):
    return a.__array_interface__["data"][0]


class _Recorder:
    """The capture hook: each call's kernel, arguments and result, and the blocks of memory calls wrote."""

    def __init__(self):
        self.calls = []
        self.written = set()

    def __call__(self, fn, args):
        arrays = [a for a in args if isinstance(a, np.ndarray) and a.size]
        before = [a.tobytes() for a in arrays]
        result = fn(*args)
        for a, b in zip(arrays, before):
            if a.tobytes() != b:
                self.written.add(_owner(a)[0])
        self.calls.append((fn, args, result))
        return result


def _plain_value(v):
    if v is None or isinstance(v, (bool, int, float, np.generic)):
        return v
    raise _Reject(f"an argument of type {type(v).__name__}")


class _Describer:
    """Turns one capture's arguments into descriptions, numbering slots in order of first use.

    A slot's views are placed by their offset from the lowest byte any view
    of it reaches (where the block itself starts differs from buffer to buffer
    with its alignment); the slot's size is the span they cover.
    """

    def __init__(self, recorder, feeds, outputs):
        self.written = recorder.written
        self.feeds = {_owner(v)[0]: (name, _address(v)) for name, v in feeds.items()}
        self.extent = {}  # owner address -> lowest and highest byte a view of it reaches
        for a in [a for _, args, _ in recorder.calls for a in args] + list(outputs):
            if isinstance(a, np.ndarray) and a.size:
                key = _owner(a)[0]
                if key in self.written:
                    lo, hi = byte_bounds(a)
                    old = self.extent.get(key, (lo, hi))
                    self.extent[key] = (min(lo, old[0]), max(hi, old[1]))
        self.slots = {}  # owner address -> (index, bytes)

    def __call__(self, a):
        if not isinstance(a, np.ndarray):
            return ("value", _plain_value(a))
        key = _owner(a)[0]
        geometry = (a.shape, a.strides, a.dtype.str)
        if key in self.feeds:
            if key in self.written:
                raise _Reject("a kernel writes into a graph input")
            name, base = self.feeds[key]
            return ("input", name, _address(a) - base, geometry)
        if key in self.written:
            lo, hi = self.extent.get(key, (_address(a), _address(a)))
            index = self.slots.setdefault(key, (len(self.slots), max(hi - lo, 0)))[0]
            return ("slot", index, _address(a) - lo, geometry)
        return ("const", a)


def _same(d1, d2):
    """Whether two captures' descriptions of an argument agree."""
    if d1[0] != d2[0]:
        return False
    if d1[0] == "const":
        a, b = d1[1], d2[1]
        return a is b or (a.shape == b.shape and a.strides == b.strides and a.dtype == b.dtype
                          and a.tobytes() == b.tobytes())
    if d1[0] == "value":
        a, b = d1[1], d2[1]
        return type(a) is type(b) and (a == b or (a != a and b != b))
    return d1 == d2


def _view(buf, offset, geometry):
    shape, strides, dtype = geometry
    return np.ndarray(shape, np.dtype(dtype), buffer=buf, offset=offset, strides=strides)


def _finish(v):
    """A graph output as the run returns it: NCHW, the caller's own copy."""
    return from_channels_last(v) if is_channels_last(v) else np.array(v, copy=True)


class Tape:
    """The kernel calls of one input shape's run, replayed per thread into the thread's own buffers."""

    def __init__(self, calls, slot_sizes, outputs, feed_names):
        self._calls = calls  # (kernel, argument descriptions, result)
        self._slot_sizes = slot_sizes
        self._outputs = outputs  # slot descriptions of the graph outputs
        self._feed_names = feed_names
        self._local = threading.local()

    @property
    def calls(self):
        """How many kernel calls a replay makes."""
        return len(self._calls)

    def _bind(self, poison=False):
        bound = getattr(self._local, "bound", None)
        if bound is None or poison:
            bufs = [aligned_empty(size, np.uint8) for size in self._slot_sizes]
            if poison:
                for b in bufs:
                    b.fill(0xFF)  # NaN in every float lane: a replay reading a slot before writing it shows
            steps = []
            for fn, descs, result in self._calls:
                args, inputs = [], []
                for i, d in enumerate(descs):
                    if d[0] == "slot":
                        args.append(_view(bufs[d[1]], d[2], d[3]))
                    elif d[0] == "input":
                        args.append(None)
                        inputs.append((i, d[1], d[2], d[3]))
                    else:
                        args.append(d[1])
                direct = fn.parallel if isinstance(fn, KernelPair) else fn
                steps.append((fn, direct, args if inputs else tuple(args), tuple(inputs), result))
            outs = [_view(bufs[d[1]], d[2], d[3]) for d in self._outputs]
            bound = self._local.bound = (steps, outs)
        return bound

    def run(self, feeds, _poison=False):
        """The graph outputs for ``feeds`` (name → array of the captured shape), or None when a kernel
        returned something else than at capture (the caller then runs the graph)."""
        steps, outs = self._bind(_poison)
        plain = {}
        for name in self._feed_names:
            v = feeds[name]
            # the captured views are of a C-ordered, writeable array (a read-only one is another numba type)
            if not (v.flags.c_contiguous and v.flags.writeable and v.flags.aligned):
                v = np.array(v, order="C")
            plain[name] = v
        with busy():
            # inside one fork-gate mark, on a thread-safe layer, the parallel builds are called as they are
            # (KernelPair's own checks: ~1 µs a call)
            direct = unguarded()
            for fn, build, args, inputs, result in steps:
                if inputs:
                    args = list(args)
                    for i, name, offset, geometry in inputs:
                        args[i] = _view(plain[name], offset, geometry)
                if (build(*args) if direct else fn(*args)) != result:
                    return None
        return [_finish(v) for v in outs]


def _record(execute, feeds):
    recorder = _Recorder()
    with capturing(recorder):
        values = execute(feeds)
    return recorder, values


def capture(execute, feeds):
    """A :class:`Tape` of ``execute(feeds) -> graph output values`` for inputs shaped as ``feeds``, or None.

    ``execute`` runs the graph once on a dict of inputs and returns its raw
    output values (before the copy a run hands out).  It is called twice,
    on random float inputs of the feeds' shapes and dtypes.
    """
    rng = np.random.default_rng(20261203)
    if any(v.dtype.kind != "f" for v in feeds.values()):
        return None
    runs = []
    for _ in range(2):
        sample = {k: rng.standard_normal(v.shape).astype(v.dtype) for k, v in feeds.items()}
        recorder, values = _record(execute, sample)
        runs.append((sample, recorder, [_finish(v) if isinstance(v, np.ndarray) else v for v in values],
                     values))
    try:
        tape = _build(runs)
        sample, _, expected, _ = runs[1]
        for poison in (True, False):  # fresh NaN-filled slots, then the same slots again
            got = tape.run(sample, _poison=poison)
            if got is None or any(g.dtype != e.dtype or g.shape != e.shape or g.tobytes() != e.tobytes()
                                  for g, e in zip(got, expected)):
                raise _Reject("the replay's outputs differ from the run's")
    except _Reject:
        return None
    return tape


def _build(runs):
    (feeds_a, rec_a, _, values_a), (feeds_b, rec_b, _, values_b) = runs
    if len(rec_a.calls) != len(rec_b.calls) or not rec_a.calls:
        raise _Reject("the captures made different calls")
    describe_a = _Describer(rec_a, feeds_a, [v for v in values_a if isinstance(v, np.ndarray)])
    describe_b = _Describer(rec_b, feeds_b, [v for v in values_b if isinstance(v, np.ndarray)])
    calls = []
    for (fn, args, result), (fn_b, args_b, result_b) in zip(rec_a.calls, rec_b.calls):
        if fn is not fn_b or len(args) != len(args_b) or type(result) is not type(result_b) \
                or result != result_b or not (result is None or isinstance(result, (int, np.integer))):
            raise _Reject("the captures made different calls")
        descs = tuple(describe_a(a) for a in args)
        if not all(_same(d, describe_b(b)) for d, b in zip(descs, args_b)):
            raise _Reject("an argument differs between the captures")
        calls.append((fn, descs, result))
    outputs = []
    for a, b in zip(values_a, values_b):
        if not isinstance(a, np.ndarray) or not isinstance(b, np.ndarray):
            raise _Reject("a graph output is not an array")
        da, db = describe_a(a), describe_b(b)
        if da[0] != "slot" or da != db:
            raise _Reject("a graph output is not written by the run's kernels")
        outputs.append(da)
    sizes = [size for _, size in sorted(describe_a.slots.values())]
    if sizes != [size for _, size in sorted(describe_b.slots.values())]:
        raise _Reject("the captures used different buffers")
    return Tape(calls, sizes, outputs, tuple(feeds_a))

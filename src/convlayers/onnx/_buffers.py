"""Reused activation buffers for :class:`~convlayers.onnx.model.OnnxModel` runs.

Why: a fresh multi-megabyte ``np.empty`` comes back from the kernel as
untouched pages, and on this project's VM (Firecracker, kdamond running)
first-touching them costs more than the layer: mobilenet_v2 batch 8's
16→96 1×1 at 112×112 (a 38.5 MB output, above glibc's 32 MB mmap ceiling, so
mapped afresh every call) took 7.5–38 ms in a run against 2.2 ms with its
output memory already touched.  So each thread keeps the buffers its runs
allocated: when an activation is used for the last time its buffer goes back
to the thread's free list and the next layer asking for that shape gets it.

A buffer is reused only when nothing else can see it: the plan's own
references are the only ones left (``sys.getrefcount``), so a live view of
it (a Reshape's output, a caller's trace) keeps it out of the free list.
Graph outputs are never handed back (they leave the run as copies or as the
caller's own arrays).
"""

from __future__ import annotations

import sys
import threading

import numpy as np

from .._kernels.aligned import aligned_empty

_local = threading.local()

# At most this many bytes of free buffers are kept per thread (the rest are left to the garbage collector).
MAX_FREE_BYTES = 1 << 30


class Pool:
    """One thread's free buffers (kept between runs) and this run's allocations (``begin``/``end``)."""

    def __init__(self):
        self.free = {}
        self.free_bytes = 0
        self.owned = {}

    def alloc(self, shape, dtype):
        key = (tuple(shape), np.dtype(dtype).str)
        stack = self.free.get(key)
        if stack:
            buf = stack.pop()
            self.free_bytes -= buf.nbytes
        else:
            buf = aligned_empty(shape, dtype)  # a view of the raw bytes it starts a cache line in
        self.owned[id(buf.base)] = buf
        return buf

    def release(self, value):
        """``value`` will not be used again by the run: take its buffer back if nothing else refers to it."""
        if not isinstance(value, np.ndarray) or value.base is None:
            return
        raw = value.base  # every view of a pool buffer, the buffer included, has its raw bytes as base
        buf = self.owned.get(id(raw))
        if buf is None or buf.base is not raw:
            return
        # The caller passes the value it just took out of the run's environment, so nothing else may hold
        # it: ``value`` and getrefcount's argument.  The buffer: self.owned, ``buf``, the argument (and
        # ``value`` when it is the buffer).  The raw bytes: the buffer's base, ``raw``, the argument (and
        # the value's base when it is a view) -- any other live view (a Reshape's output, a caller's trace)
        # is one more.
        is_buf = value is buf
        if not is_buf and sys.getrefcount(value) > 2:
            return
        if sys.getrefcount(buf) > (4 if is_buf else 3) or sys.getrefcount(raw) > (3 if is_buf else 4):
            return
        if self.free_bytes + buf.nbytes > MAX_FREE_BYTES:
            return
        del self.owned[id(raw)]
        self.free.setdefault((buf.shape, buf.dtype.str), []).append(buf)
        self.free_bytes += buf.nbytes

    def end(self):
        self.owned.clear()  # what is still owned left the run (an output, a caller's trace): not reused


def pool():
    """This thread's pool."""
    p = getattr(_local, "pool", None)
    if p is None:
        p = _local.pool = Pool()
    return p


def current_alloc():
    """The allocator of the run in progress on this thread (``np.empty`` outside a run)."""
    p = getattr(_local, "active", None)
    return np.empty if p is None else p.alloc


def activate(p):
    _local.active = p

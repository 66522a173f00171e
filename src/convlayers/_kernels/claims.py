"""Work claimed at run time inside one parallel launch: contiguous runs per thread, the rest stolen.

Why: numba splits a ``prange`` statically, one equal run of iterations per
thread, and on the tbb layer each launch builds a fresh task arena that the
other threads join a few microseconds late (or, in ~14% of a tight loop's
launches, not at all: the calling thread then runs both halves).  Timed
inside a 64->384 1×1 product at 14×14 (2 threads, 2-core Intel Xeon VM):
the caller's half started 4.4 µs after the call, the worker's 6.8 µs
(median; 26.6 µs at the 90th percentile), each half taking 25 µs.  So a
kernel that claims its items here instead runs ``prange(threads)`` tasks,
each taking items from the front of its own contiguous run and, when that
is empty, from the backs of the others: a thread that arrives late finds
less left, none waits for a thread that never came.  Claiming item by item
from one shared counter lost instead (24->144 @56: 94 -> 236-320 µs):
neighbouring items then go to different threads, which write neighbouring
output columns, sharing cache lines.

Each run is one int64 word, ``front | back << 32``, changed only by
compare-and-swap, so an owner taking its front and a thief taking the back
never take the same item.  The words sit a cache line apart.

Used by the fused inverted residual block (``inverted_residual``).  For a
single 1×1 product (``gemm.gemm_epilogue``) the claimed runs measured level
with the static split over ten mobilenet_v2 shapes, so the plain kernels
keep their ``prange``.
"""

from __future__ import annotations

import numpy as np
from llvmlite import binding as _llvm_binding
from llvmlite import ir
from numba.core import cgutils
from numba import types
from numba.extending import intrinsic

from . import njit

_LOW = (1 << 32) - 1
_STRIDE = 8  # int64 words per run: one cache line each


@intrinsic
def _cas(typingctx, words, i, expected, new):
    """Atomically ``words[i] = new if words[i] == expected``; the value found."""
    sig = types.int64(words, types.int64, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        arr = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = builder.gep(arr.data, [args[1]])
        pair = builder.cmpxchg(ptr, args[2], args[3], "acq_rel", "monotonic")
        return builder.extract_value(pair, 0)

    return sig, codegen


@njit(cache=True, inline="always")
def runs(items, threads):
    """The claim state for ``items`` items over ``threads`` runs (thread ``t`` starts with the ``t``-th run)."""
    state = np.empty(threads * _STRIDE, np.int64)
    for r in range(threads):
        state[r * _STRIDE] = (items * r // threads) | ((items * (r + 1) // threads) << 32)
    return state


@njit(cache=True, inline="always")
def _take(state, word, front):
    s = state[word]
    while True:
        f = s & _LOW
        b = s >> 32
        if f >= b:
            return -1
        old = _cas(state, word, s, s + 1 if front else s - (1 << 32))
        if old == s:
            return f if front else b - 1
        s = old


@njit(cache=True, inline="always")
def claim(state, t, threads, cursor):
    """The next item for task ``t`` and the new cursor, or (-1, cursor) when none is left.

    ``cursor`` starts at 0 (the task's own run, taken from its front); past
    it, the other runs in turn, taken from their backs.
    """
    while cursor < threads:
        i = _take(state, ((t + cursor) % threads) * _STRIDE, cursor == 0)
        if i >= 0:
            return i, cursor
        cursor += 1
    return -1, cursor


# ---- items that wait for earlier ones ---------------------------------------------------------------------
#
# A fused chain of layers inside one launch (``inverted_residual``): an item of a later layer waits until the
# items it reads are marked done.  Safe only when those are already claimed by running tasks (a task must
# never wait for work nobody holds); the kernel arranges that.

_PAUSE = _llvm_binding.get_process_triple().startswith(("x86_64", "i686", "i386"))


@intrinsic
def mark_done(typingctx, flags, i):
    """Atomically ``flags[i] += 1`` with release order: what this thread wrote before is seen by a waiter."""
    sig = types.void(flags, types.int64)

    def codegen(context, builder, signature, args):
        arr = context.make_array(signature.args[0])(context, builder, args[0])
        builder.atomic_rmw("add", builder.gep(arr.data, [args[1]]), ir.Constant(ir.IntType(64), 1), "release")
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def wait_done(typingctx, flags, i, count):
    """Spin until ``flags[i] >= count`` (acquire order: the marking thread's writes are then seen)."""
    sig = types.void(flags, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        arr = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = builder.gep(arr.data, [args[1]])
        head = builder.append_basic_block("wait_head")
        body = builder.append_basic_block("wait_body")
        done = builder.append_basic_block("wait_done")
        builder.branch(head)
        builder.position_at_end(head)
        value = builder.load_atomic(ptr, "acquire", 8)
        builder.cbranch(builder.icmp_signed(">=", value, args[2]), done, body)
        builder.position_at_end(body)
        if _PAUSE:  # tells the core this is a spin (frees the pipeline, no memory-order mis-speculation)
            pause = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                   "llvm.x86.sse2.pause")
            builder.call(pause, [])
        builder.branch(head)
        builder.position_at_end(done)
        return context.get_dummy_value()

    return sig, codegen

"""Run independent tiles of a BLAS-heavy op on several Python threads, each with single-threaded BLAS.

Why not let BLAS use the cores?  An im2col convolution alternates unrolling
(numba) with matrix products (OpenBLAS).  After each product OpenBLAS's idle
workers keep spinning for a while, and the unrolling that follows runs 3–5×
slower beside them (measured on 2 cores: 4.5 ms of unrolling for an
8×64×56×56 3×3 convolution, against 1.2 ms without the spinning workers).
Giving each core a whole tile instead — unroll it, then multiply it with a
one-thread BLAS call, all on the same thread with the GIL released — keeps
every core busy with no pool spinning beside it, and the tile stays in that
core's cache between the two steps (the same convolution: 6.1 ms against 10 ms).

Every call here is marked busy for the fork gate (``convlayers._kernels.busy``):
a ``fork()`` waits until no thread is inside one, because OpenBLAS's pre-fork
handler hung the parent when another thread was inside a product (measured:
a conv2d thread plus a ``multiprocessing`` fork, stuck in ``fork()`` for the
whole 150 s timeout, 1 of 1 runs).

BLAS is set to one thread only while such a call runs, through threadpoolctl
(an optional dependency: without it, callers keep to the calling thread and
BLAS's own threads).  The limit is process-wide, so another thread's NumPy
products run on one thread meanwhile too.  Concurrent calls share one limit:
the first one in sets it, the last one out restores what the user had.  The
pool follows ``numba.get_num_threads()``; a forked child starts its own.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numba
import numpy as np

from .._kernels import busy, covered
from .._kernels.aligned import aligned_empty

_lock = threading.Lock()
_inside = threading.local()
_state = {"users": 0, "limit": None, "pool": None, "pool_size": 0, "blas": None}


def _blas_controller():
    """threadpoolctl's controller for the BLAS libraries, or False when threadpoolctl is missing."""
    if _state["blas"] is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _state["blas"] = False
        else:
            blas = ThreadpoolController().select(user_api="blas")
            # NumPy built on a BLAS threadpoolctl cannot limit: keep to one thread rather than oversubscribe
            _state["blas"] = blas if blas.lib_controllers else False
    return _state["blas"]


def worker_count() -> int:
    """How many threads a tiled op may use: numba's thread count, or 1 without threadpoolctl."""
    threads = numba.get_num_threads()
    if threads < 2 or not _blas_controller():
        return 1
    return threads


def _after_fork_in_child():
    # A forked child inherits the pool object but none of its threads (jobs would wait forever),
    # and possibly a lock held by a parent thread that does not exist here.
    global _lock
    _lock = threading.Lock()
    _state.update(pool=None, pool_size=0, users=0, limit=None)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _pool(size):
    if _state["pool_size"] < size:
        if _state["pool"] is not None:
            _state["pool"].shutdown(wait=False)
        _state["pool"] = ThreadPoolExecutor(size, thread_name_prefix="convlayers")
        _state["pool_size"] = size
    return _state["pool"]


def _as_job(job):
    _inside.job = True
    try:
        with covered():
            return job()
    finally:
        _inside.job = False


def run(jobs):
    """Run the callables ``jobs`` concurrently (the first on the calling thread); return their results.

    BLAS runs single-threaded meanwhile.  Every job must release the GIL for
    its heavy parts (nogil numba kernels, NumPy matrix products).  A job that
    itself calls :func:`run` gets its jobs run in turn on its own thread
    (waiting on the pool from inside it could deadlock).
    """
    if getattr(_inside, "job", False):
        return [job() for job in jobs]
    with busy():  # the workers' jobs run inside this window too: the caller waits for them
        return _run(jobs)


def _run(jobs):
    with _lock:
        pool = _pool(len(jobs) - 1) if len(jobs) > 1 else None
        if _state["users"] == 0:
            _state["limit"] = _blas_controller().limit(limits=1)
        _state["users"] += 1
    try:
        futures = [pool.submit(_as_job, job) for job in jobs[1:]] if pool else []
        try:
            first = _as_job(jobs[0])
        finally:
            wait(futures)  # the workers use the caller's arrays and the BLAS limit: never leave them running
        return [first] + [f.result() for f in futures]
    finally:
        with _lock:
            _state["users"] -= 1
            if _state["users"] == 0:
                _state["limit"].restore_original_limits()
                _state["limit"] = None


# Below this many multiply-adds a product runs on the calling thread (still with one-thread BLAS):
# handing work to another thread and back costs ~80 µs here (measured: run() of two empty jobs),
# about what one core takes for a 16M multiply-add product (mobilenet_v2 batch 1: 11.5 vs 12.4 ms).
_SPLIT_MIN_MACS = 1 << 24


def workers_for(macs) -> int:
    """:func:`worker_count`, or 1 for work of fewer than ``_SPLIT_MIN_MACS`` multiply-adds (not worth a hand-off)."""
    return 1 if macs < _SPLIT_MIN_MACS else worker_count()


def single_blas(fn, *args, **kwargs):
    """Call ``fn`` with BLAS limited to one thread (no limit needed, or possible, without threadpoolctl)."""
    if not _blas_controller():
        return fn(*args, **kwargs)
    return run([lambda: fn(*args, **kwargs)])[0]


def matmul(a, b, out=None):
    """``np.matmul(a, b, out=out)`` split across the worker threads, each with one-thread BLAS.

    Splits the leading batch axis when it has a part for every worker, else
    the larger of the rows of ``a`` and the columns of ``b``.  Every part
    writes its own slice of ``out``, so the result is the same as one product's.
    """
    with busy():
        return _matmul(np.asarray(a), np.asarray(b), out)


def blas_matmul(a, b, out=None):
    """``np.matmul(a, b, out=out)`` with BLAS's own threads, marked busy for the fork gate."""
    with busy():
        return np.matmul(a, b, out=out)


def _matmul(a, b, out):
    workers = worker_count()
    if a.ndim < 2 or b.ndim < 2:  # vector products: small, and NumPy's promotion rules apply
        return single_blas(np.matmul, a, b) if workers > 1 else np.matmul(a, b)
    if out is None:
        shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1])
        out = np.empty(shape, dtype=np.result_type(a, b))
    macs = out.size * a.shape[-1]
    if workers < 2 or macs < _SPLIT_MIN_MACS:
        return single_blas(np.matmul, a, b, out=out) if workers > 1 else np.matmul(a, b, out=out)
    a, b = np.broadcast_to(a, out.shape[:-2] + a.shape[-2:]), np.broadcast_to(b, out.shape[:-2] + b.shape[-2:])
    if out.ndim > 2 and out.shape[0] >= workers:
        axis, extent = 0, out.shape[0]
    elif out.shape[-2] >= out.shape[-1]:
        axis, extent = -2, out.shape[-2]
    else:
        axis, extent = -1, out.shape[-1]
    def part(lo, hi):
        if axis == 0:
            np.matmul(a[lo:hi], b[lo:hi], out=out[lo:hi])
        elif axis == -2:
            np.matmul(a[..., lo:hi, :], b, out=out[..., lo:hi, :])
        else:
            np.matmul(a, b[..., lo:hi], out=out[..., lo:hi])

    run([lambda lo=lo, hi=hi: part(lo, hi) for lo, hi in ranges(extent, min(workers, extent))])
    return out


def ranges(count, parts):
    """``parts`` contiguous ranges ``(a, b)`` covering ``range(count)``, of nearly equal length.

    >>> ranges(7, 2)
    [(0, 3), (3, 7)]
    """
    bounds = [count * i // parts for i in range(parts + 1)]
    return list(zip(bounds, bounds[1:]))


def even_block(n, block, workers):
    """The block size that cuts ``n`` items into as many blocks of ``block`` or fewer for every worker,
    of nearly equal size (64 items in blocks of 37 on 2 workers: 32 + 32, not 37 + 27).

    >>> even_block(8, 3, 2)
    2
    """
    blocks = -(-(-(-n // block)) // workers) * workers
    return -(-n // blocks)


# Per-thread scratch buffers, kept between calls.  A fresh multi-megabyte buffer per call comes back
# from the kernel as untouched pages, and first-touching them doubled the unroll on the calling thread
# (0.62 vs 0.07 ms per call for 64x48x8x8 -> 96, the worker threads' arenas keeping theirs).
_SCRATCH_MAX_BYTES = 32 * 2**20
_scratch = threading.local()


def scratch(name, size, dtype):
    """A reused 1-D buffer of ``size`` elements for this thread's slot ``name`` (contents undefined).

    Only for temporaries that never leave the call that asked for them; buffers
    above 32 MiB are not kept.
    """
    dtype = np.dtype(dtype)
    nbytes = size * dtype.itemsize
    if nbytes > _SCRATCH_MAX_BYTES:
        return np.empty(size, dtype=dtype)
    slots = getattr(_scratch, "slots", None)
    if slots is None:
        slots = _scratch.slots = {}
    buf = slots.get(name)
    if buf is None or buf.nbytes < nbytes:
        buf = slots[name] = aligned_empty(max(nbytes, 64) // 64 * 64 + 64, np.uint8)
    return buf[:nbytes].view(dtype)

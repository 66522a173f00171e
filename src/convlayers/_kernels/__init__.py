"""Compiled numba kernels (private).

Threading: numba's default OpenMP layer spins its threads between parallel
regions, and so does OpenBLAS; on a 2-core machine with any other load the
two pools steal each other's cores and a conv2d ran 40× slower (measured:
0.98 s vs 25 ms for 8×64×56×56 3×3).  The workqueue layer's threads sleep
when idle, so convlayers picks it unless the user chose a layer through
``NUMBA_THREADING_LAYER``.  It takes effect only if no parallel numba code has
run in the process yet.

Launching a parallel region costs 10–100 µs (measured here under load), more
than a whole small kernel.  :func:`parallel_kernel` therefore compiles every
parallel kernel twice, and callers pick the serial build for small work with
``kernel.for_work(n)``.
"""

import os
import types

import numba
from numba import njit

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

# Below this many elements of work a kernel runs on the calling thread.
PARALLEL_MIN_WORK = 1 << 17


class KernelPair:
    """A kernel compiled with ``parallel=True`` and without; calling it runs the parallel build."""

    def __init__(self, parallel, serial):
        self.parallel = parallel
        self.serial = serial
        self.__doc__ = parallel.py_func.__doc__

    def __call__(self, *args):
        return self.parallel(*args)

    def for_work(self, work, minimum=PARALLEL_MIN_WORK):
        """The build to use for ``work`` elements: serial below ``minimum`` or when numba has one thread."""
        if work < minimum or numba.get_num_threads() < 2:
            return self.serial
        return self.parallel


def parallel_kernel(**options):
    """Decorate a kernel written with ``prange``: compile a parallel and a serial build (both cached).

    The serial build releases the GIL, so that worker threads (see
    ``functional._threads``) can run it side by side.  The two builds get
    distinct qualified names so that numba's on-disk cache, which keys entries
    by name and bytecode but not by the ``parallel`` flag, keeps them apart.
    """

    def wrap(fn):
        def clone(suffix):
            f = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + suffix, fn.__defaults__,
                                   fn.__closure__)
            f.__qualname__ = fn.__qualname__ + suffix
            f.__doc__ = fn.__doc__
            f.__module__ = fn.__module__
            return f

        return KernelPair(njit(cache=True, parallel=True, **options)(clone("")),
                          njit(cache=True, nogil=True, **options)(clone("_serial")))

    return wrap

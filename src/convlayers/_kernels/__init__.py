"""Compiled numba kernels (private), and the threading model every kernel runs under.

Threading model
---------------
* **Which layer.**  numba's default OpenMP layer spins its threads between
  parallel regions, and so does OpenBLAS; on a 2-core machine with any other
  load the two pools steal each other's cores and a conv2d ran 40× slower
  (measured: 0.98 s vs 25 ms for 8×64×56×56 3×3; under load 13 a
  max_pool2d took 52 ms on omp against 1.5 ms on the others).  convlayers
  therefore never picks ``omp``.  It picks ``tbb`` when the ``tbb`` wheel is
  installed (the ``fast`` extra): thread-safe, idle workers sleep, and with
  two callers at once it was the fastest (quiet machine: resnet18 batch 1,
  42 ms per call against 225 ms; max_pool2d 0.63 vs 4.16 ms).  Otherwise it
  uses ``workqueue``, whose threads also sleep but which numba documents as
  not thread-safe — two Python threads inside parallel kernels at once abort
  the process ("Concurrent access has been detected") — so there every
  parallel launch is **serialised** through one process-wide lock: a thread
  that finds the lock taken does not wait, it runs the kernel's serial build
  on its own core instead (every parallel kernel is compiled twice, see
  :func:`parallel_kernel`).  So with one caller a kernel uses every numba
  thread; with several callers one at a time gets the parallel build and
  the others run serially side by side.  Every build releases the GIL.  The
  figures are in the README (Reliability / Threads).
* **A user's own choice wins.**  If ``NUMBA_THREADING_LAYER`` is set, or numba
  already picked a layer before convlayers was imported, convlayers leaves the
  layer alone; launches are then serialised only if that layer is
  ``workqueue`` (``tbb`` and ``omp`` are thread-safe by themselves).
* **Fork.**  A ``fork()`` waits (up to :data:`FORK_WAIT_SECONDS`) until no
  thread is inside a convlayers kernel or tiled BLAS call, and new calls wait
  meanwhile: OpenBLAS's pre-fork handler otherwise hangs when another thread
  is inside a product, and a child forked mid-kernel inherits locks held by
  threads that do not exist in it.  See :mod:`convlayers.functional._threads`
  for the Python-level worker pool, which a child rebuilds.  In a child
  forked after the ``tbb`` layer started, kernels run their serial builds
  (TBB cannot be restarted after a fork; a DataLoader-style worker is one
  core's worth of work anyway, as PyTorch sets its workers to one thread).
* **Read-only installs.**  Kernels are cached on disk (``cache=True``) when
  numba finds somewhere writable (the package's ``__pycache__``, the user's
  cache directory or ``NUMBA_CACHE_DIR``); when nothing is writable numba
  refuses ``cache=True`` outright ("no locator available"), so :func:`njit`
  compiles in memory instead and warns once.

Launching a parallel region costs 10–100 µs (measured here under load), more
than a whole small kernel, so callers pick the serial build for small work
with ``kernel.for_work(n)``.
"""

import os
import threading
import types
import warnings

import numba


def _load_tbb():
    """Make numba's ``tbb`` layer loadable; return whether it is.

    The ``tbb`` wheel puts ``libtbb.so.12`` in ``<prefix>/lib``, which the
    dynamic loader does not search; loading it by path with RTLD_GLOBAL first
    lets numba's own ``CDLL('libtbb.so.12')`` and its ``tbbpool`` extension
    find it (a loaded library is matched by its soname).
    """
    import ctypes
    import sys

    names = {"linux": "libtbb.so.12", "darwin": "libtbb.12.dylib", "win32": "tbb12.dll"}
    name = names.get(sys.platform, "libtbb.so.12")
    candidates = [name] + [os.path.join(root, sub, name) for root in dict.fromkeys((sys.prefix, sys.base_prefix))
                           for sub in ("lib", "Library/bin", "")]
    for candidate in candidates:
        try:
            lib = ctypes.CDLL(candidate, mode=getattr(ctypes, "RTLD_GLOBAL", 0))
            if lib.TBB_runtime_interface_version() < 12060:  # numba's minimum
                return False
            break
        except (OSError, AttributeError):
            continue
    else:
        return False
    try:
        from numba.np.ufunc import tbbpool  # noqa: F401  (numba's tbb layer, built against the same ABI)
    except ImportError:
        return False
    return True


def _choose_layer():
    """Pick numba's threading layer: the user's, else ``tbb`` when loadable, else ``workqueue``."""
    from numba.np.ufunc import parallel

    if "NUMBA_THREADING_LAYER" in os.environ or getattr(parallel, "_is_initialized", False):
        return  # the user chose, or numba already runs a layer: it cannot change now
    numba.config.THREADING_LAYER = "tbb" if _load_tbb() else "workqueue"


_choose_layer()


def _numpy_huge_pages():
    """Stop NumPy advising huge pages for its arrays where a fault in an advised page stalls.

    NumPy marks every allocation of 4 MiB and up ``MADV_HUGEPAGE``; where Linux
    then compacts memory in the faulting thread (``_machine.huge_page_faults_stall``),
    the first writes into a fresh output wait for it.  The 8x64x56x56 3x3
    convolution took 13 ms in three calls of four against 6.7 ms (2 threads,
    2-core Intel Xeon VM, THP ``madvise``/``madvise``): one worker thread's
    half of the fresh output took 8.5 ms to write instead of 2.  PyTorch's
    allocator asks for no huge pages by default (``THP_MEM_ALLOC_ENABLE``
    opts in).  So convlayers turns NumPy's advice off on such machines,
    process-wide, unless ``NUMPY_MADVISE_HUGEPAGE`` says what the user wants
    (NumPy reads it at import; ``1`` keeps the huge pages).
    """
    if "NUMPY_MADVISE_HUGEPAGE" in os.environ:
        return
    from .._machine import huge_page_faults_stall
    if not huge_page_faults_stall():
        return
    try:
        from numpy._core import multiarray
        multiarray._set_madvise_hugepage(False)
    except (ImportError, AttributeError):  # a NumPy without the switch: nothing to turn off
        pass


_numpy_huge_pages()

# Below this many elements of work a kernel runs on the calling thread.
PARALLEL_MIN_WORK = 1 << 17


def _layer():
    """The threading layer numba uses or will use ('workqueue' until a parallel kernel has run, if it is ours)."""
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel region has run yet: the configured layer is the one that will load
        return str(numba.config.THREADING_LAYER)


def cheap_launch() -> bool:
    """Whether a parallel launch is cheap on the threading layer in use (tbb: ~4 µs, workqueue: ~0.1 ms).

    Measured with an empty 64-element ``prange`` kernel: 4.2 µs per call on tbb
    on the 2-core Intel Xeon VM (AVX-512); the workqueue layer's ~0.1 ms was
    measured on the 2-core Zen 5 VM.  Kernels whose serial run is short
    choose their parallel threshold by this.
    """
    return _layer() == "tbb"


# Serialises parallel launches on the workqueue layer (see the module docstring).
_launch_lock = threading.Lock()
_serialise = None  # decided at the first parallel launch, when the layer is known


def _needs_serialising():
    global _serialise
    if _serialise is None:
        _serialise = _layer() not in ("tbb", "omp")
    return _serialise


# ---- fork gate --------------------------------------------------------------------------------------------

FORK_WAIT_SECONDS = 60.0
_gate = threading.Condition(threading.Lock())
_gate_state = {"busy": 0, "forking": False}
_gate_local = threading.local()


class busy:
    """Context manager marking the calling thread as inside a kernel or BLAS call (fork waits for it to leave)."""

    __slots__ = ("_outer",)

    def __enter__(self):
        depth = getattr(_gate_local, "depth", 0)
        self._outer = depth == 0
        if self._outer:
            with _gate:
                while _gate_state["forking"]:
                    _gate.wait()
                _gate_state["busy"] += 1
        _gate_local.depth = depth + 1
        return self

    def __exit__(self, *exc):
        _gate_local.depth -= 1
        if self._outer:
            with _gate:
                _gate_state["busy"] -= 1
                if _gate_state["busy"] == 0:
                    _gate.notify_all()
        return False


class covered:
    """Context manager for a worker thread running a job for a caller inside :class:`busy`.

    The caller's mark stands for the job (the caller waits for it), so the
    worker must not wait at the gate: a fork waiting for the caller while the
    worker waited for the fork would deadlock.
    """

    __slots__ = ()

    def __enter__(self):
        _gate_local.depth = getattr(_gate_local, "depth", 0) + 1
        return self

    def __exit__(self, *exc):
        _gate_local.depth -= 1
        return False


def _before_fork():
    # The forking thread may itself be inside a call (e.g. forking from a hook): do not wait for itself.
    mine = 1 if getattr(_gate_local, "depth", 0) else 0
    _gate.acquire()
    _gate_state["forking"] = True
    _gate.wait_for(lambda: _gate_state["busy"] <= mine, timeout=FORK_WAIT_SECONDS)


def _after_fork_in_parent():
    _gate_state["forking"] = False
    _gate.notify_all()
    _gate.release()


# Set in a child forked after the tbb layer started: kernels then run their serial builds.
_serial_only = False


def _after_fork_in_child():
    global _gate, _launch_lock, _serial_only
    # Threads that were inside a call do not exist in the child: their marks and any lock they held go.
    _gate = threading.Condition(threading.Lock())
    _gate_state.update(busy=1 if getattr(_gate_local, "depth", 0) else 0, forking=False)
    _launch_lock = threading.Lock()
    # numba's tbb layer cannot shut TBB down before a fork once other threads have used it ("Unable to
    # join threads to shut down before fork()"), and the child's TBB is then not safe to use.  The
    # workqueue layer restarts its threads in the child by itself.
    from numba.np.ufunc import parallel

    if getattr(parallel, "_is_initialized", False) and _layer() == "tbb":
        _serial_only = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)


# ---- kernels ----------------------------------------------------------------------------------------------

_cache_warned = []


def _warn_no_cache(name, error):
    if not _cache_warned:
        _cache_warned.append(True)
        warnings.warn(f"convlayers: numba cannot cache compiled kernels ({error}); compiling them in memory "
                      "instead, so every new process compiles on first use. Set NUMBA_CACHE_DIR to a "
                      "writable directory to keep them.", RuntimeWarning, stacklevel=3)


_numba_njit = numba.njit  # the decorator :func:`njit` wraps (a test replaces it)


def njit(*args, **options):
    """``numba.njit`` that falls back to compiling in memory when ``cache=True`` has nowhere to write.

    numba raises ``RuntimeError: cannot cache function ...: no locator
    available`` at decoration time when neither the package directory, the
    user's cache directory nor ``NUMBA_CACHE_DIR`` is writable; import would
    then fail.  Here the kernel is compiled without a cache and a
    RuntimeWarning is issued once per process.
    """
    if args and callable(args[0]):
        return njit(**options)(args[0])

    def wrap(fn):
        if options.get("cache"):
            try:
                return _numba_njit(**options)(fn)
            except RuntimeError as error:
                if "cannot cache" not in str(error):
                    raise
                _warn_no_cache(fn.__qualname__, error)
                return _numba_njit(**{**options, "cache": False})(fn)
        return _numba_njit(**options)(fn)

    return wrap


# A capture of the kernel calls a run makes on this thread (``onnx._tape``): ``hook`` is None or
# ``hook(callable, args)``, which records the call and makes it with ``callable(*args)``.
_capture = threading.local()


def capturing(hook):
    """Context manager: every kernel call of this thread goes through ``hook(callable, args)`` meanwhile.

    ``callable`` is what a replay calls with the same arguments (the
    :class:`KernelPair`, or a serial build); inside the hook no capture runs.
    """
    return _Capturing(hook)


class _Capturing:
    __slots__ = ("hook", "outer")

    def __init__(self, hook):
        self.hook = hook

    def __enter__(self):
        self.outer = getattr(_capture, "hook", None)
        _capture.hook = self.hook
        return self

    def __exit__(self, *exc):
        _capture.hook = self.outer
        return False


def _captured(fn, args):
    hook = _capture.hook
    _capture.hook = None
    try:
        return hook(fn, args)
    finally:
        _capture.hook = hook


def unguarded():
    """Whether a caller already inside :class:`busy` may call a :class:`KernelPair`'s parallel build itself:
    the layer is thread-safe (no launch lock) and this is not a child forked after the tbb layer started."""
    return not _serial_only and not _needs_serialising()


class SerialKernel:
    """A kernel's serial build as :meth:`KernelPair.for_work` hands it out: the build, seen by a capture."""

    __slots__ = ("build",)

    def __init__(self, build):
        self.build = build

    def __call__(self, *args):
        if getattr(_capture, "hook", None) is not None:
            return _captured(self.build, args)
        return self.build(*args)


class KernelPair:
    """A kernel compiled with ``parallel=True`` and without; calling it runs the parallel build when allowed.

    A call runs the parallel build unless another thread is inside a parallel
    launch on a layer that is not thread-safe (workqueue), in which case it
    runs the serial build: same result, no wait.
    """

    def __init__(self, parallel, serial):
        self.parallel = parallel
        self.serial = serial
        self._serial_kernel = SerialKernel(serial)
        self.__doc__ = parallel.py_func.__doc__

    def __call__(self, *args):
        if getattr(_capture, "hook", None) is not None:
            return _captured(self, args)
        with busy():
            if _serial_only:
                return self.serial(*args)
            if not _needs_serialising():
                return self.parallel(*args)
            if _launch_lock.acquire(blocking=False):
                try:
                    return self.parallel(*args)
                finally:
                    _launch_lock.release()
            return self.serial(*args)

    def for_work(self, work, minimum=PARALLEL_MIN_WORK):
        """The build to use for ``work`` elements: serial below ``minimum`` or when numba has one thread."""
        if work < minimum or numba.get_num_threads() < 2:
            return self._serial_kernel
        return self


def parallel_kernel(**options):
    """Decorate a kernel written with ``prange``: compile a parallel and a serial build (both cached).

    Both builds release the GIL, so that worker threads (see
    ``functional._threads``) and other callers can run side by side.  The two builds get
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

        # Both builds release the GIL: a parallel launch holding it would stall every other caller's
        # Python code (and the serial fallbacks they run) for the whole region.
        opts = {"cache": True, "nogil": True, **options}
        return KernelPair(njit(**{**opts, "parallel": True})(clone("")),
                          njit(**{**opts, "parallel": False})(clone("_serial")))

    return wrap

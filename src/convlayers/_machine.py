"""What the running machine is: CPU, ISA, usable cores, cache sizes, numba's threads and the BLAS kernel.

Tile sizes and thresholds measured on one CPU favour that CPU; the choices in
``functional`` that depend on the cache hierarchy are made from this record
instead (see :func:`scale_to_cache`), and the benchmark harness prints and
stores it with every run, so that a table always says which machine it is from.

The hardware part (:func:`hardware`) is read once per process and cached: a
few small files under ``/proc`` and ``/sys`` (about a millisecond).  The
runtime part (numba's threading layer and thread count, the BLAS library and
its kernel) can change while a process runs, so :func:`record` reads it again
each call.  Nothing here raises: a field that cannot be read (no ``/sys`` in a
container, not Linux, no threadpoolctl) is ``None``.

This module sits below ``_kernels`` in the layering and imports nothing of
convlayers; ``functional`` imports it lazily, at the first choice that needs it.

Examples
--------
>>> from convlayers import _machine
>>> rec = _machine.record()
>>> rec["cores"] is None or rec["cores"] >= 1
True
"""

from __future__ import annotations

import functools
import os
import platform

__all__ = ["hardware", "record", "summary", "scale_to_cache", "cache_bytes"]

# Where Linux describes the CPU; module attributes so that tests can point them elsewhere.
_CPUINFO = "/proc/cpuinfo"
_CACHE_DIR = "/sys/devices/system/cpu/cpu0/cache"

# ISA levels from most to least capable, by the /proc/cpuinfo flag (and llvmlite feature name) that marks each.
_ISA_LEVELS = (("avx512f", "avx512f", "avx512f"), ("avx2", "avx2", "avx2"), ("fma", "fma", "fma"),
               ("sse4.2", "sse4_2", "sse4.2"))


def _read(path):
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            return fh.read()
    except (OSError, ValueError):
        return None


_THP_DIR = "/sys/kernel/mm/transparent_hugepage"


def _selected(text):
    """The bracketed choice of a sysfs setting such as ``'always [madvise] never'``; None if unreadable."""
    if not text or "[" not in text:
        return None
    return text[text.index("[") + 1:text.index("]", text.index("["))]


def huge_page_faults_stall(root=_THP_DIR):
    """Whether a first touch of memory advised ``MADV_HUGEPAGE`` may compact memory in the faulting thread.

    True when Linux's transparent huge pages are on for advised regions (``enabled`` is ``always`` or
    ``madvise``) and ``defrag`` is ``always`` or ``madvise``: a fault in such a region then stalls until
    the kernel has assembled a 2 MiB page.  False where that cannot happen or is unknown (no sysfs).

    >>> huge_page_faults_stall("/nonexistent")
    False
    """
    enabled = _selected(_read(os.path.join(root, "enabled")))
    defrag = _selected(_read(os.path.join(root, "defrag")))
    return enabled in ("always", "madvise") and defrag in ("always", "madvise")


def _parse_size(text):
    """Bytes of a sysfs cache size such as ``'48K'``, ``'1024K'`` or ``'32M'``; None if unreadable."""
    if not text:
        return None
    text = text.strip().upper()
    scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
    digits = text[:-1] if text[-1:] in "KMG" else text
    try:
        value = int(digits) * scale
    except ValueError:
        return None
    return value if value > 0 else None


def _cpuinfo():
    """(model name, set of flags) of the first processor in /proc/cpuinfo; (None, None) without it."""
    text = _read(_CPUINFO)
    if not text:
        return None, None
    model, flags = None, None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if model is None and key in ("model name", "cpu model", "hardware"):
            model = value.strip() or None
        elif flags is None and key in ("flags", "features"):
            flags = set(value.split())
        if model is not None and flags is not None:
            break
    return model, flags


def _caches():
    """{'l1d': bytes, 'l2': bytes, 'l3': bytes} of cpu0's caches (None where unreadable)."""
    out = {"l1d": None, "l2": None, "l3": None}
    try:
        entries = sorted(os.listdir(_CACHE_DIR))
    except OSError:
        return out
    for entry in entries:
        if not entry.startswith("index"):
            continue
        base = os.path.join(_CACHE_DIR, entry)
        level, kind = (_read(os.path.join(base, name)) for name in ("level", "type"))
        size = _parse_size(_read(os.path.join(base, "size")))
        if level is None or kind is None or size is None:
            continue
        level, kind = level.strip(), kind.strip().lower()
        if kind == "instruction":
            continue
        key = {"1": "l1d", "2": "l2", "3": "l3"}.get(level)
        if key is not None and out[key] is None:
            out[key] = size
    return out


def _llvm_host():
    """(LLVM's name for this CPU, its feature dict) from llvmlite, which numba compiles for; (None, {}) if absent."""
    try:
        import llvmlite.binding as ll
        return str(ll.get_host_cpu_name()) or None, dict(ll.get_host_cpu_features())
    except Exception:  # noqa: BLE001 - a description must never fail
        return None, {}


def _cores():
    try:
        return len(os.sched_getaffinity(0)) or None
    except (AttributeError, OSError):
        return os.cpu_count()


def hardware():
    """The CPU part of the record, read once per process (a fresh copy each call).

    Returns
    -------
    dict
        ``cpu_model`` (/proc/cpuinfo's model name, else :func:`platform.processor`), ``llvm_cpu`` (the CPU
        name numba compiles for, e.g. ``'znver5'``), ``arch``, ``isa`` (which of avx512f/avx2/fma/sse4.2 the
        CPU has), ``isa_level`` (the best of them, or None), ``cores`` (usable by this process, from its CPU
        affinity), ``logical_cpus``, ``l1d_bytes``, ``l2_bytes``, ``l3_bytes`` (per cpu0; None if unknown).
    """
    out = dict(_read_hardware())
    out["isa"] = list(out["isa"]) if out["isa"] is not None else None
    return out


@functools.lru_cache(maxsize=1)
def _read_hardware():
    model, flags = _cpuinfo()
    llvm_cpu, features = _llvm_host()
    if flags is not None:
        isa = [name for name, flag, _ in _ISA_LEVELS if flag in flags]
    elif features:
        isa = [name for name, _, feature in _ISA_LEVELS if features.get(feature)]
    else:
        isa = None
    caches = _caches()
    return {
        "cpu_model": model or platform.processor() or None,
        "llvm_cpu": llvm_cpu,
        "arch": platform.machine() or None,
        "isa": isa,
        "isa_level": isa[0] if isa else None,
        "cores": _cores(),
        "logical_cpus": os.cpu_count(),
        "l1d_bytes": caches["l1d"],
        "l2_bytes": caches["l2"],
        "l3_bytes": caches["l3"],
    }


def _numba_threads():
    """numba's threading layer and thread count, without starting a layer.

    ``numba.get_num_threads()`` starts the threading layer when none runs yet, which would fix numba to its
    default layer before ``convlayers._kernels`` picks one; so before the first parallel region this reports
    the configured layer and ``NUMBA_NUM_THREADS``.
    """
    try:
        import numba
        from numba.np.ufunc import parallel
    except Exception:  # noqa: BLE001
        return None, None
    try:
        if getattr(parallel, "_is_initialized", False):
            return str(numba.threading_layer()), int(numba.get_num_threads())
        return str(numba.config.THREADING_LAYER), int(numba.config.NUMBA_NUM_THREADS)
    except Exception:  # noqa: BLE001 - a description must never fail
        return None, None


def _blas():
    """The BLAS libraries NumPy and others loaded, with the kernel OpenBLAS picked (threadpoolctl's view)."""
    try:
        import numpy  # noqa: F401  (loads NumPy's BLAS, so that threadpoolctl sees it)
        from threadpoolctl import threadpool_info
        pools = threadpool_info()
    except Exception:  # noqa: BLE001 - threadpoolctl is optional
        return None
    return [{k: p.get(k) for k in ("user_api", "internal_api", "version", "architecture", "num_threads",
                                   "threading_layer")} for p in pools]


def record():
    """The whole machine record: :func:`hardware` plus numba's threads and the BLAS kernel, read now.

    The added fields are ``numba_threading_layer``, ``numba_threads``, ``blas`` (a list of dicts from
    threadpoolctl: library, version, ``architecture`` — the kernel OpenBLAS runs, e.g. Haswell, SkylakeX,
    Zen — and threads; None without threadpoolctl) and ``openblas_coretype`` (the environment variable that
    forces OpenBLAS's kernel, None when unset).  Plain JSON types only.
    """
    out = hardware()
    out["numba_threading_layer"], out["numba_threads"] = _numba_threads()
    out["blas"] = _blas()
    out["openblas_coretype"] = os.environ.get("OPENBLAS_CORETYPE") or None
    out["numpy_huge_pages"] = _numpy_huge_pages()
    return out


def _numpy_huge_pages():
    """Whether NumPy advises huge pages for its large arrays now (None if this NumPy cannot say)."""
    try:
        from numpy._core import multiarray
        flag = multiarray._set_madvise_hugepage(True)
        multiarray._set_madvise_hugepage(flag)
        return bool(flag)
    except (ImportError, AttributeError):
        return None


def _mib(n):
    if n is None:
        return "?"
    return f"{n / 2**20:g} MiB" if n >= 2**20 else f"{n // 2**10} KiB"


def summary(rec=None):
    """One line describing the machine, as the harness prints it above (and ``table.py`` under) a table.

    >>> "cores" in summary({"cpu_model": "Test CPU", "cores": 2})
    True
    """
    rec = record() if rec is None else rec
    blas = [b for b in (rec.get("blas") or []) if b.get("user_api") in (None, "blas")]
    blas_text = ", ".join(f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture') or '?'} kernel)"
                          for b in blas) or "?"
    forced = rec.get("openblas_coretype")
    return (f"{rec.get('cpu_model') or '?'} ({rec.get('llvm_cpu') or '?'}, {rec.get('isa_level') or '?'}), "
            f"{rec.get('cores') or '?'} cores; L1d {_mib(rec.get('l1d_bytes'))}, L2 {_mib(rec.get('l2_bytes'))}, "
            f"L3 {_mib(rec.get('l3_bytes'))}; numba {rec.get('numba_threading_layer') or '?'} x"
            f"{rec.get('numba_threads') or '?'}; BLAS {blas_text}"
            + (f"; OPENBLAS_CORETYPE={forced} forces the BLAS kernel" if forced else "")
            + ("; NumPy huge pages off" if rec.get("numpy_huge_pages") is False else ""))


def cache_bytes(level):
    """Bytes of this machine's ``'l1d'``, ``'l2'`` or ``'l3'`` cache (per cpu0), or None if unknown."""
    return hardware()[f"{level}_bytes"]


def scale_to_cache(measured, level, measured_cache, floor, ceiling):
    """A size ``measured`` as best on a CPU whose ``level`` cache was ``measured_cache`` bytes, for this CPU.

    Scales in proportion to this machine's cache of that level, clamped to ``[floor, ceiling]``; returns
    ``measured`` itself when the cache size is unknown (the measured machine's choice is the best guess).

    >>> scale_to_cache(2**21, "l2", 2**20, 2**19, 2**23) in range(2**19, 2**23 + 1)
    True
    """
    size = cache_bytes(level)
    if size is None:
        return int(measured)
    return int(min(max(measured * size / measured_cache, floor), ceiling))

"""convlayers._kernels: thread safety, fork safety and cache fallback of the compiled kernels.

The stress and fork runs happen in subprocesses with a timeout: without the
fixes, the workqueue layer aborts the whole interpreter ("Concurrent access
has been detected", SIGABRT) and a fork during a conv hangs in OpenBLAS's
pre-fork handler — neither may take pytest down with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numba
import numpy as np
import pytest

from convlayers import _kernels
from convlayers._kernels import KernelPair

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
LAYERS = {"default": {}, "workqueue": {"NUMBA_THREADING_LAYER": "workqueue"}}


def _run(script, args, env_extra, timeout):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    env.update(env_extra)
    proc = subprocess.run([sys.executable, str(HERE / script), *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("layer", list(LAYERS))
def test_threads_calling_every_parallel_kernel_at_once(layer):
    """4 threads × 3 s over every parallel kernel (thresholds off): no abort, the single-threaded results."""
    report = _run("_thread_stress.py", (4, 3), LAYERS[layer], timeout=900)
    assert report["errors"] == []
    assert report["kernels"] == report["all_kernels"]  # every parallel kernel ran
    assert report["calls"] >= 4 * len(report["all_kernels"]) // 4
    if layer == "workqueue":
        assert report["layer"] == "workqueue"
    print(f"thread stress ({report['layer']}): {report['threads']} threads x {report['seconds']} s, "
          f"{report['calls']} calls over {len(report['kernels'])} kernels")


@pytest.mark.parametrize("layer", list(LAYERS))
def test_fork_while_another_thread_is_inside_a_conv(layer):
    """multiprocessing fork + os.fork while a thread runs conv/pool/batch norm, then an idle fork: no hang."""
    report = _run("_fork_stress.py", (6,), LAYERS[layer], timeout=600)
    assert report["forks"] == 7


def test_fork_waits_for_a_thread_inside_a_call():
    """The pre-fork handler waits until no thread is inside a kernel or BLAS call, and holds new ones back."""
    inside, release = threading.Event(), threading.Event()
    order = []

    def call():
        with _kernels.busy():
            inside.set()
            release.wait(10)
            order.append("call done")

    t = threading.Thread(target=call)
    t.start()
    inside.wait(10)
    threading.Timer(0.3, release.set).start()
    t0 = time.monotonic()
    _kernels._before_fork()
    try:
        order.append("fork")
        waited = time.monotonic() - t0
        late = threading.Thread(target=lambda: (_kernels.busy().__enter__(), order.append("late call")))
        late.start()
        late.join(0.2)
        assert late.is_alive()  # a call that starts during the fork waits for it
    finally:
        _kernels._after_fork_in_parent()
    late.join(10)
    t.join(10)
    assert waited >= 0.25
    assert order == ["call done", "fork", "late call"]
    _kernels._gate_local.depth = 0  # the late thread never left its busy(): forget it here
    with _kernels._gate:
        _kernels._gate_state["busy"] = 0


def test_a_call_that_finds_the_launch_lock_taken_runs_the_serial_build(monkeypatch):
    ran = []
    pair = KernelPair(type("D", (), {"py_func": lambda: None, "__call__": lambda self: ran.append("parallel")})(),
                      lambda: ran.append("serial"))
    monkeypatch.setattr(_kernels, "_serialise", True)
    pair()
    with _kernels._launch_lock:  # another thread is inside a parallel launch
        pair()
    monkeypatch.setattr(_kernels, "_serialise", False)  # tbb / omp: thread-safe, never serialised
    with _kernels._launch_lock:
        pair()
    assert ran == ["parallel", "serial", "parallel"]


def test_small_work_uses_the_serial_build():
    from convlayers._kernels import pool

    pair = pool.max_pool
    assert pair.for_work(10).build is pair.serial
    big = pair.for_work(1 << 30)
    assert big is pair if numba.get_num_threads() > 1 else big.build is pair.serial


def test_njit_compiles_in_memory_when_numba_cannot_cache(monkeypatch):
    real = numba.njit

    def no_locator(**options):
        if options.get("cache"):
            raise RuntimeError("cannot cache function 'f': no locator available for file 'x.py'")
        return real(**options)

    monkeypatch.setattr(_kernels, "_numba_njit", no_locator)
    monkeypatch.setattr(_kernels, "_cache_warned", [])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f = _kernels.njit(cache=True)(lambda a: a + 1)
        g = _kernels.njit(cache=True, nogil=True)(lambda a: a * 2)
    assert f(1) == 2 and g(3) == 6
    assert len([c for c in caught if "cannot cache" in str(c.message)]) == 1  # once per process


def test_njit_lets_other_errors_through(monkeypatch):
    def broken(**options):
        raise RuntimeError("something else")

    monkeypatch.setattr(_kernels, "_numba_njit", broken)
    with pytest.raises(RuntimeError, match="something else"):
        _kernels.njit(cache=True)(lambda a: a)


def test_layer_is_thread_safe_or_serialised():
    import convlayers.functional as F

    F.max_pool2d(np.ones((8, 32, 56, 56), np.float32), 2)  # starts the layer
    layer = numba.threading_layer()
    assert _kernels._needs_serialising() == (layer not in ("tbb", "omp"))

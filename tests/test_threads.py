"""convlayers.functional._threads: BLAS-heavy work split across Python threads with one-thread BLAS.

The split must never change a result beyond rounding, must leave the user's
BLAS thread count as it found it (also after errors and concurrent calls),
and must fall back to the calling thread when it cannot limit BLAS.
"""

from __future__ import annotations

import threading

import numba
import numpy as np
import pytest

import convlayers.functional as F
from convlayers.functional import _threads
from convlayers.functional import conv as conv_module


def _blas_threads():
    """Thread counts of the BLAS libraries convlayers limits (NumPy's; others may load later, e.g. SciPy's)."""
    controller = _threads._blas_controller()
    return sorted(lib["num_threads"] for lib in controller.info())


@pytest.fixture
def two_workers(monkeypatch):
    monkeypatch.setattr(_threads, "worker_count", lambda: 2)


def _single(monkeypatch):
    monkeypatch.setattr(_threads, "worker_count", lambda: 1)


CONV_CASES = [  # (x shape, w shape, kwargs): batches that split by samples, by row bands, and one-sample outputs
    ((5, 6, 11, 9), (8, 6, 3, 3), dict(padding=1)),
    ((3, 4, 12, 12), (6, 2, 3, 2), dict(stride=2, padding=(1, 0), groups=2)),
    ((1, 3, 17, 13), (5, 3, 3, 3), dict(dilation=2, padding=2)),
    ((2, 8, 7, 7), (4, 8, 1, 1), dict(stride=2)),
    ((1, 8, 9, 9), (4, 8, 1, 1), {}),
    ((4, 3, 10, 10), (4, 3, 5, 5), dict(stride=3, padding=2)),
    ((4, 3, 20, 20), (5, 3, 3, 3), dict(padding=1)),  # 400-column samples: one product per sample
]


@pytest.mark.parametrize("budget", [1, 2**20])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, w_shape, kw", CONV_CASES)
def test_worker_threads_give_the_single_thread_results(monkeypatch, x_shape, w_shape, kw, dtype, budget):
    rng = np.random.default_rng(sum(x_shape) + sum(w_shape))
    x, w = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype)
    monkeypatch.setattr(conv_module, "_COLS_BUDGET_BYTES", budget)
    monkeypatch.setattr(conv_module, "_WORKER_COLS_BUDGET_BYTES", budget)
    monkeypatch.setattr(_threads, "_SPLIT_MIN_MACS", 0)
    _single(monkeypatch)
    out = F.conv2d(x, w, **kw)
    go = rng.standard_normal(out.shape).astype(dtype)
    grads = F.conv2d_backward(go, x, w, **kw)
    monkeypatch.setattr(_threads, "worker_count", lambda: 3)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(F.conv2d(x, w, **kw), out, rtol=rtol, atol=rtol)
    for got, want in zip(F.conv2d_backward(go, x, w, **kw), grads):
        if want is not None:
            np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())


@pytest.mark.parametrize("a_shape, b_shape", [
    ((6, 5), (5, 7)),            # rows of a
    ((3, 5), (5, 11)),           # columns of b
    ((4, 3, 5), (5, 2)),         # the batch axis
    ((1, 2, 3, 5), (4, 2, 5, 6)),  # broadcast batch
    ((5,), (5, 3)),              # vector operand
])
def test_split_matmul_is_numpy_matmul(monkeypatch, two_workers, a_shape, b_shape):
    monkeypatch.setattr(_threads, "_SPLIT_MIN_MACS", 0)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    want = np.matmul(a, b)
    got = _threads.matmul(a, b)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
    if len(a_shape) > 1:
        out = np.empty_like(want)
        assert _threads.matmul(a, b, out=out) is out
        np.testing.assert_allclose(out, want, rtol=1e-13, atol=1e-13)


def test_blas_limit_is_restored_after_calls_errors_and_concurrent_callers(monkeypatch, two_workers):
    before = _blas_threads()
    seen = []

    def job():
        seen.append(_blas_threads())
        return 1

    assert _threads.run([job, job]) == [1, 1]
    assert all(n == [1] * len(before) for n in seen), "BLAS was not single-threaded inside the jobs"
    assert _blas_threads() == before

    def boom():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        _threads.run([boom, job])
    assert _blas_threads() == before

    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((6, 4, 16, 16)), rng.standard_normal((8, 4, 3, 3))
    want = F.conv2d(x, w, padding=1)
    results, errors = [], []

    def caller():
        try:
            for _ in range(5):
                results.append(F.conv2d(x, w, padding=1))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    callers = [threading.Thread(target=caller) for _ in range(4)]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    assert not errors and len(results) == 20
    for r in results:
        np.testing.assert_allclose(r, want, rtol=1e-12)
    assert _blas_threads() == before


def test_nested_run_stays_on_its_thread(two_workers):
    inner = lambda: threading.current_thread().name  # noqa: E731
    outer = lambda: _threads.run([inner, inner])  # noqa: E731
    names = _threads.run([outer, outer])
    for pair in names:
        assert pair[0] == pair[1]


def test_without_threadpoolctl_or_threads_everything_stays_on_the_calling_thread(monkeypatch):
    monkeypatch.setitem(_threads._state, "blas", False)
    assert _threads.worker_count() == 1
    x, w = np.ones((4, 2, 6, 6)), np.ones((3, 2, 3, 3))
    np.testing.assert_array_equal(F.conv2d(x, w), np.full((4, 3, 4, 4), 18.0))
    monkeypatch.undo()
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        assert _threads.worker_count() == 1
    finally:
        numba.set_num_threads(threads)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("w_shape, groups", [((6, 4, 1, 1), 1), ((6, 4, 3, 3), 1), ((4, 1, 3, 3), 4)])
def test_fused_epilogue_on_worker_threads(monkeypatch, w_shape, groups, dtype):
    """conv2d_affine applies its per-channel clamp inside each worker's tile: same as the calling thread's."""
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((5, 4, 9, 10)).astype(dtype), rng.standard_normal(w_shape).astype(dtype)
    scale, shift = rng.standard_normal(w_shape[0]), rng.standard_normal(w_shape[0])
    args = (x, w, None, 1, w_shape[-1] // 2, 1, groups, "zeros", scale, shift, 0.0, 6.0)
    monkeypatch.setattr(_threads, "_SPLIT_MIN_MACS", 0)
    monkeypatch.setattr(conv_module, "_WORKER_COLS_BUDGET_BYTES", 1)
    monkeypatch.setattr(conv_module, "_DEPTHWISE_PARALLEL_MIN_WORK", 0)
    _single(monkeypatch)
    want = np.clip(F.conv2d(x, w, padding=w_shape[-1] // 2, groups=groups) * scale.astype(dtype)[:, None, None]
                   + shift.astype(dtype)[:, None, None], 0, 6)
    np.testing.assert_allclose(conv_module.conv2d_affine(*args), want, rtol=1e-5, atol=1e-5)
    monkeypatch.setattr(_threads, "worker_count", lambda: 2)
    np.testing.assert_allclose(conv_module.conv2d_affine(*args), want, rtol=1e-5, atol=1e-5)


def test_worker_threads_work_in_a_forked_child(two_workers):
    """A child forked after the pool started (a DataLoader-style worker) gets its own pool, not a deadlock."""
    import multiprocessing as mp
    if "fork" not in mp.get_all_start_methods():
        pytest.skip("no fork on this platform")
    x, w = np.ones((4, 3, 8, 8)), np.ones((2, 3, 3, 3))
    want = F.conv2d(x, w)  # starts the pool in the parent
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=lambda: queue.put(F.conv2d(x, w).tolist()))
    child.start()
    try:
        got = queue.get(timeout=60)
    finally:
        child.join(timeout=60)
        if child.is_alive():
            child.kill()
    np.testing.assert_array_equal(np.array(got), want)
    assert child.exitcode == 0


def test_small_convolutions_stay_on_the_calling_thread(monkeypatch, two_workers):
    """Below _SPLIT_MIN_MACS a hand-off costs more than the work (the digits CNN's 64x1x8x8 stem: 0.48 ms split,
    0.33 ms not): forward, input and weight gradients run no job on another thread; big ones still split."""
    sizes = []
    real = _threads.run
    monkeypatch.setattr(_threads, "run", lambda jobs: sizes.append(len(jobs)) or real(jobs))
    rng = np.random.default_rng(7)
    # float64: in float32 this stem runs on the compiled products (the implicit one forward, conv_weight_grad
    # backward), which split on numba's threads, not through _threads.run
    x, w = rng.standard_normal((64, 1, 8, 8)), rng.standard_normal((48, 1, 3, 3))
    out = F.conv2d(x, w, padding=1)
    F.conv2d_backward(np.ones_like(out), x, w, padding=1)
    assert sizes and max(sizes) == 1
    sizes.clear()
    monkeypatch.setattr(_threads, "_SPLIT_MIN_MACS", 0)
    F.conv2d(x, w, padding=1)
    assert max(sizes) == 2

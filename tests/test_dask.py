"""convlayers.dask: chunked filters equal the in-memory ones bit for bit; inference and storage on a real cluster."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import dask  # noqa: E402

from convlayers import filters, nn  # noqa: E402
import convlayers.dask as cd  # noqa: E402

KERNELS = ["sobel_x", "blur", "laplacian", "gaussian", "box", "emboss"]


_PARENT_NUMBA_THREADS = os.environ.get("NUMBA_NUM_THREADS")
_PARENT_ENV = {key: os.environ.get(key) for key in
               ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MALLOC_TRIM_THRESHOLD_")}


@pytest.fixture(scope="module")
def client():
    c = cd.cluster(n_workers=2, memory_limit="2GiB")
    yield c
    c.close()


def chunks_strategy(n):
    """Random chunkings of an axis of length n, including chunks of 1 and 2 (smaller than a 5x5 halo)."""
    return st.lists(st.integers(1, max(1, n)), min_size=1, max_size=8).map(lambda cs: _fit(cs, n))


def _fit(cs, n):
    out, total = [], 0
    for c in cs:
        c = min(c, n - total)
        if c <= 0:
            break
        out.append(c)
        total += c
    if total < n:
        out.append(n - total)
    return tuple(out)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_filters_bit_exact_on_any_chunking(data):
    h = data.draw(st.integers(1, 40), label="h")  # down to images smaller than the kernel
    w = data.draw(st.integers(1, 40), label="w")
    rows, cols = data.draw(chunks_strategy(h), label="rows"), data.draw(chunks_strategy(w), label="cols")
    kname = data.draw(st.sampled_from(KERNELS), label="kernel")
    mode = data.draw(st.sampled_from(["same", "full", "valid"]), label="mode")
    boundary = data.draw(st.sampled_from(["symm", "wrap", "fill"]), label="boundary")
    dtype = data.draw(st.sampled_from([np.float32, np.float64, np.uint8, np.int32]), label="dtype")
    op = data.draw(st.sampled_from(["convolve2d", "correlate2d"]), label="op")
    k0 = filters.get_kernel(kname)
    assume(mode != "valid" or (h >= k0.shape[0] and w >= k0.shape[1]))
    rng = np.random.default_rng(h * 41 + w)
    img = (rng.standard_normal((h, w)) * 50).astype(dtype)
    k = filters.get_kernel(kname)
    if dtype in (np.uint8, np.int32):
        k = np.round(k * 4).astype(np.int32 if dtype == np.int32 else np.uint8)
    else:
        k = k.astype(dtype)
    expected = getattr(filters, op)(img, k, mode=mode, boundary=boundary, fillvalue=3)
    with dask.config.set(scheduler="threads"):
        got = getattr(cd, op)(da.from_array(img, chunks=(rows, cols)), k, mode=mode, boundary=boundary,
                              fillvalue=3).compute()
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("name", filters.SEED_FILTERS)
def test_seed_filters_on_a_stack(name):
    rng = np.random.default_rng(3)
    stack = rng.standard_normal((3, 2, 33, 29)).astype(np.float32)
    lazy = cd.convolve2d(da.from_array(stack, chunks=(2, 1, 10, 7)), filters.get_kernel(name).astype(np.float32))
    got = lazy.compute(scheduler="threads")
    for i in np.ndindex(stack.shape[:2]):
        np.testing.assert_array_equal(got[i], filters.convolve2d(stack[i], filters.get_kernel(name).astype(np.float32),
                                                                 "same", "symm"))


def test_apply_filter_bank_gradient_magnitude_match_in_memory():
    rng = np.random.default_rng(4)
    img = (rng.random((40, 50, 3)) * 255).astype(np.uint8)
    lazy = da.from_array(img, chunks=(9, 13, 3))
    np.testing.assert_array_equal(cd.apply(lazy, "sharpen").compute(), filters.apply(img, "sharpen"))
    bank = cd.filter_bank(lazy[..., 0], "blur,sobel_y,blur")
    assert list(bank) == ["blur", "sobel_y"]
    for n, v in bank.items():
        np.testing.assert_array_equal(v.compute(), filters.apply(img[..., 0], n))
    np.testing.assert_array_equal(cd.gradient_magnitude(lazy[..., 1]).compute(),
                                  filters.gradient_magnitude(img[..., 1]))


def test_fft_sized_kernel_agrees_to_rounding():
    rng = np.random.default_rng(5)
    img = rng.standard_normal((90, 90))
    k = rng.standard_normal((27, 27))  # 729 taps: the FFT route, per chunk
    got = cd.convolve2d(da.from_array(img, chunks=40), k).compute(scheduler="threads")
    np.testing.assert_allclose(got, filters.convolve2d(img, k, "same", "symm"), rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("dtype, shape, method, expected", [
    (np.float32, (3, 3), "auto", True), (np.float64, (1, 7), "auto", True),
    (np.float32, (5, 5), "auto", False),  # 25 taps: the separable route when rank 1, so not banded
    (np.float64, (5, 5), "direct", True), (np.float32, (3, 3), "fft", False),
    (np.uint8, (3, 3), "auto", False), (np.int32, (3, 3), "direct", False), (np.complex64, (3, 3), "auto", False),
])
def test_banded_only_where_the_in_memory_filter_runs_the_direct_kernel(dtype, shape, method, expected):
    from convlayers.dask import _blocks
    assert _blocks.banded(np.ones(shape), method, dtype) is expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_banded_path_bit_exact_with_any_band_height(data):
    """Bands of 1 row up to a whole block, over stacks and every mode/boundary, equal the in-memory filter."""
    from unittest import mock

    from convlayers.dask import _blocks
    h, w = data.draw(st.integers(3, 30), label="h"), data.draw(st.integers(3, 30), label="w")
    rows, cols = data.draw(chunks_strategy(h), label="rows"), data.draw(chunks_strategy(w), label="cols")
    kshape = data.draw(st.sampled_from([(3, 3), (2, 4), (1, 5), (4, 1), (4, 4)]), label="kshape")
    method = data.draw(st.sampled_from(["auto", "direct"]), label="method")
    mode = data.draw(st.sampled_from(["same", "full", "valid"]), label="mode")
    boundary = data.draw(st.sampled_from(["symm", "wrap", "fill"]), label="boundary")
    dtype = data.draw(st.sampled_from([np.float32, np.float64]), label="dtype")
    op = data.draw(st.sampled_from(["convolve2d", "correlate2d"]), label="op")
    band = data.draw(st.integers(1, 4096), label="band_bytes")  # 1 byte: one output row per band
    assume(mode != "valid" or (h >= kshape[0] and w >= kshape[1]))
    rng = np.random.default_rng(h * 31 + w)
    stack = rng.standard_normal((2, h, w)).astype(dtype)
    k = rng.standard_normal(kshape).astype(dtype)
    with mock.patch.object(_blocks, "_BAND_BYTES", band):
        got = getattr(cd, op)(da.from_array(stack, chunks=(1, rows, cols)), k, mode=mode, boundary=boundary,
                              fillvalue=-2, method=method).compute(scheduler="threads")
    for i in range(2):
        expected = getattr(filters, op)(stack[i], k, mode=mode, boundary=boundary, fillvalue=-2, method=method)
        assert got[i].dtype == expected.dtype
        np.testing.assert_array_equal(got[i], expected)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_store_filters_each_block_into_the_target_bit_exact(data):
    """cd.store writes every block in place (dask's store never runs) into C-ordered, Fortran-ordered and
    strided targets, over stacks, chunkings, band heights, modes, boundaries and dtypes."""
    from unittest import mock

    from convlayers.dask import _blocks
    h, w = data.draw(st.integers(3, 30), label="h"), data.draw(st.integers(3, 30), label="w")
    rows, cols = data.draw(chunks_strategy(h), label="rows"), data.draw(chunks_strategy(w), label="cols")
    kshape = data.draw(st.sampled_from([(3, 3), (2, 4), (1, 5), (5, 5)]), label="kshape")
    mode = data.draw(st.sampled_from(["same", "full", "valid"]), label="mode")
    boundary = data.draw(st.sampled_from(["symm", "wrap", "fill"]), label="boundary")
    dtype = data.draw(st.sampled_from([np.float32, np.float64, np.int32]), label="dtype")
    layout = data.draw(st.sampled_from(["C", "F", "view"]), label="target")
    band = data.draw(st.integers(1, 4096), label="band_bytes")
    assume(mode != "valid" or (h >= kshape[0] and w >= kshape[1]))
    rng = np.random.default_rng(h * 37 + w)
    stack = (rng.standard_normal((2, h, w)) * 20).astype(dtype)
    k = (rng.standard_normal(kshape) * 3).astype(dtype)
    lazy = cd.convolve2d(da.from_array(stack, chunks=(1, rows, cols)), k, mode=mode, boundary=boundary,
                         fillvalue=-2)
    if layout == "view":  # rows of a wider array, not C-contiguous as a whole
        target = np.full(lazy.shape[:-1] + (lazy.shape[-1] + 5,), 99, lazy.dtype)[..., 2:-3]
    else:
        target = np.full(lazy.shape, 99, lazy.dtype, order=layout)
    with mock.patch.object(_blocks, "_BAND_BYTES", band), \
            mock.patch.object(da, "store", side_effect=AssertionError("dask's store ran")):
        assert cd.store(lazy, target, scheduler="threads") is None
    for i in range(2):
        np.testing.assert_array_equal(target[i], filters.convolve2d(stack[i], k, mode=mode, boundary=boundary,
                                                                    fillvalue=-2))


def test_store_falls_back_to_dask_store_for_other_arrays_and_targets():
    from unittest import mock
    rng = np.random.default_rng(12)
    img = rng.standard_normal((30, 40)).astype(np.float32)
    lazy = da.from_array(img, chunks=(11, 13))
    for arr, target, expected in [
        (cd.gradient_magnitude(lazy), np.empty((30, 40), np.float32), filters.gradient_magnitude(img)),
        # another dtype: dask's store casts on assignment
        (cd.convolve2d(lazy, filters.get_kernel("blur").astype(np.float32)), np.empty((30, 40), np.float64),
         filters.convolve2d(img, filters.get_kernel("blur").astype(np.float32), "same", "symm"))]:
        with mock.patch.object(da, "store", wraps=da.store) as spy:
            cd.store(arr, target, scheduler="threads")
        assert spy.call_count == 1
        np.testing.assert_array_equal(target, expected)


def test_store_compute_false_writes_when_computed():
    img = np.arange(120.0).reshape(10, 12)
    k = np.ones((3, 3))
    out = np.zeros_like(img)
    later = cd.store(cd.convolve2d(da.from_array(img, chunks=5), k), out, compute=False)
    assert not out.any()
    later.compute(scheduler="threads")
    np.testing.assert_array_equal(out, filters.convolve2d(img, k, "same", "symm"))
    out2 = np.zeros((10, 12))
    cd.store(da.from_array(img, chunks=5) + 1, out2, compute=False).compute(scheduler="threads")  # dask's store
    np.testing.assert_array_equal(out2, img + 1)


def test_store_bad_input():
    lazy = cd.convolve2d(da.zeros((8, 8), chunks=4), np.ones((3, 3)))
    with pytest.raises(TypeError, match="store: array must be a dask array"):
        cd.store(np.zeros((8, 8)), np.zeros((8, 8)))
    with pytest.raises(TypeError, match="store: target must be array-like"):
        cd.store(lazy, [[0.0] * 8] * 8)
    target = np.zeros((8, 9))
    with pytest.raises(ValueError, match=r"store: target has shape \(8, 9\), the array \(8, 8\)"):
        cd.store(lazy, target)
    assert not target.any()  # nothing written


def test_one_halo_task_per_input_block():
    """Every input block's thin slices are cut by one task, not one task per slice."""
    lazy = cd.convolve2d(da.zeros((2, 40, 40), chunks=(1, 10, 10)), np.ones((3, 3)))
    keys = [k for k in dict(lazy.__dask_graph__()) if isinstance(k, tuple)]
    halo = [k for k in keys if k[0].startswith("convlayers-halo")]
    assert len(halo) == len(set(halo)) == 2 * 4 * 4
    np.testing.assert_array_equal(lazy.compute(scheduler="sync"), np.full((2, 40, 40), 0.0))


@pytest.mark.parametrize("call, exc, match", [
    (lambda: cd.convolve2d(np.ones((4, 4)), np.ones((3, 3))), TypeError, "dask array"),
    (lambda: cd.convolve2d(da.ones(4, chunks=2), np.ones((3, 3))), ValueError, "at least 2 dimensions"),
    (lambda: cd.convolve2d(da.ones((4, 4), chunks=2), np.ones(3)), ValueError, "kernel must be a non-empty 2-D"),
    (lambda: cd.convolve2d(da.ones((4, 4), chunks=2), np.ones((3, 3)), mode="middle"), ValueError, "mode"),
    (lambda: cd.convolve2d(da.ones((4, 4), chunks=2), np.ones((3, 3)), boundary="reflect"), ValueError, "boundary"),
    (lambda: cd.convolve2d(da.ones((2, 2), chunks=2), np.ones((3, 3)), mode="valid"), ValueError, "at least as large"),
    (lambda: cd.convolve2d(da.ones((4, 4), chunks=2, dtype=int), np.ones((3, 3), int), boundary="fill",
                           fillvalue=1.5j), ValueError, "complex"),
    (lambda: cd.filter_bank(da.ones((4, 4), chunks=2), ["nope"]), ValueError, "unknown filter"),
    (lambda: cd.apply(da.ones((2, 4, 4, 1), chunks=2), "blur"), ValueError, "H x W"),
])
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ----------------------------------------------------------------------------- the real cluster


def test_filters_on_local_cluster(client):
    rng = np.random.default_rng(6)
    img = rng.standard_normal((300, 280)).astype(np.float32)
    x = client.scatter(img)
    lazy = da.from_delayed(dask.delayed(x), img.shape, dtype=img.dtype).rechunk((64, 50))
    got = cd.gradient_magnitude(lazy).compute()
    np.testing.assert_array_equal(got, filters.gradient_magnitude(img))


def test_cluster_limits_numba_in_workers_and_leaves_this_process_alone(client):
    # the nanny once wrote NUMBA_NUM_THREADS=1 into this process's environment, and numba then
    # refused every later compile here (1734 failures in CI)
    def numba_threads():
        import numba
        return os.environ.get("NUMBA_NUM_THREADS"), numba.config.NUMBA_NUM_THREADS

    for env_value, threads in client.run(numba_threads).values():
        assert env_value == "1" and threads == 1
    assert os.environ.get("NUMBA_NUM_THREADS") == _PARENT_NUMBA_THREADS
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MALLOC_TRIM_THRESHOLD_"):
        assert os.environ.get(key) == _PARENT_ENV[key], key
    # a fresh compile in this process after the cluster started (numba reloads its config then)
    import numba

    @numba.njit(parallel=True)
    def total(a):
        s = 0.0
        for i in numba.prange(a.shape[0]):
            s += a[i]
        return s

    assert total(np.ones(1000)) == 1000.0


def _digits_model():
    import convlayers
    convlayers.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 4 * 4, 10))


def test_predict_array_on_cluster_equals_in_memory(client):
    model = _digits_model()
    model.train()  # predict must run a copy in eval mode and leave this one alone
    rng = np.random.default_rng(7)
    x = rng.standard_normal((37, 1, 8, 8)).astype(np.float32)
    out = cd.predict(model, da.from_array(x, chunks=(10, 1, 8, 8)))
    assert out.shape == (37, 10) and out.chunks[0] == (10, 10, 10, 7)
    got = out.compute()
    assert model.training
    # the same batches in this process: equal to rounding (a worker has one thread, this process two, and
    # the convolution's tiling, hence its summation order, follows the thread count)
    np.testing.assert_allclose(got, model.eval()(x), rtol=1e-5, atol=1e-6)
    # batch_size rechunks; preprocess runs on each batch
    got2 = cd.predict(model, da.from_array(x, chunks=37), batch_size=16, preprocess=lambda b: b * 2).compute()
    np.testing.assert_allclose(got2, model(x * 2), rtol=1e-5, atol=1e-6)


def _load_sample(path):
    return np.load(path, allow_pickle=False)


def test_predict_paths(client, tmp_path):
    model = _digits_model().eval()
    rng = np.random.default_rng(8)
    x = rng.standard_normal((9, 1, 8, 8)).astype(np.float32)
    paths = []
    for i in range(9):
        p = tmp_path / f"img{i}.npy"
        np.save(p, x[i])
        paths.append(str(p))
    got = cd.predict(model, paths, batch_size=4, preprocess=_load_sample).compute()
    np.testing.assert_allclose(got, model(x), rtol=1e-5, atol=1e-6)


def test_predict_bad_input():
    model = _digits_model()
    with pytest.raises(ValueError, match="batch_size"):
        cd.predict(model, da.zeros((4, 1, 8, 8), chunks=2), batch_size=0)
    with pytest.raises(ValueError, match="need preprocess"):
        cd.predict(model, ["a.png"])
    with pytest.raises(TypeError, match="dask array or a sequence"):
        cd.predict(model, 3)
    with pytest.raises(TypeError, match="callable"):
        cd.predict(42, da.zeros((4, 1, 8, 8), chunks=2))


def _worker_rss(dask_worker):
    import psutil
    return psutil.Process().memory_info().rss


@pytest.mark.slow
def test_worker_memory_stays_chunk_sized(client, tmp_path):
    """A 16k x 16k float32 image (1 GiB) filtered in 2k chunks: no worker holds more than a few chunks."""
    n, c = 16384, 2048
    src = tmp_path / "big.npy"
    mm = np.lib.format.open_memmap(src, mode="w+", dtype=np.float32, shape=(n, n))
    for r in range(0, n, c):
        mm[r:r + c] = np.float32(r % 7)
    mm.flush()
    del mm
    before = client.run(_worker_rss)
    out = cd.save(cd.gradient_magnitude(cd.open_array(src, chunks=c)), tmp_path / "mag.zarr")
    peaks = client.run(_worker_rss)
    whole = n * n * 4
    for addr, rss in peaks.items():
        assert rss - before[addr] < whole / 2, f"{addr} grew by {(rss - before[addr]) / 2**20:.0f} MiB"
    sample = cd.open_array(out)[c - 2:c + 2, :5].compute()
    ref = filters.gradient_magnitude(np.load(src, mmap_mode="r")[c - 8:c + 8, :16])[6:10, :5]
    np.testing.assert_array_equal(sample, ref)


def _slow_gradient(block):
    time.sleep(0.3)
    return block


@pytest.mark.slow
def test_worker_killed_mid_run_result_still_exact(client):
    rng = np.random.default_rng(9)
    img = rng.standard_normal((400, 400))
    lazy = cd.gradient_magnitude(da.from_array(img, chunks=100).map_blocks(_slow_gradient, dtype=img.dtype))
    pids = client.run(os.getpid)
    future = client.compute(lazy)
    time.sleep(1.0)
    os.kill(next(iter(pids.values())), signal.SIGKILL)  # a worker dies mid-run; its nanny starts another
    got = future.result(timeout=120)
    np.testing.assert_array_equal(got, filters.gradient_magnitude(img))


# ----------------------------------------------------------------------------- storage


def test_npy_zarr_tiff_roundtrip(tmp_path):
    rng = np.random.default_rng(10)
    img = rng.standard_normal((70, 90)).astype(np.float32)
    np.save(tmp_path / "a.npy", img)
    a = cd.open_array(tmp_path / "a.npy", chunks=(32, 40))
    assert a.chunks == ((32, 32, 6), (40, 40, 10))
    np.testing.assert_array_equal(a.compute(), img)
    cd.save(a * 2, tmp_path / "b.zarr")
    np.testing.assert_array_equal(cd.open_array(tmp_path / "b.zarr").compute(), img * 2)
    cd.save(a + 1, tmp_path / "c.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"), img + 1)
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(tmp_path / "t.tif", img, tile=(32, 32))
    t = cd.open_array(tmp_path / "t.tif")
    assert t.chunks[0][0] == 32
    np.testing.assert_array_equal(t.compute(), img)


def test_storage_bad_files(tmp_path):
    bad = tmp_path / "bad.npy"
    with open(bad, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)})
    with pytest.raises(ValueError, match="header claims"):
        cd.open_array(bad)
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([None, 1], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="Python objects"):
        cd.open_array(obj)
    (tmp_path / "junk.npy").write_bytes(b"not a numpy file")
    with pytest.raises(ValueError, match="not a valid .npy"):
        cd.open_array(tmp_path / "junk.npy")
    with pytest.raises(FileNotFoundError):
        cd.open_array(tmp_path / "missing.npy")
    with pytest.raises(ValueError, match="not a .npy file"):
        (tmp_path / "x.png").write_bytes(b"")
        cd.open_array(tmp_path / "x.png")
    np.save(tmp_path / "exists.npy", np.zeros(2))
    with pytest.raises(FileExistsError):
        cd.save(da.zeros(2, chunks=1), tmp_path / "exists.npy")


def _boom(block):
    raise RuntimeError("disk on fire")


def test_save_npy_filters_blocks_into_the_file_on_a_cluster(client, tmp_path):
    """On a cluster each worker maps the .npy and filters its blocks into it; a numpy target there goes
    through dask's store (an in-process array cannot be reached from the workers)."""
    rng = np.random.default_rng(13)
    img = rng.standard_normal((64, 50)).astype(np.float32)
    k = filters.get_kernel("sobel_y").astype(np.float32)
    lazy = cd.convolve2d(da.from_array(img, chunks=(20, 16)), k)
    cd.save(lazy, tmp_path / "edges.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "edges.npy"), filters.convolve2d(img, k, "same", "symm"))
    from convlayers.dask import storage
    assert not storage._direct(lazy, np.empty(lazy.shape, lazy.dtype), None)  # the client is the default
    assert storage._direct(lazy, np.empty(lazy.shape, lazy.dtype), "threads")


def test_failed_save_leaves_nothing(tmp_path):
    lazy = da.zeros((10, 10), chunks=5).map_blocks(_boom, dtype=float)
    with pytest.raises(RuntimeError, match="disk on fire"):
        cd.save(lazy, tmp_path / "out.npy")
    with pytest.raises(RuntimeError, match="disk on fire"):
        cd.save(lazy, tmp_path / "out.zarr")
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- the command line


def test_cli_filters_dask(client, tmp_path, capsys):
    from convlayers.cli import main
    rng = np.random.default_rng(11)
    img = (rng.random((150, 130)) * 255).astype(np.float32)
    np.save(tmp_path / "big.npy", img)
    addr = client.scheduler.address
    store, out = tmp_path / "resp.zarr", tmp_path / "g.png"
    code = main(["filters", str(tmp_path / "big.npy"), "--dask", "--scheduler", addr, "--chunks", "64",
                 "--filters", "sobel_x,blur", "--save-dir", str(store), "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert out.stat().st_size > 1000
    for name in ("sobel_x", "blur"):
        np.testing.assert_array_equal(cd.open_array(store, component=name).compute(), filters.apply(img, name))
    assert "150 x 130" in capsys.readouterr().out


@pytest.mark.parametrize("extra, code, match", [
    (["--chunks", "4"], 2, "--chunks"),
    (["--save-dir", "EXISTS"], 2, "exists"),
    (["--no-dask-scheduler"], 2, "--scheduler needs --dask"),
    (["--corrupt"], 1, "not a valid .npy"),
])
def test_cli_filters_dask_errors(tmp_path, capsys, extra, code, match):
    from convlayers.cli import main
    src = tmp_path / "in.npy"
    np.save(src, np.zeros((40, 40), np.float32))
    args = ["filters", str(src), "--dask", "--out", str(tmp_path / "g.png")]
    if extra == ["--save-dir", "EXISTS"]:
        (tmp_path / "EXISTS").mkdir()
        args += ["--save-dir", str(tmp_path / "EXISTS")]
    elif extra == ["--no-dask-scheduler"]:
        args = ["filters", str(src), "--scheduler", "tcp://127.0.0.1:1", "--out", str(tmp_path / "g.png")]
    elif extra == ["--corrupt"]:
        src.write_bytes(b"\x93NUMPY garbage")
        args += ["--save-dir", str(tmp_path / "r.zarr")]
    else:
        args += extra
    before = set(os.listdir(tmp_path))
    try:
        got = main(args)
    except SystemExit as exc:  # argparse-style usage errors exit
        got = exc.code
    assert got == code
    assert match in capsys.readouterr().err
    assert set(os.listdir(tmp_path)) == before  # nothing written


def test_predict_with_an_onnx_model(client):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    import io as _io

    import convlayers.onnx as co

    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 8 * 8, 10)).eval()
    f = _io.BytesIO()
    torch.onnx.export(net, torch.zeros(1, 1, 8, 8), f, dynamo=False, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    model = co.load(f.getvalue())
    x = np.random.default_rng(12).standard_normal((19, 1, 8, 8)).astype(np.float32)
    got = cd.predict(model, da.from_array(x, chunks=(5, 1, 8, 8))).compute()
    with torch.no_grad():
        np.testing.assert_allclose(got, net(torch.from_numpy(x)).numpy(), rtol=1e-4, atol=1e-5)

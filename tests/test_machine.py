"""convlayers._machine: the machine record, its fallbacks, and the tile budgets that follow the caches."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import convlayers.functional as F
import convlayers.functional.conv as conv_module
from convlayers import _machine

KIB, MIB = 2**10, 2**20


@pytest.fixture(autouse=True)
def _fresh_record():
    """Each test reads the machine anew, and leaves no fake record cached behind it."""
    _machine._read_hardware.cache_clear()
    conv_module._machine_budgets.cache_clear()
    yield
    _machine._read_hardware.cache_clear()
    conv_module._machine_budgets.cache_clear()


def _fake_machine(tmp_path, monkeypatch, caches, flags="fpu sse4_2 avx2 fma", model="Test CPU 9000"):
    """Point _machine at a fake /proc/cpuinfo and cpu0 cache directory; caches: [(level, type, size text)]."""
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    for i, (level, kind, size) in enumerate(caches):
        d = cache_dir / f"index{i}"
        d.mkdir()
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(f"{kind}\n")
        (d / "size").write_text(f"{size}\n")
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: {model}\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    monkeypatch.setattr(_machine, "_CPUINFO", str(cpuinfo))
    monkeypatch.setattr(_machine, "_CACHE_DIR", str(cache_dir))


LEVELS = {"avx512f", "avx2", "fma", "sse4.2"}


def test_record_of_this_machine():
    rec = _machine.record()
    json.dumps(rec)  # plain JSON types, as results.json stores it
    for key in ("cpu_model", "llvm_cpu", "arch", "isa", "isa_level", "cores", "logical_cpus", "l1d_bytes",
                "l2_bytes", "l3_bytes", "numba_threading_layer", "numba_threads", "blas", "openblas_coretype"):
        assert key in rec
    assert 1 <= rec["cores"] <= (os.cpu_count() or rec["cores"])
    if hasattr(os, "sched_getaffinity"):
        assert rec["cores"] == len(os.sched_getaffinity(0))
    assert rec["numba_threads"] >= 1
    assert rec["openblas_coretype"] == (os.environ.get("OPENBLAS_CORETYPE") or None)
    if os.path.exists("/proc/cpuinfo") and rec["arch"] in ("x86_64", "AMD64"):
        assert rec["cpu_model"]
        assert set(rec["isa"]) <= LEVELS and rec["isa_level"] == rec["isa"][0]
        assert "sse4.2" in rec["isa"]   # every x86-64 CPU numba supports well has it
    if os.path.isdir("/sys/devices/system/cpu/cpu0/cache"):
        assert 4 * KIB <= rec["l1d_bytes"] <= 1 * MIB
        assert 64 * KIB <= rec["l2_bytes"] <= 64 * MIB
        assert rec["l3_bytes"] is None or rec["l2_bytes"] <= rec["l3_bytes"] <= 4096 * MIB
    blas = [b for b in rec["blas"] if b["user_api"] == "blas"]
    assert blas and all(b["internal_api"] for b in blas)   # NumPy's own BLAS at least
    line = _machine.summary(rec)
    assert rec["cpu_model"] in line and "L2" in line and "BLAS" in line


def test_hardware_is_read_once_and_not_shared(monkeypatch):
    first = _machine.hardware()
    monkeypatch.setattr(_machine, "_CPUINFO", "/nonexistent/cpuinfo")   # not read again: cached
    assert _machine.hardware() == first
    _machine.record()["cores"] = -1
    if first["isa"] is not None:
        _machine.hardware()["isa"].append("mmx")
    assert _machine.hardware() == first


def test_fake_sysfs_is_parsed(tmp_path, monkeypatch):
    _fake_machine(tmp_path, monkeypatch, [(1, "Data", "32K"), (1, "Instruction", "64K"), (2, "Unified", "2048K"),
                                          (3, "Unified", "16M")])
    hw = _machine.hardware()
    assert hw["cpu_model"] == "Test CPU 9000"
    assert hw["isa"] == ["avx2", "fma", "sse4.2"] and hw["isa_level"] == "avx2"
    assert (hw["l1d_bytes"], hw["l2_bytes"], hw["l3_bytes"]) == (32 * KIB, 2 * MIB, 16 * MIB)
    assert "L1d 32 KiB, L2 2 MiB, L3 16 MiB" in _machine.summary(_machine.record())


def test_without_proc_or_sys_fields_are_none(monkeypatch):
    monkeypatch.setattr(_machine, "_CPUINFO", "/nonexistent/cpuinfo")
    monkeypatch.setattr(_machine, "_CACHE_DIR", "/nonexistent/cache")
    monkeypatch.setattr(_machine, "_llvm_host", lambda: (None, {}))
    monkeypatch.setattr(_machine.platform, "processor", lambda: "")

    def no_affinity(pid):
        raise OSError("not here")
    monkeypatch.setattr(os, "sched_getaffinity", no_affinity, raising=False)
    rec = _machine.record()
    assert rec["cpu_model"] is None and rec["isa"] is None and rec["isa_level"] is None
    assert rec["l1d_bytes"] is rec["l2_bytes"] is rec["l3_bytes"] is None
    assert rec["cores"] == os.cpu_count()
    assert "L2 ?" in _machine.summary(rec)


def test_unreadable_or_garbage_cache_files(tmp_path, monkeypatch):
    _fake_machine(tmp_path, monkeypatch, [(1, "Data", "lots"), (2, "Unified", ""), (3, "Unified", "0K")],
                  flags="fpu")
    (tmp_path / "cache" / "index9").mkdir()    # no files in it at all
    hw = _machine.hardware()
    assert hw["l1d_bytes"] is hw["l2_bytes"] is hw["l3_bytes"] is None
    assert hw["isa"] == [] and hw["isa_level"] is None


def test_isa_from_llvm_when_cpuinfo_is_missing(monkeypatch):
    monkeypatch.setattr(_machine, "_CPUINFO", "/nonexistent/cpuinfo")
    monkeypatch.setattr(_machine, "_llvm_host", lambda: ("znver4", {"avx512f": True, "avx2": True, "fma": True,
                                                                    "sse4.2": True}))
    hw = _machine.hardware()
    assert hw["llvm_cpu"] == "znver4" and hw["isa_level"] == "avx512f"


@pytest.mark.parametrize("l2, l3, want", [
    ("1024K", "32768K", (8 * MIB, 2 * MIB)),    # the Zen 5 VM the sizes were measured on: unchanged
    ("2048K", "32M", (8 * MIB, 4 * MIB)),       # twice the L2: twice the worker's tile
    ("512K", "16M", (4 * MIB, 1 * MIB)),        # half the caches: half the tiles
    ("64K", "2M", (2 * MIB, 512 * KIB)),        # floors
    ("16M", "512M", (8 * MIB, 4 * MIB)),        # ceilings (peak memory)
    (None, None, (8 * MIB, 2 * MIB)),           # unknown caches: the measured sizes
])
def test_tile_budgets_follow_the_caches(tmp_path, monkeypatch, l2, l3, want):
    caches = [(1, "Data", "48K")] + ([(2, "Unified", l2), (3, "Unified", l3)] if l2 else [])
    _fake_machine(tmp_path, monkeypatch, caches)
    assert conv_module._machine_budgets() == want
    assert (conv_module._budget(1), conv_module._budget(2)) == want


@pytest.mark.parametrize("l2, want", [
    ("2048K", 2 * MIB),      # the Intel Xeon VM both were measured on: unchanged
    ("1024K", 1 * MIB), ("32K", 256 * KIB), ("64M", 8 * MIB),  # scaled, floor, ceiling
    (None, 2 * MIB),         # unknown: the measured size
])
def test_winograd_blocks_and_dask_bands_follow_the_l2(tmp_path, monkeypatch, l2, want):
    from convlayers.functional import _winograd
    caches = [(1, "Data", "48K")] + ([(2, "Unified", l2)] if l2 else [])
    _fake_machine(tmp_path, monkeypatch, caches)
    assert _winograd._chunk_bytes() == want
    blocks = pytest.importorskip("convlayers.dask._blocks")
    assert blocks.band_bytes() == want
    monkeypatch.setattr(blocks, "_BAND_BYTES", 123)  # a set value (tests) wins
    assert blocks.band_bytes() == 123


def test_tile_budgets_on_this_machine():
    hw = _machine.hardware()
    serial, worker = conv_module._machine_budgets()
    assert 2 * MIB <= serial <= 8 * MIB and 512 * KIB <= worker <= 4 * MIB
    if hw["l2_bytes"]:
        assert worker == min(max(2 * hw["l2_bytes"], 512 * KIB), 4 * MIB)


def test_set_budgets_win_and_results_do_not_change(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((3, 4, 12, 12)), rng.standard_normal((5, 4, 3, 3))
    want = F.conv2d(x, w, padding=1)
    _fake_machine(tmp_path, monkeypatch, [(2, "Unified", "64K"), (3, "Unified", "1M")])  # smallest tiles
    np.testing.assert_allclose(F.conv2d(x, w, padding=1), want, rtol=1e-13)
    monkeypatch.setattr(conv_module, "_COLS_BUDGET_BYTES", 1)
    monkeypatch.setattr(conv_module, "_WORKER_COLS_BUDGET_BYTES", 3)
    assert (conv_module._budget(1), conv_module._budget(4)) == (1, 3)


def test_record_is_lazy_and_leaves_numba_threading_alone():
    """import convlayers does not read the machine, and a record does not start numba's threading layer."""
    code = ("import sys, convlayers; assert 'convlayers._machine' not in sys.modules; "
            "from convlayers import _machine; rec = _machine.record(); "
            "from numba.np.ufunc import parallel; assert not parallel._is_initialized; "
            "print(rec['numba_threading_layer'])")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()


def _thp(tmp_path, enabled, defrag):
    for name, value in (("enabled", enabled), ("defrag", defrag)):
        if value is not None:
            (tmp_path / name).write_text(value + "\n")
    return str(tmp_path)


@pytest.mark.parametrize("enabled, defrag, stall", [
    ("always [madvise] never", "always defer defer+madvise [madvise] never", True),
    ("[always] madvise never", "[always] defer defer+madvise madvise never", True),
    ("always madvise [never]", "always defer defer+madvise [madvise] never", False),  # THP off
    ("always [madvise] never", "always defer [defer+madvise] madvise never", False),  # compaction deferred
    ("always [madvise] never", "always defer defer+madvise madvise [never]", False),
    ("garbage", "[madvise]", False),
    (None, None, False),  # no sysfs (another OS, a container without it)
])
def test_huge_page_stall_from_sysfs(tmp_path, enabled, defrag, stall):
    assert _machine.huge_page_faults_stall(_thp(tmp_path, enabled, defrag)) is stall


def _numpy_flag():
    from numpy._core import multiarray
    flag = multiarray._set_madvise_hugepage(True)
    multiarray._set_madvise_hugepage(flag)
    return flag


@pytest.mark.parametrize("stall", [True, False])
def test_numpy_huge_pages_off_only_where_faults_stall(monkeypatch, stall):
    from numpy._core import multiarray

    from convlayers import _kernels
    before = _numpy_flag()
    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)
    monkeypatch.setattr(_machine, "huge_page_faults_stall", lambda: stall)
    try:
        multiarray._set_madvise_hugepage(True)
        _kernels._numpy_huge_pages()
        assert _numpy_flag() is (not stall)
        # the user's NUMPY_MADVISE_HUGEPAGE wins, whatever the machine
        multiarray._set_madvise_hugepage(True)
        monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "1")
        _kernels._numpy_huge_pages()
        assert _numpy_flag() is True
    finally:
        multiarray._set_madvise_hugepage(before)


def test_numpy_huge_pages_in_a_fresh_process():
    """What a user's process gets: the machine's choice, recorded with the machine, and the env var kept."""
    code = ("import json, convlayers.functional; from convlayers import _machine; "
            "print(json.dumps([_machine.huge_page_faults_stall(), _machine.record()['numpy_huge_pages']]))")
    env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    stall, flag = json.loads(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                            text=True, check=True).stdout)
    assert flag is (not stall)
    env["NUMPY_MADVISE_HUGEPAGE"] = "1"
    _, flag = json.loads(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                        check=True).stdout)
    assert flag is True

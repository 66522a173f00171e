"""Read-only installs: convlayers imports and runs when nothing numba could cache into is writable.

numba's ``cache=True`` raises "cannot cache function ...: no locator
available" at import when the package's ``__pycache__``, the user's cache
directory and ``NUMBA_CACHE_DIR`` are all unwritable.  Each test copies the
package to a temporary directory whose ``__pycache__`` entries are plain files
(so that even root cannot create them), points HOME, XDG_CACHE_HOME,
NUMBA_CACHE_DIR and TMPDIR below a file, and runs convlayers there in a
subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "convlayers"

SCRIPT = r'''
import json, time, warnings
t0 = time.perf_counter()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import numpy as np
    import convlayers, convlayers.functional as F
    t_import = time.perf_counter() - t0
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    w = np.ones((4, 3, 3, 3), np.float32)
    t1 = time.perf_counter()
    y = F.conv2d(x, w, padding=1)
    t_first = time.perf_counter() - t1
    results = {"conv2d": float(y.sum()), "max_pool2d": float(F.max_pool2d(x, 2).sum())}
    OPS
    t1 = time.perf_counter()
    F.conv2d(x, w, padding=1)
    t_second = time.perf_counter() - t1
print(json.dumps({"results": results, "import": t_import, "first_conv2d": t_first, "second_conv2d": t_second,
                  "cache_warnings": [str(c.message) for c in caught if "cache" in str(c.message)]}))
'''

MORE_OPS = r'''
    from convlayers import filters, models
    results["batch_norm"] = float(F.batch_norm(x, np.zeros(3), np.ones(3), training=True).sum())
    results["avg_pool2d"] = float(F.avg_pool2d(x, 3, 1, 1).sum())
    results["adaptive_avg_pool2d"] = float(F.adaptive_avg_pool2d(x, 3).sum())
    results["depthwise"] = float(F.conv2d(x, np.ones((3, 1, 3, 3), np.float32), groups=3).sum())
    results["filters"] = float(filters.apply(x[0, 0].astype(np.float64), "gaussian").sum())
    net = models.digits_cnn()
    net.eval()
    results["digits_cnn"] = float(net(np.zeros((1, 1, 28, 28), np.float32)).sum())
'''


def _run(tmp_path, script, env_extra=None):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file: nothing can be created below it")
    pkg_root = tmp_path / "site"
    shutil.copytree(SRC, pkg_root / "convlayers", ignore=shutil.ignore_patterns("__pycache__"))
    for d in [pkg_root / "convlayers"] + [p for p in (pkg_root / "convlayers").rglob("*") if p.is_dir()]:
        (d / "__pycache__").write_text("a file where numba would put its cache")
        if os.geteuid() != 0:
            d.chmod(0o555)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(PYTHONPATH=str(pkg_root), HOME=str(blocker / "home"), XDG_CACHE_HOME=str(blocker / "cache"),
               NUMBA_CACHE_DIR=str(blocker / "numba"), TMPDIR=str(blocker / "tmp"), PYTHONDONTWRITEBYTECODE="1")
    env.update(env_extra or {})
    try:
        proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                              timeout=900, cwd=str(tmp_path))
    finally:
        for d in (pkg_root / "convlayers").rglob("*"):
            if d.is_dir():
                d.chmod(0o755)
        (pkg_root / "convlayers").chmod(0o755)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _check(report):
    assert len(report["cache_warnings"]) == 1, report["cache_warnings"]  # warned once, not per kernel
    assert "NUMBA_CACHE_DIR" in report["cache_warnings"][0]


def test_import_and_ops_work_with_nothing_writable(tmp_path):
    import convlayers.functional as F

    report = _run(tmp_path, SCRIPT.replace("OPS", "pass"))
    _check(report)
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    assert report["results"]["conv2d"] == pytest.approx(float(F.conv2d(x, np.ones((4, 3, 3, 3), np.float32),
                                                                        padding=1).sum()), rel=1e-6)
    assert report["results"]["max_pool2d"] == pytest.approx(float(F.max_pool2d(x, 2).sum()), rel=1e-6)
    print(f"read-only install: import {report['import']:.2f} s, first conv2d {report['first_conv2d']:.2f} s, "
          f"second {report['second_conv2d'] * 1e3:.2f} ms")


@pytest.mark.slow
def test_every_kind_of_op_works_with_nothing_writable(tmp_path):
    report = _run(tmp_path, SCRIPT.replace("OPS", MORE_OPS.strip()))
    _check(report)
    assert all(np.isfinite(v) for v in report["results"].values()), report["results"]


def test_writable_cache_dir_gets_no_warning(tmp_path):
    cache = tmp_path / "numba-cache"
    report = _run(tmp_path, SCRIPT.replace("OPS", "pass"), {"NUMBA_CACHE_DIR": str(cache)})
    assert report["cache_warnings"] == []
    assert any(cache.rglob("*.nbi"))  # it did cache there


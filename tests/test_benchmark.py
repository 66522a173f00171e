"""The benchmark harness runs end to end (tiny repeats) and reports what it promises."""

from __future__ import annotations

import json

import numpy as np
import pytest

from convlayers import benchmark
from convlayers.cli import main


def test_time_pair_alternates_and_takes_medians():
    calls = []
    a, b = benchmark.time_pair(lambda: calls.append("a"), lambda: calls.append("b"), repeats=3, warm=0)
    assert calls == ["a", "a", "b", "b"] * 3 and a >= 0 and b >= 0


def test_time_pair_warms_each_side_for_the_given_time(monkeypatch):
    """On a clock that each call advances by 2 ms, 9 ms of warm-up is exactly 5 untimed calls per side.

    A fake clock: with real sleeps a loaded machine fits fewer calls in the window and the
    count (not the rule) changes."""
    clock = [0.0]
    monkeypatch.setattr(benchmark.time, "perf_counter", lambda: clock[0])
    calls = []

    def slow(tag):
        calls.append(tag)
        clock[0] += 0.002

    benchmark.time_pair(lambda: slow("a"), lambda: slow("b"), repeats=2, warm=0.009)
    runs = "".join(calls)
    # 5 untimed calls (0.010 s >= 0.009 s), then the timed one, for each side in turn
    assert runs == ("a" * 6 + "b" * 6) * 2, runs


def test_geomean():
    assert benchmark.geomean([0.5, 2.0]) == pytest.approx(1.0)
    assert benchmark.geomean([4.0]) == pytest.approx(4.0)


def test_every_case_computes_the_same_numbers_as_its_peer():
    """A benchmark that times different work on each side would be meaningless."""
    rng = np.random.default_rng(0)
    for name, group, make in benchmark.cases(quick=True):
        if "@224" in name or "mobilenet" in name:
            continue  # the large cases are covered by the functional tests
        ours, peer = make(rng)
        np.testing.assert_allclose(ours(), peer(), rtol=1e-3, atol=1e-3, err_msg=name)


def test_quick_cli_run_writes_json(tmp_path, monkeypatch, capsys):
    small = [c for c in benchmark.cases(quick=True) if c[0].startswith(("pointwise", "max_pool2d"))]
    monkeypatch.setattr(benchmark, "cases", lambda quick: small)
    out = tmp_path / "r.json"
    assert main(["bench", "--repeats", "1", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [c["name"] for c in data["cases"]] == [c[0] for c in small]
    assert all(c["ratio"] > 0 for c in data["cases"])
    assert "geometric mean" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["bench", "--threads", "0"], ["bench", "--repeats", "0"]])
def test_bad_arguments_exit_2(argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


def test_memory_and_startup_probes_report_numbers():
    mem = benchmark.peak_extra_memory(n=1, c=8, h=16, co=8)
    assert set(mem) == {"convlayers", "torch"} and all(v >= 0 for v in mem.values())
    st = benchmark.startup_times()
    assert 0 <= st["import_s"] < 5 and 0 < st["first_conv_warm_s"] < 30

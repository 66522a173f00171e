"""The harness's ONNX rows compute the same numbers on every runtime they time."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("torch")


def test_onnx_rows_agree_with_their_peers():
    from convlayers.onnx.bench import onnx_model_cases

    rows = onnx_model_cases(threads=2, models=[("mobilenet_v2", 2), ("resnet18", 1)], image=64)
    assert [r[0] for r in rows] == ["mobilenet_v2 @64 b2 (onnx)", "resnet18 @64 b1 (onnx)"]
    for name, ours, peers, check in rows:
        assert check() < 1e-4, name
        y = ours()
        assert y.shape[1] == 1000
        assert peers[0][0] == "onnxruntime"
        for peer_name, peer in peers:
            np.testing.assert_allclose(np.asarray(peer()).reshape(y.shape), y, rtol=1e-3, atol=1e-4,
                                       err_msg=f"{name} vs {peer_name}")


def test_harness_reports_onnx_rows(monkeypatch):
    from convlayers import benchmark
    from convlayers.onnx import bench

    calls = []

    def fake_cases(threads):
        calls.append(threads)
        return [("tiny (onnx)", lambda: 1, [("onnxruntime", lambda: 1)], lambda: 0.0)]

    monkeypatch.setattr(bench, "onnx_model_cases", fake_cases)
    lines = []
    results = benchmark.onnx_rows(2, 1, echo=lines.append)
    assert calls == [2] and [(r.name, r.peer, r.group) for r in results] == [("tiny (onnx)", "onnxruntime", "onnx")]
    assert any("tiny (onnx)" in line for line in lines)

"""``convlayers run model.onnx`` and ``convlayers summary model.onnx``."""

from __future__ import annotations

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from convlayers.cli import main  # noqa: E402


def _model(path, two_outputs=False, op="Relu"):
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    fc = numpy_helper.from_array(rng.standard_normal((5, 4 * 6 * 6)).astype(np.float32), "fc")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node(op, ["c"], ["r"], name="act"),
             helper.make_node("Flatten", ["r"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1, name="fc")]
    outs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 5])]
    if two_outputs:
        outs.append(helper.make_tensor_value_info("f", TensorProto.FLOAT, ["n", 144]))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 8, 8])],
                          outs, initializer=[w, fc])
    proto = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    path.write_bytes(proto.SerializeToString())
    return proto


def test_run_writes_the_output(tmp_path, capsys):
    proto = _model(tmp_path / "m.onnx")
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["run", str(tmp_path / "m.onnx"), "--input", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "y.npy")]) == 0
    want = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, rtol=1e-5, atol=1e-5)
    assert "y: float32 [2, 5]" in capsys.readouterr().out


def test_run_several_outputs_to_npz(tmp_path):
    _model(tmp_path / "m.onnx", two_outputs=True)
    np.save(tmp_path / "x.npy", np.ones((1, 3, 8, 8), np.float32))
    assert main(["run", str(tmp_path / "m.onnx"), "--input", f"x={tmp_path / 'x.npy'}",
                 "--out", str(tmp_path / "y.npz")]) == 0
    with np.load(tmp_path / "y.npz") as z:
        assert sorted(z.files) == ["f", "y"] and z["y"].shape == (1, 5)
    with pytest.raises(SystemExit) as info:   # several outputs into one .npy: a usage error, nothing written
        main(["run", str(tmp_path / "m.onnx"), "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "y.npy")])
    assert info.value.code == 2 and not (tmp_path / "y.npy").exists()


def test_run_bad_inputs_write_nothing(tmp_path, capsys):
    _model(tmp_path / "m.onnx")
    np.save(tmp_path / "x64.npy", np.ones((1, 3, 8, 8), np.float64))
    (tmp_path / "junk.npy").write_bytes(b"junk")
    out = tmp_path / "y.npy"
    assert main(["run", str(tmp_path / "m.onnx"), "--input", str(tmp_path / "x64.npy"), "--out", str(out)]) == 1
    assert "dtype float32, got float64" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "m.onnx"), "--input", str(tmp_path / "junk.npy"), "--out", str(out)]) == 1
    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    assert main(["run", str(tmp_path / "bad.onnx"), "--input", str(tmp_path / "x64.npy"), "--out", str(out)]) == 1
    assert "not a valid ONNX protobuf" in capsys.readouterr().err
    _model(tmp_path / "unsup.onnx", op="NoSuchOp")
    assert main(["run", str(tmp_path / "unsup.onnx"), "--input", str(tmp_path / "x64.npy"), "--out", str(out)]) == 1
    assert "NoSuchOp (opset 17) at node 'act'" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".convlayers-*"))


def test_summary_of_onnx_file(tmp_path, capsys):
    _model(tmp_path / "m.onnx")
    assert main(["summary", str(tmp_path / "m.onnx"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    conv, fc = result["layers"][0], result["layers"][-1]
    assert conv["op"] == "Conv+Relu" and conv["output_shape"] == [1, 4, 6, 6]
    assert conv["params"] == 4 * 3 * 9 and conv["macs"] == 4 * 36 * 27
    assert fc["macs"] == 5 * 144 and result["total_params"] == 108 + 720
    assert main(["summary", str(tmp_path / "m.onnx"), "--input", "3,3,8,8"]) == 0
    text = capsys.readouterr().out
    assert "3x4x6x6" in text and "total: 828 parameters" in text
    assert main(["summary", str(tmp_path / "missing.onnx")]) == 1

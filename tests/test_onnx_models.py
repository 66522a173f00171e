"""Exported networks against onnxruntime, the load-time rewrites, the runner's API and its bad inputs."""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import convlayers.onnx as co  # noqa: E402

from _onnx_nets import NETS, build, export  # noqa: E402

_OPSETS = [11, 13, 17, 18]
_FAST_OPSET = 17


@functools.lru_cache(maxsize=None)
def _exported(name, opset):
    model, shape = build(name)
    return export(model, shape, opset), shape


def _net_params():
    for name in NETS:
        for opset in _OPSETS:
            marks = [] if opset == _FAST_OPSET else [pytest.mark.slow]
            yield pytest.param(name, opset, marks=marks, id=f"{name}-opset{opset}")


@pytest.mark.parametrize("name, opset", list(_net_params()))
def test_exported_network_matches_onnxruntime(name, opset):
    data, shape = _exported(name, opset)
    ops = {n.op_type for n in onnx.load_from_string(data).graph.node}
    missing = sorted(ops - set(co.supported_ops()))
    if missing:
        pytest.skip(f"{name} needs {missing}, whose convlayers.functional ops have not landed on this branch")
    model = co.load(data)
    assert model.inputs[0].shape[0] == "batch"          # the dynamic batch axis survives as a symbol
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    for batch in (shape[0], 1, 3):                        # dynamic batch: several sizes through one model
        x = np.random.default_rng(batch).standard_normal((batch,) + shape[1:]).astype(np.float32)
        want = sess.run(None, {"input": x})[0]
        got = model(x)
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- load-time rewrites

def _conv_bn_act_model(act, opset=17, dtype=np.float32):
    rng = np.random.default_rng(0)
    c = 6
    inits = [numpy_helper.from_array(rng.standard_normal((c, 3, 3, 3)).astype(dtype), "w"),
             numpy_helper.from_array(rng.standard_normal(c).astype(dtype), "b"),
             numpy_helper.from_array((rng.random(c) + 0.5).astype(dtype), "g"),
             numpy_helper.from_array(rng.standard_normal(c).astype(dtype), "beta"),
             numpy_helper.from_array(rng.standard_normal(c).astype(dtype) * 0.1, "mean"),
             numpy_helper.from_array((rng.random(c) + 0.5).astype(dtype), "var"),
             numpy_helper.from_array(np.array(0.0, dtype), "lo"), numpy_helper.from_array(np.array(1.5, dtype), "hi")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("BatchNormalization", ["c", "g", "beta", "mean", "var"], ["n"], epsilon=1e-3)]
    if act == "Relu":
        nodes.append(helper.make_node("Relu", ["n"], ["y"]))
    elif act == "Clip":
        nodes.append(helper.make_node("Clip", ["n", "lo", "hi"], ["y"]))
    else:
        nodes.append(helper.make_node("Identity", ["n"], ["y"]))
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    g = helper.make_graph(nodes, "cbr", [helper.make_tensor_value_info("x", elem, ["n", 3, 9, 9])],
                          [helper.make_tensor_value_info("y", elem, None)], initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", ["Relu", "Clip", None])
def test_conv_bn_activation_fold_into_one_node(act, dtype):
    proto = _conv_bn_act_model(act, dtype=dtype)
    fused, plain = co.load(proto), co.load(proto, optimize_level=0)
    assert [n.op_type for n in fused.nodes] == ["Conv"] if act else ["Conv", "Identity"]
    assert len(plain.nodes) == 3
    x = np.random.default_rng(1).standard_normal((2, 3, 9, 9)).astype(dtype)
    init = {t.name: torch.from_numpy(numpy_helper.to_array(t)) for t in proto.graph.initializer}
    tf = torch.nn.functional
    ref = tf.batch_norm(tf.conv2d(torch.from_numpy(x), init["w"], init["b"], 2, 1), init["mean"], init["var"],
                        init["g"], init["beta"], False, 0.0, 1e-3)
    ref = tf.relu(ref) if act == "Relu" else ref.clamp(0.0, 1.5) if act == "Clip" else ref
    want = ref.numpy()
    got = fused(x)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(plain(x), want, rtol=1e-5, atol=1e-5)
    if act == "Clip":
        assert got.max() <= 1.5 and got.min() >= 0.0


def test_fusion_keeps_values_read_elsewhere():
    """A Conv output that is also a graph output must not vanish into a fused epilogue."""
    proto = _conv_bn_act_model("Relu")
    proto.graph.output.append(helper.make_tensor_value_info("c", TensorProto.FLOAT, None))
    m = co.load(proto)
    assert "BatchNormalization" in [n.op_type for n in m.nodes]
    x = np.ones((1, 3, 9, 9), np.float32)
    y, c = m.run(None, {"x": x})
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for got, want in zip((y, c), sess.run(None, {"x": x})):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _shape_chain_model():
    """x -> Reshape(x, Concat(Shape(x)[0], -1)): the shape subgraph exporters write for Flatten."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
             helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["y"])]
    inits = [numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array([0], np.int64), "axes"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus1")]
    g = helper.make_graph(nodes, "flat", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 6])], initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_shape_subgraph_cached_per_input_shape():
    m = co.load(_shape_chain_model())
    calls = []
    from convlayers.onnx.ops import OPS
    fn, since, check = OPS["Gather"]
    OPS["Gather"] = (lambda node, *a: calls.append(1) or fn(node, *a), since, check)
    try:
        for n in (2, 2, 2, 5, 5):
            assert m(np.zeros((n, 2, 3), np.float32)).shape == (n, 6)
    finally:
        OPS["Gather"] = (fn, since, check)
    assert len(calls) == 2   # once per distinct input shape


def test_intermediates_freed_after_last_use():
    m = co.load(_conv_bn_act_model("Relu"), optimize_level=0)
    order = [n.op_type for n in m.nodes]
    assert m._last_use["c"] == order.index("BatchNormalization")
    assert "y" not in m._last_use   # graph outputs are kept


# --------------------------------------------------------------------------- API

def test_api_like_inference_session(tmp_path):
    proto = _conv_bn_act_model("Relu")
    path = tmp_path / "m.onnx"
    path.write_bytes(proto.SerializeToString())
    x = np.random.default_rng(2).standard_normal((2, 3, 9, 9)).astype(np.float32)
    results = [co.load(src)(x) for src in (str(path), path, path.read_bytes(), proto)]
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    m = co.load(path)
    out = m.run(None, {"x": x})
    assert isinstance(out, list) and len(out) == 1
    np.testing.assert_array_equal(m.run(["y"], {"x": x})[0], out[0])
    assert [(v.name, v.shape, v.dtype) for v in m.inputs] == [("x", ("n", 3, 9, 9), np.dtype(np.float32))]
    assert m.outputs[0].name == "y"
    assert isinstance(m, __import__("convlayers").nn.Module)


def test_supported_ops_lists_op_and_opset_range():
    ops = co.supported_ops()
    for op in ("Conv", "ConvTranspose", "MaxPool", "AveragePool", "BatchNormalization", "Gemm", "Reshape",
               "Concat", "Resize" if "Resize" in ops else "Slice", "Softmax", "Einsum", "Where"):
        lo, hi = ops[op]
        assert lo <= 13 and hi == onnx.defs.onnx_opset_version()


def test_external_data_inside_directory(tmp_path):
    proto = _conv_bn_act_model("Relu")
    saved = onnx.ModelProto()
    saved.CopyFrom(proto)
    onnx.save_model(saved, str(tmp_path / "m.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    assert (tmp_path / "weights.bin").exists()
    x = np.ones((1, 3, 9, 9), np.float32)
    np.testing.assert_array_equal(co.load(tmp_path / "m.onnx")(x), co.load(proto)(x))


@pytest.mark.parametrize("location", ["../outside.bin", "/etc/passwd", "sub/../../outside.bin"])
def test_external_data_outside_directory_rejected(tmp_path, location):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (tmp_path / "outside.bin").write_bytes(np.ones(6 * 27, np.float32).tobytes())
    proto = _conv_bn_act_model("Relu")
    w = proto.graph.initializer[0]
    w.ClearField("raw_data")
    w.ClearField("float_data")
    w.data_location = TensorProto.EXTERNAL
    w.external_data.add(key="location", value=location)
    (model_dir / "m.onnx").write_bytes(proto.SerializeToString())
    with pytest.raises(ValueError, match="location|outside"):
        co.load(model_dir / "m.onnx")


def test_external_data_truncated_file_rejected(tmp_path):
    proto = _conv_bn_act_model("Relu")
    onnx.save_model(proto, str(tmp_path / "m.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    data = (tmp_path / "weights.bin").read_bytes()
    (tmp_path / "weights.bin").write_bytes(data[:10])
    with pytest.raises(ValueError, match="does not fit"):
        co.load(tmp_path / "m.onnx")


# --------------------------------------------------------------------------- bad input

def test_unsupported_ops_listed_all_at_once_before_work():
    nodes = [helper.make_node("Relu", ["x"], ["a"]),
             helper.make_node("NoSuchOp", ["a"], ["b"], name="first"),
             helper.make_node("LSTM", ["b", "w", "r"], ["c"], name="second"),
             helper.make_node("Gelu", ["c"], ["d"], name="third", domain="com.example")]
    g = helper.make_graph(nodes, "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("d", TensorProto.FLOAT, [1])])
    proto = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    with pytest.raises(co.UnsupportedModelError) as info:
        co.load(proto)
    names = [u[2] for u in info.value.unsupported]
    assert names == ["first", "second", "third"]
    assert info.value.unsupported[0][:2] == ("NoSuchOp", 17)
    text = str(info.value)
    assert "NoSuchOp (opset 17) at node 'first'" in text and "LSTM" in text and "com.example.Gelu" in text
    assert isinstance(info.value, ValueError)


def test_unsupported_attribute_reported_at_load():
    node = helper.make_node("Pad", ["x", "p"], ["y"], mode="antisymmetric", name="pad0")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          initializer=[numpy_helper.from_array(np.zeros(4, np.int64), "p")])
    with pytest.raises(co.UnsupportedModelError, match="pad0.*mode='antisymmetric'"):
        co.load(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]))


@pytest.mark.parametrize("data", [b"", b"\x00\x01garbage\xff" * 10, b"not a protobuf at all"])
def test_malformed_protobuf(data):
    with pytest.raises(ValueError, match="load:"):
        co.load(data)


def test_bad_sources(tmp_path):
    with pytest.raises(ValueError, match="no ONNX file"):
        co.load(tmp_path / "missing.onnx")
    with pytest.raises(TypeError, match="path, bytes or onnx.ModelProto"):
        co.load(42)


def test_dangling_input_rejected():
    g = helper.make_graph([helper.make_node("Add", ["x", "nowhere"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    with pytest.raises(ValueError, match="nowhere"):
        co.load(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))


def test_wrong_inputs_at_run():
    m = co.load(_conv_bn_act_model("Relu"))
    x = np.ones((2, 3, 9, 9), np.float32)
    with pytest.raises(ValueError, match="unknown input name.*'input'.*\\['x'\\]"):
        m.run(None, {"input": x})
    with pytest.raises(ValueError, match="missing input"):
        m.run(None, {})
    with pytest.raises(TypeError, match="dtype float32, got float64"):
        m(x.astype(np.float64))
    with pytest.raises(ValueError, match="4-D"):
        m(x[0])
    with pytest.raises(ValueError, match="axis 2: expected 9, got 8"):
        m(np.ones((2, 3, 8, 9), np.float32))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        m([[1.0]])
    with pytest.raises(ValueError, match="unknown output"):
        m.run(["nope"], {"x": x})
    with pytest.raises(TypeError, match="dict"):
        m.run(None, [x])


@pytest.mark.parametrize("p", [1, 2, 3])
@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (2, 3, 7)])
def test_global_lp_pool_matches_onnxruntime(p, shape):
    """GlobalLpPool has no case among the onnx wheel's node tests; onnxruntime is the oracle."""
    g = helper.make_graph([helper.make_node("GlobalLpPool", ["x"], ["y"], p=p)], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    proto = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    x = np.random.default_rng(p).standard_normal(shape).astype(np.float32)
    want = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = co.load(proto)(x)
    assert got.shape == want.shape == shape[:2] + (1,) * (len(shape) - 2)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("batch", [1, 4])
def test_constant_conv_weights_keep_their_winograd_transform(batch):
    # a 3x3 stride-1 Conv with an initializer weight: the first run transforms it and keeps it on the node
    rng = np.random.default_rng(2)
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32) / 17
    b = rng.standard_normal(32).astype(np.float32)
    g = helper.make_graph([helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])], "c3",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 32, 28, 28])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = co.load(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), channels_last=False)
    (node,) = model.nodes
    x = rng.standard_normal((batch, 32, 28, 28)).astype(np.float32)
    want = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), 1, 1).numpy()
    first = model(x)
    assert node.attrs["_packed"]["winograd"].shape == (36, 32, 32)
    np.testing.assert_allclose(first, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(model(x), first)  # the kept transform gives the same numbers
    # channels-last (the default for such a graph): its own transform (the fused channels-last Winograd
    # plan's panels, one (C_in, 32) panel per position) and the prepared plan are kept instead
    cl = co.load(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    assert cl.channels_last
    (node,) = cl.nodes
    first = cl(x)
    assert node.attrs["_packed"]["nhwc_winograd"].shape == (36, 1, 32, 32) and len(node.attrs["_plans"]) == 1
    assert first.flags.c_contiguous
    np.testing.assert_allclose(first, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(cl(x), first)

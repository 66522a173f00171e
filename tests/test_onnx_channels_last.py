"""convlayers.onnx's channels-last mode: the residual fusion, the reused activation buffers, both layouts agreeing."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import convlayers.onnx as co  # noqa: E402
from convlayers.functional import _conv_channels_last as _cl_plans  # noqa: E402
from convlayers.functional._conv_channels_last import is_channels_last  # noqa: E402
from convlayers import _kernels  # noqa: E402
from convlayers.onnx import _buffers  # noqa: E402

from _onnx_nets import NETS, build, export  # noqa: E402
from conftest import run_in_threads  # noqa: E402


def _model(nodes, inits, in_shape, outputs=("y",)):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
                          [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
                          initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _residual_block(conv_first=True, relu=True, c=8, res_shape=None):
    """x → Conv(3x3)+bias = a; y = Relu(Add(a, r)) where r = Conv(1x1)(x) or a constant of ``res_shape``."""
    rng = np.random.default_rng(0)
    inits = {"w1": (rng.standard_normal((c, c, 3, 3)) / 9).astype(np.float32),
             "b1": rng.standard_normal(c).astype(np.float32),
             "w2": (rng.standard_normal((c, c, 1, 1)) / 3).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["a"], pads=[1, 1, 1, 1])]
    if res_shape is None:
        nodes.append(helper.make_node("Conv", ["x", "w2"], ["r"]))
    else:
        inits["r"] = rng.standard_normal(res_shape).astype(np.float32)
    add_in = ["a", "r"] if conv_first else ["r", "a"]
    nodes.append(helper.make_node("Add", add_in, ["s" if relu else "y"]))
    if relu:
        nodes.append(helper.make_node("Relu", ["s"], ["y"]))
    return _model(nodes, inits, ("n", c, 9, 9)), inits


def _reference(inits, x, relu=True, res_const=False):
    t = torch.from_numpy
    a = torch.nn.functional.conv2d(t(x), t(inits["w1"]), t(inits["b1"]), 1, 1)
    r = t(inits["r"]) if res_const else torch.nn.functional.conv2d(t(x), t(inits["w2"]))
    s = a + r
    return (torch.relu(s) if relu else s).numpy()


@pytest.mark.parametrize("conv_first", [True, False])
@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("channels_last", [True, False])
def test_residual_add_and_relu_fuse_into_the_conv(conv_first, relu, channels_last):
    proto, inits = _residual_block(conv_first, relu)
    model = co.load(proto, channels_last=channels_last)
    fused = [n for n in model.nodes if "Add" in n.attrs.get("_fused", [])]
    assert len(fused) == 1 and [n.op_type for n in model.nodes] == ["Conv", "Conv"]
    assert fused[0].attrs["_fused"][-1] == ("Relu" if relu else "Add")
    x = np.random.default_rng(1).standard_normal((2, 8, 9, 9)).astype(np.float32)
    want = _reference(inits, x, relu)
    for _ in range(2):  # the second run takes the prepared plan (and reused buffers)
        got = model(x)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        assert got.flags.c_contiguous


def test_residual_fusion_keeps_the_graph_in_order():
    # both Add inputs come from Convs (a ResNet downsample block): the fused one must run after the other
    proto, inits = _residual_block()
    model = co.load(proto)
    order = [n.outputs[0] for n in model.nodes]
    fused = next(n for n in model.nodes if n.attrs.get("_residual"))
    assert order.index(fused.inputs[3]) < order.index(fused.outputs[0])


@pytest.mark.parametrize("res_shape", [(1, 8, 1, 1), (8, 1, 1), (1, 1, 9, 9)])
def test_broadcast_residual_takes_the_unfused_sum(res_shape):
    # ONNX's Add broadcasts; the fused epilogue needs the output's own shape, so the node falls back
    proto, inits = _residual_block(res_shape=res_shape)
    model = co.load(proto)
    x = np.random.default_rng(2).standard_normal((1, 8, 9, 9)).astype(np.float32)
    want = _reference(inits, x, res_const=True)
    for _ in range(2):
        np.testing.assert_allclose(model(x), want, rtol=1e-5, atol=1e-5)


def test_a_clamped_conv_does_not_take_a_residual():
    # Conv → Relu → Add: the Relu must come before the sum, which one epilogue cannot do, so the Add stays
    rng = np.random.default_rng(3)
    w = (rng.standard_normal((4, 4, 3, 3)) / 6).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Add", ["b", "x"], ["y"])]
    model = co.load(_model(nodes, {"w": w}, ("n", 4, 6, 6)))
    assert [n.op_type for n in model.nodes] == ["Conv", "Add"]
    x = rng.standard_normal((1, 4, 6, 6)).astype(np.float32)
    t = torch.from_numpy
    want = (torch.relu(torch.nn.functional.conv2d(t(x), t(w), None, 1, 1)) + t(x)).numpy()
    np.testing.assert_allclose(model(x), want, rtol=1e-5, atol=1e-5)


def test_outputs_of_one_run_survive_the_next():
    # buffers are reused between runs: what a run returned (and an intermediate that is also a graph output)
    # must never be overwritten by a later run
    rng = np.random.default_rng(4)
    w = (rng.standard_normal((8, 8, 3, 3)) / 9).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["a", "w"], ["b"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["b", "w"], ["y"], pads=[1, 1, 1, 1])]
    model = co.load(_model(nodes, {"w": w}, ("n", 8, 12, 12), outputs=("y", "a")))
    assert model.channels_last
    x1, x2 = (rng.standard_normal((2, 8, 12, 12)).astype(np.float32) for _ in range(2))
    y1, a1 = model.run(None, {"x": x1})
    saved = y1.copy(), a1.copy()
    for _ in range(3):
        model.run(None, {"x": x2})
    np.testing.assert_array_equal(y1, saved[0])
    np.testing.assert_array_equal(a1, saved[1])
    assert not is_channels_last(y1) and y1.flags.c_contiguous


def test_a_live_view_keeps_its_buffer():
    # Flatten of a conv output is a view of that buffer: the conv output's last use must not recycle it
    rng = np.random.default_rng(5)
    w = (rng.standard_normal((8, 8, 1, 1)) / 3).astype(np.float32)
    w2 = (rng.standard_normal((8, 8, 1, 1)) / 3).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"]), helper.make_node("Identity", ["a"], ["v"]),
             helper.make_node("Conv", ["x", "w2"], ["c"]), helper.make_node("Add", ["v", "c"], ["y"])]
    model = co.load(_model(nodes, {"w": w, "w2": w2}, ("n", 8, 5, 5)))
    x = rng.standard_normal((1, 8, 5, 5)).astype(np.float32)
    t = torch.from_numpy
    want = (torch.nn.functional.conv2d(t(x), t(w)) + torch.nn.functional.conv2d(t(x), t(w2))).numpy()
    for _ in range(3):
        np.testing.assert_allclose(model(x), want, rtol=1e-5, atol=1e-5)


def test_an_alias_keeps_its_buffer():
    # an Identity's output is the same array under another name: the first name's last use must not recycle
    # the buffer while the alias is alive (a later conv of the same shape would write into it)
    rng = np.random.default_rng(7)
    w1, w2, w3 = ((rng.standard_normal((8, 8, 1, 1)) / 3).astype(np.float32) for _ in range(3))
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"]), helper.make_node("Identity", ["a"], ["v"]),
             helper.make_node("Conv", ["a", "w2"], ["c"]), helper.make_node("Conv", ["c", "w3"], ["d"]),
             helper.make_node("Mul", ["v", "d"], ["y"])]
    model = co.load(_model(nodes, {"w1": w1, "w2": w2, "w3": w3}, ("n", 8, 5, 5)))
    x = rng.standard_normal((1, 8, 5, 5)).astype(np.float32)
    t, conv = torch.from_numpy, torch.nn.functional.conv2d
    a = conv(t(x), t(w1))
    want = (a * conv(conv(a, t(w2)), t(w3))).numpy()
    for _ in range(3):
        np.testing.assert_allclose(model(x), want, rtol=1e-5, atol=1e-5)


def test_pool_release_rules():
    pool = _buffers.Pool()
    a = pool.alloc((3, 4), np.float32)
    env = {"v": a.T}
    del a
    pool.release(env.pop("v"))
    assert sum(map(len, pool.free.values())) == 1          # nothing else saw it: reused
    b = pool.alloc((3, 4), np.float32)
    assert not pool.free[((3, 4), "<f4")]                   # handed out again
    keep = b[1:]
    env = {"v": b.T}
    del b
    pool.release(env.pop("v"))
    assert sum(map(len, pool.free.values())) == 0          # a live view: kept out
    assert keep.shape == (2, 4)
    pool.release(np.zeros(3))                               # not the pool's: ignored
    assert sum(map(len, pool.free.values())) == 0


@pytest.mark.parametrize("name", [n for n in NETS])
def test_both_layouts_agree_on_the_exported_networks(name):
    model_t, shape = build(name)
    data = export(model_t, shape, 17)
    x = np.random.default_rng(6).standard_normal((2,) + shape[1:]).astype(np.float32)
    nchw = co.load(data, channels_last=False)(x)
    cl_model = co.load(data, channels_last=True)
    np.testing.assert_allclose(cl_model(x), nchw, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(cl_model(x), nchw, rtol=1e-4, atol=1e-4)  # the planned second run


def test_threads_share_a_channels_last_model():
    proto, inits = _residual_block()
    model = co.load(proto)
    xs = [np.random.default_rng(10 + i).standard_normal((2, 8, 9, 9)).astype(np.float32) for i in range(4)]
    want = [_reference(inits, x) for x in xs]

    def work(i):
        for _ in range(20):
            np.testing.assert_allclose(model(xs[i]), want[i], rtol=1e-5, atol=1e-5)

    run_in_threads(work, 4)


def _dw_pw_block(stride=1, residual=False, c=16, cout=16, act=True):
    """x → depthwise 3x3 (+bias, ReLU6) → 1x1 (+bias) [+ x] : MobileNetV2's second half of a block."""
    rng = np.random.default_rng(8)
    inits = {"wd": (rng.standard_normal((c, 1, 3, 3)) / 3).astype(np.float32),
             "bd": rng.standard_normal(c).astype(np.float32),
             "wp": (rng.standard_normal((cout, c, 1, 1)) / 4).astype(np.float32),
             "bp": rng.standard_normal(cout).astype(np.float32),
             "lo": np.array(0, np.float32), "hi": np.array(6, np.float32)}
    nodes = [helper.make_node("Conv", ["x", "wd", "bd"], ["d"], pads=[1, 1, 1, 1], strides=[stride, stride],
                              group=c)]
    if act:
        nodes.append(helper.make_node("Clip", ["d", "lo", "hi"], ["da"]))
    nodes.append(helper.make_node("Conv", ["da" if act else "d", "wp", "bp"], ["p" if residual else "y"]))
    if residual:
        nodes.append(helper.make_node("Add", ["p", "x"], ["y"]))
    return _model(nodes, inits, ("n", c, 10, 10)), inits


def _dw_pw_reference(inits, x, stride=1, residual=False, act=True):
    t = torch.from_numpy
    d = torch.nn.functional.conv2d(t(x), t(inits["wd"]), t(inits["bd"]), stride, 1, groups=x.shape[1])
    d = torch.clamp(d, 0, 6) if act else d
    y = torch.nn.functional.conv2d(d, t(inits["wp"]), t(inits["bp"]))
    return (y + t(x) if residual else y).numpy()


@pytest.mark.parametrize("stride, residual, act", [(1, False, True), (2, False, True), (1, True, True),
                                                   (1, False, False)])
def test_depthwise_then_pointwise_run_as_one_node(stride, residual, act):
    proto, inits = _dw_pw_block(stride, residual, act=act)
    model = co.load(proto)
    (node,) = model.nodes
    assert node.attrs["_pre"].op_type == "Conv" and node.attrs.get("_residual", False) == residual
    x = np.random.default_rng(9).standard_normal((2, 16, 10, 10)).astype(np.float32)
    want = _dw_pw_reference(inits, x, stride, residual, act)
    apart = co.load(proto, channels_last=False)(x)   # the same graph, NCHW: the pair runs apart
    for _ in range(2):
        got = model(x)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got, apart, rtol=1e-6, atol=1e-6)
    assert any(k[0] == "pre" and v is not None for k, v in node.attrs["_plans"].items())


def test_depthwise_pointwise_with_a_nan_matches_the_unfused_graph():
    proto, inits = _dw_pw_block(act=False)
    x = np.random.default_rng(11).standard_normal((1, 16, 10, 10)).astype(np.float32)
    x[0, 3, 4, 4] = np.nan
    x[0, 5, 0, 0] = np.inf
    fused, apart = co.load(proto)(x), co.load(proto, channels_last=False, optimize_level=0)(x)
    np.testing.assert_array_equal(np.isnan(fused), np.isnan(apart))
    np.testing.assert_allclose(np.nan_to_num(fused), np.nan_to_num(apart), rtol=1e-5, atol=1e-5)


def test_summary_counts_the_fused_depthwise_layer():
    from convlayers.onnx.summary import summary
    proto, inits = _dw_pw_block()
    fused = summary(co.load(proto), {"x": (1, 16, 10, 10)})
    plain = summary(co.load(proto, optimize_level=0), {"x": (1, 16, 10, 10)})
    assert fused.total_macs == plain.total_macs == 16 * 100 * 9 + 16 * 16 * 100
    assert len(fused.rows) == 2


def _expand_block(stride=2, c=8, ce=24, cout=12, h=11, residual_graph=False):
    """x → 1x1 expansion (+bias, ReLU6) → depthwise 3x3 stride s (+bias, ReLU6) → 1x1 projection (+bias);
    with ``residual_graph``, + x (the graph's input itself: c == cout, stride 1)."""
    rng = np.random.default_rng(12)
    inits = {"we": (rng.standard_normal((ce, c, 1, 1)) / 3).astype(np.float32),
             "be": rng.standard_normal(ce).astype(np.float32),
             "wd": (rng.standard_normal((ce, 1, 3, 3)) / 3).astype(np.float32),
             "bd": rng.standard_normal(ce).astype(np.float32),
             "wp": (rng.standard_normal((cout, ce, 1, 1)) / 5).astype(np.float32),
             "bp": rng.standard_normal(cout).astype(np.float32),
             "lo": np.array(0, np.float32), "hi": np.array(6, np.float32)}
    nodes = [helper.make_node("Conv", ["x", "we", "be"], ["e"]),
             helper.make_node("Clip", ["e", "lo", "hi"], ["ea"]),
             helper.make_node("Conv", ["ea", "wd", "bd"], ["d"], pads=[1, 1, 1, 1], strides=[stride, stride],
                              group=ce),
             helper.make_node("Clip", ["d", "lo", "hi"], ["da"]),
             helper.make_node("Conv", ["da", "wp", "bp"], ["p" if residual_graph else "y"])]
    if residual_graph:
        nodes.append(helper.make_node("Add", ["p", "x"], ["y"]))
    return _model(nodes, inits, ("n", c, h, h)), inits


def _expand_reference(inits, x, stride):
    t = torch.from_numpy
    e = torch.clamp(torch.nn.functional.conv2d(t(x), t(inits["we"]), t(inits["be"])), 0, 6)
    d = torch.clamp(torch.nn.functional.conv2d(e, t(inits["wd"]), t(inits["bd"]), stride, 1, groups=e.shape[1]),
                    0, 6)
    return torch.nn.functional.conv2d(d, t(inits["wp"]), t(inits["bp"])).numpy()


@pytest.mark.parametrize("stride, strided_bytes", [(2, 0), (2, None), (1, None)])
@pytest.mark.parametrize("h", [11, 12, 2, 1])
@pytest.mark.parametrize("batch", [1, 3])
def test_expansion_depthwise_projection_run_as_one_node(h, batch, stride, strided_bytes, monkeypatch):
    # stride 2 past the L2 bound (0 here): bands that expand their own rows; stride 1, and stride 2 within
    # it: the one-launch block (_kernels.inverted_residual)
    if strided_bytes is not None:
        monkeypatch.setattr(_cl_plans, "_strided_block_bytes", lambda: strided_bytes)
    proto, inits = _expand_block(h=h, stride=stride)
    model = co.load(proto)
    (node,) = model.nodes
    assert node.attrs["_pre0"].op_type == "Conv" and node.attrs["_pre"].op_type == "Conv"
    x = np.random.default_rng(13).standard_normal((batch, 8, h, h)).astype(np.float32)
    want = _expand_reference(inits, x, stride)
    apart = co.load(proto, channels_last=False)(x)
    for _ in range(2):
        got = model(x)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got, apart, rtol=1e-6, atol=1e-6)
    if h > 1:
        assert any(k[0] == "pre0" and v is not None for k, v in node.attrs["_plans"].items())
        kernels = set()

        def spy(fn, args):
            kernels.add((fn.parallel if hasattr(fn, "parallel") else fn).py_func.__name__.removesuffix("_serial"))
            return fn(*args)

        with _kernels.capturing(spy):  # a new model's first run: its graph, with every kernel call seen
            co.load(proto)(x)
        assert ("expand_depthwise_pointwise" if strided_bytes == 0 else "inverted_residual") in kernels


def test_a_residual_read_from_the_graph_input_keeps_the_fused_block():
    # the graph's NCHW input is the Add's other operand: copied channels-last, the one-launch block runs
    proto, inits = _expand_block(stride=1, c=8, cout=8, residual_graph=True)
    model = co.load(proto)
    (node,) = model.nodes
    x = np.random.default_rng(15).standard_normal((2, 8, 11, 11)).astype(np.float32)
    want = _expand_reference(inits, x, 1) + x
    np.testing.assert_allclose(model(x), want, rtol=1e-5, atol=1e-5)
    runs = [v for k, v in node.attrs["_plans"].items() if k[0] == "pre0"]
    assert runs and all(v is not None for v in runs)
    calls = []
    real = runs[0]
    node.attrs["_plans"][next(k for k in node.attrs["_plans"] if k[0] == "pre0")] = \
        lambda *a: calls.append(real(*a)) or calls[-1]
    np.testing.assert_allclose(model(x), want, rtol=1e-5, atol=1e-5)
    assert calls and calls[-1] is not None  # the fused block's result was taken: the residual fitted


def test_a_block_past_the_scratch_bound_runs_its_layers_apart(monkeypatch):
    # a stride-1 block whose expanded tensor would not fit _BLOCK_SCRATCH_BYTES: no fused plan, same values
    monkeypatch.setattr(_cl_plans, "_BLOCK_SCRATCH_BYTES", 1 * 11 * 11 * 24 * 4)  # one sample's, not two
    proto, inits = _expand_block(stride=1)
    model = co.load(proto)
    (node,) = model.nodes
    x = np.random.default_rng(14).standard_normal((2, 8, 11, 11)).astype(np.float32)
    np.testing.assert_allclose(model(x), _expand_reference(inits, x, 1), rtol=1e-5, atol=1e-5)
    assert all(v is None for k, v in node.attrs["_plans"].items() if k[0] == "pre0")
    x1 = x[:1]  # one sample fits: fused
    np.testing.assert_allclose(model(x1), _expand_reference(inits, x1, 1), rtol=1e-5, atol=1e-5)
    assert any(v is not None for k, v in node.attrs["_plans"].items() if k[0] == "pre0")


def test_summary_counts_the_fused_expansion():
    from convlayers.onnx.summary import summary
    proto, _ = _expand_block(h=12)
    fused = summary(co.load(proto), {"x": (1, 8, 12, 12)})
    plain = summary(co.load(proto, optimize_level=0), {"x": (1, 8, 12, 12)})
    assert fused.total_macs == plain.total_macs and len(fused.rows) == 3


def test_pool_buffers_start_on_a_cache_line_and_come_back():
    pool = _buffers.Pool()
    for shape in [(3,), (1, 64, 56, 56), (7, 5)]:
        a = pool.alloc(shape, np.float32)
        assert a.ctypes.data % 64 == 0 and a.shape == shape and a.flags.c_contiguous
        env = {"v": a}
        del a
        pool.release(env.pop("v"))                           # the buffer itself, nothing else holding it
        b = pool.alloc(shape, np.float32)
        assert b.ctypes.data % 64 == 0 and not pool.free[(shape, "<f4")]
        other = b.reshape(-1)                                # a view under another name: kept out
        env = {"v": b}
        del b
        pool.release(env.pop("v"))
        assert not pool.free[(shape, "<f4")] and other.size == int(np.prod(shape))


@pytest.mark.parametrize("k, stride, pad, cin", [(3, 2, 1, 3), (7, 2, 3, 3), (3, 1, 1, 16)])
def test_a_dense_conv_reads_an_nchw_input_without_a_layout_copy(monkeypatch, k, stride, pad, cin):
    """A stem's NCHW input goes straight into the plan's zero-padding copy (no to_channels_last first); the
    first run computes as every later one, and as PyTorch."""
    torch = pytest.importorskip("torch")
    from convlayers.onnx import model as model_module
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((8, cin, k, k)) / k).astype(np.float32)
    g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["c"], pads=[pad] * 4, strides=[stride] * 2),
                           helper.make_node("Relu", ["c"], ["y"])], "stem",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", cin, 20, 18])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          initializer=[numpy_helper.from_array(w, "w")])
    m = co.load(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    copies = []
    real = model_module.to_channels_last
    monkeypatch.setattr(model_module, "to_channels_last", lambda a: copies.append(a.shape) or real(a))
    x = rng.standard_normal((2, cin, 20, 18)).astype(np.float32)
    first, second = m(x), m(x)
    assert copies == []
    np.testing.assert_array_equal(first, second)
    want = torch.relu(torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), None, stride, pad))
    np.testing.assert_allclose(first, want.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype, n, c, hw", [(np.float32, 1, 1280, 7), (np.float32, 2, 17, 40), (np.float64, 3, 5, 9),
                                             (np.float32, 1, 3, 1)])
def test_channels_last_global_average_pool_is_numpys_mean_bit_for_bit(dtype, n, c, hw):
    # the kernel (_kernels.pool.mean_pixels) against NumPy's sum in the same accumulator (float64 past 1024 pixels
    # for float32) and PyTorch's mean
    from convlayers.onnx.ops.pool import global_average_pool
    x = (np.random.default_rng(16).standard_normal((n, c, hw, hw)) * 100).astype(dtype)
    got = global_average_pool(None, _cl_plans.to_channels_last(x))
    acc = np.float64 if dtype == np.float32 and hw * hw > 1024 else dtype
    rows = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).reshape(n, hw * hw, c)  # the NHWC memory's rows, as the op
    want = (rows.sum(axis=1, dtype=acc) / (hw * hw)).astype(dtype).reshape(n, c, 1, 1)
    assert got.dtype == dtype and got.tobytes() == want.tobytes()
    np.testing.assert_allclose(got, torch.from_numpy(x).mean(dim=(2, 3), keepdim=True).numpy(), rtol=1e-5, atol=1e-4)

"""convlayers.onnx._tape: a model's kernel calls captured once per input shape and replayed."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("torch")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import convlayers.onnx as co  # noqa: E402
from convlayers._kernels import gemm  # noqa: E402
from convlayers.onnx import _tape  # noqa: E402

from _onnx_nets import NETS, build, export  # noqa: E402
from conftest import run_in_threads  # noqa: E402


def _graph_run(model, x):
    """The model's output by its graph (a trace run never replays)."""
    return model.run(None, {model.inputs[0].name: x}, _trace=lambda *a: None)[0]


def _tape_of(model):
    (tape,) = model._tapes.values()
    return tape


@pytest.fixture(scope="module")
def nets():
    out = {}
    for name in NETS:
        model_t, shape = build(name)
        out[name] = (export(model_t, shape, 17), shape)
    return out


@pytest.mark.parametrize("name", NETS)
def test_replays_give_the_graph_runs_bits(nets, name):
    data, shape = nets[name]
    model = co.load(data)
    rng = np.random.default_rng(3)
    for _ in range(4):  # run, capture, replay, replay -- each on a new input
        x = rng.standard_normal((2,) + shape[1:]).astype(np.float32)
        got = model(x)
        want = _graph_run(model, x)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tobytes() == want.tobytes()
    if name in ("resnet18", "mobilenet_v2"):  # every op of theirs is a kernel: they are taped
        assert isinstance(_tape_of(model), _tape.Tape)
    elif model.channels_last:  # NumPy ops between kernels (SE blocks, Concat, Resize): not taped
        assert _tape_of(model) is False


def test_each_input_shape_has_its_own_tape(nets):
    data, shape = nets["mobilenet_v2"]
    model = co.load(data)
    rng = np.random.default_rng(4)
    for batch in (1, 2, 1, 2, 1, 2):
        x = rng.standard_normal((batch,) + shape[1:]).astype(np.float32)
        assert model(x).tobytes() == _graph_run(model, x).tobytes()
    assert len(model._tapes) == 2 and all(isinstance(t, _tape.Tape) for t in model._tapes.values())


def test_outputs_are_the_callers_own(nets):
    data, shape = nets["resnet18"]
    model = co.load(data)
    x = np.random.default_rng(5).standard_normal((2,) + shape[1:]).astype(np.float32)
    outs = [model(x) for _ in range(4)]
    assert isinstance(_tape_of(model), _tape.Tape)
    keep = outs[2].copy()
    outs[3][...] = 0  # a caller scribbling on one replay's output
    assert model(x).tobytes() == keep.tobytes() and outs[2].tobytes() == keep.tobytes()
    assert not np.shares_memory(outs[2], outs[3])


def test_a_nan_input_leaves_the_replay_for_the_graph(nets):
    data, shape = nets["mobilenet_v2"]
    model = co.load(data)
    x = np.random.default_rng(6).standard_normal((2,) + shape[1:]).astype(np.float32)
    for _ in range(3):
        model(x)
    tape = _tape_of(model)
    bad = x.copy()
    bad[0, 1, 5, 7] = np.nan
    assert tape.run({"input": bad}) is None  # a kernel's NaN count differs from the capture's
    got, want = model(bad), _graph_run(model, bad)
    assert got.tobytes() == want.tobytes()


def test_a_non_contiguous_or_read_only_input_is_replayed(nets):
    data, shape = nets["resnet18"]
    model = co.load(data)
    rng = np.random.default_rng(7)
    for _ in range(2):
        model(rng.standard_normal((2,) + shape[1:]).astype(np.float32))
    wide = rng.standard_normal((2,) + shape[1:-1] + (2 * shape[-1],)).astype(np.float32)
    x = wide[..., ::2]
    ro = np.ascontiguousarray(x)
    ro.flags.writeable = False
    for v in (x, ro):
        assert model(v).tobytes() == _graph_run(model, np.ascontiguousarray(v)).tobytes()


def test_threads_replay_into_their_own_buffers(nets):
    data, shape = nets["mobilenet_v2"]
    model = co.load(data)
    xs = [np.random.default_rng(20 + i).standard_normal((2,) + shape[1:]).astype(np.float32) for i in range(4)]
    want = [_graph_run(model, x) for x in xs]
    for _ in range(2):
        model(xs[0])
    assert isinstance(_tape_of(model), _tape.Tape)

    def work(i):
        for _ in range(15):
            assert model(xs[i]).tobytes() == want[i].tobytes()

    run_in_threads(work, 4)


# ---- what is not taped -----------------------------------------------------------------------------------

_RNG = np.random.default_rng(8)
_A = _RNG.standard_normal((40, 16)).astype(np.float32)
_B = gemm.pack_panels(_RNG.standard_normal((16, 24)).astype(np.float32))
_EPI = gemm.epilogue_columns((np.ones(24, np.float32), np.zeros(24, np.float32), -np.inf, np.inf), 24)
_KERNEL = gemm.gemm_epilogue


def _product(a, res=None, out=None):
    out = np.empty((a.shape[0], 24), np.float32) if out is None else out
    _KERNEL(a, _B, out, *_EPI, res)
    return out


def _feeds():
    return {"x": np.ascontiguousarray(_A)}


def test_a_run_of_kernels_alone_is_taped():
    def execute(feeds):
        return [_product(_product(feeds["x"])[:, :16])]

    tape = _tape.capture(execute, _feeds())
    assert isinstance(tape, _tape.Tape) and tape.calls == 2
    x = _RNG.standard_normal((40, 16)).astype(np.float32)
    assert tape.run({"x": x})[0].tobytes() == execute({"x": x})[0].tobytes()


def test_data_made_by_numpy_between_kernels_is_not_taped():
    assert _tape.capture(lambda feeds: [_product(feeds["x"] * 2)], _feeds()) is None


def test_an_output_changed_in_place_by_numpy_is_not_taped():
    def execute(feeds):
        out = _product(feeds["x"])
        out *= 2
        return [out]

    assert _tape.capture(execute, _feeds()) is None


def test_a_kernel_reading_what_python_zeroed_is_not_taped():
    def execute(feeds):
        out = np.zeros((40, 24), np.float32)
        return [_product(feeds["x"], res=out, out=out)]  # reads its output's zeros as the residual

    assert _tape.capture(execute, _feeds()) is None


def test_a_kernel_reading_rows_no_kernel_wrote_is_not_taped():
    eye = gemm.pack_panels(np.eye(16, dtype=np.float32))
    epi = gemm.epilogue_columns((np.ones(16, np.float32), np.zeros(16, np.float32), -np.inf, np.inf), 16)

    def execute(feeds):
        buf = np.zeros((48, 16), np.float32)
        _KERNEL(feeds["x"], eye, buf[:40], *epi, None)  # rows 40: stay Python's zeros
        return [_product(buf)]

    assert _tape.capture(execute, _feeds()) is None  # the replay's slots start as NaN


def test_an_output_no_kernel_wrote_is_not_taped():
    const = np.ones(3, np.float32)
    assert _tape.capture(lambda feeds: [_product(feeds["x"]), const], _feeds()) is None


def test_a_kernel_writing_into_the_input_is_not_taped():
    eye = gemm.pack_panels(np.eye(16, dtype=np.float32))
    epi = gemm.epilogue_columns((np.ones(16, np.float32), np.zeros(16, np.float32), -np.inf, np.inf), 16)

    def writes_input(feeds):
        _KERNEL(np.ones((40, 16), np.float32), eye, feeds["x"], *epi, None)
        return [_product(feeds["x"])]

    assert _tape.capture(writes_input, _feeds()) is None


def test_integer_inputs_are_not_taped():
    assert _tape.capture(lambda feeds: [], {"i": np.arange(4)}) is None


def _sigmoid_between_convs():
    rng = np.random.default_rng(9)
    inits = {"w1": (rng.standard_normal((8, 8, 3, 3)) / 9).astype(np.float32),
             "w2": (rng.standard_normal((8, 8, 3, 3)) / 9).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Sigmoid", ["a"], ["s"]),
             helper.make_node("Conv", ["s", "w2"], ["y"], pads=[1, 1, 1, 1])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 10, 10])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_a_graph_with_a_numpy_op_between_kernels_runs_its_graph():
    model = co.load(_sigmoid_between_convs())
    rng = np.random.default_rng(10)
    for _ in range(4):
        x = rng.standard_normal((1, 8, 10, 10)).astype(np.float32)
        assert model(x).tobytes() == _graph_run(model, x).tobytes()
    assert _tape_of(model) is False


def test_a_graph_failing_on_the_random_inputs_runs_on_the_callers(monkeypatch, nets):
    data, shape = nets["resnet18"]
    model = co.load(data)
    x = np.random.default_rng(11).standard_normal((2,) + shape[1:]).astype(np.float32)
    model(x)

    def fails(*a, **k):
        raise ValueError("a shape only the random input has")

    monkeypatch.setattr(_tape, "capture", fails)
    assert model(x).tobytes() == _graph_run(model, x).tobytes()
    assert _tape_of(model) is False

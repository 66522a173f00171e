"""ONNX's own backend node cases, run through convlayers.onnx: every case of every supported op.

The onnx wheel builds its node cases in memory from its generators
(``onnx.backend.test.loader.load_model_tests(kind="node")``, offline).  A case
is run when every op in it is in :func:`convlayers.onnx.supported_ops`; it
may only be skipped for one of the documented reasons in ``_SKIP_REASONS``
(anything else unsupported, and any wrong value, fails).  The
``pytorch-converted`` and ``pytorch-operator`` model cases the wheel ships
as files run the same way.
"""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

import convlayers.onnx as co  # noqa: E402

from _onnx_cases import compare, node_cases  # noqa: E402

# Why a case of a supported op may be skipped (matched against the load/run error).
_SKIP_REASONS = {
    "only NumPy's numeric types and bool": "a Cast to float8/bfloat16/int4/... (no NumPy dtype)",
    "sequence, map or optional value": "sequence/optional values (tensors only)",
    "training_mode": "training mode (inference only)",
    "has no 3-D pools": "3-D pooling (waits for the pool-nd branch's 3-D functional pools)",
    "3-D transposed convolution is not available": "3-D ConvTranspose (waits for conv-nd's conv_transpose3d)",
    "3-D convolution is not available": "3-D Conv (waits for conv-nd's conv3d)",
    "avg_pool2d has no dilation": "dilated average pooling (functional.avg_pool2d has no dilation)",
    "only 2-D images are supported": "N-d Col2Im (functional.fold is 2-D, as PyTorch's)",
    "Resize (opset": "a Resize coordinate mode / nearest rounding / policy functional.interpolate does not have",
    "has no functional.interpolate counterpart": "align_corners on a fractional output size (ONNX divides by "
                                                 "in*scale-1, interpolate by out-1)",
}


def _numpy_dtype(a):
    if isinstance(a, np.generic):
        a = np.asarray(a)
    return isinstance(a, np.ndarray) and a.dtype.kind in "biufc" and a.dtype.name != "bfloat16" \
        and a.dtype.itemsize > 0 and not a.dtype.names and "float8" not in str(a.dtype) \
        and "int4" not in str(a.dtype) and "float4" not in str(a.dtype) and a.dtype.str[1] != "V"


def _cases():
    supported = co.supported_ops()
    for name, model, data, rtol, atol, ops in node_cases():
        if all(op in supported for op in ops):
            yield pytest.param(name, model, data, rtol, atol, id=name)


def _skip_reason(exc):
    text = str(exc)
    for key, why in _SKIP_REASONS.items():
        if key in text:
            return why
    return None


def _run_case(name, model, data, rtol, atol):
    for inputs, outputs in data:
        if not all(_numpy_dtype(a) for a in list(inputs) + list(outputs)):
            pytest.skip("float8/bfloat16/int4/string tensors (no NumPy dtype)")
    try:
        m = co.load(model)
        for inputs, outputs in data:
            got = m.run(None, {v.name: a for v, a in zip(m.inputs, inputs)})
            assert len(got) == len(outputs)
            for g, w in zip(got, outputs):
                compare(g, w, rtol, atol, name)
    except (ValueError, TypeError) as exc:
        why = _skip_reason(exc)
        if why is None:
            raise
        pytest.skip(why)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("name, model, data, rtol, atol", list(_cases()))
def test_node_case(name, model, data, rtol, atol):
    with np.errstate(all="ignore"):
        _run_case(name, model, data, rtol, atol)


def _data_dir_cases(kind):
    root = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", kind)
    for d in sorted(glob.glob(os.path.join(root, "*"))):
        if os.path.isfile(os.path.join(d, "model.onnx")):
            yield pytest.param(d, id=os.path.basename(d))


def _load_pb_sets(case_dir):
    from onnx import numpy_helper

    sets = []
    for ds in sorted(glob.glob(os.path.join(case_dir, "test_data_set_*"))):
        def read(prefix):
            arrays = []
            for f in sorted(glob.glob(os.path.join(ds, f"{prefix}_*.pb")),
                            key=lambda p: int(p.rsplit("_", 1)[1][:-3])):
                t = onnx.TensorProto()
                with open(f, "rb") as fh:
                    t.ParseFromString(fh.read())
                arrays.append(numpy_helper.to_array(t))
            return arrays
        sets.append((read("input"), read("output")))
    return sets


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("case_dir", list(_data_dir_cases("pytorch-converted"))
                         + list(_data_dir_cases("pytorch-operator")))
def test_pytorch_model_case(case_dir):
    model = onnx.load(os.path.join(case_dir, "model.onnx"))
    ops = {n.op_type for n in model.graph.node}
    missing = sorted(ops - set(co.supported_ops()))
    if missing:
        pytest.skip(f"uses ops outside supported_ops(): {missing}")
    _run_case(os.path.basename(case_dir), model, _load_pb_sets(case_dir), 1e-3, 1e-5)


def test_cases_were_found():
    """The oracle itself: the wheel's generators produced cases for the core ops."""
    names = {name for name, *_ in node_cases()}
    assert len(names) > 500
    for op in ("conv", "maxpool", "averagepool", "batchnorm", "relu", "gemm", "reshape", "concat"):
        assert any(n.startswith(f"test_{op}") for n in names), op

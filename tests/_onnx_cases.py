"""ONNX's own backend node cases (built in memory by the onnx wheel, offline), grouped for the tests."""

from __future__ import annotations

import functools
import warnings

import numpy as np


@functools.lru_cache(maxsize=None)
def node_cases():
    """Every in-memory node case: ``[(name, ModelProto, [(inputs, outputs)], rtol, atol, op_types)]``."""
    from onnx.backend.test.loader import load_model_tests

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        tests = load_model_tests(kind="node")
    out = []
    for t in tests:
        ops = tuple(sorted({n.op_type for n in t.model.graph.node}))
        out.append((t.name, t.model, t.data_sets, t.rtol, t.atol, ops))
    return out


def compare(got, want, rtol, atol, name):
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    if want.dtype.kind in "fc":
        assert got.dtype == want.dtype, f"{name}: dtype {got.dtype} != {want.dtype}"
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True, err_msg=name)
    else:
        assert got.dtype == want.dtype, f"{name}: dtype {got.dtype} != {want.dtype}"
        np.testing.assert_array_equal(got, want, err_msg=name)

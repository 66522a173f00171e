"""Gradient checks of OpInfo samples against torch autograd (beside ``_peer``'s forward checks).

``check_grad(case, fn, wrt)`` re-runs the case's PyTorch sample with
``requires_grad`` on the chosen arguments, back-propagates a seeded random
output gradient, and compares every gradient with convlayers' autograd on the
same NumPy values::

    @pytest.mark.parametrize("case", op_samples("nn.functional.group_norm"), ids=str)
    def test_group_norm_grad(case):
        check_grad(case, F.group_norm, wrt=("input", "weight", "bias"))

``wrt`` names ``"input"``, positions in ``args`` (ints) or keyword names; by
default every floating-point tensor argument.
"""

from __future__ import annotations

import numpy as np
import pytest

import convlayers as cl
from _peer import _op_db, to_numpy  # noqa: F401  (shared import of torch via _peer)
from conftest import assert_close

torch = pytest.importorskip("torch")


def _torch_op(name):
    for op in _op_db():
        if op.name == name:
            return op.op
    raise LookupError(name)


def _keys(sample, wrt):
    keys = [("input", None)] + [("args", i) for i in range(len(sample.args))] + \
        [("kwargs", k) for k in sample.kwargs]
    chosen = []
    for key in keys:
        value = sample.input if key[0] == "input" else sample.args[key[1]] if key[0] == "args" else \
            sample.kwargs[key[1]]
        if not (isinstance(value, torch.Tensor) and value.is_floating_point()):
            continue
        label = "input" if key[0] == "input" else key[1]
        if wrt is None or label in wrt:
            chosen.append(key)
    return chosen


def _get(parts, key):
    kind, k = key
    return parts[0] if kind == "input" else parts[1][k] if kind == "args" else parts[2][k]


def _set(parts, key, value):
    kind, k = key
    if kind == "input":
        parts[0] = value
    elif kind == "args":
        parts[1][k] = value
    else:
        parts[2][k] = value


def check_grad(case, fn, wrt=None, rtol=None, seed=0):
    """Compare convlayers' gradients of ``fn`` on ``case`` with torch autograd's; skip cases with nothing to check."""
    s = case.torch_sample
    keys = _keys(s, wrt)
    if not keys:
        pytest.skip("no floating-point argument to differentiate")

    def clone(v):
        return v.detach().clone() if isinstance(v, torch.Tensor) else v

    tparts = [clone(s.input), [clone(a) for a in s.args], {k: clone(v) for k, v in s.kwargs.items()}]
    nparts = [to_numpy(tparts[0]), [to_numpy(a) for a in tparts[1]], {k: to_numpy(v) for k, v in tparts[2].items()}]
    leaves = []
    for key in keys:
        t = _get(tparts, key).requires_grad_(True)
        leaves.append(t)
        _set(nparts, key, cl.Tensor(_get(nparts, key), requires_grad=True))
    out = _torch_op(case.op_name)(tparts[0], *tparts[1], **tparts[2])
    if isinstance(out, (tuple, list)):
        out = out[0]
    if out.numel() == 0 or not out.requires_grad:
        pytest.skip("empty output or no graph")
    rng = np.random.default_rng(seed)
    go = rng.standard_normal(tuple(out.shape)).astype(case.dtype)
    expected = torch.autograd.grad(out, leaves, torch.from_numpy(go), allow_unused=True)
    got = fn(nparts[0], *nparts[1], **nparts[2])
    if isinstance(got, (tuple, list)):
        got = got[0]
    got.backward(go)
    for key, e, leaf in zip(keys, expected, leaves):
        ours = _get(nparts, key).grad
        e = np.zeros(tuple(leaf.shape), case.dtype) if e is None else e.numpy()
        if ours is None:
            ours = np.zeros_like(e)
        assert_close(np.asarray(ours), e, dtype=case.dtype, rtol=rtol)

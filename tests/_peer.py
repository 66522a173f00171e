"""PyTorch's own test inputs, as NumPy: OpInfo samples/error inputs and ModuleInfo inputs.

PyTorch's test suite describes every op by an ``OpInfo`` (in
``torch.testing._internal.common_methods_invocations.op_db``) whose
``sample_inputs`` and ``error_inputs`` are the field's acceptance cases, and
every module by a ``ModuleInfo`` (``common_modules.module_db``).  These
helpers hand them to a convlayers test as NumPy arrays, with PyTorch's own
result beside each, so that one parametrised test checks a whole op::

    @pytest.mark.parametrize("case", op_samples("nn.functional.conv1d"), ids=str)
    def test_conv1d_opinfo(case):
        case.check(F.conv1d)

Cases are built lazily at collection (a list per op, seeded by PyTorch's own
generators).  ``expecttest`` must be installed (the ``test`` extra has it).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("expecttest")

from conftest import assert_close  # noqa: E402

TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def to_numpy(obj):
    """Tensors (nested in lists, tuples and dicts) as ndarrays; everything else unchanged."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().numpy().copy()
    if isinstance(obj, (list, tuple)):
        converted = [to_numpy(o) for o in obj]
        return type(obj)(converted) if not hasattr(obj, "_fields") else type(obj)(*converted)
    if isinstance(obj, dict):
        return {k: to_numpy(v) for k, v in obj.items()}
    if isinstance(obj, torch.dtype):
        return {torch.float32: np.float32, torch.float64: np.float64, torch.int64: np.int64}.get(obj, obj)
    return obj


@functools.cache
def _op_db():
    from torch.testing._internal.common_methods_invocations import op_db
    return op_db


@functools.cache
def _module_db():
    from torch.testing._internal.common_modules import module_db
    return module_db


def opinfo(name: str, variant: str = ""):
    """The OpInfo called ``name`` (e.g. ``"nn.functional.conv2d"``) with ``variant_test_name`` ``variant``."""
    for op in _op_db():
        if op.name == name and op.variant_test_name == variant:
            return op
    raise LookupError(f"no OpInfo named {name!r} with variant {variant!r}")


def moduleinfo(cls_name: str):
    """The ModuleInfo of ``torch.nn.<cls_name>``."""
    for m in _module_db():
        if m.module_cls.__name__ == cls_name:
            return m
    raise LookupError(f"no ModuleInfo for {cls_name!r}")


@dataclasses.dataclass
class Case:
    """One OpInfo sample: NumPy inputs, PyTorch's output, and a way to compare."""

    op_name: str
    index: int
    dtype: np.dtype
    input: Any
    args: tuple
    kwargs: dict
    expected: Any
    torch_sample: Any = dataclasses.field(repr=False, default=None)
    torch_op: Any = dataclasses.field(repr=False, default=None)

    def __str__(self):
        shape = getattr(self.input, "shape", type(self.input).__name__)
        return f"{self.op_name}-{np.dtype(self.dtype).name}-{self.index}-{shape}"

    def call(self, fn):
        return fn(self.input, *self.args, **self.kwargs)

    def check(self, fn, rtol=None, prepare=None):
        """Run ``fn`` on the NumPy inputs and compare every output with PyTorch's."""
        args, kwargs = self.args, self.kwargs
        x = self.input
        if prepare is not None:
            x, args, kwargs = prepare(x, args, kwargs)
        got = fn(x, *args, **kwargs)
        _compare(got, self.expected, self.dtype, rtol)

    def check_grad(self, fn, rtol=None, prepare=None, seed=0):
        """The gradient of ``fn``'s (first) output with respect to the input, against torch autograd's.

        A seeded random upstream gradient makes every output element count; ``fn``
        gets a :class:`convlayers.Tensor` input, the other arguments as NumPy.
        """
        from convlayers import tensor

        s = self.torch_sample
        xt = s.input.detach().clone().requires_grad_(True)
        ref = self.torch_op(xt, *s.args, **s.kwargs)
        ref = ref[0] if isinstance(ref, (tuple, list)) else ref
        upstream = np.random.default_rng(seed).standard_normal(tuple(ref.shape)).astype(self.dtype)
        ref.backward(torch.from_numpy(upstream))
        args, kwargs = self.args, self.kwargs
        x = self.input
        if prepare is not None:
            x, args, kwargs = prepare(x, args, kwargs)
        xc = tensor(x, requires_grad=True)
        out = fn(xc, *args, **kwargs)
        out = out[0] if isinstance(out, (tuple, list)) else out
        out.backward(upstream)
        assert xc.grad is not None, "no gradient reached the input"
        _compare(xc.grad, to_numpy(xt.grad), self.dtype, rtol)


def _compare(got, expected, dtype, rtol):
    if isinstance(expected, (tuple, list)):
        assert isinstance(got, (tuple, list)) and len(got) == len(expected), \
            f"expected {len(expected)} outputs, got {type(got).__name__}"
        for g, e in zip(got, expected):
            _compare(g, e, dtype, rtol)
        return
    expected = np.asarray(expected)
    got = np.asarray(got)
    if expected.dtype.kind in "biu":
        np.testing.assert_array_equal(got, expected)
    else:
        assert got.dtype == expected.dtype, f"dtype {got.dtype} != {expected.dtype}"
        assert_close(got, expected, dtype=dtype, rtol=rtol)


def op_samples(name: str, variant: str = "", dtypes=(np.float32, np.float64), requires_grad=False, every=1):
    """Every OpInfo sample of ``name`` for each dtype, with PyTorch's output computed once.

    ``every=k`` keeps samples 0, k, 2k, ... (for ops with a thousand samples, whose
    conversion alone takes minutes on a loaded machine).
    """
    op = opinfo(name, variant)
    cases = []
    for dtype in dtypes:
        torch.manual_seed(0)
        for i, s in enumerate(op.sample_inputs("cpu", TORCH_DTYPES[np.dtype(dtype)], requires_grad=requires_grad)):
            if i % every:
                continue
            with torch.no_grad():
                expected = op.op(s.input, *s.args, **s.kwargs)
            cases.append(Case(name, i, np.dtype(dtype), to_numpy(s.input), to_numpy(tuple(s.args)),
                              to_numpy(dict(s.kwargs)), to_numpy(expected), s, op.op))
    return cases


@dataclasses.dataclass
class ErrorCase:
    """One OpInfo error input: the call PyTorch refuses, and how."""

    op_name: str
    index: int
    input: Any
    args: tuple
    kwargs: dict
    error_type: type
    error_regex: str

    def __str__(self):
        return f"{self.op_name}-error-{self.index}"

    def check(self, fn, match_message=False):
        """``fn`` must refuse the call with a ValueError/TypeError (or PyTorch's own error type).

        PyTorch's messages name C++ internals; convlayers names the argument instead, so
        the message is compared only when ``match_message``.
        """
        with pytest.raises((ValueError, TypeError, IndexError, self.error_type)) as info:
            fn(self.input, *self.args, **self.kwargs)
        if match_message:
            assert re.search(self.error_regex, str(info.value)), str(info.value)


def op_error_cases(name: str, variant: str = ""):
    """Every OpInfo ``error_inputs`` case of ``name`` (float32 inputs)."""
    op = opinfo(name, variant)
    if op.error_inputs_func is None:
        return []
    cases = []
    for i, e in enumerate(op.error_inputs("cpu")):
        s = e.sample_input
        cases.append(ErrorCase(name, i, to_numpy(s.input), to_numpy(tuple(s.args)), to_numpy(dict(s.kwargs)),
                               e.error_type, e.error_regex))
    return cases


@dataclasses.dataclass
class ModuleCase:
    """One ModuleInfo input: constructor arguments, forward arguments, PyTorch's module and output."""

    cls_name: str
    index: int
    dtype: np.dtype
    constructor_args: tuple
    constructor_kwargs: dict
    forward_args: tuple
    forward_kwargs: dict
    expected: Any
    state_dict: dict
    desc: str = ""

    def __str__(self):
        return f"{self.cls_name}-{np.dtype(self.dtype).name}-{self.index}{'-' + self.desc if self.desc else ''}"

    def build(self, cls, load_state=True):
        """``cls(*constructor args)`` with PyTorch's module's parameters and buffers loaded."""
        module = cls(*self.constructor_args, **self.constructor_kwargs)
        if load_state and self.state_dict:
            module.load_state_dict(self.state_dict)
        return module

    def check(self, cls, rtol=None, training=False):
        module = self.build(cls)
        module.train(training)
        got = module(*self.forward_args, **self.forward_kwargs)
        _compare(got, self.expected, self.dtype, rtol)


def module_cases(cls_name: str, dtypes=(np.float32, np.float64), training=False):
    """Every ModuleInfo input of ``torch.nn.<cls_name>``, run through PyTorch once (eval unless ``training``)."""
    info = moduleinfo(cls_name)
    cases = []
    for dtype in dtypes:
        tdtype = TORCH_DTYPES[np.dtype(dtype)]
        torch.manual_seed(0)
        inputs = info.module_inputs_func(info, device="cpu", dtype=tdtype, requires_grad=False, training=training)
        for i, mi in enumerate(inputs):
            if mi.forward_input is None:
                continue
            c_args, c_kwargs = mi.constructor_input.args, mi.constructor_input.kwargs
            torch.manual_seed(0)
            ref = info.module_cls(*c_args, **c_kwargs).to(tdtype)
            ref.train(training)
            f_args, f_kwargs = mi.forward_input.args, mi.forward_input.kwargs
            with torch.no_grad():
                expected = ref(*f_args, **f_kwargs)
            cases.append(ModuleCase(cls_name, i, np.dtype(dtype), to_numpy(tuple(c_args)), to_numpy(dict(c_kwargs)),
                                    to_numpy(tuple(f_args)), to_numpy(dict(f_kwargs)), to_numpy(expected),
                                    to_numpy(dict(ref.state_dict())), mi.desc or ""))
    return cases

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

    def check_grad(self, fn, wrt=None, rtol=None, prepare=None, seed=0):
        """Backpropagate a random upstream gradient through ``fn`` and through PyTorch; compare the gradients.

        ``fn`` is called as ``fn(input, *args, **kwargs)`` with every differentiated argument turned into a
        ``convlayers.Tensor(requires_grad=True)`` (the others stay NumPy).  ``wrt`` names the differentiated
        arguments: ``"input"``, an int (position in ``args``), a kwarg name, or a path into a list argument
        such as ``("input", 1)`` / ``(0, 1)``; by default the input and every floating-point array among the args
        and kwargs (nested in lists too) that PyTorch can differentiate.  The same upstream gradient (seeded,
        standard normal) goes into torch's autograd of the OpInfo's op on the same values.  Floating outputs are
        differentiated; integer outputs (indices) are ignored.  Returns the number of gradients compared.
        """
        from convlayers.autograd import Tensor

        x, args, kwargs = self.input, self.args, self.kwargs
        if prepare is not None:
            x, args, kwargs = prepare(x, args, kwargs)
        root = {"input": x, **{i: a for i, a in enumerate(args)}, **kwargs}
        leaves = _float_leaves(root) if wrt is None else [w if isinstance(w, tuple) else (w,) for w in wrt]

        def build(kind):
            tree = {k: _copy_tree(v) for k, v in root.items()}
            made = {}
            for path in leaves:
                value = _get_path(tree, path)
                if kind == "torch":
                    leaf = torch.tensor(value, requires_grad=True)
                else:
                    leaf = Tensor(np.array(value), requires_grad=True)
                _set_path(tree, path, leaf)
                made[path] = leaf
            pos = tuple(tree[i] for i in range(len(args)))
            kw = {k: v for k, v in tree.items() if isinstance(k, str) and k != "input"}
            return tree["input"], pos, kw, made

        tx, targs, tkw, tleaves = build("torch")
        op = self.torch_op
        t_out = op(_to_torch(tx), *_to_torch(targs), **_to_torch(tkw))
        t_outs = [o for o in (t_out if isinstance(t_out, (tuple, list)) else (t_out,))
                  if isinstance(o, torch.Tensor) and o.is_floating_point()]
        rng = np.random.default_rng(seed + self.index)
        ups = [rng.standard_normal(o.shape).astype(self.dtype) for o in t_outs]
        usable = [p for p in leaves if tleaves[p].requires_grad]
        t_grads = torch.autograd.grad([o for o in t_outs if o.requires_grad],
                                      [tleaves[p] for p in usable],
                                      [torch.from_numpy(u) for u, o in zip(ups, t_outs) if o.requires_grad],
                                      allow_unused=True) if any(o.requires_grad for o in t_outs) else []
        cx, cargs, ckw, cleaves = build("convlayers")
        c_out = fn(cx, *cargs, **ckw)
        c_outs = [o for o in (c_out if isinstance(c_out, (tuple, list)) else (c_out,))
                  if isinstance(o, Tensor) and o.dtype.kind == "f"]
        assert len(c_outs) == len(t_outs), f"{len(c_outs)} differentiable outputs, torch has {len(t_outs)}"
        total = None
        for o, u in zip(c_outs, ups):
            if o.requires_grad:
                term = (o * Tensor(u)).sum()
                total = term if total is None else total + term
        if total is not None:
            total.backward()
        for path, tg in zip(usable, t_grads):
            expected = np.zeros(np.shape(_get_path(root, path)), self.dtype) if tg is None else tg.numpy()
            got = cleaves[path].grad
            got = np.zeros_like(expected) if got is None else got
            assert_close(got, expected, dtype=self.dtype, rtol=rtol)
        return len(usable)


def _to_torch(obj):
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_torch(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _to_torch(v) for k, v in obj.items()}
    if isinstance(obj, type) and issubclass(obj, np.generic):
        return {np.float32: torch.float32, np.float64: torch.float64, np.int64: torch.int64}.get(obj, obj)
    return obj


def _copy_tree(obj):
    if isinstance(obj, (list, tuple)):
        return [_copy_tree(o) for o in obj] if isinstance(obj, list) else tuple(_copy_tree(o) for o in obj)
    return obj


def _float_leaves(root):
    out = []
    for key, value in root.items():
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            out.append((key,))
        elif isinstance(value, (list, tuple)):
            out.extend((key, i) for i, v in enumerate(value) if isinstance(v, np.ndarray) and v.dtype.kind == "f")
    return out


def _get_path(tree, path):
    value = tree[path[0]]
    for p in path[1:]:
        value = value[p]
    return value


def _set_path(tree, path, leaf):
    if len(path) == 1:
        tree[path[0]] = leaf
        return
    container = tree[path[0]]
    if isinstance(container, tuple):
        container = list(container)
        container[path[1]] = leaf
        tree[path[0]] = tuple(container)
    else:
        container[path[1]] = leaf


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

    def check_grad(self, cls, rtol=None, training=False, seed=0, wrt=None):
        """Backpropagate one seeded upstream gradient through the convlayers module and PyTorch's (same
        state, the case's dtype); compare the gradients of the floating forward arguments (those listed in
        ``wrt``, positions or keyword names; all by default) and of every parameter.  Returns the number of
        gradients compared."""
        from convlayers.autograd import Tensor

        module = self.build(cls)
        if any(True for _ in module.parameters()):
            module.to(self.dtype)
        module.train(training)
        info = moduleinfo(self.cls_name)
        ref = info.module_cls(*_to_torch(self.constructor_args), **_to_torch(self.constructor_kwargs))
        ref = ref.to(TORCH_DTYPES[np.dtype(self.dtype)])
        ref.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in self.state_dict.items()})
        ref.train(training)
        names = [i for i, a in enumerate(self.forward_args) if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
        names += [k for k, a in self.forward_kwargs.items() if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
        if wrt is not None:
            names = [n for n in names if n in wrt]
        t_in = {n: torch.tensor((self.forward_args[n] if isinstance(n, int) else self.forward_kwargs[n]),
                                requires_grad=True) for n in names}
        c_in = {n: Tensor(np.array(self.forward_args[n] if isinstance(n, int) else self.forward_kwargs[n]),
                          requires_grad=True) for n in names}

        def call(m, leaves, conv):
            args = [leaves.get(i, conv(a)) for i, a in enumerate(self.forward_args)]
            kwargs = {k: leaves.get(k, conv(a)) for k, a in self.forward_kwargs.items()}
            return m(*args, **kwargs)

        t_out = call(ref, t_in, _to_torch)
        c_out = call(module, c_in, lambda a: Tensor(a) if isinstance(a, np.ndarray) else a)
        t_outs = [o for o in (t_out if isinstance(t_out, (tuple, list)) else (t_out,)) if o.is_floating_point()]
        c_outs = [o for o in (c_out if isinstance(c_out, (tuple, list)) else (c_out,)) if o.dtype.kind == "f"]
        rng = np.random.default_rng(seed + self.index)
        ups = [rng.standard_normal(o.shape).astype(self.dtype) for o in t_outs]
        t_params = dict(ref.named_parameters())
        leaves = list(t_in.values()) + list(t_params.values())
        t_grads = torch.autograd.grad(t_outs, leaves, [torch.from_numpy(u) for u in ups], allow_unused=True)
        total = None
        for o, u in zip(c_outs, ups):
            if o.requires_grad:
                term = (o * Tensor(u)).sum()
                total = term if total is None else total + term
        if total is not None:
            total.backward()
        c_params = dict(module.named_parameters())
        got = [c_in[n].grad for n in names] + [c_params[k].grad for k in t_params]
        for g, e, leaf in zip(got, t_grads, leaves):
            e = np.zeros(tuple(leaf.shape), self.dtype) if e is None else e.numpy()
            assert_close(np.zeros_like(e) if g is None else g, e, dtype=self.dtype, rtol=rtol)
        return len(got)


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

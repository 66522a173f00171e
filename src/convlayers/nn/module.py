"""``Module``, ``Parameter`` and the containers: the bookkeeping behind every layer.

A :class:`Module` keeps three ordered registries, exactly as PyTorch does, so
that the dotted names of :meth:`Module.state_dict` are PyTorch's:

* ``_parameters``: trainable :class:`Parameter` objects (``weight``, ``bias``),
* ``_buffers``: plain NumPy arrays that are state but not trained
  (``running_mean``, ``running_var``, ``num_batches_tracked``),
* ``_modules``: child modules, whose names become the key prefixes
  (``features.1.conv.0.0.weight``).

Calling a module on a NumPy array runs inference (no graph is recorded) and
returns an array; calling it on a :class:`~convlayers.autograd.Tensor` returns
a Tensor that can be back-propagated.
"""

from __future__ import annotations

import numbers
from collections import OrderedDict, namedtuple

import numpy as np

from ..autograd import Tensor, no_grad
from . import _state

__all__ = ["Module", "Parameter", "Sequential", "ModuleList", "IncompatibleKeys", "RemovableHandle"]

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Parameter(Tensor):
    """A Tensor that a :class:`Module` registers as trainable.

    Parameters
    ----------
    data : array_like
        Initial value; floating point arrays keep their dtype, anything else
        becomes float32.
    requires_grad : bool, default True
        Whether optimisers and ``backward`` should produce a gradient for it.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers.nn import Parameter
    >>> p = Parameter(np.zeros((2, 3), dtype=np.float32))
    >>> p.requires_grad, p.shape
    (True, (2, 3))
    """

    def __init__(self, data, requires_grad=True):
        if isinstance(data, Tensor):
            data = data.data
        array = np.array(data, copy=True)
        if not np.issubdtype(array.dtype, np.floating):
            array = array.astype(np.float32)
        super().__init__(array, requires_grad=requires_grad)

    def __repr__(self):
        return f"Parameter containing:\n{self.data!r}"


def _addindent(text: str, spaces: int) -> str:
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    return lines[0] + "\n" + "\n".join(" " * spaces + line for line in lines[1:])


class Module:
    """Base class of every layer, block and model.

    Subclasses call ``super().__init__()`` first, then assign parameters,
    buffers (via :meth:`register_buffer`) and child modules as attributes, and
    implement :meth:`forward`.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> class Scale(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.gain = nn.Parameter(np.ones(1, dtype=np.float32))
    ...     def forward(self, x):
    ...         return x * self.gain
    >>> m = Scale()
    >>> list(m.state_dict())
    ['gain']
    >>> m(np.full((2,), 3.0, dtype=np.float32))
    array([3., 3.], dtype=float32)
    """

    def __init__(self):
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())

    # -- attribute registry -------------------------------------------------

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() call in {type(self).__name__}")
        params, buffers, modules = self._parameters, self._buffers, self._modules
        if isinstance(value, Parameter):
            self._forget(name)
            params[name] = value
        elif isinstance(value, Module):
            self._forget(name)
            modules[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as parameter {name!r} "
                                "(a Parameter or None is required)")
            params[name] = None
        elif name in modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as child module {name!r} "
                                "(a Module or None is required)")
            modules[name] = None
        elif name in buffers:
            if value is not None and not isinstance(value, np.ndarray):
                raise TypeError(f"cannot assign {type(value).__name__} as buffer {name!r} "
                                "(a numpy.ndarray or None is required)")
            buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name):
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        self._non_persistent.discard(name)
        self.__dict__.pop(name, None)

    def __getattr__(self, name):
        # Only reached when normal lookup fails, i.e. for registered names.
        d = self.__dict__
        for registry in ("_parameters", "_buffers", "_modules"):
            if registry in d and name in d[registry]:
                return d[registry][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                self._non_persistent.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers)
                      | set(self._modules))

    def register_parameter(self, name: str, param):
        """Register ``param`` (a :class:`Parameter` or None) under ``name``."""
        self._check_name(name)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"param must be a Parameter or None, got {type(param).__name__}")
        self._forget(name)
        self._parameters[name] = param

    def register_buffer(self, name: str, array, persistent: bool = True):
        """Register a non-trained array (or None) that belongs to the state.

        Parameters
        ----------
        name : str
            Attribute and ``state_dict`` name.
        array : numpy.ndarray or None
            The buffer; it is stored as given (not copied) so that functional
            ops can update it in place.
        persistent : bool, default True
            Whether the buffer appears in :meth:`state_dict`.
        """
        self._check_name(name)
        if array is not None and not isinstance(array, np.ndarray):
            raise TypeError(f"array must be a numpy.ndarray or None, got {type(array).__name__}")
        self._forget(name)
        self._buffers[name] = array
        if not persistent:
            self._non_persistent.add(name)

    def add_module(self, name: str, module):
        """Register child ``module`` (a :class:`Module` or None) under ``name``."""
        self._check_name(name)
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"module must be a Module or None, got {type(module).__name__}")
        self._forget(name)
        self._modules[name] = module

    register_module = add_module

    @staticmethod
    def _check_name(name):
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        if not name or "." in name:
            raise ValueError(f"name must be a non-empty string without '.', got {name!r}")

    # -- traversal ----------------------------------------------------------

    def named_modules(self, memo=None, prefix: str = "", remove_duplicate: bool = True):
        """Yield ``(dotted_name, module)`` for this module and every descendant (once each unless
        ``remove_duplicate`` is False), depth first in registration order, as PyTorch."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is None:
                continue
            yield from module.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)

    def modules(self):
        """Yield this module and every descendant (depth first, registration order)."""
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        """Yield ``(name, module)`` for the direct children."""
        seen = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self):
        """Yield the direct child modules."""
        for _, module in self.named_children():
            yield module

    def _named_members(self, registry, prefix, recurse):
        seen = set()
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, value in getattr(module, registry).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{module_prefix}.{name}" if module_prefix else name), value

    def named_parameters(self, prefix: str = "", recurse: bool = True):
        """Yield ``(dotted_name, Parameter)``; a parameter shared by two modules appears once."""
        yield from self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True):
        """Yield the trainable :class:`Parameter` objects (what an optimiser takes)."""
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix: str = "", recurse: bool = True):
        """Yield ``(dotted_name, ndarray)`` for the registered buffers."""
        yield from self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True):
        """Yield the registered buffers (NumPy arrays)."""
        for _, buf in self.named_buffers(recurse=recurse):
            yield buf

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Total number of scalar parameters (``sum(p.numel() for p in parameters())`` in torch)."""
        return int(sum(p.data.size for p in self.parameters()
                       if not trainable_only or p.requires_grad))

    def apply(self, fn):
        """Call ``fn(module)`` on every descendant, then on this module; return self."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # -- modes and gradients ------------------------------------------------

    def train(self, mode: bool = True):
        """Set training mode (BatchNorm uses batch statistics, Dropout drops) recursively."""
        if not isinstance(mode, bool):
            raise TypeError(f"mode must be a bool, got {type(mode).__name__}")
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self):
        """Set evaluation mode recursively; same as ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True):
        """Switch gradient tracking of every parameter on or off; return self."""
        for param in self.parameters():
            param.requires_grad = requires_grad
        return self

    def zero_grad(self, set_to_none: bool = True):
        """Reset the gradients of every parameter (to None, as PyTorch does by default)."""
        for param in self.parameters():
            if set_to_none or param.grad is None:
                param.grad = None
            else:
                param.grad = np.zeros_like(param.grad)

    def to(self, dtype):
        """Cast floating-point parameters and buffers to ``dtype`` (float32 or float64); return self.

        Integer buffers (``num_batches_tracked``) keep their dtype, as in PyTorch.
        """
        dtype = np.dtype(dtype)
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        for module in self.modules():
            for param in module._parameters.values():
                if param is not None:
                    param.data = param.data.astype(dtype)
                    if param.grad is not None:
                        param.grad = np.asarray(param.grad).astype(dtype)
            for name, buf in module._buffers.items():
                if buf is not None and np.issubdtype(buf.dtype, np.floating):
                    module._buffers[name] = buf.astype(dtype)
        return self

    def double(self):
        """Cast floating-point parameters and buffers to float64; return self."""
        return self.to(np.float64)

    def float(self):
        """Cast floating-point parameters and buffers to float32; return self."""
        return self.to(np.float32)

    # -- state --------------------------------------------------------------

    def state_dict(self, prefix: str = "") -> OrderedDict:
        """Return an ordered ``{dotted_name: ndarray}`` of parameters and persistent buffers.

        Names, order and shapes are PyTorch's, so a dict from
        ``{k: v.numpy() for k, v in torch_model.state_dict().items()}`` loads
        directly, and ``{k: torch.from_numpy(v) ...}`` of this one loads into torch.
        Values are copies: changing them does not change the module.
        """
        out = OrderedDict()
        for module_prefix, module in self.named_modules(prefix=prefix):
            for name, param in module._parameters.items():
                if param is not None:
                    out[f"{module_prefix}.{name}" if module_prefix else name] = np.array(param.data)
            for name, buf in module._buffers.items():
                if buf is not None and name not in module._non_persistent:
                    out[f"{module_prefix}.{name}" if module_prefix else name] = np.array(buf)
        return out

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copy values from ``state_dict`` into the parameters and buffers.

        Parameters
        ----------
        state_dict : mapping of str to array_like
            Dotted names to arrays (NumPy arrays, torch tensors, lists...).
            Values are cast to each target's dtype and copied.
        strict : bool, default True
            Raise if a key is missing or unexpected.  Shape mismatches always
            raise.

        Returns
        -------
        IncompatibleKeys
            ``(missing_keys, unexpected_keys)``, both lists.

        Raises
        ------
        TypeError
            If ``state_dict`` is not a mapping.
        ValueError
            Listing every missing, unexpected, wrongly shaped and unconvertible
            value (non-numeric, complex, NaN or out-of-range for an integer
            buffer, overflowing a float one), before anything is copied: on
            any error the module is unchanged.
        """
        if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
            raise TypeError(f"state_dict must be a mapping of name to array, got {type(state_dict).__name__}")
        targets = OrderedDict()
        for module_prefix, module in self.named_modules():
            for registry in ("_parameters", "_buffers"):
                for name, value in getattr(module, registry).items():
                    if value is None or (registry == "_buffers" and name in module._non_persistent):
                        continue
                    key = f"{module_prefix}.{name}" if module_prefix else name
                    targets[key] = (module, registry, name)
        missing = [k for k in targets if k not in state_dict]
        unexpected = [k for k in state_dict.keys() if k not in targets]
        # Convert and check every value first; assign only if all succeeded (nn/_state.py says why).
        arrays, mismatched = {}, []
        for key, (module, registry, name) in targets.items():
            if key not in state_dict:
                continue
            current = getattr(module, registry)[name]
            array, problem = _state.convert(key, state_dict[key], np.asarray(
                current.data if registry == "_parameters" else current))
            if problem is not None:
                mismatched.append(problem)
            arrays[key] = array
        errors = []
        if mismatched:
            errors.append("bad values: " + "; ".join(mismatched))
        if strict and missing:
            errors.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            errors.append("unexpected keys: " + ", ".join(map(str, unexpected)))
        if errors:
            raise ValueError(f"Error(s) in loading state_dict for {type(self).__name__}: "
                             + " | ".join(errors) + " (nothing was loaded)")
        for key, array in arrays.items():
            module, registry, name = targets[key]
            if registry == "_parameters":
                module._parameters[name].data = array
            else:
                module._buffers[name] = array
        return IncompatibleKeys(missing, unexpected)

    # -- calling ------------------------------------------------------------

    def forward(self, *args, **kwargs):
        """Compute the output; every subclass defines it."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def __call__(self, *args, **kwargs):
        values = (*args, *kwargs.values())
        if not any(isinstance(a, Tensor) for a in values) and any(isinstance(a, np.ndarray) for a in values):
            # Inference on arrays: no graph, arrays out.
            with no_grad():
                wrapped = [Tensor(a) if isinstance(a, np.ndarray) else a for a in args]
                wrapped_kw = {k: Tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
                return _unwrap(self._call_with_hooks(wrapped, wrapped_kw))
        return self._call_with_hooks(args, kwargs)

    def _call_with_hooks(self, args, kwargs):
        d = self.__dict__
        if not (d.get("_forward_pre_hooks") or d.get("_forward_hooks")):
            return self.forward(*args, **kwargs)
        args = tuple(args)
        for hook, with_kwargs, _ in list(self._forward_pre_hooks.values()):
            if with_kwargs:
                result = hook(self, args, kwargs)
                if result is not None:
                    if not (isinstance(result, tuple) and len(result) == 2):
                        raise RuntimeError("forward pre-hook must return None or a tuple of (new_args, "
                                           f"new_kwargs), but got {result}.")
                    args, kwargs = result
            else:
                result = hook(self, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        try:
            output = self.forward(*args, **kwargs)
        except Exception:
            for hook, with_kwargs, always in list(self._forward_hooks.values()):
                if always:
                    hook(self, args, kwargs, None) if with_kwargs else hook(self, args, None)
            raise
        for hook, with_kwargs, _ in list(self._forward_hooks.values()):
            result = hook(self, args, kwargs, output) if with_kwargs else hook(self, args, output)
            if result is not None:
                output = result
        return output

    def register_forward_pre_hook(self, hook, *, prepend: bool = False, with_kwargs: bool = False):
        """Call ``hook(module, args)`` before every forward; a non-None result replaces ``args``.

        With ``with_kwargs`` the hook is ``hook(module, args, kwargs)`` and may return
        ``(args, kwargs)``.  Returns a handle whose ``remove()`` unregisters the hook.
        For ndarray calls the hook sees the Tensors that ``forward`` receives.

        Examples
        --------
        >>> import numpy as np
        >>> from convlayers import nn
        >>> relu = nn.ReLU()
        >>> handle = relu.register_forward_pre_hook(lambda m, args: (args[0] - 1,))
        >>> relu(np.array([1.5]))
        array([0.5])
        >>> handle.remove(); relu(np.array([1.5]))
        array([1.5])
        """
        return _add_hook(self._forward_pre_hooks, (hook, bool(with_kwargs), False), prepend)

    def register_forward_hook(self, hook, *, prepend: bool = False, with_kwargs: bool = False,
                              always_call: bool = False):
        """Call ``hook(module, args, output)`` after every forward; a non-None result replaces the output.

        ``with_kwargs``: ``hook(module, args, kwargs, output)``; ``always_call``: run
        it (with ``output=None``) even when forward raises.  Returns a handle
        whose ``remove()`` unregisters the hook.

        Examples
        --------
        >>> import numpy as np
        >>> from convlayers import nn
        >>> seen = []
        >>> net = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
        >>> handle = net[0].register_forward_hook(lambda m, args, out: seen.append(out.shape))
        >>> _ = net(np.ones((4, 3), dtype=np.float32)); seen
        [(4, 2)]
        """
        return _add_hook(self._forward_hooks, (hook, bool(with_kwargs), bool(always_call)), prepend)

    # -- printing -----------------------------------------------------------

    def extra_repr(self) -> str:
        """The text inside the parentheses of this module's repr (its arguments)."""
        return ""

    def _get_name(self):
        return type(self).__name__

    def __repr__(self):
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({name}): " + _addindent(repr(module), 2) for name, module in self._modules.items()]
        lines = extra_lines + child_lines
        if not lines:
            return f"{self._get_name()}()"
        if len(extra_lines) == 1 and not child_lines:
            return f"{self._get_name()}({extra_lines[0]})"
        return f"{self._get_name()}(\n  " + "\n  ".join(lines) + "\n)"


class RemovableHandle:
    """What ``register_forward_hook`` returns: ``remove()`` (or leaving a ``with`` block) unregisters."""

    _next_id = 0

    def __init__(self, registry):
        self._registry = registry
        self.id = RemovableHandle._next_id
        RemovableHandle._next_id += 1

    def remove(self):
        self._registry.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False


def _add_hook(registry, entry, prepend):
    if not callable(entry[0]):
        raise TypeError(f"hook must be callable, got {type(entry[0]).__name__}")
    handle = RemovableHandle(registry)
    registry[handle.id] = entry
    if prepend:
        registry.move_to_end(handle.id, last=False)
    return handle


def _unwrap(value):
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, tuple):
        return tuple(_unwrap(v) for v in value)
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


class Sequential(Module):
    """Modules applied one after another; children are named ``0``, ``1``, ...

    Parameters
    ----------
    *modules : Module
        The stages, in order.  A single ``OrderedDict`` of name → module
        gives the children those names instead.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    >>> net(np.ones((3, 2, 2), dtype=np.float32)).shape
    (3, 2)
    >>> net[1]
    Linear(in_features=4, out_features=2, bias=True)
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for index, module in enumerate(modules):
                if not isinstance(module, Module):
                    raise TypeError(f"Sequential argument {index} must be a Module, got {type(module).__name__}")
                self.add_module(str(index), module)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        if isinstance(index, slice):
            return type(self)(OrderedDict(list(self._modules.items())[index])) \
                if type(self) is Sequential else Sequential(OrderedDict(list(self._modules.items())[index]))
        if isinstance(index, bool) or not isinstance(index, numbers.Integral):
            raise TypeError(f"index must be an int or a slice, got {type(index).__name__}")
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} is out of range for Sequential of length {n}")
        return list(self._modules.values())[index % n]

    def append(self, module):
        """Add ``module`` at the end; return self."""
        self.add_module(str(len(self)), module)
        return self

    def forward(self, x):
        # Inference fuses Conv2d -> BatchNorm2d [-> ReLU/ReLU6] runs (nn.fusion imports the layers, hence late).
        from .fusion import run_sequential
        return run_sequential(list(self._modules.values()), x)


# ModuleList lives with the other containers; re-exported here, where it has always been importable from.
from .container import ModuleList  # noqa: E402

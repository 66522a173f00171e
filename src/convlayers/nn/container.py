"""The containers: ``ModuleList``, ``ModuleDict`` and ``ParameterList``, registering what they hold.

Their children (or parameters) are named as in PyTorch (``0``, ``1``, ... for
the lists, the keys for the dict), so ``state_dict`` keys match torch's.
"""

from __future__ import annotations

import numbers
from collections import OrderedDict

import numpy as np

from ..autograd import Tensor
from .module import Module, Parameter

__all__ = ["ModuleList", "ModuleDict", "ParameterList"]


class ModuleList(Module):
    """A list of modules whose parameters are registered (named ``0``, ``1``, ...).

    Examples
    --------
    >>> from convlayers import nn
    >>> layers = nn.ModuleList([nn.ReLU(), nn.Identity()])
    >>> len(layers), type(layers[1]).__name__
    (2, 'Identity')
    """

    def __init__(self, modules=()):
        super().__init__()
        for module in modules:
            self.append(module)

    def append(self, module):
        """Add ``module`` at the end; return self."""
        if not isinstance(module, Module):
            raise TypeError(f"module must be a Module, got {type(module).__name__}")
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules):
        """Append every module of ``modules``; return self."""
        for module in modules:
            self.append(module)
        return self

    def insert(self, index, module):
        """Insert ``module`` before ``index`` (children are renumbered)."""
        items = list(self._modules.values())
        items.insert(index, module)
        self._renumber(items)

    def _renumber(self, items):
        self._modules.clear()
        for module in items:
            self.append(module)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        if isinstance(index, slice):
            return ModuleList(list(self._modules.values())[index])
        return list(self._modules.values())[index]

    def __setitem__(self, index, module):
        if not isinstance(module, Module):
            raise TypeError(f"module must be a Module, got {type(module).__name__}")
        items = list(self._modules.values())
        items[index] = module
        self._renumber(items)

    def __delitem__(self, index):
        items = list(self._modules.values())
        del items[index]
        self._renumber(items)

    def __iadd__(self, modules):
        return self.extend(modules)

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleList is a container and has no forward(); call its modules")


class ModuleDict(Module):
    """An ordered dict of modules whose parameters are registered under their keys.

    Examples
    --------
    >>> from convlayers import nn
    >>> heads = nn.ModuleDict({"cls": nn.Linear(4, 3), "box": nn.Linear(4, 2)})
    >>> list(heads), "cls" in heads, list(heads.state_dict())[:2]
    (['cls', 'box'], True, ['cls.weight', 'cls.bias'])
    """

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key):
        return self._modules[key]

    def __setitem__(self, key, module):
        if not isinstance(module, Module):
            raise TypeError(f"ModuleDict values must be Modules, got {type(module).__name__} for key {key!r}")
        self.add_module(key, module)

    def __delitem__(self, key):
        del self._modules[key]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key):
        return key in self._modules

    def keys(self):
        """The keys, in insertion order."""
        return self._modules.keys()

    def items(self):
        """``(key, module)`` pairs, in insertion order."""
        return self._modules.items()

    def values(self):
        """The modules, in insertion order."""
        return self._modules.values()

    def pop(self, key):
        """Remove ``key`` and return its module."""
        module = self._modules[key]
        del self[key]
        return module

    def clear(self):
        """Remove every module."""
        self._modules.clear()

    def update(self, modules):
        """Add the modules of a mapping or of an iterable of ``(key, module)`` pairs."""
        if hasattr(modules, "items"):
            pairs = modules.items()
        else:
            pairs = []
            for i, pair in enumerate(modules):
                if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                    raise TypeError(f"ModuleDict update sequence element #{i} should be a (key, module) pair, "
                                    f"got {type(pair).__name__}")
                pairs.append(pair)
        for key, module in pairs:
            self[key] = module

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleDict is a container and has no forward(); call its modules")


class ParameterList(Module):
    """A list of :class:`Parameter` objects, registered as ``0``, ``1``, ...

    Arrays (and Tensors) appended are wrapped into Parameters, as PyTorch does.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> params = nn.ParameterList([np.zeros(3, np.float32), np.ones((2, 2), np.float32)])
    >>> len(params), list(params.state_dict())
    (2, ['0', '1'])
    >>> params
    ParameterList(
        (0): Parameter containing: [float32 of size 3]
        (1): Parameter containing: [float32 of size 2x2]
    )
    """

    def __init__(self, values=None):
        super().__init__()
        if values is not None:
            self.extend(values)

    @staticmethod
    def _as_parameter(value):
        if isinstance(value, Parameter):
            return value
        if isinstance(value, (Tensor, np.ndarray)):
            return Parameter(value)
        raise TypeError(f"ParameterList holds Parameters (or arrays to wrap), got {type(value).__name__}")

    def append(self, value):
        """Add ``value`` (wrapped into a Parameter if needed) at the end; return self."""
        self.register_parameter(str(len(self)), self._as_parameter(value))
        return self

    def extend(self, values):
        """Append every value; return self."""
        for value in values:
            self.append(value)
        return self

    def __len__(self):
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters.values())

    def __getitem__(self, index):
        if isinstance(index, slice):
            return ParameterList(list(self._parameters.values())[index])
        if isinstance(index, bool) or not isinstance(index, numbers.Integral):
            raise TypeError(f"index must be an int or a slice, got {type(index).__name__}")
        return list(self._parameters.values())[index]

    def __setitem__(self, index, value):
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} is out of range for ParameterList of length {n}")
        self._parameters[str(index % n)] = self._as_parameter(value)

    def __iadd__(self, values):
        return self.extend(values)

    def extra_repr(self):
        lines = []
        for name, p in self._parameters.items():
            size = "x".join(str(n) for n in p.shape)
            lines.append(f"  ({name}): Parameter containing: [{p.dtype} of size {size}]")
        return "\n".join(lines)

    def __repr__(self):
        body = self.extra_repr()
        return "ParameterList(\n" + "\n".join("  " + line for line in body.split("\n")) + "\n)" if body \
            else "ParameterList()"

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ParameterList is a container and has no forward()")


_ = OrderedDict

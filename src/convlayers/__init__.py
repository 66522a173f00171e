"""convlayers: the layers of a convolutional neural network from scratch.

NumPy arrays in, NumPy arrays out; PyTorch's names, arguments and numbers.
Submodules load on first use so that ``import convlayers`` stays fast.
"""

from __future__ import annotations

import importlib

from .sizes import conv_output_size

__version__ = "0.1.0"

_SUBMODULES = {
    "reference", "functional", "nn", "models", "optim", "data", "filters",
    "analysis", "io", "viz", "autograd",
}
# Names re-exported from submodules, loaded lazily: name -> module.
_LAZY = {
    "Tensor": "autograd",
    "tensor": "autograd",
    "no_grad": "autograd",
    "is_grad_enabled": "autograd",
    **{name: "_tensor_ops" for name in (
        "cat", "concat", "stack", "split", "chunk", "flatten", "where", "clamp", "clip", "maximum", "minimum",
        "max", "min", "argmax", "argmin", "exp", "log", "sqrt", "abs", "matmul", "eq", "ne", "lt", "le", "gt",
        "ge", "permute", "transpose", "squeeze", "unsqueeze", "reshape")},
}

# ``from convlayers import *`` must not shadow the builtins max/min/abs (use convlayers.max etc.).
__all__ = ["conv_output_size", "manual_seed", "__version__", *sorted(_SUBMODULES),
           *sorted(set(_LAZY) - {"max", "min", "abs"})]


def manual_seed(seed: int) -> None:
    """Seed every random source of convlayers, as ``torch.manual_seed`` does for PyTorch.

    Reseeds the generator of the weight initialisers (``convlayers.nn.init``)
    and the default generator of ``convlayers.functional.dropout``; the data
    loaders and training take their own ``seed`` arguments.

    Examples
    --------
    >>> import convlayers
    >>> from convlayers import nn
    >>> convlayers.manual_seed(0); a = nn.Linear(3, 2).weight.numpy().copy()
    >>> convlayers.manual_seed(0); b = nn.Linear(3, 2).weight.numpy().copy()
    >>> bool((a == b).all())
    True
    """
    from .functional.dropout import manual_seed as seed_dropout
    from .nn.init import manual_seed as seed_init

    seed_init(seed)
    seed_dropout(seed)


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY:
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'convlayers' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _SUBMODULES | set(_LAZY))

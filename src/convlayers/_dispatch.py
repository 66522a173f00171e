"""How a functional op hands a ``Tensor`` argument to the autograd layer.

``functional`` sits below ``autograd`` and must not import it.  Instead every
public op is wrapped by :func:`tensor_aware`: when any argument's type defines
``__convlayers_function__(func, args, kwargs)``, the call is handed to it (as
``__torch_function__`` does in PyTorch); otherwise the NumPy implementation
runs directly.  ``autograd.Tensor`` implements the hook by looking ``func`` up
in its table of differentiable ops.
"""

from __future__ import annotations

import functools


def tensor_aware(func):
    """Decorate a NumPy op so that Tensor arguments route to the autograd layer."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        for arg in args:
            handler = getattr(type(arg), "__convlayers_function__", None)
            if handler is not None:
                return handler(wrapper, args, kwargs)
        for arg in kwargs.values():
            handler = getattr(type(arg), "__convlayers_function__", None)
            if handler is not None:
                return handler(wrapper, args, kwargs)
        return func(*args, **kwargs)

    wrapper.ndarray_impl = func
    return wrapper

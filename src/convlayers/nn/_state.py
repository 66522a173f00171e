"""Validating one ``state_dict`` value against the tensor it will replace, before anything is assigned.

:meth:`Module.load_state_dict` converts *every* value with :func:`convert`
first and assigns only when all of them succeeded, so a bad value anywhere
leaves the module exactly as it was (the old loop cast value by value and had
overwritten 8 of 9 tensors when a string array failed).

What is refused, and why (PyTorch's ``copy_`` would wrap or reinterpret
these silently, or fail halfway through):

* non-numeric arrays: strings, bytes, objects (an object array of ``None``
  used to load as NaN), void, datetimes; and complex values (the imaginary
  part would be dropped);
* for an integer target (``num_batches_tracked``): NaN, infinity, fractions
  and values outside the dtype's range (``1e30`` used to become ``-2**63``
  with only a warning);
* for a floating target: finite values that overflow it (``1e300`` into
  float32 would become ``inf``).  NaN and infinity already in the value are
  kept, as PyTorch keeps them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["convert"]


def _as_array(value):
    from ..autograd import Tensor

    if isinstance(value, Tensor):
        return np.asarray(value.data)
    if hasattr(value, "detach") and hasattr(value, "cpu") and hasattr(value, "numpy"):   # a torch.Tensor
        value = value.detach().cpu()
        if str(getattr(value, "dtype", "")) == "torch.bfloat16":   # NumPy has no bfloat16
            value = value.float()
        return value.numpy()
    return np.asarray(value)


def convert(key, value, target):
    """``(array, None)``: ``value`` as a fresh copy in ``target``'s dtype and shape; or ``(None, reason)``."""
    try:
        array = _as_array(value)
    except Exception as exc:  # noqa: BLE001 -- ragged lists, odd objects: report, never half-load
        return None, f"{key}: cannot be read as an array ({type(exc).__name__}: {exc})"
    dtype = target.dtype
    if array.dtype.hasobject or array.dtype.kind not in "biuf":
        kind = "complex" if array.dtype.kind == "c" else "non-numeric"
        return None, f"{key}: expected a real numeric array, got {kind} dtype {array.dtype}"
    if array.shape != target.shape:
        return None, f"size mismatch for {key}: expected shape {target.shape}, got {array.shape}"
    if dtype.kind in "iu":
        if array.dtype.kind == "f":
            if not np.isfinite(array).all():
                return None, f"{key}: {dtype} target, got a NaN or infinite value"
            if (array != np.round(array)).any():
                return None, f"{key}: {dtype} target, got a non-integer value"
        info = np.iinfo(dtype)
        # (in float, compare with 2**63 itself: float(2**63 - 1) rounds up to 2**63, which would pass "<= max")
        high, low = (float(info.max) + 1, float(info.min) - 1) if array.dtype.kind == "f" else (info.max + 1,
                                                                                               info.min - 1)
        if array.size and (array.min() <= low or array.max() >= high):
            bad = array.max() if array.max() >= high else array.min()
            return None, f"{key}: value {bad:g} does not fit {dtype} (range {info.min}..{info.max})"
        return np.array(array, dtype=dtype), None
    if dtype.kind == "f" and array.dtype.kind == "f" and array.dtype.itemsize > dtype.itemsize:
        with np.errstate(over="ignore"):
            out = np.array(array, dtype=dtype)
        if (np.isinf(out) & np.isfinite(array)).any():
            return None, f"{key}: finite values overflow {dtype} (largest magnitude {np.abs(array).max():g})"
        return out, None
    return np.array(array, dtype=dtype), None

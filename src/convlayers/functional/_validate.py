"""Argument checks shared by the functional ops.

Every op validates everything before it allocates or computes, and every
message names the argument, what was expected and what was given.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..sizes import pair


def as_array(value, name: str) -> np.ndarray:
    """``value`` as an ndarray of a numeric dtype, or a ``TypeError`` naming ``name``."""
    if isinstance(value, np.ndarray):
        arr = value
    else:
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be a numeric array, got {type(value).__name__}: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must have a real numeric dtype (float32 or float64 preferred), got dtype {arr.dtype}")
    return arr


def float_dtype(*arrays) -> np.dtype:
    """The dtype of the result: NumPy's promotion of the inputs, lifted to float.

    float32 stays float32 and float64 stays float64; mixing them gives float64
    (as NumPy promotes); integers and bools compute in float64; float16 in float32.
    """
    dt = np.result_type(*[a.dtype for a in arrays if a is not None])
    if dt.kind in "biu":
        return np.dtype(np.float64)
    if dt == np.float16:
        return np.dtype(np.float32)
    return dt


def batched(x: np.ndarray, name: str, op: str) -> tuple[np.ndarray, bool]:
    """Accept (N, C, H, W) or unbatched (C, H, W); return the 4-D view and whether a batch axis was added."""
    if x.ndim == 4:
        return x, False
    if x.ndim == 3:
        return x[None], True
    raise ValueError(f"{op}: {name} must be 3-D (C, H, W) or 4-D (N, C, H, W), got {x.ndim}-D with shape {x.shape}")


def positive_pair(value, name: str, op: str) -> tuple[int, int]:
    h, w = pair(value, f"{op}: {name}")
    if h <= 0 or w <= 0:
        raise ValueError(f"{op}: {name} must be positive, got {value!r}")
    return h, w


def nonneg_pair(value, name: str, op: str) -> tuple[int, int]:
    h, w = pair(value, f"{op}: {name}")
    if h < 0 or w < 0:
        raise ValueError(f"{op}: {name} must be non-negative, got {value!r}")
    return h, w


def check_int(value, name: str, op: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{op}: {name} must be an int, got {value!r}")
    if value < low:
        raise ValueError(f"{op}: {name} must be >= {low}, got {value}")
    if value >= 2**63:
        raise ValueError(f"{op}: {name} must fit in a 64-bit signed integer, got {value}")
    return int(value)


def check_window_fits(op: str, in_hw, pads, kernel, dilation) -> None:
    """The dilated kernel must fit inside the padded input (PyTorch refuses otherwise)."""
    hp = in_hw[0] + pads[0] + pads[1]
    wp = in_hw[1] + pads[2] + pads[3]
    span_h = dilation[0] * (kernel[0] - 1) + 1
    span_w = dilation[1] * (kernel[1] - 1) + 1
    if span_h > hp or span_w > wp:
        raise ValueError(
            f"{op}: kernel size can't be greater than the padded input size: padded input is "
            f"({hp} x {wp}), dilated kernel is ({span_h} x {span_w}) "
            f"(kernel_size={tuple(kernel)}, dilation={tuple(dilation)})")

"""The one validation path of every convolution: ``conv1d/2d/3d`` and ``conv_transpose1d/2d/3d``.

Each check is written once, for ``nd`` spatial dimensions, and runs before
any work: the arguments' types and ranges, the weight's rank against the
input's, channels against groups, and the output size.  Pads are returned
flat, ``(before_0, after_0, before_1, after_1, ...)`` from the first spatial
axis on, which for two dimensions is the 2-D cores' ``(top, bottom, left, right)``.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np

from ._validate import as_array, check_int, float_dtype

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_AXES = {1: "(L)", 2: "(H, W)", 3: "(D, H, W)"}


class ConvCall(NamedTuple):
    """A validated convolution call; ``x`` always has a batch axis."""

    x: np.ndarray
    w: np.ndarray
    b: np.ndarray | None
    unbatched: bool
    stride: tuple
    pads: tuple
    dilation: tuple
    groups: int
    mode: str
    dtype: np.dtype
    out_shape: tuple


_INT64_LIMIT = 2**63


def ntuple(value, nd: int, name: str, op: str, low: int) -> tuple:
    """An int, or a sequence of 1 or ``nd`` ints, as an ``nd``-tuple of ints ``>= low``."""
    # fast paths first: this runs three times on every convolution call (a Python int, a tuple of them)
    if type(value) is int:
        if low <= value < _INT64_LIMIT:
            return (value,) * nd
    elif type(value) is tuple and len(value) == nd and all(type(v) is int and low <= v < _INT64_LIMIT
                                                           for v in value):
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        items = (int(value),) * nd
    else:
        try:
            items = tuple(value)
        except TypeError:
            raise TypeError(f"{op}: {name} must be an int or a tuple of {nd} ints, got {value!r}") from None
        if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in items) \
                or len(items) not in (1, nd):
            raise TypeError(f"{op}: {name} must be an int or a tuple of {nd} ints, got {value!r}")
        items = tuple(int(v) for v in items) * (nd if len(items) == 1 else 1)
    if any(v < low for v in items):
        what = "positive" if low == 1 else "non-negative"
        raise ValueError(f"{op}: {name} must be {what}, got {value!r}")
    if any(v >= _INT64_LIMIT for v in items):  # the kernels take int64: a larger stride wrapped round (a wrong value)
        raise ValueError(f"{op}: {name} must fit in a 64-bit signed integer, got {value!r}")
    return items


def _float_arrays(op, input, weight, bias):
    x = as_array(input, "input")
    w = as_array(weight, "weight")
    b = None if bias is None else as_array(bias, "bias")
    for name, a in (("input", x), ("weight", w), ("bias", b)):
        # PyTorch has no integer convolution ("not implemented for 'Long'"): refuse rather than guess a dtype
        if a is not None and a.dtype.kind in "biu":
            raise TypeError(f"{op}: {name} must be a floating-point array (float32 or float64), got dtype {a.dtype}")
    return x, w, b


def _batched(op, x, nd):
    if x.ndim == nd + 2:
        return x, False
    if x.ndim == nd + 1:
        return x[None], True
    raise ValueError(f"{op}: input must be {nd + 1}-D (C, {_AXES[nd][1:-1]}) or {nd + 2}-D "
                     f"(N, C, {_AXES[nd][1:-1]}), got {x.ndim}-D with shape {x.shape}")


def _groups(op, groups):
    if isinstance(groups, bool) or not isinstance(groups, numbers.Integral):
        raise TypeError(f"{op}: groups must be an int, got {groups!r}")
    if groups <= 0:
        raise ValueError(f"{op}: groups must be positive (non-positive groups is not supported), got {groups}")
    if groups >= 2**63:
        raise ValueError(f"{op}: groups must fit in a 64-bit signed integer, got {groups}")
    return int(groups)


def out_hw(hw, pads, k, stride, dilation):
    """(H_out, W_out) of a 2-D window over ``hw`` with zero ``pads`` (top, bottom, left, right):
    ``⌊(H + p_t + p_b − d(k−1) − 1)/s⌋ + 1`` per axis.

    >>> out_hw((5, 5), (1, 1, 1, 1), (3, 3), (2, 2), (1, 1))
    (3, 3)
    """
    ho = (hw[0] + pads[0] + pads[1] - dilation[0] * (k[0] - 1) - 1) // stride[0] + 1
    wo = (hw[1] + pads[2] + pads[3] - dilation[1] * (k[1] - 1) - 1) // stride[1] + 1
    return ho, wo


def conv_args(op, nd, input, weight, bias, stride, padding, dilation, groups, padding_mode="zeros") -> ConvCall:
    """Validate a ``conv{nd}d`` call (input and output shapes, every argument) before any work."""
    x, w, b = _float_arrays(op, input, weight, bias)
    if w.ndim != nd + 2:
        raise ValueError(f"{op}: weight must be {nd + 2}-D (out_channels, in_channels/groups, "
                         f"{', '.join('k' + a for a in _AXES[nd][1:-1].split(', '))}), got shape {w.shape}")
    xb, unbatched = _batched(op, x, nd)
    groups = _groups(op, groups)
    stride = ntuple(stride, nd, "stride", op, 1)
    dilation = ntuple(dilation, nd, "dilation", op, 1)
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"{op}: padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    cout, cin_g = w.shape[:2]
    kernel = w.shape[2:]
    cin = xb.shape[1]
    if cout % groups or cout < groups:
        raise ValueError(f"{op}: out_channels (weight.shape[0]={cout}) must be divisible by groups={groups} "
                         f"and at least groups")
    if cin % groups:
        raise ValueError(f"{op}: in_channels (input.shape[1]={cin}) must be divisible by groups={groups}")
    if cin != cin_g * groups:
        raise ValueError(
            f"{op}: expected input with {cin_g * groups} channels (weight.shape[1]={cin_g} * groups={groups}), "
            f"got input of shape {x.shape} with {cin} channels")
    if 0 in kernel:
        raise ValueError(f"{op}: weight has an empty kernel, shape {w.shape}")
    if cin == 0:  # PyTorch returns an oddly shaped (N, 0, ...) array here, whatever out_channels is
        raise ValueError(f"{op}: input has no channels (shape {x.shape}); need in_channels >= 1")
    if b is not None and b.shape != (cout,):
        raise ValueError(f"{op}: bias must have shape ({cout},) to match weight.shape[0], got {b.shape}")
    if isinstance(padding, str):
        if padding == "valid":
            pads = (0,) * (2 * nd)
        elif padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{op}: padding='same' is not supported for strided convolutions, "
                                 f"got stride={stride}")
            # PyTorch: a total of d(k-1) per axis, the odd one out after (bottom/right)
            pads = ()
            for d, k in zip(dilation, kernel):
                total = d * (k - 1)
                pads += (total // 2, total - total // 2)
        else:
            raise ValueError(f"{op}: padding must be an int, a tuple of {nd} ints, 'same' or 'valid', "
                             f"got {padding!r}")
    else:
        p = ntuple(padding, nd, "padding", op, 0)
        pads = (p[0], p[0]) if nd == 1 else (p[0], p[0], p[1], p[1]) if nd == 2 else (p[0], p[0], p[1], p[1], p[2], p[2])
    spatial = xb.shape[2:]
    out = []
    for a in range(nd):
        padded = spatial[a] + pads[2 * a] + pads[2 * a + 1]
        span = dilation[a] * (kernel[a] - 1) + 1
        if span > padded:
            raise ValueError(
                f"{op}: kernel size can't be greater than the padded input size: padded input is "
                f"{tuple(s + pads[2 * i] + pads[2 * i + 1] for i, s in enumerate(spatial))}, dilated kernel is "
                f"{tuple(d * (k - 1) + 1 for d, k in zip(dilation, kernel))} "
                f"(kernel_size={tuple(kernel)}, dilation={dilation})")
        out.append((padded - span) // stride[a] + 1)
    if padding_mode != "zeros" and any(pads):
        _check_mode_padding(op, padding_mode, spatial, pads)
    dtype = float_dtype(x, w, b)
    return ConvCall(xb, w, b, unbatched, stride, pads, dilation, groups, padding_mode, dtype,
                    (xb.shape[0], cout, *out))


def _check_mode_padding(op, mode, spatial, pads):
    for a, size in enumerate(spatial):
        before, after = pads[2 * a], pads[2 * a + 1]
        if mode == "reflect" and max(before, after) >= size:
            raise ValueError(f"{op}: padding_mode='reflect' needs padding smaller than the input: pad "
                             f"({before}, {after}) on a spatial axis of size {size}")
        if mode == "circular" and max(before, after) > size:
            raise ValueError(f"{op}: padding_mode='circular' needs padding at most the input size: pad "
                             f"({before}, {after}) on a spatial axis of size {size}")
        if mode == "replicate" and size == 0:
            raise ValueError(f"{op}: padding_mode='replicate' needs a non-empty input")


def transpose_args(op, nd, input, weight, bias, stride, padding, output_padding, groups, dilation) -> ConvCall:
    """Validate a ``conv_transpose{nd}d`` call before any work; ``out_shape`` is the (batched) output's."""
    x, w, b = _float_arrays(op, input, weight, bias)
    if w.ndim != nd + 2:
        raise ValueError(f"{op}: weight must be {nd + 2}-D (in_channels, out_channels/groups, kernel...), "
                         f"got shape {w.shape}")
    xb, unbatched = _batched(op, x, nd)
    groups = _groups(op, groups)
    stride = ntuple(stride, nd, "stride", op, 1)
    dilation = ntuple(dilation, nd, "dilation", op, 1)
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding must be an int or a tuple of {nd} ints, got {padding!r}")
    padding = ntuple(padding, nd, "padding", op, 0)
    output_padding = ntuple(output_padding, nd, "output_padding", op, 0)
    cin, cout_g = w.shape[:2]
    kernel = w.shape[2:]
    if cin % groups or cin < groups:
        raise ValueError(f"{op}: in_channels (weight.shape[0]={cin}) must be divisible by groups={groups}")
    if xb.shape[1] != cin:
        raise ValueError(f"{op}: expected input with {cin} channels (weight.shape[0]), got input of shape {x.shape}")
    if 0 in kernel:
        raise ValueError(f"{op}: weight has an empty kernel, shape {w.shape}")
    for a in range(nd):
        if output_padding[a] >= stride[a] and output_padding[a] >= dilation[a]:
            raise ValueError(f"{op}: output_padding must be smaller than either stride or dilation, got "
                             f"output_padding={output_padding}, stride={stride}, dilation={dilation}")
    cout = cout_g * groups
    if b is not None and b.shape != (cout,):
        raise ValueError(f"{op}: bias must have shape ({cout},), got {b.shape}")
    spatial = xb.shape[2:]
    out = tuple((spatial[a] - 1) * stride[a] - 2 * padding[a] + dilation[a] * (kernel[a] - 1)
                + output_padding[a] + 1 for a in range(nd))
    if min(out) <= 0:
        raise ValueError(f"{op}: the output would be empty {out}; reduce padding={padding} "
                         f"or enlarge the input {tuple(spatial)}")
    dtype = float_dtype(x, w, b)
    pads = tuple(p for p in padding for _ in range(2))
    return ConvCall(xb, w, b, unbatched, stride, pads, dilation, groups, "zeros", dtype,
                    (xb.shape[0], cout, *out))


def torch_pad_order(pads):
    """Flat first-axis-first pads as ``F.pad``'s last-axis-first tuple."""
    nd = len(pads) // 2
    return tuple(p for a in reversed(range(nd)) for p in (pads[2 * a], pads[2 * a + 1]))


__all__ = ["ConvCall", "conv_args", "transpose_args", "ntuple", "torch_pad_order", "check_int"]

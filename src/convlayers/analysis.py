r"""Architecture arithmetic: output sizes, parameters, multiply-adds and receptive fields.

:func:`summary` walks a model with a *shape probe* instead of data: an
object that carries only a shape (and the receptive-field state) through the
model's own ``forward``.  Every :mod:`convlayers.functional` op hands the probe
to :meth:`_Probe.__convlayers_function__` (the dispatch hook ``Tensor`` uses),
which computes the output shape and the cost from the op's arguments; no
convolution runs, so ``mobilenet_v2`` at 224×224 is summarised in a fraction of
a second.  Residual adds, ``flatten``, ``reshape``, ``mean`` and NumPy
elementwise ufuncs work on the probe too, so any container's ``forward``
(Sequential, residual blocks, a model's ``forward`` with a functional pool)
runs unchanged.

Counting rules
--------------
MACs (multiply-accumulates) are counted only for the layers that own weights:

================================  ==================================================================
op                                MACs
================================  ==================================================================
``conv2d``                        output elements × (C_in / groups) × k_h × k_w
``conv_transpose2d``              input elements × (C_out / groups) × k_h × k_w
``linear``                        rows × in_features × out_features (rows = batch × leading dims)
================================  ==================================================================

Biases are not counted (one add per output, negligible and conventionally left
out, as in the published figures).  BatchNorm, activations, pooling and
residual adds are reported separately as ``other_ops`` and are **not** in
``total_macs``: one operation per output element for activations, BatchNorm
(inference form, a folded multiply-add), dropout and elementwise arithmetic;
one per window tap for pooling (output elements × k_h × k_w); one per input
element for adaptive average pooling.  **FLOPs = 2 × MACs**: a multiply-add is
two floating-point operations; papers quote either, often without saying which
(MobileNetV2's "300 M" are MACs, i.e. 600 M FLOPs).

Receptive field
---------------
For each spatial axis the probe carries the receptive field ``r`` (input
pixels one output pixel sees) and the jump ``j`` (input pixels between two
neighbouring output pixels), starting at ``r = j = 1``.  A window of ``k``
taps with dilation ``d`` and stride ``s`` (convolution or pooling) gives

``k_eff = d(k − 1) + 1``,  ``r_out = r_in + (k_eff − 1)·j_in``,  ``j_out = j_in·s``.

Adaptive pooling counts as a window of its largest cell, moved by ``⌊n/o⌋``.
A transposed convolution gives ``j_out = j_in / s`` and ``r_out = r_in +
(⌈k_eff / s⌉ − 1)·j_in`` (each output sees at most ``⌈k_eff/s⌉`` inputs per
axis).  Where two branches meet (a residual add, a concatenation) the result
takes the **larger** ``r`` (and ``j``) of the branches, since the output sees
the union of what both see.  Merging spatial axes (``flatten``, ``reshape``,
``mean`` over ``H, W``) counts as one window the size of the map:
``r_out = r_in + (n − 1)·j_in``.  The figures are the theoretical receptive
field and may exceed the input (padding supplies the rest).

Examples
--------
>>> from convlayers import nn
>>> from convlayers.analysis import summary
>>> two = nn.Sequential(nn.Conv2d(1, 1, 3, bias=False), nn.Conv2d(1, 1, 3, bias=False))
>>> one = nn.Conv2d(1, 1, 5, bias=False)
>>> s2, s1 = summary(two, (1, 1, 32, 32)), summary(one, (1, 1, 32, 32))
>>> s2.receptive_field, s1.receptive_field, s2.total_params, s1.total_params
((5, 5), (5, 5), 18, 25)
"""

from __future__ import annotations

import inspect
import math
import numbers
from dataclasses import asdict, dataclass, field
from fractions import Fraction

import numpy as np

from . import _analysis_conv as _conv_rules

__all__ = ["summary", "Summary", "LayerRow", "compare_convs", "ConvComparison", "ConvRow", "flops"]

def _prod(values) -> int:
    return int(math.prod(int(v) for v in values))


def flops(macs: int) -> int:
    """Floating-point operations of ``macs`` multiply-accumulates: ``2 × macs``.

    Examples
    --------
    >>> flops(300_774_272)
    601548544
    """
    return 2 * int(macs)


# --------------------------------------------------------------------------------------------------
# The shape probe
# --------------------------------------------------------------------------------------------------


class _Probe:
    """A stand-in for an array: a shape, a dtype, and the receptive field (``rf``, ``jump``) per spatial axis.

    ``rf`` and ``jump`` are ``(height, width)`` pairs of Fractions (a
    transposed convolution makes the jump fractional).
    """

    __array_priority__ = 1000  # so ndarray + probe defers to the probe

    def __init__(self, shape, dtype, tracer, rf=(Fraction(1), Fraction(1)), jump=(Fraction(1), Fraction(1))):
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self._tracer = tracer
        self.rf = tuple(rf)
        self.jump = tuple(jump)

    ndim = property(lambda self: len(self.shape))
    size = property(lambda self: _prod(self.shape))

    def __repr__(self):
        return f"<shape probe {self.shape}>"

    def _like(self, shape, rf=None, jump=None):
        return _Probe(shape, self.dtype, self._tracer, self.rf if rf is None else rf,
                      self.jump if jump is None else jump)

    # -- functional ops -----------------------------------------------------------------------------

    @classmethod
    def __convlayers_function__(cls, func, args, kwargs):
        name = func.__name__
        rule = _RULES.get(name)
        probe = next((a for a in (*args, *kwargs.values()) if isinstance(a, _Probe)), None)
        if rule is None:
            raise TypeError(f"summary cannot trace convlayers.functional.{name}: no shape rule for it")
        bound = _signature(func).bind(*args, **kwargs)
        bound.apply_defaults()
        out, macs, other = rule(name, bound.arguments)
        probe._tracer.record(name, out, macs, other)
        return out

    # -- arithmetic (residual adds, scaling) --------------------------------------------------------

    def _elementwise(self, others, op="elementwise"):
        shapes = [self.shape] + [np.shape(o) if not isinstance(o, _Probe) else o.shape for o in others]
        try:
            shape = np.broadcast_shapes(*shapes)
        except ValueError:
            raise ValueError(f"{op}: shapes {' and '.join(map(str, shapes))} do not broadcast") from None
        probes = [self] + [o for o in others if isinstance(o, _Probe)]
        rf = tuple(max(p.rf[a] for p in probes) for a in range(2))
        jump = tuple(max(p.jump[a] for p in probes) for a in range(2))
        out = self._like(shape, rf, jump)
        self._tracer.record(op, out, 0, out.size)
        return out

    def __add__(self, other):
        return self._elementwise([other], "add")

    def __sub__(self, other):
        return self._elementwise([other], "sub")

    def __mul__(self, other):
        return self._elementwise([other], "mul")

    def __truediv__(self, other):
        return self._elementwise([other], "div")

    __radd__, __rsub__, __rmul__, __rtruediv__ = __add__, __sub__, __mul__, __truediv__

    def __neg__(self):
        return self._like(self.shape)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__" or ufunc.nout != 1 or kwargs.get("out") is not None:
            return NotImplemented
        first = next(i for i in inputs if isinstance(i, _Probe))
        return first._elementwise([i for i in inputs if i is not first], ufunc.__name__)

    def __array_function__(self, func, types, args, kwargs):
        if func is np.concatenate:
            return _concatenate(*args, **kwargs)
        if func in (np.mean, np.sum):
            return args[0].mean(*args[1:], **kwargs)
        if func is np.reshape:
            return args[0].reshape(*args[1:], **kwargs)
        if func is np.shape:
            return args[0].shape
        if func is np.ndim:
            return args[0].ndim
        return NotImplemented

    # -- reshaping ----------------------------------------------------------------------------------

    def _merged(self, merged_axes):
        """rf/jump after the spatial axes in ``merged_axes`` stop being separate positions."""
        if len(self.shape) < 2:
            return self.rf, self.jump
        spatial = {len(self.shape) - 2: 0, len(self.shape) - 1: 1}
        rf, jump = list(self.rf), list(self.jump)
        for axis in merged_axes:
            a = spatial.get(axis)
            if a is not None:
                n = self.shape[axis]
                rf[a] = rf[a] + (n - 1) * jump[a]
                jump[a] = jump[a] * n
        return tuple(rf), tuple(jump)

    def reshape(self, *shape, order="C"):
        if len(shape) == 1 and not isinstance(shape[0], numbers.Integral):
            shape = tuple(shape[0])
        shape = [int(s) for s in shape]
        if shape.count(-1) > 1:
            raise ValueError(f"reshape: can only specify one unknown dimension, got {tuple(shape)}")
        if -1 in shape:
            known = _prod(s for s in shape if s != -1)
            shape[shape.index(-1)] = self.size // known if known else 0
        if _prod(shape) != self.size:
            raise ValueError(f"reshape: cannot reshape a probe of shape {self.shape} into {tuple(shape)}")
        shape = tuple(shape)
        # The spatial axes survive only if the trailing (H, W) are untouched.
        keeps = len(shape) >= 2 and len(self.shape) >= 2 and shape[-2:] == self.shape[-2:]
        merged = () if keeps else range(len(self.shape))
        rf, jump = self._merged(merged)
        return self._like(shape, rf, jump)

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1):
        n = len(self.shape)
        start, end = start_dim % n, end_dim % n
        shape = self.shape[:start] + (_prod(self.shape[start:end + 1]),) + self.shape[end + 1:]
        rf, jump = self._merged(range(start, end + 1) if end > start else ())
        return self._like(shape, rf, jump)

    def mean(self, axis=None, keepdims=False, dtype=None, **kwargs):
        n = len(self.shape)
        axes = range(n) if axis is None else \
            [a % n for a in ((axis,) if isinstance(axis, numbers.Integral) else axis)]
        axes = sorted(set(axes))
        shape = tuple(1 if i in axes else s for i, s in enumerate(self.shape)) if keepdims else \
            tuple(s for i, s in enumerate(self.shape) if i not in axes)
        rf, jump = self._merged(axes)
        out = self._like(shape, rf, jump)
        self._tracer.record("mean", out, 0, self.size)
        return out

    sum = mean

    def astype(self, dtype, **kwargs):
        return _Probe(self.shape, dtype, self._tracer, self.rf, self.jump)


def _concatenate(arrays, axis=0, **kwargs):
    arrays = list(arrays)
    first = next(a for a in arrays if isinstance(a, _Probe))
    shapes = [np.shape(a) if not isinstance(a, _Probe) else a.shape for a in arrays]
    axis = axis % len(first.shape)
    for s in shapes:
        if len(s) != len(first.shape) or any(s[i] != first.shape[i] for i in range(len(s)) if i != axis):
            raise ValueError(f"concatenate: shapes {shapes} do not match off axis {axis}")
    shape = list(first.shape)
    shape[axis] = sum(s[axis] for s in shapes)
    probes = [a for a in arrays if isinstance(a, _Probe)]
    rf = tuple(max(p.rf[a] for p in probes) for a in range(2))
    jump = tuple(max(p.jump[a] for p in probes) for a in range(2))
    return first._like(tuple(shape), rf, jump)


_SIGNATURES: dict = {}


def _signature(func):
    sig = _SIGNATURES.get(func)
    if sig is None:
        sig = _SIGNATURES[func] = inspect.signature(func)
    return sig


# --------------------------------------------------------------------------------------------------
# Shape and cost rules, one per functional op: (name, arguments) -> (output, macs, other_ops)
# --------------------------------------------------------------------------------------------------


def _batched(name, x):
    if not isinstance(x, _Probe):
        raise TypeError(f"{name}: input must be the traced array, got {type(x).__name__}")
    if x.ndim not in (3, 4):
        raise ValueError(f"{name}: expected a 3-D or 4-D input, got shape {x.shape}")
    return x


def _windowed(x, kernel, stride, dilation, out_hw, channels=None):
    """Output probe of a sliding window op, with the receptive-field recurrence applied."""
    rf, jump = [], []
    for a in range(2):
        k_eff = dilation[a] * (kernel[a] - 1) + 1
        rf.append(x.rf[a] + (k_eff - 1) * x.jump[a])
        jump.append(x.jump[a] * stride[a])
    lead = x.shape[:-2] if channels is None else x.shape[:-3] + (channels,)
    return x._like(lead + tuple(out_hw), tuple(rf), tuple(jump))


def _rule_conv2d(name, a):
    from .functional._validate import nonneg_pair, positive_pair

    x, w = _batched(name, a["input"]), a["weight"]
    w_shape = tuple(np.shape(w))
    if len(w_shape) != 4:
        raise ValueError(f"{name}: weight must be 4-D, got shape {w_shape}")
    cout, cin_g, kh, kw = w_shape
    groups = int(a["groups"])
    if x.shape[-3] != cin_g * groups:
        raise ValueError(f"{name}: expected input with {cin_g * groups} channels, got shape {x.shape}")
    stride = positive_pair(a["stride"], "stride", name)
    dilation = positive_pair(a["dilation"], "dilation", name)
    padding = a["padding"]
    if isinstance(padding, str):
        pads = (0, 0) if padding == "valid" else (dilation[0] * (kh - 1), dilation[1] * (kw - 1))
    else:
        ph, pw = nonneg_pair(padding, "padding", name)
        pads = (2 * ph, 2 * pw)
    hw = x.shape[-2:]
    out_hw = []
    for ax, k in enumerate((kh, kw)):
        span = dilation[ax] * (k - 1) + 1
        if hw[ax] + pads[ax] < span:
            raise ValueError(f"{name}: the kernel ({kh}x{kw}, dilation {dilation}) is larger than the padded "
                             f"input {hw[0] + pads[0]}x{hw[1] + pads[1]}")
        out_hw.append((hw[ax] + pads[ax] - span) // stride[ax] + 1)
    out = _windowed(x, (kh, kw), stride, dilation, out_hw, channels=cout)
    return out, out.size * cin_g * kh * kw, 0


def _rule_conv_transpose2d(name, a):
    from .functional._validate import nonneg_pair, positive_pair

    x, w = _batched(name, a["input"]), a["weight"]
    cin, cout_g, kh, kw = tuple(np.shape(w))
    groups = int(a["groups"])
    if x.shape[-3] != cin:
        raise ValueError(f"{name}: expected input with {cin} channels, got shape {x.shape}")
    stride = positive_pair(a["stride"], "stride", name)
    dilation = positive_pair(a["dilation"], "dilation", name)
    padding = nonneg_pair(a["padding"], "padding", name)
    output_padding = nonneg_pair(a["output_padding"], "output_padding", name)
    out_hw, rf, jump = [], [], []
    for ax, k in enumerate((kh, kw)):
        span = dilation[ax] * (k - 1) + 1
        out_hw.append((x.shape[-2 + ax] - 1) * stride[ax] - 2 * padding[ax] + span + output_padding[ax])
        rf.append(x.rf[ax] + (math.ceil(span / stride[ax]) - 1) * x.jump[ax])
        jump.append(x.jump[ax] / stride[ax])
    if min(out_hw) <= 0:
        raise ValueError(f"{name}: the output would be empty ({out_hw[0]} x {out_hw[1]})")
    out = x._like(x.shape[:-3] + (cout_g * groups, *out_hw), tuple(rf), tuple(jump))
    return out, x.size * cout_g * kh * kw, 0


def _rule_pool(name, a):
    from .functional.pooling import _pool_geometry

    x = _batched(name, a["input"])
    kernel, stride, _, dilation, out_hw = _pool_geometry(
        name, x.shape[-2:], a["kernel_size"], a["stride"], a["padding"], a.get("dilation", 1), a["ceil_mode"])
    out = _windowed(x, kernel, stride, dilation, out_hw)
    if a.get("return_indices"):
        return (out, out._like(out.shape)), 0, out.size * kernel[0] * kernel[1]
    return out, 0, out.size * kernel[0] * kernel[1]


def _rule_adaptive(name, a):
    from .functional.pooling_sized import _adaptive_size

    x = _batched(name, a["input"])
    out_hw = _adaptive_size(name, a["output_size"], x.shape[-2:])
    kernel, stride = [], []
    for n, o in zip(x.shape[-2:], out_hw):
        # PyTorch's cell i spans floor(i·n/o) .. ceil((i+1)·n/o) − 1; the largest cell is the window.
        kernel.append(max(-(-(i + 1) * n // o) - (i * n // o) for i in range(o)))
        stride.append(max(n // o, 1))
    out = _windowed(x, kernel, stride, (1, 1), out_hw)
    other = x.size if name == "adaptive_avg_pool2d" else out.size * kernel[0] * kernel[1]
    if a.get("return_indices"):
        return (out, out._like(out.shape)), 0, other
    return out, 0, other


def _rule_same_shape(name, a):
    x = a["input"]
    out = x._like(x.shape)
    return out, 0, out.size


def _rule_linear(name, a):
    x, w = a["input"], a["weight"]
    out_f, in_f = tuple(np.shape(w))
    if not x.shape or x.shape[-1] != in_f:
        raise ValueError(f"{name}: expected input with last dimension {in_f}, got shape {x.shape}")
    # Every position a linear layer reads is in its receptive field: merge what is left.
    rf, jump = x._merged(range(x.ndim - 2, x.ndim) if x.ndim >= 4 else ())
    out = x._like(x.shape[:-1] + (out_f,), rf, jump)
    return out, _prod(x.shape[:-1]) * in_f * out_f, 0


def _rule_pad(name, a):
    from .functional.padding import _pad_widths

    x = a["input"]
    widths = _pad_widths(x.shape, a["pad"], a["mode"])
    out = x._like(tuple(s + b + e for s, (b, e) in zip(x.shape, widths)))
    return out, 0, 0


def _rule_resample(name, a):
    """interpolate/upsample*: the output size from interpolate's own argument rules; the jump shrinks by the scale."""
    from .functional.resample import _plan

    x = a["input"]
    mode = {"upsample_nearest": "nearest", "upsample_bilinear": "bilinear"}.get(name, a.get("mode", "nearest"))
    align = True if name == "upsample_bilinear" else a.get("align_corners")
    sizes, _, _ = _plan(x, a["size"], a["scale_factor"], mode, align, a.get("recompute_scale_factor"),
                        a.get("antialias", False))
    jump = list(x.jump)
    spatial = list(zip(x.shape[2:], sizes))[-2:]  # rf/jump track the last two axes
    for k, (n, o) in enumerate(spatial, start=2 - len(spatial)):
        jump[k] = jump[k] * Fraction(n, o)
    out = x._like(x.shape[:2] + tuple(sizes), jump=tuple(jump))
    return out, 0, out.size


def _rule_pixel_shuffle(name, a):
    x = a["input"]
    *lead, c, h, w = x.shape
    if name == "pixel_shuffle":
        r = a["upscale_factor"]
        shape, factor = (*lead, c // (r * r), h * r, w * r), Fraction(1, r)
    else:
        r = a["downscale_factor"]
        shape, factor = (*lead, c * r * r, h // r, w // r), Fraction(r)
    out = x._like(shape, jump=tuple(j * factor for j in x.jump))
    return out, 0, 0


_RULES = {
    "conv2d": _rule_conv2d,
    "conv_transpose2d": _rule_conv_transpose2d,
    "max_pool2d": _rule_pool,
    "avg_pool2d": _rule_pool,
    "adaptive_avg_pool2d": _rule_adaptive,
    "adaptive_max_pool2d": _rule_adaptive,
    "linear": _rule_linear,
    "batch_norm": _rule_same_shape,
    "relu": _rule_same_shape,
    "relu6": _rule_same_shape,
    "dropout": _rule_same_shape,
    "softmax": _rule_same_shape,
    "log_softmax": _rule_same_shape,
    "pad": _rule_pad,
    "group_norm": _rule_same_shape,
    "layer_norm": _rule_same_shape,
    "rms_norm": _rule_same_shape,
    "instance_norm": _rule_same_shape,
    "local_response_norm": _rule_same_shape,
    "normalize": _rule_same_shape,
    "channel_shuffle": _rule_same_shape,
    "interpolate": _rule_resample,
    "upsample": _rule_resample,
    "upsample_nearest": _rule_resample,
    "upsample_bilinear": _rule_resample,
    "pixel_shuffle": _rule_pixel_shuffle,
    "pixel_unshuffle": _rule_pixel_shuffle,
}
_RULES.update({f"conv{nd}d": _conv_rules.rule_conv_nd for nd in (1, 3)})
_RULES.update({f"conv_transpose{nd}d": _conv_rules.rule_conv_transpose_nd for nd in (1, 3)})


# --------------------------------------------------------------------------------------------------
# The summary
# --------------------------------------------------------------------------------------------------


def _num(value):
    """A Fraction as an int when whole, else a float."""
    value = Fraction(value)
    return int(value) if value.denominator == 1 else float(value)


@dataclass
class LayerRow:
    """One line of a :class:`Summary`: a leaf layer call, or an op a container's ``forward`` runs itself.

    Attributes
    ----------
    name : str
        Dotted path in the model (``features.1.conv.0.0``); for an op run in
        a container's own ``forward``, the container's path and the op
        (``features.2:add``).
    type : str
        Layer class (``Conv2d``) or op name (``add``, ``adaptive_avg_pool2d``).
    output_shape : tuple of int
    params : int
        Parameters of this layer (counted at its first call only).
    trainable_params : int
    macs : int
        Multiply-accumulates of conv / linear ops (see the module notes).
    other_ops : int
        BatchNorm, activation, pooling and elementwise operations (not MACs).
    receptive_field, jump : (int or float, int or float)
        ``(height, width)`` after this layer.
    activation_bytes : int
        Size of the output: elements × bytes per element.
    """

    name: str
    type: str
    output_shape: tuple
    params: int = 0
    trainable_params: int = 0
    macs: int = 0
    other_ops: int = 0
    receptive_field: tuple = (1, 1)
    jump: tuple = (1, 1)
    activation_bytes: int = 0


@dataclass
class Summary:
    """The result of :func:`summary`: one :class:`LayerRow` per leaf layer call, and totals.

    Attributes
    ----------
    input_shape : tuple of int
    output_shape : tuple of int
    rows : list of LayerRow
    total_params, trainable_params : int
        Over the whole model (shared parameters once), including any that no
        traced layer used.
    total_macs : int
        Sum of the rows' ``macs`` (conv, transposed conv, linear).
    total_other_ops : int
        BatchNorm, activations, pooling, adds: reported apart from MACs.
    total_activation_bytes : int
        Sum of the rows' output sizes (what a forward pass keeps for backward).
    param_bytes : int
    receptive_field, jump : (int, int)
        At the model's output.
    """

    input_shape: tuple
    output_shape: tuple
    rows: list = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    total_macs: int = 0
    total_other_ops: int = 0
    total_activation_bytes: int = 0
    param_bytes: int = 0
    receptive_field: tuple = (1, 1)
    jump: tuple = (1, 1)

    @property
    def total_flops(self) -> int:
        """``2 × total_macs`` (one multiply and one add per MAC)."""
        return flops(self.total_macs)

    def to_dict(self) -> dict:
        """Plain Python types only (lists, ints, floats, strs): ready for ``json.dumps``."""
        def plain(value):
            if isinstance(value, (tuple, list)):
                return [plain(v) for v in value]
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            return value

        d = {k: plain(v) for k, v in asdict(self).items()}
        d["total_flops"] = self.total_flops
        return d

    def __str__(self) -> str:
        return _format_summary(self)


def _pair_text(p):
    a, b = (f"{v:g}" if isinstance(v, float) else str(v) for v in p)
    return a if a == b else f"{a}x{b}"


def _si(value, unit=""):
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {prefix}{unit}"
    return f"{value:g} {unit}".rstrip()


def _format_summary(s: Summary) -> str:
    header = ("Layer", "Type", "Output shape", "Params", "MACs", "RF", "Jump", "Memory")
    body = [(r.name, r.type, str(list(r.output_shape)), f"{r.params:,}" if r.params else "-",
             f"{r.macs:,}" if r.macs else "-", _pair_text(r.receptive_field), _pair_text(r.jump),
             _si(r.activation_bytes, "B")) for r in s.rows]
    widths = [max(len(str(row[i])) for row in [header] + body) for i in range(len(header))]
    right = {3, 4, 5, 6, 7}

    def line(cells):
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    rule = "=" * len(line(header))
    out = [rule, line(header), rule.replace("=", "-")]
    out += [line(row) for row in body]
    out += [
        rule,
        f"Input shape: {list(s.input_shape)}    Output shape: {list(s.output_shape)}",
        f"Total params: {s.total_params:,}",
        f"Trainable params: {s.trainable_params:,}",
        f"Non-trainable params: {s.total_params - s.trainable_params:,}",
        f"Total MACs: {s.total_macs:,} ({_si(s.total_macs)}MACs; FLOPs = 2 x MACs = {_si(s.total_flops)}FLOPs)",
        f"Other ops (BatchNorm, activations, pooling, adds; not in MACs): {s.total_other_ops:,}",
        f"Receptive field at the output: {_pair_text(s.receptive_field)} (jump {_pair_text(s.jump)})",
        f"Params size: {_si(s.param_bytes, 'B')}    Activations (forward): {_si(s.total_activation_bytes, 'B')}",
        rule,
    ]
    return "\n".join(out)


class _Tracer:
    """Collects rows while the probe runs through the model."""

    def __init__(self, itemsize):
        self.itemsize = itemsize
        self.rows: list[LayerRow] = []
        self.stack: list[dict] = []
        self.seen_params: set = set()

    def record(self, op, out, macs, other):
        frame = self.stack[-1] if self.stack else None
        if frame is not None and frame["leaf"]:
            frame["macs"] += macs
            frame["other"] += other
            return
        # An op run directly by a container's forward (a residual add, a functional pool): its own row.
        where = frame["name"] if frame is not None else ""
        first = out[0] if isinstance(out, tuple) else out
        self.rows.append(self._row(f"{where}:{op}" if where else op, op, first, 0, 0, macs, other))

    def _row(self, name, kind, out, params, trainable, macs, other):
        shape = out.shape if isinstance(out, _Probe) else tuple(np.shape(out))
        rf = tuple(_num(v) for v in out.rf) if isinstance(out, _Probe) else (1, 1)
        jump = tuple(_num(v) for v in out.jump) if isinstance(out, _Probe) else (1, 1)
        return LayerRow(name, kind, tuple(shape), params, trainable, macs, other, rf, jump,
                        _prod(shape) * self.itemsize)

    def wrap(self, name, module):
        leaf = not any(True for _ in module.children())
        original = module.forward

        def forward(*args, **kwargs):
            frame = {"name": name, "leaf": leaf, "macs": 0, "other": 0}
            self.stack.append(frame)
            try:
                out = original(*args, **kwargs)
            except (ValueError, TypeError) as exc:
                if getattr(exc, "_convlayers_where", False):
                    raise
                kind = type(exc)
                err = kind(f"at layer {name or type(module).__name__!r} ({type(module).__name__}): {exc}")
                err._convlayers_where = True
                raise err from exc
            finally:
                self.stack.pop()
            if leaf:
                params = [p for p in module.parameters(recurse=False) if id(p) not in self.seen_params]
                self.seen_params.update(id(p) for p in params)
                first = out[0] if isinstance(out, tuple) else out
                self.rows.append(self._row(
                    name or type(module).__name__, type(module).__name__, first,
                    sum(p.data.size for p in params), sum(p.data.size for p in params if p.requires_grad),
                    frame["macs"], frame["other"]))
            return out

        return forward


def _check_shape(input_shape):
    if isinstance(input_shape, (str, bytes)) or not hasattr(input_shape, "__len__"):
        raise TypeError(f"input_shape must be a tuple of ints such as (1, 3, 224, 224), got {input_shape!r}")
    shape = tuple(input_shape)
    if not shape or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in shape):
        raise TypeError(f"input_shape must be a non-empty tuple of ints such as (1, 3, 224, 224), "
                        f"got {input_shape!r}")
    if any(v <= 0 for v in shape):
        raise ValueError(f"input_shape must contain positive sizes, got {input_shape!r}")
    return tuple(int(v) for v in shape)


def summary(model, input_shape) -> Summary:
    """Shapes, parameters, MACs and receptive fields of ``model`` for an input of ``input_shape``.

    Runs the model's own ``forward`` on a shape probe (no arithmetic on data),
    in eval mode, restoring every module's mode afterwards.

    Parameters
    ----------
    model : convlayers.nn.Module
    input_shape : tuple of int
        Including the batch dimension, e.g. ``(1, 3, 224, 224)``.

    Returns
    -------
    Summary
        ``str(summary)`` is an aligned table; see the module notes for the
        counting and receptive-field rules.

    Raises
    ------
    TypeError
        If ``model`` is not a Module, ``input_shape`` is not a tuple of ints,
        or the forward uses an op the probe cannot follow.
    ValueError
        If a layer rejects the shape (the message names the layer).

    Examples
    --------
    >>> from convlayers.models import resnet18
    >>> s = summary(resnet18(), (1, 3, 224, 224))
    >>> s.total_params, s.total_macs
    (11689512, 1814073344)
    >>> [r.receptive_field for r in s.rows if r.name == 'layer4.1.conv2']   # the last convolution
    [(435, 435)]
    >>> s.rows[0].name, s.rows[0].output_shape, s.rows[0].macs
    ('conv1', (1, 64, 112, 112), 118013952)
    """
    from .nn import Module

    if not isinstance(model, Module):
        raise TypeError(f"model must be a convlayers.nn.Module, got {type(model).__name__}")
    shape = _check_shape(input_shape)
    params = list(model.parameters())
    dtype = params[0].data.dtype if params else np.dtype(np.float32)
    tracer = _Tracer(np.dtype(dtype).itemsize)
    modes = [(m, m.training) for m in model.modules()]
    patched = []
    try:
        for name, module in model.named_modules():
            had_own = "forward" in vars(module)
            patched.append((module, had_own, vars(module).get("forward")))
            object.__setattr__(module, "forward", tracer.wrap(name, module))
        # eval: BatchNorm must not update running statistics, Dropout is the identity.
        model.eval()
        out = model(_Probe(shape, dtype, tracer))
    finally:
        for module, had_own, previous in patched:
            if had_own:
                object.__setattr__(module, "forward", previous)
            else:
                vars(module).pop("forward", None)
        for module, mode in modes:
            module.training = mode
    first = out[0] if isinstance(out, tuple) else out
    if not isinstance(first, _Probe):
        raise TypeError(f"the model's forward returned {type(first).__name__}, not the traced array; "
                        f"summary follows only convlayers.functional ops and array arithmetic")
    rows = tracer.rows
    return Summary(
        input_shape=shape,
        output_shape=first.shape,
        rows=rows,
        total_params=model.num_parameters(),
        trainable_params=model.num_parameters(trainable_only=True),
        total_macs=sum(r.macs for r in rows),
        total_other_ops=sum(r.other_ops for r in rows),
        total_activation_bytes=sum(r.activation_bytes for r in rows),
        param_bytes=sum(p.data.nbytes for p in params),
        receptive_field=tuple(_num(v) for v in first.rf),
        jump=tuple(_num(v) for v in first.jump),
    )


# --------------------------------------------------------------------------------------------------
# Efficient convolutions compared
# --------------------------------------------------------------------------------------------------


@dataclass
class ConvRow:
    """One convolution of :func:`compare_convs`, against a standard k×k convolution with the same channels.

    ``ratio`` is the measured ``params / standard_params`` (MACs give the same
    ratio at stride 1 with 'same' padding); ``theory`` is the formula's value.
    """

    kind: str
    in_channels: int
    out_channels: int
    kernel_size: int
    groups: int
    params: int
    macs: int
    standard_params: int
    standard_macs: int
    ratio: float
    theory: float
    formula: str

    @property
    def saving(self) -> float:
        """How many times cheaper than the standard convolution (``1 / ratio``)."""
        return 1.0 / self.ratio


@dataclass
class ConvComparison:
    """The table :func:`compare_convs` returns; ``str()`` prints it."""

    height: int
    width: int
    rows: list

    def to_dict(self) -> dict:
        return {"height": self.height, "width": self.width,
                "rows": [dict(asdict(r), saving=r.saving) for r in self.rows]}

    def __getitem__(self, kind) -> ConvRow:
        for r in self.rows:
            if r.kind == kind:
                return r
        raise KeyError(f"no row {kind!r}; rows are {[r.kind for r in self.rows]}")

    def __str__(self) -> str:
        header = ("convolution", "channels", "kernel", "params", "MACs", "vs standard", "theory", "formula",
                  "cheaper")
        body = [(r.kind, f"{r.in_channels}->{r.out_channels}",
                 f"{r.kernel_size}x{r.kernel_size}" + (f" g={r.groups}" if r.groups > 1 else ""),
                 f"{r.params:,}", f"{r.macs:,}", f"{r.ratio:.4f}", f"{r.theory:.4f}", r.formula,
                 f"{r.saving:.1f}x") for r in self.rows]
        widths = [max(len(row[i]) for row in [header] + body) for i in range(len(header))]
        right = {3, 4, 5, 6, 8}

        def line(cells):
            return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

        rule = "-" * len(line(header))
        return "\n".join([f"Convolutions on a {self.height}x{self.width} map (no bias, stride 1, 'same' "
                          f"padding); standard = k x k conv with the same channels", rule, line(header), rule,
                          *[line(b) for b in body], rule,
                          "N = output channels, k = kernel size; FLOPs = 2 x MACs"])


def _measure(layers, shape):
    from .nn import Sequential

    s = summary(Sequential(*layers), shape)
    return s.total_params, s.total_macs


def _check_positive(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return int(value)


def compare_convs(in_channels=None, out_channels=None, kernel_size=3, groups=4, height=56, width=56, *,
                  pointwise_out_channels=None) -> ConvComparison:
    """Parameters and MACs of standard, pointwise, depthwise, depthwise-separable and grouped convolutions.

    Each row is built from real :class:`~convlayers.nn.Conv2d` layers and
    measured with :func:`summary`, then set against a standard ``k×k``
    convolution with the same input and output channels and against the
    theory: ``1/k²`` (pointwise), ``1/N`` (depthwise, ``N`` = output
    channels), ``1/N + 1/k²`` (separable), ``1/groups`` (grouped).

    Parameters
    ----------
    in_channels, out_channels : int, optional
        Omit both for the seed's examples: 64→32 pointwise, 64→64 depthwise,
        64→128 separable and standard, 64→128 grouped.
    kernel_size : int, default 3
    groups : int, default 4
        Groups of the grouped convolution (divides both channel counts).
    height, width : int, default 56
        Size of the feature map the MACs are counted on.
    pointwise_out_channels : int, optional
        Output channels of the pointwise row (default ``out_channels``; 32 in
        the seed's examples).

    Returns
    -------
    ConvComparison
        ``str()`` prints the table; index it by kind (``table['separable']``).

    Examples
    --------
    >>> table = compare_convs()
    >>> r = table['separable']
    >>> r.params, r.standard_params, round(r.saving, 1), round(r.ratio, 4) == round(1 / 128 + 1 / 9, 4)
    (8768, 73728, 8.4, True)
    >>> table['pointwise'].params, table['depthwise'].params, table['grouped'].params
    (2048, 576, 18432)
    """
    from .nn import Conv2d

    seed = in_channels is None and out_channels is None
    if seed:
        in_channels, out_channels = 64, 128
        if pointwise_out_channels is None:
            pointwise_out_channels = 32
    elif in_channels is None or out_channels is None:
        raise TypeError("give both in_channels and out_channels, or neither (the seed's examples)")
    cin = _check_positive(in_channels, "in_channels")
    cout = _check_positive(out_channels, "out_channels")
    k = _check_positive(kernel_size, "kernel_size")
    g = _check_positive(groups, "groups")
    h, w = _check_positive(height, "height"), _check_positive(width, "width")
    pw_out = cout if pointwise_out_channels is None else _check_positive(pointwise_out_channels,
                                                                         "pointwise_out_channels")
    if cin % g or cout % g:
        raise ValueError(f"groups must divide in_channels and out_channels, got groups={g} for {cin}->{cout}")
    if k % 2 == 0:
        raise ValueError(f"kernel_size must be odd so that 'same' padding keeps {h}x{w}, got {k}")
    shape = (1, cin, h, w)

    def conv(ci, co, kk, groups=1):
        return Conv2d(ci, co, kk, padding=kk // 2, groups=groups, bias=False)

    specs = [
        ("standard", cout, [conv(cin, cout, k)], 1, 1.0, "1"),
        ("pointwise", pw_out, [conv(cin, pw_out, 1)], 1, 1 / k ** 2, "1/k^2"),
        ("depthwise", cin, [conv(cin, cin, k, groups=cin)], cin, 1 / cin, "1/N"),
        ("separable", cout, [conv(cin, cin, k, groups=cin), conv(cin, cout, 1)], cin, 1 / cout + 1 / k ** 2,
         "1/N + 1/k^2"),
        ("grouped", cout, [conv(cin, cout, k, groups=g)], g, 1 / g, "1/groups"),
    ]
    rows, standard = [], {}
    for kind, co, layers, grp, theory, formula in specs:
        params, macs = _measure(layers, shape)
        if co not in standard:
            standard[co] = (params, macs) if kind == "standard" else _measure([conv(cin, co, k)], shape)
        std_params, std_macs = standard[co]
        rows.append(ConvRow(kind, cin, co, 1 if kind == "pointwise" else k, grp, params, macs,
                            std_params, std_macs, params / std_params, theory, formula))
    return ConvComparison(h, w, rows)

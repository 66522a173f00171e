"""``freeze``: a :class:`convlayers.nn.Module` as an inference graph, run by the ONNX runner.

Why: a module called in evaluation mode runs layer by layer, and every call
pays for what does not change between calls — weights repacked for the
kernels, BatchNorm's scale and shift recomputed, NCHW↔channels-last copies,
~25 µs of Python per layer.  The ONNX runner pays those once per input
shape (see :mod:`convlayers.onnx.optimize`).  So ``freeze`` writes the module
tree as the ONNX nodes it means (Conv, BatchNormalization, Relu, Clip, Add,
MaxPool, GlobalAveragePool, Flatten, Gemm, ...) and hands them to the same
rewrites and runner as :func:`convlayers.onnx.load` — no second
implementation of anything.  Measured (2 threads, 2-core Intel Xeon VM,
224×224): mobilenet_v2 batch 1 12.5 → 3.9 ms, resnet18 batch 1 23.9 →
12.3 ms (PyTorch's ``torch.jit.freeze`` + ``optimize_for_inference``: 5.5
and 13.5 ms).

It is PyTorch's ``torch.jit.freeze`` contract: the result is a snapshot —
the parameters and running statistics are copied at the call, so later
changes to the module are not seen (freeze again after training) — and it
runs inference only.  The ``onnx`` package is not needed.

A module is lowered by the rule for its class; a subclass that overrides
``forward`` (its own computation), a module with hooks, or a layer with no
rule is refused with its name in the module tree, before anything is built.
"""

from __future__ import annotations

import numbers

import numpy as np

from .. import nn
from ..models import BasicBlock, MobileNetV2, ResNet
from .graph import Graph, Node, ValueInfo

__all__ = ["freeze", "FreezeError"]

OPSET = 17


class FreezeError(ValueError):
    """A module :func:`freeze` cannot write as a graph (its path in the tree, its type and why)."""


def freeze(module, *, channels_last=None):
    """``module`` (in evaluation mode) as an :class:`~convlayers.onnx.model.OnnxModel` with its weights packed once.

    Parameters
    ----------
    module : convlayers.nn.Module
        Built from the layers listed in :data:`LOWERED` (Sequential, Conv2d,
        BatchNorm2d, ReLU/ReLU6 and the other activations, pooling, Linear,
        Flatten, Dropout, Identity, and the blocks and models built of them:
        ``Conv2dNormActivation``, ``InvertedResidual``, ``DepthwiseSeparable``,
        ``MobileBlock``, ``MobileNetV2``, ``BasicBlock``, ``ResNet``).  It must
        be in evaluation mode (``module.eval()``): freezing a training-mode
        module would silently change what BatchNorm and Dropout do.
    channels_last : bool or None
        As for :func:`convlayers.onnx.load`.

    Returns
    -------
    OnnxModel
        ``frozen(x)`` gives ``module(x)`` for ``(N, C, H, W)`` arrays (same
        arithmetic up to float rounding); any batch and image size.

    Raises
    ------
    FreezeError (a ValueError)
        A module in training mode, with hooks, or without a rule; a layer
        option the graph cannot express (``return_indices``, ``divisor_override``,
        a non-zero padding mode ...), naming the module.
    TypeError
        ``module`` is not a ``convlayers.nn.Module``.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> from convlayers.onnx import freeze
    >>> net = nn.Sequential(nn.ConvBNReLU(3, 8), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2)).eval()
    >>> frozen = freeze(net)
    >>> x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    >>> bool(np.allclose(frozen(x), net(x), atol=1e-6))
    True
    >>> [n.op_type for n in frozen.nodes]            # BatchNorm and ReLU folded into the convolution
    ['Conv', 'GlobalAveragePool', 'Flatten', 'Gemm']
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"freeze: module must be a convlayers.nn.Module, got {type(module).__name__}")
    for name, m in module.named_modules():
        if m.training:
            raise FreezeError(f"freeze: module {name or '(root)'!r} ({type(m).__name__}) is in training mode; "
                              "call .eval() first (freezing keeps BatchNorm's running statistics and drops Dropout)")
    writer = _Writer()
    out = writer.lower(module, "input", "")
    if out == "input" or writer.nodes[-1].outputs != [out]:  # nothing but identities, or an earlier value
        out = writer.node("Identity", [out], "")
    writer.nodes[-1].outputs = ["output"]
    dtype = writer.dtype or np.dtype(np.float32)
    first = writer.nodes[0]
    # A graph that opens with a convolution knows its input's rank and channels (checked at each run).
    shape = ("N", int(writer.constants[first.inputs[1]].shape[1]) * int(first.attrs["group"]), "H", "W") \
        if first.op_type == "Conv" and first.inputs[0] == "input" else None
    graph = Graph(writer.nodes, [ValueInfo("input", shape, dtype)], [ValueInfo("output", None, dtype)],
                  writer.constants, {"": OPSET})
    from . import build
    return build(graph, channels_last=channels_last)


def _pair(v):
    return (int(v), int(v)) if isinstance(v, numbers.Integral) else tuple(int(a) for a in v)


class _Writer:
    """Collects nodes and constants while the module tree is walked."""

    def __init__(self):
        self.nodes = []
        self.constants = {}
        self.dtype = None
        self._count = 0

    def value(self, hint="v"):
        self._count += 1
        return f"{hint}{self._count}"

    def const(self, array, where, hint="c"):
        name = f"{where or 'root'}.{hint}"
        if name in self.constants:
            name = self.value(name)
        a = np.array(array, copy=True)  # the snapshot: later changes to the module are not seen
        if a.dtype.kind == "f" and self.dtype is None:
            self.dtype = a.dtype
        self.constants[name] = a
        return name

    def node(self, op, inputs, where, **attrs):
        out = self.value(op.lower())
        self.nodes.append(Node(op, f"/{where}/{op}" if where else f"/{op}", "", list(inputs), [out], attrs, OPSET))
        return out

    def lower(self, m, x, where):
        rule = _rule_for(m, where)
        if getattr(m, "_forward_hooks", None) or getattr(m, "_forward_pre_hooks", None):
            raise FreezeError(f"freeze: module {where or '(root)'!r} ({type(m).__name__}) has hooks, which a "
                              "frozen graph cannot call")
        return rule(self, m, x, where)

    def children(self, m, x, where):
        for name, child in m.named_children():
            x = self.lower(child, x, f"{where}.{name}" if where else name)
        return x

    def child(self, m, attr, x, where):
        return self.lower(getattr(m, attr), x, f"{where}.{attr}" if where else attr)


def _refuse(m, where, why):
    raise FreezeError(f"freeze: module {where or '(root)'!r} ({type(m).__name__}): {why}")


def _rule_for(m, where):
    for cls in type(m).__mro__:
        rule = LOWERED.get(cls)
        if rule is not None:
            if type(m).forward is not cls.forward:
                _refuse(m, where, f"overrides {cls.__name__}.forward, so its computation is its own; freeze "
                                  "lowers only the layers it knows")
            return rule
    _refuse(m, where, "no graph rule for this layer; supported: "
                      + ", ".join(sorted(c.__name__ for c in LOWERED)))


# -- rules: one per layer, each the ONNX node(s) the layer's forward means -------------------------------------

def _conv(w, m, x, where):
    if m.padding_mode != "zeros":
        _refuse(m, where, f"padding_mode={m.padding_mode!r} (only 'zeros' is written as a graph)")
    attrs = dict(kernel_shape=list(m.kernel_size), strides=list(m.stride), dilations=list(m.dilation),
                 group=int(m.groups))
    if m.padding == "same":
        # PyTorch puts the odd pixel at the end, as ONNX's SAME_UPPER (stride 1 only, checked by Conv2d)
        attrs["auto_pad"] = "SAME_UPPER"
    else:
        pads = (0, 0) if m.padding == "valid" else tuple(m.padding)
        attrs["pads"] = list(pads) * 2
    inputs = [x, w.const(m.weight.data, where, "weight")]
    if m.bias is not None:
        inputs.append(w.const(m.bias.data, where, "bias"))
    return w.node("Conv", inputs, where, **attrs)


def _batch_norm(w, m, x, where):
    if m.running_mean is None or m.running_var is None:
        _refuse(m, where, "track_running_stats=False: evaluation uses the batch's statistics, which a frozen "
                          "graph does not")
    n = m.num_features
    dt = np.asarray(m.running_mean).dtype
    scale = m.weight.data if m.weight is not None else np.ones(n, dt)
    bias = m.bias.data if getattr(m, "bias", None) is not None else np.zeros(n, dt)
    inputs = [x, w.const(scale, where, "weight"), w.const(bias, where, "bias"),
              w.const(m.running_mean, where, "running_mean"), w.const(m.running_var, where, "running_var")]
    return w.node("BatchNormalization", inputs, where, epsilon=float(m.eps))


def _clip(lo, hi):
    def rule(w, m, x, where):
        dt = w.dtype or np.dtype(np.float32)
        return w.node("Clip", [x, w.const(np.array(lo, dt), where, "min"), w.const(np.array(hi, dt), where, "max")],
                      where)
    return rule


def _plain(op, **attrs):
    def rule(w, m, x, where):
        return w.node(op, [x], where, **attrs)
    return rule


def _silu(w, m, x, where):
    return w.node("Mul", [x, w.node("Sigmoid", [x], where)], where)


def _leaky(w, m, x, where):
    return w.node("LeakyRelu", [x], where, alpha=float(m.negative_slope))


def _gelu(w, m, x, where):
    return w.node("Gelu", [x], where, approximate=str(m.approximate))


def _identity(w, m, x, where):
    return x


def _max_pool(w, m, x, where):
    if m.return_indices:
        _refuse(m, where, "return_indices=True (a frozen graph returns one array)")
    k, s, p, d = _pair(m.kernel_size), _pair(m.stride), _pair(m.padding), _pair(m.dilation)
    return w.node("MaxPool", [x], where, kernel_shape=list(k), strides=list(s), pads=list(p) * 2,
                  dilations=list(d), ceil_mode=int(m.ceil_mode))


def _avg_pool(w, m, x, where):
    if m.divisor_override is not None:
        _refuse(m, where, "divisor_override (ONNX's AveragePool has none)")
    k, s, p = _pair(m.kernel_size), _pair(m.stride), _pair(m.padding)
    return w.node("AveragePool", [x], where, kernel_shape=list(k), strides=list(s), pads=list(p) * 2,
                  ceil_mode=int(m.ceil_mode), count_include_pad=int(m.count_include_pad))


def _adaptive_avg(w, m, x, where):
    size = m.output_size
    if ((size, size) if not isinstance(size, (tuple, list)) else tuple(size)) != (1, 1):
        _refuse(m, where, f"output_size={size!r}; only global pooling (output_size 1) is written as a graph")
    return w.node("GlobalAveragePool", [x], where)


def _flatten(w, m, x, where):
    if m.start_dim != 1 or m.end_dim != -1:
        _refuse(m, where, f"Flatten({m.start_dim}, {m.end_dim}); only Flatten(1, -1) (ONNX's Flatten) is written")
    return w.node("Flatten", [x], where, axis=1)


def _linear(w, m, x, where):
    inputs = [x, w.const(m.weight.data, where, "weight")]
    if m.bias is not None:
        inputs.append(w.const(m.bias.data, where, "bias"))
    return w.node("Gemm", inputs, where, transB=1)


def _sequential(w, m, x, where):
    return w.children(m, x, where)


def _inverted_residual(w, m, x, where):
    y = w.child(m, "conv", x, where)
    return w.node("Add", [x, y], where) if m.use_res_connect else y


def _separable(w, m, x, where):
    return w.child(m, "pointwise", w.child(m, "depthwise", x, where), where)


def _mobile_block(w, m, x, where):
    relu = _plain("Relu")
    y = relu(w, m.relu, w.child(m, "expand", x, where), f"{where}.relu")
    y = relu(w, m.relu, w.child(m, "depthwise", y, where), f"{where}.relu")
    return w.child(m, "project", y, where)


def _basic_block(w, m, x, where):
    y = w.child(m, "relu", w.child(m, "bn1", w.child(m, "conv1", x, where), where), where)
    y = w.child(m, "bn2", w.child(m, "conv2", y, where), where)
    identity = x if m.downsample is None else w.child(m, "downsample", x, where)
    return w.child(m, "relu", w.node("Add", [y, identity], where), where)


def _resnet(w, m, x, where):
    for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool"):
        x = w.child(m, name, x, where)
    return w.child(m, "fc", w.node("Flatten", [x], where, axis=1), where)


def _mobilenet_v2(w, m, x, where):
    x = w.node("GlobalAveragePool", [w.child(m, "features", x, where)], where)
    return w.child(m, "classifier", w.node("Flatten", [x], where, axis=1), where)


LOWERED = {
    nn.Sequential: _sequential, nn.Conv2d: _conv, nn.BatchNorm2d: _batch_norm,
    nn.ReLU: _plain("Relu"), nn.ReLU6: _clip(0.0, 6.0), nn.SiLU: _silu,
    nn.Sigmoid: _plain("Sigmoid"), nn.Tanh: _plain("Tanh"), nn.Hardswish: _plain("HardSwish"),
    nn.Hardsigmoid: _plain("HardSigmoid", alpha=1.0 / 6.0, beta=0.5), nn.LeakyReLU: _leaky, nn.GELU: _gelu,
    nn.Dropout: _identity, nn.Identity: _identity, nn.MaxPool2d: _max_pool, nn.AvgPool2d: _avg_pool,
    nn.AdaptiveAvgPool2d: _adaptive_avg, nn.Flatten: _flatten, nn.Linear: _linear,
    nn.InvertedResidual: _inverted_residual, nn.DepthwiseSeparable: _separable, nn.MobileBlock: _mobile_block,
    BasicBlock: _basic_block, ResNet: _resnet, MobileNetV2: _mobilenet_v2,
}
"""The layers :func:`freeze` writes as graph nodes, each by the rule next to its class."""

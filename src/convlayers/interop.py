"""PyTorch interop: a ``torch.nn`` twin of any convlayers model, with the same names and weights.

Used by the tests and the benchmark harness to run PyTorch on exactly the
network convlayers runs, and by users who want to check a port.  Needs the
optional ``torch`` extra (``pip install convlayers[torch]``).

Examples
--------
>>> import numpy as np
>>> from convlayers import nn
>>> from convlayers.interop import to_torch
>>> block = nn.InvertedResidual(16, 16, stride=1, expand_ratio=6).eval()
>>> twin = to_torch(block)
>>> x = np.random.default_rng(0).standard_normal((1, 16, 8, 8)).astype(np.float32)
>>> bool(np.allclose(block(x), twin(__import__("torch").from_numpy(x)).detach().numpy(), atol=1e-5))
True
"""

from __future__ import annotations

import numpy as np

from . import models, nn

__all__ = ["to_torch", "state_dict_to_torch", "state_dict_from_torch"]


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError("convlayers.interop needs PyTorch: pip install 'convlayers[torch]'") from exc
    return torch


def state_dict_to_torch(state_dict):
    """NumPy state_dict → ``{name: torch.Tensor}`` (copies)."""
    torch = _torch()
    return {k: torch.from_numpy(np.array(v, copy=True)) for k, v in state_dict.items()}


def state_dict_from_torch(state_dict):
    """``torch`` state_dict → ``{name: ndarray}``, ready for :meth:`Module.load_state_dict`."""
    return {k: v.detach().cpu().numpy().copy() for k, v in state_dict.items()}


# Forward passes of the composite modules, written against torch twins that carry
# the same child names; each mirrors the convlayers class's forward.
def _forward_depthwise_separable(self, x):
    return self.pointwise(self.depthwise(x))


def _forward_mobile_block(self, x):
    return self.project(self.relu(self.depthwise(self.relu(self.expand(x)))))


def _forward_inverted_residual(self, x):
    return x + self.conv(x) if self.use_res_connect else self.conv(x)


def _forward_basic_block(self, x):
    downsample = getattr(self, "downsample", None)  # a None child is not registered
    identity = x if downsample is None else downsample(x)
    out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
    return self.relu(out + identity)


def _forward_resnet(self, x):
    x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
    x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
    return self.fc(self.avgpool(x).flatten(1))


def _forward_mobilenet_v2(self, x):
    torch = _torch()
    x = torch.nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
    return self.classifier(x.flatten(1))


_COMPOSITES = {
    nn.DepthwiseSeparable: (_forward_depthwise_separable, ()),
    nn.MobileBlock: (_forward_mobile_block, ()),
    nn.InvertedResidual: (_forward_inverted_residual, ("use_res_connect",)),
    models.BasicBlock: (_forward_basic_block, ()),
    models.ResNet: (_forward_resnet, ()),
    models.MobileNetV2: (_forward_mobilenet_v2, ()),
}


def _norm_resample_twin(m, tnn):
    """Twins of the normalisation and resampling layers (their constructor arguments are their attributes)."""
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm3d)):
        return getattr(tnn, type(m).__name__)(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats,
                                              bias=m.bias is not None or not m.affine)
    if isinstance(m, (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)):
        return getattr(tnn, type(m).__name__)(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats,
                                              bias=m.bias is not None or not m.affine)
    if isinstance(m, nn.GroupNorm):
        return tnn.GroupNorm(m.num_groups, m.num_channels, m.eps, m.affine, bias=m.bias is not None or not m.affine)
    if isinstance(m, nn.LayerNorm):
        return tnn.LayerNorm(m.normalized_shape, m.eps, m.elementwise_affine,
                             bias=m.bias is not None or not m.elementwise_affine)
    if isinstance(m, nn.RMSNorm):
        return tnn.RMSNorm(m.normalized_shape, m.eps, m.elementwise_affine)
    if isinstance(m, nn.LocalResponseNorm):
        return tnn.LocalResponseNorm(m.size, m.alpha, m.beta, m.k)
    if type(m) is nn.Upsample:
        return tnn.Upsample(m.size, m.scale_factor, m.mode, m.align_corners, m.recompute_scale_factor)
    if isinstance(m, (nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d)):
        return getattr(tnn, type(m).__name__)(m.size, m.scale_factor)
    for cls, attrs in ((nn.PixelShuffle, ("upscale_factor",)), (nn.PixelUnshuffle, ("downscale_factor",)),
                       (nn.ChannelShuffle, ("groups",)),
                       (nn.Unfold, ("kernel_size", "dilation", "padding", "stride")),
                       (nn.Fold, ("output_size", "kernel_size", "dilation", "padding", "stride"))):
        if type(m) is cls:
            return getattr(tnn, cls.__name__)(*(getattr(m, a) for a in attrs))
    return None


def _leaf_twin(m, tnn):
    nd_twin = _conv_nd_or_pad_twin(m, tnn)
    if nd_twin is not None:
        return nd_twin
    if isinstance(m, nn.Conv2d):
        return tnn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation, m.groups,
                          bias=m.bias is not None, padding_mode=m.padding_mode)
    if isinstance(m, nn.ConvTranspose2d):
        return tnn.ConvTranspose2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                                   m.output_padding, m.groups, bias=m.bias is not None, dilation=m.dilation)
    if isinstance(m, nn.BatchNorm2d):
        return tnn.BatchNorm2d(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats)
    if isinstance(m, nn.Linear):
        return tnn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
    if isinstance(m, nn.MaxPool2d):
        return tnn.MaxPool2d(m.kernel_size, m.stride, m.padding, m.dilation, m.return_indices, m.ceil_mode)
    if isinstance(m, nn.AvgPool2d):
        return tnn.AvgPool2d(m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad,
                             m.divisor_override)
    if isinstance(m, nn.AdaptiveAvgPool2d):
        return tnn.AdaptiveAvgPool2d(m.output_size)
    twin = _norm_resample_twin(m, tnn)
    if twin is not None:
        return twin
    simple = {nn.ReLU: tnn.ReLU, nn.ReLU6: tnn.ReLU6, nn.Identity: tnn.Identity}
    for cls, tcls in simple.items():
        if type(m) is cls:
            return tcls()
    if isinstance(m, nn.Flatten):
        return tnn.Flatten(m.start_dim, m.end_dim)
    if isinstance(m, nn.Dropout):
        return tnn.Dropout(m.p)
    return None


def _conv_nd_or_pad_twin(m, tnn):
    """Twins of the 1-D/3-D convolutions and the padding layers (same class names and arguments as torch)."""
    from .nn import padding as _padding
    if isinstance(m, (nn.Conv1d, nn.Conv3d)):
        return getattr(tnn, f"Conv{m._nd}d")(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                                             m.dilation, m.groups, bias=m.bias is not None,
                                             padding_mode=m.padding_mode)
    if isinstance(m, (nn.ConvTranspose1d, nn.ConvTranspose3d)):
        return getattr(tnn, f"ConvTranspose{m._nd}d")(m.in_channels, m.out_channels, m.kernel_size, m.stride,
                                                      m.padding, m.output_padding, m.groups,
                                                      bias=m.bias is not None, dilation=m.dilation)
    if isinstance(m, _padding._PadNd) and type(m).__name__ in _padding.__all__:
        tcls = getattr(tnn, type(m).__name__)
        if isinstance(m, _padding._ZeroPadNd):
            return tcls(m.padding)
        return tcls(m.padding, m.value) if isinstance(m, _padding._ConstantPadNd) else tcls(m.padding)
    return None


def _twin(m, torch):
    leaf = _leaf_twin(m, torch.nn)
    if leaf is not None:
        return leaf
    if isinstance(m, nn.Sequential):
        return torch.nn.Sequential(*[_twin(child, torch) for child in m.children()])
    for cls, (forward, attrs) in _COMPOSITES.items():
        if type(m) is cls:
            twin_cls = type(f"Torch{cls.__name__}", (torch.nn.Module,), {"forward": forward})
            twin = twin_cls()
            for name, child in m._modules.items():
                setattr(twin, name, None if child is None else _twin(child, torch))
            for attr in attrs:
                setattr(twin, attr, getattr(m, attr))
            return twin
    raise TypeError(f"to_torch: no torch twin for {type(m).__name__}; supported: nn layers, Sequential and "
                    f"{', '.join(c.__name__ for c in _COMPOSITES)}")


def to_torch(module):
    """Build the ``torch.nn`` twin of ``module`` and copy its weights and buffers into it.

    Parameters
    ----------
    module : convlayers.nn.Module
        Layers of ``convlayers.nn``, ``Sequential`` nests, the seed's blocks or
        the models of ``convlayers.models``.

    Returns
    -------
    torch.nn.Module
        Same structure and ``state_dict`` keys, in the dtype of the parameters,
        in the same train/eval mode.
    """
    torch = _torch()
    twin = _twin(module, torch)
    state = module.state_dict()
    dtypes = {np.asarray(v).dtype for k, v in state.items() if not k.endswith("num_batches_tracked")}
    if dtypes == {np.dtype(np.float64)}:
        twin = twin.double()
    twin.load_state_dict(state_dict_to_torch(state), strict=True)
    twin.train(module.training)
    return twin

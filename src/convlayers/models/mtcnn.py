"""MTCNN's three face-detection CNNs (Zhang et al., 2016): PNet, RNet and ONet.

Layer names, shapes and output order are facenet-pytorch's, so its
``pnet.pt`` / ``rnet.pt`` / ``onet.pt`` state dicts load unchanged
(:func:`mtcnn_nets` finds them in an installed ``facenet_pytorch`` without
importing it, and reads them with the pickle-free
:func:`convlayers.pretrained.load_pth`).  The detection pipeline that uses
them is :mod:`convlayers.faces`.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np

from .. import functional as F
from ..nn import Conv2d, Linear, MaxPool2d, Module, PReLU

__all__ = ["PNet", "RNet", "ONet", "mtcnn_nets", "facenet_weights_dir"]


def _flatten_whc(x):
    # facenet-pytorch flattens (N, C, H, W) in (W, H, C) order: x.permute(0, 3, 2, 1) -- the Caffe layout it
    # was converted from -- so Linear weights only match in that order.
    x = np.asarray(x)
    return np.ascontiguousarray(x.transpose(0, 3, 2, 1)).reshape(x.shape[0], -1)


class PNet(Module):
    """MTCNN's proposal net: fully convolutional, 12×12 receptive field, stride 2.

    Shape
    -----
    ``(N, 3, H, W)`` -> ``(boxes (N, 4, H', W'), probs (N, 2, H', W'))`` with
    ``H' = ceil((H - 2) / 2) - 4``; ``probs[:, 1]`` is the face probability.
    """

    def __init__(self):
        super().__init__()
        self.conv1 = Conv2d(3, 10, kernel_size=3)
        self.prelu1 = PReLU(10)
        self.pool1 = MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = Conv2d(10, 16, kernel_size=3)
        self.prelu2 = PReLU(16)
        self.conv3 = Conv2d(16, 32, kernel_size=3)
        self.prelu3 = PReLU(32)
        self.conv4_1 = Conv2d(32, 2, kernel_size=1)
        self.conv4_2 = Conv2d(32, 4, kernel_size=1)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), F.softmax(self.conv4_1(x), dim=1)


class RNet(Module):
    """MTCNN's refine net on 24×24 crops.

    Shape
    -----
    ``(N, 3, 24, 24)`` -> ``(box offsets (N, 4), probs (N, 2))``.
    """

    def __init__(self):
        super().__init__()
        self.conv1 = Conv2d(3, 28, kernel_size=3)
        self.prelu1 = PReLU(28)
        self.pool1 = MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = Conv2d(28, 48, kernel_size=3)
        self.prelu2 = PReLU(48)
        self.pool2 = MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = Conv2d(48, 64, kernel_size=2)
        self.prelu3 = PReLU(64)
        self.dense4 = Linear(576, 128)
        self.prelu4 = PReLU(128)
        self.dense5_1 = Linear(128, 2)
        self.dense5_2 = Linear(128, 4)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = self.prelu4(self.dense4(_flatten_whc(x)))
        return self.dense5_2(x), F.softmax(self.dense5_1(x), dim=1)


class ONet(Module):
    """MTCNN's output net on 48×48 crops: box offsets, 5 landmarks, face probability.

    Shape
    -----
    ``(N, 3, 48, 48)`` -> ``(box offsets (N, 4), landmarks (N, 10), probs (N, 2))``;
    landmarks are 5 x-coordinates then 5 y-coordinates, relative to the box.
    """

    def __init__(self):
        super().__init__()
        self.conv1 = Conv2d(3, 32, kernel_size=3)
        self.prelu1 = PReLU(32)
        self.pool1 = MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = Conv2d(32, 64, kernel_size=3)
        self.prelu2 = PReLU(64)
        self.pool2 = MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = Conv2d(64, 64, kernel_size=3)
        self.prelu3 = PReLU(64)
        self.pool3 = MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = Conv2d(64, 128, kernel_size=2)
        self.prelu4 = PReLU(128)
        self.dense5 = Linear(1152, 256)
        self.prelu5 = PReLU(256)
        self.dense6_1 = Linear(256, 2)
        self.dense6_2 = Linear(256, 4)
        self.dense6_3 = Linear(256, 10)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.dense5(_flatten_whc(x)))
        return self.dense6_2(x), self.dense6_3(x), F.softmax(self.dense6_1(x), dim=1)


def facenet_weights_dir():
    """The ``data`` directory of an installed ``facenet_pytorch`` (found without importing it), or None."""
    try:
        spec = importlib.util.find_spec("facenet_pytorch")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = os.path.join(root, "data")
        if all(os.path.isfile(os.path.join(path, f"{n}.pt")) for n in ("pnet", "rnet", "onet")):
            return path
    return None


def mtcnn_nets(weights_dir=None):
    """``(pnet, rnet, onet)`` in eval mode with facenet-pytorch's trained weights.

    Parameters
    ----------
    weights_dir : str, optional
        A directory holding ``pnet.pt``, ``rnet.pt``, ``onet.pt`` (or ``.npz`` /
        ``.safetensors`` of the same state dicts); default: facenet-pytorch's
        installed ``data`` directory.

    Raises
    ------
    ValueError
        If no weights are found (``pip install --no-deps facenet-pytorch``) or a file is invalid.
    """
    from ..pretrained.hub import load_weights_file

    if weights_dir is None:
        weights_dir = facenet_weights_dir()
        if weights_dir is None:
            raise ValueError("MTCNN weights not found: pip install --no-deps facenet-pytorch "
                             "(its pnet.pt, rnet.pt, onet.pt are read without torch), or pass weights_dir")
    nets = []
    for name, cls in (("pnet", PNet), ("rnet", RNet), ("onet", ONet)):
        for ext in (".pt", ".pth", ".safetensors", ".npz"):
            path = os.path.join(weights_dir, name + ext)
            if os.path.isfile(path):
                break
        else:
            raise ValueError(f"MTCNN weights: no {name}.pt (or .pth/.safetensors/.npz) in {weights_dir!r}")
        net = cls()
        net.load_state_dict(load_weights_file(path))
        nets.append(net.eval())
    return tuple(nets)

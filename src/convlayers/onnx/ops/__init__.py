"""ONNX operator implementations, by family; importing this package fills :data:`OPS`."""

from . import activation, conv, elementwise, linalg, norm, pool, tensor  # noqa: F401  (registration)
from ._registry import MIN_OPSET, OPS, newest_opset

__all__ = ["OPS", "MIN_OPSET", "newest_opset"]

"""Compiled element-wise maths NumPy lacks (used by ``convlayers.onnx`` for ONNX's ``Erf``)."""

from __future__ import annotations

import math

import numba


@numba.vectorize(["float32(float32)", "float64(float64)"], cache=True)
def erf(x):
    """The error function, element-wise (``math.erf``; NumPy has none)."""
    return math.erf(x)

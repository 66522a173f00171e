"""``linear`` with a weight packed once, for callers whose weight never changes (an ONNX Gemm's initializer).

``F.linear`` multiplies with BLAS, which on the calling thread alone took
0.30 ms for mobilenet_v2's 1280→1000 classifier at batch 1 (a 5 MB weight
streamed by one core); the fused kernel of ``_kernels.gemm`` reads the
packed weight on numba's threads with the bias in its epilogue: 0.12 ms
(2-core Intel Xeon VM, AVX-512, 2 threads).  float32 only, as that kernel.
"""

from __future__ import annotations

import numpy as np

from .. import _kernels as _kernels_pkg
from .._kernels import gemm as _gemm

__all__ = ["prepare"]


def prepare(weight, bias=None):
    """``run(x)`` = ``x @ weight.T + bias`` for float32 2-D ``x`` (M, in_features), or None when it cannot apply.

    ``weight`` (out_features, in_features) and ``bias`` (out_features,) are
    packed now; ``run`` returns None for an input it does not take (another
    dtype or shape), so that the caller runs ``F.linear`` instead.
    """
    if weight.ndim != 2 or weight.dtype != np.float32 or (bias is not None and (
            bias.shape != (weight.shape[0],) or bias.dtype.kind != "f")):
        return None
    n, k = weight.shape
    panels = _gemm.pack_panels(weight.T)
    alpha, beta, lo, hi = _gemm.epilogue_columns(
        (np.ones(n, np.float32), np.zeros(n, np.float32) if bias is None else bias.astype(np.float32), -np.inf,
         np.inf), n)

    def run(x):
        if x.ndim != 2 or x.dtype != np.float32 or x.shape[1] != k:
            return None
        x = np.ascontiguousarray(x)
        out = np.empty((x.shape[0], n), dtype=np.float32)
        minimum = 1 << 19 if _kernels_pkg.cheap_launch() else 1 << 24
        _gemm.gemm_epilogue.for_work(x.shape[0] * n * k, minimum)(x, panels, out, alpha, beta, lo, hi, None)
        return out
    return run

"""scipy.signal's 2-D convolution on dask arrays, chunk by chunk, exact.

How a chunked filter stays exact.  A ``mode``-sized output is the 'valid'
correlation of the input extended at its outer edge by scipy's boundary rule
(``symm``: mirrored with the edge sample repeated; ``wrap``: periodic;
``fill``: a constant).  Each output block gathers its part of that extended
input — its own block, thin halos from its neighbours and, at the edge, the
mirrored, wrapped or filled margin — into one buffer and runs the in-memory
:mod:`convlayers.filters` kernel's 'valid' correlation on it (see
``convlayers.dask._blocks``).  Every output pixel sums the same products in the
same order as the in-memory call, so the results agree bit for bit (the direct
and separable methods: every kernel up to the FFT threshold, ~600 taps; an
FFT-sized kernel agrees to rounding).

Chunks smaller than the halo are merged with their neighbours first
(``dask`` cannot borrow more than a neighbour holds).

Examples
--------
>>> import numpy as np, dask.array as da
>>> from convlayers import filters
>>> from convlayers.dask import convolve2d
>>> img = np.random.default_rng(0).standard_normal((100, 90)).astype(np.float32)
>>> lazy = convolve2d(da.from_array(img, chunks=(32, 25)), filters.get_kernel("sobel_x"),
...                   mode="same", boundary="symm")
>>> bool((lazy.compute() == filters.convolve2d(img, filters.get_kernel("sobel_x"), "same", "symm")).all())
True
"""

from __future__ import annotations

import dask.array as da
import numpy as np

from .. import filters as _filters
from . import _blocks

__all__ = ["convolve2d", "correlate2d", "apply", "filter_bank", "gradient_magnitude"]


def _as_dask(image, func):
    if not isinstance(image, da.Array):
        raise TypeError(f"{func}: image must be a dask array (use convlayers.filters for in-memory arrays), "
                        f"got {type(image).__name__}")
    if image.ndim < 2:
        raise ValueError(f"{func}: image must have at least 2 dimensions (..., H, W), got shape {image.shape}")
    if image.dtype.kind not in "biufc":
        raise TypeError(f"{func}: image must be numeric, got dtype {image.dtype}")
    if any(s == 0 for s in image.shape):
        raise ValueError(f"{func}: image must not be empty, got shape {image.shape}")
    if any(np.isnan(s) for s in image.shape):
        raise ValueError(f"{func}: image has unknown chunk sizes; call image.compute_chunk_sizes() first")
    return image


def _kernel_2d(kernel, func):
    k = np.asarray(kernel)
    if k.dtype.kind not in "biufc":
        raise TypeError(f"{func}: kernel must be a numeric 2-D array, got dtype {k.dtype}")
    if k.ndim != 2 or k.size == 0:
        raise ValueError(f"{func}: kernel must be a non-empty 2-D array, got shape {k.shape}")
    return k


def _lazy_correlate(image, kk, mode, boundary, fillvalue, method, flipped, func):
    """Validate like the in-memory ``filters._correlate_core``, then build the chunked graph."""
    _filters._check_choice(mode, "mode", _filters._MODES)
    if not isinstance(boundary, str) or boundary not in _filters._BOUNDARIES:
        raise ValueError(f"{func}: boundary must be one of 'fill', 'wrap' (or 'circular'), 'symm' (or "
                         f"'symmetric'); got {boundary!r}")
    _filters._check_choice(method, "method", _filters._METHODS)
    boundary = _filters._BOUNDARIES[boundary]
    out_dtype = np.result_type(image.dtype, kk.dtype)
    if out_dtype not in _filters._SUPPORTED:
        raise TypeError(f"{func}: inputs of dtype {image.dtype} and {kk.dtype} give {out_dtype}, which is not "
                        f"supported; use integer, float32/64 or complex64/128 arrays")
    kh, kw = kk.shape
    h, w = image.shape[-2:]
    if mode == "valid" and (h < kh or w < kw):
        raise ValueError(f"{func}: for mode='valid' the image ({h} x {w}) must be at least as large as the "
                         f"kernel ({kh} x {kw}) in every dimension (the in-memory swap rule is not supported)")
    fill = out_dtype.type(_filters._cast_fillvalue(fillvalue, out_dtype, func)) if boundary == "fill" else None
    x = image.astype(out_dtype) if image.dtype != out_dtype else image
    return _blocks.lazy_correlate(x, np.ascontiguousarray(kk), mode, boundary, fill, method, flipped, out_dtype)


def convolve2d(image, kernel, mode="same", boundary="symm", fillvalue=0, *, method="auto"):
    """Lazy :func:`convlayers.filters.convolve2d` over the last two axes of a dask array.

    Parameters
    ----------
    image : dask.array.Array
        (H, W) or a stack (..., H, W); any chunking (chunks smaller than the kernel's
        halo are merged with a neighbour).
    kernel : array_like
        2-D numeric kernel (an ndarray, not a dask array).
    mode, boundary, fillvalue, method
        As in :func:`scipy.signal.convolve2d` (note the default ``mode='same'``,
        ``boundary='symm'``, as for images).

    Returns
    -------
    dask.array.Array
        dtype ``numpy.result_type(image, kernel)``; shape (..., H_out, W_out) with
        H_out = H (same), H + kh - 1 (full) or H - kh + 1 (valid); chunked like the input.

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> from convlayers.dask import convolve2d
    >>> convolve2d(da.ones((6, 6), chunks=3), np.ones((3, 3))).compute()[0]
    array([9., 9., 9., 9., 9., 9.])
    """
    image = _as_dask(image, "convolve2d")
    k = _kernel_2d(kernel, "convolve2d")
    return _lazy_correlate(image, k[::-1, ::-1], mode, boundary, fillvalue, method, True, "convolve2d")


def correlate2d(image, kernel, mode="same", boundary="symm", fillvalue=0, *, method="auto"):
    """Lazy :func:`convlayers.filters.correlate2d` over the last two axes of a dask array.

    As :func:`convolve2d`, but the kernel is conjugated and not flipped.

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> from convlayers.dask import correlate2d
    >>> correlate2d(da.arange(8.0, chunks=4).reshape(1, 8), np.array([[1.0, -1.0]])).compute()
    array([[-1., -1., -1., -1., -1., -1., -1.,  0.]])
    """
    image = _as_dask(image, "correlate2d")
    k = _kernel_2d(kernel, "correlate2d")
    kk = np.conj(k) if k.dtype.kind == "c" else k
    return _lazy_correlate(image, kk, mode, boundary, fillvalue, method, False, "correlate2d")


def apply(image, kernel_or_name, mode="same", boundary="symm", *, method="auto"):
    """Lazy :func:`convlayers.filters.apply`: float32 for a float32 image, float64 otherwise.

    ``image`` is (H, W) or (H, W, C) with the channel axis last, as in memory.

    Examples
    --------
    >>> import dask.array as da
    >>> from convlayers.dask import apply
    >>> apply(da.zeros((8, 8), chunks=4, dtype="uint8"), "blur").dtype
    dtype('float64')
    """
    image = _as_dask(image, "apply")
    if image.ndim not in (2, 3):
        raise ValueError(f"apply: image must be H x W or H x W x C, got shape {image.shape}")
    k = _filters._kernel_of(kernel_or_name)
    ftype = np.float32 if image.dtype == np.float32 else np.float64
    k = np.asarray(k, dtype=ftype)
    image = image.astype(ftype) if image.dtype != ftype else image
    if image.ndim == 2:
        return convolve2d(image, k, mode, boundary, method=method)
    planes = da.moveaxis(image, -1, 0)
    return da.moveaxis(convolve2d(planes, k, mode, boundary, method=method), 0, -1)


def filter_bank(image, names=None, *, mode="same", boundary="symm", method="auto"):
    """Lazy :func:`convlayers.filters.filter_bank`: ``{name: dask array}`` in the order asked.

    Examples
    --------
    >>> import dask.array as da
    >>> from convlayers.dask import filter_bank
    >>> list(filter_bank(da.zeros((8, 8), chunks=4), "blur,laplacian"))
    ['blur', 'laplacian']
    """
    if names is None:
        names = _filters.SEED_FILTERS
    elif isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    names = list(dict.fromkeys(names))
    if not names:
        raise ValueError("filter_bank: names must name at least one filter")
    kernels = {n: _filters.get_kernel(n) for n in names}
    image = _as_dask(image, "filter_bank")
    return {n: apply(image, k, mode, boundary, method=method) for n, k in kernels.items()}


def gradient_magnitude(image, *, boundary="symm", method="auto"):
    """Lazy :func:`convlayers.filters.gradient_magnitude`: hypot of the two Sobel responses.

    Examples
    --------
    >>> import dask.array as da
    >>> from convlayers.dask import gradient_magnitude
    >>> float(gradient_magnitude(da.zeros((8, 8), chunks=4)).compute().max())
    0.0
    """
    gx = apply(image, "sobel_x", "same", boundary, method=method)
    gy = apply(image, "sobel_y", "same", boundary, method=method)
    return da.hypot(gx, gy)

"""Classic image filters: scipy-compatible 2-D convolution and a filter bank.

:func:`convolve2d` and :func:`correlate2d` give :func:`scipy.signal.convolve2d`
and :func:`scipy.signal.correlate2d`'s results (shapes, boundaries, dtypes),
computed by compiled numba kernels: rank-1 kernels as two 1-D passes, small
kernels directly, large kernels by FFT. :func:`apply`, :func:`filter_bank`
and :func:`gradient_magnitude` run the bank in :data:`FILTERS` over grayscale
or colour images.

Examples
--------
>>> import numpy as np
>>> from convlayers.filters import apply, FILTERS
>>> img = np.zeros((5, 5)); img[:, 2:] = 1.0
>>> apply(img, "sobel_x")[2]   # the seed's Sobel, convolved: dark-to-bright reads negative
array([ 0., -4., -4.,  0.,  0.])
"""

from __future__ import annotations

import itertools
import math
import numbers
import os
import queue
import threading
from types import MappingProxyType

import numpy as np

from .reference import SEED_KERNELS

__all__ = [
    "FILTERS", "SEED_FILTERS", "convolve2d", "correlate2d", "apply", "filter_bank", "iter_filter_bank",
    "gradient_magnitude", "gaussian", "box", "get_kernel",
]

_MODES = ("full", "same", "valid")
# scipy's accepted spellings; 'reflect' is in scipy's table but its C code rejects it.
_BOUNDARIES = {"fill": "fill", "pad": "fill", "wrap": "wrap", "circular": "wrap",
               "symm": "symm", "symmetric": "symm"}
_METHODS = ("auto", "direct", "separable", "fft")

# Output dtypes scipy's _sigtools._convolve2d accepts (long double aside, which numba lacks).
_SUPPORTED = frozenset(np.dtype(t) for t in (
    np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64,
    np.float32, np.float64, np.complex64, np.complex128))

# Method thresholds, measured on 2048x2048 inputs (2 cores): numpy's FFT costs about
# as much as a direct kernel of ~600 taps in float64 (~1200 in float32, which runs
# twice as many lanes per vector); two 1-D passes beat the direct kernel from 5x5 on.
_FFT_TAPS_2D = 600
_FFT_TAPS_1D = 256
_SEPARABLE_MIN_TAPS = 25

def _readonly(a):
    a = np.asarray(a, dtype=np.float64)
    a.setflags(write=False)
    return a


def gaussian(size: int = 5, sigma: float = 1.0) -> np.ndarray:
    """A normalised ``size`` x ``size`` Gaussian blur kernel.

    Parameters
    ----------
    size : int
        Side of the square kernel, >= 1.
    sigma : float
        Standard deviation in pixels, > 0.

    Returns
    -------
    numpy.ndarray
        float64 kernel summing to 1, the outer product of a 1-D Gaussian with itself.

    Examples
    --------
    >>> from convlayers.filters import gaussian
    >>> k = gaussian(3, 1.0)
    >>> k.shape, round(float(k.sum()), 12)
    ((3, 3), 1.0)
    """
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
        raise ValueError(f"gaussian: size must be a positive integer, got {size!r}")
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) \
            or not math.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"gaussian: sigma must be a positive finite number, got {sigma!r}")
    x = np.arange(int(size), dtype=np.float64) - (int(size) - 1) / 2.0
    g = np.exp(-0.5 * (x / float(sigma)) ** 2)
    g /= g.sum()
    return np.outer(g, g)


def box(n: int = 3) -> np.ndarray:
    """An ``n`` x ``n`` mean (box) filter: ones / n**2.

    Examples
    --------
    >>> from convlayers.filters import box
    >>> box(2)
    array([[0.25, 0.25],
           [0.25, 0.25]])
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"box: n must be a positive integer, got {n!r}")
    return np.full((int(n), int(n)), 1.0 / (int(n) * int(n)))


_vertical = [[1, 0, -1], [1, 0, -1], [1, 0, -1]]
_scharr_x = [[3, 0, -3], [10, 0, -10], [3, 0, -3]]

#: The seed's six filters, in the order its figure shows them.
SEED_FILTERS = ("vertical", "horizontal", "sobel_x", "sobel_y", "blur", "laplacian")

#: Named 2-D kernels (read-only float64 arrays). The first six are the seed's, taken
#: literally from :data:`convlayers.reference.SEED_KERNELS` (its signs included).
FILTERS = MappingProxyType({
    **{name: _readonly(SEED_KERNELS[name]) for name in SEED_FILTERS},
    "gaussian": _readonly(gaussian(5, 1.0)),
    "box": _readonly(box(5)),
    "sharpen": _readonly([[0, -1, 0], [-1, 5, -1], [0, -1, 0]]),
    "emboss": _readonly([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]),
    "prewitt_x": _readonly(_vertical),
    "prewitt_y": _readonly(np.transpose(_vertical)),
    "scharr_x": _readonly(_scharr_x),
    "scharr_y": _readonly(np.transpose(_scharr_x)),
    "identity": _readonly([[0, 0, 0], [0, 1, 0], [0, 0, 0]]),
})


def get_kernel(name: str) -> np.ndarray:
    """The kernel called ``name`` in :data:`FILTERS` (a read-only array).

    Examples
    --------
    >>> from convlayers.filters import get_kernel
    >>> get_kernel("sobel_y")[0]
    array([-1., -2., -1.])
    """
    if not isinstance(name, str):
        raise TypeError(f"filter name must be a str, got {type(name).__name__}")
    try:
        return FILTERS[name]
    except KeyError:
        raise ValueError(f"unknown filter {name!r}; expected one of: "
                         f"{', '.join(FILTERS)}") from None


# ----------------------------------------------------------------------------- validation

def _check_choice(value, name, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; "
                         f"got {value!r}")
    return value


def _as_2d(x, name, func):
    if isinstance(x, np.ndarray):
        a = x
    else:
        try:
            a = np.asarray(x)
        except ValueError as exc:  # ragged nested lists
            raise ValueError(f"{func}: {name} must be a 2-D array; {exc}") from None
    if a.dtype.kind not in "biufc":
        raise TypeError(f"{func}: {name} must be a numeric array, got dtype {a.dtype}")
    if a.ndim != 2:
        raise ValueError(f"{func}: {name} must be a 2-D array, got {a.ndim}-D with shape {a.shape}")
    if a.size == 0:
        # scipy quietly returns zeros here; an empty image or kernel is always a mistake.
        raise ValueError(f"{func}: {name} must not be empty, got shape {a.shape}")
    return a


def _cast_fillvalue(fillvalue, dtype, func):
    """Cast like scipy: via complex, refusing complex->real and out-of-range integers."""
    fv = np.asarray(fillvalue)
    if fv.size != 1:
        # scipy's wording (its own tests match it), then what was given.
        raise ValueError(f"{func}: `fillvalue` must be scalar or an array with one element, "
                         f"got shape {fv.shape}")
    if fv.dtype.kind not in "biufc":
        raise TypeError(f"{func}: fillvalue must be a number, got {fillvalue!r}")
    v = fv.reshape(()).item()
    if dtype.kind == "c":
        return complex(v)
    if fv.dtype.kind == "c":
        raise ValueError(f"{func}: could not cast `fillvalue` directly to the output dtype {dtype}: "
                         f"{fillvalue!r} is complex; give a real fillvalue")
    if dtype.kind == "f":
        return float(v)
    # integer output: truncate toward zero, then the value must fit
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"{func}: could not cast `fillvalue` directly to the output dtype "
                             f"{dtype}: {fillvalue!r} is not finite")
        v = math.trunc(v)
    v = int(v)
    info = np.iinfo(dtype)
    if not info.min <= v <= info.max:
        raise ValueError(f"{func}: fillvalue {fillvalue!r} is out of range for the output "
                         f"dtype {dtype} [{info.min}, {info.max}]")
    return v


# ----------------------------------------------------------------------------- core

def _extension_map(n, before, after, boundary):
    """Source index for each padded position (-1 where the fill value goes)."""
    idx = np.arange(-before, n + after, dtype=np.int64)
    if boundary == "fill":
        return np.where((idx >= 0) & (idx < n), idx, -1)
    if boundary == "wrap":
        return np.mod(idx, n)
    r = np.mod(idx, 2 * n)  # symmetric: the edge sample is repeated, period 2n
    return np.where(r < n, r, 2 * n - 1 - r)


def _compute_dtype(out_dtype):
    if out_dtype.kind in "iu":
        return np.dtype(np.int64)  # modular arithmetic: wraps exactly like scipy's C loop
    if out_dtype.kind == "c":
        return np.dtype(np.complex128)
    return out_dtype


def _rank1_factors(k, eps=np.finfo(np.float64).eps):
    """(u, v) with outer(u, v) == k to rounding (``eps``), or None if k is not rank 1."""
    p, q = np.unravel_index(np.argmax(np.abs(k)), k.shape)
    pivot = k[p, q]
    if pivot == 0:  # the zero kernel: rank 0, trivially separable
        return np.zeros(k.shape[0], k.dtype), np.zeros(k.shape[1], k.dtype)
    u = k[:, q] / pivot
    v = k[p, :].copy()
    scale = np.abs(k).max()
    if np.abs(np.outer(u, v) - k).max() > 16 * eps * scale:
        return None
    return u, v


def _choose_method(kshape, factors, is_int, itemsize):
    kh, kw = kshape
    if is_int or min(kh, kw) == 1:
        # integers: exact modular arithmetic (the other routes round through float64);
        # a single row or column is already one 1-D pass.
        return "direct" if is_int or kh * kw <= _FFT_TAPS_1D else "fft"
    if factors is not None and kh * kw >= _SEPARABLE_MIN_TAPS:
        return "fft" if kh + kw > _FFT_TAPS_1D else "separable"
    limit = _FFT_TAPS_2D * (2 if itemsize <= 4 else 1)
    return "fft" if kh * kw > limit else "direct"

# ----------------------------------------------------------------------------- threads

# Smallest block worth handing to another thread, in multiply-adds (~50 us of work):
# a block costs a few microseconds of Python dispatch.
_BLOCK_MACS = 1 << 18
_BLOCKS_PER_THREAD = 4


class _RowJob:
    """Row blocks of one call, claimed one at a time by whichever thread is free.

    The calling thread works too and never waits for a helper that has not
    started: a late helper finds nothing left to claim. It only waits for blocks
    already running elsewhere.
    """

    def __init__(self, fn, args, nrows, step):
        self.fn, self.args, self.nrows, self.step = fn, args, nrows, step
        self.nblocks = -(-nrows // step)
        self.claim = itertools.count()  # next() is atomic under the GIL
        self.lock = threading.Lock()
        self.done = 0
        self.finished = threading.Event()
        self.error = None

    def work(self):
        while True:
            i = next(self.claim)
            if i >= self.nblocks:
                return
            r0 = i * self.step
            try:
                self.fn(*self.args, r0, min(r0 + self.step, self.nrows))
            except BaseException as exc:  # re-raised in the calling thread
                self.error = exc
            with self.lock:
                self.done += 1
                if self.done == self.nblocks:
                    self.finished.set()


_pool_lock = threading.Lock()
_pool = {"pid": None, "queue": None, "size": 0}


def _helpers(n):
    """A queue served by at least ``n`` daemon helper threads (recreated after fork)."""
    with _pool_lock:
        if _pool["pid"] != os.getpid():
            _pool.update(pid=os.getpid(), queue=queue.SimpleQueue(), size=0)
        q = _pool["queue"]
        while _pool["size"] < n:
            threading.Thread(target=_serve, args=(q,), daemon=True,
                             name=f"convlayers-filters-{_pool['size']}").start()
            _pool["size"] += 1
        return q


def _serve(q):
    while True:
        job = q.get()
        job.work()
        del job  # drop the arrays now rather than at the next job


def _run_row_blocks(fn, args, nrows, macs_per_row):
    """``fn(*args, row0, row1)`` over ``range(nrows)`` in blocks, on numba's thread budget."""
    import numba

    threads = numba.get_num_threads()
    step = max(-(-nrows // (threads * _BLOCKS_PER_THREAD)),
               -(-_BLOCK_MACS // max(macs_per_row, 1)))
    if threads <= 1 or step >= nrows:
        fn(*args, 0, nrows)
        return
    job = _RowJob(fn, args, nrows, step)
    q = _helpers(min(threads, job.nblocks) - 1)
    for _ in range(min(threads, job.nblocks) - 1):
        q.put(job)
    job.work()
    job.finished.wait()
    if job.error is not None:
        raise job.error


def _fft_correlate_valid(p, k, out_shape):
    """'valid' correlation of p with k through the FFT, in float64/complex128."""
    ph, pw = p.shape
    kh, kw = k.shape
    from ._kernels.filters import fast_len
    fh, fw = fast_len(ph), fast_len(pw)
    kf = k[::-1, ::-1]
    if p.dtype.kind == "c" or k.dtype.kind == "c":
        spec = np.fft.fft2(p, (fh, fw)) * np.fft.fft2(kf, (fh, fw))
        full = np.fft.ifft2(spec)
    else:
        spec = np.fft.rfft2(p.astype(np.float64, copy=False), (fh, fw)) \
            * np.fft.rfft2(kf.astype(np.float64, copy=False), (fh, fw))
        full = np.fft.irfft2(spec, (fh, fw))
    oh, ow = out_shape
    return full[kh - 1:kh - 1 + oh, kw - 1:kw - 1 + ow]


def _correlate_core(a, kk, mode, boundary, fillvalue, method, out_dtype, kernel_flipped,
                    func):
    """'mode' correlation of ``a`` with ``kk`` under scipy's boundary and centring rules.

    ``kernel_flipped`` says the caller is a convolution (kk is the flipped kernel),
    which moves the 'same' window by one sample for even kernel sizes.
    """
    from ._kernels import filters as K

    n0, n1 = a.shape
    kh, kw = kk.shape
    offs, outs = [], []
    for n, k in ((n0, kh), (n1, kw)):
        if mode == "full":
            offs.append(-(k - 1)); outs.append(n + k - 1)
        elif mode == "valid":
            offs.append(0); outs.append(n - k + 1)
        else:
            offs.append(-(k // 2) if kernel_flipped else -((k - 1) // 2)); outs.append(n)
    oh, ow = outs
    before = (-offs[0], -offs[1])
    after = (offs[0] + oh + kh - 1 - n0, offs[1] + ow + kw - 1 - n1)

    is_int = out_dtype.kind in "iu"
    cdt = _compute_dtype(out_dtype)
    fill = _cast_fillvalue(fillvalue, out_dtype, func)

    factors = None
    if not is_int and method in ("auto", "separable"):
        # A float32 kernel is rank 1 up to float32 rounding (e.g. a cast Gaussian).
        eps = np.finfo(kk.dtype).eps if kk.dtype.kind in "fc" else np.finfo(np.float64).eps
        factors = _rank1_factors(kk.astype(np.complex128 if kk.dtype.kind == "c"
                                           else np.float64), max(eps, np.finfo(np.float64).eps))
        if method == "separable" and factors is None:
            raise ValueError(f"{func}: method='separable' needs a rank-1 (separable) kernel; "
                             f"this {kh}x{kw} kernel is not")
    if is_int and method == "separable":
        factors = _rank1_factors(kk.astype(np.float64))
        if factors is None:
            raise ValueError(f"{func}: method='separable' needs a rank-1 (separable) kernel; "
                             f"this {kh}x{kw} kernel is not")
    if method == "auto":
        method = _choose_method((kh, kw), factors, is_int, cdt.itemsize)

    # Integer routes that go through floats round to nearest, like scipy.signal.convolve.
    work = cdt if not (is_int and method != "direct") else np.dtype(np.float64)

    a_c = np.ascontiguousarray(a, dtype=work)
    if work.kind in "iu" and fill > np.iinfo(np.int64).max:
        fill -= 1 << 64  # uint64 fill value: same bits in the int64 accumulator
    rmap = _extension_map(n0, before[0], after[0], boundary)
    cmap = _extension_map(n1, before[1], after[1], boundary)

    if method == "direct":
        # The boundary is folded into the kernel (through rmap/cmap): no padded copy,
        # which for a small kernel would cost as much as the filtering itself.
        res = np.empty((oh, ow), dtype=work)
        _run_row_blocks(K.correlate_folded,
                        (a_c, rmap, cmap, before[1], np.full(n1, fill, dtype=work),
                         np.ascontiguousarray(kk, dtype=work), res), oh, ow * kh * kw)
    else:
        # Pad once; the kernels then never look at the boundary rule.
        if before == (0, 0) and after == (0, 0):
            p = a_c
        else:
            p = np.empty((rmap.size, cmap.size), dtype=work)
            K.pad2d(a_c, rmap, cmap, before[1], work.type(fill), p)
        if method == "fft":
            res = _fft_correlate_valid(p, kk, (oh, ow))
        else:
            u, v = factors
            tmp = np.empty((p.shape[0], ow), dtype=work)
            K.correlate_rows(p, np.ascontiguousarray(v, dtype=work), tmp)
            res = np.empty((oh, ow), dtype=work)
            K.correlate_cols(tmp, np.ascontiguousarray(u, dtype=work), res)

    if is_int:
        if res.dtype.kind == "f":
            res = np.rint(res).astype(np.int64)
        return res.astype(out_dtype)  # wraps modulo 2**bits, as scipy's C accumulator does
    if res.dtype.kind == "c" and out_dtype.kind != "c":
        res = res.real
    return res.astype(out_dtype, copy=False)


def _prepare(in1, in2, mode, boundary, method, func):
    _check_choice(mode, "mode", _MODES)
    if not isinstance(boundary, str) or boundary not in _BOUNDARIES:
        raise ValueError(f"boundary must be one of 'fill', 'wrap' (or 'circular'), "
                         f"'symm' (or 'symmetric'); got {boundary!r}")
    _check_choice(method, "method", _METHODS)
    a = _as_2d(in1, "in1", func)
    b = _as_2d(in2, "in2", func)
    out_dtype = np.result_type(a.dtype, b.dtype)
    if out_dtype not in _SUPPORTED:
        raise TypeError(f"{func}: inputs of dtype {a.dtype} and {b.dtype} give {out_dtype}, "
                        f"which is not supported; use integer, float32/64 or complex64/128 arrays")
    swap = False
    if mode == "valid":
        ok1 = a.shape[0] >= b.shape[0] and a.shape[1] >= b.shape[1]
        ok2 = b.shape[0] >= a.shape[0] and b.shape[1] >= a.shape[1]
        if not (ok1 or ok2):
            raise ValueError(f"{func}: for mode='valid' one input must be at least as large as "
                             f"the other in every dimension; got in1 {a.shape}, in2 {b.shape}")
        swap = not ok1
    return a, b, out_dtype, _BOUNDARIES[boundary], swap


def convolve2d(in1, in2, mode="full", boundary="fill", fillvalue=0, *, method="auto"):
    """Convolve two 2-D arrays, exactly as :func:`scipy.signal.convolve2d`.

    Parameters
    ----------
    in1, in2 : array_like
        2-D, non-empty, numeric. In 'valid' mode, if ``in2`` is at least as large as
        ``in1`` in every dimension the two are swapped (scipy's rule); if neither is,
        ``ValueError``.
    mode : {'full', 'valid', 'same'}
        Output size: the full convolution, only where the arrays overlap completely, or
        the size of ``in1`` centred on the 'full' output (for an even kernel size ``k``
        the window starts at ``k // 2``).
    boundary : {'fill', 'wrap', 'symm'}
        How ``in1`` is extended: by ``fillvalue``, periodically, or mirrored with the
        edge sample repeated. scipy's aliases 'pad', 'circular' and 'symmetric' work too.
    fillvalue : scalar
        Padding value for ``boundary='fill'``, cast to the output dtype as scipy does
        (complex into a real output, or an integer out of range, is a ``ValueError``).
    method : {'auto', 'direct', 'separable', 'fft'}
        'separable' runs a rank-1 kernel as two 1-D passes, 'fft' goes through
        ``numpy.fft``; 'auto' picks by kernel shape and rank. For integer outputs only
        'direct' is exact under overflow; the others round a float64 result.

    Returns
    -------
    numpy.ndarray
        dtype ``numpy.result_type(in1, in2)``, as scipy gives (so uint8 * uint8 stays
        uint8 and wraps). Long double and float16/bool-only inputs raise ``TypeError``.

    Examples
    --------
    >>> from convlayers.filters import convolve2d
    >>> convolve2d([[1, 2], [3, 4]], [[1, -1]])
    array([[ 1,  1, -2],
           [ 3,  1, -4]])
    >>> convolve2d([[1., 2.], [3., 4.]], [[1., 1.], [1., 1.]], mode="same", boundary="symm")
    array([[ 4.,  6.],
           [ 8., 10.]])
    """
    a, b, out_dtype, boundary, swap = _prepare(in1, in2, mode, boundary, method, "convolve2d")
    if swap:
        a, b = b, a  # convolution commutes, so no flip of the result is needed
    return _correlate_core(a, b[::-1, ::-1], mode, boundary, fillvalue, method, out_dtype,
                           True, "convolve2d")


def correlate2d(in1, in2, mode="full", boundary="fill", fillvalue=0, *, method="auto"):
    """Cross-correlate two 2-D arrays, exactly as :func:`scipy.signal.correlate2d`.

    ``in2`` is conjugated and not flipped; otherwise the arguments, the 'valid'
    swap (after which the result is reversed in both axes, as scipy does) and the
    output dtype are those of :func:`convolve2d`.

    Examples
    --------
    >>> from convlayers.filters import correlate2d
    >>> correlate2d([[1, 2, 3]], [[1, -1]], mode="valid")
    array([[-1, -1]])
    """
    a, b, out_dtype, boundary, swap = _prepare(in1, in2, mode, boundary, method, "correlate2d")
    if swap:
        a, b = b, a
    kk = np.conj(b) if b.dtype.kind == "c" else b
    out = _correlate_core(a, kk, mode, boundary, fillvalue, method, out_dtype, False,
                          "correlate2d")
    return out[::-1, ::-1].copy() if swap else out


# ----------------------------------------------------------------------------- images

def _kernel_of(kernel_or_name):
    if isinstance(kernel_or_name, str):
        return get_kernel(kernel_or_name)
    k = _as_2d(kernel_or_name, "kernel", "apply")
    if k.dtype.kind == "c":
        raise TypeError("apply: kernel must be real, got a complex array")
    return k


def _image_of(image, func):
    img = image if isinstance(image, np.ndarray) else np.asarray(image)
    if img.dtype.kind not in "biuf":
        raise TypeError(f"{func}: image must be a real numeric array, got dtype {img.dtype}")
    if img.ndim not in (2, 3) or img.size == 0:
        raise ValueError(f"{func}: image must be a non-empty H x W or H x W x C array, "
                         f"got shape {img.shape}")
    return img


def apply(image, kernel_or_name, mode="same", boundary="symm", *, method="auto"):
    """Convolve an image with a kernel (or a :data:`FILTERS` name), channel by channel.

    Parameters
    ----------
    image : array_like
        H x W grayscale or H x W x C colour, any real numeric dtype.
    kernel_or_name : str or array_like
        A name from :data:`FILTERS` or a real 2-D kernel.
    mode, boundary, method
        As in :func:`convolve2d` (true convolution: the kernel is flipped).

    Returns
    -------
    numpy.ndarray
        float32 for a float32 image, float64 otherwise (uint8 in, float out); the
        channel axis, if any, is kept last.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers.filters import apply
    >>> img = np.arange(16, dtype=np.uint8).reshape(4, 4)
    >>> apply(img, "blur").dtype, apply(img.astype(np.float32), "blur").dtype
    (dtype('float64'), dtype('float32'))
    >>> apply(np.dstack([img, img, img]), "laplacian").shape
    (4, 4, 3)
    """
    img = _image_of(image, "apply")
    k = _kernel_of(kernel_or_name)
    _check_choice(mode, "mode", _MODES)
    ftype = np.float32 if img.dtype == np.float32 else np.float64
    k = np.asarray(k, dtype=ftype)
    if img.ndim == 2:
        return convolve2d(img.astype(ftype, copy=False), k, mode, boundary, method=method)
    chans = [convolve2d(np.ascontiguousarray(img[:, :, c], dtype=ftype), k, mode, boundary,
                        method=method) for c in range(img.shape[2])]
    return np.stack(chans, axis=-1)


def _bank_names(names, func):
    if names is None:
        names = SEED_FILTERS
    elif isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    names = list(names)
    if not names:
        raise ValueError(f"{func}: names must name at least one filter")
    seen = set()
    for n in names:
        if n in seen:
            raise ValueError(f"{func}: filter {n!r} is named twice; name each filter once")
        seen.add(n)
    return {n: get_kernel(n) for n in names}  # every name checked before any work


def iter_filter_bank(image, names=None, *, mode="same", boundary="symm", method="auto"):
    """Yield ``(name, response)`` one filter at a time, in the order asked.

    The streaming form of :func:`filter_bank`: the image is cast to the working
    dtype once, and only the response being yielded is alive, so a caller that
    writes or shrinks each response before asking for the next works in memory
    for two image-sized float arrays whatever the number of filters (a 9000² photo:
    ~1.3 GB against 4.5 GB for six responses kept).

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers.filters import iter_filter_bank
    >>> [(name, r.shape) for name, r in iter_filter_bank(np.eye(4), "blur,laplacian")]
    [('blur', (4, 4)), ('laplacian', (4, 4))]
    """
    kernels = _bank_names(names, "filter_bank")
    img = _image_of(image, "filter_bank")
    _check_choice(mode, "mode", _MODES)
    ftype = np.float32 if img.dtype == np.float32 else np.float64
    if img.ndim == 2:
        img = np.ascontiguousarray(img, dtype=ftype)  # once, not once per filter
    for name, k in kernels.items():
        yield name, apply(img, k, mode, boundary, method=method)


def filter_bank(image, names=None, *, mode="same", boundary="symm", method="auto"):
    """Apply several named filters; returns ``{name: response}`` in the order asked.

    ``names`` defaults to the seed's six (:data:`SEED_FILTERS`); a name given twice
    is a ``ValueError``. Every response is kept, so memory grows with the number of
    filters: for large images iterate :func:`iter_filter_bank` instead.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers.filters import filter_bank
    >>> list(filter_bank(np.eye(8)))
    ['vertical', 'horizontal', 'sobel_x', 'sobel_y', 'blur', 'laplacian']
    """
    return dict(iter_filter_bank(image, names, mode=mode, boundary=boundary, method=method))


def gradient_magnitude(image, *, boundary="symm", method="auto"):
    """Edge strength: sqrt(sobel_x response**2 + sobel_y response**2).

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers.filters import gradient_magnitude
    >>> img = np.zeros((5, 5)); img[:, 2:] = 1.0
    >>> gradient_magnitude(img)[2]
    array([0., 4., 4., 0., 0.])
    """
    gx = apply(image, "sobel_x", "same", boundary, method=method)
    gy = apply(image, "sobel_y", "same", boundary, method=method)
    return np.hypot(gx, gy)

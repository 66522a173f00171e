"""The textbook: convolution and pooling as plain Python loops.

Nothing here is fast, and that is the point.  Each function is the definition
written out, one window at a time, so that it can be read, stepped through
with a debugger, and used by the tests as an oracle that shares no code with
the compiled kernels in :mod:`convlayers.functional`.

Two families:

* 2-D single-channel versions (``convolve2d``, ``max_pool2d``,
  ``avg_pool2d``) for learning: one image, one kernel, an optional
  step-by-step trace.
* Batched (N, C, H, W) versions (``conv2d_nchw``, ``conv_transpose2d_nchw``,
  ``max_pool2d_nchw``, ``avg_pool2d_nchw``, ``adaptive_*_nchw``) with all of
  PyTorch's arguments, for testing.

Plus the idea behind the fast 3×3 path, :func:`winograd_conv2d_3x3`: the same
convolution with 36 multiplies per 4×4 output tile instead of 144, written
tile by tile with its three small matrices.
"""

from __future__ import annotations

import math

import numpy as np

from .sizes import conv_output_size, pair

__all__ = [
    "convolve2d", "max_pool2d", "avg_pool2d", "SEED_KERNELS", "SEED_IMAGE", "POOL_IMAGE",
    "filter_same_symm", "seed_filter_bank",
    "conv2d_nchw", "conv_transpose2d_nchw", "max_pool2d_nchw", "avg_pool2d_nchw",
    "adaptive_avg_pool2d_nchw", "adaptive_max_pool2d_nchw", "WINOGRAD_F43", "winograd_conv2d_3x3",
]


# --------------------------------------------------------------------------- the textbook

#: The seed's 4×4 worked example for convolution: the numbers 1 to 16, row by row.
SEED_IMAGE = np.arange(1, 17).reshape(4, 4)
SEED_IMAGE.setflags(write=False)

#: The seed's 4×4 worked example for pooling: its 2×2 windows hold 1–4, 5–8, 9–12 and 13–16.
POOL_IMAGE = np.array([[1, 2, 5, 6], [3, 4, 7, 8], [9, 10, 13, 14], [11, 12, 15, 16]])
POOL_IMAGE.setflags(write=False)

#: The seed's filter dictionary, exactly as the seed writes it (same order, same signs).
#: ``convlayers.filters.FILTERS`` takes its first six kernels from here.
SEED_KERNELS = {
    "vertical": ((1, 0, -1), (1, 0, -1), (1, 0, -1)),
    "horizontal": ((1, 1, 1), (0, 0, 0), (-1, -1, -1)),
    "sobel_x": ((-1, 0, 1), (-2, 0, 2), (-1, 0, 1)),
    "sobel_y": ((-1, -2, -1), (0, 0, 0), (1, 2, 1)),
    "blur": ((1 / 9,) * 3,) * 3,
    "laplacian": ((-1, -1, -1), (-1, 8, -1), (-1, -1, -1)),
}



def convolve2d(image, kernel, padding=0, stride=1):
    """Slide ``kernel`` over ``image`` and take the dot product at each stop.

    This is cross-correlation (the kernel is not flipped), which is what deep
    learning calls convolution.  Zero padding is added on every side first.

    Parameters
    ----------
    image : array_like, shape (H, W)
    kernel : array_like, shape (kH, kW)
    padding : int, default 0
        Zeros added on each side.
    stride : int, default 1
        Step between window positions.

    Returns
    -------
    ndarray, shape (H_out, W_out)
        ``H_out = ⌊(H + 2p − kH)/s⌋ + 1``.

    Examples
    --------
    The 4×4 image 1..16 and a vertical-edge kernel: every window sees its left
    column 2 smaller than its right column, three rows of it.

    >>> import numpy as np
    >>> image = np.arange(1, 17).reshape(4, 4)
    >>> kernel = np.array([[1, 0, -1]] * 3)
    >>> convolve2d(image, kernel)
    array([[-6., -6.],
           [-6., -6.]])
    """
    image = np.asarray(image, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    if image.ndim != 2 or kernel.ndim != 2:
        raise ValueError(f"image and kernel must be 2-D, got shapes {image.shape} and {kernel.shape}")
    if padding > 0:
        image = np.pad(image, padding)
    kh, kw = kernel.shape
    out_h = conv_output_size(image.shape[0], kh, stride)
    out_w = conv_output_size(image.shape[1], kw, stride)
    out = np.zeros((out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            window = image[i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[i, j] = np.sum(window * kernel)
    return out


def filter_same_symm(image, kernel):
    """The seed's filter loop: ``scipy.signal.convolve2d(image, kernel, mode="same", boundary="symm")``.

    Written out: a true convolution (the kernel is flipped, unlike
    :func:`convolve2d`), the image mirrored past its edges with the edge pixel
    repeated, and an output the size of the input.  The sum runs over the
    kernel's taps, each adding a shifted copy of the padded image, so a whole
    photograph takes milliseconds while every output pixel is still the sum of
    ``kernel[u, v] * pixel`` products it is by definition.

    Parameters
    ----------
    image : array_like, shape (H, W)
    kernel : array_like, shape (kH, kW)

    Returns
    -------
    ndarray of float64, shape (H, W)

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((3, 4)); img[:, 2:] = 1.0
    >>> filter_same_symm(img, SEED_KERNELS["sobel_x"])   # dark to bright reads negative
    array([[ 0., -4., -4.,  0.],
           [ 0., -4., -4.,  0.],
           [ 0., -4., -4.,  0.]])
    """
    image = np.asarray(image, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    if image.ndim != 2 or kernel.ndim != 2:
        raise ValueError(f"image and kernel must be 2-D, got shapes {image.shape} and {kernel.shape}")
    kh, kw = kernel.shape
    h, w = image.shape
    flipped = kernel[::-1, ::-1]
    # scipy centres 'same' on the full convolution: (k - 1) // 2 before for an odd kernel, k // 2 for even.
    top, left = kh // 2, kw // 2
    padded = np.pad(image, ((top, kh - 1 - top), (left, kw - 1 - left)), mode="symmetric")
    out = np.zeros((h, w))
    for u in range(kh):
        for v in range(kw):
            out += flipped[u, v] * padded[u:u + h, v:v + w]
    return out


def seed_filter_bank(image, kernels=None):
    """The seed's figure, as numbers: ``{name: filter_same_symm(image, kernel)}`` for each seed filter.

    Examples
    --------
    >>> import numpy as np
    >>> bank = seed_filter_bank(np.eye(5))
    >>> list(bank), bank["blur"].shape
    (['vertical', 'horizontal', 'sobel_x', 'sobel_y', 'blur', 'laplacian'], (5, 5))
    """
    kernels = SEED_KERNELS if kernels is None else kernels
    return {name: filter_same_symm(image, k) for name, k in kernels.items()}


def _pool2d(image, pool_size, reduce, label, verbose):
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {image.shape}")
    out_h = conv_output_size(image.shape[0], pool_size, pool_size)
    out_w = conv_output_size(image.shape[1], pool_size, pool_size)
    out = np.zeros((out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            window = image[i * pool_size:(i + 1) * pool_size, j * pool_size:(j + 1) * pool_size]
            out[i, j] = reduce(window)
            if verbose:
                rows = "; ".join(" ".join(f"{v:g}" for v in row) for row in window)
                print(f"window ({i}, {j}): [{rows}] -> {label} {out[i, j]:g}")
    return out


def max_pool2d(image, pool_size=2, verbose=False):
    """Keep the largest value of each non-overlapping ``pool_size``×``pool_size`` window.

    Parameters
    ----------
    image : array_like, shape (H, W)
    pool_size : int, default 2
        Window side and stride.
    verbose : bool, default False
        Print every window and its maximum.

    Examples
    --------
    The worked example: a 4×4 image whose 2×2 windows hold 1–4, 5–8, 9–12
    and 13–16.

    >>> import numpy as np
    >>> image = np.array([[1, 2, 5, 6], [3, 4, 7, 8], [9, 10, 13, 14], [11, 12, 15, 16]])
    >>> max_pool2d(image, verbose=True)
    window (0, 0): [1 2; 3 4] -> max 4
    window (0, 1): [5 6; 7 8] -> max 8
    window (1, 0): [9 10; 11 12] -> max 12
    window (1, 1): [13 14; 15 16] -> max 16
    array([[ 4.,  8.],
           [12., 16.]])
    """
    return _pool2d(image, pool_size, np.max, "max", verbose)


def avg_pool2d(image, pool_size=2, verbose=False):
    """Average each non-overlapping ``pool_size``×``pool_size`` window.

    Parameters
    ----------
    image : array_like, shape (H, W)
    pool_size : int, default 2
        Window side and stride.
    verbose : bool, default False
        Print every window and its mean.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.array([[1, 2, 5, 6], [3, 4, 7, 8], [9, 10, 13, 14], [11, 12, 15, 16]])
    >>> avg_pool2d(image)
    array([[ 2.5,  6.5],
           [10.5, 14.5]])
    """
    return _pool2d(image, pool_size, np.mean, "mean", verbose)


# --------------------------------------------------------------------------- batched loop oracles


def _same_pads(kernel, dilation):
    pads = []
    for k, d in zip(kernel, dilation):
        total = d * (k - 1)
        pads.append((total // 2, total - total // 2))
    return pads


def conv2d_nchw(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Batched, grouped, strided, dilated 2-D convolution by explicit loops.

    Each output value is written as the sum it is: over the input channels of
    its group and over the kernel taps.  ``padding`` may be an int, a pair,
    ``'valid'`` or ``'same'``.
    """
    x = np.asarray(x, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    stride, dilation = pair(stride, "stride"), pair(dilation, "dilation")
    n, c_in, h, w = x.shape
    c_out, c_in_g, kh, kw = weight.shape
    if padding == "valid":
        pads = [(0, 0), (0, 0)]
    elif padding == "same":
        pads = _same_pads((kh, kw), dilation)
    else:
        ph, pw = pair(padding, "padding")
        pads = [(ph, ph), (pw, pw)]
    xp = np.pad(x, [(0, 0), (0, 0), pads[0], pads[1]])
    out_h = (xp.shape[2] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    out_w = (xp.shape[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    c_out_g = c_out // groups
    out = np.zeros((n, c_out, out_h, out_w))
    for b in range(n):
        for oc in range(c_out):
            g = oc // c_out_g
            for i in range(out_h):
                for j in range(out_w):
                    total = 0.0 if bias is None else float(bias[oc])
                    for ic in range(c_in_g):
                        for u in range(kh):
                            for v in range(kw):
                                total += (weight[oc, ic, u, v]
                                          * xp[b, g * c_in_g + ic, i * stride[0] + u * dilation[0],
                                               j * stride[1] + v * dilation[1]])
                    out[b, oc, i, j] = total
    return out


def conv_transpose2d_nchw(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Transposed convolution by scattering: each input pixel adds ``value × kernel`` to the output."""
    x = np.asarray(x, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    stride, dilation = pair(stride, "stride"), pair(dilation, "dilation")
    padding, output_padding = pair(padding, "padding"), pair(output_padding, "output_padding")
    n, c_in, h, w = x.shape
    _, c_out_g, kh, kw = weight.shape
    c_in_g = c_in // groups
    full_h = (h - 1) * stride[0] + dilation[0] * (kh - 1) + 1 + output_padding[0]
    full_w = (w - 1) * stride[1] + dilation[1] * (kw - 1) + 1 + output_padding[1]
    full = np.zeros((n, c_out_g * groups, full_h, full_w))
    for b in range(n):
        for ic in range(c_in):
            g = ic // c_in_g
            for i in range(h):
                for j in range(w):
                    for oc in range(c_out_g):
                        for u in range(kh):
                            for v in range(kw):
                                full[b, g * c_out_g + oc, i * stride[0] + u * dilation[0],
                                     j * stride[1] + v * dilation[1]] += x[b, ic, i, j] * weight[ic, oc, u, v]
    out = full[:, :, padding[0]:full_h - padding[0], padding[1]:full_w - padding[1]]
    if bias is not None:
        out = out + np.asarray(bias, dtype=np.float64)[:, None, None]
    return out


def max_pool2d_nchw(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Max pooling by loops, returning ``(values, flat indices)``; -inf padding, NaN wins."""
    x = np.asarray(x, dtype=np.float64)
    k, d, p = pair(kernel_size, "kernel_size"), pair(dilation, "dilation"), pair(padding, "padding")
    s = k if stride is None else pair(stride, "stride")
    n, c, h, w = x.shape
    oh = conv_output_size(h, k[0], s[0], p[0], d[0], ceil_mode)
    ow = conv_output_size(w, k[1], s[1], p[1], d[1], ceil_mode)
    out = np.full((n, c, oh, ow), -np.inf)
    idx = np.zeros((n, c, oh, ow), dtype=np.int64)
    for b in range(n):
        for ch in range(c):
            for i in range(oh):
                for j in range(ow):
                    taps = [(i * s[0] - p[0] + u * d[0], j * s[1] - p[1] + v * d[1])
                            for u in range(k[0]) for v in range(k[1])]
                    taps = [(hi, wi) for hi, wi in taps if 0 <= hi < h and 0 <= wi < w]
                    best, best_at = -np.inf, taps[0]
                    for hi, wi in taps:
                        val = x[b, ch, hi, wi]
                        if val > best or math.isnan(val):  # NaN beats everything, as in PyTorch
                            best, best_at = val, (hi, wi)
                    out[b, ch, i, j] = best
                    idx[b, ch, i, j] = best_at[0] * w + best_at[1]
    return out, idx


def avg_pool2d_nchw(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                    divisor_override=None):
    """Average pooling by loops, with PyTorch's divisor rules."""
    x = np.asarray(x, dtype=np.float64)
    k, p = pair(kernel_size, "kernel_size"), pair(padding, "padding")
    s = k if stride is None else pair(stride, "stride")
    n, c, h, w = x.shape
    oh = conv_output_size(h, k[0], s[0], p[0], 1, ceil_mode)
    ow = conv_output_size(w, k[1], s[1], p[1], 1, ceil_mode)
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            h0, w0 = i * s[0] - p[0], j * s[1] - p[1]
            # the window may hang past the padding in ceil_mode; that part never counts
            h1, w1 = min(h0 + k[0], h + p[0]), min(w0 + k[1], w + p[1])
            padded_count = (h1 - h0) * (w1 - w0)
            h0c, w0c, h1c, w1c = max(h0, 0), max(w0, 0), min(h1, h), min(w1, w)
            if h0c >= h1c or w0c >= w1c:
                continue
            total = x[:, :, h0c:h1c, w0c:w1c].sum(axis=(2, 3))
            if divisor_override:
                divisor = divisor_override
            elif count_include_pad:
                divisor = padded_count
            else:
                divisor = (h1c - h0c) * (w1c - w0c)
            out[:, :, i, j] = total / divisor
    return out


def _adaptive_windows(in_size, out_size):
    return [((o * in_size) // out_size, -((-(o + 1) * in_size) // out_size)) for o in range(out_size)]


def adaptive_avg_pool2d_nchw(x, output_size):
    """Adaptive average pooling by loops: window ``[⌊i·H/O⌋, ⌈(i+1)·H/O⌉)``."""
    x = np.asarray(x, dtype=np.float64)
    oh, ow = pair(output_size, "output_size")
    out = np.zeros(x.shape[:2] + (oh, ow))
    for i, (h0, h1) in enumerate(_adaptive_windows(x.shape[2], oh)):
        for j, (w0, w1) in enumerate(_adaptive_windows(x.shape[3], ow)):
            out[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return out


def adaptive_max_pool2d_nchw(x, output_size):
    """Adaptive max pooling by loops (NaN-free inputs)."""
    x = np.asarray(x, dtype=np.float64)
    oh, ow = pair(output_size, "output_size")
    out = np.zeros(x.shape[:2] + (oh, ow))
    for i, (h0, h1) in enumerate(_adaptive_windows(x.shape[2], oh)):
        for j, (w0, w1) in enumerate(_adaptive_windows(x.shape[3], ow)):
            out[:, :, i, j] = x[:, :, h0:h1, w0:w1].max(axis=(2, 3))
    return out


# Winograd's minimal filtering F(4, 3) on the points 0, ±1, ±2 and ∞ (Lavin & Gray, 2016):
# y = Aᵀ[(G g) ⊙ (Bᵀ d)] gives the 4 outputs of a 3-tap correlation of 6 inputs with 6 multiplies.
WINOGRAD_F43 = {
    "BT": np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                    [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], dtype=np.float64),
    "G": np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                   [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]),
    "AT": np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                    [0, 1, -1, 8, -8, 1]], dtype=np.float64),
}


def winograd_conv2d_3x3(x, weight, padding=1):
    """A 3×3, stride-1 conv2d by Winograd F(4×4, 3×3), one 4×4 output tile at a time.

    For each tile the 6×6 input patch ``d`` and each 3×3 filter ``g`` are moved
    into the transform domain, multiplied elementwise (36 products where the
    direct sum takes 4·4·9 = 144) and summed over the input channels; one
    inverse transform gives the tile::

        Y = Aᵀ [ Σ_c (G g_c Gᵀ) ⊙ (Bᵀ d_c B) ] A

    The fast path (``functional._winograd``) does the same with the channel
    sums as 36 matrix products.  Output tiles past the edge are computed on
    zero padding and cut off.

    Shape: ``H_out = H + 2·padding - 2``, ``W_out = W + 2·padding - 2``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x, w = rng.standard_normal((1, 2, 6, 7)), rng.standard_normal((3, 2, 3, 3))
    >>> bool(np.allclose(winograd_conv2d_3x3(x, w), conv2d_nchw(x, w, padding=1)))
    True
    """
    bt, g, at = WINOGRAD_F43["BT"], WINOGRAD_F43["G"], WINOGRAD_F43["AT"]
    x = np.asarray(x, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    if x.ndim != 4:
        raise ValueError(f"winograd_conv2d_3x3: x must be (N, C, H, W), got shape {x.shape}")
    if weight.ndim != 4 or weight.shape[1:] != (x.shape[1], 3, 3):
        raise ValueError(f"winograd_conv2d_3x3: weight must be (C_out, {x.shape[1]}, 3, 3) for this x, "
                         f"got shape {weight.shape}")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"winograd_conv2d_3x3: padding must be a non-negative int, got {padding!r}")
    n, c_in, h, w = x.shape
    if h + 2 * padding < 3 or w + 2 * padding < 3:
        raise ValueError(f"winograd_conv2d_3x3: the padded input ({h + 2 * padding} x {w + 2 * padding}) is "
                         f"smaller than the 3 x 3 kernel")
    c_out = weight.shape[0]
    out_h, out_w = h + 2 * padding - 2, w + 2 * padding - 2
    tiles_h, tiles_w = -(-out_h // 4), -(-out_w // 4)
    # zero padding all round, plus enough at the bottom and right for whole tiles
    xp = np.zeros((n, c_in, 4 * tiles_h + 2, 4 * tiles_w + 2))
    xp[:, :, padding:padding + h, padding:padding + w] = x
    u = np.array([[g @ weight[o, c] @ g.T for c in range(c_in)] for o in range(c_out)])  # (C_out, C_in, 6, 6)
    out = np.zeros((n, c_out, 4 * tiles_h, 4 * tiles_w))
    for b in range(n):
        for ty in range(tiles_h):
            for tx in range(tiles_w):
                d = xp[b, :, 4 * ty:4 * ty + 6, 4 * tx:4 * tx + 6]
                v = np.array([bt @ d[c] @ bt.T for c in range(c_in)])  # (C_in, 6, 6)
                for o in range(c_out):
                    m = (u[o] * v).sum(axis=0)  # the 36 products, summed over the input channels
                    out[b, o, 4 * ty:4 * ty + 4, 4 * tx:4 * tx + 4] = at @ m @ at.T
    return out[:, :, :out_h, :out_w]

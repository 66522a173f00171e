"""Spatial transformers: ``affine_grid`` and ``grid_sample`` (4-D and 5-D), with their gradients.

``grid_sample`` follows PyTorch's ``GridSampler.h`` step by step: the grid's
``[-1, 1]`` coordinates are unnormalised (``align_corners`` decides whether
±1 are corner pixel centres or edges), passed through the padding rule
(``border`` clips, ``reflection`` folds then clips; for bicubic each tap is
padded instead) and sampled — bilinear/trilinear from the 2ᵈ corners,
nearest by round-half-to-even, bicubic from 4×4 taps with A = −0.75.  All of
it is vectorised over the output points; the input gradient is a
``bincount`` scatter of the same taps and the grid gradient the derivative of
the tap weights times that of the coordinate mapping.
"""

from __future__ import annotations

import numpy as np

from .._dispatch import tensor_aware
from ._validate import as_array, float_dtype

__all__ = ["affine_grid", "grid_sample"]

_MODES = ("bilinear", "nearest", "bicubic")
_PADDING = ("zeros", "border", "reflection")


# --------------------------------------------------------------------------- affine_grid

def _base_grid(size, align_corners, dtype):
    """(*spatial, d+1) homogeneous coordinates ``[x, y, (z,) 1]`` of the output points."""
    spatial = list(size[2:])

    def lin(n):
        if n <= 1:
            return np.zeros(max(n, 0), dtype)
        v = np.linspace(-1, 1, n, dtype=np.float64)
        if not align_corners:
            v = v * (n - 1) / n
        return v.astype(dtype)

    mesh = np.meshgrid(*[lin(n) for n in spatial], indexing="ij")  # same order as spatial
    coords = [mesh[len(spatial) - 1 - i] for i in range(len(spatial))]
    return np.stack(coords + [np.ones(tuple(spatial), dtype)], axis=-1)


def _affine_check(theta, size):
    th = as_array(theta, "theta")
    try:
        size = [int(s) for s in size]
    except TypeError:
        raise TypeError(f"affine_grid: size must be a sequence of ints, got {size!r}") from None
    if len(size) not in (4, 5):
        raise ValueError(f"affine_grid: only 4-D (N, C, H, W) and 5-D (N, C, D, H, W) sizes are supported, "
                         f"got size={size}")
    d = len(size) - 2
    if th.ndim != 3 or th.shape[1:] != (d, d + 1):
        raise ValueError(f"affine_grid: Expected a batch of {d}D affine matrices of shape Nx{d}x{d + 1} for size "
                         f"{size}, got theta of shape {th.shape}")
    if th.shape[0] != size[0]:
        raise ValueError(f"affine_grid: theta has {th.shape[0]} matrices but size asks for a batch of {size[0]}")
    if min(size[2:]) <= 0:
        raise ValueError(f"affine_grid: Expected non-zero, positive output size, got {size}")
    return th, size


@tensor_aware
def affine_grid(theta, size, align_corners=None):
    r"""Sampling grid of a batch of affine maps, as ``torch.nn.functional.affine_grid``.

    Parameters
    ----------
    theta : ndarray, shape (N, 2, 3) or (N, 3, 4)
    size : sequence of ints
        The output's ``(N, C, H, W)`` or ``(N, C, D, H, W)``.
    align_corners : bool, optional (False)

    Shape
    -----
    Output ``(N, H, W, 2)`` or ``(N, D, H, W, 3)``: ``grid[n, ..] = theta[n] @ [x, y, (z,) 1]``.

    Examples
    --------
    >>> import numpy as np
    >>> affine_grid(np.array([[[1.0, 0, 0], [0, 1, 0]]]), (1, 1, 1, 2), align_corners=True)[0, 0]
    array([[-1.,  0.],
           [ 1.,  0.]])
    """
    th, size = _affine_check(theta, size)
    dtype = float_dtype(th)
    base = _base_grid(size, bool(align_corners), dtype)
    d = len(size) - 2
    out = np.einsum("pk,nik->npi", base.reshape(-1, d + 1), th.astype(dtype))
    return out.reshape((size[0],) + tuple(size[2:]) + (d,)).astype(dtype)


def affine_grid_backward(grad_grid, size, align_corners, dtype):
    """Gradient of :func:`affine_grid` for ``theta``."""
    size = [int(s) for s in size]
    d = len(size) - 2
    base = _base_grid(size, bool(align_corners), np.dtype(dtype)).reshape(-1, d + 1)
    g = np.asarray(grad_grid).reshape(size[0], -1, d)
    return np.einsum("npi,pk->nik", g, base).astype(dtype)


# --------------------------------------------------------------------------- grid_sample

def _unnormalize(coord, size, align_corners):
    if align_corners:
        return (coord + 1) / 2 * (size - 1), (size - 1) / 2
    return ((coord + 1) * size - 1) / 2, size / 2


def _clip(coord, size):
    mult = ((coord > 0) & (coord < size - 1)).astype(coord.dtype)
    return np.clip(coord, 0, size - 1), mult


def _reflect(coord, twice_low, twice_high):
    if twice_low == twice_high:
        return np.zeros_like(coord), np.zeros_like(coord)
    lo = twice_low / 2
    span = (twice_high - twice_low) / 2
    c = coord - lo
    mult = np.where(c < 0, -1.0, 1.0).astype(coord.dtype)
    c = np.abs(c)
    extra = np.fmod(c, span)
    flips = np.floor(c / span)
    even = (flips % 2) == 0
    return np.where(even, extra + lo, span - extra + lo).astype(coord.dtype), np.where(even, mult, -mult)


def _pad_coordinate(coord, size, padding_mode, align_corners):
    """The padding rule on unnormalised coordinates, and its derivative."""
    one = np.ones_like(coord)
    if padding_mode == "border":
        return _clip(coord, size)
    if padding_mode == "reflection":
        if align_corners:
            coord, m1 = _reflect(coord, 0, 2 * (size - 1))
        else:
            coord, m1 = _reflect(coord, -1, 2 * size - 1)
        coord, m2 = _clip(coord, size)
        return coord, m1 * m2
    return coord, one


def _check(x, grid, mode, padding_mode, align_corners):
    x = as_array(x, "input")
    grid = as_array(grid, "grid")
    if x.ndim not in (4, 5):
        raise ValueError(f"grid_sample: input must be 4-D (N, C, H, W) or 5-D (N, C, D, H, W), got shape {x.shape}")
    d = x.ndim - 2
    if grid.ndim != x.ndim or grid.shape[-1] != d:
        raise ValueError(f"grid_sample: grid must have shape (N, {', '.join('*' * d)}, {d}) for {x.ndim}-D input, "
                         f"got {grid.shape}")
    if grid.shape[0] != x.shape[0]:
        raise ValueError(f"grid_sample: grid and input must have the same batch size, got {grid.shape[0]} and "
                         f"{x.shape[0]}")
    if mode not in _MODES:
        raise ValueError(f"grid_sample: mode must be one of {_MODES}, got {mode!r}")
    if padding_mode not in _PADDING:
        raise ValueError(f"grid_sample: padding_mode must be one of {_PADDING}, got {padding_mode!r}")
    if mode == "bicubic" and d != 2:
        raise ValueError("grid_sample: bicubic interpolation only supports 4-D input")
    if any(n <= 0 for n in x.shape[2:]):
        raise ValueError(f"grid_sample: input must have non-empty spatial dimensions, got shape {x.shape}")
    dtype = float_dtype(x, grid)
    return x.astype(dtype, copy=False), grid.astype(dtype, copy=False), bool(align_corners)


def _cubic(t, a=-0.75):
    def c1(x):
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def c2(x):
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    def d1(x):
        return (3 * (a + 2) * x - 2 * (a + 3)) * x

    def d2(x):
        return (3 * a * x - 10 * a) * x + 8 * a

    w = [c2(t + 1), c1(t), c1(1 - t), c2(2 - t)]
    dw = [d2(t + 1), d1(t), -d1(1 - t), -d2(2 - t)]
    return w, dw


def _taps(x, grid, mode, padding_mode, align_corners):
    """Every tap of every output point: list of (flat index (N, P), weight (N, P), d weight/d coord per axis)."""
    d = x.ndim - 2
    spatial = x.shape[2:]
    n = x.shape[0]
    g = grid.reshape(n, -1, d)
    coords, mults = [], []  # per spatial axis (0 = first spatial axis)
    for ax in range(d):
        size = spatial[ax]
        c, m0 = _unnormalize(g[..., d - 1 - ax], size, align_corners)
        c = np.where(np.isfinite(c), c, -100.0).astype(x.dtype)
        if mode == "bicubic":
            coords.append(c)
            mults.append(np.full_like(c, m0))
        else:
            c, m = _pad_coordinate(c, size, padding_mode, align_corners)
            coords.append(c)
            mults.append(m * m0)
    strides = [int(np.prod(spatial[ax + 1:])) for ax in range(d)]
    taps = []
    if mode == "nearest":
        lin = np.zeros(coords[0].shape, np.int64)
        ok = np.ones(coords[0].shape, bool)
        for ax in range(d):
            i = np.rint(coords[ax]).astype(np.int64)
            ok &= (i >= 0) & (i < spatial[ax])
            lin += np.clip(i, 0, spatial[ax] - 1) * strides[ax]
        taps.append((lin, ok.astype(x.dtype), [np.zeros_like(coords[0])] * d))
        return taps, mults
    if mode == "bilinear":
        per_axis = []
        for ax in range(d):
            lo = np.floor(coords[ax])
            t = coords[ax] - lo
            lo = lo.astype(np.int64)
            per_axis.append([(lo, 1 - t, -np.ones_like(t)), (lo + 1, t, np.ones_like(t))])
    else:
        per_axis = []
        for ax in range(d):
            lo = np.floor(coords[ax])
            t = coords[ax] - lo
            lo = lo.astype(np.int64)
            w, dw = _cubic(t)
            per_axis.append([(lo - 1 + k, w[k], dw[k]) for k in range(4)])
    for combo in np.ndindex(*[len(p) for p in per_axis]):
        lin = np.zeros(coords[0].shape, np.int64)
        ok = np.ones(coords[0].shape, bool)
        weight = np.ones_like(coords[0])
        parts = []
        for ax, k in enumerate(combo):
            i, w, dw = per_axis[ax][k]
            if mode == "bicubic" and padding_mode != "zeros":
                ic, _ = _pad_coordinate(i.astype(x.dtype), spatial[ax], padding_mode, align_corners)
                i = ic.astype(np.int64)
            ok &= (i >= 0) & (i < spatial[ax])
            lin += np.clip(i, 0, spatial[ax] - 1) * strides[ax]
            weight = weight * w
            parts.append((w, dw))
        dws = []
        for ax in range(d):
            prod = parts[ax][1]
            for e in range(d):
                if e != ax:
                    prod = prod * parts[e][0]
            dws.append(prod * ok)
        taps.append((lin, weight * ok, dws))
    return taps, mults


def _gather(xf, lin):
    n = xf.shape[0]
    return xf[np.arange(n)[:, None, None], np.arange(xf.shape[1])[None, :, None], lin[:, None, :]]


@tensor_aware
def grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=None):
    r"""Sample ``input`` at the points of ``grid``, as ``torch.nn.functional.grid_sample``.

    Parameters
    ----------
    input : ndarray, shape (N, C, H, W) or (N, C, D, H, W)
    grid : ndarray, shape (N, H_out, W_out, 2) or (N, D_out, H_out, W_out, 3)
        ``x, y(, z)`` in ``[-1, 1]`` (the last spatial axis first).
    mode : {'bilinear', 'nearest', 'bicubic'}
        ``bicubic`` on 4-D input only.
    padding_mode : {'zeros', 'border', 'reflection'}
    align_corners : bool, optional (False)

    Shape
    -----
    Output ``(N, C, *grid.shape[1:-1])``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(4.0).reshape(1, 1, 2, 2)
    >>> grid_sample(x, np.zeros((1, 1, 1, 2)), align_corners=True)  # the centre: mean of the four
    array([[[[1.5]]]])
    """
    x, g, align = _check(input, grid, mode, padding_mode, align_corners)
    n, c = x.shape[:2]
    out_spatial = g.shape[1:-1]
    taps, _ = _taps(x, g, mode, padding_mode, align)
    xf = x.reshape(n, c, -1)
    out = np.zeros((n, c, int(np.prod(out_spatial))), x.dtype)
    if xf.size and out.size:
        for lin, w, _ in taps:
            out += _gather(xf, lin) * w[:, None, :]
    return out.reshape((n, c) + tuple(out_spatial))


def grid_sample_backward(grad_output, input, grid, mode="bilinear", padding_mode="zeros", align_corners=None,
                         need_input=True, need_grid=True):
    """Gradients of :func:`grid_sample` for (input, grid)."""
    x, g, align = _check(input, grid, mode, padding_mode, align_corners)
    n, c = x.shape[:2]
    d = x.ndim - 2
    go = np.asarray(grad_output, x.dtype).reshape(n, c, -1)
    taps, mults = _taps(x, g, mode, padding_mode, align)
    xf = x.reshape(n, c, -1)
    s = xf.shape[2]
    grad_input = grad_grid = None
    if need_input:
        acc = np.zeros(n * c * s, np.float64)
        base = (np.arange(n)[:, None, None] * c + np.arange(c)[None, :, None]) * s
        for lin, w, _ in taps:
            flat = (base + lin[:, None, :]).ravel()
            acc += np.bincount(flat, weights=(go * w[:, None, :]).ravel(), minlength=acc.size)
        grad_input = acc.reshape(x.shape).astype(x.dtype)
    if need_grid:
        gg = np.zeros(g.shape[:1] + (go.shape[2], d), x.dtype)
        if mode != "nearest" and xf.size and go.size:
            for lin, _, dws in taps:
                v = (_gather(xf, lin) * go).sum(axis=1)
                for ax in range(d):
                    gg[..., d - 1 - ax] += v * dws[ax]
            for ax in range(d):
                gg[..., d - 1 - ax] *= mults[ax]
        grad_grid = gg.reshape(g.shape)
    return grad_input, grad_grid

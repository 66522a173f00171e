"""What every picture shares: matplotlib on an Agg canvas, the downsampled view, kernel matrices, atomic PNG/GIF.

matplotlib is imported only here and only when a picture is drawn, so
``import convlayers.viz`` works without the ``plot`` extra and the error that
names the extra comes at the first drawing call.
"""

from __future__ import annotations

import io as _io
import os
from fractions import Fraction

import numpy as np

#: Longest side, in pixels, of the view a panel is drawn from. A gallery panel is ~300 px wide at
#: 100 dpi, so 512 keeps every drawn pixel while the drawing cost no longer depends on the photo
#: (12000² image: 85 of 100 s went to matplotlib resampling the full array before).
VIEW_PIXELS = 512

# One diverging map centred at zero for signed values, one grey map for intensities, everywhere.
SIGNED_CMAP = "RdBu_r"
GREY_CMAP = "gray"


class MissingExtraError(ImportError):
    """An optional dependency (an extra) is not installed; the message names the pip command."""


def matplotlib_parts():
    """``(Figure, FigureCanvasAgg)``, or :class:`MissingExtraError` naming the ``plot`` extra."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingExtraError("drawing pictures needs matplotlib: pip install 'convlayers[plot]'") from None
    return Figure, FigureCanvasAgg


def new_figure(width, height, dpi=100):
    Figure, FigureCanvasAgg = matplotlib_parts()
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def downsample(array, max_side=VIEW_PIXELS):
    """Area-average ``array`` (H x W) by one integer factor so its longer side is <= ``max_side``.

    The mean over each f x f block is what an image viewer shows when it shrinks a
    picture; taking every f-th pixel instead would alias edges away. It runs in bands
    of f rows so no full-size temporary is made (a 9000² float64 response is 648 MB).
    Up to f - 1 trailing rows and columns are dropped. Returns float64.

    Examples
    --------
    >>> import numpy as np
    >>> downsample(np.arange(16.0).reshape(4, 4), max_side=2)
    array([[ 2.5,  4.5],
           [10.5, 12.5]])
    """
    a = np.asarray(array)
    if a.ndim != 2:
        raise ValueError(f"downsample: array must be 2-D, got shape {a.shape}")
    h, w = a.shape
    f = max(1, -(-max(h, w) // int(max_side)))
    if f == 1:
        return a.astype(np.float64)
    oh, ow = h // f, w // f
    out = np.empty((oh, ow))
    for i in range(oh):
        band = np.asarray(a[i * f:(i + 1) * f, :ow * f], dtype=np.float64)
        out[i] = band.reshape(f, ow, f).mean(axis=(0, 2))
    return out


def signed_limit(view, percentile=99.5):
    """Half-range of a zero-centred colour scale: the ``percentile`` of |view| (never 0).

    A few extreme pixels would otherwise squeeze every other edge into white.
    """
    v = float(np.percentile(np.abs(view), percentile)) if view.size else 0.0
    if not np.isfinite(v) or v <= 0:
        v = float(np.abs(view).max()) if view.size else 1.0
    return v if v > 0 else 1.0


def number_text(value):
    """A kernel entry as a learner reads it: ``-1``, ``2``, ``1/9``, ``0.06``."""
    v = float(value)
    if v == int(v) and abs(v) < 1e6:
        return str(int(v))
    frac = Fraction(v).limit_denominator(64)
    if abs(float(frac) - v) < 1e-12 and frac.denominator <= 64:
        return f"{frac.numerator}/{frac.denominator}"
    text = f"{v:.2f}" if abs(v) >= 0.01 else f"{v:.3f}"
    return text.replace("0.", ".", 1) if abs(v) < 1 else text


def draw_matrix(ax, matrix, *, title=None, cmap=None, fontsize=None, fmt=number_text, highlight=None,
                colors=None, vlim=None):
    """Draw a small matrix as coloured cells with its numbers written in.

    ``highlight``: (row0, col0, rows, cols) outlined in black; ``colors``: an
    (H, W, 3/4) array of cell colours overriding ``cmap``.
    """
    m = np.asarray(matrix, dtype=np.float64)
    h, w = m.shape
    if colors is not None:
        ax.imshow(colors, interpolation="nearest")
    else:
        lim = vlim if vlim is not None else (float(np.abs(m).max()) or 1.0)
        if cmap is None:
            cmap = SIGNED_CMAP if m.min() < 0 else "Greys"
        lo = -lim if cmap == SIGNED_CMAP else 0.0
        if cmap == "Greys":
            lim = lim * 2.5  # light cells: the numbers are what matters
        ax.imshow(m, cmap=cmap, vmin=lo, vmax=lim, interpolation="nearest")
    if fontsize is None:
        longest = max(len(fmt(v)) for v in m.ravel()) if m.size <= 64 else 4
        fontsize = max(4, min(12, int(60 / max(h, w)), int(90 / (max(h, w) * max(longest, 1)))))
    if max(h, w) <= 8:
        for i in range(h):
            for j in range(w):
                ax.text(j, i, fmt(m[i, j]), ha="center", va="center", fontsize=fontsize, color="black",
                        bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.6))
    ax.set_xticks(np.arange(-0.5, w, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, h, 1), minor=True)
    ax.grid(which="minor", color="0.3", linewidth=0.6)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    if highlight is not None:
        r0, c0, rh, cw = highlight
        from matplotlib.patches import Rectangle
        ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), cw, rh, fill=False, ec="black", lw=3))
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def png_bytes(fig, dpi=None):
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def save_png(fig, path):
    """Write ``fig`` as a PNG at ``path`` atomically (temporary file, then rename)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    from ..io import atomic_write

    data = png_bytes(fig)
    with atomic_write(path) as fh:
        fh.write(data)
    return os.fspath(path)


def save_gif(figures, path, *, ms_per_frame=900, last_frame_ms=2500):
    """Write Agg figures as an animated GIF (looping) at ``path``, atomically."""
    from PIL import Image

    from ..io import atomic_write

    frames = [Image.open(_io.BytesIO(png_bytes(f))).convert("RGB") for f in figures]
    if not frames:
        raise ValueError("save_gif: no frames")
    # One shared palette so colours do not flicker between frames.
    first = frames[0].quantize(colors=255, method=Image.Quantize.MEDIANCUT)
    pal = [f.quantize(palette=first, dither=Image.Dither.NONE) for f in frames]
    durations = [ms_per_frame] * (len(pal) - 1) + [last_frame_ms]
    buf = _io.BytesIO()
    pal[0].save(buf, format="GIF", save_all=True, append_images=pal[1:], duration=durations, loop=0)
    with atomic_write(path) as fh:
        fh.write(buf.getvalue())
    return os.fspath(path)

"""Figures: the filter gallery (the original image beside each filter's response).

matplotlib is an optional extra (``pip install convlayers[plot]``) and is
imported only when a figure is drawn. Figures are drawn on the Agg canvas
directly, without pyplot, so no display is needed and no global backend is
changed.

Examples
--------
>>> import numpy as np, tempfile, os
>>> from convlayers.viz import save_gallery
>>> img = np.random.default_rng(0).random((16, 16))
>>> p = os.path.join(tempfile.mkdtemp(), "g.png")
>>> save_gallery(p, img, {"copy": img}); os.path.getsize(p) > 0
True
"""

from __future__ import annotations

import math
import os

import numpy as np

__all__ = ["gallery_figure", "save_gallery"]


def _matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("drawing figures needs matplotlib: pip install convlayers[plot]") from None
    return Figure, FigureCanvasAgg


def gallery_figure(image, responses, *, title_original="original", ncols=None, cmap="gray"):
    """A grid: the original first, then each response with its name as the title.

    Parameters
    ----------
    image : array_like
        H x W grayscale or H x W x 3 colour (uint8 or float) original.
    responses : dict of str to array_like
        Filter name -> H x W (or H x W x C) response; each is shown min-max scaled.
    ncols : int, optional
        Columns of the grid; by default up to 4.

    Returns
    -------
    matplotlib.figure.Figure
        Attached to an Agg canvas.
    """
    from .io import normalise

    if not isinstance(responses, dict) or not responses:
        raise ValueError("gallery_figure: responses must be a non-empty dict of name -> array")
    Figure, FigureCanvasAgg = _matplotlib()
    panels = [(title_original, np.asarray(image))] + [(str(k), np.asarray(v))
                                                     for k, v in responses.items()]
    n = len(panels)
    if ncols is None:
        ncols = min(4, n)
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"gallery_figure: ncols must be a positive integer, got {ncols!r}")
    nrows = math.ceil(n / ncols)
    h, w = panels[0][1].shape[:2]
    aspect = h / w if w else 1.0
    fig = Figure(figsize=(3.2 * ncols, 3.2 * aspect * nrows + 0.4 * nrows), dpi=100)
    FigureCanvasAgg(fig)
    for i, (name, arr) in enumerate(panels):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        if arr.ndim == 3:
            shown = arr if (i == 0 and arr.dtype == np.uint8) else normalise(arr)
            ax.imshow(shown)
        else:
            ax.imshow(normalise(arr), cmap=cmap, vmin=0.0, vmax=1.0)
        ax.set_title(name)
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def save_gallery(path, image, responses, **kwargs) -> None:
    """Draw :func:`gallery_figure` and write it as a PNG, atomically.

    The figure goes to a temporary file in the target directory and is renamed
    to ``path`` only once fully written.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"save_gallery: path must be a str or os.PathLike, got {type(path).__name__}")
    fig = gallery_figure(image, responses, **kwargs)
    from .io import atomic_write

    with atomic_write(path) as fh:
        fig.savefig(fh, format="png")

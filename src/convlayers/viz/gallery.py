"""The filter gallery: the input, then each response beside the kernel that made it.

Signed responses (edge filters) use one diverging map centred at zero (white = 0,
red = positive, blue = negative) with a colour bar; blur-like responses and the
input use a grey map. Every panel is drawn from a view area-averaged to at most
:data:`~convlayers.viz._common.VIEW_PIXELS` on its long side, so drawing costs the
same for a 450 px and a 12000 px photo.

Examples
--------
>>> import numpy as np, tempfile, os
>>> from convlayers.viz import save_gallery
>>> img = np.random.default_rng(0).random((16, 16))
>>> p = os.path.join(tempfile.mkdtemp(), "g.png")
>>> save_gallery(p, img, {"blur": img}) == p and os.path.getsize(p) > 0
True
"""

from __future__ import annotations

import numpy as np

from ._common import GREY_CMAP, SIGNED_CMAP, VIEW_PIXELS, downsample, draw_matrix, new_figure, save_png, signed_limit

__all__ = ["gallery_figure", "save_gallery", "CAPTIONS", "grid_rows"]

#: One line per seed filter on what its response shows (signs as ``convolve2d`` gives them: the kernel
#: is flipped, so a +1 on the kernel's right weighs the pixel to the left).
CAPTIONS = {
    "vertical": "vertical edges\nred: brighter on the right",
    "horizontal": "horizontal edges\nred: brighter below",
    "sobel_x": "vertical edges, centre row x2\nred: brighter on the left",
    "sobel_y": "horizontal edges, centre x2\nred: brighter above",
    "blur": "3x3 mean: a smoothed copy\n(fine detail fades)",
    "laplacian": "spots and thin lines\nin every direction",
}


def grid_rows(n, ncols=None):
    """Cells per row for ``n`` panels: rows are full except maybe the last, which is then centred.

    Examples
    --------
    >>> grid_rows(7), grid_rows(6), grid_rows(2)
    ([4, 3], [3, 3], [2])
    """
    if ncols is None:
        if n <= 4:
            ncols = n
        else:  # the fuller last row wins (7 -> 4 + 3, 6 -> 3 + 3, 5 -> 3 + 2)
            ncols = max((4, 3), key=lambda c: (n % c == 0, n % c, c))
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be a positive integer, got {ncols!r}")
    rows = [ncols] * (n // ncols)
    if n % ncols:
        rows.append(n % ncols)
    return rows


def _view(arr):
    a = np.asarray(arr)
    if a.ndim == 3:
        return np.stack([downsample(a[:, :, c]) for c in range(a.shape[2])], axis=-1)
    return downsample(a)


def gallery_figure(image, responses, *, kernels=None, image_name="the image", boundary="symm", mode="same",
                   note=None, ncols=None, title_original="input", image_size=None):
    """Draw the gallery: the input first, then every response with its kernel and colour bar.

    Parameters
    ----------
    image : array_like
        H x W grayscale (or H x W x 3 colour) input, full size or already downsampled.
    responses : dict of str to array_like
        Filter name -> H x W response (full size is fine: each is downsampled to the
        figure's pixels before drawing). An H x W x C response is drawn as its channel mean.
    kernels : dict of str to array_like, optional
        The kernel drawn beside each response; by default looked up in
        :data:`convlayers.filters.FILTERS` (a name not found there gets no kernel panel).
    image_name, boundary, mode : str
        Named in the overall title.
    image_size : (int, int), optional
        (H, W) of the original photo when ``image`` is already a downsampled view.
    note : str, optional
        A line under the title (e.g. that a colour photo was converted to grey).
    ncols : int, optional
        Cells per row; by default 4 or 3, whichever leaves the fuller last row.

    Returns
    -------
    matplotlib.figure.Figure
        On an Agg canvas (no display needed). The axes of panel ``i`` carry
        ``gid = "panel<i>"``, kernel matrices ``"kernel<i>"``.
    """
    if not isinstance(responses, dict) or not responses:
        raise ValueError("gallery_figure: responses must be a non-empty dict of name -> array")
    from ..filters import FILTERS

    img = np.asarray(image)
    if img.ndim not in (2, 3) or img.size == 0:
        raise ValueError(f"gallery_figure: image must be H x W or H x W x C, got shape {img.shape}")
    full_h, full_w = img.shape[:2] if image_size is None else tuple(int(v) for v in image_size)
    kernels = {} if kernels is None else dict(kernels)
    panels = []
    for name, resp in responses.items():
        r = np.asarray(resp)
        if r.ndim not in (2, 3) or r.size == 0:
            raise ValueError(f"gallery_figure: response {name!r} must be H x W (or H x W x C), got {r.shape}")
        view = _view(r)
        if view.ndim == 3:
            view = view.mean(axis=2)
        k = kernels.get(name, FILTERS.get(name))
        panels.append((str(name), view, None if k is None else np.asarray(k, dtype=np.float64)))
    iview = _view(img)
    vh, vw = iview.shape[:2]
    aspect = vh / vw

    notes = [note] if note else []
    factor = -(-max(full_h, full_w) // VIEW_PIXELS)
    if factor > 1:
        notes.append(f"Drawn at 1/{factor} scale: each pixel shown is the mean of a {factor}x{factor} block, "
                     f"so the colour bars read lower than the full-size response.")
    rows = grid_rows(1 + len(panels), ncols)
    ncol = rows[0]
    img_w = 2.6
    cell_h = max(img_w * aspect, 1.2) + 0.95
    head = 0.95 + 0.22 * len(notes)
    fig = new_figure(ncol * 4.2, len(rows) * cell_h + head + 0.15)
    inch = 1 / fig.get_figheight()
    gs = fig.add_gridspec(len(rows), 2 * ncol, left=0.02, right=0.96, bottom=0.02, top=1 - head * inch,
                          hspace=0.38, wspace=0.3)
    grey_hi = 255.0 if img.dtype == np.uint8 else float(np.nanmax(iview))
    title = (f"Convolution of {image_name} ({full_h} x {full_w} px, height x width) with each kernel: "
             f"mode='{mode}', boundary='{boundary}'")
    fig.suptitle(title, fontsize=11, y=1 - 0.2 * inch, va="top")
    legend = ("Edge responses: red = positive, blue = negative, white = 0 (colour bars clipped at the "
              "99.5th percentile of |response|); blur and input: grey = intensity.")
    fig.text(0.5, 1 - 0.48 * inch, legend, ha="center", va="top", fontsize=9)
    for j, line in enumerate(notes):
        fig.text(0.5, 1 - (0.72 + 0.22 * j) * inch, line, ha="center", va="top", fontsize=9, color="darkred")

    cells = [(title_original, iview, None)] + panels
    i = 0
    for r, count in enumerate(rows):
        offset = ncol - count  # half a cell per missing cell: the short last row is centred
        for c in range(count):
            name, view, k = cells[i]
            sub = gs[r, offset + 2 * c:offset + 2 * c + 2].subgridspec(
                1, 3, width_ratios=[1.0, img_w, 0.12], wspace=0.12)
            kax = fig.add_subplot(sub[0, 0])
            ax = fig.add_subplot(sub[0, 1])
            cax = fig.add_subplot(sub[0, 2])
            ax.set_gid(f"panel{i}")
            cax.set_gid(f"colorbar{i}")
            if i == 0:
                kax.set_axis_off()
                kax.text(0.5, 0.5, f"input\n{full_h} x {full_w} px\n(height x width)\n\ngrey map:\n0 = black\n"
                         f"{grey_hi:g} = white", ha="center", va="center", fontsize=8,
                         transform=kax.transAxes)
                if view.ndim == 3:
                    shown = view / 255.0 if img.dtype == np.uint8 else (view - view.min()) / (np.ptp(view) or 1)
                    im = ax.imshow(np.clip(shown, 0, 1))
                else:
                    im = ax.imshow(view, cmap=GREY_CMAP, vmin=0.0, vmax=grey_hi or 1.0)
                ax.set_title(name, fontsize=10)
            else:
                if k is not None:
                    kax.set_gid(f"kernel{i}")
                    draw_matrix(kax, k, title=f"kernel {k.shape[0]}x{k.shape[1]}")
                    kax.set_aspect("equal")
                else:
                    kax.set_axis_off()
                    kax.text(0.5, 0.5, "(kernel\nnot given)", ha="center", va="center", fontsize=8,
                             transform=kax.transAxes)
                signed = (k is not None and (k < 0).any()) or (k is None and view.min() < 0)
                if signed:
                    lim = signed_limit(view)
                    im = ax.imshow(view, cmap=SIGNED_CMAP, vmin=-lim, vmax=lim)
                else:
                    im = ax.imshow(view, cmap=GREY_CMAP, vmin=min(0.0, float(view.min())),
                                   vmax=max(float(view.max()), grey_hi) or 1.0)
                ax.set_title(name, fontsize=10)
                caption = CAPTIONS.get(name, "")
                if caption:
                    ax.text(0.5, -0.03, caption, transform=ax.transAxes, ha="center", va="top", fontsize=8)
            ax.set_axis_off()
            cb = fig.colorbar(im, cax=cax, extend="both" if i and signed else "neither")
            cb.ax.tick_params(labelsize=7)
            i += 1
    return fig


def save_gallery(path, image, responses, **kwargs) -> str:
    """Draw :func:`gallery_figure` and write it as a PNG atomically (temporary file, then rename)."""
    return save_png(gallery_figure(image, responses, **kwargs), path)

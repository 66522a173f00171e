"""Windows that slide: convolution step by step, pooling windows, and the output-size formula.

Each ``*_figure`` returns a matplotlib Figure; each ``explain_*`` writes its
pictures into a directory and returns ``(paths, text)``, where the text says the
same thing in words and numbers (``convlayers explain`` prints it).

Examples
--------
>>> import tempfile
>>> from convlayers.viz.windows import conv_steps
>>> steps = conv_steps()
>>> len(steps), steps[0]["value"], steps[0]["products"][:3]
(4, -6.0, [1.0, 0.0, -3.0])
"""

from __future__ import annotations

import os

import numpy as np

from ..reference import POOL_IMAGE, SEED_IMAGE, SEED_KERNELS, avg_pool2d, max_pool2d
from ..sizes import conv_output_size
from ._common import SIGNED_CMAP, draw_matrix, new_figure, number_text, save_gif, save_png

__all__ = ["conv_steps", "conv_step_figure", "conv_overview_figure", "explain_conv", "pool_figure",
           "explain_pool", "SHAPE_CASES", "shapes_figure", "explain_shapes"]


def _check_int(value, name, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def conv_steps(image=None, kernel=None, padding=0, stride=1):
    """Every window position of a 2-D cross-correlation, as the numbers a learner writes down.

    Returns a list of dicts, one per output cell in row-major order: ``out`` (row, col),
    ``top``/``left`` (window origin in the padded image), ``window`` and ``products``
    (the k·k products, row by row) and ``value`` (their sum). The values agree with
    :func:`convlayers.reference.convolve2d`.
    """
    image = SEED_IMAGE if image is None else image
    kernel = SEED_KERNELS["vertical"] if kernel is None else kernel
    x = np.asarray(image, dtype=np.float64)
    k = np.asarray(kernel, dtype=np.float64)
    padding = _check_int(padding, "padding", 0)
    stride = _check_int(stride, "stride", 1)
    xp = np.pad(x, padding)
    oh = conv_output_size(x.shape[0], k.shape[0], stride, padding)
    ow = conv_output_size(x.shape[1], k.shape[1], stride, padding)
    steps = []
    for i in range(oh):
        for j in range(ow):
            top, left = i * stride, j * stride
            window = xp[top:top + k.shape[0], left:left + k.shape[1]]
            products = (window * k).ravel()
            steps.append(dict(out=(i, j), top=top, left=left, window=window.copy(),
                              products=[float(v) for v in products], value=float(products.sum())))
    return steps


def _product_text(step, kernel):
    k = np.asarray(kernel, dtype=np.float64).ravel()
    w = step["window"].ravel()
    def num(v):
        t = number_text(v)
        return f"({t})" if v < 0 else t

    terms = [f"{num(a)}*{num(b)}" for a, b in zip(w, k)]
    return " + ".join(terms) + f" = {number_text(step['value'])}"


def _draw_conv_state(fig, spec, x, kernel, steps, n, padding, stride, fontsize=None, title=True):
    """Input (padded) with window n highlighted, the kernel, the output filled up to step n."""
    k = np.asarray(kernel, dtype=np.float64)
    xp = np.pad(np.asarray(x, dtype=np.float64), padding)
    step = steps[n]
    oh = max(s["out"][0] for s in steps) + 1
    ow = max(s["out"][1] for s in steps) + 1
    sub = spec.subgridspec(2, 3, width_ratios=[xp.shape[1], k.shape[1] + 0.6, ow + 0.6],
                           height_ratios=[1, 0.28], wspace=0.25, hspace=0.05)
    ax_in, ax_k, ax_out = (fig.add_subplot(sub[0, c]) for c in range(3))
    # padded border cells in grey, the image in light blue, the window outlined
    colors = np.ones(xp.shape + (3,)) * np.array([0.86, 0.92, 1.0])
    if padding:
        colors[:padding] = colors[-padding:] = colors[:, :padding] = colors[:, -padding:] = 0.82
    draw_matrix(ax_in, xp, colors=colors, fontsize=fontsize,
                highlight=(step["top"], step["left"], k.shape[0], k.shape[1]))
    if stride > 1:  # every origin the window could take at stride 1; the skipped ones crossed out
        visited = {(s["top"], s["left"]) for s in steps}
        for r in range(xp.shape[0] - k.shape[0] + 1):
            for c in range(xp.shape[1] - k.shape[1] + 1):
                if (r, c) not in visited:
                    ax_in.plot(c - 0.32, r - 0.32, marker="x", color="crimson", ms=5, mew=1.5)
                else:
                    ax_in.plot(c - 0.32, r - 0.32, marker="o", color="black", ms=3)
    draw_matrix(ax_k, k, fontsize=fontsize)
    out = np.full((oh, ow), np.nan)
    for s in steps[:n + 1]:
        out[s["out"]] = s["value"]
    lim = max(abs(s["value"]) for s in steps) or 1.0
    cell_colors = np.ones((oh, ow, 4))
    from matplotlib import colormaps
    cmap = colormaps[SIGNED_CMAP]
    for (i, j), v in np.ndenumerate(out):
        if not np.isnan(v):
            cell_colors[i, j] = cmap(0.5 + 0.5 * v / lim)
    draw_matrix(ax_out, out, colors=cell_colors, fontsize=fontsize,  # cells not reached yet stay blank
                fmt=lambda v: "" if np.isnan(v) else number_text(v),
                highlight=(step["out"][0], step["out"][1], 1, 1))
    if title:
        pad_txt = f", padding {padding}" if padding else ""
        ax_in.set_title(f"input {x.shape[0]}x{x.shape[1]}{pad_txt}", fontsize=9)
        ax_k.set_title("kernel", fontsize=9)
        ax_out.set_title(f"output {oh}x{ow}", fontsize=9)
    tax = fig.add_subplot(sub[1, :])
    tax.set_axis_off()
    tax.text(0.5, 0.5, f"out[{step['out'][0]}, {step['out'][1]}] = " + _product_text(step, k), ha="center",
             va="center", fontsize=9 if fontsize is None else 7.5)
    return ax_in, ax_k, ax_out


def conv_step_figure(n=0, image=None, kernel=None, padding=0, stride=1):
    """One frame: the window at step ``n`` (0-based), the nine products and their sum written into the output."""
    image = SEED_IMAGE if image is None else image
    kernel = SEED_KERNELS["vertical"] if kernel is None else kernel
    steps = conv_steps(image, kernel, padding, stride)
    if not 0 <= n < len(steps):
        raise ValueError(f"n must be in [0, {len(steps)}), got {n}")
    fig = new_figure(9, 4.2)
    spec = fig.add_gridspec(1, 1, left=0.02, right=0.98, top=0.8 if stride > 1 else 0.86, bottom=0.02)[0, 0]
    _draw_conv_state(fig, spec, image, kernel, steps, n, padding, stride)
    fig.suptitle(f"Convolution, step {n + 1} of {len(steps)}: multiply the window by the kernel, add up "
                 f"(stride {stride}, padding {padding})"
                 + ("\ndot = a window corner used, red x = one the stride skips" if stride > 1 else ""),
                 fontsize=11)
    return fig


def conv_overview_figure(image=None, kernel=None, padding=0, stride=1):
    """All steps as small multiples, row-major: the whole slide on one page."""
    image = SEED_IMAGE if image is None else image
    kernel = SEED_KERNELS["vertical"] if kernel is None else kernel
    steps = conv_steps(image, kernel, padding, stride)
    ncol = 2 if len(steps) <= 4 else (3 if len(steps) <= 9 else 4)
    nrow = -(-len(steps) // ncol)
    fig = new_figure(ncol * 5.2, nrow * 2.9 + 0.8)
    gs = fig.add_gridspec(nrow, ncol, left=0.01, right=0.99, top=1 - 0.75 / fig.get_figheight(), bottom=0.01,
                          wspace=0.08, hspace=0.25)
    for n in range(len(steps)):
        _draw_conv_state(fig, gs[n // ncol, n % ncol], image, kernel, steps, n, padding, stride, fontsize=7,
                         title=n == 0)
    extra = f", padding {padding}" if padding else ""
    fig.suptitle(f"Sliding a 3x3 kernel over the seed's 4x4 image (stride {stride}{extra}): "
                 f"{len(steps)} window positions, one output number each.\n"
                 + ("Grey = zero padding; outlined" if padding else "Outlined")
                 + " = the window; red/blue = positive/negative output"
                 + ("; dot = a window corner used, red x = one the stride skips" if stride > 1 else ""),
                 fontsize=11)
    return fig


def explain_conv(out_dir, padding=0, stride=1):
    """``conv.png`` (every step), ``conv.gif`` (the slide, animated) and the same as text."""
    steps = conv_steps(SEED_IMAGE, SEED_KERNELS["vertical"], padding, stride)
    tag = "" if (padding, stride) == (0, 1) else f"_p{padding}_s{stride}"
    png = save_png(conv_overview_figure(padding=padding, stride=stride), os.path.join(out_dir, f"conv{tag}.png"))
    frames = [conv_step_figure(n, padding=padding, stride=stride) for n in range(len(steps))]
    gif = save_gif(frames, os.path.join(out_dir, f"conv{tag}.gif"))
    oh = conv_output_size(4, 3, stride, padding)
    lines = [f"Convolution (cross-correlation, as deep learning uses the word) of the seed's 4x4 image 1..16 "
             f"with the vertical-edge kernel [[1, 0, -1]] * 3, padding {padding}, stride {stride}:",
             f"output size = floor((4 + 2*{padding} - 3) / {stride}) + 1 = {oh}, so {len(steps)} window "
             f"positions."]
    for n, s in enumerate(steps):
        lines.append(f"  step {n + 1}: window at row {s['top']}, col {s['left']} of the "
                     f"{'padded ' if padding else ''}image: {_product_text(s, SEED_KERNELS['vertical'])}"
                     f" -> out[{s['out'][0]}, {s['out'][1]}]")
    lines.append("Every window sees its right column larger than its left, so the edge filter gives the same "
                 "negative number everywhere inside the image." if (padding, stride) == (0, 1) else
                 "Padding adds zeros around the border (the windows there see fewer pixels); a stride above 1 "
                 "skips window positions (crossed out in the picture).")
    return [png, gif], "\n".join(lines)


# ----------------------------------------------------------------------------- pooling

_WINDOW_COLORS = np.array([[0.99, 0.85, 0.70], [0.80, 0.92, 0.75], [0.78, 0.85, 0.98], [0.93, 0.80, 0.95]])


def pool_figure(image=None, pool_size=2):
    """Max and average pooling of the seed's 4x4: each window in its own colour, its result beside it."""
    x = np.asarray(POOL_IMAGE if image is None else image, dtype=np.float64)
    p = _check_int(pool_size, "pool_size", 1)
    results = {"max": max_pool2d(x, p), "average": avg_pool2d(x, p)}
    oh, ow = results["max"].shape
    colors = np.ones(x.shape + (3,))
    out_colors = np.ones((oh, ow, 3))
    for i in range(oh):
        for j in range(ow):
            c = _WINDOW_COLORS[(i * ow + j) % len(_WINDOW_COLORS)]
            colors[i * p:(i + 1) * p, j * p:(j + 1) * p] = c
            out_colors[i, j] = c
    fig = new_figure(9, 6.4)
    gs = fig.add_gridspec(2, 3, width_ratios=[x.shape[1], 1.4, ow], left=0.03, right=0.97, top=0.88,
                          bottom=0.03, hspace=0.3)
    for r, (name, out) in enumerate(results.items()):
        ax_in = fig.add_subplot(gs[r, 0])
        draw_matrix(ax_in, x, colors=colors)
        ax_in.set_gid(f"pool-{name}-input")
        if name == "max":  # ring the winner of each window
            for i in range(oh):
                for j in range(ow):
                    win = x[i * p:(i + 1) * p, j * p:(j + 1) * p]
                    a, b = np.unravel_index(np.argmax(win), win.shape)
                    ax_in.plot(j * p + b, i * p + a, marker="o", ms=24, mfc="none", mec="black", mew=2)
        ax_in.set_title(f"input {x.shape[0]}x{x.shape[1]}, {p}x{p} windows", fontsize=10)
        arrow = fig.add_subplot(gs[r, 1])
        arrow.set_axis_off()
        arrow.text(0.5, 0.5, f"{name}\n-->", ha="center", va="center", fontsize=12, transform=arrow.transAxes)
        ax_out = fig.add_subplot(gs[r, 2])
        draw_matrix(ax_out, out, colors=out_colors, fmt=lambda v: f"{v:g}")
        ax_out.set_gid(f"pool-{name}-output")
        ax_out.set_title(f"{name} pool: {oh}x{ow}", fontsize=10)
    fig.suptitle(f"Pooling: each {p}x{p} window (one colour each) becomes one number.\nMax keeps the largest "
                 f"(ringed); average takes the mean. Stride {p}: the windows do not overlap.", fontsize=11)
    return fig


def explain_pool(out_dir):
    import contextlib
    import io

    png = save_png(pool_figure(), os.path.join(out_dir, "pool.png"))
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        mx = max_pool2d(POOL_IMAGE, 2, verbose=True)
        av = avg_pool2d(POOL_IMAGE, 2, verbose=True)
    text = ("Pooling the seed's 4x4 image with 2x2 windows, stride 2 (the reference loops' trace):\n"
            + buf.getvalue() + f"max pool:\n{mx}\naverage pool:\n{av}\n"
            "Pooling has no weights: it halves each side and keeps the strongest (max) or typical (average) "
            "response of each window.")
    return [png], text


# ----------------------------------------------------------------------------- shapes

#: The seed's output-size cases: (label, n, k, stride, padding).
SHAPE_CASES = (
    ("no padding", 5, 3, 1, 0),
    ("no padding", 7, 3, 1, 0),
    ("padding 1 keeps the size", 5, 3, 1, 1),
    ("stride 2", 8, 3, 2, 0),
    ("a 32-wide map, k3 p1", 32, 3, 1, 1),
)


def shapes_figure(cases=SHAPE_CASES):
    """The formula ``out = floor((n + 2p - k) / s) + 1`` drawn for each case as a strip of cells.

    Each strip is the padded input row (padding hatched grey); the brackets under it
    are the window positions, one per output cell.
    """
    from matplotlib.patches import Rectangle

    fig = new_figure(12, 1.55 * len(cases) + 1.0)
    gs = fig.add_gridspec(len(cases), 1, left=0.02, right=0.98, top=1 - 0.9 / fig.get_figheight(),
                          bottom=0.02, hspace=0.55)
    for r, (label, n, k, s, p) in enumerate(cases):
        out = conv_output_size(n, k, s, p)
        ax = fig.add_subplot(gs[r, 0])
        ax.set_gid(f"shape{r}")
        total = n + 2 * p
        for c in range(total):
            pad = c < p or c >= p + n
            ax.add_patch(Rectangle((c, 0), 1, 1, fc="0.85" if pad else "#dbe9ff", ec="0.3", lw=0.6,
                                   hatch="//" if pad else None))
        for o in range(out):
            x0 = o * s
            y = -0.35 - 0.28 * (o % 3)
            ax.plot([x0 + 0.08, x0 + k - 0.08], [y, y], color="crimson", lw=2)
            ax.plot([x0 + 0.08] * 2, [y, y + 0.15], color="crimson", lw=2)
            ax.plot([x0 + k - 0.08] * 2, [y, y + 0.15], color="crimson", lw=2)
        ax.set_xlim(-0.5, max(total, 12) + 0.5)
        ax.set_ylim(-1.3, 1.1)
        ax.set_aspect("auto")
        ax.set_axis_off()
        ax.set_title(f"{label}: n={n}, k={k}, s={s}, p={p}:  floor(({n} + 2*{p} - {k}) / {s}) + 1 = {out}"
                     f"   ({out} window positions, red)", fontsize=10, loc="left")
    fig.suptitle("Output size of a convolution: out = floor((n + 2p - k) / s) + 1\n"
                 "blue = input cells, hatched grey = zero padding, each red bracket = one window = one output",
                 fontsize=11)
    return fig


def explain_shapes(out_dir):
    png = save_png(shapes_figure(), os.path.join(out_dir, "shapes.png"))
    lines = ["Output size: out = floor((n + 2p - k) / s) + 1 (n input, k kernel, s stride, p padding):"]
    for label, n, k, s, p in SHAPE_CASES:
        lines.append(f"  {label}: n={n}, k={k}, s={s}, p={p} -> floor(({n} + {2 * p} - {k}) / {s}) + 1 = "
                     f"{conv_output_size(n, k, s, p)}")
    lines.append("A 3x3 kernel without padding loses one pixel on each side; padding (k - 1) / 2 keeps the size; "
                 "stride s divides it by about s.")
    return [png], "\n".join(lines)

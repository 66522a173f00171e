"""What convolutions cost and what they see: efficient convolutions, receptive fields.

Numbers come from :mod:`convlayers.analysis` (real layers, counted without running
them), so the pictures and ``convlayers summary``/``compare`` always agree.

Examples
--------
>>> from convlayers.viz.costs import receptive_field_rows
>>> [(name, rf) for name, rf, _ in receptive_field_rows()][:2]
[('0.0', 3), ('0.1', 3)]
"""

from __future__ import annotations

import os

import numpy as np

from ._common import new_figure, save_png

__all__ = ["efficient_figure", "explain_efficient", "receptive_field_rows", "receptive_field_figure",
           "explain_receptive_field"]

_KIND_COLORS = {"standard": "#4c72b0", "pointwise": "#55a868", "depthwise": "#c44e52", "separable": "#8172b2",
                "grouped": "#ccb974"}


def _connectivity(row):
    """(out x in) matrix of taps per connection: k*k where output channel o reads input channel i."""
    cin, cout, k, g = row.in_channels, row.out_channels, row.kernel_size, row.groups
    if row.kind == "separable":  # depthwise (cin x cin diagonal, k*k) then pointwise (cout x cin, 1)
        dw = np.eye(cin) * k * k
        pw = np.ones((cout, cin))
        return [("depthwise", dw), ("pointwise", pw)]
    if row.kind == "depthwise":
        return [("", np.eye(cin) * k * k)]
    m = np.zeros((cout, cin))
    go, gi = cout // g, cin // g
    for j in range(g):
        m[j * go:(j + 1) * go, j * gi:(j + 1) * gi] = k * k
    return [("", m)]


def efficient_figure(table=None):
    """Weights drawn as blocks (output x input channels, shaded by taps) and params/MACs as bars."""
    from ..analysis import compare_convs

    table = compare_convs() if table is None else table
    rows = table.rows
    fig = new_figure(13, 7.2)
    gs = fig.add_gridspec(2, len(rows) + 1, height_ratios=[1.25, 1], left=0.08, right=0.98, top=0.86,
                          bottom=0.07, hspace=0.45, wspace=0.35)
    for c, row in enumerate(rows):
        parts = _connectivity(row)
        sub = gs[0, c].subgridspec(1, len(parts), wspace=0.15)
        for p, (label, m) in enumerate(parts):
            ax = fig.add_subplot(sub[0, p])
            ax.set_gid(f"weights-{row.kind}{'-' + label if label else ''}")
            shade = np.where(m == 0, 0.0, np.where(m == 1, 0.45, 1.0))  # 1x1 links mid-grey, k x k black
            ax.imshow(shade, cmap="Greys", vmin=0, vmax=1, interpolation="nearest", aspect="equal")
            ax.set_xticks([0, m.shape[1] - 1])
            ax.set_yticks([0, m.shape[0] - 1])
            ax.tick_params(labelsize=7)
            if p == 0:
                ax.set_ylabel("output channel", fontsize=8)
            ax.set_xlabel("input ch." + (f"\n({label})" if label else ""), fontsize=8)
        title = (f"{row.kind}\n{row.in_channels}->{row.out_channels}, "
                 f"{row.kernel_size}x{row.kernel_size}" + (f", groups={row.groups}" if row.kind == "grouped" else ""))
        fig.text((gs[0, c].get_position(fig).x0 + gs[0, c].get_position(fig).x1) / 2,
                 gs[0, c].get_position(fig).y1 + 0.015, title, ha="center", va="bottom", fontsize=9)
    key = fig.add_subplot(gs[0, len(rows)])
    key.set_axis_off()
    key.text(0.0, 0.5, "Each block: one weight\nmatrix, output x input\nchannels. Black = a\n3x3 kernel (9 weights)"
             "\nlinks them, grey = a\n1x1 (1 weight), white\n= no link.", fontsize=8, va="center")
    names = [r.kind for r in rows]
    colors = [_KIND_COLORS.get(n, "0.5") for n in names]
    for c, (metric, values, std) in enumerate((("parameters", [r.params for r in rows], [r.standard_params for r in rows]),
                                               ("multiply-adds (MACs)", [r.macs for r in rows],
                                                [r.standard_macs for r in rows]))):
        ax = fig.add_subplot(gs[1, c * 3:(c * 3) + 3] if len(rows) + 1 >= 6 else gs[1, c])
        ax.set_gid(f"bars-{'params' if c == 0 else 'macs'}")
        y = np.arange(len(rows))
        ax.barh(y, values, color=colors)
        ax.set_yticks(y, names, fontsize=9)
        ax.invert_yaxis()
        top = max(values)
        for yi, v, s, r in zip(y, values, std, rows):
            ax.text(v + top * 0.01, yi, f"{v:,}  ({r.saving:.1f}x cheaper than a standard {r.in_channels}->"
                    f"{r.out_channels})" if r.kind != "standard" else f"{v:,}", va="center", fontsize=8)
        ax.set_xlim(0, top * 1.9)
        ax.set_title(f"{metric} on a {table.height}x{table.width} map", fontsize=10)
        if c == 1:
            from matplotlib.ticker import FuncFormatter
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1e6:g} M"))
        ax.tick_params(axis="x", labelsize=8)
    fig.suptitle("Efficient convolutions (the seed's examples): fewer links between channels, fewer weights and "
                 "multiply-adds.\ndepthwise-separable = depthwise 3x3 + pointwise 1x1: cost 1/N + 1/k^2 of a "
                 "standard conv", fontsize=11)
    return fig


def explain_efficient(out_dir):
    from ..analysis import compare_convs

    table = compare_convs()
    png = save_png(efficient_figure(table), os.path.join(out_dir, "efficient.png"))
    text = (str(table) + "\nA standard k x k conv links every input channel to every output channel with k*k "
            "weights. A 1x1 (pointwise) conv keeps the links but drops the k*k; a depthwise conv keeps the k*k "
            "but links each channel only to itself; separable = both, in a row; grouped splits the channels "
            "into independent groups.")
    return [png], text


# ----------------------------------------------------------------------------- receptive fields

def receptive_field_rows(model=None, input_shape=(1, 1, 8, 8)):
    """``[(layer name, receptive field (height), output size (height))]`` per layer, from :func:`analysis.summary`."""
    from ..analysis import summary

    if model is None:
        from ..models import digits_cnn
        model = digits_cnn("standard", width=8)
    s = summary(model, input_shape)
    out = []
    for r in s.rows:
        if len(r.output_shape) == 4:
            out.append((r.name, int(r.receptive_field[0]), int(r.output_shape[2])))
    return out


def receptive_field_figure(model=None, input_shape=None, model_name=None):
    """Left: two stacked 3x3 convolutions see a 5x5 patch. Right: a model's receptive field, layer by layer."""
    from matplotlib.patches import Rectangle

    from ..models import mobilenet_v2

    if model is None:
        model, input_shape, model_name = mobilenet_v2(), (1, 3, 224, 224), "mobilenet_v2 at 224x224"
    rows = receptive_field_rows(model, input_shape)
    fig = new_figure(13, 5.6)
    gs = fig.add_gridspec(1, 2, width_ratios=[1, 1.5], left=0.03, right=0.98, top=0.84, bottom=0.14, wspace=0.15)
    ax = fig.add_subplot(gs[0, 0])
    ax.set_gid("stacked-3x3")
    # three layers side by side: input 5x5 -> conv1 output 3x3 -> conv2 output 1x1
    layers = [(5, 0.0, "input: 5x5 seen"), (3, 7.0, "after conv 1: 3x3"), (1, 12.0, "after conv 2: 1 pixel")]
    for n, x0, label in layers:
        for i in range(n):
            for j in range(n):
                ax.add_patch(Rectangle((x0 + j, i), 1, 1, fc="#f4a582" if n > 1 else "#b2182b", ec="0.2", lw=0.8))
        ax.text(x0 + n / 2, -0.6, label, ha="center", va="top", fontsize=9)
    # the 3x3 window of conv 2 on conv 1's output, and one 3x3 window of conv 1 on the input
    for (xa, na), (xb, nb) in (((12.0, 1), (7.0, 3)), ((7.0, 3), (0.0, 5))):
        ax.annotate("", xy=(xb + nb, 2.5), xytext=(xa, 2.5 if na == 3 else 0.5),
                    arrowprops=dict(arrowstyle="->", color="0.3"))
    ax.add_patch(Rectangle((0, 0), 3, 3, fill=False, ec="black", lw=2.5))
    ax.text(1.5, 5.5, "outlined: what the top-left pixel of\nconv 1 reads; all nine together read 5x5",
            ha="left", va="top", fontsize=8)
    ax.text(9.8, 2.9, "reads", ha="center", va="top", fontsize=8)
    ax.text(5.0, 2.9, "reads", ha="center", va="top", fontsize=8)
    ax.set_xlim(-0.5, 13.5)
    ax.set_ylim(7, -1.8)
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.set_title("Two 3x3 convolutions see a 5x5 patch\n(18 weights per channel pair, against 25 for one 5x5)",
                 fontsize=10)
    bx = fig.add_subplot(gs[0, 1])
    bx.set_gid("model-growth")
    idx = np.arange(len(rows))
    rf = [r[1] for r in rows]
    size = [r[2] for r in rows]
    bx.step(idx, rf, where="post", color="#b2182b", label="receptive field (pixels of the input)")
    bx.plot(idx, size, color="#2166ac", ls="--", label="feature-map size")
    if input_shape is not None:
        bx.axhline(input_shape[2], color="0.5", lw=0.8, ls=":", label=f"input size {input_shape[2]}")
    bx.set_yscale("log", base=2)
    from matplotlib.ticker import FuncFormatter
    bx.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    bx.set_xlabel("layer (each conv / pool / norm / activation, in order)", fontsize=9)
    bx.set_ylabel("pixels (log scale)", fontsize=9)
    bx.legend(fontsize=8, loc="center right")
    bx.tick_params(labelsize=8)
    bx.set_title(f"{model_name or 'the model'}: receptive field grows by (k - 1) x jump at each layer; "
                 f"final {rf[-1]} px", fontsize=10)
    fig.suptitle("Receptive field: how much of the input one output pixel depends on.\n"
                 "Strided layers multiply the jump, so later 3x3 convs widen it fast.", fontsize=11)
    return fig


def explain_receptive_field(out_dir):
    from ..analysis import summary
    from ..models import mobilenet_v2
    from ..nn import Conv2d, Sequential

    png = save_png(receptive_field_figure(), os.path.join(out_dir, "receptive_field.png"))
    two = summary(Sequential(Conv2d(1, 1, 3, bias=False), Conv2d(1, 1, 3, bias=False)), (1, 1, 32, 32))
    one = summary(Conv2d(1, 1, 5, bias=False), (1, 1, 32, 32))
    rows = receptive_field_rows(mobilenet_v2(), (1, 3, 224, 224))
    lines = [f"Two stacked 3x3 convs: receptive field {two.receptive_field[0]}x{two.receptive_field[1]} with "
             f"{two.total_params} weights; one 5x5 conv: {one.receptive_field[0]}x{one.receptive_field[1]} with "
             f"{one.total_params}.",
             "Rule per layer: r <- r + (k - 1) * j, then j <- j * stride (j = distance in input pixels between "
             "neighbouring outputs).",
             f"mobilenet_v2 at 224x224, {len(rows)} layers: receptive field after the first conv "
             f"{rows[0][1]} px, after layer {len(rows) // 2} {rows[len(rows) // 2][1]} px, at the end "
             f"{rows[-1][1]} px (larger than the image: the last layers see all of it)."]
    return [png], "\n".join(lines)

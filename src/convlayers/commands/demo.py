"""``convlayers demo``: the tour a newcomer runs first, the same on every run.

Each stop is a thin call into the library and leaves a picture in the output
folder: the seed's filters on the bundled cat, the sliding window (with and
without padding/stride), the output-size formula, pooling, the cost of efficient
convolutions, receptive fields, one MobileNetV2 block's summary, and a seeded
training run of a depthwise-separable CNN on the bundled 8×8 digits whose filters
and feature maps are drawn. ``index.html`` in the folder shows them in order.
"""

from __future__ import annotations

import argparse
import html
import os
import time

HELP = ("a one-minute tour: filters on the bundled cat, the sliding window, pooling, shapes, efficient "
        "convolutions, receptive fields, a seeded training run; pictures and index.html in one folder")

STOPS = 9


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="convlayers-demo", metavar="DIR",
                        help="directory for the pictures and index.html (default: ./convlayers-demo, created "
                             "if needed)")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs on the digits (default 3)")
    parser.add_argument("--quick", action="store_true",
                        help="train one epoch on a subset (a smoke test; accuracy will be low)")


def _heading(step, text):
    print(f"\n[{step}/{STOPS}] {text}", flush=True)


#: (file, heading, what it teaches) in tour order: index.html and the README list the same.
PICTURES = (
    ("gallery.png", "Filters: a small kernel slid over a photo",
     "Each classic kernel (the seed's six) convolved with the bundled cat. The matrix beside each response is "
     "the kernel; red and blue are positive and negative responses, white is zero. Edge kernels light up "
     "where brightness changes in their direction; the blur kernel only averages."),
    ("conv.png", "The sliding window, step by step",
     "The seed's worked example: a 3x3 vertical-edge kernel over the 4x4 image 1..16. At every position the nine "
     "pixel-times-weight products are added into one output number; here all four are -6. conv.gif plays the "
     "same slide as an animation."),
    ("conv_p1_s2.png", "Padding and stride",
     "Padding 1 puts a border of zeros (grey) around the image so windows can sit on the edge; stride 2 moves the "
     "window two cells at a time, skipping the positions marked with a red cross. conv_p1_s2.gif animates it."),
    ("shapes.png", "How big is the output?",
     "out = floor((n + 2p - k) / s) + 1, drawn for the seed's cases: each red bracket is one window position and "
     "so one output value. Padding (k - 1) / 2 keeps the size; stride 2 roughly halves it."),
    ("pool.png", "Pooling",
     "Max and average pooling of the seed's 4x4 example with 2x2 windows: each window (one colour) becomes one "
     "number, the largest (ringed) or the mean. No weights are learned."),
    ("efficient.png", "Cheaper convolutions",
     "Standard, 1x1, depthwise, depthwise-separable and grouped convolutions with the seed's channel counts: the "
     "blocks show which input channels each output channel reads, the bars the parameters and multiply-adds. "
     "Separable costs 1/N + 1/k^2 of a standard convolution: 8.4x cheaper here."),
    ("receptive_field.png", "What one output pixel sees",
     "Two stacked 3x3 convolutions see a 5x5 patch of the input with 18 weights instead of 25; through a whole "
     "MobileNetV2 the receptive field grows layer by layer until it covers the image."),
    ("features.png", "What a trained network learned",
     "A small depthwise-separable CNN trained on the bundled 8x8 digits with fixed seeds: its 3x3 first-layer "
     "filters, and one test digit's feature maps after every layer down to the class scores."),
)


def _write_index(out_dir, accuracy_line, written):
    from ..io import atomic_write

    names = {os.path.basename(p) for p in written}
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>convlayers: a tour of convolution</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.45}"
             "img{max-width:100%;border:1px solid #ccc}figure{margin:0 0 2.5em 0}"
             "h2{margin-top:1.8em}</style></head><body>",
             "<h1>A tour of convolution</h1>",
             "<p>Written by <code>convlayers demo</code>. Every picture below was drawn offline by the library "
             "itself; run <code>convlayers explain TOPIC</code> to redraw one with its explanation as text.</p>"]
    for n, (fname, heading, teach) in enumerate(PICTURES, 1):
        if fname not in names:
            continue
        extra = ""
        gif = fname.replace(".png", ".gif")
        if gif in names:
            extra = (f'<p>Animated: <img src="{html.escape(gif)}" alt="{html.escape(heading)}, animated" '
                     f'style="max-width:60%"></p>')
        if fname == "features.png" and accuracy_line:
            teach += " " + accuracy_line
        parts.append(f'<figure id="stop{n}"><h2>{n}. {html.escape(heading)}</h2><p>{html.escape(teach)}</p>'
                     f'<img src="{html.escape(fname)}" alt="{html.escape(heading)}">{extra}</figure>')
    parts.append("</body></html>")
    path = os.path.join(out_dir, "index.html")
    with atomic_write(path) as fh:
        fh.write("\n".join(parts).encode("utf-8"))
    return path


def run(args) -> int:
    from ..cli import UsageError

    if args.epochs < 1:
        raise UsageError(f"--epochs: must be a positive integer, got {args.epochs}")
    from .explain import picture_dir

    start = time.perf_counter()
    out_dir = picture_dir(args.out)
    from .. import viz
    from ..filters import SEED_FILTERS, filter_bank
    from ..io import chelsea

    written = []

    def stop(paths, text=None):
        written.extend(paths)
        if text:
            print(text)
        for p in paths:
            print(f"  -> {p}")

    _heading(1, "Filters: a convolution is a small kernel slid over an image")
    cat = chelsea()
    stop([viz.save_gallery(os.path.join(out_dir, "gallery.png"), cat, filter_bank(cat),
                           image_name="the bundled cat",
                           note="the bundled photo is colour; converted to grey (L = 0.299 R + 0.587 G + 0.114 B)")],
         f"the seed's {len(SEED_FILTERS)} filters ({', '.join(SEED_FILTERS)}) on the bundled cat, "
         f"{cat.shape[0]} x {cat.shape[1]} pixels (height x width)")

    _heading(2, "The sliding window: the seed's 4x4 example, step by step")
    stop(*viz.explain_conv(out_dir))
    _heading(3, "Padding 1 and stride 2 on the same example")
    stop(*viz.explain_conv(out_dir, padding=1, stride=2))
    _heading(4, "Output sizes: floor((n + 2p - k) / s) + 1")
    stop(*viz.explain_shapes(out_dir))
    _heading(5, "Pooling: max and average over 2x2 windows")
    stop(*viz.explain_pool(out_dir))
    _heading(6, "Efficient convolutions: parameters and multiply-adds (MACs) against a standard 3x3")
    stop(*viz.explain_efficient(out_dir))
    _heading(7, "Receptive fields: what one output pixel sees")
    stop(*viz.explain_receptive_field(out_dir))

    _heading(8, "One MobileNetV2 block (inverted residual 24 -> 144 -> 24 at 56x56), without running it")
    from ..analysis import summary
    from ..nn import InvertedResidual

    print(summary(InvertedResidual(24, 24, stride=1, expand_ratio=6), (1, 24, 56, 56)))

    _heading(9, "Training a depthwise-separable CNN on the bundled 8x8 digits (seeded: the same every run)")
    recipe = dict(viz.features.DEMO_RECIPE)
    recipe["epochs"] = 1 if args.quick else args.epochs
    model, history, test = viz.train_digits_model(subset=256 if args.quick else None, **recipe)
    accuracy = history["test_accuracy"][-1]
    acc_line = (f"Test accuracy: {100 * accuracy:.1f}% after {recipe['epochs']} epoch(s)"
                f"{' on a 256-image subset' if args.quick else ''}, seeds fixed (weights, batch order, split), "
                f"so every run prints the same.")
    print(f"{model.num_parameters():,} parameters; {acc_line} ({history['seconds']:.1f} s)")
    stop(*viz.explain_features(out_dir, model, history, test))

    index = _write_index(out_dir, acc_line, written)
    written.append(index)
    print(f"\nDone in {time.perf_counter() - start:.1f} s. Wrote {len(written)} files to {out_dir}:")
    for path in written:
        print(f"  {os.path.basename(path)}")
    print(f"Open {index} in a browser to see them in order, with explanations.")
    print("Next: 'convlayers explain conv --padding 1', 'convlayers filters --list', "
          "'convlayers summary mobilenet_v2'.")
    return 0

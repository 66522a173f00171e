"""``convlayers demo``: the tour a newcomer runs first.

Four stops, each a thin call into the library: the seed's filters on the
bundled cat (a gallery PNG), the cost of efficient convolutions
(:func:`convlayers.analysis.compare_convs`), the summary of one MobileNetV2
block, and a short training run of a depthwise-separable CNN on the bundled
8×8 digits.
"""

from __future__ import annotations

import argparse
import os
import time

HELP = "a one-minute tour: filters on the bundled cat, efficient convolutions, a MobileNetV2 block, training"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="convlayers-demo", metavar="DIR",
                        help="directory for the pictures (default: ./convlayers-demo, created if needed)")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs on the digits (default 3)")
    parser.add_argument("--quick", action="store_true",
                        help="train one epoch on a subset (a smoke test; accuracy will be low)")


def _heading(step, text):
    print(f"\n[{step}/4] {text}", flush=True)


def _gallery(out_dir):
    from ..filters import SEED_FILTERS, filter_bank
    from ..io import chelsea, write_png

    cat = chelsea()
    responses = filter_bank(cat)
    try:
        import matplotlib  # noqa: F401  (the 'plot' extra)
    except ImportError:
        # Without matplotlib there is no gallery figure; the responses still make pictures.
        paths = []
        for name, response in responses.items():
            paths.append(os.path.join(out_dir, f"{name}.png"))
            write_png(paths[-1], response)
        print(f"matplotlib is not installed (pip install 'convlayers[plot]'), so no gallery; wrote "
              f"{len(paths)} filter responses to {out_dir}")
        return paths
    from ..viz import save_gallery

    path = os.path.join(out_dir, "gallery.png")
    save_gallery(path, cat, responses)
    print(f"the seed's {len(SEED_FILTERS)} filters ({', '.join(SEED_FILTERS)}) on the bundled cat "
          f"({cat.shape[1]}x{cat.shape[0]}) -> {path}")
    return [path]


def run(args) -> int:
    from ..cli import UsageError

    if args.epochs < 1:
        raise UsageError(f"--epochs: must be a positive integer, got {args.epochs}")
    out_dir = os.path.abspath(args.out)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise UsageError(f"--out: {args.out!r} exists and is not a directory")
    start = time.perf_counter()
    os.makedirs(out_dir, exist_ok=True)

    _heading(1, "Filters: a convolution is a small kernel slid over an image")
    pictures = _gallery(out_dir)

    _heading(2, "Efficient convolutions: parameters and multiply-adds (MACs) against a standard 3x3")
    from ..analysis import compare_convs, summary

    print(compare_convs())

    _heading(3, "One MobileNetV2 block (inverted residual 24 -> 144 -> 24 at 56x56), without running it")
    from ..nn import InvertedResidual

    print(summary(InvertedResidual(24, 24, stride=1, expand_ratio=6), (1, 24, 56, 56)))

    _heading(4, "Training a depthwise-separable CNN on the bundled 8x8 digits")
    from ..data import load_digits, train_test_split
    from ..models import digits_cnn
    from ..training import fit

    x_train, y_train, x_test, y_test = train_test_split(*load_digits())
    epochs = args.epochs
    if args.quick:
        x_train, y_train, epochs = x_train[:256], y_train[:256], 1
    model = digits_cnn("separable", width=16)
    print(f"{len(x_train)} training and {len(x_test)} test images, {model.num_parameters():,} parameters, "
          f"{epochs} epoch(s)", flush=True)
    history = fit(model, x_train, y_train, x_test, y_test, epochs=epochs, lr=1e-2, seed=0)
    accuracy = history["test_accuracy"][-1]
    print(f"test accuracy: {100 * accuracy:.1f}% after {epochs} epoch(s) ({history['seconds']:.1f} s)")

    print(f"\nDone in {time.perf_counter() - start:.1f} s. Pictures written to {out_dir}:")
    for path in pictures:
        print(f"  {path}")
    print("Next: 'convlayers summary mobilenet_v2', 'convlayers compare 64 128 --kernel 5', "
          "'convlayers filters --list'.")
    return 0

"""``convlayers filters``: the seed's filter gallery on a photograph (the bundled cat by default)."""

from __future__ import annotations

import argparse
import os

HELP = "apply classic filters (edges, Sobel, blur, Laplacian, ...) to an image and draw the gallery"

_BOUNDARIES = ("fill", "wrap", "symm")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", nargs="?", default=None,
                        help="image file (any format Pillow reads); default: the bundled "
                             "photograph 'Chelsea the cat'")
    parser.add_argument("--filters", default=None, metavar="NAMES",
                        help="comma-separated filter names (default: the seed's six: "
                             "vertical,horizontal,sobel_x,sobel_y,blur,laplacian)")
    parser.add_argument("--boundary", default="symm", choices=_BOUNDARIES,
                        help="how the image is extended past its edges (default: symm)")
    parser.add_argument("--method", default="auto", choices=("auto", "direct", "separable", "fft"),
                        help="convolution algorithm (default: auto)")
    parser.add_argument("--out", default="gallery.png", metavar="PNG",
                        help="where to write the gallery figure (default: gallery.png)")
    parser.add_argument("--save-dir", default=None, metavar="DIR",
                        help="also write each response, scaled to 0-255, as DIR/<name>.png")
    parser.add_argument("--list", action="store_true",
                        help="print the filter bank with each kernel and exit")


def _print_bank() -> None:
    import numpy as np

    from ..filters import FILTERS, SEED_FILTERS

    for name, k in FILTERS.items():
        tag = "  (seed)" if name in SEED_FILTERS else ""
        print(f"{name} {k.shape[0]}x{k.shape[1]}{tag}")
        with np.printoptions(precision=4, suppress=True):
            for line in str(k).splitlines():
                print("    " + line)


def run(args) -> int:
    from ..cli import InputError, UsageError

    if args.list:
        _print_bank()
        return 0

    from ..filters import FILTERS, SEED_FILTERS

    if args.filters is None:
        names = list(SEED_FILTERS)
    else:
        names = [n.strip() for n in args.filters.split(",") if n.strip()]
        if not names:
            raise UsageError("--filters: give at least one filter name")
        unknown = [n for n in names if n not in FILTERS]
        if unknown:
            raise UsageError(f"--filters: unknown filter(s) {', '.join(map(repr, unknown))}; "
                             f"choose from: {', '.join(FILTERS)}")
    if not args.out.lower().endswith(".png"):
        raise UsageError(f"--out: the gallery is written as PNG; give a path ending in .png, "
                         f"got {args.out!r}")
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        raise UsageError(f"--out: directory {out_dir!r} does not exist")
    if args.save_dir is not None and os.path.exists(args.save_dir) \
            and not os.path.isdir(args.save_dir):
        raise UsageError(f"--save-dir: {args.save_dir!r} exists and is not a directory")

    from ..io import CHELSEA_PATH, ImageError, read_image, write_png

    path = CHELSEA_PATH if args.image is None else args.image
    try:
        image = read_image(path, "L")
    except ImageError as exc:
        raise InputError(str(exc)) from None

    from ..filters import filter_bank
    from ..viz import save_gallery

    responses = filter_bank(image, names, boundary=args.boundary, method=args.method)
    # Everything that can fail on the input has run; only now touch the file system.
    save_gallery(args.out, image, responses)
    if args.save_dir is not None:
        os.makedirs(args.save_dir, exist_ok=True)
        for name, resp in responses.items():
            write_png(os.path.join(args.save_dir, f"{name}.png"), resp)
    shown = "the bundled cat" if args.image is None else args.image
    print(f"wrote {args.out}: {len(names)} filter(s) on {shown} "
          f"({image.shape[0]} x {image.shape[1]}, height x width)")
    if args.save_dir is not None:
        print(f"wrote {len(names)} response PNG(s) to {args.save_dir}")
    return 0

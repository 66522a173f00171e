"""``convlayers filters``: the seed's filter gallery on a photograph (the bundled cat by default).

Bounded memory: the filters run one at a time (:func:`convlayers.filters.iter_filter_bank`);
each response is shrunk to the gallery's view and, with ``--save-dir``, written to a
temporary PNG before the next filter starts. All outputs are renamed into place
together at the end, so a failed run leaves neither a gallery nor a partial directory.
"""

from __future__ import annotations

import argparse
import os
import secrets

from . import filters_dask

HELP = "apply classic filters (edges, Sobel, blur, Laplacian, ...) to an image and draw the gallery"

_BOUNDARIES = ("fill", "wrap", "symm")
_CHANNELS = ("gray", "r", "g", "b")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", nargs="?", default=None,
                        help="image file (any format Pillow reads); default: the bundled "
                             "photograph 'Chelsea the cat'")
    parser.add_argument("--filters", default=None, metavar="NAMES",
                        help="comma-separated filter names, each once (default: the seed's six: "
                             "vertical,horizontal,sobel_x,sobel_y,blur,laplacian)")
    parser.add_argument("--boundary", default="symm", choices=_BOUNDARIES,
                        help="how the image is extended past its edges (default: symm)")
    parser.add_argument("--method", default="auto", choices=("auto", "direct", "separable", "fft"),
                        help="convolution algorithm (default: auto)")
    parser.add_argument("--channel", default="gray", choices=_CHANNELS,
                        help="which channel of a colour image to filter: gray = luma "
                             "(0.299 R + 0.587 G + 0.114 B, the default) or one of r, g, b")
    parser.add_argument("--max-pixels", type=int, default=None, metavar="N",
                        help="refuse images with more than N pixels (default: Pillow's "
                             "decompression-bomb limit, 2 x PIL.Image.MAX_IMAGE_PIXELS); raise it "
                             "deliberately for a photo you trust")
    parser.add_argument("--out", default="gallery.png", metavar="PNG",
                        help="where to write the gallery figure (default: gallery.png)")
    parser.add_argument("--save-dir", default=None, metavar="DIR",
                        help="also write each full-size response, scaled to 0-255, as DIR/<name>.png")
    filters_dask.add_arguments(parser)
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


def _names(arg):
    from ..cli import UsageError
    from ..filters import FILTERS, SEED_FILTERS

    if arg is None:
        return list(SEED_FILTERS)
    names = [n.strip() for n in arg.split(",") if n.strip()]
    if not names:
        raise UsageError("--filters: give at least one filter name")
    unknown = [n for n in names if n not in FILTERS]
    if unknown:
        raise UsageError(f"--filters: unknown filter(s) {', '.join(map(repr, unknown))}; "
                         f"choose from: {', '.join(FILTERS)}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"--filters: {', '.join(map(repr, twice))} named more than once; name each filter once")
    return names


def _check_writable(directory, what):
    from ..cli import UsageError

    probe = os.path.join(directory, f".convlayers-probe-{secrets.token_hex(4)}")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"{what}: cannot write in {directory!r}: {exc.strerror}") from None


def _pixel_limit(arg):
    from PIL import Image

    from ..cli import UsageError

    if arg is None:
        base = Image.MAX_IMAGE_PIXELS
        return None if base is None else 2 * int(base)
    if arg < 1:
        raise UsageError(f"--max-pixels: must be a positive integer, got {arg}")
    return int(arg)


def read_input(path, channel="gray", max_pixels=None):
    """``(uint8 H x W array, note or None)``: the image, checked against ``max_pixels`` before decoding."""
    import warnings

    import numpy as np
    from PIL import Image

    from ..cli import InputError
    from ..io import ImageError, read_image

    mode = None
    try:
        with Image.open(path) as im:  # header only: size and mode, no pixels decoded
            (w, h), mode = im.size, im.mode
    except Exception:  # noqa: BLE001 - read_image below gives the one-line reason
        w = h = None
    if w is not None and max_pixels is not None and w * h > max_pixels:
        raise InputError(f"{os.fspath(path)}: refused, {h} x {w} (height x width) = {w * h:,} pixels is over "
                         f"the limit of {max_pixels:,} (decompression-bomb guard); pass --max-pixels {w * h} "
                         f"if you trust this file")
    colour = mode is not None and mode not in ("1", "L", "LA", "La", "I", "I;16", "F")
    old = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            # The size was checked above against the header, as Pillow would: its own warning
            # (or its error between the default and --max-pixels) must not second-guess that.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if w is not None and old is not None:
                Image.MAX_IMAGE_PIXELS = max(w * h, int(old))
            if channel == "gray":
                image = read_image(path, "L")
            else:
                rgb = read_image(path, "RGB")
                image = np.ascontiguousarray(rgb[:, :, "rgb".index(channel)])
                del rgb
    except ImageError as exc:
        raise InputError(str(exc)) from None
    finally:
        Image.MAX_IMAGE_PIXELS = old
    note = None
    if channel != "gray":
        note = f"filtered the {channel.upper()} channel of the {mode} image"
    elif colour:
        note = (f"colour ({mode}) image converted to grey: L = 0.299 R + 0.587 G + 0.114 B "
                f"(use --channel r|g|b for one channel)")
    return image, note


def _scaled_uint8(resp):
    """Min-max scale to uint8 in bands of rows (no full-size float temporaries)."""
    import numpy as np

    lo, hi = float(resp.min()), float(resp.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        from ..cli import InputError
        raise InputError("a response contains NaN or infinity; cannot scale it to 0-255")
    out = np.zeros(resp.shape, np.uint8)
    if hi > lo:
        scale = 255.0 / (hi - lo)
        step = max(1, (1 << 22) // max(resp.shape[1], 1))
        for r0 in range(0, resp.shape[0], step):
            band = (resp[r0:r0 + step] - lo) * scale
            out[r0:r0 + step] = np.rint(band)
    return out


def _write_png_to(tmp, array):
    """Encode ``array`` as PNG into the new file ``tmp`` (removed again on failure).

    zlib level 1: on a 9000² response level 6 took 25 s and level 1 8 s for a file
    only 25 % larger (20.8 vs 16.6 MB). Pillow's encoder releases the GIL, so two of
    these run beside the filtering.
    """
    from PIL import Image

    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            Image.fromarray(array).save(fh, format="PNG", compress_level=1)
    except BaseException:
        os.unlink(tmp)
        raise


def _temp_name(directory, name):
    return os.path.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")


def run(args) -> int:
    from ..cli import InputError, UsageError

    if args.list:
        _print_bank()
        return 0

    names = _names(args.filters)
    if not args.out.lower().endswith(".png"):
        raise UsageError(f"--out: the gallery is written as PNG; give a path ending in .png, "
                         f"got {args.out!r}")
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        raise UsageError(f"--out: directory {out_dir!r} does not exist")
    if os.path.isdir(args.out):
        raise UsageError(f"--out: {args.out!r} is a directory")
    save_dir = None if args.save_dir is None else os.path.abspath(args.save_dir)
    if save_dir is not None:
        if os.path.exists(save_dir) and not os.path.isdir(save_dir):
            raise UsageError(f"--save-dir: {args.save_dir!r} exists and is not a directory")
        parent = save_dir if os.path.isdir(save_dir) else os.path.dirname(save_dir)
        if not os.path.isdir(parent):
            raise UsageError(f"--save-dir: parent directory {parent!r} does not exist")
        _check_writable(parent, "--save-dir")
    _check_writable(out_dir, "--out")
    filters_dask.check_arguments(args, UsageError)
    if args.dask:
        if args.image is None:
            raise UsageError("--dask: give the image to filter (a .npy, zarr store, TIFF or photo)")
        return filters_dask.run(args, names, UsageError, InputError)
    max_pixels = _pixel_limit(args.max_pixels)
    try:
        from ..viz._common import matplotlib_parts
        matplotlib_parts()
    except ImportError as exc:
        raise InputError(str(exc)) from None

    from ..io import CHELSEA_PATH

    path = CHELSEA_PATH if args.image is None else args.image
    image, note = read_input(path, args.channel, max_pixels)

    from ..filters import iter_filter_bank
    from ..viz import downsample, gallery_figure
    from ..viz._common import png_bytes

    from concurrent.futures import ThreadPoolExecutor

    created_dir = False
    temps = []  # (temporary path, final path), renamed together at the end
    writers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="convlayers-png")
    pending = []
    try:
        if save_dir is not None and not os.path.isdir(save_dir):
            os.mkdir(save_dir)
            created_dir = True
        views = {}
        for name, resp in iter_filter_bank(image, names, boundary=args.boundary, method=args.method):
            views[name] = downsample(resp)
            if save_dir is not None:
                temps.append((_temp_name(save_dir, name + ".png"), os.path.join(save_dir, f"{name}.png")))
                if len(pending) >= 2:  # at most two uint8 copies waiting: memory stays bounded
                    pending.pop(0).result()
                pending.append(writers.submit(_write_png_to, temps[-1][0], _scaled_uint8(resp)))
            del resp  # only one full-size float response alive at a time
        shown = "the bundled cat" if args.image is None else os.path.basename(args.image)
        fig = gallery_figure(image, views, image_name=shown, boundary=args.boundary, note=note)
        data = png_bytes(fig)
        del fig
        for f in pending:
            f.result()
        tmp = _temp_name(out_dir, os.path.basename(args.out))
        temps.append((tmp, os.path.abspath(args.out)))
        with open(tmp, "xb") as fh:
            fh.write(data)
        for tmp, final in temps:
            os.replace(tmp, final)
    except BaseException:
        writers.shutdown(wait=True, cancel_futures=True)
        for tmp, _ in temps:
            if os.path.exists(tmp):
                os.unlink(tmp)
        if created_dir and os.path.isdir(save_dir) and not os.listdir(save_dir):
            os.rmdir(save_dir)
        raise
    writers.shutdown(wait=True)
    size = f"{image.shape[0]} x {image.shape[1]} pixels (height x width)"
    print(f"wrote {args.out}: {len(names)} filter(s) on {shown}, {size}")
    if note:
        print(f"note: {note}")
    if save_dir is not None:
        print(f"wrote {len(names)} full-size response PNG(s) to {args.save_dir}: "
              f"{', '.join(n + '.png' for n in names)}")
    return 0

"""``convlayers filters --dask``: the filter bank over an image too big for memory, chunk by chunk.

The responses go to a zarr store (one array per filter, written under a
temporary name and renamed when every chunk is done, so a failed run leaves
nothing), and the gallery is drawn from a downsampled view computed in the
same pass (no response is ever held whole).
"""

from __future__ import annotations

import os
import shutil

# The preview's longest side: the gallery is drawn from views no larger than this.
PREVIEW_PIXELS = 1024


def add_arguments(parser) -> None:
    group = parser.add_argument_group("bigger than memory (needs the 'dask' extra)")
    group.add_argument("--dask", action="store_true",
                       help="filter chunk by chunk with dask (.npy, zarr, TIFF or any image); "
                            "--save-dir is then a zarr store with one array per filter")
    group.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="with --dask: a running dask scheduler's address (default: a LocalCluster "
                            "with one worker per core)")
    group.add_argument("--chunks", type=int, default=4096, metavar="N",
                       help="with --dask: chunk side in pixels (default: 4096)")


def check_arguments(args, usage_error) -> None:
    """Refuse inconsistent --dask options before any work (``usage_error`` is the CLI's exception)."""
    if not args.dask:
        for opt, default in (("scheduler", None), ("chunks", 4096)):
            if getattr(args, opt) != default:
                raise usage_error(f"--{opt} needs --dask")
        return
    if args.chunks < 16:
        raise usage_error(f"--chunks: give a chunk side of at least 16 pixels, got {args.chunks}")
    if args.save_dir is not None and os.path.exists(args.save_dir):
        raise usage_error(f"--save-dir: {args.save_dir!r} exists; with --dask it is a new zarr store")


def _open(args, input_error):
    import dask.array as da
    import numpy as np

    from ..dask import open_array

    path, chunks = args.image, args.chunks
    lower = path.lower()
    try:
        if lower.endswith((".npy", ".tif", ".tiff")) or os.path.isdir(path):
            image = open_array(path, chunks=chunks if not lower.endswith((".tif", ".tiff")) else "auto")
        else:  # a photo fits in memory: read it as the in-memory command does (bomb guard, --channel)
            from .filters import _pixel_limit, read_input
            image = da.from_array(read_input(path, args.channel, _pixel_limit(args.max_pixels))[0], chunks=chunks)
    except (OSError, ValueError) as exc:
        raise input_error(str(exc)) from None
    except Exception as exc:  # tifffile/zarr refuse a corrupt file with their own exception types
        raise input_error(f"cannot read {path}: {type(exc).__name__}: {exc}") from None
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        # Pillow's 'L' conversion weights (ITU-R 601-2), computed chunk by chunk
        rgb = image[..., :3].astype(np.float32)
        image = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    if image.ndim != 2:
        raise input_error(f"{path}: expected a 2-D grayscale or H x W x 3 colour image, got shape {image.shape}")
    if image.dtype.kind not in "biuf":
        raise input_error(f"{path}: expected a real numeric image, got dtype {image.dtype}")
    return image.rechunk(chunks)


def _preview(x, pixels=PREVIEW_PIXELS):
    """A block-mean view of ``x`` whose longest side is at most ``pixels``."""
    import dask.array as da

    f = max(1, -(-max(x.shape) // pixels))
    if f == 1:
        return x
    h, w = (x.shape[0] // f) * f, (x.shape[1] // f) * f
    x = x[:h, :w].rechunk(tuple(max(f, (c // f) * f) for c in (x.chunksize[0], x.chunksize[1])))
    return da.coarsen(da.mean, x, {0: f, 1: f}, trim_excess=True)


def run(args, names, usage_error, input_error) -> int:
    import dask
    import dask.array as da

    from .. import dask as cd

    image = _open(args, input_error)
    responses = cd.filter_bank(image, names, boundary=args.boundary, method=args.method)
    client = cd.cluster(args.scheduler) if args.scheduler else cd.cluster()
    tmp = None
    try:
        work = []
        if args.save_dir is not None:
            parent = os.path.dirname(os.path.abspath(args.save_dir))
            tmp = os.path.join(parent, f".{os.path.basename(args.save_dir)}.partial-{os.getpid()}")
            for name, resp in responses.items():
                work.append(da.to_zarr(resp, tmp, component=name, compute=False))
        previews = {name: _preview(resp) for name, resp in responses.items()}
        results = dask.compute(_preview(image), *previews.values(), *work)
        small, drawn = results[0], dict(zip(previews, results[1:1 + len(previews)]))
        if tmp is not None:
            os.replace(tmp, args.save_dir)
            tmp = None
    finally:
        if tmp is not None and os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        client.close()
    from ..viz import save_gallery

    h, w = image.shape
    save_gallery(args.out, small, drawn, image_name=os.path.basename(args.image), boundary=args.boundary,
                 image_size=(h, w))
    print(f"wrote {args.out}: {len(names)} filter(s) on {args.image} ({h} x {w}, height x width), "
          f"drawn from a {small.shape[0]} x {small.shape[1]} preview")
    if args.save_dir is not None:
        print(f"wrote {len(names)} response array(s) to the zarr store {args.save_dir}")
    return 0

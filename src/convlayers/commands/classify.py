"""``convlayers classify``: ImageNet labels for a photo (or a folder of photos) with pretrained weights."""

from __future__ import annotations

import argparse
import os

HELP = "classify a photo or a folder of photos with ImageNet weights (mobilenet_v2, resnet18 or an .onnx file)"

_IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
_BUILTIN = ("mobilenet_v2", "resnet18")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="an image file, or a folder of images (classified in batches)")
    parser.add_argument("--model", default="mobilenet_v2", metavar="mobilenet_v2|resnet18|FILE.onnx",
                        help="the network (default mobilenet_v2); an .onnx file taking (N, 3, 224, 224)")
    parser.add_argument("--weights", default=None, metavar="PATH",
                        help="a .pth/.pt/.safetensors/.npz state dict (default: torchvision's IMAGENET1K_V1, "
                             "from the installed package, the cache, or a checked download)")
    parser.add_argument("--topk", type=int, default=5, metavar="K", help="labels to print per image (default 5)")
    parser.add_argument("--batch-size", type=int, default=16, metavar="N", help="images per batch for a folder")
    parser.add_argument("--out", default=None, metavar="FILE.csv",
                        help="for a folder: write predictions here (path, then index,label,probability per rank)")
    parser.add_argument("--dask", action="store_true", help="for a folder: classify on a dask cluster")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="with --dask: a running scheduler's address (default: a LocalCluster)")


def _model(args):
    from ..cli import InputError, UsageError

    if args.model.endswith(".onnx"):
        if args.weights is not None:
            raise UsageError("--weights: an .onnx model carries its own weights")
        if not os.path.isfile(args.model):
            raise InputError(f"--model: no such file {args.model!r}")
        from ..onnx import load
        try:
            model = load(args.model)
        except (ValueError, TypeError) as exc:
            raise InputError(f"{args.model}: {exc}") from None
        return model
    if args.model not in _BUILTIN:
        raise UsageError(f"--model: expected one of {', '.join(_BUILTIN)} or an .onnx file, got {args.model!r}")
    from .. import models

    weights = "IMAGENET1K_V1" if args.weights is None else args.weights
    if args.weights is not None and not os.path.isfile(args.weights):
        raise InputError(f"--weights: no such file {args.weights!r}")
    try:
        return getattr(models, args.model)(weights=weights)
    except ValueError as exc:
        raise InputError(f"--weights: {exc}") from None


def _softmax(logits):
    import numpy as np

    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _names(n):
    from ..pretrained import imagenet_classes
    return imagenet_classes() if n == 1000 else [f"class {i}" for i in range(n)]


def _ranked(probs, k):
    import numpy as np
    return np.argsort(-probs, axis=1, kind="stable")[:, :k]


def _folder_images(folder):
    from ..cli import InputError

    paths = sorted(os.path.join(folder, f) for f in os.listdir(folder)
                   if f.lower().endswith(_IMAGE_EXTS) and os.path.isfile(os.path.join(folder, f)))
    if not paths:
        raise InputError(f"{folder}: no image files ({', '.join(_IMAGE_EXTS)}) in the folder")
    return paths


def _write_csv(path, rows, k):
    import csv

    from ..io import atomic_write

    header = ["path"] + [f"{field}{r}" for r in range(1, k + 1) for field in ("index", "label", "prob")]
    with atomic_write(path) as fh:
        import io as _io
        text = _io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        fh.write(text.getvalue().encode("utf-8"))


def _logits_local(model, paths, batch_size):
    import numpy as np

    from ..pretrained import imagenet_preprocess

    try:
        from tqdm import tqdm
        bar = tqdm(total=len(paths), unit="img", desc="classify", leave=False)
    except ImportError:  # pragma: no cover -- tqdm is in the 'train' extra
        bar = None
    out = []
    try:
        for i in range(0, len(paths), batch_size):
            chunk = paths[i:i + batch_size]
            out.append(np.asarray(model(np.stack([imagenet_preprocess(p) for p in chunk]))))
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    return np.concatenate(out)


def _logits_dask(model, paths, batch_size, scheduler):
    from .. import dask as cd
    from ..pretrained import imagenet_preprocess

    client = cd.cluster(scheduler) if scheduler else cd.cluster()
    try:
        from distributed import progress
        lazy = cd.predict(model, paths, batch_size=batch_size, preprocess=imagenet_preprocess)
        future = client.compute(lazy)
        progress(future)
        return future.result()
    finally:
        client.close()


def run(args) -> int:
    from ..cli import InputError, UsageError, check_writable
    from ..pretrained import imagenet_preprocess

    if args.topk < 1:
        raise UsageError(f"--topk: expected a positive int, got {args.topk}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size: expected a positive int, got {args.batch_size}")
    if not os.path.exists(args.image):
        raise InputError(f"{args.image}: no such file or folder")
    folder = os.path.isdir(args.image)
    if not folder and (args.dask or args.out):
        raise UsageError("--dask and --out apply to a folder of images; give a folder")
    if args.scheduler and not args.dask:
        raise UsageError("--scheduler needs --dask")
    if args.out is not None:
        check_writable(args.out, "--out", (".csv",))
    model = _model(args)
    if not folder:
        import numpy as np

        x = imagenet_preprocess(args.image)[None]
        logits = np.asarray(model(x))
        if logits.ndim != 2:
            raise InputError(f"--model: expected (N, classes) logits, got shape {logits.shape}")
        probs = _softmax(logits)
        names = _names(probs.shape[1])
        k = min(args.topk, probs.shape[1])
        print(f"{args.image}: {args.model}")
        for idx in _ranked(probs, k)[0]:
            print(f"{probs[0, idx]:8.4f}  {idx:4d}  {names[idx]}")
        return 0
    paths = _folder_images(args.image)
    try:
        if args.dask:
            logits = _logits_dask(model, paths, args.batch_size, args.scheduler)
        else:
            logits = _logits_local(model, paths, args.batch_size)
    except ValueError as exc:  # an unreadable image (ImageError) among them
        raise InputError(str(exc)) from None
    probs = _softmax(logits)
    names = _names(probs.shape[1])
    k = min(args.topk, probs.shape[1])
    ranked = _ranked(probs, k)
    rows = []
    for path, order, p in zip(paths, ranked, probs):
        row = [path]
        for idx in order:
            row += [int(idx), names[idx], f"{p[idx]:.6f}"]
        rows.append(row)
        if args.out is None:
            print(f"{path}: {names[order[0]]} ({p[order[0]]:.4f})")
    if args.out is not None:
        _write_csv(args.out, rows, k)
        print(f"wrote {args.out}: {len(rows)} image(s), top-{k} each")
    return 0

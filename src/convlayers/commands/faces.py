"""``convlayers faces``: find faces with MTCNN and draw their boxes and landmarks."""

from __future__ import annotations

import argparse

HELP = "detect faces with MTCNN (facenet-pytorch's weights) and draw boxes + 5 landmarks into a PNG"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="an RGB photo")
    parser.add_argument("--out", required=True, metavar="FILE.png", help="the image with boxes drawn")
    parser.add_argument("--weights-dir", default=None, metavar="DIR",
                        help="a directory with pnet.pt, rnet.pt, onet.pt (default: facenet-pytorch's)")
    parser.add_argument("--min-face", type=float, default=20.0, metavar="PX",
                        help="smallest face side in pixels (default 20)")
    parser.add_argument("--thresholds", default="0.6,0.7,0.7", metavar="P,R,O",
                        help="PNet, RNet, ONet probability thresholds (default 0.6,0.7,0.7)")


def run(args) -> int:
    import os

    from ..cli import InputError, UsageError, check_writable

    check_writable(args.out, "--out", (".png",))
    try:
        thresholds = tuple(float(t) for t in args.thresholds.split(","))
    except ValueError:
        thresholds = ()
    if len(thresholds) != 3 or not all(0 <= t <= 1 for t in thresholds):
        raise UsageError(f"--thresholds: expected three probabilities P,R,O, got {args.thresholds!r}")
    if not args.min_face > 0:
        raise UsageError(f"--min-face: expected a positive size, got {args.min_face}")
    if args.weights_dir is not None and not os.path.isdir(args.weights_dir):
        raise InputError(f"--weights-dir: no such directory {args.weights_dir!r}")
    from ..faces import detect_faces, draw_faces
    from ..io import atomic_write, read_image
    from ..models import mtcnn_nets

    image = read_image(args.image, "RGB")
    try:
        nets = mtcnn_nets(args.weights_dir)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    boxes, points = detect_faces(image, nets, thresholds=thresholds, min_face=args.min_face)
    drawn = draw_faces(image, boxes, points)
    with atomic_write(args.out) as fh:
        drawn.save(fh, format="PNG")
    for b in boxes:
        print(f"face p={b[4]:.4f}  box x1={b[0]:.1f} y1={b[1]:.1f} x2={b[2]:.1f} y2={b[3]:.1f}")
    print(f"wrote {args.out}: {len(boxes)} face(s) in {args.image} ({image.shape[0]} x {image.shape[1]})")
    return 0

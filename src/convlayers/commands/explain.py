"""``convlayers explain TOPIC``: one idea of the seed as a picture (PNG, GIF where motion helps) and as text."""

from __future__ import annotations

import argparse
import os

HELP = "draw one idea (conv, pool, shapes, efficient, receptive-field, features) as a picture and explain it"

_TOPICS = ("conv", "pool", "shapes", "efficient", "receptive-field", "features", "all")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topic", choices=_TOPICS,
                        help="conv: the sliding window step by step; pool: max/average pooling windows; "
                             "shapes: the output-size formula; efficient: standard vs 1x1 vs depthwise vs "
                             "separable vs grouped; receptive-field: what one output pixel sees; features: a "
                             "trained digits CNN's filters and feature maps; all: every topic")
    parser.add_argument("--out", default=".", metavar="DIR",
                        help="directory for the pictures (default: the current directory; created if needed)")
    parser.add_argument("--padding", type=int, default=0, help="conv only: zeros added on each side (default 0)")
    parser.add_argument("--stride", type=int, default=1, help="conv only: step between windows (default 1)")


def picture_dir(out):
    """Check ``--out`` and the ``plot`` extra before any work, then create the directory; its absolute path.

    Shared by ``explain`` and ``demo``: exit 2 for a bad ``--out``, 1 (one line) without matplotlib.
    """
    from ..cli import InputError, UsageError

    out_dir = os.path.abspath(out)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise UsageError(f"--out: {out!r} exists and is not a directory")
    parent = out_dir if os.path.isdir(out_dir) else os.path.dirname(out_dir)
    if not os.path.isdir(parent):
        raise UsageError(f"--out: parent directory {parent!r} does not exist")
    try:
        from ..viz._common import matplotlib_parts
        matplotlib_parts()
    except ImportError as exc:
        raise InputError(f"{exc} (needed to draw the pictures)") from None
    os.makedirs(out_dir, exist_ok=True)
    return out_dir


def run(args) -> int:
    from ..cli import UsageError

    if args.padding < 0 or args.padding > 3:
        raise UsageError(f"--padding: must be 0 to 3 for the 4x4 example, got {args.padding}")
    if args.stride < 1 or args.stride > 4:
        raise UsageError(f"--stride: must be 1 to 4 for the 4x4 example, got {args.stride}")
    if (args.padding or args.stride != 1) and args.topic not in ("conv", "all"):
        raise UsageError("--padding and --stride apply to the 'conv' topic only")
    out_dir = picture_dir(args.out)
    from ..viz import TOPICS

    topics = [t for t in TOPICS] if args.topic == "all" else [args.topic]
    for topic in topics:
        kwargs = dict(padding=args.padding, stride=args.stride) if topic == "conv" else {}
        paths, text = TOPICS[topic](out_dir, **kwargs)
        print(f"== {topic} ==")
        print(text)
        for p in paths:
            print(f"wrote {p}")
    return 0

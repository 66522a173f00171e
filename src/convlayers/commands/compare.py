"""``convlayers compare``: parameters and MACs of standard vs efficient convolutions."""

from __future__ import annotations

import argparse

HELP = "compare parameters and MACs of standard, pointwise, depthwise, separable and grouped convolutions"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("channels", nargs="*", type=int, metavar="C",
                        help="IN OUT channels (default: the seed's examples, 64->32 pointwise, 64->64 "
                             "depthwise, 64->128 separable and grouped)")
    parser.add_argument("--kernel", type=int, default=3, metavar="K", help="kernel size (odd, default 3)")
    parser.add_argument("--groups", type=int, default=4, help="groups of the grouped convolution (default 4)")
    parser.add_argument("--size", default="56", metavar="H[,W]",
                        help="feature-map size the MACs are counted on (default 56)")
    parser.add_argument("--json", action="store_true", help="print the table as JSON")


def run(args) -> int:
    import json

    from ..analysis import compare_convs
    from ..cli import UsageError

    if len(args.channels) not in (0, 2):
        raise UsageError(f"give two channel counts IN OUT (or none for the seed's examples), "
                         f"got {len(args.channels)}: {' '.join(map(str, args.channels))}")
    try:
        size = tuple(int(v) for v in args.size.split(","))
    except ValueError:
        raise UsageError(f"--size: expected H or H,W as positive integers, got {args.size!r}") from None
    if len(size) not in (1, 2):
        raise UsageError(f"--size: expected H or H,W, got {args.size!r}")
    height, width = size if len(size) == 2 else size * 2
    cin, cout = args.channels if args.channels else (None, None)
    for option, value in (("IN", cin), ("OUT", cout), ("--kernel", args.kernel), ("--groups", args.groups),
                          ("--size", height), ("--size", width)):
        if value is not None and abs(value) >= 2**31:   # counts only, but NumPy refuses such dimensions
            raise UsageError(f"{option}: expected a value below 2**31, got {value}")
    try:
        table = compare_convs(cin, cout, kernel_size=args.kernel, groups=args.groups, height=height, width=width)
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    print(json.dumps(table.to_dict(), indent=1) if args.json else table)
    return 0

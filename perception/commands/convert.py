"""``perception convert waymo SRC OUT``: convert Waymo segments into the training format.

The format is described in :mod:`perception.data.waymo_convert` and ``docs/datasets.md``.
Finished segments are skipped, so an interrupted run is resumed by running it again.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected i/n, got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"shard {text}: need 0 <= i < n")
    return i, n


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert a data set into the training format",
                       description=__doc__)
    p.add_argument("dataset", choices=["waymo"], help="source data set")
    p.add_argument("src", type=Path, help="a segment .tfrecord or a directory of them")
    p.add_argument("out", type=Path, help="output directory")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    p.add_argument("--shard", type=_shard, default=(0, 1), metavar="i/n",
                   help="convert only shard i of n (round robin over sorted segment names)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.waymo_convert import convert

    if args.workers < 1:
        raise ConfigError(f"--workers: expected >= 1, got {args.workers}")
    summary = convert(args.src, args.out, workers=args.workers, shard=args.shard,
                      progress=not args.no_progress)
    print(summary.text())
    return 1 if summary.segments_failed else 0

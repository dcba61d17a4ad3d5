"""``perception convert``: data sets into the training format, or into rosbag2 bags.

* ``perception convert waymo SRC OUT``: Waymo segments into the training format
  (:mod:`perception.data.waymo_convert`, ``docs/datasets.md``). Finished segments are skipped,
  so an interrupted run is resumed by running it again.
* ``perception convert waymo-bag SEGMENT OUT.mcap``: one Waymo segment as a rosbag2 (merged
  lidar or one cloud per laser, the original camera JPEGs, CameraInfo, /tf_static, poses,
  labels on /ground_truth).
* ``perception convert sim-bag PRESET OUT.mcap``: a simulator scenario as a rosbag2, with
  ground truth on /sim/ground_truth (demo bags with no data set).

OUT ending in ``.mcap`` is one MCAP file; any other OUT is a rosbag2 directory (MCAP or, with
``--storage sqlite3``, SQLite3). See ``docs/replay.md``.
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
    p.add_argument("dataset", choices=["waymo", "waymo-bag", "sim-bag"],
                   help="waymo: training format; waymo-bag, sim-bag: a rosbag2")
    p.add_argument("src", help="waymo: a segment .tfrecord or a directory of them; waymo-bag: "
                               "a segment; sim-bag: a simulator preset or YAML")
    p.add_argument("out", type=Path, help="output directory, or OUT.mcap for a bag")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    p.add_argument("--shard", type=_shard, default=(0, 1), metavar="i/n",
                   help="convert only shard i of n (round robin over sorted segment names)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    bag = p.add_argument_group("bags (waymo-bag, sim-bag)")
    bag.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap",
                     help="rosbag2 storage (sqlite3 needs a directory OUT)")
    bag.add_argument("--per-laser", action="store_true",
                     help="waymo-bag: one PointCloud2 per laser instead of one merged cloud")
    bag.add_argument("--seed", type=int, default=0, help="sim-bag: scenario seed")
    bag.add_argument("--frames", type=int, default=20, help="sim-bag: frames (default 20)")
    bag.add_argument("--rate-hz", type=float, default=10.0, help="sim-bag: frame rate")
    bag.add_argument("--image-format", choices=["png", "jpeg", "raw"], default="png",
                     help="sim-bag: camera images as lossless PNG (default), JPEG or raw Image")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.dataset != "waymo":
        return run_bag(args)
    from ..data.waymo_convert import convert

    if args.workers < 1:
        raise ConfigError(f"--workers: expected >= 1, got {args.workers}")
    summary = convert(Path(args.src), args.out, workers=args.workers, shard=args.shard,
                      progress=not args.no_progress)
    print(summary.text())
    # Non-zero when a segment failed or nothing at all was converted (empty, truncated or
    # corrupt input): a batch job must not take "every record skipped" for success.
    return 0 if summary.ok else 1


def run_bag(args: argparse.Namespace) -> int:
    from ..replay import sim_to_bag, waymo_to_bag

    progress = not args.no_progress
    if args.dataset == "waymo-bag":
        result = waymo_to_bag(Path(args.src), args.out, per_laser=args.per_laser,
                              storage=args.storage, progress=progress)
    else:
        result = sim_to_bag(args.src, args.out, seed=args.seed, frames=args.frames,
                            rate_hz=args.rate_hz, image_format=args.image_format,
                            storage=args.storage, progress=progress)
    print(result.text())
    return 130 if result.interrupted else 0

"""``perception launch FILE [name:=value ...]``: run a ROS 2 YAML launch file of the project
where the ROS 2 launch system is not installed (see :mod:`perception.launch`)."""

from __future__ import annotations

import argparse

from ..launch import parse_overrides, resolve_launch_file, run_launch


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "launch", help="run a ROS 2 YAML launch file (sim.launch.yaml, perception.launch.yaml)",
        description=__doc__)
    p.add_argument("file", help="launch file: a path, or a file name in the package's launch/ "
                                "directory, e.g. sim.launch.yaml")
    p.add_argument("overrides", nargs="*", metavar="name:=value",
                   help="launch argument values")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return run_launch(resolve_launch_file(args.file), parse_overrides(args.overrides))

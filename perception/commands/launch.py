"""``perception launch FILE [name:=value ...]``: run a ROS 2 YAML launch file of the project
where the ROS 2 launch system is not installed.

The runner is ROS code and lives in ``ros_nodes.launcher``; this command starts it as a
subprocess (``python -m ros_nodes.launcher``, through :mod:`perception.commands.child`), so
:mod:`perception` never imports ROS code. The runner's output and errors go straight to this
command's stdout and stderr, Ctrl-C and SIGTERM are passed on to it (it stops the nodes), and
its exit code is this command's.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from .child import check_installed, run_child

RUNNER = "ros_nodes.launcher"
NODES_PACKAGE = RUNNER.partition(".")[0]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "launch", help="run a ROS 2 YAML launch file (sim.launch.yaml, perception.launch.yaml)",
        description=__doc__)
    p.add_argument("file", help="launch file: a path, or a file name in the package's launch/ "
                                "directory, e.g. sim.launch.yaml")
    p.add_argument("overrides", nargs="*", metavar="name:=value",
                   help="launch argument values")
    p.set_defaults(func=run)


def runner_command(file: str, overrides: list[str]) -> list[str]:
    """The runner's command line; ``--`` keeps a file or value starting with ``-`` an
    argument."""
    return [sys.executable, "-m", RUNNER, "--prog", "perception launch", "--", file,
            *overrides]


def run(args: argparse.Namespace) -> int:
    check_installed(NODES_PACKAGE)
    return run_child(runner_command(args.file, args.overrides), stdin=subprocess.DEVNULL)

"""The ``perception`` command.

Each subcommand lives in its own module under :mod:`perception.commands` and exposes
``add_parser(subparsers)``, which registers its parser and sets ``func`` to the function that
runs it (``func(args) -> int`` exit code). The list below is the whole set, in help order.
"""

from __future__ import annotations

import argparse
import logging
import sys

from . import __version__
from .commands import convert, demo, explain, info
from .commands import export as export_command
from .commands import eval as eval_command
from .commands import launch as launch_command
from .commands import replay as replay_command
from .commands import train as train_command
from .errors import PerceptionError

COMMANDS = (
    info,
    demo,
    convert,
    eval_command,
    explain,
    export_command,
    launch_command,
    replay_command,
    train_command,
)

log = logging.getLogger("perception")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="perception",
        description="Camera, lidar and radar fusion: 3D detection and tracking.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output (-v info, -vv debug)")
    parser.add_argument("-q", "--quiet", action="count", default=0,
                        help="less log output (-q errors only)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def configure_logging(verbose: int, quiet: int) -> None:
    level = logging.WARNING - 10 * verbose + 10 * quiet
    logging.basicConfig(level=max(logging.DEBUG, min(level, logging.CRITICAL)),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except PerceptionError as exc:
        # Bad input is the user's to fix: one clear line, no traceback (unless -vv).
        log.debug("traceback", exc_info=True)
        print(f"perception {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""``perception launch FILE [name:=value ...]``: run a ROS 2 YAML launch file of the project
where the ROS 2 launch system is not installed.

The runner is ROS code and lives in ``ros_nodes.launcher``; this command starts it as a
subprocess (``python -m ros_nodes.launcher``), so :mod:`perception` never imports ROS code. The
runner's output and errors go straight to this command's stdout and stderr, Ctrl-C and SIGTERM
are passed on to it (it stops the nodes), and its exit code is this command's.
"""

from __future__ import annotations

import argparse
import importlib.util
import signal
import subprocess
import sys
from typing import Any

from ..errors import PerceptionError

RUNNER = "ros_nodes.launcher"
NODES_PACKAGE = RUNNER.partition(".")[0]
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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


def _check_runner_installed() -> None:
    # find_spec on the top-level package locates it without importing it
    if importlib.util.find_spec(NODES_PACKAGE) is None:
        raise PerceptionError(f"the ROS 2 nodes are not installed: no module {NODES_PACKAGE!r} "
                              f"(install fusion_perception with its ros_nodes package)")


def _stop_with_parent() -> None:
    """In the child, before exec: SIGTERM the runner if this process dies (even by SIGKILL),
    so the runner then stops its nodes (Linux ``prctl(PR_SET_PDEATHSIG)``; a no-op
    elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def run_runner(command: list[str]) -> int:
    """Run the runner until it exits, passing SIGINT and SIGTERM on; its exit code (128 + N
    when signal N killed it)."""
    child: subprocess.Popen | None = None
    pending: list[int] = []

    def forward(signum: int, _frame: Any) -> None:
        if child is None:
            pending.append(signum)
        else:
            try:
                child.send_signal(signum)
            except ProcessLookupError:
                pass

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    try:
        # its own session: a terminal's Ctrl-C reaches the runner once, through this process
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True,
                                 preexec_fn=_stop_with_parent)
        for signum in pending:
            child.send_signal(signum)
        code = child.wait()
    finally:
        if child is not None and child.poll() is None:
            # only an exception gets here with the runner alive: let it stop its nodes
            child.send_signal(signal.SIGTERM)
            child.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - code if code < 0 else code


def run(args: argparse.Namespace) -> int:
    _check_runner_installed()
    return run_runner(runner_command(args.file, args.overrides))

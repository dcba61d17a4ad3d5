"""Running ROS code as a child process (``python -m ros_nodes.<module> ...``), for the commands
that need ROS while :mod:`perception` never imports it (``perception launch``,
``perception replay --ros``).

The child's output and errors go straight to this process's stdout and stderr, Ctrl-C and
SIGTERM are passed on to it (it stops its nodes), it dies with this process, and its exit code
is the command's.
"""

from __future__ import annotations

import importlib.util
import signal
import subprocess
from typing import Any

from ..errors import PerceptionError
from ..processes import stop_with_parent

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def check_installed(package: str) -> None:
    """Raise a one-line :class:`PerceptionError` when the ROS package ``package`` is missing.

    Raises:
        PerceptionError: no module ``package``.
    """
    # find_spec on the top-level package locates it without importing it
    if importlib.util.find_spec(package) is None:
        raise PerceptionError(f"the ROS 2 nodes are not installed: no module {package!r} "
                              f"(install fusion_perception with its ros_nodes package)")


def run_child(command: list[str], stdin: int | None = subprocess.DEVNULL) -> int:
    """Run ``command`` until it exits, passing SIGINT and SIGTERM on; its exit code (128 + N
    when signal N killed it). ``stdin=None`` gives it this process's standard input."""
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
        # its own session: a terminal's Ctrl-C reaches the child once, through this process
        child = subprocess.Popen(command, stdin=stdin, start_new_session=True,
                                 preexec_fn=stop_with_parent)
        for signum in pending:
            child.send_signal(signum)
        code = child.wait()
    finally:
        if child is not None and child.poll() is None:
            # only an exception gets here with the child alive: let it stop its nodes
            child.send_signal(signal.SIGTERM)
            child.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - code if code < 0 else code

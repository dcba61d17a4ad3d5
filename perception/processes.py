"""Child processes that never outlive their parent: the ROS nodes a launcher starts, and the
ROS children of ``perception launch`` and ``perception replay --ros``."""

from __future__ import annotations

import signal
import sys


def stop_with_parent() -> None:
    """Run in the child, before exec (``subprocess.Popen(preexec_fn=...)``): the child gets
    SIGTERM when its parent dies, even by SIGKILL, so it can stop its nodes instead of living
    on (Linux ``prctl(PR_SET_PDEATHSIG)``; a no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)

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


MMAP_THRESHOLD_BYTES = 256 * 1024
"""Blocks this large or larger are mapped and unmapped by the allocator, never kept in a heap."""
ARENA_MAX = 2


def settle_allocator() -> str | None:
    """Keep a long-running process's resident memory flat (glibc only; None elsewhere).

    A node's executor thread allocates the sensor messages (clouds and images of 0.1 to 2 MB)
    and its model thread frees them. glibc raises its mmap threshold each time such a block is
    freed, so later ones come from the heaps, and with one heap per thread the freed space is
    fragmented and rarely given back: a process grows by a few percent per thousand frames.
    A fixed threshold maps every large block and returns it at once; two arenas bound the
    number of heaps. Returns what was set, for the node's log.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return None
    m_mmap_threshold, m_arena_max = -3, -8
    if not (mallopt(m_mmap_threshold, MMAP_THRESHOLD_BYTES) and mallopt(m_arena_max, ARENA_MAX)):
        return None
    return (f"allocator: blocks from {MMAP_THRESHOLD_BYTES // 1024} KiB mapped, "
            f"{ARENA_MAX} arenas (glibc mallopt)")

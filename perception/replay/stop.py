"""Stopping a long job cleanly on Ctrl-C or SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger("perception.replay")


class StopRequest:
    """SIGINT / SIGTERM set a flag that the replay loop checks after each message, so that the
    bag is never interrupted in the middle of a write; a second signal stops at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("stopping after the current message (signal %d); again to stop now",
                    signum)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

"""Live-input helpers that sit between the sensor sync and the consumers of its frames, with no
ROS dependency (the ROS 2 nodes in ``ros_nodes/`` use them; tests drive them directly):

* :class:`LatestFrame`: a single-slot mailbox between the sync (producer) and the model
  (consumer, another thread). When the model is busy the newest frame replaces the one
  waiting, which is counted as dropped; nothing queues without bound.
* :class:`DeadlineMonitor`: processing time against a budget, WARN on a miss and ERROR after
  several consecutive misses.
* :class:`StampOrder`: the order policy of a consumer fed by several inputs (the tracker): a
  stamp a little older than the last one is a late input, a stamp far older means the source
  restarted (a looped log, a restarted simulator).
* :func:`near_tracks`: which detections fall inside a track's gate, for input channels that
  may update tracks but not start them.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from ..types import Tracks

T = TypeVar("T")
NS_PER_S = 1_000_000_000


class Health(enum.IntEnum):
    """Levels of a health check; the values equal ``diagnostic_msgs/DiagnosticStatus``'s."""

    OK = 0
    WARN = 1
    ERROR = 2


class LatestFrame(Generic[T]):
    """Single-slot, thread-safe mailbox: the newest item wins.

    ``put`` never blocks: it replaces an item that was not taken yet (that item is dropped and
    counted) and wakes the consumer. ``take`` waits for an item. Memory is bounded by one item
    whatever the producer's rate.

    Attributes:
        offered: items put.
        taken: items taken by the consumer.
        dropped: items replaced before the consumer took them (``offered - taken`` minus the
            one waiting).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._closed = False
        self.offered = 0
        self.taken = 0
        self.dropped = 0

    def put(self, item: T) -> T | None:
        """Offer ``item``; returns the item it replaced (dropped), or None."""
        if item is None:
            raise ValueError("LatestFrame.put: None is not an item")
        with self._cond:
            replaced = self._item
            self._item = item
            self.offered += 1
            if replaced is not None:
                self.dropped += 1
            self._cond.notify()
            return replaced

    def take(self, timeout_s: float | None = None) -> T | None:
        """The waiting item (the slot is emptied), waiting up to ``timeout_s`` (None: until one
        comes or :meth:`close`). None on timeout or once closed."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while self._item is None and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            if self._item is None:
                return None
            item, self._item = self._item, None
            self.taken += 1
            return item

    def close(self) -> None:
        """Wake every waiting :meth:`take` (which returns what is waiting, then None)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def waiting(self) -> bool:
        with self._cond:
            return self._item is not None

    @property
    def drop_ratio(self) -> float:
        """Dropped items over offered items (0 before the first)."""
        return self.dropped / self.offered if self.offered else 0.0


@dataclass
class DeadlineMonitor:
    """Processing time against a budget.

    :meth:`add` returns OK when the time is within ``max_ms``, WARN on a miss, and ERROR once
    ``error_after`` consecutive frames missed (until a frame meets the budget again).

    Attributes:
        max_ms: the budget per frame, ms (> 0).
        error_after: consecutive misses that make an ERROR (>= 1).
        checks, misses: frames checked and frames over budget, in total.
        consecutive: current run of misses.
        last_ms: the last frame's time, or None before the first.
    """

    max_ms: float
    error_after: int = 5
    checks: int = 0
    misses: int = 0
    consecutive: int = 0
    last_ms: float | None = None

    def __post_init__(self) -> None:
        if not self.max_ms > 0:
            raise ValueError(f"DeadlineMonitor.max_ms must be > 0, got {self.max_ms}")
        if self.error_after < 1:
            raise ValueError(f"DeadlineMonitor.error_after must be >= 1, got "
                             f"{self.error_after}")

    def add(self, elapsed_ms: float) -> Health:
        self.checks += 1
        self.last_ms = float(elapsed_ms)
        if elapsed_ms > self.max_ms:
            self.misses += 1
            self.consecutive += 1
        else:
            self.consecutive = 0
        return self.level

    @property
    def level(self) -> Health:
        if self.consecutive >= self.error_after:
            return Health.ERROR
        if self.consecutive > 0:
            return Health.WARN
        return Health.OK


class StampVerdict(str, enum.Enum):
    ACCEPT = "accept"
    LATE = "late"
    RESET = "reset"


class StampOrder:
    """Stamp order of a stateful consumer with one or more inputs (a tracker).

    :meth:`check` says what to do with the next input stamp:

    * ACCEPT: after the last accepted stamp (or the first one);
    * LATE: equal to the last accepted stamp or at most ``late_tolerance_s`` before it (another
      input a little behind, a duplicate): drop it, the state has moved past it;
    * RESET: more than ``late_tolerance_s`` before it: the source restarted (a looped log, a
      restarted simulator). Start over from this stamp.

    Attributes:
        late, resets: inputs dropped as late, restarts seen.
        last_ns: the last accepted stamp, or None.
    """

    def __init__(self, late_tolerance_s: float = 0.5):
        if late_tolerance_s < 0:
            raise ValueError(f"late_tolerance_s must be >= 0, got {late_tolerance_s}")
        self.late_tolerance_ns = int(round(late_tolerance_s * NS_PER_S))
        self.last_ns: int | None = None
        self.late = 0
        self.resets = 0

    def check(self, stamp_ns: int) -> StampVerdict:
        stamp_ns = int(stamp_ns)
        last = self.last_ns
        if last is None or stamp_ns > last:
            self.last_ns = stamp_ns
            return StampVerdict.ACCEPT
        if last - stamp_ns <= self.late_tolerance_ns:
            self.late += 1
            return StampVerdict.LATE
        self.resets += 1
        self.last_ns = stamp_ns
        return StampVerdict.RESET

    def reset(self) -> None:
        self.last_ns = None


def near_tracks(boxes: np.ndarray, labels: np.ndarray, tracks: Tracks | None,
                gate_m: Mapping[int, float], dt_s: float = 0.0,
                T_now_previous: np.ndarray | None = None) -> np.ndarray:
    """(N,) bool: detections within their class's centre gate of a track of the same class.

    An input channel that may update tracks but not start them (Autoware's
    ``can_spawn_new_tracker: false``) passes only these to the tracker: a detection outside
    every gate could only have started a track.

    Args:
        boxes: (N, 7) detections, vehicle frame of the current stamp.
        labels: (N,) int class values.
        tracks: the tracker's last output (vehicle frame of its stamp), or None.
        gate_m: class value -> gate radius in metres; classes not listed use the largest.
        dt_s: current stamp minus the tracks' stamp; tracks move by their velocity (over
            ground) for that long.
        T_now_previous: (4, 4) the tracks' vehicle frame -> the current vehicle frame (from the
            ego poses), or None for the identity.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 7)
    labels = np.asarray(labels).reshape(-1)
    keep = np.zeros(len(boxes), bool)
    if tracks is None or len(tracks) == 0 or len(boxes) == 0:
        return keep
    centres = tracks.boxes[:, :3].astype(np.float64).copy()
    centres[:, :2] += tracks.velocities.astype(np.float64) * float(dt_s)
    if T_now_previous is not None:
        centres = centres @ T_now_previous[:3, :3].T + T_now_previous[:3, 3]
    default = max(gate_m.values()) if gate_m else 0.0
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        same = centres[tracks.labels == label]
        if not len(same):
            continue
        gate = gate_m.get(int(label), default)
        distance = np.linalg.norm(boxes[rows, None, :2] - same[None, :, :2], axis=-1)
        keep[rows] = (distance <= gate).any(axis=1)
    return keep

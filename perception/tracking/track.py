"""Track state held as a table of arrays (one row per live track), and its bookkeeping.

Keeping the tracks as arrays rather than one object per track lets the prediction, the
Kalman update and the management rules run batched over all tracks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..types import TrackState
from .motion import STATE_DIM


@dataclass
class TrackTable:
    """All live tracks, world frame.

    Attributes:
        ids: (T,) int64, unique for the tracker's lifetime.
        labels: (T,) int32 ObjectClass values.
        x: (T, 9) float64 states (order: see :mod:`perception.tracking.motion`).
        P: (T, 9, 9) float64 covariances.
        scores: (T,) float64 track confidence in [0, 1].
        ages: (T,) int32 frames since birth (0 in the birth frame).
        hits: (T,) int32 frames with an associated detection.
        misses: (T,) int32 consecutive frames without one.
        last_hit_ns: (T,) int64 stamp of the last associated detection.
        states: (T,) int8 TrackState.
    """

    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    x: np.ndarray = field(default_factory=lambda: np.zeros((0, STATE_DIM)))
    P: np.ndarray = field(default_factory=lambda: np.zeros((0, STATE_DIM, STATE_DIM)))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ages: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    hits: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    misses: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    last_hit_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    states: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))

    _COLUMNS = ("ids", "labels", "x", "P", "scores", "ages", "hits", "misses", "last_hit_ns",
                "states")

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def keep(self, mask: np.ndarray) -> int:
        """Keep the rows where ``mask`` (T,) bool is true; return how many were removed."""
        removed = int(len(self) - np.count_nonzero(mask))
        if removed:
            for name in self._COLUMNS:
                setattr(self, name, getattr(self, name)[mask])
        return removed

    def extend(self, other: TrackTable) -> None:
        """Append the rows of ``other``."""
        if len(other) == 0:
            return
        for name in self._COLUMNS:
            setattr(self, name, np.concatenate([getattr(self, name), getattr(other, name)]))


def new_tracks(first_id: int, labels: np.ndarray, x: np.ndarray, P: np.ndarray,
               scores: np.ndarray, stamp_ns: int, confirm_hits: int) -> TrackTable:
    """Tracks born from unmatched detections, ids ``first_id, first_id + 1, ...``."""
    n = labels.shape[0]
    state = TrackState.CONFIRMED if confirm_hits <= 1 else TrackState.TENTATIVE
    return TrackTable(
        ids=np.arange(first_id, first_id + n, dtype=np.int64),
        labels=labels.astype(np.int32),
        x=x, P=P,
        scores=scores.astype(np.float64),
        ages=np.zeros(n, np.int32),
        hits=np.ones(n, np.int32),
        misses=np.zeros(n, np.int32),
        last_hit_ns=np.full(n, stamp_ns, np.int64),
        states=np.full(n, int(state), np.int8),
    )


def mark_hits(table: TrackTable, rows: np.ndarray, scores: np.ndarray, stamp_ns: int,
              confirm_hits: int) -> None:
    """Record an associated detection for ``rows``: hit count, score, state."""
    table.hits[rows] += 1
    table.misses[rows] = 0
    table.last_hit_ns[rows] = stamp_ns
    table.scores[rows] = scores
    confirmed = (table.states[rows] != TrackState.TENTATIVE) | (table.hits[rows] >= confirm_hits)
    table.states[rows] = np.where(confirmed, TrackState.CONFIRMED, TrackState.TENTATIVE)


def mark_misses(table: TrackTable, rows: np.ndarray, score_decay: float) -> None:
    """Record a frame without detection for ``rows``: confirmed tracks start coasting."""
    table.misses[rows] += 1
    table.scores[rows] *= score_decay
    coasting = table.states[rows] != TrackState.TENTATIVE
    table.states[rows] = np.where(coasting, TrackState.COASTING, table.states[rows])


def stale(table: TrackTable, stamp_ns: int, max_coast_s: float) -> np.ndarray:
    """(T,) bool: tracks whose last hit is more than ``max_coast_s`` before ``stamp_ns``."""
    return (stamp_ns - table.last_hit_ns) > int(round(max_coast_s * 1e9))


def expired(table: TrackTable, tentative_max_misses: int, max_coast_frames: int) -> np.ndarray:
    """(T,) bool: tracks with more consecutive misses than their state allows."""
    tentative = table.states == TrackState.TENTATIVE
    limit = np.where(tentative, tentative_max_misses, max_coast_frames)
    return table.misses > limit

"""Greedy nearest-centre tracker in the style of CenterPoint, the baseline of the evaluation.

No filter: a track is the last detection it took. Each frame, a detection is moved back by its
own velocity (when it has one) and greedily matched to the nearest track centre of the same
class within a per-class gate. Unmatched detections above ``min_score`` start tracks at once;
unmatched tracks are moved forward by their velocity and kept for ``max_age_frames`` frames.
Only tracks that took a detection this frame are output, as CenterPoint does.
"""

from __future__ import annotations

import numpy as np

from ..errors import TimestampError
from ..geometry import invert_transform, transform_boxes, transform_velocities
from ..types import DETECTION_CLASSES, Detections, EgoPose, Tracks, TrackState
from .association import center_distance_cost, solve_greedy
from .config import ClassValues
from .motion import per_label


class GreedyCenterTracker:
    """Baseline tracker with the same ``update``/``reset`` interface as :class:`Tracker`.

    Args:
        gate_m: per-class centre-distance gate, metres.
        max_age_frames: frames an unmatched track is kept (not output) before deletion.
        min_score: detections below this score are ignored.
    """

    def __init__(self, gate_m: ClassValues | None = None, max_age_frames: int = 3,
                 min_score: float = 0.0):
        self.gate_m = gate_m if gate_m is not None else ClassValues(vehicle=4.0, pedestrian=1.5,
                                                                    cyclist=2.5)
        self.max_age_frames = max_age_frames
        self.min_score = min_score
        self._next_id = 1
        self.reset()

    def reset(self) -> None:
        """Forget every track; ids keep counting up."""
        self._boxes = np.zeros((0, 7))          # world frame
        self._velocities = np.zeros((0, 2))
        self._labels = np.zeros(0, np.int32)
        self._ids = np.zeros(0, np.int64)
        self._scores = np.zeros(0)
        self._ages = np.zeros(0, np.int32)
        self._hits = np.zeros(0, np.int32)
        self._misses = np.zeros(0, np.int32)
        self._last_stamp_ns: int | None = None
        self._T_origin_world: np.ndarray | None = None

    def update(self, detections: Detections, stamp_ns: int,
               ego_pose: EgoPose | None = None) -> Tracks:
        """Same contract as :meth:`perception.tracking.Tracker.update` (policy: error)."""
        if self._last_stamp_ns is not None and stamp_ns <= self._last_stamp_ns:
            raise TimestampError(f"GreedyCenterTracker.update: stamp_ns {stamp_ns} does not "
                                 f"increase (previous {self._last_stamp_ns})")
        T_world_vehicle = np.eye(4) if ego_pose is None else ego_pose.T_world_vehicle
        if self._T_origin_world is None:
            self._T_origin_world = invert_transform(T_world_vehicle)
        T_track_vehicle = self._T_origin_world @ T_world_vehicle
        dt_s = 0.0 if self._last_stamp_ns is None else (stamp_ns - self._last_stamp_ns) * 1e-9
        self._last_stamp_ns = stamp_ns

        keep = np.isin(detections.labels, [int(c) for c in DETECTION_CLASSES])
        keep &= detections.scores >= self.min_score
        boxes = transform_boxes(T_track_vehicle, detections.boxes[keep]).astype(np.float64)
        labels = detections.labels[keep]
        scores = detections.scores[keep].astype(np.float64)
        det_vel = None
        if detections.velocities is not None:
            det_vel = transform_velocities(T_track_vehicle,
                                           detections.velocities[keep]).astype(np.float64)

        rows, cols = self._match(boxes, labels, det_vel, dt_s)
        self._apply(rows, cols, boxes, labels, scores, det_vel, dt_s)
        return self._output(stamp_ns, invert_transform(T_track_vehicle))

    def _match(self, boxes: np.ndarray, labels: np.ndarray, det_vel: np.ndarray | None,
               dt_s: float) -> tuple[np.ndarray, np.ndarray]:
        back_xy = boxes[:, :2] if det_vel is None else boxes[:, :2] - det_vel * dt_s
        gate = per_label(self.gate_m, self._labels)
        cost = center_distance_cost(self._boxes[:, :2], back_xy, gate)
        cost[self._labels[:, None] != labels[None, :]] = np.inf
        return solve_greedy(cost)

    def _apply(self, rows: np.ndarray, cols: np.ndarray, boxes: np.ndarray, labels: np.ndarray,
               scores: np.ndarray, det_vel: np.ndarray | None, dt_s: float) -> None:
        n_tracks = self._ids.shape[0]
        matched_t = np.zeros(n_tracks, dtype=bool)
        matched_t[rows] = True
        # Matched tracks take the detection; without a detector velocity, difference centres.
        if det_vel is not None:
            new_vel = det_vel[cols]
        elif dt_s > 0:
            new_vel = (boxes[cols, :2] - self._boxes[rows, :2]) / dt_s
        else:
            new_vel = np.zeros((cols.size, 2))
        # Unmatched tracks move forward with their velocity.
        self._boxes[~matched_t, :2] += self._velocities[~matched_t] * dt_s
        self._boxes[rows] = boxes[cols]
        self._velocities[rows] = new_vel
        self._scores[rows] = scores[cols]
        self._hits[rows] += 1
        self._misses[~matched_t] += 1
        self._misses[rows] = 0
        self._ages += 1
        alive = self._misses <= self.max_age_frames
        self._select(alive)

        born = np.ones(boxes.shape[0], dtype=bool)
        born[cols] = False
        n = int(born.sum())
        ids = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
        self._next_id += n
        vel = det_vel[born] if det_vel is not None else np.zeros((n, 2))
        self._boxes = np.concatenate([self._boxes, boxes[born]])
        self._velocities = np.concatenate([self._velocities, vel])
        self._labels = np.concatenate([self._labels, labels[born]]).astype(np.int32)
        self._ids = np.concatenate([self._ids, ids])
        self._scores = np.concatenate([self._scores, scores[born]])
        self._ages = np.concatenate([self._ages, np.zeros(n, np.int32)])
        self._hits = np.concatenate([self._hits, np.ones(n, np.int32)])
        self._misses = np.concatenate([self._misses, np.zeros(n, np.int32)])

    def _select(self, mask: np.ndarray) -> None:
        for name in ("_boxes", "_velocities", "_labels", "_ids", "_scores", "_ages", "_hits",
                     "_misses"):
            setattr(self, name, getattr(self, name)[mask])

    def _output(self, stamp_ns: int, T_vehicle_track: np.ndarray) -> Tracks:
        show = self._misses == 0
        n = int(show.sum())
        return Tracks(
            stamp_ns=stamp_ns,
            boxes=transform_boxes(T_vehicle_track, self._boxes[show]),
            labels=self._labels[show],
            ids=self._ids[show],
            velocities=transform_velocities(T_vehicle_track, self._velocities[show]),
            scores=self._scores[show].astype(np.float32),
            ages=self._ages[show],
            hits=self._hits[show],
            states=np.full(n, int(TrackState.CONFIRMED), np.int8),
        )

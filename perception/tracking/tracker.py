"""The multi-object tracker: detections per frame in, tracks with stable ids out.

Frames: detections arrive in the vehicle frame of their stamp. They are moved into the
tracker's world frame with the ego pose, so that ego motion does not look like object motion.
That world frame is the world frame of the ego poses shifted so that the first pose after a
reset is its origin (this keeps coordinates small). Tracks are returned in the vehicle frame of
the current stamp, with over-ground velocities. Without an ego pose the vehicle frame is taken
as the world frame (a vehicle standing still).

Time: stamps must strictly increase. A stamp that repeats or goes backwards raises
:class:`~perception.errors.TimestampError` and leaves the state untouched
(``management.on_time_reversal: error``, the default), or resets the tracker and starts again
from that frame (``reset``). Ids are never reused by a :class:`Tracker`, not even after a reset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import TimestampError, ValidationError
from ..geometry import (
    invert_transform,
    transform_boxes,
    transform_velocities,
    yaw_of,
)
from ..types import DETECTION_CLASSES, Detections, EgoPose, ObjectClass, Tracks, TrackState
from . import association
from .config import TrackerConfig, check_tracker_config
from .motion import (
    HEADING,
    kalman_update,
    kalman_update_with_velocity,
    make_motion_model,
    measurement_noise,
    per_label,
)
from .track import TrackTable, expired, mark_hits, mark_misses, new_tracks, stale


@dataclass
class TrackerStats:
    """Counters since the tracker was built (not cleared by :meth:`Tracker.reset`)."""

    frames: int = 0
    detections_in: int = 0
    dropped_invalid: int = 0
    """Rows refused by :func:`detections_from_arrays` (NaN/inf, size <= 0, bad score/label)."""
    dropped_class: int = 0
    """Detections of classes the tracker does not track (unknown, sign)."""
    dropped_low_score: int = 0
    births: int = 0
    deletions: int = 0
    resets: int = 0


def detections_from_arrays(stamp_ns: int, boxes: np.ndarray, scores: np.ndarray,
                           labels: np.ndarray, velocities: np.ndarray | None = None
                           ) -> tuple[Detections, int]:
    """Build :class:`Detections` from raw arrays, dropping the rows it would refuse.

    A row is dropped when its box, score or velocity holds NaN or inf, a size is not positive,
    the score lies outside [0, 1] or the label is not an ObjectClass value.

    Args:
        boxes: (N, 7) vehicle frame. scores: (N,). labels: (N,) ObjectClass values.
        velocities: (N, 2) m/s over ground, vehicle frame, or None.
    Returns:
        (detections, number of dropped rows).
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 7)
    if boxes.ndim != 2 or boxes.shape[1] != 7:
        raise ValidationError(f"detections_from_arrays: boxes must be (N, 7), got "
                              f"{boxes.shape}")
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    if scores.shape[0] != boxes.shape[0] or labels.shape[0] != boxes.shape[0]:
        raise ValidationError(f"detections_from_arrays: {boxes.shape[0]} boxes, "
                              f"{scores.shape[0]} scores, {labels.shape[0]} labels")
    keep = np.isfinite(boxes).all(axis=1) & np.isfinite(scores)
    keep &= (np.nan_to_num(boxes[:, 3:6], nan=-1.0) > 0).all(axis=1)
    keep &= (scores >= 0) & (scores <= 1)
    keep &= np.isin(labels, [int(c) for c in ObjectClass])
    if velocities is not None:
        velocities = np.asarray(velocities, dtype=np.float64).reshape(-1, 2)
        if velocities.shape[0] != boxes.shape[0]:
            raise ValidationError(f"detections_from_arrays: {velocities.shape[0]} velocities "
                                  f"for {boxes.shape[0]} boxes")
        keep &= np.isfinite(velocities).all(axis=1)
        velocities = velocities[keep].astype(np.float32)
    dets = Detections(stamp_ns, boxes[keep].astype(np.float32), scores[keep].astype(np.float32),
                      labels[keep].astype(np.int32), velocities=velocities)
    return dets, int(boxes.shape[0] - np.count_nonzero(keep))


class Tracker:
    """Tracks detections over time; see the module docstring and ``docs/tracking.md``."""

    def __init__(self, config: TrackerConfig | None = None):
        self.config = check_tracker_config(config if config is not None else TrackerConfig())
        self.model = make_motion_model(self.config.motion, self.config.measurement)
        self._R = measurement_noise(self.config.measurement)
        self._next_id = 1
        self.stats = TrackerStats()
        self._tracks = TrackTable()
        self._last_stamp_ns: int | None = None
        self._T_origin_world: np.ndarray | None = None

    def reset(self) -> None:
        """Forget every track and the time base. Ids keep counting up (never reused)."""
        self._tracks = TrackTable()
        self._last_stamp_ns = None
        self._T_origin_world = None
        self.stats.resets += 1

    @property
    def num_tracks(self) -> int:
        """Live tracks of every state, including those not in the output."""
        return len(self._tracks)

    def update_arrays(self, stamp_ns: int, boxes: np.ndarray, scores: np.ndarray,
                      labels: np.ndarray, velocities: np.ndarray | None = None,
                      ego_pose: EgoPose | None = None) -> Tracks:
        """:meth:`update` from raw arrays; invalid rows (e.g. NaN boxes) are dropped and
        counted in ``stats.dropped_invalid``."""
        dets, dropped = detections_from_arrays(stamp_ns, boxes, scores, labels, velocities)
        self.stats.dropped_invalid += dropped
        return self.update(dets, stamp_ns, ego_pose)

    def update(self, detections: Detections, stamp_ns: int,
               ego_pose: EgoPose | None = None) -> Tracks:
        """Advance to ``stamp_ns``, associate ``detections`` and return the tracks.

        Args:
            detections: detections of the frame at ``stamp_ns`` (vehicle frame). An empty
                frame is fine: every track coasts.
            stamp_ns: int64 ns, strictly greater than the previous call's.
            ego_pose: pose at ``stamp_ns`` (within ``management.max_pose_offset_s``), or None.
        Returns:
            Tracks in the vehicle frame of ``stamp_ns``: confirmed tracks, plus coasting and
            tentative ones as ``management.output_*`` say.
        Raises:
            TimestampError: stamps disagree, or the stamp does not increase (policy ``error``).
        """
        stamp_ns = self._check_inputs(detections, stamp_ns, ego_pose)
        if self._last_stamp_ns is not None and stamp_ns <= self._last_stamp_ns:
            if self.config.management.on_time_reversal == "error":
                raise TimestampError(
                    f"Tracker.update: stamp_ns {stamp_ns} does not increase (previous "
                    f"{self._last_stamp_ns}); call reset() to start a new sequence")
            self.reset()
        T_world_vehicle = np.eye(4) if ego_pose is None else ego_pose.T_world_vehicle
        if self._T_origin_world is None:
            self._T_origin_world = invert_transform(T_world_vehicle)
        T_track_vehicle = self._T_origin_world @ T_world_vehicle
        dt_s = 0.0 if self._last_stamp_ns is None else (stamp_ns - self._last_stamp_ns) * 1e-9

        boxes, scores, labels, velocities = self._detections_in_track_frame(detections,
                                                                            T_track_vehicle)
        self._step(boxes, scores, labels, velocities, stamp_ns, dt_s)
        self._last_stamp_ns = stamp_ns
        self.stats.frames += 1
        return self._output(stamp_ns, invert_transform(T_track_vehicle))

    # ------------------------------------------------------------------------------------
    def _check_inputs(self, detections: Detections, stamp_ns: int,
                      ego_pose: EgoPose | None) -> int:
        if not isinstance(detections, Detections):
            raise ValidationError(f"Tracker.update: detections must be Detections, got "
                                  f"{type(detections).__name__}")
        if isinstance(stamp_ns, bool) or not isinstance(stamp_ns, (int, np.integer)):
            raise TimestampError(f"Tracker.update: stamp_ns must be an int (ns), got "
                                 f"{stamp_ns!r}")
        stamp_ns = int(stamp_ns)
        if detections.stamp_ns != stamp_ns:
            raise TimestampError(f"Tracker.update: detections.stamp_ns {detections.stamp_ns} "
                                 f"differs from stamp_ns {stamp_ns}")
        if ego_pose is not None:
            if not isinstance(ego_pose, EgoPose):
                raise ValidationError(f"Tracker.update: ego_pose must be EgoPose or None, got "
                                      f"{type(ego_pose).__name__}")
            offset_s = abs(ego_pose.stamp_ns - stamp_ns) * 1e-9
            if offset_s > self.config.management.max_pose_offset_s:
                raise TimestampError(
                    f"Tracker.update: ego_pose.stamp_ns {ego_pose.stamp_ns} is {offset_s:.3f} s "
                    f"from stamp_ns {stamp_ns} (max {self.config.management.max_pose_offset_s})")
        return stamp_ns

    def _detections_in_track_frame(self, detections: Detections, T_track_vehicle: np.ndarray
                                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                              np.ndarray | None]:
        """Filter by class and score, then move to the tracker's world frame (float64)."""
        cfg = self.config.management
        self.stats.detections_in += len(detections)
        tracked = np.isin(detections.labels, [int(c) for c in DETECTION_CLASSES])
        strong = detections.scores >= cfg.min_score
        self.stats.dropped_class += int(np.count_nonzero(~tracked))
        self.stats.dropped_low_score += int(np.count_nonzero(tracked & ~strong))
        keep = tracked & strong
        boxes = transform_boxes(T_track_vehicle, detections.boxes[keep]).astype(np.float64)
        velocities = None
        if detections.velocities is not None:
            velocities = transform_velocities(T_track_vehicle,
                                              detections.velocities[keep]).astype(np.float64)
        return (boxes, detections.scores[keep].astype(np.float64), detections.labels[keep],
                velocities)

    def _step(self, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
              velocities: np.ndarray | None, stamp_ns: int, dt_s: float) -> None:
        cfg = self.config.management
        tracks = self._tracks
        tracks.ages += 1
        # A track unseen for longer than max_coast_s goes before it can take a detection.
        self.stats.deletions += tracks.keep(~stale(tracks, stamp_ns, cfg.max_coast_s))

        previous_xy = tracks.x[:, :2].copy()
        tracks.x, tracks.P = self.model.predict(tracks.x, tracks.P, tracks.labels, dt_s)
        rows, cols = self._associate(boxes, labels, velocities, previous_xy, dt_s)

        measurement = self.config.measurement
        if measurement.fuse_velocity and velocities is not None:
            tracks.x[rows], tracks.P[rows] = kalman_update_with_velocity(
                tracks.x[rows], tracks.P[rows], boxes[cols], self._R, velocities[cols],
                measurement.velocity_std_mps, self.model)
        else:
            tracks.x[rows], tracks.P[rows] = kalman_update(
                tracks.x[rows], tracks.P[rows], boxes[cols], self._R)
        mark_hits(tracks, rows, scores[cols], stamp_ns, cfg.confirm_hits)
        missed = np.ones(len(tracks), dtype=bool)
        missed[rows] = False
        mark_misses(tracks, np.flatnonzero(missed), cfg.score_decay)
        dead = expired(tracks, cfg.tentative_max_misses, cfg.max_coast_frames)
        self.stats.deletions += tracks.keep(~dead)

        unmatched = np.ones(boxes.shape[0], dtype=bool)
        unmatched[cols] = False
        born = unmatched & (scores >= cfg.birth_score_min)
        self._birth(boxes[born], scores[born], labels[born],
                    None if velocities is None else velocities[born], stamp_ns)
        if cfg.heading_flip_fix:
            self._fix_heading_flips()

    def _associate(self, boxes: np.ndarray, labels: np.ndarray, velocities: np.ndarray | None,
                   previous_xy: np.ndarray, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Per-class gated assignment; returns (track rows, detection rows), int64."""
        cfg = self.config.association
        tracks = self._tracks
        all_rows, all_cols = [], []
        for cls in DETECTION_CLASSES:
            t_idx = np.flatnonzero(tracks.labels == cls)
            d_idx = np.flatnonzero(labels == cls)
            if t_idx.size == 0 or d_idx.size == 0:
                continue
            cost = self._cost(t_idx, d_idx, boxes, velocities, previous_xy, dt_s)
            r, c = association.solve(cost, cfg.solver)
            all_rows.append(t_idx[r])
            all_cols.append(d_idx[c])
        if not all_rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(all_rows), np.concatenate(all_cols)

    def _cost(self, t_idx: np.ndarray, d_idx: np.ndarray, boxes: np.ndarray,
              velocities: np.ndarray | None, previous_xy: np.ndarray, dt_s: float) -> np.ndarray:
        cfg = self.config.association
        tracks = self._tracks
        if cfg.cost == "center":
            gate_m = per_label(cfg.center_gate_m, tracks.labels[t_idx])
            if cfg.use_detection_velocity and velocities is not None:
                # CenterPoint: move the detection back by its own velocity and compare it
                # with where the track was at the previous frame.
                det_xy = boxes[d_idx, :2] - velocities[d_idx] * dt_s
                return association.center_distance_cost(previous_xy[t_idx], det_xy, gate_m)
            return association.center_distance_cost(tracks.x[t_idx, :2], boxes[d_idx, :2],
                                                    gate_m)
        if cfg.cost == "iou":
            return association.iou_cost(tracks.x[t_idx, :7], boxes[d_idx], cfg.iou_min)
        if cfg.cost == "mahalanobis":
            return association.mahalanobis_cost(tracks.x[t_idx], tracks.P[t_idx], self._R,
                                                boxes[d_idx], cfg.mahalanobis_gate)
        raise ValueError(f"unknown association cost {cfg.cost!r}")

    def _birth(self, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
               velocities: np.ndarray | None, stamp_ns: int) -> None:
        if boxes.shape[0] == 0:
            return
        x, P = self.model.init_state(boxes, labels, velocities)
        born = new_tracks(self._next_id, labels, x, P, scores, stamp_ns,
                          self.config.management.confirm_hits)
        self._next_id += len(born)
        self.stats.births += len(born)
        self._tracks.extend(born)

    def _fix_heading_flips(self) -> None:
        """Turn boxes by pi where the heading points against a reliable velocity."""
        tracks = self._tracks
        if len(tracks) == 0:
            return
        vel = self.model.velocities(tracks.x)
        speed = np.hypot(vel[:, 0], vel[:, 1])
        heading = tracks.x[:, HEADING]
        along = vel[:, 0] * np.cos(heading) + vel[:, 1] * np.sin(heading)
        flip = (speed > self.config.management.heading_flip_min_speed_mps) & (along < 0)
        if flip.any():
            self.model.flip_heading(tracks.x, tracks.P, flip)

    def _output(self, stamp_ns: int, T_vehicle_track: np.ndarray) -> Tracks:
        cfg = self.config.management
        tracks = self._tracks
        show = tracks.states == TrackState.CONFIRMED
        if cfg.output_coasting:
            show |= tracks.states == TrackState.COASTING
        if cfg.output_tentative:
            show |= tracks.states == TrackState.TENTATIVE
        x, P = tracks.x[show], tracks.P[show]
        J = self.model.frame_jacobian(yaw_of(T_vehicle_track))
        return Tracks(
            stamp_ns=stamp_ns,
            boxes=transform_boxes(T_vehicle_track, x[:, :7]),
            labels=tracks.labels[show],
            ids=tracks.ids[show],
            velocities=transform_velocities(T_vehicle_track, self.model.velocities(x)),
            scores=np.clip(tracks.scores[show], 0.0, 1.0).astype(np.float32),
            ages=tracks.ages[show],
            hits=tracks.hits[show],
            states=tracks.states[show],
            covariances=(J @ P @ J.T).astype(np.float32),
        )

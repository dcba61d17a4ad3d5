"""Waymo ``metrics_pb2.Objects`` files (ground truth, predictions, tracks) keyed by frame.

The file format (building, atomic writing, parsing) is :mod:`perception.data.waymo_objects`;
this module maps it to and from ``{FrameKey: boxes}``. Objects are grouped into frames by
``(context_name, frame_timestamp_micros)``. Stamps become ``FrameKey.stamp_ns = micros * 1000``
on reading and go back with ``// 1000`` on writing.

Object ids (strings in Waymo files) are kept for ground truth as unicode arrays and mapped to
int64 for predictions in first-seen order (:attr:`PredictionSet.id_names` maps back).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.waymo_objects import (
    PredictionFrame,
    read_objects,
    write_ground_truth_objects,
    write_objects,
)
from ..errors import DataError, PerceptionError
from ..types import Boxes3D, Detections
from .frames import FrameKey

__all__ = ["GroundTruthSet", "PredictionSet", "read_ground_truth", "read_predictions",
           "write_ground_truth", "write_predictions"]


@dataclass(frozen=True, eq=False)
class GroundTruthSet:
    """Ground truth of an Objects file: ``frames[key]`` is a :class:`Boxes3D` with labels,
    string ``ids`` (None when some object has no id), ``num_points``
    (``num_lidar_points_in_box``; 0 when unset, as the official tool reads it) and
    ``difficulty`` (``detection_difficulty_level``)."""

    frames: dict[FrameKey, Boxes3D]
    tracking_difficulty: dict[FrameKey, np.ndarray]


@dataclass(frozen=True, eq=False)
class PredictionSet:
    """Predictions of an Objects file.

    Attributes:
        frames: per frame :class:`Detections` (``stamp_ns`` = the frame's stamp).
        overlap_nlz: per frame (N,) bool ``overlap_with_nlz``.
        track_ids: per frame (N,) int64 ids, or None when some object has no id.
        id_names: the original string id of each int64 id (index = id).
    """

    frames: dict[FrameKey, Detections]
    overlap_nlz: dict[FrameKey, np.ndarray]
    track_ids: dict[FrameKey, np.ndarray] | None
    id_names: tuple[str, ...]


def _group(objects) -> dict[FrameKey, list[int]]:
    groups: dict[FrameKey, list[int]] = {}
    for i, o in enumerate(objects.objects):
        key = FrameKey(o.context_name, int(o.frame_timestamp_micros) * 1000)
        groups.setdefault(key, []).append(i)
    return groups


def _box_array(objs) -> np.ndarray:
    return np.array([[o.object.box.center_x, o.object.box.center_y, o.object.box.center_z,
                      o.object.box.length, o.object.box.width, o.object.box.height,
                      o.object.box.heading] for o in objs], np.float64).reshape(-1, 7)


def read_ground_truth(path: str | Path) -> GroundTruthSet:
    """Read ground truth. Raises DataError naming the file and frame on bad boxes/types."""
    objects = read_objects(path)
    frames: dict[FrameKey, Boxes3D] = {}
    tracking: dict[FrameKey, np.ndarray] = {}
    has_ids = all(o.object.id for o in objects.objects)
    for key, idx in _group(objects).items():
        objs = [objects.objects[i] for i in idx]
        try:
            frames[key] = Boxes3D(
                boxes=_box_array(objs),
                labels=np.array([o.object.type for o in objs], np.int64),
                ids=np.array([o.object.id for o in objs], dtype=str) if has_ids else None,
                num_points=np.array([o.object.num_lidar_points_in_box for o in objs],
                                    np.int64),
                difficulty=np.array([o.object.detection_difficulty_level for o in objs],
                                    np.int64))
        except PerceptionError as exc:
            raise DataError(f"frame {key}: {exc}", source=str(path)) from None
        tracking[key] = np.array([o.object.tracking_difficulty_level for o in objs], np.int8)
    return GroundTruthSet(frames, tracking)


def read_predictions(path: str | Path) -> PredictionSet:
    """Read predictions (and track ids when every object has one)."""
    objects = read_objects(path)
    frames: dict[FrameKey, Detections] = {}
    nlz: dict[FrameKey, np.ndarray] = {}
    ids: dict[FrameKey, np.ndarray] = {}
    names: dict[str, int] = {}
    has_ids = len(objects.objects) > 0 and all(o.object.id for o in objects.objects)
    for key, idx in _group(objects).items():
        objs = [objects.objects[i] for i in idx]
        try:
            frames[key] = Detections(
                stamp_ns=key.stamp_ns, boxes=_box_array(objs),
                scores=np.array([o.score for o in objs], np.float64),
                labels=np.array([o.object.type for o in objs], np.int64))
        except PerceptionError as exc:
            raise DataError(f"frame {key}: {exc}", source=str(path)) from None
        nlz[key] = np.array([o.overlap_with_nlz for o in objs], bool)
        if has_ids:
            ids[key] = np.array([names.setdefault(o.object.id, len(names)) for o in objs],
                                np.int64)
    return PredictionSet(frames, nlz, ids if has_ids else None, tuple(names))


def write_predictions(path: str | Path, frames: Mapping[FrameKey, Detections],
                      track_ids: Mapping[FrameKey, np.ndarray] | None = None) -> int:
    """Write detections (optionally with track ids) as an Objects file, atomically, e.g. a
    leaderboard submission body: frames in key order, each stamped with its key, speed when
    the detections carry velocities. Returns the number of objects written."""
    return write_objects(path, (PredictionFrame(key.sequence_id, frames[key],
                                                None if track_ids is None else track_ids[key],
                                                key.stamp_ns)
                                for key in sorted(frames)))


def write_ground_truth(path: str | Path, frames: Mapping[FrameKey, Boxes3D]) -> int:
    """Write ground truth as an Objects file, atomically (ids, point counts and difficulty
    when set). Returns the number of objects written."""
    return write_ground_truth_objects(path, ((key.sequence_id, key.stamp_ns, frames[key])
                                             for key in sorted(frames)))

"""Reading and writing Waymo ``metrics_pb2.Objects`` files (ground truth, predictions, tracks).

An ``Objects`` file is one serialized protobuf message holding every object of every frame;
objects are grouped into frames by ``(context_name, frame_timestamp_micros)``. Stamps become
``FrameKey.stamp_ns = micros * 1000`` on reading and go back with ``// 1000`` on writing.

Only the Waymo protos are needed (``waymo-open-dataset`` installed without TensorFlow), never
TensorFlow. Object ids (strings in Waymo files) are kept for ground truth as unicode arrays and
mapped to int64 for predictions in first-seen order (:attr:`PredictionSet.id_names` maps back).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError, PerceptionError
from ..types import Boxes3D, Detections
from .frames import FrameKey

__all__ = ["GroundTruthSet", "PredictionSet", "read_ground_truth", "read_predictions",
           "write_ground_truth", "write_predictions", "objects_from_bytes"]


@dataclass(frozen=True, eq=False)
class GroundTruthSet:
    """Ground truth of an Objects file: ``frames[key]`` is a :class:`Boxes3D` with labels,
    string ``ids`` (None when some object has no id), ``num_points`` (``num_lidar_points_in_box``; 0 when unset, as the
    official tool reads it) and ``difficulty`` (``detection_difficulty_level``)."""

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


def _metrics_pb2():
    try:
        from waymo_open_dataset.protos import metrics_pb2
    except ImportError as exc:
        raise PerceptionError(
            "reading Waymo Objects files needs the Waymo protos: "
            "pip install --no-deps waymo-open-dataset-tf-2-12-0==1.6.7 protobuf "
            f"({exc})") from None
    return metrics_pb2


def objects_from_bytes(data: bytes, source: str):
    """Parse a serialized ``Objects`` message; DataError when it is not one."""
    metrics_pb2 = _metrics_pb2()
    objects = metrics_pb2.Objects()
    try:
        objects.ParseFromString(data)
    except Exception as exc:  # protobuf raises DecodeError or RuntimeError by version
        raise DataError(f"not a serialized waymo Objects message ({exc})", source=source) \
            from None
    return objects


def _read(path: str | Path):
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror}", source=str(path)) from None
    return objects_from_bytes(data, str(path))


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
    objects = _read(path)
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
    objects = _read(path)
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
    """Write detections (optionally with track ids) as an Objects file, e.g. a leaderboard
    submission body. Returns the number of objects written."""
    metrics_pb2 = _metrics_pb2()
    out = metrics_pb2.Objects()
    for key in sorted(frames):
        det = frames[key]
        tid = None if track_ids is None else track_ids[key]
        for i in range(len(det)):
            o = out.objects.add()
            _fill_box(o, det.boxes[i])
            o.object.type = int(det.labels[i])
            o.score = float(det.scores[i])
            o.context_name = key.sequence_id
            o.frame_timestamp_micros = key.stamp_ns // 1000
            if tid is not None:
                o.object.id = str(int(tid[i]))
    Path(path).write_bytes(out.SerializeToString())
    return len(out.objects)


def write_ground_truth(path: str | Path, frames: Mapping[FrameKey, Boxes3D]) -> int:
    """Write ground truth as an Objects file (ids, point counts and difficulty when set)."""
    metrics_pb2 = _metrics_pb2()
    out = metrics_pb2.Objects()
    for key in sorted(frames):
        boxes = frames[key]
        for i in range(len(boxes)):
            o = out.objects.add()
            _fill_box(o, boxes.boxes[i])
            o.object.type = int(boxes.labels[i])
            if boxes.ids is not None:
                o.object.id = str(boxes.ids[i])
            if boxes.num_points is not None:
                o.object.num_lidar_points_in_box = int(boxes.num_points[i])
            if boxes.difficulty[i]:
                o.object.detection_difficulty_level = int(boxes.difficulty[i])
            o.context_name = key.sequence_id
            o.frame_timestamp_micros = key.stamp_ns // 1000
    Path(path).write_bytes(out.SerializeToString())
    return len(out.objects)


def _fill_box(o, box: np.ndarray) -> None:
    b = o.object.box
    b.center_x, b.center_y, b.center_z = float(box[0]), float(box[1]), float(box[2])
    b.length, b.width, b.height = float(box[3]), float(box[4]), float(box[5])
    b.heading = float(box[6])

"""Waymo metrics ``Objects`` files: predictions and ground truth, written and parsed.

An ``Objects`` file is one serialized ``metrics_pb2.Objects`` message holding every object of
every frame (the ``.bin`` the official evaluator and the leaderboard take); a frame is
``(context_name, frame_timestamp_micros)``. Stamps are int64 nanoseconds in this package and
``stamp_ns // 1000`` microseconds in the file. Boxes are vehicle-frame
``(x, y, z, length, width, height, heading)`` as in :class:`~perception.types.Boxes3D`.

Files are written atomically (temp file + ``os.replace``), so the evaluator or an upload never
sees half a file. Only the Waymo protos are needed (``waymo-open-dataset`` installed without
TensorFlow), never TensorFlow. Grouping the objects of a parsed file into frames is the job of
the callers (:mod:`perception.eval.waymo_objects` keys them by ``FrameKey``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import DataError, PerceptionError, ValidationError
from ..types import Boxes3D, Detections

__all__ = ["PredictionFrame", "detections_to_objects", "write_objects",
           "ground_truth_to_objects", "write_ground_truth_objects", "read_objects",
           "objects_from_bytes", "fill_label"]


class PredictionFrame(NamedTuple):
    """Predictions of one frame. A plain ``(context_name, detections)`` pair also works.

    Attributes:
        context_name: the segment's ``Frame.context.name``.
        detections: vehicle-frame boxes, scores and labels; velocities (vehicle frame, m/s),
            when set, are written as ``speed_x``, ``speed_y``.
        track_ids: (N,) int64 track ids, written as the object ids; or None (no ids).
        stamp_ns: the frame's stamp; None takes ``detections.stamp_ns``. Written as
            ``stamp_ns // 1000``, which must equal the frame's ``timestamp_micros``.
    """

    context_name: str
    detections: Detections
    track_ids: np.ndarray | None = None
    stamp_ns: int | None = None


def detections_to_objects(frames: Iterable[PredictionFrame | tuple]):
    """Predictions -> ``metrics_pb2.Objects`` with one ``Object`` per box, in input order.

    Each object gets box, type, score, ``context_name`` and ``frame_timestamp_micros``; speed
    when the detections carry velocities; ``object.id = str(track id)`` when track ids are
    given.

    Raises:
        ValidationError: track ids whose count differs from the frame's detections.
    """
    objects = _metrics_pb2().Objects()
    for frame in frames:
        _add_predictions(objects, PredictionFrame(*frame))
    return objects


def write_objects(path: str | os.PathLike, frames: Iterable[PredictionFrame | tuple]) -> int:
    """Write predictions (:func:`detections_to_objects`) as an Objects file, atomically, e.g.
    a leaderboard submission body. Returns the number of objects written."""
    return _save(path, detections_to_objects(frames))


def ground_truth_to_objects(frames: Iterable[tuple[str, int, Boxes3D]]):
    """Ground truth -> ``metrics_pb2.Objects``, in input order.

    Args:
        frames: ``(context_name, stamp_ns, boxes)`` per frame.

    Returns:
        One ``Object`` per box: box, type, ``context_name``, ``frame_timestamp_micros``; the id,
        ``num_lidar_points_in_box`` when known and ``detection_difficulty_level`` when labelled
        (unset stays unset, so the evaluator derives the level from the point count).
    """
    objects = _metrics_pb2().Objects()
    for context_name, stamp_ns, boxes in frames:
        _add_ground_truth(objects, context_name, stamp_ns, boxes)
    return objects


def write_ground_truth_objects(path: str | os.PathLike,
                               frames: Iterable[tuple[str, int, Boxes3D]]) -> int:
    """Write ground truth (:func:`ground_truth_to_objects`) as an Objects file, atomically.
    Returns the number of objects written."""
    return _save(path, ground_truth_to_objects(frames))


def read_objects(path: str | os.PathLike):
    """Parse an Objects file into a ``metrics_pb2.Objects``; DataError naming the file when it
    cannot be read or is not one."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror}", source=str(path)) from None
    return objects_from_bytes(data, str(path))


def objects_from_bytes(data: bytes, source: str):
    """Parse a serialized ``Objects`` message; DataError naming ``source`` when it is not one."""
    objects = _metrics_pb2().Objects()
    try:
        objects.ParseFromString(data)
    except Exception as exc:  # protobuf raises DecodeError or RuntimeError by version
        raise DataError(f"not a serialized waymo Objects message ({exc})", source=source) \
            from None
    return objects


def fill_label(label, box: np.ndarray, label_type: int) -> None:
    """Set the box and type of a Waymo ``Label`` (the message of both ``Frame.laser_labels``
    and ``Objects``). ``box``: (7,) vehicle-frame ``(x, y, z, l, w, h, heading)``."""
    b = label.box
    (b.center_x, b.center_y, b.center_z, b.length, b.width, b.height,
     b.heading) = (float(v) for v in box)
    label.type = label_type


def _add_predictions(objects, frame: PredictionFrame) -> None:
    det, track_ids = frame.detections, frame.track_ids
    if track_ids is not None and len(track_ids) != len(det):
        raise ValidationError(f"track_ids of {frame.context_name!r}: {len(track_ids)} ids for "
                              f"{len(det)} detections")
    stamp_ns = det.stamp_ns if frame.stamp_ns is None else frame.stamp_ns
    for i in range(len(det)):
        o = objects.objects.add()
        fill_label(o.object, det.boxes[i], int(det.labels[i]))
        if det.velocities is not None:
            o.object.metadata.speed_x, o.object.metadata.speed_y = det.velocities[i].tolist()
        if track_ids is not None:
            o.object.id = str(int(track_ids[i]))
        o.score = float(det.scores[i])
        o.context_name = frame.context_name
        o.frame_timestamp_micros = stamp_ns // 1000


def _add_ground_truth(objects, context_name: str, stamp_ns: int, boxes: Boxes3D) -> None:
    for i in range(len(boxes)):
        o = objects.objects.add()
        fill_label(o.object, boxes.boxes[i], int(boxes.labels[i]))
        if boxes.ids is not None:
            o.object.id = str(boxes.ids[i])
        if boxes.num_points is not None:
            o.object.num_lidar_points_in_box = int(boxes.num_points[i])
        if boxes.difficulty[i]:
            o.object.detection_difficulty_level = int(boxes.difficulty[i])
        o.context_name = context_name
        o.frame_timestamp_micros = stamp_ns // 1000


def _save(path: str | os.PathLike, objects) -> int:
    """Write a serialized Objects message atomically (temp file + rename); returns its count."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    try:
        tmp.write_bytes(objects.SerializeToString())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return len(objects.objects)


def _metrics_pb2():
    try:
        from waymo_open_dataset.protos import metrics_pb2
    except ImportError as exc:
        raise PerceptionError(
            "Waymo Objects files need the Waymo protos: "
            "pip install --no-deps waymo-open-dataset-tf-2-12-0==1.6.7 protobuf "
            f"({exc})") from None
    return metrics_pb2

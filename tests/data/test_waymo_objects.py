"""Waymo metrics ``Objects`` files: the prediction writer (speed, track ids, atomic writes)."""

from __future__ import annotations

import numpy as np
import pytest

from perception.data.waymo_objects import PredictionFrame, read_objects, write_objects
from perception.errors import ValidationError
from perception.types import Detections, Modality

pytest.importorskip("waymo_open_dataset.protos.metrics_pb2")


def _detections(stamp_ns: int) -> Detections:
    return Detections(
        stamp_ns=stamp_ns,
        boxes=np.array([[1.0, 2.0, 0.5, 4.0, 2.0, 1.5, 0.1], [5.0, -1.0, 0.9, 0.9, 0.8, 1.8,
                                                            -3.0]], np.float32),
        scores=np.array([0.9, 0.4], np.float32), labels=np.array([1, 2], np.int32),
        velocities=np.array([[2.0, 0.0], [0.5, 0.5]], np.float32),
        modalities=frozenset({Modality.LIDAR}))


def test_detections_to_objects(tmp_path):
    from waymo_open_dataset.protos import metrics_pb2

    det = _detections(1_507_315_488_219_118_000)
    empty = Detections.empty(1_507_315_488_319_118_000)
    path = tmp_path / "pred.bin"
    assert write_objects(path, [("seg_a", det), ("seg_a", empty)]) == 2
    objects = metrics_pb2.Objects()
    objects.ParseFromString(path.read_bytes())
    first, second = objects.objects
    assert first.context_name == "seg_a"
    assert first.frame_timestamp_micros == 1_507_315_488_219_118
    assert first.object.type == 1 and second.object.type == 2
    assert first.score == pytest.approx(0.9)
    assert first.object.box.length == pytest.approx(4.0)
    assert first.object.box.heading == pytest.approx(0.1)
    assert second.object.metadata.speed_y == pytest.approx(0.5)


def test_speed_and_track_ids_round_trip(tmp_path):
    det = _detections(1_507_315_488_219_118_000)
    frames = [PredictionFrame("seg_a", det, track_ids=np.array([7, 42], np.int64)),
              # The frame stamp may be given apart from the detections' own stamp.
              PredictionFrame("seg_b", det, np.array([3, 7], np.int64),
                              stamp_ns=1_507_315_488_319_118_999)]
    path = tmp_path / "tracks.bin"
    assert write_objects(path, frames) == 4
    assert [p.name for p in tmp_path.iterdir()] == ["tracks.bin"]     # no temp file left
    objects = read_objects(path).objects
    assert [o.context_name for o in objects] == ["seg_a", "seg_a", "seg_b", "seg_b"]
    assert [o.frame_timestamp_micros for o in objects] == [1_507_315_488_219_118] * 2 + \
        [1_507_315_488_319_118] * 2
    assert [o.object.id for o in objects] == ["7", "42", "3", "7"]
    speed = np.array([[o.object.metadata.speed_x, o.object.metadata.speed_y] for o in objects])
    np.testing.assert_allclose(speed, np.concatenate([det.velocities, det.velocities]))
    np.testing.assert_allclose([o.score for o in objects], [0.9, 0.4, 0.9, 0.4], atol=1e-7)
    boxes = np.array([[o.object.box.center_x, o.object.box.center_y, o.object.box.center_z,
                       o.object.box.length, o.object.box.width, o.object.box.height,
                       o.object.box.heading] for o in objects])
    np.testing.assert_allclose(boxes, np.concatenate([det.boxes, det.boxes]), atol=1e-6)


def test_without_velocities_or_ids_nothing_is_set(tmp_path):
    det = Detections(1_000, np.array([[1.0, 2.0, 0.5, 4.0, 2.0, 1.5, 0.1]], np.float32),
                     np.array([0.5], np.float32), np.array([1], np.int32))
    write_objects(tmp_path / "p.bin", [("seg", det)])
    (obj,) = read_objects(tmp_path / "p.bin").objects
    assert not obj.object.HasField("metadata") and not obj.object.HasField("id")


def test_track_ids_must_match_the_detections(tmp_path):
    det = _detections(1_000)
    with pytest.raises(ValidationError, match="3 ids for 2 detections"):
        write_objects(tmp_path / "p.bin", [PredictionFrame("seg", det, np.arange(3))])
    assert not any(tmp_path.iterdir())

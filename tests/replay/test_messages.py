"""The shared message codecs of :mod:`perception.rosmsg` on ``rosbags`` message objects (no
ROS install): lidar fields read by name, index fields, the type store and the factory."""

from __future__ import annotations

import numpy as np
import pytest

from perception.errors import ConversionError
from perception.replay.typestore import RosbagsFactory, typestore
from perception.rosmsg.detections import boxes_to_msg, msg_to_boxes
from perception.rosmsg.pointcloud2 import (
    cloud_to_lidar_sweep,
    lidar_sweep_to_cloud,
    structured_to_cloud,
)
from perception.types import Boxes3D, LidarSweep

STAMP_NS = 1_600_000_000_250_000_000


@pytest.fixture(scope="module")
def factory() -> RosbagsFactory:
    return RosbagsFactory()


def _round_trip(factory, msg):
    """Serialise to CDR and back, as a bag does."""
    store = typestore()
    return store.deserialize_cdr(store.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__)


def test_velodyne_layout_is_read_by_name(factory):
    # x, y, z, intensity, ring, time with padding, in an unusual order
    dtype = np.dtype({"names": ["ring", "x", "y", "z", "intensity", "time"],
                      "formats": ["<u2", "<f4", "<f4", "<f4", "<f4", "<f4"],
                      "offsets": [0, 4, 8, 12, 20, 24], "itemsize": 32})
    points = np.zeros(100, dtype)
    rng = np.random.default_rng(0)
    for name in ("x", "y", "z", "intensity"):
        points[name] = rng.normal(size=100)
    points["ring"] = rng.integers(0, 16, 100)
    points["time"] = np.linspace(0.0, 0.1, 100)
    msg = _round_trip(factory, structured_to_cloud(factory, points, STAMP_NS, "velodyne"))
    sweep = cloud_to_lidar_sweep(msg, "TOP", STAMP_NS, "/velodyne_points")
    assert sweep.columns == ("x", "y", "z", "ring", "intensity", "time_offset_s")
    np.testing.assert_array_equal(sweep.column("x"), points["x"])
    np.testing.assert_array_equal(sweep.column("ring"), points["ring"].astype(np.float32))
    np.testing.assert_array_equal(sweep.column("time_offset_s"), points["time"])


def test_ouster_nanosecond_time_and_no_return_points(factory):
    dtype = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4"),
                      ("t", "<u4")])
    points = np.zeros(4, dtype)
    points["x"] = [1.0, 0.0, 2.0, 3.0]      # the second point is a no-return pixel
    points["t"] = [0, 1_000_000, 50_000_000, 99_000_000]
    msg = structured_to_cloud(factory, points, STAMP_NS, "os1_lidar")
    kept = cloud_to_lidar_sweep(msg, "TOP", STAMP_NS, drop_origin=True)
    assert len(cloud_to_lidar_sweep(msg, "TOP", STAMP_NS)) == 4 and len(kept) == 3
    np.testing.assert_allclose(kept.column("time_offset_s"), [0.0, 0.05, 0.099], rtol=1e-6)


def test_laser_id_and_return_index_survive_a_cloud(factory):
    rng = np.random.default_rng(1)
    sweep = LidarSweep("lidar", STAMP_NS, rng.normal(size=(50, 5)).astype(np.float32),
                       ("x", "y", "z", "intensity", "elongation"),
                       laser_id=rng.integers(1, 6, 50).astype(np.int8),
                       return_index=rng.integers(0, 2, 50).astype(np.int8))
    back = cloud_to_lidar_sweep(_round_trip(factory, lidar_sweep_to_cloud(factory, sweep,
                                                                           "base_link")),
                                "lidar", STAMP_NS)
    assert back.columns == sweep.columns
    np.testing.assert_array_equal(back.points, sweep.points)
    np.testing.assert_array_equal(back.laser_id, sweep.laser_id)
    np.testing.assert_array_equal(back.return_index, sweep.return_index)


def test_ground_truth_boxes_round_trip_exactly(factory):
    boxes = Boxes3D(np.array([[1, 2, 0.5, 4, 2, 1.5, np.float32(-np.pi)],
                              [5, -1, 0.2, 0.8, 0.8, 1.8, 1.0]], np.float32),
                    np.array([1, 2], np.int32), ids=np.array([7, 12], np.int64))
    back = msg_to_boxes(_round_trip(factory, boxes_to_msg(factory, boxes, STAMP_NS,
                                                          "base_link")))
    np.testing.assert_array_equal(back.boxes, boxes.boxes)
    np.testing.assert_array_equal(back.ids, boxes.ids)


def test_factory_fills_defaults_and_refuses_unknown_fields(factory):
    marker = factory.new("visualization_msgs/msg/Marker", ns="x")
    assert marker.ns == "x" and marker.points == [] and marker.pose.orientation.w == 0.0
    with pytest.raises(TypeError, match="no field"):
        factory.new("std_msgs/msg/Header", stamp_ns=1)


def test_malformed_cloud_is_a_conversion_error(factory):
    msg = structured_to_cloud(factory, np.zeros(3, np.dtype([("x", "<f4"), ("y", "<f4")])),
                              STAMP_NS, "f")
    with pytest.raises(ConversionError, match="missing field"):
        cloud_to_lidar_sweep(msg, "TOP", STAMP_NS, "/points")

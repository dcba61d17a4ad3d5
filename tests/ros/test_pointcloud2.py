"""PointCloud2 <-> numpy: round trips over layouts, zero-copy views, malformed messages."""

from __future__ import annotations

import array

import numpy as np
import pytest
from sensor_msgs.msg import PointCloud2, PointField

from perception.errors import ConversionError
from perception.types import LidarSweep, RadarScan
from ros_nodes.conversions.pointcloud2 import (
    RADAR_COLUMNS,
    cloud_to_lidar_sweep,
    cloud_to_points,
    cloud_to_radar_scan,
    cloud_to_structured,
    empty_cloud,
    lidar_sweep_to_cloud,
    points_to_cloud,
    radar_scan_to_cloud,
    structured_to_cloud,
)

STAMP_NS = 1_600_000_000_123_456_789
TOPIC = "/sensors/lidar/points"


def _points(n: int = 1000, c: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, c)).astype(np.float32)


def _data_view(msg: PointCloud2) -> np.ndarray:
    return np.frombuffer(msg.data, np.uint8)


def test_dense_round_trip_is_exact_and_zero_copy():
    points = _points()
    msg = points_to_cloud(points, ("x", "y", "z", "intensity"), STAMP_NS, "base_link")
    assert (msg.point_step, msg.row_step, msg.height, msg.width) == (16, 16000, 1, 1000)
    assert len(msg.data) == points.nbytes
    back, columns = cloud_to_points(msg, TOPIC)
    assert columns == ("x", "y", "z", "intensity")
    np.testing.assert_array_equal(back, points)
    assert np.shares_memory(back, _data_view(msg))


def test_empty_cloud_is_written_in_place():
    msg, view = empty_cloud(300, ("x", "y", "z"), STAMP_NS, "top")
    points = _points(300, 3)
    view[:] = points
    assert np.shares_memory(view, _data_view(msg))
    np.testing.assert_array_equal(cloud_to_points(msg, TOPIC)[0], points)
    assert (msg.width, msg.height, msg.row_step) == (300, 1, 3600)


def test_empty_clouds_round_trip():
    msg = points_to_cloud(np.zeros((0, 4), np.float32), ("x", "y", "z", "intensity"),
                          STAMP_NS, "top")
    assert (msg.width, len(msg.data)) == (0, 0)
    points, columns = cloud_to_points(msg, TOPIC)
    assert points.shape == (0, 4) and columns == ("x", "y", "z", "intensity")
    scan = RadarScan("RADAR_FRONT", STAMP_NS, np.zeros((0, 6), np.float32), RADAR_COLUMNS)
    assert len(cloud_to_radar_scan(radar_scan_to_cloud(scan, "base_link"), "RADAR_FRONT",
                                   STAMP_NS, TOPIC)) == 0


def test_non_standard_field_order_padding_and_types():
    # intensity first, a float64 field, a uint16 ring, 2 padding bytes, 8 trailing pad bytes.
    dtype = np.dtype({"names": ["intensity", "ring", "z", "x", "y", "t"],
                      "formats": ["<f4", "<u2", "<f4", "<f4", "<f4", "<f8"],
                      "offsets": [0, 4, 8, 12, 16, 24], "itemsize": 40})
    rng = np.random.default_rng(1)
    structured = np.zeros(500, dtype)
    for name in ("intensity", "x", "y", "z"):
        structured[name] = rng.normal(size=500).astype(np.float32)
    structured["ring"] = rng.integers(0, 64, 500)
    structured["t"] = rng.uniform(0, 0.1, 500)
    msg = structured_to_cloud(structured, STAMP_NS, "top")
    assert msg.point_step == 40 and [f.name for f in msg.fields][0] == "intensity"

    view = cloud_to_structured(msg, TOPIC)
    assert view.dtype == dtype and np.shares_memory(view, _data_view(msg))
    np.testing.assert_array_equal(view, structured)

    points, columns = cloud_to_points(msg, TOPIC)
    assert columns == ("x", "y", "z", "intensity", "ring", "t")
    np.testing.assert_array_equal(points[:, 0], structured["x"])
    np.testing.assert_array_equal(points[:, 3], structured["intensity"])
    np.testing.assert_array_equal(points[:, 4], structured["ring"].astype(np.float32))
    np.testing.assert_array_equal(points[:, 5], structured["t"].astype(np.float32))


def test_padded_adjacent_float_fields_are_a_strided_view():
    dtype = np.dtype({"names": ["x", "y", "z", "intensity"], "formats": ["<f4"] * 4,
                      "offsets": [0, 4, 8, 12], "itemsize": 32})
    structured = np.zeros(300, dtype)
    for i, name in enumerate(dtype.names):
        structured[name] = np.arange(300) * (i + 1)
    msg = structured_to_cloud(structured, STAMP_NS, "top")
    points, _ = cloud_to_points(msg, TOPIC)
    assert np.shares_memory(points, _data_view(msg)) and points.strides == (32, 4)
    np.testing.assert_array_equal(points[:, 2], structured["z"])


def test_big_endian_round_trip():
    dtype = np.dtype({"names": ["x", "y", "z", "rcs"], "formats": [">f4", ">f4", ">f4", ">i2"],
                      "offsets": [0, 4, 8, 12], "itemsize": 16})
    structured = np.zeros(64, dtype)
    structured["x"] = np.linspace(-5, 5, 64)
    structured["y"] = 1.5
    structured["z"] = -0.25
    structured["rcs"] = np.arange(64) - 30
    msg = structured_to_cloud(structured, STAMP_NS, "radar")
    assert msg.is_bigendian
    points, columns = cloud_to_points(msg, TOPIC)
    assert columns == ("x", "y", "z", "rcs")
    np.testing.assert_array_equal(points[:, 0], structured["x"].astype(np.float32))
    np.testing.assert_array_equal(points[:, 3], np.arange(64) - 30)
    np.testing.assert_array_equal(cloud_to_structured(msg, TOPIC), structured)


def test_organized_cloud_and_row_padding():
    points = _points(64 * 8, 3)
    msg = points_to_cloud(points, ("x", "y", "z"), STAMP_NS, "top", height=8)
    assert (msg.height, msg.width) == (8, 64)
    assert cloud_to_structured(msg, TOPIC).shape == (8, 64)
    np.testing.assert_array_equal(cloud_to_points(msg, TOPIC)[0], points)

    # the same rows with 12 bytes of padding at the end of each row
    rows = np.frombuffer(msg.data, np.uint8).reshape(8, 64 * 12)
    padded = np.zeros((8, 64 * 12 + 12), np.uint8)
    padded[:, :64 * 12] = rows
    msg.row_step = 64 * 12 + 12
    msg.data = array.array("B", padded.tobytes())
    np.testing.assert_array_equal(cloud_to_points(msg, TOPIC)[0], points)


def test_organized_invalid_points_are_dropped_from_sweeps():
    points = _points(40, 4)
    points[::4, :3] = np.nan
    msg = points_to_cloud(points, ("x", "y", "z", "intensity"), STAMP_NS, "top", height=4)
    sweep = cloud_to_lidar_sweep(msg, "TOP", STAMP_NS, TOPIC)
    assert len(sweep) == 30
    np.testing.assert_array_equal(sweep.points, points[np.isfinite(points).all(axis=1)])


def test_lidar_and_radar_round_trip_and_frames():
    sweep = LidarSweep("TOP", STAMP_NS, _points(200, 5),
                       ("x", "y", "z", "intensity", "time_offset_s"))
    msg = lidar_sweep_to_cloud(sweep, "base_link")
    assert msg.header.frame_id == "base_link"
    back = cloud_to_lidar_sweep(msg, "TOP", STAMP_NS, TOPIC)
    assert back.columns == sweep.columns and back.stamp_ns == STAMP_NS
    np.testing.assert_array_equal(back.points, sweep.points)

    T = np.eye(4)
    T[:3, 3] = [1.0, -2.0, 0.5]
    moved = cloud_to_lidar_sweep(msg, "TOP", STAMP_NS, TOPIC, T_vehicle_frame=T)
    np.testing.assert_allclose(moved.xyz, sweep.xyz + [1.0, -2.0, 0.5], atol=1e-5)

    extra = np.column_stack([_points(50, 6), np.arange(50, dtype=np.float32)])
    scan = RadarScan("RADAR_FRONT", STAMP_NS, extra, RADAR_COLUMNS + ("object_id",))
    radar_msg = radar_scan_to_cloud(scan, "base_link")
    assert [f.name for f in radar_msg.fields] == ["x", "y", "z", "doppler",
                                                  "doppler_compensated", "rcs"]
    radar_back = cloud_to_radar_scan(radar_msg, "RADAR_FRONT", STAMP_NS, "/radar")
    assert radar_back.columns == RADAR_COLUMNS
    np.testing.assert_array_equal(radar_back.points, extra[:, :6])


# -------------------------------------------------------------------------------------------
# Malformed messages: a typed error naming the topic and the stamp
# -------------------------------------------------------------------------------------------

def _good_msg() -> PointCloud2:
    return points_to_cloud(_points(10, 4), ("x", "y", "z", "intensity"), STAMP_NS, "top")


def _assert_names_topic_and_stamp(exc: pytest.ExceptionInfo) -> None:
    assert TOPIC in str(exc.value) and str(STAMP_NS) in str(exc.value)


def test_malformed_data_length():
    msg = _good_msg()
    msg.data = array.array("B", bytes(len(msg.data) - 4))
    with pytest.raises(ConversionError, match="data length 156") as exc:
        cloud_to_points(msg, TOPIC)
    _assert_names_topic_and_stamp(exc)
    msg = _good_msg()
    msg.width, msg.row_step = 11, 11 * 16
    with pytest.raises(ConversionError, match="data length 160 != height 1 x row_step 176"):
        cloud_to_points(msg, TOPIC)
    msg.row_step = 160
    with pytest.raises(ConversionError, match="row_step 160 < width 11"):
        cloud_to_points(msg, TOPIC)


def test_malformed_missing_xyz():
    msg = _good_msg()
    msg.fields[2].name = "height"
    with pytest.raises(ConversionError, match=r"missing field\(s\) \['z'\]") as exc:
        cloud_to_points(msg, TOPIC)
    _assert_names_topic_and_stamp(exc)


def test_malformed_unsupported_datatype():
    msg = _good_msg()
    msg.fields[3].datatype = 9
    with pytest.raises(ConversionError, match="unsupported datatype 9") as exc:
        cloud_to_points(msg, TOPIC)
    _assert_names_topic_and_stamp(exc)


def test_malformed_field_past_point_step():
    msg = _good_msg()
    msg.fields[3].offset = 14
    with pytest.raises(ConversionError, match="past point_step"):
        cloud_to_structured(msg, TOPIC)
    msg = _good_msg()
    msg.point_step = 0
    with pytest.raises(ConversionError, match=r"point_step must be in \[1, 65536\] bytes, got 0"):
        cloud_to_structured(msg, TOPIC)


def test_multi_count_field_as_a_column_is_malformed():
    dtype = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("doppler", "<f4", (2,))])
    msg = structured_to_cloud(np.zeros(4, dtype), STAMP_NS, "radar")
    assert msg.fields[3].count == 2
    assert cloud_to_points(msg, TOPIC)[1] == ("x", "y", "z")  # skipped by default
    with pytest.raises(ConversionError, match=r"\['doppler'\] have count > 1"):
        cloud_to_points(msg, TOPIC, columns=("x", "y", "z", "doppler"))


def test_radar_cloud_without_doppler_is_malformed():
    msg = points_to_cloud(_points(5, 4), ("x", "y", "z", "rcs"), STAMP_NS, "radar")
    with pytest.raises(ConversionError, match="doppler"):
        cloud_to_radar_scan(msg, "RADAR_FRONT", STAMP_NS, TOPIC)


def test_unknown_field_datatype_constant_is_rejected_on_write():
    with pytest.raises(ValueError, match="no PointField datatype"):
        structured_to_cloud(np.zeros(3, np.dtype([("x", "<f2")])), STAMP_NS, "f")
    assert PointField.FLOAT64 == 8  # the datatype table follows the message constants

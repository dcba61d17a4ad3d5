"""``sensor_msgs/PointCloud2`` <-> numpy for rclpy messages.

Decoding and the message layout are :mod:`perception.rosmsg.pointcloud2` (shared with log
replay; see it for the supported layouts); the writers here build rclpy messages. Only
:func:`empty_cloud` is rclpy-specific: it hands out a writable view of a new message's
``array.array`` buffer, so a producer builds the message without any copy.
"""

from __future__ import annotations

import array
from collections.abc import Mapping, Sequence

import numpy as np
from sensor_msgs.msg import PointCloud2

from perception.rosmsg import pointcloud2 as _shared
from perception.rosmsg.pointcloud2 import (
    RADAR_COLUMN_OF_FIELD,
    RADAR_COLUMNS,
    RADAR_FIELD_OF_COLUMN,
    XYZ,
    cloud_dtype,
    cloud_to_lidar_sweep,
    cloud_to_points,
    cloud_to_radar_scan,
    cloud_to_structured,
)
from perception.types import LidarSweep, RadarScan

from .messages import RCLPY

__all__ = ["RADAR_COLUMN_OF_FIELD", "RADAR_COLUMNS", "RADAR_FIELD_OF_COLUMN", "XYZ",
           "cloud_dtype", "cloud_to_lidar_sweep", "cloud_to_points", "cloud_to_radar_scan",
           "cloud_to_structured", "empty_cloud", "lidar_sweep_to_cloud", "points_to_cloud",
           "radar_scan_to_cloud", "structured_to_cloud"]


def points_to_cloud(points: np.ndarray, columns: Sequence[str], stamp_ns: int, frame_id: str,
                    field_of_column: Mapping[str, str] | None = None,
                    height: int = 1) -> PointCloud2:
    """An ``(N, C)`` float32 matrix -> a dense PointCloud2 of float32 fields (no padding)."""
    return _shared.points_to_cloud(RCLPY, points, columns, stamp_ns, frame_id, field_of_column,
                                   height)


def structured_to_cloud(points: np.ndarray, stamp_ns: int, frame_id: str) -> PointCloud2:
    """Any structured array -> PointCloud2 with the same layout (offsets, padding, order)."""
    return _shared.structured_to_cloud(RCLPY, points, stamp_ns, frame_id)


def empty_cloud(n_points: int, columns: Sequence[str], stamp_ns: int, frame_id: str,
                field_of_column: Mapping[str, str] | None = None
                ) -> tuple[PointCloud2, np.ndarray]:
    """A dense float32 PointCloud2 of ``n_points`` and a writable ``(N, C)`` float32 view of
    its data: a producer that writes its points into the view builds the message without
    any copy."""
    buffer = array.array("B", bytes(4 * len(columns))) * n_points
    msg = points_to_cloud(np.zeros((0, len(columns)), np.float32), columns, stamp_ns, frame_id,
                          field_of_column)
    msg.width, msg.row_step, msg.data = n_points, 4 * len(columns) * n_points, buffer
    view = np.frombuffer(msg.data, dtype=np.float32).reshape(n_points, len(columns))
    return msg, view


def lidar_sweep_to_cloud(sweep: LidarSweep, frame_id: str) -> PointCloud2:
    """A sweep (vehicle frame) -> PointCloud2 in ``frame_id`` with one float32 field per
    column, named as the columns (x, y, z, intensity, ..., time_offset_s)."""
    return _shared.lidar_sweep_to_cloud(RCLPY, sweep, frame_id)


def radar_scan_to_cloud(scan: RadarScan, frame_id: str,
                        columns: Sequence[str] = RADAR_COLUMNS) -> PointCloud2:
    """A radar scan -> PointCloud2 with fields x, y, z, doppler, doppler_compensated, rcs."""
    return _shared.radar_scan_to_cloud(RCLPY, scan, frame_id, columns)

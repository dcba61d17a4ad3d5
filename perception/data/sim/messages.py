"""Typed messages of the simulator's time-ordered stream (what the ROS sim node and the time
synchronisation code consume)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ...types import CameraImage, EgoPose, LidarSweep, RadarScan


class MessageKind(str, enum.Enum):
    LIDAR = "lidar"
    CAMERA = "camera"
    RADAR = "radar"
    EGO_POSE = "ego_pose"


EGO_POSE_SENSOR_NAME = "ego"
"""``sensor_name`` of ego-pose messages."""


@dataclass(frozen=True, eq=False)
class StreamMessage:
    """One sensor output.

    Attributes:
        kind: which sensor type produced it; decides the payload type (LIDAR -> LidarSweep,
            CAMERA -> CameraImage, RADAR -> RadarScan, EGO_POSE -> EgoPose).
        sensor_name: the sensor's name (``"ego"`` for poses).
        stamp_ns: int64 ns, equal to the payload's stamp.
        payload: the data.
    """

    kind: MessageKind
    sensor_name: str
    stamp_ns: int
    payload: LidarSweep | CameraImage | RadarScan | EgoPose

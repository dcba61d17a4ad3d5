"""``SensorFrame`` s -> rosbag2 messages on our topics: the bag converters, and the input
topics that a replay of a data set writes (``--with-input``) or publishes (``--ros``).

Per frame, each at its own stamp (which is also its log time, as if recorded without delay):

* ``/sensors/lidar/points``: ``PointCloud2`` in the vehicle frame, one float32 field per
  column, int8 ``laser_id`` and ``return_index`` when known; empty when the frame has no
  returns (it still clocks the frame in a replay). With ``per_laser``, one cloud per laser on
  ``/sensors/lidar/<laser>/points``;
* ``/sensors/camera/<name>/image_raw/compressed``: ``CompressedImage`` with the original
  JPEG/PNG bytes, never re-encoded; decoded images as PNG (or ``image_format``);
* ``/sensors/camera/<name>/camera_info``: ``CameraInfo`` (plumb_bob), optical frame, first;
* ``/sensors/radar/<name>/points``: ``PointCloud2`` with every radar column;
* ``/ego/pose`` and ``/tf``: ``PoseStamped`` and ``map -> base_link``;
* ``/ground_truth`` (``ground_truth_topic``): ``Detection3DArray`` of the labels;
* ``/tf_static`` (once, first): vehicle -> every sensor frame (cameras: optical frames).

Messages go out in log-time order (ties: lidar, ground truth, cameras, radars, poses). What
does not survive the trip: rolling-shutter timing, per-box point counts and difficulty
(replay recomputes counts from the sweep), box velocities, camera calibrations' Waymo axis
convention (they come back in the optical convention, the same transform).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..rosmsg.detections import boxes_to_msg
from ..rosmsg.image import (
    calibration_to_camera_info,
    camera_image_to_compressed,
    camera_image_to_image,
    image_format,
)
from ..rosmsg.pointcloud2 import lidar_sweep_to_cloud, radar_scan_to_cloud
from ..rosmsg.tf import ego_pose_to_pose_stamped, matrix_to_transform, transforms_to_tf_message
from ..rosmsg.topics import (
    EGO_POSE,
    LIDAR_POINTS,
    TF,
    TF_STATIC,
    camera_compressed,
    camera_image,
    camera_info,
    optical_frame,
    radar_points,
    sensor_frame,
)
from ..types import CameraImage, EgoPose, LidarSweep, SensorFrame
from .bag import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS, TopicQos
from .output_bag import OutputBag
from .typestore import RosbagsFactory

IMAGE_FORMATS = ("png", "jpeg", "raw")
LASER_NAMES = {1: "TOP", 2: "FRONT", 3: "SIDE_LEFT", 4: "SIDE_RIGHT", 5: "REAR"}
"""Waymo ``LaserName`` values (``LidarSweep.laser_id``)."""
POSE_QOS = TopicQos(reliable=False, depth=20)
_LIDAR, _TRUTH, _CAMERA, _RADAR, _POSE = range(5)


@dataclass(frozen=True)
class BagLayout:
    """Frames and topics of converted bags.

    Attributes:
        vehicle_frame, world_frame: frame ids of clouds and boxes, and of poses.
        image_format: how decoded images are written (``png`` keeps pixels exact); encoded
            images are written as they are unless ``raw``.
        per_laser: one lidar cloud per laser instead of one merged cloud.
        ground_truth_topic: topic of the labels.
    """

    vehicle_frame: str = "base_link"
    world_frame: str = "map"
    image_format: str = "png"
    per_laser: bool = False
    ground_truth_topic: str = "/ground_truth"


@dataclass(frozen=True, eq=False)
class OutMessage:
    """One message to write or publish: topic, log time (ns), message object, QoS."""

    topic: str
    log_time_ns: int
    msg: Any
    qos: TopicQos
    rank: int = 0


class FrameMessages:
    """Builds the messages of frames (see the module doc)."""

    def __init__(self, layout: BagLayout = BagLayout(), factory: RosbagsFactory | None = None):
        self.layout = layout
        self.factory = factory or RosbagsFactory()

    def static(self, frame: SensorFrame, log_time_ns: int) -> OutMessage:
        """``/tf_static`` with vehicle -> every sensor frame of ``frame``."""
        transforms = {}
        if frame.lidar is not None and frame.lidar.calibration is not None:
            transforms[sensor_frame(frame.lidar.sensor_name)] = \
                frame.lidar.calibration.T_vehicle_sensor
        for name, scan in sorted(frame.radars.items()):
            if scan.calibration is not None:
                transforms[sensor_frame(name)] = scan.calibration.T_vehicle_sensor
        for name, image in sorted(frame.cameras.items()):
            transforms[optical_frame(name)] = image.calibration.T_vehicle_optical
        msg = transforms_to_tf_message(self.factory, transforms, self.layout.vehicle_frame,
                                       log_time_ns)
        return OutMessage(TF_STATIC, log_time_ns, msg, LATCHED_QOS)

    def frame(self, frame: SensorFrame, poses: Iterable[EgoPose] | None = None
              ) -> list[OutMessage]:
        """The sensor, label and pose messages of ``frame``; ``poses`` replaces the frame's
        own ego pose (e.g. one pose per sensor stamp)."""
        out = self._lidar(frame)
        if frame.boxes is not None:
            out.append(OutMessage(self.layout.ground_truth_topic, frame.stamp_ns,
                                  boxes_to_msg(self.factory, frame.boxes, frame.stamp_ns,
                                               self.layout.vehicle_frame), RELIABLE_QOS, _TRUTH))
        for name, image in sorted(frame.cameras.items()):
            out += self._camera(name, image)
        for name, scan in sorted(frame.radars.items()):
            cloud = radar_scan_to_cloud(self.factory, scan, self.layout.vehicle_frame,
                                        columns=scan.columns)
            out.append(OutMessage(radar_points(name), scan.stamp_ns, cloud, SENSOR_QOS, _RADAR))
        poses = [frame.ego_pose] if poses is None and frame.ego_pose is not None else poses
        for pose in poses or ():
            out += self._pose(pose)
        return sorted(out, key=lambda m: (m.log_time_ns, m.rank))

    def _lidar(self, frame: SensorFrame) -> list[OutMessage]:
        sweep = frame.lidar
        if sweep is None:  # no returns: an empty cloud still clocks the frame in a replay
            sweep = LidarSweep("lidar", frame.stamp_ns, np.zeros((0, 3), np.float32),
                               ("x", "y", "z"))
        if not self.layout.per_laser or sweep.laser_id is None:
            return [self._cloud(LIDAR_POINTS, sweep)]
        out = []
        for laser in np.unique(sweep.laser_id):
            keep = sweep.laser_id == laser
            part = LidarSweep(sweep.sensor_name, sweep.stamp_ns, sweep.points[keep],
                              sweep.columns, laser_id=sweep.laser_id[keep],
                              return_index=None if sweep.return_index is None
                              else sweep.return_index[keep])
            name = LASER_NAMES.get(int(laser), f"laser{int(laser)}")
            out.append(self._cloud(f"/sensors/lidar/{name.lower()}/points", part))
        return out

    def _cloud(self, topic: str, sweep: LidarSweep) -> OutMessage:
        cloud = lidar_sweep_to_cloud(self.factory, sweep, self.layout.vehicle_frame)
        return OutMessage(topic, sweep.stamp_ns, cloud, SENSOR_QOS, _LIDAR)

    def _camera(self, name: str, image: CameraImage) -> list[OutMessage]:
        frame_id = optical_frame(name)
        fmt = self.layout.image_format
        if fmt == "raw":
            msg = camera_image_to_image(self.factory, image, frame_id)
        else:
            keep = image.encoded is not None and image_format(image.encoded)
            msg = camera_image_to_compressed(self.factory, image, frame_id, keep or fmt,
                                             jpeg_quality=95)
        info = calibration_to_camera_info(self.factory, image.calibration, image.stamp_ns,
                                          frame_id)
        # the CameraInfo first, so a reader has the intrinsics when the image comes
        topic = camera_image(name) if fmt == "raw" else camera_compressed(name)
        return [OutMessage(camera_info(name), image.stamp_ns, info, SENSOR_QOS, _CAMERA),
                OutMessage(topic, image.stamp_ns, msg, SENSOR_QOS, _CAMERA)]

    def _pose(self, pose: EgoPose) -> list[OutMessage]:
        layout = self.layout
        stamped = ego_pose_to_pose_stamped(self.factory, pose, layout.world_frame)
        tf = self.factory.new("tf2_msgs/msg/TFMessage", transforms=[matrix_to_transform(
            self.factory, pose.T_world_vehicle, layout.world_frame, layout.vehicle_frame,
            pose.stamp_ns)])
        return [OutMessage(EGO_POSE, pose.stamp_ns, stamped, POSE_QOS, _POSE),
                OutMessage(TF, pose.stamp_ns, tf, RELIABLE_QOS, _POSE)]


@dataclass
class OrderedWriter:
    """Writes :class:`OutMessage` s into a bag in log-time order across frames: a frame's
    messages spread around its stamp (cameras fire before and after the sweep), so messages
    are held until no later frame can bring an earlier one (``horizon_ns`` after)."""

    bag: OutputBag
    horizon_ns: int = 500_000_000
    _heap: list = field(default_factory=list)
    _order: itertools.count = field(default_factory=itertools.count)

    def add(self, messages: Iterable[OutMessage]) -> None:
        latest = None
        for m in messages:
            heapq.heappush(self._heap, (m.log_time_ns, m.rank, next(self._order), m))
            latest = m.log_time_ns if latest is None else max(latest, m.log_time_ns)
        if latest is not None:
            self._drain(latest - self.horizon_ns)

    def flush(self) -> None:
        self._drain(None)

    def _drain(self, before_ns: int | None) -> None:
        while self._heap and (before_ns is None or self._heap[0][0] < before_ns):
            _, _, _, m = heapq.heappop(self._heap)
            self.bag.write(m.topic, m.log_time_ns, m.msg, m.qos)

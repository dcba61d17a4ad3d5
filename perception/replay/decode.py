"""Bag messages -> what the pipeline takes (lidar sweeps, camera images, radar scans, ego
poses), calibration updates and ground truth, through the shared decoders of
:mod:`perception.rosmsg`.

A message that cannot be decoded (bad bytes, a malformed cloud, a missing transform or
CameraInfo) is skipped and counted per topic and reason (:class:`SkipCounter`); the first of
each kind is logged as a warning, later ones at debug level.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..errors import PerceptionError
from ..rosmsg.detections import msg_to_boxes
from ..rosmsg.image import compressed_to_camera_image, image_to_camera_image
from ..rosmsg.pointcloud2 import cloud_to_lidar_sweep, cloud_to_radar_scan
from ..rosmsg.stamps import stamp_to_ns
from ..rosmsg.tf import pose_stamped_to_ego_pose, transform_to_matrix
from ..types import Boxes3D, CameraImage, EgoPose, LidarSweep, RadarScan
from .bag import Bag, BagMessage
from .calibration import CalibrationStore
from .topics import TopicMap

log = logging.getLogger("perception.replay")

Payload = LidarSweep | CameraImage | RadarScan | EgoPose


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """Ground-truth boxes of the frame stamped ``stamp_ns`` (vehicle frame)."""

    stamp_ns: int
    boxes: Boxes3D


class SkipCounter:
    """Skipped messages per ``(topic, reason)``; the first of each is logged as a warning."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self.first: dict[tuple[str, str], str] = {}
        """The first message of each ``(topic, reason)``, for the summary."""

    def skip(self, topic: str, reason: str, detail: str) -> None:
        key = (topic, reason)
        self.counts[key] += 1
        self.first.setdefault(key, detail)
        level = logging.WARNING if self.counts[key] == 1 else logging.DEBUG
        log.log(level, "skipped a message on %s (%s): %s", topic, reason, detail)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def by_topic(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (topic, reason), n in sorted(self.counts.items()):
            out.setdefault(topic, {})[reason] = n
        return out


class MessageDecoder:
    """Decodes the messages of the mapped topics (see the module doc).

    Args:
        topic_map: which topic is which sensor.
        calibration: transforms and camera intrinsics; updated from ``/tf_static`` and
            ``CameraInfo`` messages as they come.
        world_frame: parent frame of the vehicle in ``/tf`` poses.
        drop_origin: drop lidar points at exactly (0, 0, 0) (no-return pixels).
    """

    def __init__(self, topic_map: TopicMap, calibration: CalibrationStore,
                 world_frame: str = "map", drop_origin: bool = True):
        self.topic_map = topic_map
        self.calibration = calibration
        self.world_frame = world_frame
        self.drop_origin = drop_origin
        self.skips = SkipCounter()
        self._role = topic_map.role_of()

    def decode(self, bag: Bag, message: BagMessage) -> list[Payload | GroundTruth]:
        """What ``message`` gives: payloads, ground truth, or nothing (calibration updates,
        skipped messages)."""
        role = self._role.get(message.topic)
        if role is None:
            return []
        try:
            msg = bag.decode(message)
            return self._dispatch(role, message.topic, msg)
        except PerceptionError as exc:
            self.skips.skip(message.topic, type(exc).__name__, str(exc))
        except (AttributeError, TypeError, ValueError, IndexError) as exc:
            # a message of the right type name whose fields do not fit (another definition)
            self.skips.skip(message.topic, type(exc).__name__, str(exc))
        return []

    def _dispatch(self, role: str, topic: str, msg: Any) -> list[Payload | GroundTruth]:
        kind, _, name = role.partition(".")
        if kind == "lidar":
            return [self._lidar(msg, topic)]
        if kind == "camera":
            return [self._camera(name, msg, topic)]
        if kind == "camera_info":
            self.calibration.add_camera_info(name, msg)
            return []
        if kind == "radar":
            return [self._radar(name, msg, topic)]
        if kind == "ego_pose":
            return [pose_stamped_to_ego_pose(msg, topic)]
        if kind == "tf":
            return self._tf_poses(msg, topic)
        if kind == "tf_static":
            self.calibration.add_tf_static(msg, topic)
            return []
        return [GroundTruth(stamp_to_ns(msg.header.stamp), msg_to_boxes(msg, topic))]

    def _lidar(self, msg: Any, topic: str) -> LidarSweep:
        name = self.topic_map.lidar_name
        frame_id = msg.header.frame_id
        calibration = self.calibration.sensor_calibration(name, frame_id, topic)
        return cloud_to_lidar_sweep(msg, name, stamp_to_ns(msg.header.stamp), topic,
                                    self.calibration.T_vehicle(frame_id, topic), calibration,
                                    drop_origin=self.drop_origin)

    def _radar(self, name: str, msg: Any, topic: str) -> RadarScan:
        frame_id = msg.header.frame_id
        return cloud_to_radar_scan(msg, name, stamp_to_ns(msg.header.stamp), topic,
                                   self.calibration.T_vehicle(frame_id, topic),
                                   self.calibration.sensor_calibration(name, frame_id, topic))

    def _camera(self, name: str, msg: Any, topic: str) -> CameraImage:
        calibration = self.calibration.camera(name, msg.header.frame_id, topic)
        if hasattr(msg, "format"):
            return compressed_to_camera_image(msg, calibration, topic)
        return image_to_camera_image(msg, calibration, topic)

    def _tf_poses(self, msg: Any, topic: str) -> list[Payload | GroundTruth]:
        """Ego poses from the ``world -> vehicle`` transforms of a ``/tf`` message."""
        return [EgoPose(stamp_to_ns(t.header.stamp), transform_to_matrix(t, topic))
                for t in msg.transforms
                if t.header.frame_id == self.world_frame
                and t.child_frame_id == self.calibration.vehicle_frame]

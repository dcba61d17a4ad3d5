"""The sensor inputs of the nodes that synchronise the sensors (``sync_node``,
``detector_node``): one set of subscriptions, conversions and calibration bookkeeping, so both
read the same topics the same way.

:class:`SensorInputs` subscribes to the lidar, camera (raw or compressed, with
``CameraInfo``) and radar topics, ``/tf_static`` and ``/ego/pose``; converts each message into
the data model in the vehicle frame (clouds in other frames are moved with ``/tf_static``;
images wait for their ``CameraInfo`` and transform and are counted as ``dropped`` until then);
pushes it into the node's :class:`perception.align.SensorSync`; and hands every frame the sync
emits to the node's ``emit`` callback. Frames the sync drops (late or unmatched) show up in the
sensor's diagnostics. Callbacks are guarded (:func:`ros_nodes.node_base.guarded`): a malformed
message is logged, counted as ``malformed`` and skipped. Everything here runs in the executor
thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from tf2_msgs.msg import TFMessage

from perception.align import AlignedFrame, SensorSync
from perception.errors import ConversionError
from perception.types import Calibration

from . import topics
from .conversions.image import (
    camera_info_to_calibration,
    compressed_to_camera_image,
    image_to_camera_image,
)
from .conversions.pointcloud2 import cloud_to_lidar_sweep, cloud_to_radar_scan
from .conversions.stamps import header_stamp_ns
from .conversions.tf import (
    pose_stamped_to_ego_pose,
    sensor_mounting,
    tf_message_to_transforms,
)
from .node_base import Diagnostics, guarded, latched_qos, sensor_qos

POLL_PERIOD_S = 0.02
"""How often pending frames are checked against the timeout."""
EGO_POSE_SENSOR = "ego_pose"
TF_SENSOR = "tf_static"
EGO_POSE_QOS_DEPTH = 20


class InputParams(Protocol):
    """The parameters :class:`SensorInputs` reads (``SyncNodeParams``, ``DetectorNodeParams``)."""

    lidar_name: str
    camera_names: list[str]
    radar_names: list[str]
    image_transport: str
    vehicle_frame: str
    qos_depth: int


def input_sensors(params: InputParams) -> list[str]:
    """The sensors whose health the diagnostics report: lidar, cameras, radars, ego pose."""
    return [params.lidar_name, *params.camera_names, *params.radar_names, EGO_POSE_SENSOR]


class SensorInputs:
    """See the module doc.

    Args:
        node: the node that owns the subscriptions and the poll timer.
        params: topics, transport, vehicle frame and QoS depth.
        sync: the node's sensor sync.
        diagnostics: the node's diagnostics (received, dropped and malformed counts).
        emit: called with the frames the sync emits, oldest first.
        require_points: refuse a lidar sweep with no finite point as malformed (a lidar always
            sees the ground: an empty sweep is a failed one, not an empty scene).
    """

    def __init__(self, node: Node, params: InputParams, sync: SensorSync,
                 diagnostics: Diagnostics, emit: Callable[[list[AlignedFrame]], None],
                 require_points: bool = False):
        self.node = node
        self.params = params
        self.sync = sync
        self.diagnostics = diagnostics
        self.emit = emit
        self.require_points = require_points
        self.transforms: dict[str, Any] = {}
        self.camera_info: dict[str, CameraInfo] = {}
        self.reported_drops = {name: 0 for name in sync.stats}

        p = params
        qos = sensor_qos(p.qos_depth)
        self._subscribe(PointCloud2, topics.LIDAR_POINTS, p.lidar_name, self.on_lidar, qos)
        for name in p.camera_names:
            if p.image_transport == "raw":
                self._subscribe(Image, topics.camera_image(name), name, self._on_camera(name),
                                qos)
            else:
                self._subscribe(CompressedImage, topics.camera_compressed(name), name,
                                self._on_camera(name), qos)
            self._subscribe(CameraInfo, topics.camera_info(name), name,
                            self._on_camera_info(name), qos)
        for name in p.radar_names:
            self._subscribe(PointCloud2, topics.radar_points(name), name, self._on_radar(name),
                            qos)
        self._subscribe(PoseStamped, topics.EGO_POSE, EGO_POSE_SENSOR, self.on_pose,
                        sensor_qos(EGO_POSE_QOS_DEPTH))
        self._subscribe(TFMessage, topics.TF_STATIC, TF_SENSOR, self.on_tf_static,
                        latched_qos())
        node.create_timer(POLL_PERIOD_S, self.poll)

    def _subscribe(self, msg_type: type, topic: str, sensor: str,
                   callback: Callable[[Any], None], qos: Any) -> None:
        self.node.create_subscription(msg_type, topic,
                                      guarded(self.node, self.diagnostics, sensor, callback), qos)

    # --------------------------------------------------------------------------------------
    # Sync
    # --------------------------------------------------------------------------------------

    def push(self, item: Any) -> None:
        self.forward(self.sync.push(item, time.monotonic_ns()))

    def poll(self) -> None:
        self.forward(self.sync.poll(time.monotonic_ns()))

    def forward(self, frames: list[AlignedFrame]) -> None:
        """Hand ``frames`` to the node, then report what the sync dropped since last time."""
        self.emit(frames)
        for name, stats in self.sync.stats.items():
            new = stats.dropped - self.reported_drops[name]
            if new > 0:
                self.diagnostics.dropped(name, new, reason="late or unmatched in the sync")
                self.reported_drops[name] = stats.dropped

    # --------------------------------------------------------------------------------------
    # Callbacks
    # --------------------------------------------------------------------------------------

    def T_vehicle(self, msg: Any, topic: str) -> Any:
        """Transform from the message frame to the vehicle frame (None: already there).

        Raises:
            ConversionError: no transform from the message frame on ``/tf_static`` yet.
        """
        frame_id, vehicle_frame = msg.header.frame_id, self.params.vehicle_frame
        if frame_id == vehicle_frame:
            return None
        if frame_id not in self.transforms:
            raise ConversionError(f"{topic} [stamp {header_stamp_ns(msg)} ns]: no transform "
                                  f"from frame {frame_id!r} to {vehicle_frame!r} on "
                                  f"/tf_static")
        return self.transforms[frame_id]

    def mounting(self, name: str, msg: Any) -> Calibration:
        """Lidar or radar ``name``'s calibration: its mounting from ``/tf_static`` (see
        :func:`~perception.rosmsg.tf.sensor_mounting`; identity until that has come)."""
        return Calibration(name, sensor_mounting(name, msg.header.frame_id, self.transforms,
                                                 self.params.vehicle_frame))

    def on_lidar(self, msg: PointCloud2) -> None:
        name, topic = self.params.lidar_name, topics.LIDAR_POINTS
        stamp = header_stamp_ns(msg)
        sweep = cloud_to_lidar_sweep(msg, name, stamp, topic, self.T_vehicle(msg, topic),
                                     self.mounting(name, msg))
        if self.require_points and len(sweep.points) == 0:
            raise ConversionError(f"{topic} [stamp {stamp} ns]: no finite point in "
                                  f"{msg.width * msg.height} points")
        self.diagnostics.received(name, stamp)
        self.push(sweep)

    def _on_radar(self, name: str) -> Callable[[PointCloud2], None]:
        topic = topics.radar_points(name)

        def on_radar(msg: PointCloud2) -> None:
            stamp = header_stamp_ns(msg)
            scan = cloud_to_radar_scan(msg, name, stamp, topic, self.T_vehicle(msg, topic),
                                       self.mounting(name, msg))
            self.diagnostics.received(name, stamp)
            self.push(scan)

        return on_radar

    def _on_camera_info(self, name: str) -> Callable[[CameraInfo], None]:
        def on_camera_info(msg: CameraInfo) -> None:
            self.camera_info[name] = msg

        return on_camera_info

    def calibration(self, name: str, msg: Any) -> Calibration | None:
        """Camera ``name``'s calibration for an image in the frame of ``msg``; None until its
        ``CameraInfo`` and the transform of that frame have come."""
        info = self.camera_info.get(name)
        if info is None or msg.header.frame_id not in self.transforms:
            return None
        return camera_info_to_calibration(info, name, self.transforms[msg.header.frame_id],
                                          topics.camera_info(name))

    def _on_camera(self, name: str) -> Callable[[Any], None]:
        raw = self.params.image_transport == "raw"
        topic = topics.camera_image(name) if raw else topics.camera_compressed(name)

        def on_camera(msg: Any) -> None:
            calibration = self.calibration(name, msg)
            if calibration is None:
                self.diagnostics.dropped(name, reason="no CameraInfo or transform yet")
                return
            if raw:
                image = image_to_camera_image(msg, calibration, topic)
            else:
                image = compressed_to_camera_image(msg, calibration, topic)
            self.diagnostics.received(name, image.stamp_ns)
            self.push(image)

        return on_camera

    def on_pose(self, msg: PoseStamped) -> None:
        pose = pose_stamped_to_ego_pose(msg, topics.EGO_POSE)
        self.diagnostics.received(EGO_POSE_SENSOR, pose.stamp_ns)
        self.push(pose)

    def on_tf_static(self, msg: TFMessage) -> None:
        self.transforms.update(tf_message_to_transforms(msg, self.params.vehicle_frame,
                                                        topics.TF_STATIC))

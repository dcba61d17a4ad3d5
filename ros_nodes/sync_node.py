"""``sync_node``: the perception input stage. Subscribes to the lidar, camera and radar topics,
``/tf_static`` and ``/ego/pose``, synchronises the sensors with :class:`perception.align.SensorSync`
(lidar sweep as the reference, ego-motion compensation) and publishes one
``fusion_perception_msgs/PerceptionStatus`` per frame on ``/perception/status``, plus
``/diagnostics`` (per-sensor rate, latency, dropped and malformed counts).

The detector and tracker nodes consume the same synchronised frames.

Bad input never stops the node: a malformed message raises a typed error inside its callback,
which is logged (throttled), counted as ``malformed`` in the sensor's diagnostics, and the next
message is processed normally. Images that arrive before their ``CameraInfo`` and transform
are counted as ``dropped``.

Parameters: :class:`ros_nodes.params.SyncNodeParams` (``config/sync.param.yaml``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage

from fusion_perception_msgs.msg import PerceptionStatus, SensorStatus
from perception.align import AlignedFrame, SensorSync
from perception.errors import ConversionError, PerceptionError
from perception.types import Calibration

from . import topics
from .conversions.image import (
    camera_info_to_calibration,
    compressed_to_camera_image,
    image_to_camera_image,
)
from .conversions.pointcloud2 import cloud_to_lidar_sweep, cloud_to_radar_scan
from .conversions.stamps import header_stamp_ns, ns_to_stamp
from .conversions.tf import pose_stamped_to_ego_pose, tf_message_to_transforms
from .node_base import (
    Diagnostics,
    latched_qos,
    load_parameters,
    reliable_qos,
    run_node,
    sensor_qos,
)
from .params import SyncNodeParams

NODE_NAME = "sync"
POLL_PERIOD_S = 0.02
"""How often pending frames are checked against the timeout."""
EGO_POSE_SENSOR = "ego_pose"
TF_SENSOR = "tf_static"


class SyncNode(Node):
    """See the module doc."""

    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        self.params = load_parameters(self, SyncNodeParams)
        p = self.params
        self.sync = SensorSync(p.sync_config(), sequence_id=self.get_name())
        self.frames_out = 0
        self.transforms: dict[str, Any] = {}
        self.camera_info: dict[str, CameraInfo] = {}
        sensors = [p.lidar_name, *p.camera_names, *p.radar_names, EGO_POSE_SENSOR]
        self.diagnostics = Diagnostics(self, sensors, p.diagnostics_period_s)
        self.reported_drops = {name: 0 for name in self.sync.stats}
        self.status_pub = self.create_publisher(PerceptionStatus, topics.PERCEPTION_STATUS,
                                                reliable_qos())
        qos = sensor_qos(p.qos_depth)
        self.create_subscription(PointCloud2, topics.LIDAR_POINTS,
                                 self._guarded(p.lidar_name, self.on_lidar), qos)
        for name in p.camera_names:
            if p.image_transport == "raw":
                self.create_subscription(Image, topics.camera_image(name),
                                         self._guarded(name, self._on_camera(name)), qos)
            else:
                self.create_subscription(CompressedImage, topics.camera_compressed(name),
                                         self._guarded(name, self._on_camera(name)), qos)
            self.create_subscription(CameraInfo, topics.camera_info(name),
                                     self._guarded(name, self._on_camera_info(name)), qos)
        for name in p.radar_names:
            self.create_subscription(PointCloud2, topics.radar_points(name),
                                     self._guarded(name, self._on_radar(name)), qos)
        self.create_subscription(PoseStamped, topics.EGO_POSE,
                                 self._guarded(EGO_POSE_SENSOR, self.on_pose), sensor_qos(20))
        self.create_subscription(TFMessage, topics.TF_STATIC,
                                 self._guarded(TF_SENSOR, self.on_tf_static), latched_qos())
        self.create_timer(POLL_PERIOD_S, self.poll)

    # --------------------------------------------------------------------------------------
    # Callbacks
    # --------------------------------------------------------------------------------------

    def _guarded(self, sensor: str, callback: Callable[[Any], None]) -> Callable[[Any], None]:
        """Wrap a callback: typed errors are logged and counted, never raised."""

        def guarded(msg: Any) -> None:
            try:
                callback(msg)
            except PerceptionError as exc:
                self.diagnostics.malformed(sensor, str(exc))
                self.get_logger().warning(f"{sensor}: skipped a message: {exc}",
                                          throttle_duration_sec=1.0)
            except Exception as exc:  # noqa: BLE001 - bad input must never stop the node
                self.diagnostics.malformed(sensor, f"unexpected {type(exc).__name__}: {exc}")
                self.get_logger().error(f"{sensor}: skipped a message after an unexpected "
                                        f"{type(exc).__name__}: {exc}",
                                        throttle_duration_sec=1.0)

        return guarded

    def _T_vehicle(self, header: Header, topic: str, msg: Any) -> Any:
        """Transform from the message frame to the vehicle frame (None: already there)."""
        if header.frame_id == self.params.vehicle_frame:
            return None
        if header.frame_id not in self.transforms:
            raise ConversionError(f"{topic} [stamp {header_stamp_ns(msg)} ns]: no transform "
                                  f"from frame {header.frame_id!r} to "
                                  f"{self.params.vehicle_frame!r} on /tf_static")
        return self.transforms[header.frame_id]

    def on_lidar(self, msg: PointCloud2) -> None:
        name = self.params.lidar_name
        stamp = header_stamp_ns(msg)
        sweep = cloud_to_lidar_sweep(msg, name, stamp, topics.LIDAR_POINTS,
                                     self._T_vehicle(msg.header, topics.LIDAR_POINTS, msg))
        self.diagnostics.received(name, stamp)
        self.publish_frames(self.sync.push(sweep, time.monotonic_ns()))

    def _on_radar(self, name: str) -> Callable[[PointCloud2], None]:
        topic = topics.radar_points(name)

        def on_radar(msg: PointCloud2) -> None:
            stamp = header_stamp_ns(msg)
            scan = cloud_to_radar_scan(msg, name, stamp, topic,
                                       self._T_vehicle(msg.header, topic, msg))
            self.diagnostics.received(name, stamp)
            self.publish_frames(self.sync.push(scan, time.monotonic_ns()))

        return on_radar

    def _on_camera_info(self, name: str) -> Callable[[CameraInfo], None]:
        def on_camera_info(msg: CameraInfo) -> None:
            self.camera_info[name] = msg

        return on_camera_info

    def _calibration(self, name: str, msg: Any, topic: str) -> Calibration | None:
        info = self.camera_info.get(name)
        if info is None or msg.header.frame_id not in self.transforms:
            return None
        return camera_info_to_calibration(info, name, self.transforms[msg.header.frame_id],
                                          topics.camera_info(name))

    def _on_camera(self, name: str) -> Callable[[Any], None]:
        raw = self.params.image_transport == "raw"
        topic = topics.camera_image(name) if raw else topics.camera_compressed(name)

        def on_camera(msg: Any) -> None:
            calibration = self._calibration(name, msg, topic)
            if calibration is None:
                self.diagnostics.dropped(name, reason="no CameraInfo or transform yet")
                return
            if raw:
                image = image_to_camera_image(msg, calibration, topic)
            else:
                image = compressed_to_camera_image(msg, calibration, topic)
            self.diagnostics.received(name, image.stamp_ns)
            self.publish_frames(self.sync.push(image, time.monotonic_ns()))

        return on_camera

    def on_pose(self, msg: PoseStamped) -> None:
        pose = pose_stamped_to_ego_pose(msg, topics.EGO_POSE)
        self.diagnostics.received(EGO_POSE_SENSOR, pose.stamp_ns)
        self.publish_frames(self.sync.push(pose, time.monotonic_ns()))

    def on_tf_static(self, msg: TFMessage) -> None:
        self.transforms.update(tf_message_to_transforms(msg, self.params.vehicle_frame,
                                                        topics.TF_STATIC))

    # --------------------------------------------------------------------------------------
    # Output
    # --------------------------------------------------------------------------------------

    def poll(self) -> None:
        self.publish_frames(self.sync.poll(time.monotonic_ns()))

    def publish_frames(self, frames: list[AlignedFrame]) -> None:
        for frame in frames:
            self.status_pub.publish(self.status(frame))
            self.frames_out += 1
        for name, stats in self.sync.stats.items():  # sync drops show up in diagnostics
            new = stats.dropped - self.reported_drops[name]
            if new > 0:
                self.diagnostics.dropped(name, new, reason="late or unmatched in the sync")
                self.reported_drops[name] = stats.dropped

    def status(self, aligned: AlignedFrame) -> PerceptionStatus:
        p = self.params
        frame = aligned.frame
        sensors = []
        for name in self.sync.stats:
            modality = (self.sync.modality_of[name].value if name in self.sync.modality_of
                        else "lidar")
            present = name in aligned.offsets_ns
            offset_ns = aligned.offsets_ns.get(name, 0)
            latency = self.diagnostics.health[name].latency_ms
            sensors.append(SensorStatus(
                name=name, modality=modality, present=present,
                stamp_ns=frame.stamp_ns + offset_ns if present else 0,
                offset_ms=offset_ns / 1e6, latency_ms=float(latency[-1]) if latency else 0.0))
        return PerceptionStatus(
            header=Header(stamp=ns_to_stamp(frame.stamp_ns), frame_id=p.vehicle_frame),
            modalities=sorted(m.value for m in aligned.modalities), sensors=sensors,
            motion_compensated=aligned.motion_compensated,
            sync_wait_ms=(aligned.emitted_arrival_ns - aligned.reference_arrival_ns) / 1e6,
            total_latency_ms=(time.time_ns() - frame.stamp_ns) / 1e6)


def main(argv: list[str] | None = None) -> int:
    return run_node(SyncNode, argv=argv)


if __name__ == "__main__":
    raise SystemExit(main())

"""``sim_node``: the built-in simulator published on the standard sensor topics.

Publishes, in stamp order and at ``rate_factor`` times real time:

* lidar sweeps: ``sensor_msgs/PointCloud2`` on ``/sensors/lidar/points`` (vehicle frame,
  fields x, y, z, intensity, time_offset_s as float32);
* cameras: ``sensor_msgs/Image`` (rgb8) on ``/sensors/camera/<name>/image_raw`` or
  ``CompressedImage`` on ``.../image_raw/compressed``, and ``sensor_msgs/CameraInfo`` on
  ``.../camera_info``, in frame ``<name>_optical``;
* radars: ``PointCloud2`` with x, y, z, doppler, doppler_compensated, rcs on
  ``/sensors/radar/<name>/points`` (vehicle frame);
* ego poses: ``geometry_msgs/PoseStamped`` on ``/ego/pose`` (world frame);
* ``/tf_static``: vehicle frame -> every sensor frame (cameras: their optical frames);
* ground truth with every sweep: ``vision_msgs/Detection3DArray`` on ``/sim/ground_truth`` and
  ``visualization_msgs/MarkerArray`` on ``/sim/ground_truth/markers``;
* ``/diagnostics``: per topic publish rate and lag behind the schedule.

Parameters: :class:`ros_nodes.params.SimNodeParams` (``config/sim.param.yaml``).
"""

from __future__ import annotations

import time

from geometry_msgs.msg import PoseStamped
from rclpy._rclpy_pybind11 import RCLError
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection3DArray
from visualization_msgs.msg import MarkerArray

from perception.data.sim import MessageKind, Simulator, StreamMessage
from perception.types import CameraImage, EgoPose, LidarSweep, RadarScan

from . import topics
from .conversions.detections import boxes_to_msg
from .conversions.image import (
    calibration_to_camera_info,
    camera_image_to_compressed,
    camera_image_to_image,
)
from .conversions.markers import ground_truth_markers
from .conversions.pointcloud2 import lidar_sweep_to_cloud, radar_scan_to_cloud
from .conversions.stamps import ns_to_stamp
from .conversions.tf import ego_pose_to_pose_stamped, transforms_to_tf_message
from .node_base import (
    SIGNAL_CHECK_S,
    Diagnostics,
    latched_qos,
    load_parameters,
    reliable_qos,
    run_node,
    running,
    sensor_qos,
)
from .params import SimNodeParams

NODE_NAME = "sim"


class SimNode(Node):
    """Publishes one simulator scenario (see the module doc)."""

    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        self.params = load_parameters(self, SimNodeParams)
        p = self.params
        self.sim = Simulator(p.preset, seed=p.seed)
        # playback starts after the discovery delay; wall-clock stamps start there too
        self.playback_start_ns = time.time_ns() + int(p.start_delay_s * 1e9)
        self.stamp_shift_ns = (self.playback_start_ns - self.sim.start_stamp_ns
                               if p.wall_clock_stamps else 0)
        qos = sensor_qos(p.qos_depth)
        self.lidar_pub = self.create_publisher(PointCloud2, topics.LIDAR_POINTS, qos)
        compressed = p.image_transport != "raw"
        self.image_pubs = {
            name: self.create_publisher(CompressedImage if compressed else Image,
                                        topics.camera_compressed(name) if compressed
                                        else topics.camera_image(name), qos)
            for name in self.sim.cameras}
        self.info_pubs = {name: self.create_publisher(CameraInfo, topics.camera_info(name), qos)
                          for name in self.sim.cameras}
        self.radar_pubs = {name: self.create_publisher(PointCloud2, topics.radar_points(name),
                                                       qos)
                           for name in self.sim.radars}
        self.pose_pub = self.create_publisher(PoseStamped, topics.EGO_POSE, sensor_qos(20))
        self.tf_pub = self.create_publisher(TFMessage, topics.TF_STATIC, latched_qos())
        self.truth_pub = self.create_publisher(Detection3DArray, topics.GROUND_TRUTH,
                                               reliable_qos())
        self.marker_pub = self.create_publisher(MarkerArray, topics.GROUND_TRUTH_MARKERS,
                                                reliable_qos())
        sensors = [self.sim.lidar.cfg.name, *self.sim.cameras, *self.sim.radars]
        self.diagnostics = Diagnostics(self, sensors, p.diagnostics_period_s)
        self.published = 0

    # --------------------------------------------------------------------------------------

    def stamp(self, sim_stamp_ns: int) -> int:
        return sim_stamp_ns + self.stamp_shift_ns

    def publish_tf_static(self) -> None:
        """Vehicle -> lidar, radar and camera-optical frames, from the rig's calibrations."""
        frame = next(iter(self.sim.frames(1)))
        transforms = {}
        if frame.lidar is not None and frame.lidar.calibration is not None:
            transforms[topics.sensor_frame(frame.lidar.sensor_name)] = \
                frame.lidar.calibration.T_vehicle_sensor
        for name, scan in frame.radars.items():
            if scan.calibration is not None:
                transforms[topics.sensor_frame(name)] = scan.calibration.T_vehicle_sensor
        for name, image in frame.cameras.items():
            transforms[topics.optical_frame(name)] = image.calibration.T_vehicle_optical
        self.tf_pub.publish(transforms_to_tf_message(
            transforms, self.params.vehicle_frame, self.stamp(self.sim.start_stamp_ns)))

    def publish_message(self, message: StreamMessage) -> None:
        """Convert and publish one simulator message on its topic(s)."""
        stamp = self.stamp(message.stamp_ns)
        if message.kind is MessageKind.EGO_POSE:
            self.publish_pose(message.payload, stamp)  # type: ignore[arg-type]
            return
        if message.kind is MessageKind.LIDAR:
            self.publish_lidar(message.payload, stamp)  # type: ignore[arg-type]
        elif message.kind is MessageKind.CAMERA:
            self.publish_camera(message.payload, stamp)  # type: ignore[arg-type]
        else:
            self.publish_radar(message.payload, stamp)  # type: ignore[arg-type]
        self.published += 1
        lag_ms = (time.time_ns() - self.due_wall_ns(message.stamp_ns)) / 1e6
        self.diagnostics.received(message.sensor_name, latency_ms=lag_ms)

    def publish_lidar(self, sweep: LidarSweep, stamp: int) -> None:
        p = self.params
        cloud = lidar_sweep_to_cloud(sweep, p.vehicle_frame)
        cloud.header.stamp = ns_to_stamp(stamp)
        self.lidar_pub.publish(cloud)
        if p.publish_ground_truth:
            boxes = self.sim.ground_truth(sweep.stamp_ns, sweep)
            self.truth_pub.publish(boxes_to_msg(boxes, stamp, p.vehicle_frame))
            self.marker_pub.publish(ground_truth_markers(boxes, stamp, p.vehicle_frame))

    def publish_camera(self, image: CameraImage, stamp: int) -> None:
        frame_id = topics.optical_frame(image.name)
        if self.params.image_transport == "raw":
            out = camera_image_to_image(image, frame_id)
        else:
            out = camera_image_to_compressed(image, frame_id, fmt=self.params.image_transport)
        out.header.stamp = ns_to_stamp(stamp)
        self.image_pubs[image.name].publish(out)
        self.info_pubs[image.name].publish(
            calibration_to_camera_info(image.calibration, stamp, frame_id))

    def publish_radar(self, scan: RadarScan, stamp: int) -> None:
        cloud = radar_scan_to_cloud(scan, self.params.vehicle_frame)
        cloud.header.stamp = ns_to_stamp(stamp)
        self.radar_pubs[scan.sensor_name].publish(cloud)

    def publish_pose(self, pose: EgoPose, stamp: int) -> None:
        out = ego_pose_to_pose_stamped(pose, self.params.world_frame)
        out.header.stamp = ns_to_stamp(stamp)
        self.pose_pub.publish(out)

    def due_wall_ns(self, sim_stamp_ns: int) -> int:
        """Wall-clock time at which a message is due (playback starts after the delay)."""
        p = self.params
        if p.rate_factor == 0:
            return 0
        elapsed_ns = (sim_stamp_ns - self.sim.start_stamp_ns) / p.rate_factor
        return self.playback_start_ns + int(elapsed_ns)


def _wait_until(executor: SingleThreadedExecutor, node: SimNode, due_ns: int) -> bool:
    """Serve callbacks (diagnostics) until ``due_ns``; False once the node is shut down."""
    while running(node):
        remaining_s = (due_ns - time.time_ns()) / 1e9
        try:
            executor.spin_once(timeout_sec=min(max(remaining_s, 0.0), SIGNAL_CHECK_S))
        except RCLError:
            if node.context.ok():
                raise
            return False  # the context was shut down while waiting
        if remaining_s <= 0:
            return running(node)
    return False


def play(node: SimNode) -> None:
    """Publish the whole scenario on schedule; returns early on Ctrl-C / SIGTERM."""
    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    node.publish_tf_static()
    for message in node.sim.stream(node.params.duration_s):
        if not _wait_until(executor, node, node.due_wall_ns(message.stamp_ns)):
            return
        try:
            node.publish_message(message)
        except RCLError:
            if node.context.ok():
                raise
            return  # shut down between the check and the publish
    node.get_logger().info(f"scenario finished: {node.published} sensor messages published")
    node.diagnostics.publish()
    _wait_until(executor, node, time.time_ns() + 100_000_000)


def main(argv: list[str] | None = None) -> int:
    return run_node(SimNode, spin=play, argv=argv)


if __name__ == "__main__":
    raise SystemExit(main())

"""A sensor rig in its own process, for the node fault and soak tests: publishes simulator
frames on the standard sensor topics, stamped with the wall clock, at a set rate, and injects
the faults it is told about on stdin.

Run by the tests (``python tests/reliability/_node_rig.py --rate-hz 2``); it prints ``ready``
once its publishers exist and ``frame K STAMP`` after each frame. Each stdin line is a JSON
object merged into the fault settings:

* ``camera``, ``radar``, ``lidar``, ``pose`` (bool): publish that input (default true);
* ``radar_delay_s`` (float): publish each radar scan this long after its stamp;
* ``lidar_drop_every`` (int): drop one lidar sweep in every N (0: none);
* ``clock_offset_s`` (``{"lidar"|"camera"|"radar"|"pose": float}``): added to that sensor's
  stamps (a clock that jumped);
* ``rate_hz`` (float): frames per second.

The scene is static: one simulator frame of the ``tiny`` rig, the vehicle standing still.
Two ego poses go out per frame, at the frame stamp and ``POSE_LEAD_S`` after it, so the
poses cover the sweep's capture time (motion compensation needs no waiting).
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
import threading
import time

import rclpy
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from tf2_msgs.msg import TFMessage

from perception.data.sim import Simulator
from ros_nodes import topics
from ros_nodes.conversions.image import calibration_to_camera_info, camera_image_to_image
from ros_nodes.conversions.pointcloud2 import lidar_sweep_to_cloud, radar_scan_to_cloud
from ros_nodes.conversions.stamps import ns_to_stamp
from ros_nodes.conversions.tf import ego_pose_to_pose_stamped, transforms_to_tf_message
from ros_nodes.node_base import latched_qos, sensor_qos

PRESET, SEED, FRAME_INDEX = "tiny", 3, 0
LIDAR, CAMERA, RADAR = "TOP", "FRONT", "RADAR_FRONT"
VEHICLE_FRAME, WORLD_FRAME = "base_link", "map"
POSE_LEAD_S = 0.1
NS = 1_000_000_000


class Faults:
    """The fault settings, changed from the stdin thread, read by the publishing loop."""

    def __init__(self, rate_hz: float):
        self.lock = threading.Lock()
        self.values = {"camera": True, "radar": True, "lidar": True, "pose": True,
                       "radar_delay_s": 0.0, "lidar_drop_every": 0, "clock_offset_s": {},
                       "rate_hz": rate_hz}

    def update(self, changes: dict) -> None:
        with self.lock:
            self.values.update(changes)

    def snapshot(self) -> dict:
        with self.lock:
            return {**self.values, "clock_offset_s": dict(self.values["clock_offset_s"])}


def _read_commands(faults: Faults, stop: threading.Event) -> None:
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        command = json.loads(line)
        if command.get("stop"):
            break
        faults.update(command)
    stop.set()  # stdin closed: the test is gone


class Rig:
    def __init__(self, node):
        sim = Simulator(PRESET, seed=SEED)
        frame = sim.frame(FRAME_INDEX)
        self.image = frame.cameras[CAMERA]
        qos = sensor_qos(5)
        self.lidar_pub = node.create_publisher(PointCloud2, topics.LIDAR_POINTS, qos)
        self.image_pub = node.create_publisher(Image, topics.camera_image(CAMERA), qos)
        self.info_pub = node.create_publisher(CameraInfo, topics.camera_info(CAMERA), qos)
        self.radar_pub = node.create_publisher(PointCloud2, topics.radar_points(RADAR), qos)
        self.pose_pub = node.create_publisher(PoseStamped, topics.EGO_POSE, sensor_qos(20))
        self.tf_pub = node.create_publisher(TFMessage, topics.TF_STATIC, latched_qos())
        self.optical = topics.optical_frame(CAMERA)
        # messages built once; each frame only sets the stamps
        self.cloud = lidar_sweep_to_cloud(frame.lidar, VEHICLE_FRAME)
        self.image_msg = camera_image_to_image(self.image, self.optical)
        self.radar_msg = radar_scan_to_cloud(frame.radars[RADAR], VEHICLE_FRAME)
        self.pose_msg = ego_pose_to_pose_stamped(frame.ego_pose, WORLD_FRAME)
        self.delayed: list[tuple[float, int, object, object]] = []
        self.sequence = 0

    def publish_tf(self) -> None:
        self.tf_pub.publish(transforms_to_tf_message(
            {self.optical: self.image.calibration.T_vehicle_optical}, VEHICLE_FRAME,
            time.time_ns()))

    def _later(self, due: float, publisher, msg) -> None:
        self.sequence += 1
        heapq.heappush(self.delayed, (due, self.sequence, publisher, msg))

    def publish_due(self, now: float) -> None:
        while self.delayed and self.delayed[0][0] <= now:
            _, _, publisher, msg = heapq.heappop(self.delayed)
            publisher.publish(msg)

    def publish_frame(self, k: int, f: dict) -> int:
        now_ns = time.time_ns()
        offsets = f["clock_offset_s"]

        def stamp(kind: str, extra_s: float = 0.0) -> int:
            return now_ns + int((offsets.get(kind, 0.0) + extra_s) * NS)

        if f["pose"]:
            for lead in (0.0, POSE_LEAD_S):
                self.pose_msg.header.stamp = ns_to_stamp(stamp("pose", lead))
                self.pose_pub.publish(self.pose_msg)
        if f["camera"]:
            s = stamp("camera")
            self.info_pub.publish(calibration_to_camera_info(self.image.calibration, s,
                                                             self.optical))
            self.image_msg.header.stamp = ns_to_stamp(s)
            self.image_pub.publish(self.image_msg)
        if f["radar"]:
            msg = _copy_cloud(self.radar_msg)
            msg.header.stamp = ns_to_stamp(stamp("radar"))
            if f["radar_delay_s"] > 0:
                self._later(time.monotonic() + f["radar_delay_s"], self.radar_pub, msg)
            else:
                self.radar_pub.publish(msg)
        drop = f["lidar_drop_every"]
        lidar_stamp = stamp("lidar")
        if f["lidar"] and not (drop and k % drop == drop - 1):
            self.cloud.header.stamp = ns_to_stamp(lidar_stamp)
            self.lidar_pub.publish(self.cloud)
        return lidar_stamp


def _copy_cloud(msg: PointCloud2) -> PointCloud2:
    """A new message with the same fields and data (a delayed scan keeps its own stamp)."""
    out = PointCloud2(height=msg.height, width=msg.width, fields=msg.fields,
                      is_bigendian=msg.is_bigendian, point_step=msg.point_step,
                      row_step=msg.row_step, data=msg.data, is_dense=msg.is_dense)
    out.header.frame_id = msg.header.frame_id
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate-hz", type=float, default=2.0)
    args = parser.parse_args()
    rclpy.init()
    node = rclpy.create_node("test_sensor_rig")
    rig = Rig(node)
    faults = Faults(args.rate_hz)
    stop = threading.Event()
    threading.Thread(target=_read_commands, args=(faults, stop), daemon=True).start()
    rig.publish_tf()
    print("ready", flush=True)
    k = 0
    next_frame = time.monotonic()
    try:
        while not stop.is_set():
            now = time.monotonic()
            rig.publish_due(now)
            if now >= next_frame:
                f = faults.snapshot()
                stamp = rig.publish_frame(k, f)
                print(f"frame {k} {stamp}", flush=True)
                k += 1
                next_frame += 1.0 / f["rate_hz"]
                if next_frame < now:  # fell behind (a busy machine): do not burst
                    next_frame = now + 1.0 / f["rate_hz"]
            wake = next_frame if not rig.delayed else min(next_frame, rig.delayed[0][0])
            time.sleep(max(0.0, min(wake - time.monotonic(), 0.05)))
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``detector_node`` in its own process (``perception launch perception.launch.yaml``), fed by
this process over real DDS (loopback profile, private domain) with simulator data from the
``nuscenes_like`` rig: sensors that stop while it runs, malformed messages, and parameter
files with invalid values.

The node runs the shipped model on one front camera and one front radar here (a parameter
file in ``tmp_path``), which keeps the test light; the model masks the cameras it does not
get."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection3DArray

from fusion_perception_msgs.msg import PerceptionStatus
from perception.data.sim import Simulator
from ros_nodes import topics
from ros_nodes.conversions.image import calibration_to_camera_info, camera_image_to_image
from ros_nodes.conversions.pointcloud2 import (
    lidar_sweep_to_cloud,
    points_to_cloud,
    radar_scan_to_cloud,
)
from ros_nodes.conversions.stamps import ns_to_stamp, stamp_to_ns
from ros_nodes.conversions.tf import transforms_to_tf_message
from ros_nodes.node_base import latched_qos, reliable_qos, sensor_qos

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "ros_nodes" / "config"
CAMERA, RADAR, LIDAR = "CAM_FRONT", "RADAR_FRONT", "LIDAR_TOP"
FRAME_PERIOD_S = 0.6
"""One frame (lidar, camera, radar at the same stamp) this often; the model may drop some."""
PUMP_DEADLINE_S = 90.0
"""Guard against hangs only (the first frame includes the model's warm-up)."""
MIN_FRAME_GAP_S = 0.2
"""Stamps of consecutive frames lie at least this far apart, well over the node's match
tolerance (0.05 s): a frame published right after the previous one (the first frame of a new
phase) would otherwise match the previous frame's image to its sweep."""


@pytest.fixture(scope="module")
def sensor_data():
    """Three ticks of the nuscenes_like rig: lidar sweeps, front camera images, front radar
    scans (the node gets them with fresh stamps)."""
    sim = Simulator("nuscenes_like", seed=1)
    return [(sim.lidar_scan(k).sweep, sim.render_camera(CAMERA, k).image,
             sim.radar_scan(RADAR, k)) for k in (10, 12, 14)]


def detector_params(tmp_path: Path, **changes) -> Path:
    data = yaml.safe_load((CONFIG / "detector.param.yaml").read_text())
    values = data["/**"]["ros__parameters"]
    # frames come every FRAME_PERIOD_S: a sensor is stale only when it missed several
    values.update(camera_names=[CAMERA], radar_names=[RADAR], compensate_motion=False,
                  torch_threads=1, diagnostics_period_s=0.5, max_sensor_delay_s=2.0)
    values.update(changes)
    path = tmp_path / "detector.param.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


class Rig:
    """Publishes the sensor topics of one camera, one radar and the lidar, stamped now."""

    def __init__(self, node, data, cameras=(CAMERA,)):
        self.node = node
        self.data = data
        self.cameras = cameras
        qos = sensor_qos(5)
        self.lidar = node.create_publisher(PointCloud2, topics.LIDAR_POINTS, qos)
        self.images = {c: node.create_publisher(Image, topics.camera_image(c), qos)
                       for c in cameras}
        self.infos = {c: node.create_publisher(CameraInfo, topics.camera_info(c), qos)
                      for c in cameras}
        self.radar = node.create_publisher(PointCloud2, topics.radar_points(RADAR), qos)
        self.tf = node.create_publisher(TFMessage, topics.TF_STATIC, latched_qos())
        self.count = 0
        self.stamps: list[int] = []
        self._last_publish_s = -float("inf")

    def publish_tf(self) -> None:
        image = self.data[0][1]
        self.tf.publish(transforms_to_tf_message(
            {topics.optical_frame(c): image.calibration.T_vehicle_optical for c in self.cameras},
            "base_link", time.time_ns()))

    def publish(self, lidar=True, camera=True, radar=True) -> int:
        sweep, image, scan = self.data[self.count % len(self.data)]
        self.count += 1
        wait_s = self._last_publish_s + MIN_FRAME_GAP_S - time.monotonic()
        if wait_s > 0:
            time.sleep(wait_s)
        self._last_publish_s = time.monotonic()
        stamp = time.time_ns()
        if camera:
            frame = topics.optical_frame(CAMERA)
            self.infos[CAMERA].publish(calibration_to_camera_info(image.calibration, stamp,
                                                                  frame))
            msg = camera_image_to_image(image, frame)
            msg.header.stamp = ns_to_stamp(stamp)
            self.images[CAMERA].publish(msg)
        if radar:
            msg = radar_scan_to_cloud(scan, "base_link")
            msg.header.stamp = ns_to_stamp(stamp)
            self.radar.publish(msg)
        if lidar:
            msg = lidar_sweep_to_cloud(sweep, "base_link")
            msg.header.stamp = ns_to_stamp(stamp)
            self.lidar.publish(msg)
        self.stamps.append(stamp)
        return stamp


class Probe:
    """What the detector publishes, as seen from this process."""

    def __init__(self, node):
        self.statuses: list[PerceptionStatus] = []
        self.objects: list[Detection3DArray] = []
        self.diagnostics: list[DiagnosticArray] = []
        node.create_subscription(PerceptionStatus, "/detector/output/status",
                                 self.statuses.append, reliable_qos())
        node.create_subscription(Detection3DArray, topics.DETECTOR_OBJECTS, self.objects.append,
                                 reliable_qos())
        node.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self.diagnostics.append,
                                 reliable_qos())

    def modalities_since(self, stamp_ns: int) -> list[tuple[str, ...]]:
        return [tuple(s.modalities) for s in self.statuses if stamp_to_ns(s.header.stamp)
                >= stamp_ns]

    def object_stamps(self) -> set[int]:
        return {stamp_to_ns(m.header.stamp) for m in self.objects}

    def status(self, name: str, since: int = 0) -> DiagnosticStatus | None:
        """The latest ``detector: <name>`` status among the arrays received after ``since``
        of them."""
        for array_msg in reversed(self.diagnostics[since:]):
            for status in array_msg.status:
                if status.name == f"detector: {name}":
                    return status
        return None

    def summary(self) -> str:
        """The last statuses and diagnostics, for a failure message."""
        lines = [f"statuses: {[tuple(s.modalities) for s in self.statuses[-6:]]}"]
        if self.diagnostics:
            lines += [f"{s.level[0]} {s.name}: {s.message} "
                      f"{ {kv.key: kv.value for kv in s.values} }"
                      for s in self.diagnostics[-1].status]
        return "\n".join(lines)

    def values(self, name: str) -> dict[str, str]:
        status = self.status(name)
        return {kv.key: kv.value for kv in status.values} if status is not None else {}


def pump(ros_node, rig, condition, what, launched, probe=None, **which) -> None:
    """Publish a frame every FRAME_PERIOD_S (``which`` picks the sensors) and spin until
    ``condition()``."""
    deadline = time.monotonic() + PUMP_DEADLINE_S
    next_frame = 0.0
    while not condition():
        if time.monotonic() > deadline:
            seen = probe.summary() if probe is not None else ""
            pytest.fail(f"gave up waiting for {what}\n{seen}\n--- launch output ---\n"
                        f"{launched.output}")
        if launched.process.poll() is not None:
            launched.reader.join(timeout=5)
            pytest.fail(f"launch exited with {launched.process.returncode} while waiting for "
                        f"{what}\n--- launch output ---\n{launched.output}")
        if time.monotonic() >= next_frame:
            rig.publish(**which)
            next_frame = time.monotonic() + FRAME_PERIOD_S
        ros_node.test_executor.spin_once(timeout_sec=0.05)


def _level(status: DiagnosticStatus | None) -> int:
    return -1 if status is None else status.level[0]


def test_sensors_stop_while_running(tmp_path, sensor_data, launch, ros_node, spin):
    """All sensors, then no camera (lidar + radar, DEGRADED), then no lidar (camera + radar
    after the timeout, the lidar reported silent): detections keep coming throughout."""
    probe = Probe(ros_node)
    rig = Rig(ros_node, sensor_data)
    launched = launch(["perception.launch.yaml",
                       f"detector_params_file:={detector_params(tmp_path)}"])
    spin(ros_node, lambda: rig.lidar.get_subscription_count() > 0
         and rig.images[CAMERA].get_subscription_count() > 0, "the detector", launched)
    rig.publish_tf()

    full = ("camera", "lidar", "radar")
    pump(ros_node, rig, lambda: probe.modalities_since(0).count(full) >= 2,
         "two frames with every modality", launched, probe)
    assert all("lidar" in m for m in probe.modalities_since(0)), probe.summary()

    # the cameras stop
    start = rig.publish(camera=False)
    seen = len(probe.diagnostics)
    pump(ros_node, rig, lambda: probe.modalities_since(start).count(("lidar", "radar")) >= 2
         and "DEGRADED" in getattr(probe.status("modalities", seen), "message", ""),
         "frames with lidar and radar only, and a DEGRADED diagnostic", launched, probe,
         camera=False)
    # a lost radar scan may leave a frame with lidar alone; a camera never comes back
    assert all("camera" not in m and "lidar" in m for m in probe.modalities_since(start)), \
        probe.summary()
    degraded = probe.status("modalities", seen)
    assert degraded.level == DiagnosticStatus.WARN and "camera missing" in degraded.message
    assert {kv.key: kv.value for kv in degraded.values}["used"] == "lidar+radar"
    no_camera = [stamp_to_ns(s.header.stamp) for s in probe.statuses
                 if stamp_to_ns(s.header.stamp) >= start]
    spin(ros_node, lambda: set(no_camera) <= probe.object_stamps(),
         "the detections of those frames", launched)

    # the lidar stops (the cameras are back): frames without lidar after the timeout
    start = rig.publish(lidar=False)
    seen = len(probe.diagnostics)

    def lidar_reported_missing() -> bool:
        lidar = probe.status(LIDAR, seen)
        modalities = probe.status("modalities", seen)
        return (_level(lidar) == DiagnosticStatus.ERROR[0] and modalities is not None
                and "lidar missing" in modalities.message)

    pump(ros_node, rig, lambda: len(probe.modalities_since(start)) >= 2
         and lidar_reported_missing(), "frames without lidar and a silent lidar", launched,
         probe, lidar=False)
    assert all("lidar" not in m for m in probe.modalities_since(start)), probe.summary()
    assert sum("camera" in m for m in probe.modalities_since(start)) >= 2, probe.summary()
    assert "no messages" in probe.status(LIDAR, seen).message
    without_lidar = [stamp_to_ns(s.header.stamp) for s in probe.statuses
                     if stamp_to_ns(s.header.stamp) >= start]
    assert set(without_lidar) <= set(rig.stamps)  # stamped with the camera's stamp
    spin(ros_node, lambda: set(without_lidar) <= probe.object_stamps(),
         "the (possibly empty) detections of those frames", launched)
    # the diagnostics are periodic: wait for the ones that count the frames seen above
    spin(ros_node, lambda: int(probe.values("modalities").get("frames_without_lidar", 0)) >= 2,
         "diagnostics counting two frames without lidar", launched)
    spin(ros_node, lambda: int(probe.values("frames").get("processed", 0)) >= 6,
         "diagnostics counting six processed frames", launched)
    assert probe.values("frames")["failed"] == "0"
    assert launched.process.poll() is None
    assert launched.interrupt() == 0, launched.output
    assert "[launch] detector exited with code 0" in launched.output


def _malformed(rig, stamp: int) -> None:
    """A cloud whose point_step disagrees with its data, a cloud of NaNs, an empty cloud, an
    image whose size disagrees with its CameraInfo, a radar cloud without the doppler field,
    and an image of a camera whose CameraInfo never came."""
    sweep, image, scan = rig.data[0]
    short = lidar_sweep_to_cloud(sweep, "base_link")
    short.point_step += 4
    nans = points_to_cloud(np.full((1000, 4), np.nan, np.float32),
                           ("x", "y", "z", "intensity"), stamp + 2, "base_link")
    empty = points_to_cloud(np.zeros((0, 4), np.float32), ("x", "y", "z", "intensity"),
                            stamp + 3, "base_link")
    short.header.stamp = ns_to_stamp(stamp + 1)
    for msg in (short, nans, empty):
        rig.lidar.publish(msg)
    small = camera_image_to_image(image, topics.optical_frame(CAMERA))
    small.height //= 2
    small.data = small.data[:small.step * small.height]
    small.header.stamp = ns_to_stamp(stamp + 4)
    rig.images[CAMERA].publish(small)
    radar = radar_scan_to_cloud(scan, "base_link")
    radar.fields = [f for f in radar.fields if f.name != "doppler"]
    radar.header.stamp = ns_to_stamp(stamp + 5)
    rig.radar.publish(radar)
    unknown = camera_image_to_image(image, topics.optical_frame("CAM_BACK"))
    unknown.header.stamp = ns_to_stamp(stamp + 6)
    rig.images["CAM_BACK"].publish(unknown)


def test_malformed_messages_are_counted_and_the_node_keeps_publishing(
        tmp_path, sensor_data, launch, ros_node, spin):
    probe = Probe(ros_node)
    rig = Rig(ros_node, sensor_data, cameras=(CAMERA, "CAM_BACK"))
    params = detector_params(tmp_path, camera_names=[CAMERA, "CAM_BACK"])
    launched = launch(["perception.launch.yaml", f"detector_params_file:={params}"])
    spin(ros_node, lambda: rig.lidar.get_subscription_count() > 0
         and rig.images["CAM_BACK"].get_subscription_count() > 0, "the detector", launched)
    rig.publish_tf()
    pump(ros_node, rig, lambda: len(probe.statuses) >= 1, "a first frame", launched, probe)

    def counted() -> bool:
        lidar, camera = probe.values(LIDAR), probe.values(CAMERA)
        radar, back = probe.values(RADAR), probe.values("CAM_BACK")
        return (int(lidar.get("malformed", 0)) >= 3 and int(camera.get("malformed", 0)) >= 1
                and int(radar.get("malformed", 0)) >= 1 and int(back.get("dropped", 0)) >= 1)

    # best effort: repeat the bad messages, between good frames, until each was counted
    deadline = time.monotonic() + PUMP_DEADLINE_S
    bad_stamps = []
    while not counted():
        assert time.monotonic() < deadline, f"malformed messages not counted\n{launched.output}"
        stamp = time.time_ns()
        bad_stamps += [stamp + i for i in range(1, 7)]
        _malformed(rig, stamp)
        rig.publish()
        until = stamp + int(FRAME_PERIOD_S * 1e9)
        spin(ros_node, lambda until=until: time.time_ns() > until, "time to pass", launched)
    after = rig.publish()
    pump(ros_node, rig, lambda: any(stamp_to_ns(s.header.stamp) >= after
                                    for s in probe.statuses), "a frame after the bad messages",
         launched, probe)
    assert not set(bad_stamps) & probe.object_stamps()
    lidar = probe.values(LIDAR)
    assert "point_step" in lidar["last_error"] or "finite" in lidar["last_error"] or \
        "data" in lidar["last_error"]
    assert "no CameraInfo" in probe.values("CAM_BACK")["last_error"]
    assert probe.values("frames")["failed"] == "0"
    assert launched.process.poll() is None
    assert "skipped a message" in launched.output
    assert launched.terminate() == 0, launched.output


@pytest.mark.parametrize("override, name", [
    ("score_threshold: 1.5", "score_threshold: value 1.5 out of range"),
    ("device: gpu", "device: expected cpu, cuda or cuda:N"),
    ("precision: fp8", "precision: expected one of"),
    ("camera_names: [LIDAR_TOP]", "sensor names must be unique"),
    ("fallback_sensor: RADAR_REAR", "fallback_sensor:"),
    ("model_path: /no/such/model.pt", "model_path: cannot load /no/such/model.pt"),
    ("backend: tensorrt", "backend: expected one of"),
])
def test_an_invalid_parameter_file_exits_with_2_naming_the_parameter(tmp_path, override, name):
    path = tmp_path / "bad.param.yaml"
    path.write_text(f"/**:\n  ros__parameters:\n    {override}\n")
    done = subprocess.run([sys.executable, "-m", "ros_nodes.detector_node", "--ros-args",
                           "--params-file", str(CONFIG / "detector.param.yaml"),
                           "--params-file", str(path)], cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if "invalid parameters" in line]
    assert len(lines) == 1 and name in lines[0], done.stderr
    assert lines[0].startswith("invalid parameters, not starting: node /detector parameters")

"""End-to-end latency of the perception chain: sensor stamp -> tracks, across processes and in
process, with the shipped model on the ``nuscenes_like`` rig (lidar, 6 cameras, 5 radars).

* Cross-process: ``perception.launch.yaml`` (detector_node and tracker_node, each its own
  process, real rclpy and Fast DDS with the loopback profile) fed by this process, which
  publishes recorded simulator frames (all sensors of a frame stamped with the wall clock right
  before publishing, ego poses around that stamp) and receives ``/tracker/output/tracks``.
  Latency = receive time of the tracks minus the sensor stamp.
* In process (the baseline): the same frames through :class:`perception.pipeline.Pipeline`
  with the node's threading: the sync (:class:`perception.align.SensorSync`, compensation
  deferred) in the producer thread, the newest frame handed to a worker through
  :class:`perception.align.LatestFrame`, compensation, detector and tracker in the worker.
  Latency = tracks out minus the sensor stamp. The ratio cross-process / in-process is the
  cost of ROS (conversions, DDS, two more hops).

Each is run at 10 Hz lidar (the model is slower: frames are dropped by design, newest wins),
which gives the drop ratio and the throughput under saturation (= the sustainable input rate),
then at 80 % of that rate, where nothing should be dropped, for the latency. torch runs one
intra-op thread in both. :func:`in_process` also serves ``benchmarks/gpu_nodes.py`` (the same
measurement on a GPU machine, which has no ROS).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import yaml

from .harness import Report

REPO = Path(__file__).resolve().parents[1]
SEED = 5
N_FRAMES = 8
"""Distinct frames, published in a loop (each with a fresh stamp)."""
SATURATED_HZ = 10.0
PHASE_S = 20.0
WARMUP_FRAMES = 3
SUSTAINABLE_FRACTION = 0.8
POSE_OFFSETS_NS = (-40_000_000, 0, 40_000_000)
"""Ego poses around each frame's stamp, covering the sweep's +-25 ms of firing times."""


# ------------------------------------------------------------------------------------------
# Frames
# ------------------------------------------------------------------------------------------

def make_frames(n: int = N_FRAMES, seed: int = SEED) -> list:
    """``n`` synchronised ``nuscenes_like`` frames (every other sweep)."""
    from perception.data.sim import Simulator

    sim = Simulator("nuscenes_like", seed=seed)
    return [sim.frame(2 * k) for k in range(n)]


def restamped(frame, stamp_ns: int) -> list:
    """The messages of ``frame`` (lidar, cameras, radars, ego poses) at ``stamp_ns``."""
    from perception.types import EgoPose

    messages = [dataclasses.replace(frame.lidar, stamp_ns=stamp_ns)]
    messages += [dataclasses.replace(c, stamp_ns=stamp_ns) for c in frame.cameras.values()]
    messages += [dataclasses.replace(r, stamp_ns=stamp_ns) for r in frame.radars.values()]
    messages += [EgoPose(stamp_ns + dt, frame.ego_pose.T_world_vehicle) for dt in POSE_OFFSETS_NS]
    return messages


def sync_config(frames):
    from perception.align import SyncConfig

    frame = frames[0]
    return SyncConfig(reference=frame.lidar.sensor_name, cameras=tuple(frame.cameras),
                      radars=tuple(frame.radars), timeout_s=0.2, max_sensor_delay_s=0.5)


@dataclasses.dataclass
class Phase:
    """One run at a fixed input rate."""

    where: str
    rate_hz: float
    sent: int
    latencies_ms: np.ndarray
    seconds: float
    stages_ms: dict[str, float] = dataclasses.field(default_factory=dict)
    """Median per stage of the detector node (its ``~/debug/processing_time/*`` topics)."""

    @property
    def received(self) -> int:
        return len(self.latencies_ms)

    @property
    def drop_ratio(self) -> float:
        return 1.0 - self.received / self.sent if self.sent else 0.0

    @property
    def throughput_hz(self) -> float:
        return self.received / self.seconds

    def row(self) -> list:
        p50, p99 = (np.percentile(self.latencies_ms, [50, 99]) if self.received
                    else (float("nan"),) * 2)
        return [self.where, f"{self.rate_hz:.2f}", self.sent, self.received,
                f"{self.drop_ratio:.2f}", f"{self.throughput_hz:.2f}", float(p50), float(p99)]


HEADERS = ["where", "lidar Hz", "frames in", "tracks out", "dropped", "tracks Hz",
           "p50 ms", "p99 ms"]


# ------------------------------------------------------------------------------------------
# In process
# ------------------------------------------------------------------------------------------

def in_process(frames, device: str = "cpu", rate_hz: float = SATURATED_HZ,
               seconds: float = PHASE_S, pipeline=None, where: str = "in process") -> Phase:
    """The node's threading without ROS: a producer pushes each frame's messages into the sync
    at ``rate_hz`` and hands every frame out to a :class:`LatestFrame`; a worker runs detector
    and tracker on the newest. Returns the sensor-stamp -> tracks latencies."""
    from perception.align import LatestFrame, SensorSync
    from perception.pipeline import Pipeline

    if pipeline is None:
        pipeline = Pipeline.from_checkpoint(device=device)
    sync = SensorSync(sync_config(frames), defer_compensation=True)  # as detector_node
    box: LatestFrame = LatestFrame()
    latencies: list[float] = []
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set() or box.waiting:
            aligned = box.take(timeout_s=0.1)
            if aligned is None:
                continue
            output = pipeline.process(aligned.compensated())
            assert output.tracks is not None
            latencies.append((time.time_ns() - output.stamp_ns) / 1e6)

    worker = threading.Thread(target=work)
    worker.start()
    sent = 0
    start = time.monotonic()
    next_tick = start
    try:
        while time.monotonic() - start < seconds:
            stamp = time.time_ns()
            for message in restamped(frames[sent % len(frames)], stamp):
                for aligned in sync.push(message, time.monotonic_ns()):
                    box.put(aligned)
            sent += 1
            next_tick += 1.0 / rate_hz
            time.sleep(max(0.0, next_tick - time.monotonic()))
    finally:
        stop.set()
        worker.join()
    return Phase(where, rate_hz, sent, np.asarray(latencies), time.monotonic() - start)


def in_process_runs(frames, device: str = "cpu", where: str = "in process",
                    seconds: float = PHASE_S, precision: str = "fp32") -> tuple[Phase, Phase]:
    """Saturated at 10 Hz, then at 80 % of the throughput measured there."""
    import torch

    from perception.pipeline import Pipeline

    torch.set_num_threads(1)
    pipeline = Pipeline.from_checkpoint(device=device, precision=precision)
    in_process(frames, rate_hz=1.0, seconds=WARMUP_FRAMES, pipeline=pipeline)  # warm-up
    saturated = in_process(frames, rate_hz=SATURATED_HZ, seconds=seconds, pipeline=pipeline,
                           where=where)
    rate = max(0.2, SUSTAINABLE_FRACTION * saturated.throughput_hz)
    sustained = in_process(frames, rate_hz=rate, seconds=seconds, pipeline=pipeline,
                           where=where)
    return saturated, sustained


# ------------------------------------------------------------------------------------------
# Across processes
# ------------------------------------------------------------------------------------------

def _params_file(folder: Path) -> Path:
    data = yaml.safe_load((REPO / "ros_nodes" / "config" / "detector.param.yaml").read_text())
    data["/**"]["ros__parameters"]["torch_threads"] = 1
    path = folder / "detector.param.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


class _Feed:
    """Publisher of recorded frames and receiver of the tracks, in this process."""

    def __init__(self, frames):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2
        from tf2_msgs.msg import TFMessage

        from fusion_perception_msgs.msg import TrackedObjectArray
        from ros_nodes import topics
        from ros_nodes.conversions.image import (
            calibration_to_camera_info,
            camera_image_to_image,
        )
        from ros_nodes.conversions.pointcloud2 import lidar_sweep_to_cloud, radar_scan_to_cloud
        from ros_nodes.conversions.stamps import stamp_to_ns
        from ros_nodes.conversions.tf import ego_pose_to_pose_stamped, transforms_to_tf_message
        from ros_nodes.node_base import latched_qos, reliable_qos, sensor_qos
        from geometry_msgs.msg import PoseStamped

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("bench_feed", context=self.context)
        node = self.node
        qos = sensor_qos(5)
        frame = frames[0]
        self.lidar_pub = node.create_publisher(PointCloud2, topics.LIDAR_POINTS, qos)
        self.pubs = {}
        self.frames = []
        for f in frames:
            msgs = [(self.lidar_pub, lidar_sweep_to_cloud(f.lidar, "base_link"))]
            for name, image in f.cameras.items():
                optical = topics.optical_frame(name)
                pub = self.pubs.setdefault(name, node.create_publisher(
                    Image, topics.camera_image(name), qos))
                info = self.pubs.setdefault(name + "/info", node.create_publisher(
                    CameraInfo, topics.camera_info(name), qos))
                msgs.append((info, calibration_to_camera_info(image.calibration, 0, optical)))
                msgs.append((pub, camera_image_to_image(image, optical)))
            for name, scan in f.radars.items():
                pub = self.pubs.setdefault(name, node.create_publisher(
                    PointCloud2, topics.radar_points(name), qos))
                msgs.append((pub, radar_scan_to_cloud(scan, "base_link")))
            pose_pub = self.pubs.setdefault("pose", node.create_publisher(
                PoseStamped, topics.EGO_POSE, sensor_qos(20)))
            poses = [(pose_pub, ego_pose_to_pose_stamped(f.ego_pose, "map"), dt)
                     for dt in POSE_OFFSETS_NS]
            self.frames.append((msgs, poses))
        self.tf_pub = node.create_publisher(TFMessage, topics.TF_STATIC, latched_qos())
        self.tf_pub.publish(transforms_to_tf_message(
            {topics.optical_frame(n): c.calibration.T_vehicle_optical
             for n, c in frame.cameras.items()}, "base_link", time.time_ns()))
        self.received: dict[int, int] = {}
        self._stamp_to_ns = stamp_to_ns
        node.create_subscription(TrackedObjectArray, topics.TRACKER_TRACKS, self._on_tracks,
                                 reliable_qos(50))
        from std_msgs.msg import Float64

        from ros_nodes.detector_node import STAGES

        self.stages: dict[str, list[float]] = {stage: [] for stage in STAGES}
        for stage in STAGES:
            node.create_subscription(
                Float64, f"/detector/debug/processing_time/{stage}_ms",
                lambda msg, stage=stage: self.stages[stage].append(msg.data), 50)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(node)
        self._spinning = True
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        while self._spinning:
            self.executor.spin_once(timeout_sec=0.05)

    def _on_tracks(self, msg) -> None:
        self.received[self._stamp_to_ns(msg.header.stamp)] = time.time_ns()

    def ready(self) -> bool:
        from ros_nodes import topics

        return (self.lidar_pub.get_subscription_count() > 0
                and self.node.count_publishers(topics.TRACKER_TRACKS) > 0)

    def publish(self, index: int) -> int:
        from ros_nodes.conversions.stamps import ns_to_stamp

        msgs, poses = self.frames[index % len(self.frames)]
        stamp = time.time_ns()
        for pub, msg, dt in poses:
            msg.header.stamp = ns_to_stamp(stamp + dt)
            pub.publish(msg)
        for pub, msg in reversed(msgs):  # the lidar last: the frame is complete on arrival
            msg.header.stamp = ns_to_stamp(stamp)
            pub.publish(msg)
        return stamp

    def run(self, rate_hz: float, seconds: float, where: str = "across processes") -> Phase:
        for values in self.stages.values():
            values.clear()
        stamps = []
        start = time.monotonic()
        next_tick = start
        while time.monotonic() - start < seconds:
            stamps.append(self.publish(len(stamps)))
            next_tick += 1.0 / rate_hz
            time.sleep(max(0.0, next_tick - time.monotonic()))
        time.sleep(3.0)  # the last frame through the model
        latencies = [(self.received[s] - s) / 1e6 for s in stamps if s in self.received]
        stages = {k: float(np.median(v)) for k, v in self.stages.items() if v}
        return Phase(where, rate_hz, len(stamps), np.asarray(latencies),
                     time.monotonic() - start - 3.0, stages)

    def close(self) -> None:
        import rclpy

        self._spinning = False
        self.thread.join(timeout=5)
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def across_processes(frames, seconds: float = PHASE_S) -> tuple[Phase, Phase]:
    os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(REPO / "ros_nodes" / "fastdds_loopback.xml")
    os.environ["ROS_DOMAIN_ID"] = str(110 + os.getpid() % 40)
    with tempfile.TemporaryDirectory() as folder:
        params = _params_file(Path(folder))
        launcher = subprocess.Popen(
            [sys.executable, "-m", "ros_nodes.launcher", "perception.launch.yaml",
             f"detector_params_file:={params}"], cwd=REPO, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        feed = _Feed(frames)
        try:
            deadline = time.monotonic() + 120
            while not feed.ready():
                if time.monotonic() > deadline or launcher.poll() is not None:
                    raise RuntimeError("perception.launch.yaml did not come up")
                time.sleep(0.1)
            time.sleep(1.0)
            feed.run(1.0, WARMUP_FRAMES)  # the model's warm-up
            saturated = feed.run(SATURATED_HZ, seconds)
            rate = max(0.2, SUSTAINABLE_FRACTION * saturated.throughput_hz)
            sustained = feed.run(rate, seconds)
        finally:
            feed.close()
            launcher.send_signal(signal.SIGINT)
            try:
                launcher.wait(timeout=30)
            except subprocess.TimeoutExpired:
                launcher.kill()
                launcher.wait()
    return saturated, sustained


# ------------------------------------------------------------------------------------------

def report_runs(report: Report, title: str, runs: list[Phase], baseline: tuple[Phase, Phase],
                measured: tuple[Phase, Phase] | None, intro: str) -> None:
    report.section(title)
    report.line(intro)
    report.table(HEADERS, [phase.row() for phase in runs])
    for name, (saturated, sustained) in (("in process", baseline),) + (
            (("across processes", measured),) if measured else ()):
        report.line(f"{name}: sustainable input rate {saturated.throughput_hz:.2f} Hz (tracks "
                    f"per second when saturated); at {saturated.rate_hz:.0f} Hz lidar "
                    f"{saturated.drop_ratio:.0%} of the frames are dropped (newest frame wins); "
                    f"at {sustained.rate_hz:.2f} Hz {sustained.drop_ratio:.0%}.")
    if measured and measured[1].stages_ms:
        report.line("detector_node stages at the sustainable rate (median ms): " + ", ".join(
            f"{k} {v:.0f}" for k, v in measured[1].stages_ms.items()) + ".")
    if measured:
        ratio = np.percentile(measured[1].latencies_ms, 50) / np.percentile(
            baseline[1].latencies_ms, 50)
        ratio99 = np.percentile(measured[1].latencies_ms, 99) / np.percentile(
            baseline[1].latencies_ms, 99)
        report.line(f"Ratio across processes / in process at the sustainable rate: p50 "
                    f"{ratio:.2f}x, p99 {ratio99:.2f}x (the ROS overhead: conversions, DDS, "
                    f"two more hops).")
    report.line("")


def run(report: Report) -> None:
    import torch

    frames = make_frames()
    load_start = os.getloadavg()[0]
    baseline = in_process_runs(frames)
    measured = across_processes(frames)
    load = os.getloadavg()[0]
    intro = (f"Shipped model (`sim_fusion`), nuscenes_like rig (lidar ~31k points, 6 cameras, "
             f"5 radars), torch {torch.__version__} on the CPU with 1 intra-op thread, "
             f"{os.cpu_count()} cores, load average {load_start:.2f} at the start and "
             f"{load:.2f} at the end (other processes compete for the cores). Latency = tracks "
             f"out minus the sensor stamp. "
             f"Each phase {PHASE_S:.0f} s: {SATURATED_HZ:.0f} Hz lidar, then "
             f"{SUSTAINABLE_FRACTION:.0%} of the throughput measured there. On a GPU: "
             f"`benchmarks/gpu_nodes.py` (benchmarks/README.md).")
    report_runs(report, "Perception chain: sensor stamp -> tracks (detector + tracker)",
                [baseline[0], baseline[1], measured[0], measured[1]], baseline, measured, intro)

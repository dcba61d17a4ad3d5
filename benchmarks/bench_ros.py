"""ROS 2 benchmarks: PointCloud2 conversion and cross-process latency.

* PointCloud2 (150k points, x y z intensity time_offset_s as float32) -> numpy and back with
  :mod:`ros_nodes.conversions.pointcloud2`, against a per-point ``struct`` loop (what a naive
  converter does), as a ratio. Target: under 2 ms per conversion. Also the copy path of a
  padded, reordered layout with a float64 field.
* Publish -> receive latency of 150k-point clouds and of small radar clouds between two
  processes over Fast DDS with the loopback profile (shared memory + UDP on 127.0.0.1), best
  effort: p50 and p99 of ``receive time - stamp`` (the publisher stamps with the wall clock
  right before ``publish()``, so conversion on the publishing side is excluded and
  deserialisation on the receiving side included).
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .harness import Report, timeit

REPO = Path(__file__).resolve().parents[1]
N_POINTS = 150_000
COLUMNS = ("x", "y", "z", "intensity", "time_offset_s")
LATENCY_MESSAGES = 150
PUBLISH_RATE_HZ = 20.0


def _points(n: int = N_POINTS) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, len(COLUMNS))).astype(np.float32)


def _loop_to_cloud_data(points: np.ndarray) -> bytes:
    """Per-point baseline: pack each point with struct."""
    out = bytearray(points.shape[0] * 4 * points.shape[1])
    fmt = "<" + "f" * points.shape[1]
    step = struct.calcsize(fmt)
    for i, row in enumerate(points.tolist()):
        struct.pack_into(fmt, out, i * step, *row)
    return bytes(out)


def _loop_from_cloud(msg) -> np.ndarray:
    """Per-point baseline: unpack each point at its field offsets."""
    data = bytes(msg.data)
    offsets = [f.offset for f in msg.fields]
    out = np.empty((msg.width * msg.height, len(offsets)), np.float32)
    for i in range(out.shape[0]):
        base = i * msg.point_step
        out[i] = [struct.unpack_from("<f", data, base + o)[0] for o in offsets]
    return out


def _conversion(report: Report) -> None:
    from ros_nodes.conversions.pointcloud2 import (
        cloud_to_points,
        points_to_cloud,
        structured_to_cloud,
    )

    points = _points()
    stamp = 1_600_000_000_000_000_000
    msg = points_to_cloud(points, COLUMNS, stamp, "base_link")
    to_msg_s = timeit(lambda: points_to_cloud(points, COLUMNS, stamp, "base_link"), repeat=20)
    view_s = timeit(lambda: cloud_to_points(msg), repeat=50)
    copy_s = timeit(lambda: np.array(cloud_to_points(msg)[0]), repeat=20)

    padded = np.dtype({"names": ["intensity", "x", "y", "z", "t"],
                       "formats": ["<f4", "<f4", "<f4", "<f4", "<f8"],
                       "offsets": [0, 4, 8, 12, 16], "itemsize": 32})
    structured = np.zeros(N_POINTS, padded)
    for i, name in enumerate(("x", "y", "z", "intensity")):
        structured[name] = points[:, i]
    padded_msg = structured_to_cloud(structured, stamp, "base_link")
    padded_s = timeit(lambda: cloud_to_points(padded_msg), repeat=20)

    loop_to_s = timeit(lambda: _loop_to_cloud_data(points), repeat=1, warmup=0)
    loop_from_s = timeit(lambda: _loop_from_cloud(msg), repeat=1, warmup=0)
    assert np.array_equal(_loop_from_cloud(msg)[:10], cloud_to_points(msg)[0][:10])

    report.section("PointCloud2 <-> numpy (150k points, 5 float32 fields)")
    report.line("Target: under 2 ms per conversion. Per-point loop: `struct` per point.")
    report.table(["conversion", "ours (ms)", "per-point loop (ms)", "speed-up"], [
        ["numpy -> PointCloud2 (one copy into the message)", to_msg_s * 1e3, loop_to_s * 1e3,
         f"{loop_to_s / to_msg_s:.0f}x"],
        ["PointCloud2 -> numpy (zero-copy view)", view_s * 1e3, loop_from_s * 1e3,
         f"{loop_from_s / view_s:.0f}x"],
        ["PointCloud2 -> numpy (owned copy)", copy_s * 1e3, loop_from_s * 1e3,
         f"{loop_from_s / copy_s:.0f}x"],
        ["PointCloud2 -> numpy (padded, reordered, float64 field: copy)", padded_s * 1e3,
         "", ""],
    ])


# ------------------------------------------------------------------------------------------
# Latency
# ------------------------------------------------------------------------------------------

def _loopback_env() -> dict[str, str]:
    return dict(os.environ,
                FASTDDS_DEFAULT_PROFILES_FILE=str(REPO / "ros_nodes" / "fastdds_loopback.xml"),
                ROS_DOMAIN_ID=str(150 + os.getpid() % 60))


def publish(n_points: int, count: int, topic: str) -> None:
    """Publisher process: ``count`` clouds at PUBLISH_RATE_HZ, stamped right before publish."""
    import rclpy

    from ros_nodes.conversions.pointcloud2 import points_to_cloud
    from ros_nodes.conversions.stamps import ns_to_stamp
    from ros_nodes.node_base import sensor_qos
    from sensor_msgs.msg import PointCloud2

    rclpy.init()
    node = rclpy.create_node("bench_publisher")
    publisher = node.create_publisher(PointCloud2, topic, sensor_qos(5))
    msg = points_to_cloud(_points(n_points), COLUMNS, 0, "base_link")
    while publisher.get_subscription_count() == 0:
        time.sleep(0.05)
    time.sleep(0.5)  # let the subscriber finish matching
    for _ in range(count):
        msg.header.stamp = ns_to_stamp(time.time_ns())
        publisher.publish(msg)
        time.sleep(1.0 / PUBLISH_RATE_HZ)
    node.destroy_node()
    rclpy.shutdown()


def _latencies_ms(n_points: int) -> tuple[np.ndarray, int]:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import PointCloud2

    from ros_nodes.conversions.pointcloud2 import cloud_to_points
    from ros_nodes.conversions.stamps import stamp_to_ns
    from ros_nodes.node_base import sensor_qos

    topic = f"/bench/points_{n_points}"
    env = _loopback_env()
    os.environ.update({k: env[k] for k in ("FASTDDS_DEFAULT_PROFILES_FILE", "ROS_DOMAIN_ID")})
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("bench_subscriber", context=context)
    latencies = []

    def on_cloud(msg: PointCloud2) -> None:
        cloud_to_points(msg)  # the receiver decodes, as a node would
        latencies.append((time.time_ns() - stamp_to_ns(msg.header.stamp)) / 1e6)

    node.create_subscription(PointCloud2, topic, on_cloud, sensor_qos(5))
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    code = (f"from benchmarks.bench_ros import publish; "
            f"publish({n_points}, {LATENCY_MESSAGES}, {topic!r})")
    process = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env)
    try:
        deadline = time.monotonic() + 60 + LATENCY_MESSAGES / PUBLISH_RATE_HZ
        while process.poll() is None and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.01)
        for _ in range(20):  # the last samples in flight
            executor.spin_once(timeout_sec=0.01)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
    return np.asarray(latencies), LATENCY_MESSAGES


def _latency(report: Report) -> None:
    rows = []
    for n_points, label in ((N_POINTS, "lidar, 150k points (3 MB)"),
                            (125, "radar, 125 points")):
        latencies, sent = _latencies_ms(n_points)
        if latencies.size:
            rows.append([label, f"{latencies.size}/{sent}", np.percentile(latencies, 50),
                         np.percentile(latencies, 99)])
        else:
            rows.append([label, f"0/{sent}", "", ""])
    report.section("Publish -> receive latency across processes (loopback profile)")
    report.line(f"Best effort, {PUBLISH_RATE_HZ:.0f} Hz, receive time minus the stamp set just "
                f"before publish(); the receiver decodes each cloud.")
    report.table(["message", "received", "p50 (ms)", "p99 (ms)"], rows)


def run(report: Report) -> None:
    _conversion(report)
    _latency(report)

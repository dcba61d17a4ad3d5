"""Malformed messages published to a running ``sync_node`` (started with
``perception launch sync.launch.yaml``): the node keeps running, its diagnostics count
each error, and the next good message is processed."""

from __future__ import annotations

import array

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import PointCloud2

from fusion_perception_msgs.msg import PerceptionStatus
from ros_nodes import topics
from ros_nodes.conversions.pointcloud2 import points_to_cloud
from ros_nodes.conversions.stamps import stamp_to_ns
from ros_nodes.node_base import reliable_qos, sensor_qos

STAMP_NS = 1_700_000_000_000_000_000
LIDAR_TOPIC = "/test/lidar"


def _cloud(stamp_ns: int) -> PointCloud2:
    points = np.random.default_rng(0).normal(size=(500, 4)).astype(np.float32)
    return points_to_cloud(points, ("x", "y", "z", "intensity"), stamp_ns, "base_link")


def _malformed(stamp_ns: int) -> list[PointCloud2]:
    short = _cloud(stamp_ns)
    short.data = array.array("B", bytes(len(short.data) - 16))  # one point missing
    no_z = _cloud(stamp_ns + 1)
    no_z.fields[2].name = "height"
    bad_type = _cloud(stamp_ns + 2)
    bad_type.fields[3].datatype = 42
    return [short, no_z, bad_type]


def _waited(node, seconds: float) -> bool:
    """True once ``seconds`` have passed since the first call for ``node``."""
    import time

    start = node.__dict__.setdefault("_wait_start", time.monotonic())
    if time.monotonic() - start >= seconds:
        del node.__dict__["_wait_start"]
        return True
    return False


def _top_values(diagnostics: list[DiagnosticArray]) -> dict[str, str]:
    for array_msg in reversed(diagnostics):
        for status in array_msg.status:
            if status.name == "sync: TOP":
                return {kv.key: kv.value for kv in status.values}
    return {}


def test_malformed_clouds_are_counted_and_the_node_keeps_running(launch, ros_node, spin):
    statuses: list[PerceptionStatus] = []
    diagnostics: list[DiagnosticArray] = []
    ros_node.create_subscription(PerceptionStatus, topics.PERCEPTION_STATUS, statuses.append,
                                 reliable_qos())
    ros_node.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, diagnostics.append,
                                 reliable_qos())
    publisher = ros_node.create_publisher(PointCloud2, LIDAR_TOPIC, sensor_qos(10))
    # the lidar topic is remapped through a launch argument
    launched = launch(["sync.launch.yaml", f"lidar_topic:={LIDAR_TOPIC}",
                       "timeout_s:=0.05"])
    spin(ros_node, lambda: publisher.get_subscription_count() > 0, "the sync node", launched)

    # a good sweep first: the camera and radar never come, so it goes out after the timeout
    # with the lidar alone, flagged
    def stamps() -> list[int]:
        return [stamp_to_ns(s.header.stamp) for s in statuses]

    # until both directions are discovered a best-effort sample can be lost: repeat the first
    # sweep (with new stamps) until its status arrives
    first = STAMP_NS
    good_published = 0
    while not statuses:
        first += 1000
        good_published += 1
        publisher.publish(_cloud(first))
        spin(ros_node, lambda: bool(statuses) or _waited(ros_node, 0.5), "the first status",
             launched)
    first = stamp_to_ns(statuses[-1].header.stamp)
    status = statuses[-1]
    assert list(status.modalities) == ["lidar"]
    present = {s.name: s.present for s in status.sensors}
    assert present == {"TOP": True, "FRONT": False, "RADAR_FRONT": False}
    assert not status.motion_compensated  # no ego poses were published

    malformed = _malformed(STAMP_NS + 10**8)
    for msg in malformed:
        publisher.publish(msg)
    good = STAMP_NS + 2 * 10**8
    publisher.publish(_cloud(good))
    good_published += 1
    spin(ros_node, lambda: good in stamps(), "the status of the good sweep", launched)
    # the diagnostics are periodic: wait for one that counts the good sweep too
    spin(ros_node, lambda: _top_values(diagnostics).get("malformed") == "3"
         and int(_top_values(diagnostics).get("received", 0)) >= 2,
         "diagnostics counting 3 malformed clouds and 2 good ones", launched)
    values = _top_values(diagnostics)
    assert 2 <= int(values["received"]) <= good_published  # early samples may be lost
    assert "unsupported datatype 42" in values["last_error"]
    assert str(STAMP_NS + 10**8 + 2) in values["last_error"]  # the stamp is named
    assert stamps()[-1] == good
    assert not {stamp_to_ns(m.header.stamp) for m in malformed} & set(stamps())
    assert launched.process.poll() is None  # still running
    assert launched.terminate() == 0  # SIGTERM stops the nodes cleanly too
    assert "[launch] sync exited with code 0" in launched.output
    assert "skipped a message" in launched.output


def test_sim_to_sync_end_to_end(launch, ros_node, spin):
    """The simulator and the sync node, each launched in its own process, cameras as JPEG
    CompressedImage: frames carry all three modalities, motion-compensated, with the camera
    matched exactly and the radar within tolerance; the diagnostics report the rates."""
    statuses: list[PerceptionStatus] = []
    diagnostics: list[DiagnosticArray] = []
    ros_node.create_subscription(PerceptionStatus, topics.PERCEPTION_STATUS, statuses.append,
                                 reliable_qos())
    ros_node.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, diagnostics.append,
                                 reliable_qos())
    perception = launch(["sync.launch.yaml", "image_transport:=compressed"])
    sim = launch(["sim.launch.yaml", "duration_s:=60", "seed:=2", "image_transport:=jpeg"])

    def complete() -> list[PerceptionStatus]:
        return [s for s in statuses if len(s.modalities) == 3 and s.motion_compensated]

    spin(ros_node, lambda: len(complete()) >= 5, "five complete frames", perception)
    def sync_values() -> dict[str, dict[str, str]]:
        return {st.name: {kv.key: kv.value for kv in st.values}
                for d in diagnostics for st in d.status if st.name.startswith("sync: ")}

    sensors = ("TOP", "FRONT", "RADAR_FRONT")
    spin(ros_node, lambda: all(float(sync_values().get(f"sync: {name}", {}).get("rate_hz", 0))
                               > 0 for name in sensors), "sync diagnostics with rates",
         perception)
    for status in complete()[:5]:
        offsets = {s.name: s.offset_ms for s in status.sensors}
        assert offsets["TOP"] == 0.0 and offsets["FRONT"] == 0.0
        assert abs(offsets["RADAR_FRONT"]) <= 50.0
        assert status.total_latency_ms > 0 and status.sync_wait_ms >= 0
    values = sync_values()
    for name in sensors:
        assert values[f"sync: {name}"]["malformed"] == "0"
        assert float(values[f"sync: {name}"]["latency_ms_p50"]) > 0
    assert sim.interrupt() == 0 and perception.interrupt() == 0

"""``tracker_node`` in its own process (a launch file in ``tmp_path`` with the node alone),
fed by this process over real DDS: detections of a moving car and a standing pedestrian seen
from a moving ego vehicle, on two input channels (one may not start tracks), then a source
that loops back in time; and parameter files with invalid values."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from vision_msgs.msg import Detection3DArray
from visualization_msgs.msg import Marker, MarkerArray

from fusion_perception_msgs.msg import TrackedObject, TrackedObjectArray
from perception.geometry import make_transform
from perception.types import Detections, EgoPose, ObjectClass
from ros_nodes import topics
from ros_nodes.conversions.detections import detections_to_msg
from ros_nodes.conversions.stamps import ns_to_stamp, stamp_to_ns
from ros_nodes.conversions.tf import ego_pose_to_pose_stamped
from ros_nodes.node_base import reliable_qos, sensor_qos

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "ros_nodes" / "config"
START_NS = 1_700_000_000_000_000_000
DT_NS = 100_000_000
EGO_SPEED, CAR_SPEED = 5.0, 10.0
CAR = (ObjectClass.VEHICLE, (4.5, 1.9, 1.6))
PEDESTRIAN = (ObjectClass.PEDESTRIAN, (0.6, 0.6, 1.8))
TOPIC_A, TOPIC_B = "/test/detections_a", "/test/detections_b"


def _ego(stamp: int, t0: int) -> EgoPose:
    t = (stamp - t0) / 1e9
    return EgoPose(stamp, make_transform(np.eye(3), [EGO_SPEED * t, 0.0, 0.0]))


def _detections(stamp: int, t0: int, ghost: bool = False) -> Detections:
    """The car (20 m ahead at t0, 10 m/s) and the pedestrian (standing at world (30, 5)) in
    the vehicle frame of ``stamp``; ``ghost`` adds an object far away."""
    t = (stamp - t0) / 1e9
    ego_x = EGO_SPEED * t
    objects = [(CAR, 20.0 + CAR_SPEED * t - ego_x, 0.0), (PEDESTRIAN, 30.0 - ego_x, 5.0)]
    if ghost:
        objects.append((CAR, -20.0, -20.0))
    boxes = np.array([[x, y, size[2] / 2, *size, 0.0] for (_, size), x, y in objects],
                     np.float32)
    labels = np.array([int(label) for (label, _), _, _ in objects], np.int32)
    return Detections(stamp, boxes, np.full(len(objects), 0.9, np.float32), labels)


def _launch_file(tmp_path: Path, **changes) -> Path:
    data = yaml.safe_load((CONFIG / "tracker.param.yaml").read_text())
    data["/**"]["ros__parameters"].update(
        input_topics=[TOPIC_A, TOPIC_B], can_spawn_tracks=[True, False],
        diagnostics_period_s=0.5, **changes)
    params = tmp_path / "tracker.param.yaml"
    params.write_text(yaml.safe_dump(data))
    path = tmp_path / "tracker.launch.yaml"
    path.write_text(f"""launch:
- node:
    pkg: fusion_perception
    exec: tracker_node
    name: tracker
    output: screen
    param:
    - {{from: "{params}"}}
""")
    return path


class Feed:
    """Publishes ego poses and detections; collects the tracker's outputs."""

    def __init__(self, node, spin, launched):
        self.node, self.spin, self.launched = node, spin, launched
        self.a = node.create_publisher(Detection3DArray, TOPIC_A, reliable_qos())
        self.b = node.create_publisher(Detection3DArray, TOPIC_B, reliable_qos())
        self.poses = node.create_publisher(PoseStamped, topics.EGO_POSE, sensor_qos(20))
        self.tracks: list[TrackedObjectArray] = []
        self.objects: list[Detection3DArray] = []
        self.markers: list[MarkerArray] = []
        self.diagnostics: list[DiagnosticArray] = []
        node.create_subscription(TrackedObjectArray, topics.TRACKER_TRACKS, self.tracks.append,
                                 reliable_qos())
        node.create_subscription(Detection3DArray, topics.TRACKER_OBJECTS, self.objects.append,
                                 reliable_qos())
        node.create_subscription(MarkerArray, "/tracker/output/markers", self.markers.append,
                                 reliable_qos())
        node.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self.diagnostics.append,
                                 reliable_qos())

    def ready(self) -> None:
        """Both directions discovered (a reliable sample sent before is lost)."""
        outputs = (topics.TRACKER_TRACKS, topics.TRACKER_OBJECTS, "/tracker/output/markers")
        self.spin(self.node, lambda: self.a.get_subscription_count() > 0
                  and self.b.get_subscription_count() > 0
                  and self.poses.get_subscription_count() > 0
                  and all(self.node.count_publishers(t) > 0 for t in outputs),
                  "the tracker", self.launched)

    def frame(self, stamp: int, t0: int, channel: str = "a", ghost: bool = False,
              wait: bool = True) -> TrackedObjectArray | None:
        """Poses around ``stamp``, then the detections; wait for the tracks of ``stamp``."""
        for s in (stamp - DT_NS // 2, stamp, stamp + DT_NS // 2):
            msg = ego_pose_to_pose_stamped(_ego(s, t0), "map")
            msg.header.stamp = ns_to_stamp(s)
            self.poses.publish(msg)
        self.spin(self.node, lambda: True, "poses out", self.launched)
        publisher = self.a if channel == "a" else self.b
        seen = len(self.tracks)  # a looped source repeats stamps: only newer outputs count
        publisher.publish(detections_to_msg(_detections(stamp, t0, ghost), "base_link"))
        if not wait:
            return None
        deadline = time.monotonic() + 30.0
        while not any(stamp_to_ns(t.header.stamp) == stamp for t in self.tracks[seen:]):
            if time.monotonic() > deadline:
                pytest.fail(f"no tracks for {stamp}; tracker diagnostics: "
                            f"{self.tracks_status()}\n{self.launched.output}")
            self.node.test_executor.spin_once(timeout_sec=0.05)
        return next(t for t in self.tracks[seen:] if stamp_to_ns(t.header.stamp) == stamp)

    def tracks_status(self) -> tuple[int, str, dict[str, str]] | None:
        for array_msg in reversed(self.diagnostics):
            for status in array_msg.status:
                if status.name == "tracker: tracks":
                    return (status.level[0], status.message,
                            {kv.key: kv.value for kv in status.values})
        return None


def _confirmed(msg: TrackedObjectArray) -> list[TrackedObject]:
    return [o for o in msg.objects if o.state == TrackedObject.STATE_CONFIRMED]


def test_tracks_input_channels_and_a_looped_source(tmp_path, launch, ros_node, spin):
    launched = launch([str(_launch_file(tmp_path))])
    feed = Feed(ros_node, spin, launched)
    feed.ready()

    # 12 frames on the spawning channel: two confirmed tracks with stable ids
    stamps = [START_NS + k * DT_NS for k in range(12)]
    out = [feed.frame(s, START_NS) for s in stamps]
    assert [stamp_to_ns(m.header.stamp) for m in out] == stamps
    assert all(m.header.frame_id == "base_link" for m in out)
    ids = [sorted(o.track_id for o in _confirmed(m)) for m in out[2:]]
    assert all(len(i) == 2 for i in ids) and all(i == ids[0] for i in ids), ids
    last = out[-1]
    car = next(o for o in last.objects if o.label == int(ObjectClass.VEHICLE))
    # velocity over ground in the vehicle frame: the car's 10 m/s, not 5 m/s relative
    assert car.velocity.x == pytest.approx(CAR_SPEED, abs=1.5)
    assert car.state_dim == 9 and len(car.covariance) == 81
    spin(ros_node, lambda: any(stamp_to_ns(m.header.stamp) == stamps[-1]
                               for m in feed.objects), "the tracks as Detection3DArray",
         launched)
    as_detections = next(m for m in feed.objects if stamp_to_ns(m.header.stamp) == stamps[-1])
    assert sorted(d.id for d in as_detections.detections) == \
        sorted(str(o.track_id) for o in last.objects)
    assert {d.results[0].hypothesis.class_id for d in as_detections.detections} == \
        {"vehicle", "pedestrian"}
    spin(ros_node, lambda: any(any(m.type == Marker.LINE_STRIP for m in a.markers)
                               for a in feed.markers), "markers with trails", launched)
    trail = next(m for a in reversed(feed.markers) for m in a.markers
                 if m.type == Marker.LINE_STRIP)
    assert len(trail.points) >= 2

    # the second channel may update tracks but not start them: the ghost never becomes one
    more = [START_NS + k * DT_NS for k in range(12, 18)]
    out_b = [feed.frame(s, START_NS, channel="b", ghost=True) for s in more]
    for msg in out_b:
        assert sorted(o.track_id for o in msg.objects) == ids[0]
        assert all(abs(o.bbox.center.position.y + 20.0) > 5 for o in msg.objects)
    hits = {o.track_id: o.hits for o in out_b[-1].objects}
    assert all(h >= 17 for h in hits.values()), hits  # updated by channel b's detections

    # a duplicate stamp is late: dropped and counted, no tracks for it
    feed.frame(more[-1], START_NS, wait=False)
    spin(ros_node, lambda: (feed.tracks_status() or (0, "", {}))[2].get("late") == "1",
         "the late input counted", launched)

    # the source loops: stamps jump back; the tracker resets with a WARN and starts again
    loop = [START_NS + k * DT_NS for k in range(8)]
    out_loop = [feed.frame(s, START_NS) for s in loop]
    # the node's log arrives through a reader thread, possibly after the tracks
    spin(ros_node, lambda: "jumped back" in launched.output
         and "tracker reset" in launched.output, "the reset WARN in the log", launched)
    spin(ros_node, lambda: (feed.tracks_status() or (0, "", {}))[2].get("resets") == "1",
         "the reset in the diagnostics", launched)
    new_ids = sorted(o.track_id for o in _confirmed(out_loop[-1]))
    assert len(new_ids) == 2 and min(new_ids) > max(ids[0])  # ids are never reused
    assert launched.process.poll() is None
    assert launched.interrupt() == 0, launched.output
    assert "[launch] tracker exited with code 0" in launched.output


@pytest.mark.parametrize("override, name", [
    ("tracker_config: no_such_config", "tracker_config: no tracker config named"),
    ("tracker_config: /no/such.yaml", "tracker_config: file '/no/such.yaml' not found"),
    ("can_spawn_tracks: [true, false]", "can_spawn_tracks: expected one flag per input topic"),
    ("late_tolerance_s: -1.0", "late_tolerance_s: value -1.0 out of range"),
    ("input_topicz: [/a]", "input_topicz: unknown key"),
])
def test_an_invalid_parameter_file_exits_with_2_naming_the_parameter(tmp_path, override, name):
    path = tmp_path / "bad.param.yaml"
    path.write_text(f"/**:\n  ros__parameters:\n    {override}\n")
    done = subprocess.run([sys.executable, "-m", "ros_nodes.tracker_node", "--ros-args",
                           "--params-file", str(CONFIG / "tracker.param.yaml"),
                           "--params-file", str(path)], cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if "invalid parameters" in line]
    assert len(lines) == 1 and name in lines[0], done.stderr
    assert lines[0].startswith("invalid parameters, not starting: node /tracker parameters")


def test_a_bad_tracker_config_file_names_the_parameter_and_the_key(tmp_path):
    config = tmp_path / "tracking.yaml"
    config.write_text("management:\n  confirm_hits: 0\n")
    done = subprocess.run([sys.executable, "-m", "ros_nodes.tracker_node", "--ros-args",
                           "-p", f"tracker_config:={config}"], cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    assert "tracker_config:" in done.stderr and "confirm_hits" in done.stderr

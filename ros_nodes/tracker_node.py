"""``tracker_node``: detection topics in, tracked objects out.

Subscribes to one or more ``vision_msgs/Detection3DArray`` topics (``input_topics``; each
with a ``can_spawn_tracks`` flag, as Autoware's input channels) and ``/ego/pose``, and runs
:class:`perception.tracking.Tracker` in the world frame given by the ego pose (interpolated at
each detection stamp). Publishes, relative to the node name:

* ``~/output/tracks``: ``fusion_perception_msgs/TrackedObjectArray`` (id, class, state,
  score, age, hits, box, velocity over ground, covariance), stamped with the detections'
  stamp, in their frame;
* ``~/output/objects``: the same tracks as ``vision_msgs/Detection3DArray`` with the track id
  in ``Detection3D.id``, for tools that only read ``vision_msgs``;
* ``~/output/markers``: boxes with ``#id`` labels, velocity arrows and short trails;
* ``~/debug/processing_time_ms``, ``~/debug/pipeline_latency_ms`` (publish time on the node
  clock minus the sensor stamp: the whole chain from the sensor) and
  ``~/debug/cyclic_time_ms``, as ``std_msgs/Float64``;
* ``/diagnostics``: per input topic (rate, age, late, malformed), the tracks (count, resets,
  world or vehicle frame) and processing time against ``max_processing_time_ms``.

Time: inputs are processed in stamp order. An input at or a little before the last processed
stamp (within ``late_tolerance_s``: another channel behind, a duplicate) is dropped as late;
one further back means the source restarted (a looped bag, a restarted simulator) and resets
the tracker with a WARN, never an exception. Detections stamped after the newest ego pose
wait up to 0.2 s for a pose that covers their stamp (topics are not delivered in order);
detections with no pose near their stamp are skipped and counted. When the ego pose stops
(detections stamped more than ``POSE_LOST_S`` after the newest pose) the tracker does not go
silent: it resets and tracks on in the vehicle frame, as with no ego pose at all, with a WARN
``ego pose lost`` in the diagnostics; once poses cover the detections again it resets back to
the world frame (a WARN too). Both switches count as resets. Detections from a channel
that may not start tracks are reduced to those inside an existing track's gate
(:func:`perception.align.near_tracks`).

Everything runs in the executor thread: one tracker update takes about a millisecond.

Parameters: :class:`ros_nodes.params.TrackerNodeParams` (``config/tracker.param.yaml``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from vision_msgs.msg import Detection3DArray
from visualization_msgs.msg import MarkerArray

from fusion_perception_msgs.msg import TrackedObjectArray
from perception.align import Health, PoseBuffer, StampOrder, StampVerdict, near_tracks
from perception.config import config_dir
from perception.errors import ConfigError, PerceptionError
from perception.geometry import invert_transform
from perception.tracking import Tracker, TrackerConfig, load_tracker_config
from perception.types import EgoPose, ObjectClass, Tracks
from perception.viz.sequence import TrackTrails

from . import topics
from .conversions.detections import msg_to_detections, tracks_to_msg
from .conversions.tf import pose_stamped_to_ego_pose
from .conversions.tracks import track_markers, tracks_to_detections_msg
from .node_base import (
    Diagnostics,
    ProcessingTimes,
    guarded,
    load_parameters,
    reliable_qos,
    run_node,
    sensor_qos,
)
from .params import TrackerNodeParams

NODE_NAME = "tracker"
EGO_POSE_SENSOR = "ego_pose"
DEFAULT_FRAME = "base_link"
NS_PER_S = 1_000_000_000
POSE_WAIT_S = 0.2
"""How long detections newer than every ego pose wait for a pose that covers their stamp."""
POLL_PERIOD_S = 0.02
POSE_LOST_S = 1.0
"""Detections stamped this long after the newest ego pose: the pose stream has stopped (a
shorter gap skips the detections instead)."""


def resolve_tracker_config(value: str, source: str) -> TrackerConfig:
    """A tracker config from a name in ``configs/tracking`` or a YAML path.

    Raises:
        ConfigError: unknown name, missing file or invalid config; names ``tracker_config``.
    """
    path = Path(value)
    if not value.endswith((".yaml", ".yml")):
        path = config_dir() / "tracking" / f"{value}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in (config_dir() / "tracking").glob("*.yaml"))
            raise ConfigError(f"{source}: tracker_config: no tracker config named {value!r} "
                              f"(known: {known}, or a .yaml path)")
    if not path.is_file():
        raise ConfigError(f"{source}: tracker_config: file {str(path)!r} not found")
    try:
        return load_tracker_config(path)
    except PerceptionError as exc:
        raise ConfigError(f"{source}: tracker_config: {exc}") from None


class TrackerNode(Node):
    """See the module doc."""

    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        self.params = load_parameters(self, TrackerNodeParams)
        p = self.params
        source = f"node {self.get_fully_qualified_name()} parameters"
        self.config = resolve_tracker_config(p.tracker_config, source)
        self.tracker = Tracker(self.config)
        gates = self.config.association.center_gate_m
        self.gates = {int(ObjectClass.VEHICLE): gates.vehicle,
                      int(ObjectClass.PEDESTRIAN): gates.pedestrian,
                      int(ObjectClass.CYCLIST): gates.cyclist}
        self.max_pose_offset_ns = int(self.config.management.max_pose_offset_s * NS_PER_S)
        self.order = StampOrder(p.late_tolerance_s)
        self.poses = PoseBuffer()
        self.trails = TrackTrails(length=max(p.trail_length, 1))
        self.previous: tuple[Tracks, EgoPose | None] | None = None
        self._waiting: tuple[Any, str, str, bool, float] | None = None
        self._last_tracks = 0
        self._reported_resets = 0
        self._last_reset = ""
        self._pose_lost_since_ns: int | None = None
        """Stamp of the first detections tracked without the lost ego pose (None: not lost)."""
        self.counts = {"updates": 0, "resets": 0, "late": 0, "no_pose": 0,
                       "not_spawned": 0, "pose_lost": 0}

        self.tracks_pub = self.create_publisher(TrackedObjectArray, topics.OUTPUT_TRACKS,
                                                reliable_qos())
        self.objects_pub = self.create_publisher(Detection3DArray, topics.OUTPUT_OBJECTS,
                                                 reliable_qos())
        self.markers_pub = (self.create_publisher(MarkerArray, topics.OUTPUT_MARKERS,
                                                  reliable_qos())
                            if p.publish_markers else None)
        self.times = ProcessingTimes(self, p.max_processing_time_ms,
                                     p.processing_time_error_count, unit="updates", digits=2)

        self.diagnostics = Diagnostics(self, [*p.input_topics, EGO_POSE_SENSOR],
                                       p.diagnostics_period_s)
        self.diagnostics.add_check(self.tracks_status)
        self.diagnostics.add_check(self.processing_status)
        for topic, can_spawn in zip(p.input_topics, p.can_spawn_tracks):
            self.create_subscription(
                Detection3DArray, topic,
                guarded(self, self.diagnostics, topic, self._on_detections(topic, can_spawn)),
                reliable_qos(p.qos_depth))
        self.create_subscription(PoseStamped, topics.EGO_POSE,
                                 guarded(self, self.diagnostics, EGO_POSE_SENSOR, self.on_pose),
                                 sensor_qos(20))
        self.create_timer(POLL_PERIOD_S, self.poll)
        self.get_logger().info(
            f"tracking {list(zip(p.input_topics, p.can_spawn_tracks))} with tracker config "
            f"{p.tracker_config!r} ({self.config.motion.model}, "
            f"{self.config.association.cost} cost)")

    # --------------------------------------------------------------------------------------

    def on_pose(self, msg: PoseStamped) -> None:
        pose = pose_stamped_to_ego_pose(msg, topics.EGO_POSE)
        if len(self.poses) and \
                pose.stamp_ns < self.poses.last_stamp_ns - self.order.late_tolerance_ns:
            self.poses = PoseBuffer()  # the source restarted: old poses would mix in
        self.poses.add(pose)
        self.diagnostics.received(EGO_POSE_SENSOR, pose.stamp_ns)
        if self._waiting is not None and \
                self.poses.last_stamp_ns >= self._waiting[0].stamp_ns:
            self._run_waiting()

    def poll(self) -> None:
        if self._waiting is not None and \
                time.monotonic() - self._waiting[4] >= POSE_WAIT_S:
            self._run_waiting()

    def _run_waiting(self) -> None:
        detections, frame_id, topic, can_spawn, _ = self._waiting  # type: ignore[misc]
        self._waiting = None
        self.step(detections, frame_id, topic, can_spawn)

    def _on_detections(self, topic: str, can_spawn: bool) -> Callable[[Detection3DArray], None]:
        def on_detections(msg: Detection3DArray) -> None:
            detections = msg_to_detections(msg, topic)
            self.diagnostics.received(topic, detections.stamp_ns)
            self.update(detections, msg.header.frame_id or DEFAULT_FRAME, topic, can_spawn)

        return on_detections

    def update(self, detections: Any, frame_id: str, topic: str, can_spawn: bool) -> None:
        """One detection message: order check, then a tracker step now or once a pose covers
        its stamp (see the module doc)."""
        stamp = detections.stamp_ns
        if self._waiting is not None:
            self._run_waiting()  # keep stamp order: the older message goes first
        verdict = self.order.check(stamp)
        if verdict is StampVerdict.LATE:
            self.counts["late"] += 1
            self.diagnostics.dropped(topic, reason=f"stamp {stamp} ns not after the last "
                                                   f"processed one")
            return
        if verdict is StampVerdict.RESET:
            self.reset(stamp)
        if len(self.poses) and self.poses.last_stamp_ns < stamp and \
                self._pose_lost_since_ns is None:
            self._waiting = (detections, frame_id, topic, can_spawn, time.monotonic())
            return
        self.step(detections, frame_id, topic, can_spawn)

    def step(self, detections: Any, frame_id: str, topic: str, can_spawn: bool) -> None:
        """One tracker step with the ego pose at the detections' stamp, and the outputs."""
        t0 = time.perf_counter()
        stamp = detections.stamp_ns
        pose = None
        if len(self.poses):
            pose = self.poses.pose_near(stamp, self.max_pose_offset_ns)
            lost = self._pose_lost_since_ns is not None
            if pose is None and (lost or stamp - self.poses.last_stamp_ns >
                                 int(POSE_LOST_S * NS_PER_S)):
                if not lost:  # the pose stream stopped: track on in the vehicle frame
                    self._pose_lost_since_ns = stamp
                    self.counts["pose_lost"] += 1
                    self.reset(stamp, f"ego pose lost (newest "
                                      f"{(stamp - self.poses.last_stamp_ns) / 1e9:.1f} s before "
                                      f"stamp {stamp} ns): tracking in the vehicle frame")
            elif pose is None:
                # a gap in the poses: tracking this frame without its pose would move every
                # track
                self.counts["no_pose"] += 1
                self.diagnostics.dropped(topic, reason=f"no ego pose within "
                                                       f"{self.max_pose_offset_ns / 1e6:.0f} ms "
                                                       f"of stamp {stamp} ns")
                return
            elif lost:  # the pose is back: the vehicle-frame tracks cannot carry over
                self._pose_lost_since_ns = None
                self.reset(stamp, "ego pose back: tracking in the world frame again")
        if not can_spawn:
            detections = self._without_births(detections, pose)
        tracks = self.tracker.update(detections, stamp, pose)
        self.previous = (tracks, pose)
        self.publish(tracks, pose, frame_id, t0)

    def reset(self, stamp: int, reason: str = "") -> None:
        self.tracker.reset()
        self._waiting = None
        self.trails = TrackTrails(length=self.trails.length)
        self.previous = None
        self.counts["resets"] += 1
        self._last_reset = reason or (f"stamp {stamp} ns jumped back (a looped log or a "
                                      f"restarted source)")
        self.get_logger().warning(f"{self._last_reset}: tracker reset")

    def _without_births(self, detections: Any, pose: EgoPose | None) -> Any:
        """The detections inside an existing track's gate (the channel may not start tracks)."""
        if self.previous is None:
            keep = np.zeros(len(detections), bool)
        else:
            tracks, previous_pose = self.previous
            T = None
            if pose is not None and previous_pose is not None:
                T = invert_transform(pose.T_world_vehicle) @ previous_pose.T_world_vehicle
            dt_s = (detections.stamp_ns - tracks.stamp_ns) / NS_PER_S
            keep = near_tracks(detections.boxes, detections.labels, tracks, self.gates, dt_s, T)
        self.counts["not_spawned"] += int(len(detections) - keep.sum())
        return detections.select(keep)

    def publish(self, tracks: Tracks, pose: EgoPose | None, frame_id: str, t0: float) -> None:
        p = self.params
        self.tracks_pub.publish(tracks_to_msg(tracks, frame_id))
        self.objects_pub.publish(tracks_to_detections_msg(tracks, frame_id))
        if self.markers_pub is not None:
            trails = None
            if p.trail_length:
                self.trails.update(tracks, pose)
                trails = self.trails.in_vehicle_frame(pose)
            self.markers_pub.publish(track_markers(tracks, frame_id, trails))
        done_ns = time.monotonic_ns()
        processing_ms = (time.perf_counter() - t0) * 1e3
        self.times.record(processing_ms, tracks.stamp_ns, done_ns)
        self.counts["updates"] += 1
        self._last_tracks = len(tracks)

    # --------------------------------------------------------------------------------------
    # Diagnostics
    # --------------------------------------------------------------------------------------

    def tracks_status(self) -> Any:
        """OK; WARN after a reset since the last report, or when tracking in the vehicle frame
        (no ego pose)."""
        stats = self.tracker.stats
        values = {"tracks": self._last_tracks, "live_tracks": self.tracker.num_tracks,
                  **self.counts, "births": stats.births, "deletions": stats.deletions,
                  "frame": ("vehicle (ego pose lost)" if self._pose_lost_since_ns is not None
                            else "world (ego pose)" if len(self.poses)
                            else "vehicle (no ego pose)"),
                  "last_reset": self._last_reset}
        if self.counts["resets"] > self._reported_resets:
            self._reported_resets = self.counts["resets"]
            return self.diagnostics.make_status("tracks", Health.WARN,
                                                f"tracker reset: {self._last_reset}", values)
        if self._pose_lost_since_ns is not None:
            return self.diagnostics.make_status(
                "tracks", Health.WARN, "ego pose lost: tracking in the vehicle frame", values)
        if self.counts["updates"] and not len(self.poses):
            return self.diagnostics.make_status(
                "tracks", Health.WARN, "no ego pose: tracking in the vehicle frame", values)
        return self.diagnostics.make_status("tracks", Health.OK,
                                            f"{self._last_tracks} tracks", values)

    def processing_status(self) -> Any:
        return self.times.status(self.diagnostics)


def main(argv: list[str] | None = None) -> int:
    return run_node(TrackerNode, argv=argv)


if __name__ == "__main__":
    raise SystemExit(main())

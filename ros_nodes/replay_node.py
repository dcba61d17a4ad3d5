"""``replay_node``: plays a recorded log into ROS 2, as ``ros2 bag play`` does, with ``/clock``.

A bag's messages are published on their topics (remappable with ``-r FROM:=TO``), as recorded
(CDR bytes, never decoded), with the QoS kind they were recorded with (reliability,
durability, depth; reliable when the bag does not say). Waymo segments, converted Waymo
directories, nuScenes scenes and KITTI raw drives are published as the messages of
``perception convert`` (:mod:`perception.replay.frames_to_bag`). ``/clock``
(``rosgraph_msgs/Clock``) carries the log time, before every message and at ``clock_hz`` in
between, so nodes with ``use_sim_time`` run on log time. A looped log starts its clock over;
the tracker resets on the backwards stamp.

Pause: the ``paused`` parameter (``ros2 param set /replay paused false`` resumes, ``true``
pauses), or Enter on a terminal (toggles). ``/clock`` stands still while paused.

Parameters: :class:`ReplayNodeParams`. ``perception replay LOG --ros`` starts this node.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rcl_interfaces.msg import SetParametersResult
from rclpy._rclpy_pybind11 import RCLError
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from perception.errors import ConfigError, PerceptionError
from perception.replay.bag import RELIABLE_QOS, TopicQos, open_bag
from perception.replay.frames_to_bag import FrameMessages
from perception.replay.sources import LogKind, detect_kind, open_frame_log

from .conversions.messages import RCLPY
from .conversions.stamps import ns_to_stamp
from .node_base import SIGNAL_CHECK_S, load_parameters, reliable_qos, run_node, running

NODE_NAME = "replay"
PUBLISHERS_FROM_FIRST = 500
"""Messages read ahead to create every publisher before playback (a data set frame is fewer;
a log shorter than this is played from the read-ahead)."""
NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class ReplayNodeParams:
    """``replay_node``: plays a log into ROS 2 (see the module doc).

    Attributes:
        log: the log (a bag, Waymo segment, converted Waymo, nuScenes dataroot, KITTI raw
            drive).
        rate: playback speed (1 real time).
        loop: start over at the end.
        paused: wait before publishing; set to false to resume (true pauses again).
        start_offset_s, duration_s: the window played (0 duration: to the end).
        topics, exclude_topics: topics published (empty: all) and left out (bags).
        clock: publish ``/clock``; ``clock_hz``: its rate between messages.
        delay_s: wait before the first message, so subscribers can be discovered.
        scene: nuScenes scene name (default: the first).
    """

    log: str = field(default="", metadata={"min_len": 1})
    rate: float = field(default=1.0, metadata={"gt": 0.0, "le": 1000.0})
    loop: bool = False
    paused: bool = False
    start_offset_s: float = field(default=0.0, metadata={"ge": 0.0})
    duration_s: float = field(default=0.0, metadata={"ge": 0.0})
    topics: list[str] = field(default_factory=list)
    exclude_topics: list[str] = field(default_factory=list)
    clock: bool = True
    clock_hz: float = field(default=100.0, metadata={"gt": 0.0, "le": 1000.0})
    delay_s: float = field(default=1.0, metadata={"ge": 0.0, "le": 60.0})
    scene: str = ""


@dataclass(frozen=True, eq=False)
class PlayItem:
    """One message to publish: topic, type, log time, CDR bytes, QoS."""

    topic: str
    msgtype: str
    log_time_ns: int
    cdr: bytes
    qos: TopicQos


def qos_profile(qos: TopicQos) -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=qos.depth,
        reliability=ReliabilityPolicy.RELIABLE if qos.reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if qos.transient_local
        else DurabilityPolicy.VOLATILE)


# ------------------------------------------------------------------------------------------
# What is played
# ------------------------------------------------------------------------------------------

def _window(first_ns: int, p: ReplayNodeParams) -> tuple[int, int | None]:
    start = first_ns + int(round(p.start_offset_s * NS_PER_S))
    stop = start + int(round(p.duration_s * NS_PER_S)) if p.duration_s > 0 else None
    return start, stop


def bag_items(p: ReplayNodeParams) -> Iterator[PlayItem]:
    """The bag's messages in log-time order (CDR; ROS 1 bags converted)."""
    with open_bag(p.log) as bag:
        keep = set(p.topics) or set(bag.topics)
        topics = {t: i for t, i in bag.topics.items()
                  if t in keep and t not in set(p.exclude_topics)}
        start, stop = _window(bag.start_ns, p)
        for m in bag.messages(sorted(topics), start if p.start_offset_s > 0 else None, stop):
            yield PlayItem(m.topic, m.msgtype, m.log_time_ns, bytes(bag.cdr(m)),
                           topics[m.topic].qos or RELIABLE_QOS)


def frame_items(p: ReplayNodeParams, kind: LogKind) -> Iterator[PlayItem]:
    """A data set log's frames as the messages of ``perception convert``."""
    frames = open_frame_log(p.log, kind, p.scene or None)
    builder = FrameMessages()
    store = builder.factory.store
    start = stop = None
    for i, frame in enumerate(frames):
        messages = builder.frame(frame)
        if i == 0:
            start, stop = _window(frame.stamp_ns, p)
            messages.insert(0, builder.static(frame, messages[0].log_time_ns))
        if frame.stamp_ns < start:
            continue
        if stop is not None and frame.stamp_ns >= stop:
            return
        for m in messages:
            msgtype = m.msg.__msgtype__
            yield PlayItem(m.topic, msgtype, m.log_time_ns,
                           bytes(store.serialize_cdr(m.msg, msgtype)), m.qos)


# ------------------------------------------------------------------------------------------
# The node
# ------------------------------------------------------------------------------------------

class PlaybackClock:
    """Log time <-> wall time at ``rate``, standing still while paused."""

    def __init__(self, rate: float):
        self.rate = rate
        self.log_origin_ns: int | None = None
        self.wall_origin_ns = 0
        self.paused_since_ns: int | None = None

    def start(self, log_ns: int) -> None:
        self.log_origin_ns, self.wall_origin_ns = log_ns, time.monotonic_ns()
        if self.paused_since_ns is not None:
            self.paused_since_ns = self.wall_origin_ns

    def pause(self) -> None:
        if self.paused_since_ns is None:
            self.paused_since_ns = time.monotonic_ns()

    def resume(self) -> None:
        if self.paused_since_ns is not None:
            self.wall_origin_ns += time.monotonic_ns() - self.paused_since_ns
            self.paused_since_ns = None

    @property
    def paused(self) -> bool:
        return self.paused_since_ns is not None

    def now_ns(self) -> int:
        """The log time playback is at."""
        wall = self.paused_since_ns if self.paused else time.monotonic_ns()
        return self.log_origin_ns + int((wall - self.wall_origin_ns) * self.rate)

    def wall_due_ns(self, log_ns: int) -> int:
        return self.wall_origin_ns + int((log_ns - self.log_origin_ns) / self.rate)


class ReplayNode(Node):
    """Publishes one log (see the module doc)."""

    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        self.params = load_parameters(self, ReplayNodeParams)
        if not self.params.log:
            raise ConfigError(f"node {self.get_fully_qualified_name()} parameters: log: "
                              f"required (the log to play)")
        try:
            self.kind = detect_kind(self.params.log)
        except PerceptionError as exc:
            raise ConfigError(f"node {self.get_fully_qualified_name()} parameters: log: "
                              f"{exc}") from None
        self.clock = PlaybackClock(self.params.rate)
        if self.params.paused:
            self.clock.pause()
        self.clock_pub = self.create_publisher(Clock, "/clock", reliable_qos(10))
        self._topic_publishers: dict[str, object] = {}
        self._unpublishable: set[str] = set()
        self.published = 0
        self.add_on_set_parameters_callback(self._on_parameters)
        if sys.stdin is not None and sys.stdin.isatty():
            threading.Thread(target=self._keys, daemon=True).start()
            self.get_logger().info("press Enter to pause or resume")

    def _on_parameters(self, parameters) -> SetParametersResult:
        for parameter in parameters:
            if parameter.name == "paused":
                self._set_paused(bool(parameter.value))
        return SetParametersResult(successful=True)

    def _set_paused(self, paused: bool) -> None:
        if paused:
            self.clock.pause()
        else:
            self.clock.resume()
        self.get_logger().info("paused" if paused else "playing")

    def _keys(self) -> None:
        for _ in sys.stdin:
            self._set_paused(not self.clock.paused)

    def items(self) -> Iterator[PlayItem]:
        if self.kind is LogKind.BAG:
            return bag_items(self.params)
        return frame_items(self.params, self.kind)

    def publisher(self, item: PlayItem):
        pub = self._topic_publishers.get(item.topic)
        if pub is None and item.topic not in self._unpublishable:
            try:
                cls = RCLPY.message_class(item.msgtype)
            except (ImportError, AttributeError, ValueError):
                self._unpublishable.add(item.topic)
                self.get_logger().warning(f"{item.topic}: type {item.msgtype} is not installed; "
                                          f"not published")
                return None
            pub = self.create_publisher(cls, item.topic, qos_profile(item.qos))
            self._topic_publishers[item.topic] = pub
        return pub

    def publish_clock(self, log_ns: int) -> None:
        if self.params.clock:
            self.clock_pub.publish(Clock(clock=ns_to_stamp(log_ns)))

    def publish(self, item: PlayItem) -> None:
        pub = self.publisher(item)
        self.publish_clock(item.log_time_ns)
        if pub is not None:
            pub.publish(item.cdr)
            self.published += 1


def _wait(executor: SingleThreadedExecutor, node: ReplayNode, log_ns: int) -> bool:
    """Serve callbacks and publish ``/clock`` at ``clock_hz`` until ``log_ns`` is due (paused
    time does not count); False once the node is shut down."""
    period_ns = int(NS_PER_S / node.params.clock_hz)
    next_clock_ns = 0
    while running(node):
        timeout_s = SIGNAL_CHECK_S  # the loop takes Ctrl-C between waits
        if not node.clock.paused:
            now_ns = time.monotonic_ns()
            remaining_ns = node.clock.wall_due_ns(log_ns) - now_ns
            if remaining_ns <= 0:
                return True
            if now_ns >= next_clock_ns:
                node.publish_clock(min(node.clock.now_ns(), log_ns))
                next_clock_ns = now_ns + period_ns
            timeout_s = min(timeout_s, remaining_ns / 1e9, (next_clock_ns - now_ns) / 1e9)
        try:
            executor.spin_once(timeout_sec=timeout_s)
        except RCLError:
            if node.context.ok():
                raise
            return False
    return False


def _sleep(executor: SingleThreadedExecutor, node: ReplayNode, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while running(node) and time.monotonic() < end:
        executor.spin_once(timeout_sec=max(0.0, min(SIGNAL_CHECK_S, end - time.monotonic())))
    return running(node)


def play(node: ReplayNode) -> None:
    """Publish the log on schedule (again and again with ``loop``); returns on Ctrl-C."""
    try:
        _play(node)
    except Exception:
        if node.context.ok():
            raise
        # Ctrl-C / SIGTERM shut the context down under a call (publish, spin): a clean stop


def _play(node: ReplayNode) -> None:
    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    # every publisher exists before the discovery wait, so no first message is lost
    head = list(itertools.islice(node.items(), PUBLISHERS_FROM_FIRST))
    for item in head:
        node.publisher(item)
    if not _sleep(executor, node, node.params.delay_s):
        return
    items: Iterator[PlayItem] = iter(head) if len(head) < PUBLISHERS_FROM_FIRST \
        else node.items()
    while True:
        first = True
        for item in items:
            if first:
                node.clock.start(item.log_time_ns)
                first = False
            if not _wait(executor, node, item.log_time_ns):
                return
            try:
                node.publish(item)
            except RCLError:
                if node.context.ok():
                    raise
                return
        if first:
            raise ConfigError(f"{node.params.log}: nothing to play in the window")
        if not node.params.loop:
            break
        node.get_logger().info("end of the log: starting over")
        items = node.items()
    node.get_logger().info(f"played {Path(node.params.log).name}: {node.published} messages")
    _sleep(executor, node, 0.2)


def main(argv: list[str] | None = None) -> int:
    return run_node(ReplayNode, spin=play, argv=argv)


if __name__ == "__main__":
    raise SystemExit(main())

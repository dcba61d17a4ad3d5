"""Reading a bag into what the pipeline takes, and into synchronised ``SensorFrame`` s.

:func:`decoded_messages` is the read loop of replay: ``/tf_static`` first from the whole bag
(static transforms hold for all of it), the ``CameraInfo`` in force at the start of the
window, then every message of the window in log-time order with what it decodes to.
:func:`bag_frames` runs that loop through a :class:`SensorSync` (no model): the frames a
replay feeds the detector, or a bag written by :mod:`.convert` read back.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..align import SensorSync, SyncConfig
from ..types import LidarSweep, SensorFrame
from .bag import Bag, BagMessage, open_bag
from .calibration import DEFAULT_VEHICLE_FRAME, CalibrationStore
from .decode import GroundTruth, MessageDecoder, Payload
from .ground_truth import GroundTruthCollector
from .topics import TopicMap, build_topic_map


@dataclass(frozen=True)
class ReadWindow:
    """Which part of a bag is read: log times ``[start_ns, stop_ns)`` (None: open), and every
    ``every``-th lidar sweep."""

    start_ns: int | None = None
    stop_ns: int | None = None
    every: int = 1


def decoded_messages(bag: Bag, topic_map: TopicMap, decoder: MessageDecoder,
                     window: ReadWindow = ReadWindow(), also: Collection[str] = ()
                     ) -> Iterator[tuple[BagMessage, list[Payload | GroundTruth]]]:
    """``(message, decoded items)`` in log-time order (see the module doc). Topics in ``also``
    are read too (with nothing decoded), e.g. to copy them; ``/tf_static`` messages and the
    lidar sweeps left out by ``every`` decode to nothing."""
    latched = [t for t in (topic_map.tf_static,) if t]
    for message in bag.messages(latched):
        decoder.decode(bag, message)
    if window.start_ns is not None:
        for message in bag.messages(list(topic_map.camera_infos.values()), None,
                                    window.start_ns):
            decoder.decode(bag, message)
    sweeps = 0
    read = sorted(set(topic_map.topics) | set(also))
    for message in bag.messages(read, window.start_ns, window.stop_ns):
        if message.topic in latched or message.topic not in topic_map.role_of():
            yield message, []
            continue
        if message.topic == topic_map.lidar:
            sweeps += 1
            if (sweeps - 1) % window.every:
                yield message, []
                continue
        yield message, decoder.decode(bag, message)


def bag_frames(path: str | Path, entries: dict[str, str] | None = None,
               vehicle_frame: str = DEFAULT_VEHICLE_FRAME, compensate_motion: bool = False,
               camera_tolerance_s: float = 0.1, radar_tolerance_s: float = 0.05,
               timeout_s: float = 0.3, drop_origin: bool = False) -> Iterator[SensorFrame]:
    """The synchronised frames of a bag, with their ground truth as ``boxes`` (lidar point
    counts from the sweep). ``entries``: explicit topic-map entries. Without
    ``compensate_motion`` the points are exactly as recorded."""
    with open_bag(path) as bag:
        topic_map = build_topic_map(entries or {}, bag.topics)
        decoder = MessageDecoder(topic_map, CalibrationStore(vehicle_frame),
                                 drop_origin=drop_origin)
        sync = SensorSync(SyncConfig(
            reference=topic_map.lidar_name, cameras=tuple(sorted(topic_map.cameras)),
            radars=tuple(sorted(topic_map.radars)), camera_tolerance_s=camera_tolerance_s,
            radar_tolerance_s=radar_tolerance_s, timeout_s=timeout_s,
            compensate_motion=compensate_motion), bag.path.stem)
        truth = GroundTruthCollector()
        last = None
        for message, items in decoded_messages(bag, topic_map, decoder):
            last = message.log_time_ns
            for item in items:
                if isinstance(item, GroundTruth):
                    truth.add_message_boxes(item.stamp_ns, item.boxes)
                    continue
                if isinstance(item, LidarSweep):
                    truth.add_sweep(item)
                for aligned in sync.push(item, message.log_time_ns):
                    yield _with_truth(aligned.frame, truth)
        for aligned in sync.flush(last or 0):
            yield _with_truth(aligned.frame, truth)


def _with_truth(frame: SensorFrame, truth: GroundTruthCollector) -> SensorFrame:
    import dataclasses

    boxes = truth.by_stamp.get(int(frame.stamp_ns))
    return frame if boxes is None else dataclasses.replace(frame, boxes=boxes)

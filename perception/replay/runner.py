"""``perception replay LOG``: a recorded log through the pipeline, offline and deterministic.

Bags: the mapped topics' messages are decoded and pushed to the pipeline in log-time order,
with the log time as the arrival clock, so the sync waits, times out and drops exactly as
often on every run, as fast as the CPU allows (no sleeping). ``/tf_static`` is read first from
the whole bag; the lidar sweep clocks the frames. Data set logs (Waymo, nuScenes, KITTI raw)
are already synchronised: their frames go to :meth:`Pipeline.run` in stamp order.

Outputs in ``OUT``, written into a staging directory and moved into place when all are done,
``summary.json`` last (:mod:`.output_dir`: a killed replay leaves ``OUT`` as it was, and
rerunning it gives the outputs of an uninterrupted run):

* ``bag/``: an MCAP rosbag2 with the outputs of :mod:`.outputs` and, with ``with_input``, the
  input topics (data set frames as the messages of :mod:`.frames_to_bag`);
* ``metrics.json`` when the log has ground truth (:mod:`.ground_truth`);
* ``replay.gif``: the BEV video with the front camera (:mod:`.video`);
* ``summary.json`` / ``summary.md`` (:mod:`.summary`).

The same input and options give byte-identical ``bag/`` and ``metrics.json``; the summary
holds wall-clock latencies and differs. SIGINT / SIGTERM stop the replay after the current
message: the bag is closed (valid, with what was done) and the other outputs are written for
the frames replayed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..align import SyncConfig
from ..errors import ConfigError
from ..pipeline import Pipeline, PipelineOutput
from ..rosmsg.tf import transforms_to_tf_message
from ..rosmsg.topics import TF_STATIC
from ..types import LidarSweep, Modality, SensorFrame
from .bag import LATCHED_QOS, SENSOR_QOS, Bag, BagMessage, open_bag
from .calibration import DEFAULT_VEHICLE_FRAME, CalibrationStore, load_calibration_file
from .decode import GroundTruth, MessageDecoder
from .frames_to_bag import BagLayout, FrameMessages, OrderedWriter
from .ground_truth import FrameResult, GroundTruthCollector, score
from .output_bag import OutputBag
from .output_dir import StagedOutputs
from .outputs import frame_outputs
from .read import ReadWindow, decoded_messages
from .sources import FrameLog, LogKind, detect_kind, open_frame_log
from .stop import StopRequest
from .summary import ReplaySummary, headline_metrics, write_text
from .topics import TopicMap, build_topic_map
from .typestore import RosbagsFactory
from .video import DEFAULT_MAX_FRAMES, ReplayVideo

log = logging.getLogger("perception.replay")

NS_PER_S = 1_000_000_000
BAG_DIR, METRICS, VIDEO = "bag", "metrics.json", "replay.gif"


@dataclass(frozen=True)
class ReplayOptions:
    """Options of :func:`replay` (the command line's, see ``docs/replay.md``).

    Attributes:
        model: detector checkpoint or weights file; None: the shipped model.
        device: torch device of the detector.
        tracker_config: tracker YAML; None: the default. ``track``: run the tracker.
        topic_map: explicit ``{role: topic}`` entries (:mod:`.topics`); ``discover``: fill
            the other roles from our topic names.
        calibration: calibration YAML (:mod:`.calibration`), or None.
        vehicle_frame: frame everything is converted into (default: the calibration file's,
            else ``base_link``). ``world_frame``: parent of the vehicle in ``/tf`` poses.
        start_offset_s, duration_s: the window of the log replayed (log time after the first
            message; data sets: after the first frame).
        topics, exclude_topics: input topics kept (empty: all) and left out.
        every: replay every N-th lidar sweep (frame).
        drop: modalities removed (a sensor missing on a real log).
        with_input: copy the input topics into the output bag.
        video, video_max_frames: write the GIF, and its most frames.
        camera_tolerance_s, radar_tolerance_s, timeout_s: sync settings (:class:`SyncConfig`).
        drop_origin: drop lidar points at (0, 0, 0) (no-return pixels of some drivers).
        scene: nuScenes scene name.
        progress: show a progress bar.
    """

    model: str | None = None
    device: str = "cpu"
    tracker_config: str | None = None
    track: bool = True
    topic_map: dict[str, str] = field(default_factory=dict)
    discover: bool = True
    calibration: str | None = None
    vehicle_frame: str | None = None
    world_frame: str = "map"
    start_offset_s: float = 0.0
    duration_s: float | None = None
    topics: tuple[str, ...] = ()
    exclude_topics: tuple[str, ...] = ()
    every: int = 1
    drop: tuple[Modality, ...] = ()
    with_input: bool = False
    video: bool = True
    video_max_frames: int = DEFAULT_MAX_FRAMES
    camera_tolerance_s: float = 0.1
    radar_tolerance_s: float = 0.05
    timeout_s: float = 0.3
    drop_origin: bool = True
    scene: str | None = None
    progress: bool = True

    def check(self) -> None:
        if self.every < 1:
            raise ConfigError(f"--every: expected >= 1, got {self.every}")
        if self.start_offset_s < 0:
            raise ConfigError(f"--start-offset: expected >= 0, got {self.start_offset_s}")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ConfigError(f"--duration: expected > 0, got {self.duration_s}")


class Replay:
    """One replay run: the pipeline and every sink (see the module doc)."""

    def __init__(self, log_path: Path, out: Path, options: ReplayOptions, pipeline: Pipeline,
                 kind: LogKind, sequence_id: str, vehicle_frame: str,
                 sensors: dict[str, Modality], expected_frames: int):
        self.out = out
        self.options = options
        self.pipeline = pipeline
        self.sequence_id = sequence_id
        self.vehicle_frame = vehicle_frame
        self.sensors = sensors
        self.factory = RosbagsFactory()
        self.ground_truth = GroundTruthCollector()
        self.results: list[FrameResult] = []
        self.video = ReplayVideo(expected_frames, options.video_max_frames) \
            if options.video else None
        model = options.model or "shipped (perception/weights/sim_fusion.pt)"
        self.summary = ReplaySummary(str(log_path), kind.value, model)
        self.stop = StopRequest()
        self.bar = _progress(expected_frames, options.progress)
        self.bag: OutputBag | None = None
        self.not_copied: set[str] = set()
        self.decoder: MessageDecoder | None = None
        """The bag's message decoder, whose skips the summary reports."""
        self.log_bag: Bag | None = None
        """The bag replayed (the summary says whether it ended early)."""

    def handle(self, outputs: Iterable[PipelineOutput], log_time_ns: int) -> None:
        """Write, score and draw every frame that came out of the pipeline."""
        assert self.bag is not None
        for output in outputs:
            truth = self.ground_truth.by_stamp.get(int(output.stamp_ns))
            for topic, msg, qos in frame_outputs(self.factory, output, self.vehicle_frame,
                                                 self.sensors, truth):
                self.bag.write(topic, log_time_ns, msg, qos)
            self.results.append(FrameResult.of(output))
            self.summary.add(output)
            if self.video is not None:
                self.video.add(output, truth)
            self.bar.update(1)

    def write_static(self, transforms: dict, log_time_ns: int) -> None:
        """``/tf_static`` of the transforms in use: vehicle frame -> every known frame."""
        assert self.bag is not None
        children = {frame: T for frame, T in sorted(transforms.items())
                    if frame != self.vehicle_frame}
        msg = transforms_to_tf_message(self.factory, children, self.vehicle_frame, log_time_ns)
        self.bag.write(TF_STATIC, log_time_ns, msg, LATCHED_QOS)

    def finish(self, wall_s: float) -> ReplaySummary:
        """Metrics, video and summary for the frames replayed."""
        self.bar.close()
        summary = self.summary
        summary.wall_s = wall_s
        summary.interrupted = self.stop.requested
        summary.set_sensor_stats(self.pipeline.sensor_stats)
        if self.log_bag is not None:
            summary.truncated_log = self.log_bag.truncated
        if self.decoder is not None:
            skips = self.decoder.skips
            summary.skipped = skips.by_topic()
            summary.notes += [f"skipped {skips.counts[key]} on {key[0]}, first: {detail}"
                              for key, detail in sorted(skips.first.items())]
        detector = self.pipeline.detector
        grid = getattr(getattr(detector, "config", None), "grid", None)
        metrics = score(self.results, self.ground_truth.by_stamp, self.sequence_id,
                        grid.point_range_m if grid is not None else None)
        if metrics is not None:
            write_text(self.out / METRICS, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
            summary.outputs["metrics"] = METRICS
            summary.metrics = headline_metrics(metrics)
        if self.video is not None and self.video.write(self.out / VIDEO) is not None:
            summary.outputs["video"] = VIDEO
        summary.outputs["bag"] = BAG_DIR
        summary.outputs["summary"] = "summary.md"
        summary.write(self.out)
        return summary


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total or None, unit="frame", desc="replay", disable=not enabled,
                dynamic_ncols=True)


# ------------------------------------------------------------------------------------------
# Entry point
# ------------------------------------------------------------------------------------------

def replay(log_path: str | Path, out: str | Path, options: ReplayOptions = ReplayOptions()
           ) -> ReplaySummary:
    """Replay the log at ``log_path`` into ``out`` (see the module doc).

    Raises:
        DataError: an unreadable log; ConfigError: bad options, a topic map that does not fit
            the log (both before anything is written).
    """
    options.check()
    log_path, out = Path(log_path), Path(out)
    kind = detect_kind(log_path)
    if kind is LogKind.BAG:
        with open_bag(log_path) as bag:
            return _replay_bag(bag, out, options)
    return _replay_frames(log_path, kind, out, options)


def _pipeline(options: ReplayOptions, sync_config: SyncConfig | None,
              sequence_id: str) -> Pipeline:
    return Pipeline.from_checkpoint(options.model, options.tracker_config, options.device,
                                    sync_config=sync_config, track=options.track,
                                    drop=options.drop, sequence_id=sequence_id)


def _run(replay_run: Replay, out: Path, work: Iterator[None]) -> ReplaySummary:
    """Drive ``work`` (one step per message or frame) with the output bag open, stopping on a
    signal; the bag is closed whatever happens. Everything is written into ``out``'s staging
    directory and moved into ``out`` only when complete (:class:`StagedOutputs`)."""
    t0 = time.perf_counter()
    with StagedOutputs(out) as staged:
        replay_run.out = staged.path
        with replay_run.stop, OutputBag(staged.path / BAG_DIR) as bag:
            replay_run.bag = bag
            for _ in work:
                if replay_run.stop.requested:
                    break
        summary = replay_run.finish(time.perf_counter() - t0)
        staged.commit()
    replay_run.out = out
    return summary


# ------------------------------------------------------------------------------------------
# Bags
# ------------------------------------------------------------------------------------------

def _input_topics(bag: Bag, options: ReplayOptions) -> dict:
    keep = set(options.topics) if options.topics else set(bag.topics)
    unknown = sorted(keep - set(bag.topics))
    if unknown:
        raise ConfigError(f"--topics: {unknown} not in the log (its topics: {sorted(bag.topics)})")
    return {t: info for t, info in bag.topics.items()
            if t in keep and t not in set(options.exclude_topics)}


def _without_dropped(topic_map: TopicMap, drop: tuple[Modality, ...]) -> TopicMap:
    """Cameras and radars that are dropped are not read at all."""
    if Modality.CAMERA in drop:
        topic_map = dataclasses.replace(topic_map, cameras={}, camera_infos={})
    if Modality.RADAR in drop:
        topic_map = dataclasses.replace(topic_map, radars={})
    return topic_map


def _replay_bag(bag: Bag, out: Path, options: ReplayOptions) -> ReplaySummary:
    topics = _input_topics(bag, options)
    topic_map = _without_dropped(build_topic_map(options.topic_map, topics, options.discover),
                                 options.drop)
    if topic_map.lidar is None:
        raise ConfigError(f"no lidar topic: the lidar sweep clocks the frames; map one with "
                          f"--map lidar=TOPIC (the log's PointCloud2 topics: "
                          f"{sorted(t for t, i in topics.items() if 'PointCloud2' in i.msgtype)})")
    file = load_calibration_file(options.calibration) if options.calibration else None
    vehicle_frame = options.vehicle_frame or (file.vehicle_frame if file else None) \
        or DEFAULT_VEHICLE_FRAME
    calibration = CalibrationStore(vehicle_frame, file)
    decoder = MessageDecoder(topic_map, calibration, options.world_frame, options.drop_origin)
    has_ego = topic_map.ego_pose is not None or topic_map.tf is not None
    sync = SyncConfig(reference=topic_map.lidar_name, cameras=tuple(sorted(topic_map.cameras)),
                      radars=tuple(sorted(topic_map.radars)),
                      camera_tolerance_s=options.camera_tolerance_s,
                      radar_tolerance_s=options.radar_tolerance_s, timeout_s=options.timeout_s,
                      compensate_motion=has_ego)
    sequence_id = bag.path.stem if bag.path.is_file() else bag.path.name
    pipeline = _pipeline(options, sync, sequence_id)
    sensors = {topic_map.lidar_name: Modality.LIDAR}
    sensors.update({n: Modality.CAMERA for n in sorted(topic_map.cameras)})
    sensors.update({n: Modality.RADAR for n in sorted(topic_map.radars)})
    expected = -(-topics[topic_map.lidar].count // options.every)
    run = Replay(bag.path, out, options, pipeline, LogKind.BAG, sequence_id, vehicle_frame,
                 sensors, expected)
    run.summary.truncated_log = bag.truncated
    run.summary.ego_pose = has_ego
    run.decoder, run.log_bag = decoder, bag
    if not has_ego:
        run.summary.notes.append("no ego pose in the log: motion compensation and world-frame "
                                 "tracking are off")
        log.warning("no ego pose in %s: motion compensation and world-frame tracking are off",
                    bag.path)
    return _run(run, out, _bag_steps(run, bag, topics, topic_map, decoder))


def _window(bag: Bag, options: ReplayOptions) -> ReadWindow:
    start = bag.start_ns + int(round(options.start_offset_s * NS_PER_S))
    stop = None if options.duration_s is None else \
        start + int(round(options.duration_s * NS_PER_S))
    return ReadWindow(start if options.start_offset_s > 0 else None, stop, options.every)


def _bag_steps(run: Replay, bag: Bag, topics: dict, topic_map: TopicMap,
               decoder: MessageDecoder) -> Iterator[None]:
    """One step per message read (see the module doc)."""
    also = set(topics) if run.options.with_input else set()
    last_ns = None
    for message, items in decoded_messages(bag, topic_map, decoder, _window(bag, run.options),
                                           also):
        if last_ns is None:
            run.write_static(decoder.calibration.transforms, message.log_time_ns)
        last_ns = message.log_time_ns
        if message.topic in also:
            _copy_input(run, bag, message, topics)
        _push(run, items, message.log_time_ns)
        yield
    if last_ns is not None and not run.stop.requested:
        run.handle(run.pipeline.flush(last_ns), last_ns)


def _push(run: Replay, items: list, log_time_ns: int) -> None:
    for item in items:
        if isinstance(item, GroundTruth):
            run.ground_truth.add_message_boxes(item.stamp_ns, item.boxes)
            continue
        if isinstance(item, LidarSweep):
            run.ground_truth.add_sweep(item)
        run.handle(run.pipeline.push(item, log_time_ns), log_time_ns)


def _copy_input(run: Replay, bag: Bag, message: BagMessage, topics: dict) -> None:
    """Copy one input message into the output bag (CDR; types from the bag's definitions)."""
    assert run.bag is not None
    if message.topic in run.not_copied:
        return
    if message.topic not in run.bag.counts:
        definition = bag.definition(message.msgtype)
        if definition is None:
            run.summary.notes.append(f"{message.topic} ({message.msgtype}) not copied: no "
                                     f"message definition")
            run.not_copied.add(message.topic)
            return
        run.bag.add_topic(message.topic, message.msgtype,
                          topics[message.topic].qos or SENSOR_QOS, definition)
    try:
        run.bag.write_raw(message.topic, message.log_time_ns, bag.cdr(message))
    except Exception as exc:  # noqa: BLE001 - bad bytes in one message: skip that one
        log.debug("input message on %s not copied: %s", message.topic, exc)


# ------------------------------------------------------------------------------------------
# Data set logs
# ------------------------------------------------------------------------------------------

def _replay_frames(log_path: Path, kind: LogKind, out: Path, options: ReplayOptions
                   ) -> ReplaySummary:
    if options.topic_map or options.topics or options.exclude_topics or options.calibration:
        log.warning("topic maps, topic filters and calibration files apply to bags only; "
                    "ignored for a %s log", kind.value)
    frames = open_frame_log(log_path, kind, options.scene)
    first = next(iter(frames), None)
    sequence_id = first.sequence_id if first is not None else log_path.stem
    pipeline = _pipeline(options, None, sequence_id)
    sensors = {}
    if first is not None:
        if first.lidar is not None:
            sensors[first.lidar.sensor_name] = Modality.LIDAR
        sensors.update({n: Modality.CAMERA for n in sorted(first.cameras)})
        sensors.update({n: Modality.RADAR for n in sorted(first.radars)})
    run = Replay(log_path, out, options, pipeline, kind, sequence_id,
                 options.vehicle_frame or DEFAULT_VEHICLE_FRAME, sensors,
                 -(-len(frames) // options.every))
    run.summary.ego_pose = first is not None and first.ego_pose is not None
    return _run(run, out, _frame_steps(run, frames, first))


def _frame_steps(run: Replay, frames: FrameLog, first: SensorFrame | None) -> Iterator[None]:
    options = run.options
    if first is None:
        return
    start = first.stamp_ns + int(round(options.start_offset_s * NS_PER_S))
    stop = None if options.duration_s is None else \
        start + int(round(options.duration_s * NS_PER_S))
    layout = FrameMessages(BagLayout(vehicle_frame=run.vehicle_frame), run.factory)
    ordered = OrderedWriter(run.bag) if options.with_input else None
    static_written = False
    for index, frame in enumerate(frames):
        if frame.stamp_ns < start or index % options.every:
            yield
            continue
        if stop is not None and frame.stamp_ns >= stop:
            break
        if not static_written:
            static = layout.static(frame, frame.stamp_ns)
            run.bag.write(static.topic, static.log_time_ns, static.msg, static.qos)
            static_written = True
        if ordered is not None:
            ordered.add(layout.frame(frame))
        run.ground_truth.add_frame_boxes(frame.stamp_ns, frame.boxes)
        run.handle([run.pipeline.process(frame)], frame.stamp_ns)
        yield
    if ordered is not None:
        ordered.flush()

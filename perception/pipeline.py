"""The perception pipeline without ROS: sensor messages or frames in, detections and tracks out.

One object runs every stage of a frame, in order, each a plain call on typed data::

    push(message)  --SensorSync-->  AlignedFrame          (live, multi-rate input)
    run(frames)                     SensorFrame            (already synchronised input)
      -> SweepHistory.add      multi-sweep / multi-scan accumulation, as in training
      -> collate_frames        Batch (tensors, modality mask)
      -> detector(batch)       DetectorOutput (head maps)
      -> detector.decode       Detections (vehicle frame, modalities used)
      -> Tracker.update        Tracks (ids, world-frame filtering)
    -> PipelineOutput (frame, detections, tracks, modalities, per-stage timings in ms)

The demo, log replay, evaluation and the ROS 2 nodes all use it, so a frame is processed the
same way everywhere. Nothing here imports ROS.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .align import AlignedFrame, SensorSync, SweepHistory, SyncConfig
from .config import config_dir
from .errors import ConfigError
from .models.batch import collate_frames
from .models.checkpoint import read_detector
from .models.shipped import shipped_weights_path
from .tracking import Tracker
from .tracking.config import TrackerConfig, load_tracker_config
from .types import (
    CameraImage,
    Detections,
    EgoPose,
    LidarSweep,
    Modality,
    RadarScan,
    SensorFrame,
    Tracks,
)

log = logging.getLogger("perception.pipeline")

DEFAULT_TRACKER_CONFIG = config_dir() / "tracking" / "sim.yaml"
PRECISIONS = ("fp32", "fp16")
BACKENDS = ("torch", "onnxruntime")
"""Inference backends of :meth:`Pipeline.from_checkpoint`: the torch detector, or its dense
parts in ONNX Runtime (:mod:`perception.export`; same outputs within float tolerance)."""
Message = LidarSweep | CameraImage | RadarScan | EgoPose


@dataclass(frozen=True)
class StageTimings:
    """Milliseconds spent per stage of one frame.

    Attributes:
        sync_wait_ms: how long the frame waited in the sync for late sensors (arrival clock,
            from its sweep's arrival to its emission; 0 for already-synchronised frames).
        accumulate_ms: multi-sweep accumulation.
        collate_ms: tensors from the frame (image resizing, point features).
        model_ms: the network's forward pass.
        decode_ms: boxes from the head maps (top-K, NMS).
        track_ms: the tracker update.
    """

    sync_wait_ms: float = 0.0
    accumulate_ms: float = 0.0
    collate_ms: float = 0.0
    model_ms: float = 0.0
    decode_ms: float = 0.0
    track_ms: float = 0.0

    @property
    def processing_ms(self) -> float:
        """Compute time of the frame: every stage but the sync wait."""
        return (self.accumulate_ms + self.collate_ms + self.model_ms + self.decode_ms
                + self.track_ms)

    @property
    def total_ms(self) -> float:
        return self.sync_wait_ms + self.processing_ms


@dataclass(frozen=True, eq=False)
class PipelineOutput:
    """One frame's result.

    Attributes:
        frame: the aligned frame (vehicle frame at the lidar stamp), before accumulation.
        detections: vehicle frame of ``frame.stamp_ns``; ``detections.modalities`` is what
            the detector used.
        tracks: the tracker's output for this stamp, or None without a tracker.
        timings: per-stage milliseconds.
        missing: configured sensors that had no message for this frame (live input).
        motion_compensated: lidar and radar moved to the sweep stamp by the sync (None for
            already-synchronised frames).
        tracker_reset: the tracker restarted at this frame because its stamp did not
            increase (a looped log, a restarted source).
        model_input: what the detector saw: ``frame`` with the earlier sweeps and scans
            merged in (the same object when nothing is accumulated).
    """

    frame: SensorFrame
    detections: Detections
    tracks: Tracks | None
    timings: StageTimings
    missing: tuple[str, ...] = ()
    motion_compensated: bool | None = None
    tracker_reset: bool = False
    model_input: SensorFrame | None = None

    @property
    def stamp_ns(self) -> int:
        return self.frame.stamp_ns

    @property
    def modalities(self) -> frozenset[Modality]:
        return self.detections.modalities


@dataclass
class PipelineStats:
    """Counters since the pipeline was built."""

    frames: int = 0
    tracker_resets: int = 0
    frames_by_modalities: dict[str, int] = field(default_factory=dict)


class Pipeline:
    """Sync -> accumulation -> detector -> tracker, in one object (see the module doc).

    Args:
        detector: a detector from :mod:`perception.models` (``build_detector`` or
            :func:`~perception.models.checkpoint.load_detector`; put in eval mode), or any
            callable ``frame -> Detections`` that stands in for one (e.g.
            :class:`~perception.tracking.noise.NoisyGroundTruthDetector`).
        tracker: a :class:`~perception.tracking.Tracker`, or None for detections only.
        sync_config: sensors to synchronise for :meth:`push`; None when only :meth:`run` and
            :meth:`process` are used.
        lidar_sweeps, radar_scans: sweeps (scans) per frame fed to the model, as it was
            trained (:class:`~perception.align.SweepHistory`).
        drop: modalities removed from every frame before the detector (robustness runs).
        precision: ``fp32``, or ``fp16`` (autocast, CUDA only).
        sequence_id: ``SensorFrame.sequence_id`` of frames built by the sync.
    """

    def __init__(self, detector: nn.Module | Callable[[SensorFrame], Detections],
                 tracker: Tracker | None = None,
                 sync_config: SyncConfig | None = None, *, lidar_sweeps: int = 1,
                 radar_scans: int = 1, drop: Iterable[Modality] = (),
                 precision: str = "fp32", sequence_id: str = "live"):
        if precision not in PRECISIONS:
            raise ConfigError(f"precision: expected one of {PRECISIONS}, got {precision!r}")
        self.detector = detector.eval() if isinstance(detector, nn.Module) else detector
        self.device = (next(detector.parameters()).device if isinstance(detector, nn.Module)
                       else torch.device("cpu"))
        if precision == "fp16" and self.device.type != "cuda":
            raise ConfigError(f"precision: fp16 needs a CUDA device, the detector is on "
                              f"{self.device}")
        self.precision = precision
        self.tracker = tracker
        self.sync_config = sync_config
        self._sync = SensorSync(sync_config, sequence_id) if sync_config is not None else None
        self.history = SweepHistory(lidar_sweeps, radar_scans)
        self.drop = frozenset(Modality(m) for m in drop)
        self.stats = PipelineStats()
        self._last_track_stamp_ns: int | None = None

    # ------------------------------------------------------------------------------------
    # Construction
    # ------------------------------------------------------------------------------------

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None,
                        tracker_config: TrackerConfig | str | Path | None = None,
                        device: str | torch.device = "cpu", *,
                        sync_config: SyncConfig | None = None, track: bool = True,
                        backend: str = "torch", **options) -> Pipeline:
        """A pipeline over the detector in ``path`` (a training checkpoint or a weights file;
        None: the shipped model, its sha256 checked against its card) and a tracker with
        ``tracker_config`` (a config, a YAML path, or None for ``configs/tracking/sim.yaml``;
        ``track=False`` for detections only). The sweeps and scans per frame come from the
        checkpoint. ``backend`` is one of :data:`BACKENDS`; with ``onnxruntime``, ``path``
        may also be a directory written by ``perception export``, and a weights file is
        exported once into a cache (:func:`perception.export.onnx_detector_for`).
        ``options`` go to :class:`Pipeline` (``drop``, ``precision``, ...)."""
        if backend not in BACKENDS:
            raise ConfigError(f"backend: expected one of {BACKENDS}, got {backend!r}")
        tracker = Tracker(_tracker_config(tracker_config)) if track else None
        if backend == "onnxruntime":
            detector, sweeps, scans = _onnx_detector(path, device)
        else:
            path = shipped_weights_path(verify=True) if path is None else Path(path)
            loaded = read_detector(path, device)
            detector, sweeps, scans = loaded.model, loaded.lidar_sweeps, loaded.radar_scans
        options.setdefault("lidar_sweeps", sweeps)
        options.setdefault("radar_scans", scans)
        return cls(detector, tracker, sync_config, **options)

    @classmethod
    def default(cls, **kwargs) -> Pipeline:
        """The shipped model with the default tracker (:meth:`from_checkpoint` with no path)."""
        return cls.from_checkpoint(None, **kwargs)

    # ------------------------------------------------------------------------------------
    # Live input
    # ------------------------------------------------------------------------------------

    def sync(self, message: Message, arrival_ns: int | None = None) -> list[AlignedFrame]:
        """Only the sync stage: add one message, return the frames that became ready (for
        callers that run the detector elsewhere, e.g. a node that drops stale frames)."""
        if self._sync is None:
            raise ConfigError("Pipeline.push: no sync_config was given; build the pipeline "
                              "with sync_config=SyncConfig(reference=..., cameras=..., "
                              "radars=...) or feed synchronised frames to run()")
        return self._sync.push(message, _now(arrival_ns))

    def push(self, message: Message, arrival_ns: int | None = None) -> list[PipelineOutput]:
        """Add one message (lidar sweep, camera image, radar scan or ego pose, in arrival
        order; ``arrival_ns`` defaults to the monotonic clock) and run every frame that
        became ready through the detector and tracker."""
        return [self.process(aligned) for aligned in self.sync(message, arrival_ns)]

    def poll(self, now_ns: int | None = None) -> list[PipelineOutput]:
        """Frames whose sensors timed out by ``now_ns``, processed."""
        if self._sync is None:
            return []
        return [self.process(a) for a in self._sync.poll(_now(now_ns))]

    def flush(self, now_ns: int | None = None) -> list[PipelineOutput]:
        """Every pending frame now, with what has arrived (end of a stream), processed."""
        if self._sync is None:
            return []
        return [self.process(a) for a in self._sync.flush(_now(now_ns))]

    @property
    def sensor_stats(self) -> dict:
        """Per-sensor counters of the sync (:class:`~perception.align.SensorStats`)."""
        return dict(self._sync.stats) if self._sync is not None else {}

    # ------------------------------------------------------------------------------------
    # Synchronised input
    # ------------------------------------------------------------------------------------

    def run(self, frames: Iterable[SensorFrame]) -> Iterator[PipelineOutput]:
        """Process already-synchronised frames in order (a dataset, the simulator, a log)."""
        for frame in frames:
            yield self.process(frame)

    def process(self, frame: SensorFrame | AlignedFrame) -> PipelineOutput:
        """One frame through accumulation, detector and tracker."""
        sync_wait_ms, missing, compensated = 0.0, (), None
        if isinstance(frame, AlignedFrame):
            sync_wait_ms = (frame.emitted_arrival_ns - frame.reference_arrival_ns) * 1e-6
            missing, compensated = frame.missing, frame.motion_compensated
            frame = frame.frame
        t0 = time.perf_counter()
        model_input = self.history.add(frame)
        t1 = time.perf_counter()
        detections, (collate_ms, model_ms, decode_ms) = self.detect(model_input)
        t2 = time.perf_counter()
        tracks, reset = self._track(detections, frame)
        t3 = time.perf_counter()
        timings = StageTimings(sync_wait_ms, (t1 - t0) * 1e3, collate_ms, model_ms, decode_ms,
                               (t3 - t2) * 1e3)
        self._count(detections)
        return PipelineOutput(frame, detections, tracks, timings, missing, compensated, reset,
                              model_input)

    def detect(self, frame: SensorFrame) -> tuple[Detections, tuple[float, float, float]]:
        """Detections of one (accumulated) frame and the (collate, model, decode) ms."""
        t0 = time.perf_counter()
        if not isinstance(self.detector, nn.Module):
            detections = self.detector(_without(frame, self.drop))
            return detections, (0.0, (time.perf_counter() - t0) * 1e3, 0.0)
        batch = collate_frames([frame], self.detector.spec, device=self.device)
        if self.drop:
            batch = batch.without(self.drop)
        self._synchronize()
        t1 = time.perf_counter()
        with torch.no_grad(), torch.autocast(self.device.type, dtype=torch.float16,
                                             enabled=self.precision == "fp16"):
            output = self.detector(batch)
        self._synchronize()
        t2 = time.perf_counter()
        with torch.no_grad():
            detections = self.detector.decode(batch, output)[0]
        t3 = time.perf_counter()
        return detections, ((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3)

    def reset(self) -> None:
        """Forget the sweep history and the tracks (a new sequence starts)."""
        self.history.reset()
        if self.tracker is not None:
            self.tracker.reset()
        self._last_track_stamp_ns = None

    # ------------------------------------------------------------------------------------

    def _track(self, detections: Detections, frame: SensorFrame) -> tuple[Tracks | None, bool]:
        if self.tracker is None:
            return None, False
        reset = False
        last = self._last_track_stamp_ns
        if last is not None and frame.stamp_ns <= last:
            # A looped log or a restarted source: start over instead of failing every frame.
            log.warning("stamp %d ns is not after the previous frame's %d ns: tracker reset",
                        frame.stamp_ns, last)
            self.tracker.reset()
            self.stats.tracker_resets += 1
            reset = True
        tracks = self.tracker.update(detections, frame.stamp_ns, frame.ego_pose)
        self._last_track_stamp_ns = frame.stamp_ns
        return tracks, reset

    def _count(self, detections: Detections) -> None:
        self.stats.frames += 1
        key = "+".join(sorted(m.value for m in detections.modalities)) or "none"
        self.stats.frames_by_modalities[key] = self.stats.frames_by_modalities.get(key, 0) + 1

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def _onnx_detector(path: str | Path | None, device: str | torch.device
                   ) -> tuple[nn.Module, int, int]:
    """The ONNX Runtime detector of a weights file or an export directory, with its sweeps and
    scans per frame."""
    from .export import load_onnx_detector, onnx_detector_for, read_manifest

    providers = None
    if torch.device(device).type != "cpu":
        import onnxruntime

        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            raise ConfigError(f"backend: onnxruntime has no CUDA provider here (install "
                              f"onnxruntime-gpu), so it cannot run on {device}; use device cpu "
                              f"or backend torch")
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if path is not None and Path(path).is_dir():
        manifest = read_manifest(path)
        detector = load_onnx_detector(path, providers=providers)
        return detector, manifest["lidar_sweeps"], manifest["radar_scans"]
    path = shipped_weights_path(verify=True) if path is None else Path(path)
    loaded = read_detector(path, "cpu")
    detector = onnx_detector_for(loaded.model, path, lidar_sweeps=loaded.lidar_sweeps,
                                 radar_scans=loaded.radar_scans, providers=providers)
    return detector, loaded.lidar_sweeps, loaded.radar_scans


def _tracker_config(config: TrackerConfig | str | Path | None) -> TrackerConfig:
    if isinstance(config, TrackerConfig):
        return config
    return load_tracker_config(DEFAULT_TRACKER_CONFIG if config is None else config)


def _without(frame: SensorFrame, drop: frozenset[Modality]) -> SensorFrame:
    if not drop:
        return frame
    return dataclasses.replace(
        frame, lidar=None if Modality.LIDAR in drop else frame.lidar,
        cameras={} if Modality.CAMERA in drop else frame.cameras,
        radars={} if Modality.RADAR in drop else frame.radars)


def _now(arrival_ns: int | None) -> int:
    return time.monotonic_ns() if arrival_ns is None else int(arrival_ns)

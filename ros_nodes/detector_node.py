"""``detector_node``: sensor topics in, 3D detections out.

Subscribes to the lidar, camera (raw or compressed, with ``CameraInfo``) and radar topics,
``/tf_static`` and ``/ego/pose`` (the same topics and conversions as ``sync_node``:
:class:`ros_nodes.sensor_inputs.SensorInputs`),
synchronises them with :class:`perception.align.SensorSync` and runs the detector of
:class:`perception.pipeline.Pipeline` (sweep accumulation -> collation -> model -> decode) on
each frame. Publishes, relative to the node name:

* ``~/output/objects``: ``vision_msgs/Detection3DArray``, stamped with the lidar sweep's stamp,
  in ``vehicle_frame``; class id and score per detection;
* ``~/output/status``: ``fusion_perception_msgs/PerceptionStatus`` with the same stamp: the
  modalities the detector used and the sensors present in the frame;
* ``~/output/markers``: ``visualization_msgs/MarkerArray`` (boxes in class colours, score
  labels, velocity arrows where the model predicts velocities);
* ``~/debug/processing_time_ms`` (compute time of a frame), ``~/debug/processing_time/
  <stage>_ms`` for ``sync_wait``, ``queue`` (waiting for the model), ``preprocess``,
  ``inference``, ``postprocess`` and ``total`` (sweep arrival to published),
  ``~/debug/pipeline_latency_ms`` (publish time on the node clock minus the sensor stamp) and
  ``~/debug/cyclic_time_ms`` (between two publications), all ``std_msgs/Float64``;
* ``/diagnostics``: per-sensor health, the modalities used (DEGRADED when some are missing),
  processing time against ``max_processing_time_ms``, and frames dropped while the model was
  busy.

Threads: the executor thread runs the subscription callbacks (message conversion and the
sync, both cheap) and hands every frame the sync emits to a one-slot mailbox
(:class:`perception.align.LatestFrame`). A worker thread takes the newest frame, runs the
model and publishes. When the model is slower than the lidar, the newest complete frame
replaces the one waiting, which is dropped and counted: nothing queues without bound. The
sync belongs to the executor thread and the pipeline to the worker; what diagnostics read
from the worker is guarded by a lock. The sync defers ego-motion compensation to the worker
(:meth:`perception.align.AlignedFrame.compensated`), so dropped frames cost no compensation.

Missing sensors: a camera or radar whose newest message is older than ``max_sensor_delay_s``
relative to the lidar stamp is masked out of the frame and not waited for. Without lidar for
``timeout_s``, frames are built on the fallback camera or radar (``lidar_fallback``) when the
model has camera or radar branches. Bad input never stops the node: a malformed message (wrong
``point_step``, an image whose size disagrees with its ``CameraInfo``, a cloud with no finite
point) is skipped, logged (throttled) and counted as ``malformed``; an image without
calibration yet is counted as ``dropped``.

Parameters: :class:`ros_nodes.params.DetectorNodeParams` (``config/detector.param.yaml``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from rclpy.node import Node
from std_msgs.msg import Float64, Header
from vision_msgs.msg import Detection3DArray
from visualization_msgs.msg import MarkerArray

from fusion_perception_msgs.msg import PerceptionStatus, SensorStatus
from perception.align import AlignedFrame, Health, LatestFrame, SensorSync
from perception.errors import ConfigError, PerceptionError
from perception.types import Modality

from . import topics
from .conversions.detections import detections_to_msg
from .conversions.stamps import ns_to_stamp
from .conversions.tracks import detection_markers
from .node_base import Diagnostics, ProcessingTimes, load_parameters, reliable_qos, run_node
from .params import DetectorNodeParams
from .sensor_inputs import SensorInputs, input_sensors

NODE_NAME = "detector"
STAGES = ("sync_wait", "queue", "preprocess", "inference", "postprocess", "total")
WORKER_JOIN_S = 10.0


def model_modalities(detector: Any) -> frozenset[Modality]:
    """The modalities a detector has branches for (all, when it does not say)."""
    spec = getattr(detector, "spec", None)
    if spec is None:
        return frozenset(Modality)
    present = set()
    if getattr(spec, "lidar_columns", None) is not None:
        present.add(Modality.LIDAR)
    if getattr(spec, "image_size_hw", None) is not None:
        present.add(Modality.CAMERA)
    if getattr(spec, "radar", False):
        present.add(Modality.RADAR)
    return frozenset(present)


def load_pipeline(params: DetectorNodeParams, source: str) -> Any:
    """The detector pipeline (no tracker, no sync) for ``params``.

    Raises:
        ConfigError: the device is not available, or the model cannot be loaded; the message
            names the parameter.
    """
    import torch

    from perception.pipeline import BACKENDS, Pipeline

    if params.torch_threads:
        torch.set_num_threads(params.torch_threads)
    if params.backend not in BACKENDS:
        raise ConfigError(f"{source}: backend: expected one of {list(BACKENDS)}, got "
                          f"{params.backend!r}")
    if params.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"{source}: device: {params.device!r} is not available (torch "
                          f"{torch.__version__} without a usable CUDA device)")
    try:
        return Pipeline.from_checkpoint(params.model_path or None, device=params.device,
                                        track=False, backend=params.backend,
                                        precision=params.precision)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except (PerceptionError, OSError, RuntimeError, KeyError, ValueError) as exc:
        what = params.model_path or "the shipped model"
        raise ConfigError(f"{source}: model_path: cannot load {what}: {exc}") from None


class DetectorNode(Node):
    """See the module doc."""

    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        self.params = load_parameters(self, DetectorNodeParams)
        p = self.params
        source = f"node {self.get_fully_qualified_name()} parameters"
        self.pipeline = load_pipeline(p, source)
        self.model_modalities = model_modalities(self.pipeline.detector)
        configured = {Modality.LIDAR}
        if p.camera_names:
            configured.add(Modality.CAMERA)
        if p.radar_names:
            configured.add(Modality.RADAR)
        self.expected = frozenset(configured) & self.model_modalities
        # frames without lidar only help a model with a camera or radar branch
        fallback = bool(self.model_modalities - {Modality.LIDAR})
        # motion compensation happens in the worker, only for the frames the model runs
        self.sync = SensorSync(p.sync_config(fallback=fallback), sequence_id=self.get_name(),
                               defer_compensation=True)
        self.get_logger().info(
            f"model: {p.model_path or 'shipped'} on {p.device} ({p.precision}, {p.backend}); "
            f"modalities {sorted(m.value for m in self.model_modalities)}; lidar fallback: "
            f"{self.sync.config.fallback_reference or 'off'}")

        self.mailbox: LatestFrame[AlignedFrame] = LatestFrame()
        self._lock = threading.Lock()
        self._last: dict[str, Any] | None = None
        self._counts = {"processed": 0, "published_empty": 0, "skipped_no_modality": 0,
                        "failed": 0}
        self._by_modalities: dict[str, int] = {}
        # Frames since the last diagnostics report, and how many of them lacked each expected
        # modality: a sensor that drops every third message shows as DEGRADED even when the
        # report happens to follow a frame that had it.
        self._frames_since_report = 0
        self._missing_since_report: dict[Modality, int] = {}
        self._reported_failed = 0
        self._stopping = threading.Event()

        self.objects_pub = self.create_publisher(Detection3DArray, topics.OUTPUT_OBJECTS,
                                                 reliable_qos())
        self.status_pub = self.create_publisher(PerceptionStatus, topics.OUTPUT_STATUS,
                                                reliable_qos())
        self.markers_pub = (self.create_publisher(MarkerArray, topics.OUTPUT_MARKERS,
                                                  reliable_qos())
                            if p.publish_markers else None)
        self.times = ProcessingTimes(self, p.max_processing_time_ms,
                                     p.processing_time_error_count, unit="frames", digits=1)
        self.stage_pubs = {stage: self.create_publisher(Float64, topics.debug_stage_time(stage),
                                                        10)
                           for stage in STAGES}

        self.diagnostics = Diagnostics(self, input_sensors(p), p.diagnostics_period_s)
        self.diagnostics.add_check(self.modalities_status)
        self.diagnostics.add_check(self.processing_status)
        self.diagnostics.add_check(self.frames_status)
        # the input callbacks convert and sync only (cheap); the model runs in the worker
        self.inputs = SensorInputs(self, p, self.sync, self.diagnostics, self.offer,
                                   require_points=True)
        self.worker = threading.Thread(target=self._work, name="detector-model", daemon=True)
        self.worker.start()

    # --------------------------------------------------------------------------------------
    # Input (executor thread): the frames the sync emits
    # --------------------------------------------------------------------------------------

    def offer(self, frames: list[AlignedFrame]) -> None:
        """Hand the frames to the model, the newest last: a frame still waiting when a newer
        one comes is dropped (the model was busy)."""
        for frame in frames:
            self.mailbox.put(frame)

    # --------------------------------------------------------------------------------------
    # Model (worker thread)
    # --------------------------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stopping.is_set():
            aligned = self.mailbox.take(timeout_s=0.2)
            if aligned is None:
                continue
            try:
                self.process(aligned)
            except Exception as exc:  # noqa: BLE001 - one bad frame must not stop the node
                with self._lock:
                    self._counts["failed"] += 1
                if self._stopping.is_set():
                    return
                self.get_logger().error(f"frame {aligned.stamp_ns} ns skipped after "
                                        f"{type(exc).__name__}: {exc}",
                                        throttle_duration_sec=1.0)

    def process(self, aligned: AlignedFrame) -> None:
        """Run the model on one frame and publish its detections, status, markers and debug
        times."""
        p = self.params
        taken_ns = time.monotonic_ns()
        if not aligned.modalities & self.model_modalities:
            with self._lock:
                self._counts["skipped_no_modality"] += 1
            return
        t_compensate = time.perf_counter()
        aligned = aligned.compensated()
        compensate_ms = (time.perf_counter() - t_compensate) * 1e3
        out = self.pipeline.process(aligned)
        t0 = time.perf_counter()
        detections = out.detections
        if len(detections):
            detections = detections.select(detections.scores >= p.score_threshold)
        self.objects_pub.publish(detections_to_msg(detections, p.vehicle_frame))
        self.status_pub.publish(self.status(aligned, out.modalities))
        if self.markers_pub is not None:
            self.markers_pub.publish(detection_markers(detections, p.vehicle_frame))
        done_ns = time.monotonic_ns()
        publish_ms = (time.perf_counter() - t0) * 1e3

        timings = out.timings
        stages = {
            "sync_wait": timings.sync_wait_ms,
            "queue": (taken_ns - aligned.emitted_arrival_ns) / 1e6,
            "preprocess": compensate_ms + timings.accumulate_ms + timings.collate_ms,
            "inference": timings.model_ms,
            "postprocess": timings.decode_ms + publish_ms,
            "total": (done_ns - aligned.reference_arrival_ns) / 1e6,
        }
        processing_ms = stages["preprocess"] + stages["inference"] + stages["postprocess"]
        for stage, value in stages.items():
            self.stage_pubs[stage].publish(Float64(data=float(value)))
        self.times.record(processing_ms, aligned.stamp_ns, done_ns)

        used = "+".join(sorted(m.value for m in out.modalities)) or "none"
        with self._lock:
            self._counts["processed"] += 1
            if not len(detections):
                self._counts["published_empty"] += 1
            self._by_modalities[used] = self._by_modalities.get(used, 0) + 1
            self._frames_since_report += 1
            for m in self.expected - out.modalities:
                self._missing_since_report[m] = self._missing_since_report.get(m, 0) + 1
            self._last = {"done_ns": done_ns, "stamp_ns": aligned.stamp_ns,
                          "modalities": out.modalities, "missing": aligned.missing,
                          "processing_ms": processing_ms}

    def status(self, aligned: AlignedFrame, used: frozenset[Modality]) -> PerceptionStatus:
        """The frame's ``PerceptionStatus``: modalities the detector used, sensors present."""
        frame = aligned.frame
        sensors = []
        for name in self.sync.config.cameras + self.sync.config.radars:
            present = name in aligned.offsets_ns
            offset_ns = aligned.offsets_ns.get(name, 0)
            sensors.append(SensorStatus(
                name=name, modality=self.sync.modality_of[name].value, present=present,
                stamp_ns=frame.stamp_ns + offset_ns if present else 0,
                offset_ms=offset_ns / 1e6))
        lidar = self.sync.config.reference
        sensors.insert(0, SensorStatus(name=lidar, modality=Modality.LIDAR.value,
                                       present=frame.lidar is not None,
                                       stamp_ns=frame.stamp_ns if frame.lidar is not None else 0))
        return PerceptionStatus(
            header=Header(stamp=ns_to_stamp(frame.stamp_ns), frame_id=self.params.vehicle_frame),
            modalities=sorted(m.value for m in used), sensors=sensors,
            motion_compensated=aligned.motion_compensated,
            sync_wait_ms=(aligned.emitted_arrival_ns - aligned.reference_arrival_ns) / 1e6,
            total_latency_ms=(self.get_clock().now().nanoseconds - frame.stamp_ns) / 1e6)

    # --------------------------------------------------------------------------------------
    # Diagnostics (executor thread)
    # --------------------------------------------------------------------------------------

    def modalities_status(self) -> Any:
        """OK with every expected modality in every frame since the last report; WARN
        ``DEGRADED`` when the last frame, or any since the last report, missed some; ERROR when
        no frame came out for a while. Called once per report (it resets the counts)."""
        expected = "+".join(sorted(m.value for m in self.expected))
        with self._lock:
            last = dict(self._last) if self._last is not None else None
            by_modalities = dict(self._by_modalities)
            frames, missed = self._frames_since_report, self._missing_since_report
            self._frames_since_report, self._missing_since_report = 0, {}
        values: dict[str, object] = {"expected": expected,
                                     "frames_without_lidar": self.sync.frames_without_reference,
                                     "frames_by_modalities": ", ".join(
                                         f"{k}: {v}" for k, v in sorted(by_modalities.items()))}
        if last is None:
            return self.diagnostics.make_status("modalities", Health.WARN,
                                                "no frame yet: waiting for sensors",
                                                {"used": "", **values})
        used = last["modalities"]
        values = {"used": "+".join(sorted(m.value for m in used)) or "none",
                  "missing_sensors": " ".join(last["missing"]), **values}
        idle_s = (time.monotonic_ns() - last["done_ns"]) / 1e9
        limit_s = max(2 * self.params.diagnostics_period_s, 3 * last["processing_ms"] / 1e3)
        if idle_s > limit_s:
            lidar = self.params.lidar_name
            reason = ("the lidar is silent and frames without it are off"
                      if self.sync.config.fallback_reference is None else "no sensor input")
            return self.diagnostics.make_status(
                "modalities", Health.ERROR, f"no frame for {idle_s:.1f} s ({reason}; "
                f"{lidar} is the reference)", values)
        missing = self.expected - used
        if missing:
            text = "+".join(sorted(m.value for m in missing))
            return self.diagnostics.make_status(
                "modalities", Health.WARN,
                f"DEGRADED: {text} missing, running on {values['used']}", values)
        if missed:
            text = ", ".join(f"{m.value} missing in {n} of {frames} frames"
                             for m, n in sorted(missed.items(), key=lambda kv: kv[0].value))
            return self.diagnostics.make_status(
                "modalities", Health.WARN, f"DEGRADED: {text} since the last report", values)
        return self.diagnostics.make_status("modalities", Health.OK, values["used"], values)

    def processing_status(self) -> Any:
        """Processing time against ``max_processing_time_ms``: WARN on a miss, ERROR after
        ``processing_time_error_count`` consecutive misses."""
        return self.times.status(self.diagnostics)

    def frames_status(self) -> Any:
        """Frames processed, dropped while the model was busy (the newest frame wins), and
        failed; WARN when a frame failed since the last report."""
        with self._lock:
            counts = dict(self._counts)
        box = self.mailbox
        values = {**counts, "offered": box.offered, "dropped_busy": box.dropped,
                  "drop_ratio": f"{box.drop_ratio:.3f}"}
        if counts["failed"] > self._reported_failed:
            self._reported_failed = counts["failed"]
            return self.diagnostics.make_status("frames", Health.WARN,
                                                "frames failed in the model", values)
        message = (f"{box.dropped} of {box.offered} frames dropped while the model was busy"
                   if box.dropped else "no frame dropped")
        return self.diagnostics.make_status("frames", Health.OK, message, values)

    # --------------------------------------------------------------------------------------

    def destroy_node(self) -> None:
        self._stopping.set()
        self.mailbox.close()
        if self.worker.is_alive():
            self.worker.join(timeout=WORKER_JOIN_S)
        super().destroy_node()


def main(argv: list[str] | None = None) -> int:
    return run_node(DetectorNode, argv=argv)


if __name__ == "__main__":
    raise SystemExit(main())

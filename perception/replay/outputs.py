"""The output messages of one replayed frame, on the output bag's topics:

* ``/perception/detections``: ``vision_msgs/Detection3DArray``;
* ``/perception/tracks``: ``fusion_perception_msgs/TrackedObjectArray`` (with a tracker);
* ``/perception/detections/markers``, ``/perception/tracks/markers``,
  ``/perception/ground_truth/markers`` (with ground truth): ``visualization_msgs/MarkerArray``;
* ``/perception/status``: ``fusion_perception_msgs/PerceptionStatus``;
* ``/tf_static``: ``tf2_msgs/TFMessage``, once, first (written by the runner).

Headers carry the frame's lidar stamp and the vehicle frame. The status lists the modalities
the detector used, each configured sensor (present or not, its offset from the lidar stamp),
whether the points were motion compensated, and the time the frame waited in the sync on the
log clock. Wall-clock processing times are not written (``total_latency_ms`` and the sensors'
``latency_ms`` are 0): the bag is the same bytes on every run; they are in ``summary.json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..pipeline import PipelineOutput
from ..rosmsg.detections import detections_to_msg, tracks_to_msg
from ..rosmsg.factory import MessageFactory, header_msg
from ..rosmsg.markers import detection_markers, ground_truth_markers, track_markers
from ..rosmsg.topics import PERCEPTION_STATUS
from ..types import Boxes3D, Modality
from .bag import RELIABLE_QOS, TopicQos

DETECTIONS = "/perception/detections"
TRACKS = "/perception/tracks"
DETECTION_MARKERS = "/perception/detections/markers"
TRACK_MARKERS = "/perception/tracks/markers"
GROUND_TRUTH_MARKERS = "/perception/ground_truth/markers"
STATUS = PERCEPTION_STATUS
"""The topic of the sync node's status, so a replay's bag reads as a live run's."""


def frame_outputs(factory: MessageFactory, output: PipelineOutput, vehicle_frame: str,
                  sensors: Mapping[str, Modality], ground_truth: Boxes3D | None
                  ) -> list[tuple[str, Any, TopicQos]]:
    """``(topic, message, QoS)`` of one frame (see the module doc); ``sensors``: the
    configured sensors and their modality."""
    out = [(DETECTIONS, detections_to_msg(factory, output.detections, vehicle_frame)),
           (DETECTION_MARKERS, detection_markers(factory, output.detections, vehicle_frame))]
    if output.tracks is not None:
        out += [(TRACKS, tracks_to_msg(factory, output.tracks, vehicle_frame)),
                (TRACK_MARKERS, track_markers(factory, output.tracks, vehicle_frame))]
    if ground_truth is not None:
        out.append((GROUND_TRUTH_MARKERS, ground_truth_markers(factory, ground_truth,
                                                               output.stamp_ns, vehicle_frame)))
    out.append((STATUS, status_msg(factory, output, vehicle_frame, sensors)))
    return [(topic, msg, RELIABLE_QOS) for topic, msg in out]


def sensor_stamps(output: PipelineOutput) -> dict[str, int]:
    """Stamp of every sensor message in the frame, by sensor name."""
    frame = output.frame
    stamps = {name: image.stamp_ns for name, image in frame.cameras.items()}
    stamps.update({name: scan.stamp_ns for name, scan in frame.radars.items()})
    if frame.lidar is not None:
        stamps[frame.lidar.sensor_name] = frame.lidar.stamp_ns
    return stamps


def status_msg(factory: MessageFactory, output: PipelineOutput, vehicle_frame: str,
               sensors: Mapping[str, Modality]) -> Any:
    """``fusion_perception_msgs/PerceptionStatus`` of one frame (see the module doc)."""
    stamps = sensor_stamps(output)
    statuses = []
    for name, modality in sensors.items():
        stamp = stamps.get(name)
        offset_ms = (stamp - output.stamp_ns) / 1e6 if stamp is not None else 0.0
        statuses.append(factory.new(
            "fusion_perception_msgs/msg/SensorStatus", name=name, modality=modality.value,
            present=stamp is not None, stamp_ns=int(stamp or 0), offset_ms=offset_ms,
            latency_ms=0.0))
    return factory.new(
        "fusion_perception_msgs/msg/PerceptionStatus",
        header=header_msg(factory, output.stamp_ns, vehicle_frame),
        modalities=sorted(m.value for m in output.modalities), sensors=statuses,
        motion_compensated=bool(output.motion_compensated),
        sync_wait_ms=float(output.timings.sync_wait_ms), total_latency_ms=0.0)

"""Topic names and frame ids (the defaults; every topic can be remapped at launch).

The sensor topics and frame ids are :mod:`perception.rosmsg.topics` (shared with log replay
and the bag converters); sensor names map to topic and frame names in lower case: camera
``FRONT`` publishes ``/sensors/camera/front/image_raw`` in frame ``front_optical``.
"""

from __future__ import annotations

from perception.rosmsg.topics import (
    EGO_POSE,
    LIDAR_POINTS,
    PERCEPTION_STATUS,
    SIM_GROUND_TRUTH,
    TF_STATIC,
    camera_compressed,
    camera_image,
    camera_info,
    optical_frame,
    radar_points,
    sensor_frame,
)
__all__ = ["DEBUG_CYCLIC_TIME", "DEBUG_PIPELINE_LATENCY", "DEBUG_PROCESSING_TIME",
           "DETECTOR_OBJECTS", "DIAGNOSTICS", "EGO_POSE", "GROUND_TRUTH", "GROUND_TRUTH_MARKERS",
           "LIDAR_POINTS", "OUTPUT_MARKERS", "OUTPUT_OBJECTS", "OUTPUT_STATUS", "OUTPUT_TRACKS",
           "PERCEPTION_STATUS", "TF_STATIC", "TRACKER_OBJECTS", "TRACKER_TRACKS",
           "camera_compressed", "camera_image", "camera_info", "debug_stage_time",
           "optical_frame", "radar_points", "sensor_frame"]

GROUND_TRUTH = SIM_GROUND_TRUTH
GROUND_TRUTH_MARKERS = "/sim/ground_truth/markers"
DIAGNOSTICS = "/diagnostics"

# Outputs of the detector and tracker nodes, relative to the node ("~" = /<node name>).
OUTPUT_OBJECTS = "~/output/objects"
OUTPUT_MARKERS = "~/output/markers"
OUTPUT_STATUS = "~/output/status"
OUTPUT_TRACKS = "~/output/tracks"
DEBUG_PROCESSING_TIME = "~/debug/processing_time_ms"
DEBUG_PIPELINE_LATENCY = "~/debug/pipeline_latency_ms"
DEBUG_CYCLIC_TIME = "~/debug/cyclic_time_ms"
DETECTOR_OBJECTS = "/detector/output/objects"
"""``~/output/objects`` of a detector node named ``detector`` (the tracker's default input)."""
TRACKER_TRACKS = "/tracker/output/tracks"
TRACKER_OBJECTS = "/tracker/output/objects"


def debug_stage_time(stage: str) -> str:
    """Per-stage processing time topic: ``~/debug/processing_time/<stage>_ms``."""
    return f"~/debug/processing_time/{stage}_ms"

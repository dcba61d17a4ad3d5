"""Evaluation: Waymo detection metrics (AP/APH, LEVEL_1/LEVEL_2, range breakdown) and
tracking metrics (MOTA/MOTP/IDF1), equal to the official Waymo evaluator.

See docs/metrics.md for the rules and how they were confirmed.
"""

from .detection import (
    BreakdownMetrics,
    DetectionConfig,
    DetectionResult,
    InputCounts,
    evaluate_detection,
    evaluate_waymo,
    mean_average_precision,
)
from .frames import FrameKey
from .tracking import TrackingMetrics, TrackingResult, evaluate_tracking, tracks_to_detections

__all__ = [
    "BreakdownMetrics", "DetectionConfig", "DetectionResult", "InputCounts",
    "evaluate_detection", "evaluate_waymo", "mean_average_precision", "FrameKey",
    "TrackingMetrics", "TrackingResult", "evaluate_tracking", "tracks_to_detections",
]

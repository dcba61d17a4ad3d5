"""Boxes -> ``visualization_msgs/MarkerArray`` for RViz, as rclpy messages.

The marker layout (a ``DELETEALL`` first, a ``CUBE`` and a label per box, class colours) is
:mod:`perception.rosmsg.markers`, shared with log replay; the writers here build rclpy
messages.
"""

from __future__ import annotations

import numpy as np
from visualization_msgs.msg import MarkerArray

from perception.rosmsg import markers as _shared
from perception.rosmsg.markers import BOX_ALPHA, COLOR_OF_CLASS, LABEL_HEIGHT_M, OTHER_COLOR
from perception.types import Boxes3D, Detections, Tracks

from .messages import RCLPY

__all__ = ["BOX_ALPHA", "COLOR_OF_CLASS", "LABEL_HEIGHT_M", "OTHER_COLOR", "boxes_to_markers",
           "detection_markers", "ground_truth_markers", "track_markers"]


def boxes_to_markers(boxes: np.ndarray, labels: np.ndarray, texts: list[str], stamp_ns: int,
                     frame_id: str, ns: str, lifetime_s: float = 0.0) -> MarkerArray:
    """(N, 7) boxes, (N,) labels and N label texts -> MarkerArray."""
    return _shared.boxes_to_markers(RCLPY, boxes, labels, texts, stamp_ns, frame_id, ns,
                                    lifetime_s)


def ground_truth_markers(boxes: Boxes3D, stamp_ns: int, frame_id: str,
                         ns: str = "ground_truth") -> MarkerArray:
    return _shared.ground_truth_markers(RCLPY, boxes, stamp_ns, frame_id, ns)


def detection_markers(detections: Detections, frame_id: str,
                      ns: str = "detections") -> MarkerArray:
    return _shared.detection_markers(RCLPY, detections, frame_id, ns)


def track_markers(tracks: Tracks, frame_id: str, ns: str = "tracks") -> MarkerArray:
    return _shared.track_markers(RCLPY, tracks, frame_id, ns)

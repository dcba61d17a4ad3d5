"""Outputs of the detector and tracker nodes beyond :mod:`.detections` and :mod:`.markers`:
tracks as ``vision_msgs/Detection3DArray`` (track id in ``Detection3D.id``), velocity arrows
and track trails for ``visualization_msgs/MarkerArray``, as rclpy messages.

The layouts are :mod:`perception.rosmsg.detections` and :mod:`perception.rosmsg.markers`
(shared with log replay). ``vision_msgs/Detection3D`` has no velocity field, so detections
carry their velocity in the markers (an arrow per moving box) and tracks in
``TrackedObject.velocity``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from visualization_msgs.msg import Marker, MarkerArray

from perception.rosmsg import markers as _shared
from perception.rosmsg.markers import ARROW_MIN_SPEED_MPS, ARROW_SHAFT_M, TRAIL_WIDTH_M
from perception.types import Detections, Tracks

from .detections import tracks_to_detections_msg
from .messages import RCLPY

__all__ = ["ARROW_MIN_SPEED_MPS", "ARROW_SHAFT_M", "TRAIL_WIDTH_M", "detection_markers",
           "track_markers", "tracks_to_detections_msg", "trail_markers", "velocity_arrows"]


def velocity_arrows(boxes: np.ndarray, velocities: np.ndarray, labels: np.ndarray,
                    header: Any, ns: str) -> list[Marker]:
    """One ``ARROW`` per box moving faster than :data:`ARROW_MIN_SPEED_MPS`, from the box
    centre to where it will be in one second (vehicle frame, m/s -> m)."""
    return _shared.velocity_arrows(RCLPY, boxes, velocities, labels, header, ns)


def trail_markers(trails: Mapping[int, np.ndarray], label_of: Mapping[int, int],
                  z_of: Mapping[int, float], header: Any, ns: str) -> list[Marker]:
    """One ``LINE_STRIP`` per track id with at least two past positions ((K, 2) xy, vehicle
    frame of ``header``), at height ``z_of[id]``; marker id = track id (low 31 bits)."""
    return _shared.trail_markers(RCLPY, trails, label_of, z_of, header, ns)


def detection_markers(detections: Detections, frame_id: str,
                      ns: str = "detections") -> MarkerArray:
    """Boxes in class colours with ``"<class> <score>"`` labels, plus velocity arrows where
    the model predicts velocities."""
    return _shared.detection_markers(RCLPY, detections, frame_id, ns, arrows=True)


def track_markers(tracks: Tracks, frame_id: str, trails: Mapping[int, np.ndarray] | None = None,
                  ns: str = "tracks") -> MarkerArray:
    """Boxes with ``"<class> #<id>"`` labels, velocity arrows, and each track's trail
    (``trails``: track id -> (K, 2) past xy in the vehicle frame of ``tracks.stamp_ns``)."""
    return _shared.track_markers(RCLPY, tracks, frame_id, ns, arrows=True, trails=trails)

""":class:`Detections`, :class:`Boxes3D` and :class:`Tracks` <-> ``vision_msgs/Detection3DArray``
and ``fusion_perception_msgs/TrackedObjectArray`` for rclpy messages.

Decoding and the message layouts are :mod:`perception.rosmsg.detections` (shared with log
replay; see it for how boxes, classes, scores and ids are carried); the writers here build
rclpy messages.
"""

from __future__ import annotations

import numpy as np
from vision_msgs.msg import BoundingBox3D, Detection3DArray

from fusion_perception_msgs.msg import TrackedObjectArray
from perception.rosmsg import detections as _shared
from perception.rosmsg.detections import (
    bbox_to_box,
    class_name,
    class_value,
    msg_to_boxes,
    msg_to_detections,
    msg_to_tracks,
    object_ids,
)
from perception.types import Boxes3D, Detections, Tracks

from .messages import RCLPY

__all__ = ["bbox_to_box", "box_to_bbox", "boxes_to_msg", "class_name", "class_value",
           "detections_to_msg", "msg_to_boxes", "msg_to_detections", "msg_to_tracks",
           "object_ids", "tracks_to_detections_msg", "tracks_to_msg"]


def box_to_bbox(box: np.ndarray) -> BoundingBox3D:
    """One (7,) box -> ``BoundingBox3D``."""
    return _shared.box_to_bbox(RCLPY, box)


def detections_to_msg(detections: Detections, frame_id: str) -> Detection3DArray:
    """:class:`Detections` -> ``Detection3DArray`` (ids left empty)."""
    return _shared.detections_to_msg(RCLPY, detections, frame_id)


def boxes_to_msg(boxes: Boxes3D, stamp_ns: int, frame_id: str) -> Detection3DArray:
    """Ground-truth :class:`Boxes3D` -> ``Detection3DArray`` with score 1 and the object ids."""
    return _shared.boxes_to_msg(RCLPY, boxes, stamp_ns, frame_id)


def tracks_to_msg(tracks: Tracks, frame_id: str) -> TrackedObjectArray:
    """:class:`Tracks` -> ``TrackedObjectArray`` (covariances row-major when present)."""
    return _shared.tracks_to_msg(RCLPY, tracks, frame_id)


def tracks_to_detections_msg(tracks: Tracks, frame_id: str) -> Detection3DArray:
    """:class:`Tracks` -> ``Detection3DArray``: the track id (decimal) in ``id``, the track
    score as the hypothesis score, so tools that read only ``vision_msgs`` see tracks."""
    return _shared.tracks_to_detections_msg(RCLPY, tracks, frame_id)

"""Boxes -> ``visualization_msgs/MarkerArray`` for RViz.

One message per frame: a ``DELETEALL`` marker first (so boxes of the previous frame never
linger), then one ``CUBE`` per box (pose = box centre and heading, scale = l, w, h) coloured
by class, and one ``TEXT_VIEW_FACING`` label per box above it (class and id or score).
Marker ids are the box index, in namespace ``ns`` (boxes) and ``ns + "/labels"``.
"""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point, Pose, Vector3
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from perception.types import Boxes3D, Detections, ObjectClass, Tracks

from .detections import box_to_bbox, class_name
from .stamps import ns_to_stamp

COLOR_OF_CLASS = {
    ObjectClass.VEHICLE: (0.1, 0.5, 1.0),
    ObjectClass.PEDESTRIAN: (1.0, 0.3, 0.1),
    ObjectClass.CYCLIST: (0.2, 0.9, 0.2),
}
"""RGB per class; other classes are grey."""
OTHER_COLOR = (0.6, 0.6, 0.6)
BOX_ALPHA = 0.4
LABEL_HEIGHT_M = 0.6


def boxes_to_markers(boxes: np.ndarray, labels: np.ndarray, texts: list[str], stamp_ns: int,
                     frame_id: str, ns: str, lifetime_s: float = 0.0) -> MarkerArray:
    """(N, 7) boxes, (N,) labels and N label texts -> MarkerArray (see the module doc)."""
    header = Header(stamp=ns_to_stamp(stamp_ns), frame_id=frame_id)
    lifetime = Duration(sec=int(lifetime_s), nanosec=int((lifetime_s % 1.0) * 1e9))
    markers = [Marker(header=header, ns=ns, id=0, action=Marker.DELETEALL)]
    for i, (box, label, text) in enumerate(zip(boxes, labels, texts)):
        r, g, b = COLOR_OF_CLASS.get(int(label), OTHER_COLOR)
        bbox = box_to_bbox(box)
        markers.append(Marker(
            header=header, ns=ns, id=i, type=Marker.CUBE, action=Marker.ADD, pose=bbox.center,
            scale=bbox.size, color=ColorRGBA(r=r, g=g, b=b, a=BOX_ALPHA), lifetime=lifetime))
        top = bbox.center.position
        markers.append(Marker(
            header=header, ns=f"{ns}/labels", id=i, type=Marker.TEXT_VIEW_FACING,
            action=Marker.ADD, text=text, lifetime=lifetime,
            pose=Pose(position=Point(x=top.x, y=top.y, z=top.z + float(box[5]) / 2 + 0.5)),
            scale=Vector3(x=0.0, y=0.0, z=LABEL_HEIGHT_M),
            color=ColorRGBA(r=r, g=g, b=b, a=1.0)))
    return MarkerArray(markers=markers)


def ground_truth_markers(boxes: Boxes3D, stamp_ns: int, frame_id: str,
                         ns: str = "ground_truth") -> MarkerArray:
    ids = boxes.ids if boxes.ids is not None else range(len(boxes))
    texts = [f"{class_name(label)} {object_id}" for label, object_id in zip(boxes.labels, ids)]
    return boxes_to_markers(boxes.boxes, boxes.labels, texts, stamp_ns, frame_id, ns)


def detection_markers(detections: Detections, frame_id: str,
                      ns: str = "detections") -> MarkerArray:
    texts = [f"{class_name(label)} {score:.2f}"
             for label, score in zip(detections.labels, detections.scores)]
    return boxes_to_markers(detections.boxes, detections.labels, texts, detections.stamp_ns,
                            frame_id, ns)


def track_markers(tracks: Tracks, frame_id: str, ns: str = "tracks") -> MarkerArray:
    texts = [f"{class_name(label)} #{track_id}"
             for label, track_id in zip(tracks.labels, tracks.ids)]
    return boxes_to_markers(tracks.boxes, tracks.labels, texts, tracks.stamp_ns, frame_id, ns)

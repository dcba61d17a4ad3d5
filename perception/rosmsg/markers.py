"""Boxes -> ``visualization_msgs/MarkerArray`` for RViz and Foxglove.

One message per frame: a ``DELETEALL`` marker first (so boxes of the previous frame never
linger), then one ``CUBE`` per box (pose = box centre and heading, scale = l, w, h) coloured
by class, and one ``TEXT_VIEW_FACING`` label per box above it (class and id or score).
Marker ids are the box index, in namespace ``ns`` (boxes) and ``ns + "/labels"``.

On request (the detector and tracker nodes ask), an ``ARROW`` per moving box in
``ns + "/velocity"`` (``vision_msgs/Detection3D`` has no velocity field, so the markers carry
it) and a ``LINE_STRIP`` trail per track in ``ns + "/trails"``. Loops run once per object,
never per point.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..types import Boxes3D, Detections, ObjectClass, Tracks
from .detections import box_to_bbox, class_name
from .factory import MessageFactory, header_msg

COLOR_OF_CLASS = {
    ObjectClass.VEHICLE: (0.1, 0.5, 1.0),
    ObjectClass.PEDESTRIAN: (1.0, 0.3, 0.1),
    ObjectClass.CYCLIST: (0.2, 0.9, 0.2),
}
"""RGB per class; other classes are grey."""
OTHER_COLOR = (0.6, 0.6, 0.6)
BOX_ALPHA = 0.4
LABEL_HEIGHT_M = 0.6
ARROW_MIN_SPEED_MPS = 0.5
"""Slower boxes get no velocity arrow (noise around standstill)."""
ARROW_SHAFT_M = 0.15
TRAIL_WIDTH_M = 0.15
ARROW, CUBE, LINE_STRIP, TEXT_VIEW_FACING = 0, 1, 4, 9
ADD, DELETEALL = 0, 3
"""``visualization_msgs/Marker`` constants."""


def _color(factory: MessageFactory, rgb: tuple[float, float, float], alpha: float) -> Any:
    r, g, b = rgb
    return factory.new("std_msgs/msg/ColorRGBA", r=r, g=g, b=b, a=alpha)


def _box_markers(factory: MessageFactory, boxes: np.ndarray, labels: np.ndarray,
                 texts: list[str], header: Any, ns: str, lifetime_s: float) -> list[Any]:
    lifetime = factory.new("builtin_interfaces/msg/Duration", sec=int(lifetime_s),
                           nanosec=int((lifetime_s % 1.0) * 1e9))
    markers = [factory.new("visualization_msgs/msg/Marker", header=header, ns=ns, id=0,
                           action=DELETEALL)]
    for i, (box, label, text) in enumerate(zip(boxes, labels, texts)):
        rgb = COLOR_OF_CLASS.get(int(label), OTHER_COLOR)
        bbox = box_to_bbox(factory, box)
        markers.append(factory.new(
            "visualization_msgs/msg/Marker", header=header, ns=ns, id=i, type=CUBE,
            action=ADD, pose=bbox.center, scale=bbox.size, color=_color(factory, rgb, BOX_ALPHA),
            lifetime=lifetime))
        top = bbox.center.position
        label_pose = factory.new(
            "geometry_msgs/msg/Pose",
            position=factory.new("geometry_msgs/msg/Point", x=top.x, y=top.y,
                                 z=top.z + float(box[5]) / 2 + 0.5))
        markers.append(factory.new(
            "visualization_msgs/msg/Marker", header=header, ns=f"{ns}/labels", id=i,
            type=TEXT_VIEW_FACING, action=ADD, text=text, lifetime=lifetime, pose=label_pose,
            scale=factory.new("geometry_msgs/msg/Vector3", x=0.0, y=0.0, z=LABEL_HEIGHT_M),
            color=_color(factory, rgb, 1.0)))
    return markers


def boxes_to_markers(factory: MessageFactory, boxes: np.ndarray, labels: np.ndarray,
                     texts: list[str], stamp_ns: int, frame_id: str, ns: str,
                     lifetime_s: float = 0.0) -> Any:
    """(N, 7) boxes, (N,) labels and N label texts -> MarkerArray (see the module doc)."""
    header = header_msg(factory, stamp_ns, frame_id)
    return factory.new("visualization_msgs/msg/MarkerArray",
                       markers=_box_markers(factory, boxes, labels, texts, header, ns,
                                            lifetime_s))


def _point(factory: MessageFactory, x: float, y: float, z: float) -> Any:
    return factory.new("geometry_msgs/msg/Point", x=x, y=y, z=z)


def velocity_arrows(factory: MessageFactory, boxes: np.ndarray, velocities: np.ndarray,
                    labels: np.ndarray, header: Any, ns: str) -> list[Any]:
    """One ``ARROW`` per box moving faster than :data:`ARROW_MIN_SPEED_MPS`, from the box
    centre to where it will be in one second (vehicle frame, m/s -> m)."""
    markers = []
    for i, (box, velocity, label) in enumerate(zip(boxes, velocities, labels)):
        vx, vy = (float(v) for v in velocity)
        if not np.isfinite([vx, vy]).all() or np.hypot(vx, vy) < ARROW_MIN_SPEED_MPS:
            continue
        x, y, z = (float(v) for v in box[:3])
        markers.append(factory.new(
            "visualization_msgs/msg/Marker", header=header, ns=ns, id=i, type=ARROW,
            action=ADD, points=[_point(factory, x, y, z), _point(factory, x + vx, y + vy, z)],
            scale=factory.new("geometry_msgs/msg/Vector3", x=ARROW_SHAFT_M,
                              y=2 * ARROW_SHAFT_M, z=2 * ARROW_SHAFT_M),
            color=_color(factory, COLOR_OF_CLASS.get(int(label), OTHER_COLOR), 1.0)))
    return markers


def trail_markers(factory: MessageFactory, trails: Mapping[int, np.ndarray],
                  label_of: Mapping[int, int], z_of: Mapping[int, float], header: Any,
                  ns: str) -> list[Any]:
    """One ``LINE_STRIP`` per track id with at least two past positions ((K, 2) xy, vehicle
    frame of ``header``), at height ``z_of[id]``; marker id = track id (low 31 bits)."""
    markers = []
    for track_id, xy in trails.items():
        if len(xy) < 2 or track_id not in label_of:
            continue
        z = float(z_of.get(track_id, 0.0))
        markers.append(factory.new(
            "visualization_msgs/msg/Marker", header=header, ns=ns,
            id=int(track_id) & 0x7FFFFFFF, type=LINE_STRIP, action=ADD,
            scale=factory.new("geometry_msgs/msg/Vector3", x=TRAIL_WIDTH_M, y=0.0, z=0.0),
            points=[_point(factory, float(px), float(py), z)
                    for px, py in np.asarray(xy)[:, :2]],
            color=_color(factory, COLOR_OF_CLASS.get(int(label_of[track_id]), OTHER_COLOR),
                         0.8)))
    return markers


def ground_truth_markers(factory: MessageFactory, boxes: Boxes3D, stamp_ns: int,
                         frame_id: str, ns: str = "ground_truth") -> Any:
    ids = boxes.ids if boxes.ids is not None else range(len(boxes))
    texts = [f"{class_name(label)} {object_id}" for label, object_id in zip(boxes.labels, ids)]
    return boxes_to_markers(factory, boxes.boxes, boxes.labels, texts, stamp_ns, frame_id, ns)


def detection_markers(factory: MessageFactory, detections: Detections, frame_id: str,
                      ns: str = "detections", *, arrows: bool = False) -> Any:
    """Boxes in class colours with ``"<class> <score>"`` labels; with ``arrows``, velocity
    arrows where the model predicts velocities."""
    texts = [f"{class_name(label)} {score:.2f}"
             for label, score in zip(detections.labels, detections.scores)]
    header = header_msg(factory, detections.stamp_ns, frame_id)
    markers = _box_markers(factory, detections.boxes, detections.labels, texts, header, ns,
                           0.0)
    if arrows and detections.velocities is not None:
        markers += velocity_arrows(factory, detections.boxes, detections.velocities,
                                   detections.labels, header, f"{ns}/velocity")
    return factory.new("visualization_msgs/msg/MarkerArray", markers=markers)


def track_markers(factory: MessageFactory, tracks: Tracks, frame_id: str,
                  ns: str = "tracks", *, arrows: bool = False,
                  trails: Mapping[int, np.ndarray] | None = None) -> Any:
    """Boxes with ``"<class> #<id>"`` labels; with ``arrows``, velocity arrows; with
    ``trails`` (track id -> (K, 2) past xy in the vehicle frame of ``tracks.stamp_ns``), each
    track's trail."""
    texts = [f"{class_name(label)} #{track_id}"
             for label, track_id in zip(tracks.labels, tracks.ids)]
    header = header_msg(factory, tracks.stamp_ns, frame_id)
    markers = _box_markers(factory, tracks.boxes, tracks.labels, texts, header, ns, 0.0)
    if arrows:
        markers += velocity_arrows(factory, tracks.boxes, tracks.velocities, tracks.labels,
                                   header, f"{ns}/velocity")
    if trails:
        ids = [int(i) for i in tracks.ids]
        label_of = dict(zip(ids, (int(v) for v in tracks.labels)))
        z_of = {i: float(box[2] - box[5] / 2) for i, box in zip(ids, tracks.boxes)}
        markers += trail_markers(factory, trails, label_of, z_of, header, f"{ns}/trails")
    return factory.new("visualization_msgs/msg/MarkerArray", markers=markers)

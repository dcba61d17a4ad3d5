""":class:`Detections`, :class:`Boxes3D` and :class:`Tracks` <-> ``vision_msgs/Detection3DArray``
and ``fusion_perception_msgs/TrackedObjectArray``.

A box ``(x, y, z, l, w, h, heading)`` (vehicle frame, centre z) becomes a ``BoundingBox3D``
with ``center.position = (x, y, z)``, ``center.orientation`` the yaw quaternion of
``heading`` and ``size = (l, w, h)``. The class goes in ``results[0].hypothesis.class_id`` as
the lower-case :class:`ObjectClass` name (``"vehicle"``, ``"pedestrian"``, ``"cyclist"``),
the score in ``results[0].hypothesis.score``; the object id (ground truth, tracks) in
``Detection3D.id``. Velocities have no field in vision_msgs and are not carried there; tracks
carry them in ``TrackedObject.velocity``.

These loops run once per object (tens to hundreds per frame), never per point.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ValidationError
from ..geometry import yaw_to_quaternion
from ..types import BOX_DIM, Boxes3D, Detections, Modality, ObjectClass, Tracks, wrap_heading
from .factory import MessageFactory, header_msg
from .stamps import conversion_error, stamp_to_ns


def class_name(label: int) -> str:
    """:class:`ObjectClass` value -> ``class_id`` string (``"vehicle"``)."""
    return ObjectClass(int(label)).name.lower()


def class_value(class_id: str) -> int:
    """``class_id`` string (a class name in any case, or its integer value) -> class value.

    Raises:
        ValueError: not a known class.
    """
    text = class_id.strip()
    if text.lstrip("-").isdigit():
        return int(ObjectClass(int(text)))
    return int(ObjectClass[text.upper()])


def box_to_bbox(factory: MessageFactory, box: np.ndarray) -> Any:
    """One (7,) box -> ``BoundingBox3D``."""
    x, y, z, length, width, height, heading = (float(v) for v in box)
    w, qx, qy, qz = yaw_to_quaternion(heading)
    center = factory.new(
        "geometry_msgs/msg/Pose", position=factory.new("geometry_msgs/msg/Point", x=x, y=y, z=z),
        orientation=factory.new("geometry_msgs/msg/Quaternion", x=float(qx), y=float(qy),
                                z=float(qz), w=float(w)))
    return factory.new("vision_msgs/msg/BoundingBox3D", center=center,
                       size=factory.new("geometry_msgs/msg/Vector3", x=length, y=width,
                                        z=height))


MINUS_PI_F32 = float(np.float32(-np.pi))
"""-pi rounded to float32 lies just below -pi; float32 boxes wrapped to [-pi, pi) hold it."""


def bbox_to_box(bbox: Any) -> np.ndarray:
    """``BoundingBox3D`` -> (7,) float64 box; heading is the yaw of the orientation."""
    p, q, s = bbox.center.position, bbox.center.orientation, bbox.size
    heading = wrap_heading(np.arctan2(2.0 * (q.w * q.z + q.x * q.y),
                                      1.0 - 2.0 * (q.y * q.y + q.z * q.z)))
    if abs(heading - (MINUS_PI_F32 + 2.0 * np.pi)) < 1e-12:
        # a float32 heading of -pi comes back as the same angle just below +pi: give back
        # the value that was sent, so float32 boxes survive the message exactly
        heading = MINUS_PI_F32
    return np.array([p.x, p.y, p.z, s.x, s.y, s.z, heading])


def _detection(factory: MessageFactory, box: np.ndarray, label: int, score: float,
               object_id: str, header: Any) -> Any:
    bbox = box_to_bbox(factory, box)
    hypothesis = factory.new(
        "vision_msgs/msg/ObjectHypothesisWithPose",
        hypothesis=factory.new("vision_msgs/msg/ObjectHypothesis", class_id=class_name(label),
                               score=float(score)),
        pose=factory.new("geometry_msgs/msg/PoseWithCovariance", pose=bbox.center))
    return factory.new("vision_msgs/msg/Detection3D", header=header, results=[hypothesis],
                       bbox=bbox, id=object_id)


def detections_to_msg(factory: MessageFactory, detections: Detections, frame_id: str) -> Any:
    """:class:`Detections` -> ``Detection3DArray`` (ids left empty)."""
    header = header_msg(factory, detections.stamp_ns, frame_id)
    return factory.new("vision_msgs/msg/Detection3DArray", header=header, detections=[
        _detection(factory, box, label, score, "", header)
        for box, label, score in zip(detections.boxes, detections.labels, detections.scores)])


def boxes_to_msg(factory: MessageFactory, boxes: Boxes3D, stamp_ns: int, frame_id: str) -> Any:
    """Ground-truth :class:`Boxes3D` -> ``Detection3DArray`` with score 1 and the object ids."""
    header = header_msg(factory, stamp_ns, frame_id)
    ids = boxes.ids if boxes.ids is not None else [""] * len(boxes)
    return factory.new("vision_msgs/msg/Detection3DArray", header=header, detections=[
        _detection(factory, box, label, 1.0, str(object_id), header)
        for box, label, object_id in zip(boxes.boxes, boxes.labels, ids)])


def tracks_to_detections_msg(factory: MessageFactory, tracks: Tracks, frame_id: str) -> Any:
    """:class:`Tracks` -> ``Detection3DArray``: the track id (decimal) in ``id``, the track
    score as the hypothesis score, so tools that read only ``vision_msgs`` see tracks."""
    header = header_msg(factory, tracks.stamp_ns, frame_id)
    return factory.new("vision_msgs/msg/Detection3DArray", header=header, detections=[
        _detection(factory, box, label, score, str(int(track_id)), header)
        for box, label, score, track_id in zip(tracks.boxes, tracks.labels, tracks.scores,
                                               tracks.ids)])


def _read_detections(msg: Any, topic: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(msg.detections)
    boxes = np.zeros((n, BOX_DIM))
    scores = np.zeros(n, np.float32)
    labels = np.zeros(n, np.int32)
    for i, detection in enumerate(msg.detections):
        if not detection.results:
            raise conversion_error(topic, msg, f"detection {i} has no hypothesis")
        best = max(detection.results, key=lambda r: r.hypothesis.score).hypothesis
        try:
            labels[i] = class_value(best.class_id)
        except (KeyError, ValueError):
            raise conversion_error(topic, msg, f"detection {i}: unknown class_id "
                                               f"{best.class_id!r}") from None
        scores[i] = best.score
        boxes[i] = bbox_to_box(detection.bbox)
    return boxes.astype(np.float32), scores, labels


def msg_to_detections(msg: Any, topic: str = "",
                      modalities: frozenset[Modality] = frozenset()) -> Detections:
    """``Detection3DArray`` -> :class:`Detections`; each detection's best-scoring hypothesis
    gives its class and score.

    Raises:
        ConversionError: a detection without hypotheses, an unknown class, a non-finite box or
            a score outside [0, 1].
    """
    boxes, scores, labels = _read_detections(msg, topic)
    try:
        return Detections(stamp_to_ns(msg.header.stamp), boxes, scores, labels,
                          modalities=modalities)
    except ValidationError as exc:
        raise conversion_error(topic, msg, str(exc)) from None


def object_ids(texts: list[str]) -> np.ndarray:
    """Object ids read from ``Detection3D.id``: int64 when every id is an integer (the
    simulator's), else strings (Waymo's)."""
    if texts and all(t.strip().lstrip("-").isdigit() for t in texts):
        return np.array([int(t) for t in texts], np.int64)
    return np.array(texts, dtype=str)


def msg_to_boxes(msg: Any, topic: str = "") -> Boxes3D:
    """Ground-truth ``Detection3DArray`` -> :class:`Boxes3D` with the object ids (point counts
    and difficulty are not carried by the message).

    Raises:
        ConversionError: as :func:`msg_to_detections`, or duplicate ids.
    """
    boxes, _, labels = _read_detections(msg, topic)
    try:
        return Boxes3D(boxes, labels, ids=object_ids([d.id for d in msg.detections]))
    except ValidationError as exc:
        raise conversion_error(topic, msg, str(exc)) from None


def tracks_to_msg(factory: MessageFactory, tracks: Tracks, frame_id: str) -> Any:
    """:class:`Tracks` -> ``TrackedObjectArray`` (covariances row-major when present)."""
    header = header_msg(factory, tracks.stamp_ns, frame_id)
    objects = []
    for i in range(len(tracks)):
        covariance = tracks.covariances[i] if tracks.covariances is not None else None
        vx, vy = (float(v) for v in tracks.velocities[i])
        objects.append(factory.new(
            "fusion_perception_msgs/msg/TrackedObject",
            track_id=int(tracks.ids[i]), state=int(tracks.states[i]),
            label=int(tracks.labels[i]), score=float(tracks.scores[i]),
            age_frames=int(tracks.ages[i]), hits=int(tracks.hits[i]),
            bbox=box_to_bbox(factory, tracks.boxes[i]),
            velocity=factory.new("geometry_msgs/msg/Vector3", x=vx, y=vy, z=0.0),
            state_dim=0 if covariance is None else int(covariance.shape[0]),
            covariance=np.zeros(0, np.float32) if covariance is None
            else covariance.reshape(-1).astype(np.float32)))
    return factory.new("fusion_perception_msgs/msg/TrackedObjectArray", header=header,
                       objects=objects)


def msg_to_tracks(msg: Any, topic: str = "") -> Tracks:
    """``TrackedObjectArray`` -> :class:`Tracks`. Covariances are kept when every object has
    one of the same size.

    Raises:
        ConversionError: a covariance whose length is not ``state_dim ** 2``, or invalid values
            (duplicate ids, unknown class or state).
    """
    objects = msg.objects
    n = len(objects)
    dims = {int(o.state_dim) for o in objects}
    for i, o in enumerate(objects):
        if len(o.covariance) != o.state_dim ** 2:
            raise conversion_error(topic, msg, f"object {i}: covariance has {len(o.covariance)} "
                                               f"values for state_dim {o.state_dim}")
    covariances = None
    if n and len(dims) == 1 and 0 not in dims:
        dim = dims.pop()
        covariances = np.array([np.asarray(o.covariance, np.float32).reshape(dim, dim)
                                for o in objects])
    try:
        return Tracks(
            stamp_to_ns(msg.header.stamp),
            np.array([bbox_to_box(o.bbox) for o in objects], np.float32).reshape(n, BOX_DIM),
            np.array([o.label for o in objects], np.int32),
            np.array([o.track_id for o in objects], np.int64),
            np.array([[o.velocity.x, o.velocity.y] for o in objects], np.float32).reshape(n, 2),
            np.array([o.score for o in objects], np.float32),
            np.array([o.age_frames for o in objects], np.int32),
            np.array([o.hits for o in objects], np.int32),
            np.array([o.state for o in objects], np.int8),
            covariances=covariances)
    except ValidationError as exc:
        raise conversion_error(topic, msg, str(exc)) from None

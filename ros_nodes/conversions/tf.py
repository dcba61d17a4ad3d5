"""``geometry_msgs/TransformStamped`` and ``tf2_msgs/TFMessage`` (``/tf_static``) <-> 4x4
transforms, and ``geometry_msgs/PoseStamped`` <-> :class:`EgoPose`.

A ``TransformStamped`` with ``header.frame_id = parent`` and ``child_frame_id = child`` is the
transform ``T_parent_child`` (it maps points in ``child`` into ``parent``), which is how the
data model's ``T_vehicle_sensor`` reads with ``parent`` the vehicle frame.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from geometry_msgs.msg import (
    Point,
    Pose,
    PoseStamped,
    Quaternion,
    Transform,
    TransformStamped,
    Vector3,
)
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage

from perception.errors import ConversionError, ValidationError
from perception.geometry import make_transform, matrix_to_quaternion, quaternion_to_matrix
from perception.types import EgoPose

from .stamps import conversion_error, ns_to_stamp, stamp_to_ns

MAX_CHAIN = 16
"""Longest parent chain followed when resolving a frame to the vehicle frame."""


def _quaternion_msg(R: np.ndarray) -> Quaternion:
    w, x, y, z = matrix_to_quaternion(R)
    return Quaternion(x=float(x), y=float(y), z=float(z), w=float(w))


def _rotation(q: Quaternion, topic: str, msg: object) -> np.ndarray:
    try:
        return quaternion_to_matrix(np.array([q.w, q.x, q.y, q.z]))
    except ValidationError as exc:
        raise conversion_error(topic, msg, str(exc)) from None


def matrix_to_transform(T: np.ndarray, parent: str, child: str, stamp_ns: int
                        ) -> TransformStamped:
    """(4, 4) ``T_parent_child`` -> ``TransformStamped``."""
    T = np.asarray(T, dtype=np.float64)
    t = T[:3, 3]
    return TransformStamped(
        header=Header(stamp=ns_to_stamp(stamp_ns), frame_id=parent), child_frame_id=child,
        transform=Transform(translation=Vector3(x=float(t[0]), y=float(t[1]), z=float(t[2])),
                            rotation=_quaternion_msg(T[:3, :3])))


def transform_to_matrix(msg: TransformStamped, topic: str = "") -> np.ndarray:
    """``TransformStamped`` -> (4, 4) float64 ``T_parent_child``.

    Raises:
        ConversionError: a zero or non-finite quaternion or translation.
    """
    t = msg.transform.translation
    translation = np.array([t.x, t.y, t.z])
    if not np.isfinite(translation).all():
        raise conversion_error(topic, msg, f"non-finite translation {translation.tolist()}")
    return make_transform(_rotation(msg.transform.rotation, topic, msg), translation)


def transforms_to_tf_message(transforms: Mapping[str, np.ndarray], parent: str,
                             stamp_ns: int) -> TFMessage:
    """``{child_frame: T_parent_child}`` -> ``TFMessage`` (e.g. for ``/tf_static``)."""
    return TFMessage(transforms=[matrix_to_transform(T, parent, child, stamp_ns)
                                 for child, T in transforms.items()])


def tf_message_to_transforms(msg: TFMessage, vehicle_frame: str, topic: str = ""
                             ) -> dict[str, np.ndarray]:
    """``TFMessage`` -> ``{frame: T_vehicle_frame}`` for every frame that chains to
    ``vehicle_frame`` (directly or through intermediate frames). Frames not connected to
    ``vehicle_frame`` are left out.

    Raises:
        ConversionError: a malformed transform, or a frame with two different parents.
    """
    parent_of: dict[str, tuple[str, np.ndarray]] = {}
    for transform in msg.transforms:
        child = transform.child_frame_id
        parent = transform.header.frame_id
        if child in parent_of and parent_of[child][0] != parent:
            raise ConversionError(f"{topic or '<no topic>'}: frame {child!r} has two parents "
                                  f"({parent_of[child][0]!r} and {parent!r})")
        parent_of[child] = (parent, transform_to_matrix(transform, topic))
    resolved = {}
    for frame in parent_of:
        T = _chain_to(frame, vehicle_frame, parent_of)
        if T is not None:
            resolved[frame] = T
    return resolved


def _chain_to(frame: str, root: str, parent_of: Mapping[str, tuple[str, np.ndarray]]
              ) -> np.ndarray | None:
    T = np.eye(4)
    for _ in range(MAX_CHAIN):
        if frame == root:
            return T
        if frame not in parent_of:
            return None
        frame, T_parent_frame = parent_of[frame]
        T = T_parent_frame @ T
    return None


def ego_pose_to_pose_stamped(pose: EgoPose, world_frame: str) -> PoseStamped:
    """:class:`EgoPose` -> ``PoseStamped`` of the vehicle in ``world_frame`` (velocities are
    not carried)."""
    T = pose.T_world_vehicle
    t = T[:3, 3]
    return PoseStamped(header=Header(stamp=ns_to_stamp(pose.stamp_ns), frame_id=world_frame),
                       pose=Pose(position=_point(t), orientation=_quaternion_msg(T[:3, :3])))


def _point(t: np.ndarray) -> Point:
    return Point(x=float(t[0]), y=float(t[1]), z=float(t[2]))


def pose_stamped_to_ego_pose(msg: PoseStamped, topic: str = "") -> EgoPose:
    """``PoseStamped`` (vehicle in the world frame) -> :class:`EgoPose`.

    Raises:
        ConversionError: a zero or non-finite quaternion, or a non-finite position.
    """
    p = msg.pose.position
    position = np.array([p.x, p.y, p.z])
    if not np.isfinite(position).all():
        raise conversion_error(topic, msg, f"non-finite position {position.tolist()}")
    T = make_transform(_rotation(msg.pose.orientation, topic, msg), position)
    return EgoPose(stamp_to_ns(msg.header.stamp), T)

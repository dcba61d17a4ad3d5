"""``geometry_msgs/TransformStamped`` and ``tf2_msgs/TFMessage`` (``/tf_static``) <-> 4x4
transforms, and ``geometry_msgs/PoseStamped`` (or ``nav_msgs/Odometry``) <-> :class:`EgoPose`.

A ``TransformStamped`` with ``header.frame_id = parent`` and ``child_frame_id = child`` is the
transform ``T_parent_child`` (it maps points in ``child`` into ``parent``), which is how the
data model's ``T_vehicle_sensor`` reads with ``parent`` the vehicle frame.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ..errors import ConversionError, ValidationError
from ..geometry import make_transform, matrix_to_quaternion, quaternion_to_matrix
from ..types import EgoPose
from .factory import MessageFactory, header_msg
from .stamps import conversion_error, stamp_to_ns
from .topics import sensor_frame

MAX_CHAIN = 16
"""Longest parent chain followed when resolving a frame to the vehicle frame."""


# ------------------------------------------------------------------------------------------
# Message -> matrices
# ------------------------------------------------------------------------------------------

def _rotation(q: Any, topic: str, msg: object) -> np.ndarray:
    try:
        return quaternion_to_matrix(np.array([q.w, q.x, q.y, q.z]))
    except ValidationError as exc:
        raise conversion_error(topic, msg, str(exc)) from None


def transform_to_matrix(msg: Any, topic: str = "") -> np.ndarray:
    """``TransformStamped`` -> (4, 4) float64 ``T_parent_child``.

    Raises:
        ConversionError: a zero or non-finite quaternion or translation.
    """
    t = msg.transform.translation
    translation = np.array([t.x, t.y, t.z])
    if not np.isfinite(translation).all():
        raise conversion_error(topic, msg, f"non-finite translation {translation.tolist()}")
    return make_transform(_rotation(msg.transform.rotation, topic, msg), translation)


def parent_map(transforms: Iterable[Any], topic: str = "",
               known: Mapping[str, tuple[str, np.ndarray]] | None = None
               ) -> dict[str, tuple[str, np.ndarray]]:
    """``{child: (parent, T_parent_child)}`` of ``transforms`` (``TransformStamped`` s), added to
    ``known``.

    Raises:
        ConversionError: a malformed transform, or a frame with two different parents.
    """
    parent_of = dict(known or {})
    for transform in transforms:
        child = transform.child_frame_id
        parent = transform.header.frame_id
        if child in parent_of and parent_of[child][0] != parent:
            raise ConversionError(f"{topic or '<no topic>'}: frame {child!r} has two parents "
                                  f"({parent_of[child][0]!r} and {parent!r})")
        parent_of[child] = (parent, transform_to_matrix(transform, topic))
    return parent_of


def resolve_frames(parent_of: Mapping[str, tuple[str, np.ndarray]], root: str
                   ) -> dict[str, np.ndarray]:
    """``{frame: T_root_frame}`` for every frame of ``parent_of`` that chains to ``root``
    (``root`` itself included when some frame chains to it)."""
    resolved = {}
    for frame in parent_of:
        T = _chain_to(frame, root, parent_of)
        if T is not None:
            resolved[frame] = T
    if resolved:
        resolved.setdefault(root, np.eye(4))
    return resolved


def tf_message_to_transforms(msg: Any, vehicle_frame: str, topic: str = ""
                             ) -> dict[str, np.ndarray]:
    """``TFMessage`` -> ``{frame: T_vehicle_frame}`` for every frame that chains to
    ``vehicle_frame`` (directly or through intermediate frames). Frames not connected to
    ``vehicle_frame`` are left out.

    Raises:
        ConversionError: a malformed transform, or a frame with two different parents.
    """
    parent_of = parent_map(msg.transforms, topic)
    resolved = {}
    for frame in parent_of:
        T = _chain_to(frame, vehicle_frame, parent_of)
        if T is not None:
            resolved[frame] = T
    return resolved


def sensor_mounting(name: str, frame_id: str, transforms: Mapping[str, np.ndarray],
                    vehicle_frame: str) -> np.ndarray:
    """(4, 4) ``T_vehicle_sensor`` of lidar or radar ``name`` whose cloud is in ``frame_id``.

    A cloud published already in the vehicle frame (as the simulator and our bags do) no
    longer says where its sensor sits, yet a radar's Doppler is radial from the sensor: the
    sensor's own frame (:func:`~.topics.sensor_frame`) in ``transforms`` gives it. Otherwise
    the cloud's frame is the sensor's; identity when that is the vehicle frame, or unknown.

    Args:
        transforms: ``{frame: T_vehicle_frame}`` (see :func:`tf_message_to_transforms`).
    """
    own = transforms.get(sensor_frame(name))
    if own is not None:
        return own
    return np.eye(4) if frame_id == vehicle_frame else transforms.get(frame_id, np.eye(4))


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


def pose_stamped_to_ego_pose(msg: Any, topic: str = "") -> EgoPose:
    """``PoseStamped`` (vehicle in the world frame) -> :class:`EgoPose`. An ``Odometry``
    (``pose.pose``) is read the same way.

    Raises:
        ConversionError: a zero or non-finite quaternion, or a non-finite position.
    """
    pose = msg.pose.pose if hasattr(msg.pose, "pose") else msg.pose
    p = pose.position
    position = np.array([p.x, p.y, p.z])
    if not np.isfinite(position).all():
        raise conversion_error(topic, msg, f"non-finite position {position.tolist()}")
    T = make_transform(_rotation(pose.orientation, topic, msg), position)
    return EgoPose(stamp_to_ns(msg.header.stamp), T)


# ------------------------------------------------------------------------------------------
# Matrices -> message
# ------------------------------------------------------------------------------------------

def quaternion_msg(factory: MessageFactory, R: np.ndarray) -> Any:
    """``geometry_msgs/Quaternion`` of a (3, 3) rotation."""
    w, x, y, z = matrix_to_quaternion(R)
    return factory.new("geometry_msgs/msg/Quaternion", x=float(x), y=float(y), z=float(z),
                       w=float(w))


def _vector(factory: MessageFactory, typename: str, t: np.ndarray) -> Any:
    return factory.new(typename, x=float(t[0]), y=float(t[1]), z=float(t[2]))


def matrix_to_transform(factory: MessageFactory, T: np.ndarray, parent: str, child: str,
                        stamp_ns: int) -> Any:
    """(4, 4) ``T_parent_child`` -> ``TransformStamped``."""
    T = np.asarray(T, dtype=np.float64)
    transform = factory.new("geometry_msgs/msg/Transform",
                            translation=_vector(factory, "geometry_msgs/msg/Vector3", T[:3, 3]),
                            rotation=quaternion_msg(factory, T[:3, :3]))
    return factory.new("geometry_msgs/msg/TransformStamped",
                       header=header_msg(factory, stamp_ns, parent), child_frame_id=child,
                       transform=transform)


def transforms_to_tf_message(factory: MessageFactory, transforms: Mapping[str, np.ndarray],
                             parent: str, stamp_ns: int) -> Any:
    """``{child_frame: T_parent_child}`` -> ``TFMessage`` (e.g. for ``/tf_static``)."""
    return factory.new("tf2_msgs/msg/TFMessage", transforms=[
        matrix_to_transform(factory, T, parent, child, stamp_ns)
        for child, T in transforms.items()])


def pose_msg(factory: MessageFactory, T: np.ndarray) -> Any:
    """``geometry_msgs/Pose`` of a (4, 4) transform."""
    T = np.asarray(T, dtype=np.float64)
    return factory.new("geometry_msgs/msg/Pose",
                       position=_vector(factory, "geometry_msgs/msg/Point", T[:3, 3]),
                       orientation=quaternion_msg(factory, T[:3, :3]))


def ego_pose_to_pose_stamped(factory: MessageFactory, pose: EgoPose, world_frame: str) -> Any:
    """:class:`EgoPose` -> ``PoseStamped`` of the vehicle in ``world_frame`` (velocities are
    not carried)."""
    return factory.new("geometry_msgs/msg/PoseStamped",
                       header=header_msg(factory, pose.stamp_ns, world_frame),
                       pose=pose_msg(factory, pose.T_world_vehicle))

"""``/tf_static`` transforms and ego poses <-> 4x4 matrices and :class:`EgoPose` for rclpy
messages.

Decoding and the message layouts are :mod:`perception.rosmsg.tf` (shared with log replay);
the writers here build rclpy messages.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from geometry_msgs.msg import PoseStamped, TransformStamped
from tf2_msgs.msg import TFMessage

from perception.rosmsg import tf as _shared
from perception.rosmsg.tf import (
    MAX_CHAIN,
    pose_stamped_to_ego_pose,
    sensor_mounting,
    tf_message_to_transforms,
    transform_to_matrix,
)
from perception.types import EgoPose

from .messages import RCLPY

__all__ = ["MAX_CHAIN", "ego_pose_to_pose_stamped", "matrix_to_transform",
           "pose_stamped_to_ego_pose", "sensor_mounting", "tf_message_to_transforms",
           "transform_to_matrix", "transforms_to_tf_message"]


def matrix_to_transform(T: np.ndarray, parent: str, child: str, stamp_ns: int
                        ) -> TransformStamped:
    """(4, 4) ``T_parent_child`` -> ``TransformStamped``."""
    return _shared.matrix_to_transform(RCLPY, T, parent, child, stamp_ns)


def transforms_to_tf_message(transforms: Mapping[str, np.ndarray], parent: str,
                             stamp_ns: int) -> TFMessage:
    """``{child_frame: T_parent_child}`` -> ``TFMessage`` (e.g. for ``/tf_static``)."""
    return _shared.transforms_to_tf_message(RCLPY, transforms, parent, stamp_ns)


def ego_pose_to_pose_stamped(pose: EgoPose, world_frame: str) -> PoseStamped:
    """:class:`EgoPose` -> ``PoseStamped`` of the vehicle in ``world_frame``."""
    return _shared.ego_pose_to_pose_stamped(RCLPY, pose, world_frame)

"""NumPy geometry: transforms, boxes, camera projection and reference rotated-box IoU."""

from .boxes import (
    FACE_TOLERANCE_M,
    bev_corners,
    box_corners,
    count_points_in_boxes,
    points_in_boxes,
    points_to_box_frame,
)
from .camera import (
    R_OPTICAL_FROM_WAYMO,
    T_WAYMO_FROM_OPTICAL,
    distort,
    project_points,
    undistort,
    unproject_pixels,
    vehicle_to_optical,
)
from .iou import bev_intersection, boxes_iou_3d, boxes_iou_bev, polygon_area
from .transforms import (
    invert_transform,
    make_transform,
    matrix_to_quaternion,
    quaternion_to_matrix,
    quaternions_to_matrices,
    rotation_z,
    slerp,
    transform_boxes,
    transform_points,
    transform_velocities,
    yaw_of,
    yaw_to_quaternion,
)

__all__ = [
    "FACE_TOLERANCE_M", "bev_corners", "box_corners", "count_points_in_boxes",
    "points_in_boxes", "points_to_box_frame", "R_OPTICAL_FROM_WAYMO", "T_WAYMO_FROM_OPTICAL",
    "distort", "project_points", "undistort", "unproject_pixels", "vehicle_to_optical",
    "bev_intersection", "boxes_iou_3d", "boxes_iou_bev", "polygon_area", "invert_transform",
    "make_transform", "matrix_to_quaternion", "quaternion_to_matrix", "quaternions_to_matrices",
    "rotation_z", "slerp", "transform_boxes", "transform_points", "transform_velocities", "yaw_of",
    "yaw_to_quaternion",
]

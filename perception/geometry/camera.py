"""Pinhole camera projection with Brown-Conrady distortion.

Two sensor-frame conventions exist (:class:`perception.types.CameraConvention`):

* Waymo camera frame: x forward (optical axis), y left, z up.
* Optical frame (OpenCV, ROS ``*_optical_frame``): x right, y down, z forward.

They differ by a fixed rotation, ``p_optical = R_OPTICAL_FROM_WAYMO @ p_waymo``, i.e.
``x_o = -y_w``, ``y_o = -z_w``, ``z_o = x_w``. Projection always happens in the optical frame,
so a Waymo calibration projects exactly as Waymo's own camera model (``u = f_u * (-y/x) +
c_u`` before distortion) does.

Distortion ``(k1, k2, p1, p2, k3)`` follows OpenCV (and Waymo's intrinsic order).
"""

from __future__ import annotations

import numpy as np

from ..conventions import R_OPTICAL_FROM_WAYMO, T_WAYMO_FROM_OPTICAL
from ..errors import CalibrationError, ValidationError
from ..types import Calibration
from .transforms import invert_transform

__all__ = ["R_OPTICAL_FROM_WAYMO", "T_WAYMO_FROM_OPTICAL", "MIN_DEPTH_M", "distort", "undistort",
           "vehicle_to_optical", "project_points", "unproject_pixels"]

MIN_DEPTH_M = 1e-3
"""Points closer than this along the optical axis are never projected (behind or on the lens)."""


def distort(xn: np.ndarray, yn: np.ndarray, distortion: np.ndarray) -> tuple[np.ndarray, ...]:
    """Apply Brown-Conrady distortion to normalised image coordinates."""
    k1, k2, p1, p2, k3 = distortion
    r2 = xn * xn + yn * yn
    radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = xn * radial + 2.0 * p1 * xn * yn + p2 * (r2 + 2.0 * xn * xn)
    yd = yn * radial + p1 * (r2 + 2.0 * yn * yn) + 2.0 * p2 * xn * yn
    return xd, yd


def undistort(xd: np.ndarray, yd: np.ndarray, distortion: np.ndarray,
              iterations: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Invert :func:`distort` by fixed-point iteration (accurate for moderate distortion)."""
    if not np.any(distortion):
        return xd, yd
    k1, k2, p1, p2, k3 = distortion
    xn, yn = xd.copy(), yd.copy()
    for _ in range(iterations):
        r2 = xn * xn + yn * yn
        radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
        dx = 2.0 * p1 * xn * yn + p2 * (r2 + 2.0 * xn * xn)
        dy = p1 * (r2 + 2.0 * yn * yn) + 2.0 * p2 * xn * yn
        xn = (xd - dx) / radial
        yn = (yd - dy) / radial
    return xn, yn


def _require_camera(calib: Calibration) -> None:
    if not isinstance(calib, Calibration) or not calib.is_camera:
        raise CalibrationError(f"expected a camera Calibration with K, got {calib!r}")


def vehicle_to_optical(points: np.ndarray, calib: Calibration) -> np.ndarray:
    """(N, 3+) vehicle-frame points -> (N, 3) float64 points in the camera's optical frame."""
    _require_camera(calib)
    T = invert_transform(calib.T_vehicle_optical)
    xyz = np.asarray(points, np.float64)[:, :3]
    return xyz @ T[:3, :3].T + T[:3, 3]


def project_points(points: np.ndarray, calib: Calibration
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project vehicle-frame points into a camera image.

    Args:
        points: (N, 3+) vehicle frame.
        calib: camera calibration (either convention; distortion applied).

    Returns:
        uv: (N, 2) float64 pixel coordinates (u right, v down; pixel centres at integer + 0.5
            when K follows that convention), NaN for points behind the camera.
        depth: (N,) float64 distance along the optical axis, metres.
        visible: (N,) bool, in front of the camera and inside ``[0, width) x [0, height)``.
    """
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValidationError(f"project_points: points must be (N, 3+), got {points.shape}")
    p = vehicle_to_optical(points, calib)
    depth = p[:, 2]
    front = depth > MIN_DEPTH_M
    safe = np.where(front, depth, 1.0)
    xd, yd = distort(p[:, 0] / safe, p[:, 1] / safe, calib.distortion)
    K = calib.K
    u = K[0, 0] * xd + K[0, 1] * yd + K[0, 2]
    v = K[1, 1] * yd + K[1, 2]
    uv = np.stack([u, v], axis=1)
    uv[~front] = np.nan
    visible = front & (u >= 0) & (u < calib.width) & (v >= 0) & (v < calib.height)
    return uv, depth, visible


def unproject_pixels(uv: np.ndarray, depth: np.ndarray, calib: Calibration) -> np.ndarray:
    """Lift pixels at given optical-axis depths back to vehicle-frame points.

    Args:
        uv: (N, 2) pixel coordinates.
        depth: (N,) depth along the optical axis, metres.
        calib: camera calibration; distortion is inverted iteratively.

    Returns:
        (N, 3) float64 vehicle-frame points.
    """
    _require_camera(calib)
    uv = np.asarray(uv, np.float64)
    depth = np.asarray(depth, np.float64)
    K = calib.K
    yd = (uv[:, 1] - K[1, 2]) / K[1, 1]
    xd = (uv[:, 0] - K[0, 2] - K[0, 1] * yd) / K[0, 0]
    xn, yn = undistort(xd, yd, calib.distortion)
    p = np.stack([xn * depth, yn * depth, depth], axis=1)
    T = calib.T_vehicle_optical
    return p @ T[:3, :3].T + T[:3, 3]

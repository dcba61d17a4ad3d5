"""Rigid transforms, rotations and yaw helpers (NumPy, float64).

A transform ``T_a_b`` is a (4, 4) matrix that maps points expressed in frame ``b`` into frame
``a``: ``p_a = T_a_b @ p_b``. Quaternions are ``(w, x, y, z)`` (Hamilton, as ROS and Waymo use).
"""

from __future__ import annotations

import numpy as np

from ..conventions import wrap_heading
from ..errors import ValidationError


def make_transform(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """(3, 3) rotation and (3,) translation -> (4, 4) float64 transform."""
    T = np.eye(4)
    T[:3, :3] = np.asarray(rotation, dtype=np.float64)
    T[:3, 3] = np.asarray(translation, dtype=np.float64)
    return T


def invert_transform(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid (4, 4) transform, using R^T rather than a general inverse."""
    T = np.asarray(T, dtype=np.float64)
    R_inv = T[:3, :3].T
    return make_transform(R_inv, -R_inv @ T[:3, 3])


def transform_points(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply ``T`` (4, 4) to ``points`` (N, 3+); extra columns are passed through unchanged.

    The result keeps the input dtype (float32 in, float32 out); the product runs in float64.
    """
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValidationError(f"transform_points: points must be (N, 3+), got {points.shape}")
    T = np.asarray(T, dtype=np.float64)
    out = points.copy()
    xyz = points[:, :3].astype(np.float64) @ T[:3, :3].T + T[:3, 3]
    out[:, :3] = xyz.astype(points.dtype, copy=False)
    return out


def rotation_z(yaw: float) -> np.ndarray:
    """(3, 3) rotation by ``yaw`` radians about +z (counter-clockwise seen from above)."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def yaw_of(T_or_R: np.ndarray) -> float:
    """Yaw (rotation about z) of a transform or rotation: ``atan2(R[1, 0], R[0, 0])``."""
    R = np.asarray(T_or_R)[:3, :3]
    return float(np.arctan2(R[1, 0], R[0, 0]))


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """``(w, x, y, z)`` quaternion (normalised here) -> (3, 3) rotation matrix; the scalar
    twin of :func:`quaternions_to_matrices`."""
    q = np.asarray(q, dtype=np.float64)
    norm = np.linalg.norm(q)
    if q.shape != (4,) or not np.isfinite(norm) or norm < 1e-12:
        raise ValidationError(f"quaternion_to_matrix: expected a non-zero (4,) quaternion, got "
                              f"{q.tolist() if q.size < 10 else q.shape}")
    return quaternions_to_matrices((q / norm)[None])[0]


def quaternions_to_matrices(q: np.ndarray) -> np.ndarray:
    """(M, 4) unit ``(w, x, y, z)`` quaternions -> (M, 3, 3) rotation matrices."""
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    R = np.empty((q.shape[0], 3, 3))
    R[:, 0, 0] = 1 - 2 * (y * y + z * z)
    R[:, 0, 1] = 2 * (x * y - z * w)
    R[:, 0, 2] = 2 * (x * z + y * w)
    R[:, 1, 0] = 2 * (x * y + z * w)
    R[:, 1, 1] = 1 - 2 * (x * x + z * z)
    R[:, 1, 2] = 2 * (y * z - x * w)
    R[:, 2, 0] = 2 * (x * z - y * w)
    R[:, 2, 1] = 2 * (y * z + x * w)
    R[:, 2, 2] = 1 - 2 * (x * x + y * y)
    return R


def slerp(q0: np.ndarray, q1: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Spherical interpolation of (M, 4) unit quaternions at (M,) fractions in [0, 1]."""
    dot = np.einsum("ij,ij->i", q0, q1)
    q1 = np.where(dot[:, None] < 0, -q1, q1)  # shortest arc
    theta = np.arccos(np.clip(np.abs(dot), -1.0, 1.0))
    sin_theta = np.sin(theta)
    near = sin_theta < 1e-9  # (almost) equal rotations: plain lerp avoids 0 / 0
    safe = np.where(near, 1.0, sin_theta)
    w0 = np.where(near, 1.0 - alpha, np.sin((1.0 - alpha) * theta) / safe)
    w1 = np.where(near, alpha, np.sin(alpha * theta) / safe)
    q = w0[:, None] * q0 + w1[:, None] * q1
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def matrix_to_quaternion(R: np.ndarray) -> np.ndarray:
    """(3, 3) rotation -> ``(w, x, y, z)`` unit quaternion with ``w >= 0``.

    Uses the largest-diagonal branch (Shepperd) so it stays accurate near 180 degrees.
    """
    R = np.asarray(R, dtype=np.float64)[:3, :3]
    trace = np.trace(R)
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [0.25 * s, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s]
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = 2.0 * np.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2])
        q = [(R[2, 1] - R[1, 2]) / s, 0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s]
    elif R[1, 1] > R[2, 2]:
        s = 2.0 * np.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2])
        q = [(R[0, 2] - R[2, 0]) / s, (R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1])
        q = [(R[1, 0] - R[0, 1]) / s, (R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s]
    q = np.asarray(q)
    q /= np.linalg.norm(q)
    return q if q[0] >= 0 else -q


def yaw_to_quaternion(yaw: float) -> np.ndarray:
    """``(w, x, y, z)`` quaternion of a rotation by ``yaw`` about +z."""
    return np.array([np.cos(yaw / 2.0), 0.0, 0.0, np.sin(yaw / 2.0)])


def transform_boxes(T: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Move boxes (N, 7) by a transform whose rotation is a yaw (roll and pitch are ignored).

    Centres are transformed fully; the heading gains the transform's yaw and is re-wrapped.
    Returns float32 (N, 7).
    """
    boxes = np.asarray(boxes, dtype=np.float32)
    out = boxes.copy()
    out[:, :3] = transform_points(T, boxes[:, :3].astype(np.float64)).astype(np.float32)
    out[:, 6] = wrap_heading(boxes[:, 6].astype(np.float64) + yaw_of(T)).astype(np.float32)
    return out


def transform_velocities(T: np.ndarray, velocities: np.ndarray) -> np.ndarray:
    """Rotate planar velocities (N, 2) by the yaw of ``T`` (no translation). float32 out."""
    R = rotation_z(yaw_of(T))[:2, :2]
    return (np.asarray(velocities, np.float64) @ R.T).astype(np.float32)

"""Box corners and points-in-box tests for ``(x, y, z, l, w, h, heading)`` boxes.

Boxes are closed sets: a point exactly on a face (within :data:`FACE_TOLERANCE_M`, to absorb
the rounding of the rotation into the box frame) counts as inside. Waymo's
``num_lidar_points_in_box`` and the simulator's counts follow this rule.
"""

from __future__ import annotations

import numpy as np

from ..errors import ValidationError

FACE_TOLERANCE_M = 1e-5
"""Points within this distance outside a face still count as inside (closed boxes)."""

# Corner order: the bottom face counter-clockwise seen from above starting at front-left,
# then the top face in the same order. Unit offsets in the box frame (x along length).
_CORNER_SIGNS = np.array([
    [+1, +1, -1], [-1, +1, -1], [-1, -1, -1], [+1, -1, -1],
    [+1, +1, +1], [-1, +1, +1], [-1, -1, +1], [+1, -1, +1],
], dtype=np.float64) * 0.5


def _as_boxes(boxes: np.ndarray, name: str = "boxes") -> np.ndarray:
    boxes = np.asarray(boxes)
    if boxes.ndim != 2 or boxes.shape[1] != 7:
        raise ValidationError(f"{name}: expected shape (N, 7), got {boxes.shape}")
    return boxes.astype(np.float64, copy=False)


def box_corners(boxes: np.ndarray) -> np.ndarray:
    """(N, 7) boxes -> (N, 8, 3) float64 corners (bottom face first, see module docstring)."""
    boxes = _as_boxes(boxes)
    local = _CORNER_SIGNS[None] * boxes[:, None, 3:6]                      # (N, 8, 3)
    c, s = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
    x = local[..., 0] * c[:, None] - local[..., 1] * s[:, None]
    y = local[..., 0] * s[:, None] + local[..., 1] * c[:, None]
    return np.stack([x, y, local[..., 2]], axis=-1) + boxes[:, None, :3]


def bev_corners(boxes: np.ndarray) -> np.ndarray:
    """(N, 7) boxes -> (N, 4, 2) float64 BEV corners, counter-clockwise."""
    return box_corners(boxes)[:, :4, :2]


def points_to_box_frame(points: np.ndarray, box: np.ndarray) -> np.ndarray:
    """(N, 3+) points -> (N, 3) coordinates in the frame of one box (origin at its centre)."""
    d = np.asarray(points, np.float64)[:, :3] - np.asarray(box[:3], np.float64)
    c, s = np.cos(box[6]), np.sin(box[6])
    return np.stack([d[:, 0] * c + d[:, 1] * s, -d[:, 0] * s + d[:, 1] * c, d[:, 2]], axis=1)


def points_in_boxes(points: np.ndarray, boxes: np.ndarray,
                    tolerance_m: float = FACE_TOLERANCE_M) -> np.ndarray:
    """Which points lie in which boxes.

    Args:
        points: (N, 3+) points, same frame as the boxes.
        boxes: (M, 7) boxes.
        tolerance_m: faces are inclusive, with this slack.

    Returns:
        (N, M) bool matrix. Memory is N*M bytes; for big inputs use :func:`count_points_in_boxes`.
    """
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValidationError(f"points: expected shape (N, 3+), got {points.shape}")
    boxes = _as_boxes(boxes)
    inside = np.zeros((points.shape[0], boxes.shape[0]), dtype=bool)
    for j, box in enumerate(boxes):
        inside[:, j] = _inside_one(points, box, tolerance_m)
    return inside


def count_points_in_boxes(points: np.ndarray, boxes: np.ndarray,
                          tolerance_m: float = FACE_TOLERANCE_M) -> np.ndarray:
    """(M,) int32 number of points inside each box (a point may count for several boxes)."""
    points = np.asarray(points)
    boxes = _as_boxes(boxes)
    counts = np.zeros(boxes.shape[0], dtype=np.int32)
    if points.shape[0] == 0:
        return counts
    xyz = points[:, :3].astype(np.float64)
    # A bounding-sphere prefilter keeps this linear in practice: most points are far from a box.
    for j, box in enumerate(boxes):
        radius = 0.5 * np.linalg.norm(box[3:6]) + tolerance_m
        near = np.flatnonzero(np.sum((xyz - box[:3]) ** 2, axis=1) <= radius * radius)
        if near.size:
            counts[j] = int(_inside_one(xyz[near], box, tolerance_m).sum())
    return counts


def _inside_one(points: np.ndarray, box: np.ndarray, tolerance_m: float) -> np.ndarray:
    local = points_to_box_frame(points, box)
    half = box[3:6] * 0.5 + tolerance_m
    return (np.abs(local) <= half).all(axis=1)

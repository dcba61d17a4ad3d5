"""Exact rotated-box IoU, NumPy reference implementation.

The BEV intersection of two rotated rectangles is computed by Sutherland-Hodgman clipping of
one rectangle by the four edge half-planes of the other, vectorised over box pairs. Polygons
are held in fixed (P, 8, 2) arrays with a per-pair vertex count: clipping a convex polygon by a
half-plane adds at most one vertex, so four clips of a quadrilateral never exceed eight.

3D IoU multiplies the BEV intersection by the overlap of the vertical extents (boxes are
centre-z, DESIGN.md) and divides by the union of volumes. Both are exact up to float64
rounding; they serve as the reference for :mod:`perception.ops` and the metrics.
"""

from __future__ import annotations

import numpy as np

from .boxes import _as_boxes, bev_corners

_MAX_VERTS = 8
_PAIR_CHUNK = 65536


def polygon_area(poly: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Shoelace area of (P, V, 2) polygons whose first ``count`` vertices are valid."""
    V = poly.shape[1]
    idx = np.arange(V)
    nxt = np.where(idx[None] + 1 < count[:, None], idx[None] + 1, 0)       # (P, V)
    nxt_pts = np.take_along_axis(poly, nxt[..., None], axis=1)
    cross = poly[..., 0] * nxt_pts[..., 1] - poly[..., 1] * nxt_pts[..., 0]
    cross = np.where(idx[None] < count[:, None], cross, 0.0)
    area = 0.5 * np.abs(cross.sum(axis=1))
    return np.where(count >= 3, area, 0.0)


def _clip_by_edge(poly: np.ndarray, count: np.ndarray, e0: np.ndarray, e1: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Keep the part of each convex polygon on the left of the directed edge e0 -> e1."""
    P, V, _ = poly.shape
    edge = e1 - e0                                                          # (P, 2)
    scale = np.maximum(np.abs(edge).sum(axis=1), 1e-12)
    side = (edge[:, None, 0] * (poly[..., 1] - e0[:, None, 1])
            - edge[:, None, 1] * (poly[..., 0] - e0[:, None, 0]))           # (P, V)
    inside = side >= -1e-12 * scale[:, None]

    idx = np.arange(V)
    valid = idx[None] < count[:, None]
    prev_idx = np.where(idx[None] == 0, np.maximum(count[:, None] - 1, 0), idx[None] - 1)
    prev = np.take_along_axis(poly, prev_idx[..., None], axis=1)
    side_prev = np.take_along_axis(side, prev_idx, axis=1)
    inside_prev = np.take_along_axis(inside, prev_idx, axis=1)

    denom = side_prev - side
    t = np.where(np.abs(denom) > 0, side_prev / np.where(denom == 0, 1.0, denom), 0.0)
    t = np.clip(t, 0.0, 1.0)[..., None]
    crossing = prev + t * (poly - prev)

    out = np.empty((P, V, 2, 2))
    out[:, :, 0] = crossing
    out[:, :, 1] = poly
    keep = np.empty((P, V, 2), dtype=bool)
    keep[:, :, 0] = valid & (inside != inside_prev)
    keep[:, :, 1] = valid & inside
    out = out.reshape(P, 2 * V, 2)
    keep = keep.reshape(P, 2 * V)
    order = np.argsort(~keep, axis=1, kind="stable")[:, :_MAX_VERTS]
    new_poly = np.take_along_axis(out, order[..., None], axis=1)
    new_count = np.minimum(keep.sum(axis=1), _MAX_VERTS)
    return new_poly, new_count


def _intersection_area(ca: np.ndarray, cb: np.ndarray) -> np.ndarray:
    """Intersection area of pairs of CCW quadrilaterals ca[p], cb[p] (P, 4, 2)."""
    P = ca.shape[0]
    poly = np.zeros((P, _MAX_VERTS, 2))
    poly[:, :4] = ca
    count = np.full(P, 4)
    for k in range(4):
        poly, count = _clip_by_edge(poly, count, cb[:, k], cb[:, (k + 1) % 4])
    return polygon_area(poly, count)


def bev_intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) float64 BEV intersection areas between boxes a (N, 7) and b (M, 7)."""
    a, b = _as_boxes(a, "a"), _as_boxes(b, "b")
    inter = np.zeros((a.shape[0], b.shape[0]))
    if inter.size == 0:
        return inter
    # Pairs whose bounding circles do not touch cannot intersect: skip them.
    ra = 0.5 * np.hypot(a[:, 3], a[:, 4])
    rb = 0.5 * np.hypot(b[:, 3], b[:, 4])
    dist2 = ((a[:, None, :2] - b[None, :, :2]) ** 2).sum(-1)
    ii, jj = np.nonzero(dist2 <= (ra[:, None] + rb[None]) ** 2 * (1 + 1e-9))
    ca, cb = bev_corners(a), bev_corners(b)
    for start in range(0, ii.size, _PAIR_CHUNK):
        i, j = ii[start:start + _PAIR_CHUNK], jj[start:start + _PAIR_CHUNK]
        inter[i, j] = _intersection_area(ca[i], cb[j])
    return inter


def boxes_iou_bev(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) float64 bird's-eye-view IoU of rotated boxes a (N, 7) and b (M, 7)."""
    a, b = _as_boxes(a, "a"), _as_boxes(b, "b")
    inter = bev_intersection(a, b)
    area_a = a[:, 3] * a[:, 4]
    area_b = b[:, 3] * b[:, 4]
    union = area_a[:, None] + area_b[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def boxes_iou_3d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) float64 3D IoU of rotated (yaw-only), centre-z boxes a (N, 7) and b (M, 7)."""
    a, b = _as_boxes(a, "a"), _as_boxes(b, "b")
    inter_bev = bev_intersection(a, b)
    top = np.minimum(a[:, None, 2] + a[:, None, 5] / 2, b[None, :, 2] + b[None, :, 5] / 2)
    bottom = np.maximum(a[:, None, 2] - a[:, None, 5] / 2, b[None, :, 2] - b[None, :, 5] / 2)
    inter = inter_bev * np.clip(top - bottom, 0.0, None)
    vol_a = a[:, 3] * a[:, 4] * a[:, 5]
    vol_b = b[:, 3] * b[:, 4] * b[:, 5]
    union = vol_a[:, None] + vol_b[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)

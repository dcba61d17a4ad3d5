"""Gated association of tracks with detections: costs and assignment solvers.

A cost matrix is (T, D) float64 with ``np.inf`` for pairs outside the gate (other classes, too
far, too little overlap). Solvers return matched ``(track_index, detection_index)`` int64
arrays, each of length K; a gated-out pair is never returned.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from ..ops import boxes_iou_bev
from .motion import MEAS_DIM, innovation


def bev_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) float64 BEV IoU of boxes a (N, 7) and b (M, 7) (the compiled rotated-box op)."""
    return boxes_iou_bev(np.asarray(a, np.float64), np.asarray(b, np.float64)).numpy()


def center_distance_cost(track_xy: np.ndarray, det_xy: np.ndarray, gate_m: np.ndarray
                         ) -> np.ndarray:
    """BEV centre distance (T, D), inf beyond each track's gate ``gate_m`` (T,) metres.

    track_xy (T, 2) and det_xy (D, 2) in the same frame. Only pairs within the largest gate
    are visited (k-d tree), so the cost grows with the number of close pairs, not T * D.
    """
    T, D = track_xy.shape[0], det_xy.shape[0]
    cost = np.full((T, D), np.inf)
    if T == 0 or D == 0:
        return cost
    pairs = cKDTree(track_xy).sparse_distance_matrix(cKDTree(det_xy), float(gate_m.max()),
                                                     output_type="ndarray")
    ti, di, dist = pairs["i"], pairs["j"], pairs["v"]
    ok = dist <= gate_m[ti]
    cost[ti[ok], di[ok]] = dist[ok]
    return cost


def iou_cost(track_boxes: np.ndarray, det_boxes: np.ndarray, iou_min: float) -> np.ndarray:
    """``1 - BEV IoU`` (T, D), inf where the IoU is below ``iou_min``."""
    iou = bev_iou(track_boxes, det_boxes)
    return np.where(iou >= iou_min, 1.0 - iou, np.inf)


def mahalanobis_cost(x: np.ndarray, P: np.ndarray, R: np.ndarray, det_boxes: np.ndarray,
                     gate: float) -> np.ndarray:
    """Squared Mahalanobis distance (T, D) of the box innovation, inf above ``gate``.

    x (T, 9) predicted states, P (T, 9, 9) their covariances, R (7, 7) measurement noise,
    det_boxes (D, 7); all in the same frame.
    """
    T, D = x.shape[0], det_boxes.shape[0]
    if T == 0 or D == 0:
        return np.full((T, D), np.inf)
    S_inv = np.linalg.inv(P[:, :MEAS_DIM, :MEAS_DIM] + R)                  # (T, 7, 7)
    y = innovation(np.broadcast_to(x[:, None, :], (T, D, x.shape[1])).copy(),
                   np.broadcast_to(det_boxes[None], (T, D, MEAS_DIM)).copy())
    d2 = np.einsum("tdi,tij,tdj->td", y, S_inv, y)
    return np.where(d2 <= gate, d2, np.inf)


def _empty_matches() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(0, np.int64), np.zeros(0, np.int64)


def solve_hungarian(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-total-cost assignment among the finite entries of ``cost`` (T, D).

    A track and a detection that can only go with each other are paired directly; the
    optimal solver (``scipy.optimize.linear_sum_assignment``) runs on the rest, restricted to
    rows and columns with an allowed pair. Most pairs are gated out, so this keeps it small.
    """
    if cost.size == 0:
        return _empty_matches()
    finite = np.isfinite(cost)
    row_count = finite.sum(axis=1)
    col_count = finite.sum(axis=0)
    first_col = finite.argmax(axis=1)
    lone = (row_count == 1) & (col_count[first_col] == 1)
    lone_rows = np.flatnonzero(lone)
    lone_cols = first_col[lone_rows]
    busy = finite.copy()
    busy[lone_rows] = False
    rows = np.flatnonzero(busy.any(axis=1))
    cols = np.flatnonzero(busy.any(axis=0))
    if rows.size == 0:
        return lone_rows.astype(np.int64), lone_cols.astype(np.int64)
    sub = cost[np.ix_(rows, cols)]
    sub_finite = np.isfinite(sub)
    # A gated pair costs more than any full set of allowed pairs, so the solver only picks one
    # when nothing else is left; such picks are dropped below.
    big = 1.0 + 2.0 * np.abs(sub[sub_finite]).sum()
    r, c = linear_sum_assignment(np.where(sub_finite, sub, big))
    ok = sub_finite[r, c]
    return (np.concatenate([lone_rows, rows[r[ok]]]).astype(np.int64),
            np.concatenate([lone_cols, cols[c[ok]]]).astype(np.int64))


def solve_greedy(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CenterPoint-style greedy assignment: take the cheapest remaining allowed pair first."""
    ti, di = np.nonzero(np.isfinite(cost))
    if ti.size == 0:
        return _empty_matches()
    order = np.argsort(cost[ti, di], kind="stable")
    used_t = np.zeros(cost.shape[0], dtype=bool)
    used_d = np.zeros(cost.shape[1], dtype=bool)
    out_t, out_d = [], []
    for t, d in zip(ti[order].tolist(), di[order].tolist()):
        if used_t[t] or used_d[d]:
            continue
        used_t[t] = used_d[d] = True
        out_t.append(t)
        out_d.append(d)
    return np.asarray(out_t, np.int64), np.asarray(out_d, np.int64)


def solve(cost: np.ndarray, solver: str) -> tuple[np.ndarray, np.ndarray]:
    """Dispatch on the configured solver name (``"hungarian"`` or ``"greedy"``)."""
    if solver == "hungarian":
        return solve_hungarian(cost)
    if solver == "greedy":
        return solve_greedy(cost)
    raise ValueError(f"unknown solver {solver!r}")

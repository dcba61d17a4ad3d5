"""The one place the metrics get their 3D IoU from.

Every matcher in :mod:`perception.eval` calls :func:`iou_3d_f32`, which uses the compiled
rotated-box IoU of :mod:`perception.ops` in float64 (equal to the NumPy reference in
:mod:`perception.geometry` to 1e-12, and tested against it).
"""

from __future__ import annotations

import numpy as np

from ..ops import boxes_iou_3d

# Waymo's IoU refuses degenerate and absurd boxes (metrics/iou.cc: kMinBoxDim, kMaxBoxDim):
# a pair involving such a box has IoU 0.
MIN_BOX_DIM_M = 1e-2
MAX_BOX_DIM_M = 1e6


def iou_3d_f32(pred_boxes: np.ndarray, gt_boxes: np.ndarray) -> np.ndarray:
    """(P, G) float32 3D IoU between pred (P, 7) and gt (G, 7) boxes, vehicle frame.

    The official evaluator computes IoU in double precision from float32 box fields and keeps
    it as float32; so does this function, which makes the threshold test ``iou >= 0.7f`` agree.
    """
    iou = boxes_iou_3d(pred_boxes.astype(np.float64), gt_boxes.astype(np.float64)).numpy()
    bad_pred = _out_of_range(pred_boxes)
    bad_gt = _out_of_range(gt_boxes)
    if bad_pred.any() or bad_gt.any():
        iou[bad_pred] = 0.0
        iou[:, bad_gt] = 0.0
    return np.clip(iou, 0.0, 1.0).astype(np.float32)


def iou_3d_per_frame(pred_boxes: list[np.ndarray], gt_boxes: list[np.ndarray]
                     ) -> list[np.ndarray]:
    """Per-frame IoU matrices ``[(P_i, G_i) float32]`` from per-frame box lists.

    One call per frame and class keeps every matrix small; frames without predictions or
    without ground truth cost nothing. (Packing several frames into one call, each moved
    apart along x, was measured at most ~20 % faster with the NumPy IoU, not worth the
    indirection.)
    """
    return [iou_3d_f32(p, g) if len(p) and len(g) else np.zeros((len(p), len(g)), np.float32)
            for p, g in zip(pred_boxes, gt_boxes)]


def _out_of_range(boxes: np.ndarray) -> np.ndarray:
    dims = boxes[:, 3:6]
    return (dims <= MIN_BOX_DIM_M).any(axis=1) | (dims >= MAX_BOX_DIM_M).any(axis=1)


def heading_accuracy_f32(pred_heading: np.ndarray, gt_heading: np.ndarray) -> np.ndarray:
    """Elementwise ``1 - |wrapped heading difference| / pi`` in [0, 1], float32.

    Follows Waymo's ComputeHeadingAccuracy: both angles are wrapped to [-pi, pi) in float32,
    the absolute difference is folded into [0, pi], then scaled.
    """
    pi32 = np.float32(np.pi)
    two_pi32 = np.float32(2 * np.pi)
    a = _wrap_f32(np.asarray(pred_heading, np.float32))
    b = _wrap_f32(np.asarray(gt_heading, np.float32))
    diff = np.abs(a - b)
    diff = np.where(diff > pi32, two_pi32 - diff, diff)
    return np.clip(1.0 - diff.astype(np.float64) / np.pi, 0.0, 1.0).astype(np.float32)


def _wrap_f32(angle: np.ndarray) -> np.ndarray:
    two_pi = np.float32(2 * np.pi)
    shifted = angle + np.float32(np.pi)
    # Waymo's PositiveModulo in float: x - trunc(x * (1 / y)) * y, with 1 / y in float.
    wrapped = shifted - np.trunc(shifted * (np.float32(1) / two_pi)) * two_pi
    wrapped = np.where(wrapped >= 0, wrapped,
                       np.where(wrapped + two_pi >= two_pi, np.float32(0), wrapped + two_pi))
    return (wrapped - np.float32(np.pi)).astype(np.float32)

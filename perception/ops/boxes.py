"""Rotated BEV / 3D IoU and NMS for ``(x, y, z, length, width, height, heading)`` boxes.

The intersection of two rotated rectangles is exact: one is clipped by the four edge
half-planes of the other (Sutherland-Hodgman), in float64, whatever the input dtype. Boxes are
centre-z (DESIGN.md): the 3D overlap is the BEV intersection times the overlap of
``[z - h/2, z + h/2]``. Pairs whose bounding circles do not touch are skipped.
"""

from __future__ import annotations

import torch

from . import _checks as C
from . import (
    _library,  # noqa: F401  (registers torch.ops.perception)
    reference,
)
from ._dispatch import compiled


def _check_boxes(name: str, boxes: object) -> torch.Tensor:
    t = C.check_matrix(name, C.as_tensor(name, boxes), 7,
                       cols_text="(N, 7) as (x, y, z, l, w, h, heading)")
    C.require_float(name, t)
    C.require_finite(name, t)
    if t.numel() and bool((t[:, 3:6] < 0).any()):
        bad = int((t[:, 3:6] < 0).any(dim=1).sum())
        raise C.OpsError(f"{name}: {bad} box(es) with a negative length, width or height")
    return t


def _dtype(*ts: torch.Tensor) -> torch.dtype:
    return torch.float64 if any(t.dtype == torch.float64 for t in ts) else torch.float32


def _iou(a, b, mode: int) -> torch.Tensor:
    ta, tb = _check_boxes("a", a), _check_boxes("b", b)
    C.same_device(a=ta, b=tb)
    dt = _dtype(ta, tb)
    ta, tb = ta.to(dt).contiguous(), tb.to(dt).contiguous()
    if not compiled(ta.device):
        return (reference.boxes_iou_3d if mode else reference.boxes_iou_bev)(ta, tb)
    return torch.ops.perception.boxes_iou(ta, tb, mode)


def boxes_iou_bev(a, b) -> torch.Tensor:
    """(N, M) bird's-eye-view IoU of boxes a (N, 7) and b (M, 7), dtype float32 (float64 when
    either input is float64)."""
    return _iou(a, b, 0)


def boxes_iou_3d(a, b) -> torch.Tensor:
    """(N, M) 3D IoU of yaw-only, centre-z boxes a (N, 7) and b (M, 7)."""
    return _iou(a, b, 1)


def _scores_labels(scores, labels, n: int, device: torch.device, dtype: torch.dtype
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    s = C.check_vector("scores", C.as_tensor("scores", scores), n)
    C.require_float("scores", s)
    C.require_finite("scores", s)
    C.same_device(boxes=torch.empty(0, device=device), scores=s)
    if labels is None:
        lab = torch.empty(0, dtype=torch.int64, device=device)
    else:
        lab = C.check_vector("labels", C.as_tensor("labels", labels), n)
        C.require_int("labels", lab)
        C.same_device(boxes=torch.empty(0, device=device), labels=lab)
        lab = lab.to(torch.int64).contiguous()
    return s.to(dtype).contiguous(), lab


def nms_bev(boxes, scores, iou_threshold: float, labels=None) -> torch.Tensor:
    """Greedy rotated BEV NMS.

    Boxes are visited by descending score (ties: lower index first); a kept box suppresses every
    later box whose BEV IoU with it is strictly greater than ``iou_threshold``. With ``labels``
    (N,) integers, only boxes of the same label suppress each other (class-aware).

    Returns:
        (K,) int64 indices of the kept boxes, sorted by descending score.
    """
    b = _check_boxes("boxes", boxes)
    thr = C.as_float("iou_threshold", iou_threshold, minimum=0.0, maximum=1.0)
    dt = _dtype(b)
    b = b.to(dt).contiguous()
    s, lab = _scores_labels(scores, labels, b.shape[0], b.device, dt)
    if not compiled(b.device):
        return reference.nms_bev(b, s, thr, lab if lab.numel() else None)
    return torch.ops.perception.nms_bev(b, s, lab, thr)


def circle_nms(centers_xy, scores, distance: float, labels=None) -> torch.Tensor:
    """Greedy circle NMS (CenterPoint style) on box centres.

    A kept centre suppresses every later one (by descending score) within ``distance`` metres
    (``dx^2 + dy^2 <= distance^2``). CenterPoint's ``circle_nms(dets, thresh)`` compares the
    *squared* distance with ``thresh``: pass ``distance = sqrt(thresh)`` to reproduce it.

    Args:
        centers_xy: (N, 2+) centres; only the first two columns are used (boxes (N, 7) work).
        scores: (N,) scores.
        distance: suppression radius in metres (>= 0).
        labels: optional (N,) integers for class-aware suppression.

    Returns:
        (K,) int64 indices of the kept centres, sorted by descending score.
    """
    c = C.check_matrix("centers_xy", C.as_tensor("centers_xy", centers_xy), min_cols=2,
                       cols_text="(N, 2+)")
    C.require_float("centers_xy", c)
    c = c[:, :2]
    C.require_finite("centers_xy", c)
    dist = C.as_float("distance", distance, minimum=0.0)
    dt = _dtype(c)
    c = c.to(dt).contiguous()
    s, lab = _scores_labels(scores, labels, c.shape[0], c.device, dt)
    if not compiled(c.device):
        return reference.circle_nms(c, s, dist, lab if lab.numel() else None)
    return torch.ops.perception.circle_nms(c, s, lab, dist)

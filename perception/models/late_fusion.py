"""Late fusion: boxes of per-modality detectors merged per frame by NMS or weighted box
fusion (WBF)."""

from __future__ import annotations

import torch

from .. import ops
from .heads import DecodedBoxes


def merge_boxes(parts: list[DecodedBoxes], method: str, iou_threshold: float,
                max_detections: int) -> DecodedBoxes:
    """Merge the boxes of the present branches of one frame.

    ``nms``: class-aware rotated BEV NMS over the union. ``wbf``: greedy clusters (by
    descending score, BEV IoU > threshold, same class); each cluster becomes the
    score-weighted mean box (heading from the weighted mean of sin/cos), with score =
    mean cluster score x (branches in the cluster / branches present), so a box only one of
    several sensors saw is down-weighted.
    """
    if not parts:
        z = torch.zeros((0, 7))
        return DecodedBoxes(z, z[:, 0], torch.zeros(0, dtype=torch.int64), z[:, :2])
    boxes = torch.cat([p.boxes for p in parts])
    scores = torch.cat([p.scores for p in parts])
    labels = torch.cat([p.labels for p in parts])
    vels = torch.cat([p.velocities for p in parts])
    source = torch.cat([torch.full((p.boxes.shape[0],), i, dtype=torch.int64,
                                   device=boxes.device) for i, p in enumerate(parts)])
    if boxes.shape[0] == 0:
        return DecodedBoxes(boxes, scores, labels, vels)
    if method == "nms" or len(parts) == 1:
        keep = ops.nms_bev(boxes, scores, iou_threshold, labels=labels)[:max_detections]
        return DecodedBoxes(boxes[keep], scores[keep], labels[keep], vels[keep])
    return _weighted_box_fusion(boxes, scores, labels, vels, source, len(parts), iou_threshold,
                                max_detections)


def _weighted_box_fusion(boxes, scores, labels, vels, source, n_parts: int,
                         iou_threshold: float, max_detections: int) -> DecodedBoxes:
    order = scores.argsort(descending=True)
    iou = ops.boxes_iou_bev(boxes, boxes)
    taken = torch.zeros(boxes.shape[0], dtype=torch.bool, device=boxes.device)
    out_b, out_s, out_l, out_v = [], [], [], []
    for i in order.tolist():
        if taken[i]:
            continue
        members = (~taken) & (labels == labels[i]) & (iou[i] > iou_threshold)
        members[i] = True
        taken |= members
        w = scores[members]
        wn = w / w.sum()
        b = boxes[members]
        mean = (b[:, :6] * wn[:, None]).sum(0)
        heading = torch.atan2((torch.sin(b[:, 6]) * wn).sum(), (torch.cos(b[:, 6]) * wn).sum())
        out_b.append(torch.cat([mean, heading[None]]))
        n_sources = int(source[members].unique().numel())
        out_s.append(w.mean() * n_sources / n_parts)
        out_l.append(labels[i])
        out_v.append((vels[members] * wn[:, None]).sum(0))
    fused_s = torch.stack(out_s)
    keep = fused_s.argsort(descending=True)[:max_detections]
    return DecodedBoxes(torch.stack(out_b)[keep], fused_s[keep], torch.stack(out_l)[keep],
                        torch.stack(out_v)[keep])

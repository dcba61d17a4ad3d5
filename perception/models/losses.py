"""CenterPoint losses: Gaussian focal loss on heatmaps, L1 on box codes, optional IoU loss."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .config import GridConfig, HeadConfig
from .heads import TaskOutput, regression_to_boxes
from .targets import TaskTargets


@dataclass
class LossBreakdown:
    """Scalar losses; ``total`` is what is minimised, ``parts`` are logged."""

    total: torch.Tensor
    parts: dict[str, float] = field(default_factory=dict)


def gaussian_focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 2.0,
                        gamma: float = 4.0) -> torch.Tensor:
    """CornerNet focal loss with Gaussian-reduced negatives, normalised by the object count.

    logits, target: (B, C, h, w); target 1 exactly at centres.
    """
    pred = logits.float().sigmoid().clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    neg_weight = (1 - target).pow(gamma)
    pos_loss = -(pred.log() * (1 - pred).pow(alpha) * pos).sum()
    neg_loss = -((1 - pred).log() * pred.pow(alpha) * neg_weight * (1 - pos)).sum()
    return (pos_loss + neg_loss) / pos.sum().clamp(min=1.0)


def gather_regression(regression: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(B, 10, h, w) at flat cells (B, K) -> (B, K, 10)."""
    B, C = regression.shape[:2]
    flat = regression.reshape(B, C, -1)
    return flat.gather(2, index[:, None, :].expand(-1, C, -1)).permute(0, 2, 1)


def aligned_iou_loss(pred_boxes: torch.Tensor, target_boxes: torch.Tensor) -> torch.Tensor:
    """1 - IoU of boxes compared in the target box's own axes (heading ignored); a
    differentiable stand-in for rotated 3D IoU. Inputs (K, 7); returns (K,)."""
    lo_p = pred_boxes[:, :3] - pred_boxes[:, 3:6] / 2
    hi_p = pred_boxes[:, :3] + pred_boxes[:, 3:6] / 2
    lo_t = target_boxes[:, :3] - target_boxes[:, 3:6] / 2
    hi_t = target_boxes[:, :3] + target_boxes[:, 3:6] / 2
    overlap = (torch.minimum(hi_p, hi_t) - torch.maximum(lo_p, lo_t)).clamp(min=0).prod(1)
    union = pred_boxes[:, 3:6].prod(1) + target_boxes[:, 3:6].prod(1) - overlap
    return 1 - overlap / union.clamp(min=1e-6)


def center_losses(outputs: list[TaskOutput], targets: list[TaskTargets], config: HeadConfig,
                  grid: GridConfig, stride: int) -> LossBreakdown:
    """Sum over tasks of weighted heatmap, L1 box-code and (optional) IoU losses."""
    total = outputs[0].heatmap.new_zeros((), dtype=torch.float32)
    parts: dict[str, float] = {}
    weights = torch.tensor(config.code_weights, device=total.device)
    for t, (out, tgt) in enumerate(zip(outputs, targets)):
        tgt = _to(tgt, total.device)
        hm = gaussian_focal_loss(out.heatmap, tgt.heatmap)
        pred = gather_regression(out.regression.float(), tgt.index)
        mask = tgt.mask.float()[..., None]
        n = mask.sum().clamp(min=1.0)
        l1 = ((pred - tgt.regression).abs() * mask * weights).sum() / n
        loss = config.heatmap_loss_weight * hm + config.regression_loss_weight * l1
        parts[f"task{t}/heatmap"] = float(hm.detach())
        parts[f"task{t}/l1"] = float(l1.detach())
        if config.iou_loss_weight > 0 and bool(tgt.mask.any()):
            w = out.heatmap.shape[-1]
            cells = torch.stack([tgt.index // w, tgt.index % w], -1).float()
            boxes, _ = regression_to_boxes(pred, cells, grid, stride)
            iou = aligned_iou_loss(boxes[tgt.mask], tgt.boxes[tgt.mask])
            loss = loss + config.iou_loss_weight * iou.mean()
            parts[f"task{t}/iou"] = float(iou.mean().detach())
        total = total + loss
    parts["total"] = float(total.detach())
    return LossBreakdown(total, parts)


def _to(t: TaskTargets, device: torch.device) -> TaskTargets:
    return TaskTargets(t.heatmap.to(device), t.index.to(device), t.mask.to(device),
                       t.regression.to(device), t.boxes.to(device))

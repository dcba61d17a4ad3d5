"""CenterPoint head and decoding.

Regression channels, per BEV cell of the head's map (cell size = grid cell x stride):
``(dx, dy, z, log l, log w, log h, sin(heading), cos(heading), vx, vy)`` where ``dx, dy`` is
the centre's offset inside the cell along x (H) and y (W), in cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .. import ops
from ..types import ObjectClass
from .common import conv_bn_relu
from .config import GridConfig, HeadConfig

REGRESSION_CHANNELS = 10


@dataclass
class TaskOutput:
    """Head output of one class group.

    Attributes:
        heatmap: (B, n_classes, h, w) float32 logits, x along h.
        regression: (B, 10, h, w) float32, channels as in the module docstring.
    """

    heatmap: torch.Tensor
    regression: torch.Tensor


@dataclass
class DecodedBoxes:
    """Decoded boxes of one sample, vehicle frame.

    Attributes: boxes (K, 7) float32; scores (K,) float32 in [0, 1]; labels (K,) int64
    ObjectClass values; velocities (K, 2) float32 m/s; sources (K, 3) int64 ``(task, class
    channel, flat cell index)`` of the heatmap peak each box came from (None where boxes were
    merged from several heads).
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    velocities: torch.Tensor
    sources: torch.Tensor | None = None


class CenterHead(nn.Module):
    """One heatmap + regression branch per class group over a shared conv."""

    def __init__(self, in_channels: int, config: HeadConfig):
        super().__init__()
        self.config = config
        C = config.head_channels
        self.shared = conv_bn_relu(in_channels, C)
        self.heatmaps = nn.ModuleList()
        self.regressions = nn.ModuleList()
        for task in config.tasks:
            hm = nn.Sequential(conv_bn_relu(C, C), nn.Conv2d(C, len(task), 3, 1, 1))
            nn.init.constant_(hm[-1].bias, -2.19)  # CenterPoint prior: sigmoid = 0.1
            self.heatmaps.append(hm)
            self.regressions.append(nn.Sequential(conv_bn_relu(C, C),
                                                  nn.Conv2d(C, REGRESSION_CHANNELS, 3, 1, 1)))

    def forward(self, bev: torch.Tensor) -> list[TaskOutput]:
        x = self.shared(bev)
        return [TaskOutput(hm(x), reg(x)) for hm, reg in zip(self.heatmaps, self.regressions)]


def regression_to_boxes(regression: torch.Tensor, cells_hw: torch.Tensor, grid: GridConfig,
                        stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn regression vectors at cells into boxes.

    Args: regression (..., 10); cells_hw (..., 2) float ``(h, w)`` cell indices.
    Returns: boxes (..., 7) and velocities (..., 2), vehicle frame.
    """
    r = grid.point_range_m
    sx, sy = grid.cell_size_m[0] * stride, grid.cell_size_m[1] * stride
    x = (cells_hw[..., 0] + regression[..., 0]) * sx + r[0]
    y = (cells_hw[..., 1] + regression[..., 1]) * sy + r[1]
    z = regression[..., 2]
    dims = regression[..., 3:6].clamp(max=5.0).exp()
    heading = torch.atan2(regression[..., 6], regression[..., 7])
    boxes = torch.cat([x[..., None], y[..., None], z[..., None], dims, heading[..., None]], -1)
    return boxes, regression[..., 8:10]


@torch.no_grad()
def decode(outputs: list[TaskOutput], config: HeadConfig, grid: GridConfig, stride: int
           ) -> list[DecodedBoxes]:
    """Top-K per task, score threshold, then NMS per class (circle or rotated BEV, through
    :mod:`perception.ops`), then the best ``max_detections`` per sample.

    Sigmoid, top-K, the gather of the regression vectors and the box decoding run once per
    task for the whole batch; only the threshold and NMS run per sample, so the number of
    small kernels and host synchronisations does not grow with the batch size.
    """
    B = outputs[0].heatmap.shape[0]
    per_task = [_decode_task_batch(out, classes, config, grid, stride, t)
                for t, (out, classes) in enumerate(zip(outputs, config.task_classes()))]
    results = []
    for b in range(B):
        parts = [_select_task(task, b, config) for task in per_task]
        boxes = torch.cat([p.boxes for p in parts])
        scores = torch.cat([p.scores for p in parts])
        order = scores.argsort(descending=True)[:config.max_detections]
        results.append(DecodedBoxes(boxes[order], scores[order],
                                    torch.cat([p.labels for p in parts])[order],
                                    torch.cat([p.velocities for p in parts])[order],
                                    torch.cat([p.sources for p in parts])[order]))
    return results


@dataclass
class _TaskCandidates:
    """Top-K candidates of one task for the whole batch, (B, k, ...) each."""

    scores: torch.Tensor
    boxes: torch.Tensor
    velocities: torch.Tensor
    labels: torch.Tensor
    sources: torch.Tensor
    count: list[int]          # candidates at or above the score threshold, per sample
    task_index: int


_LABELS: dict[tuple[tuple[int, ...], torch.device], torch.Tensor] = {}


def _label_values(classes: list[ObjectClass], device: torch.device) -> torch.Tensor:
    key = (tuple(int(c) for c in classes), device)
    if key not in _LABELS:  # a host-to-device copy once, not per frame
        _LABELS[key] = torch.tensor(key[0], device=device)
    return _LABELS[key]


def _decode_task_batch(out: TaskOutput, classes: list[ObjectClass], config: HeadConfig,
                       grid: GridConfig, stride: int, task_index: int) -> _TaskCandidates:
    heat = out.heatmap.float().sigmoid()  # (B, n_cls, h, w)
    B, n_cls, h, w = heat.shape
    k = min(config.top_k, n_cls * h * w)
    scores, flat = heat.reshape(B, -1).topk(k)  # (B, k), descending
    cls_idx = flat // (h * w)
    cell = flat % (h * w)
    cells_hw = torch.stack([cell // w, cell % w], -1).to(heat.dtype)
    reg = out.regression.float().reshape(B, REGRESSION_CHANNELS, -1)
    reg = torch.gather(reg, 2, cell[:, None, :].expand(-1, REGRESSION_CHANNELS, -1))
    boxes, vel = regression_to_boxes(reg.transpose(1, 2), cells_hw, grid, stride)
    labels = _label_values(classes, heat.device)[cls_idx]
    # Scores are sorted: the candidates above the threshold are a prefix (one sync per task).
    count = (scores >= config.score_threshold).sum(1).tolist()
    sources = torch.stack([torch.full_like(cls_idx, task_index), cls_idx, cell], -1)
    return _TaskCandidates(scores, boxes, vel, labels, sources, count, task_index)


def _select_task(task: _TaskCandidates, b: int, config: HeadConfig) -> DecodedBoxes:
    n = task.count[b]
    scores, labels = task.scores[b, :n], task.labels[b, :n]
    boxes = task.boxes[b, :n].contiguous()
    if n and config.nms == "circle":
        keep_idx = ops.circle_nms(boxes[:, :2], scores, config.nms_radius_m[task.task_index],
                                  labels=labels)
    elif n and config.nms == "rotated":
        keep_idx = ops.nms_bev(boxes, scores, config.nms_iou_threshold, labels=labels)
    else:
        keep_idx = torch.arange(n, device=boxes.device)
    return DecodedBoxes(boxes[keep_idx], scores[keep_idx], labels[keep_idx],
                        task.velocities[b, :n][keep_idx], task.sources[b, :n][keep_idx])


def box_code(boxes: torch.Tensor, velocities: torch.Tensor, cells_hw: torch.Tensor,
             grid: GridConfig, stride: int) -> torch.Tensor:
    """Inverse of :func:`regression_to_boxes`: (..., 10) regression targets of boxes whose
    centres fall in ``cells_hw`` (integer cell indices)."""
    r = grid.point_range_m
    sx, sy = grid.cell_size_m[0] * stride, grid.cell_size_m[1] * stride
    dx = (boxes[..., 0] - r[0]) / sx - cells_hw[..., 0]
    dy = (boxes[..., 1] - r[1]) / sy - cells_hw[..., 1]
    return torch.stack([dx, dy, boxes[..., 2], boxes[..., 3].clamp(min=1e-3).log(),
                        boxes[..., 4].clamp(min=1e-3).log(), boxes[..., 5].clamp(min=1e-3).log(),
                        torch.sin(boxes[..., 6]), torch.cos(boxes[..., 6]),
                        velocities[..., 0], velocities[..., 1]], -1)


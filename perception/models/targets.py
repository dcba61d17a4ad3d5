"""CenterPoint training targets: Gaussian heatmaps and regression targets at object centres."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .config import GridConfig, HeadConfig
from .heads import box_code


@dataclass
class TaskTargets:
    """Targets of one class group for a batch.

    Attributes:
        heatmap: (B, n_classes, h, w) float32 in [0, 1], 1 at object centres.
        index: (B, K) int64 flat cell ``h_cell * w + w_cell`` of each target object.
        mask: (B, K) bool, which of the K slots hold an object.
        regression: (B, K, 10) float32 box codes (see :mod:`perception.models.heads`).
        boxes: (B, K, 7) float32 the target boxes (for the optional IoU loss).
    """

    heatmap: torch.Tensor
    index: torch.Tensor
    mask: torch.Tensor
    regression: torch.Tensor
    boxes: torch.Tensor


def gaussian_radius(height: float, width: float, min_overlap: float) -> float:
    """CornerNet/CenterPoint radius (cells) so a shifted box keeps ``min_overlap`` IoU."""
    a1, b1 = 1.0, height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1 ** 2 - 4 * a1 * c1)) / 2
    a2, b2 = 4.0, 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2 ** 2 - 4 * a2 * c2)) / 2
    a3, b3 = 4 * min_overlap, -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def draw_gaussian(heatmap: np.ndarray, centre_hw: tuple[int, int], radius: int) -> None:
    """Max-blend a Gaussian of ``sigma = (2 radius + 1) / 6`` into heatmap (h, w) in place."""
    diameter = 2 * radius + 1
    sigma = diameter / 6.0
    ys, xs = np.ogrid[-radius:radius + 1, -radius:radius + 1]
    g = np.exp(-(xs * xs + ys * ys) / (2 * sigma * sigma))
    ch, cw = centre_hw
    h, w = heatmap.shape
    top, bottom = min(ch, radius), min(h - ch, radius + 1)
    left, right = min(cw, radius), min(w - cw, radius + 1)
    region = heatmap[ch - top:ch + bottom, cw - left:cw + right]
    patch = g[radius - top:radius + bottom, radius - left:radius + right]
    np.maximum(region, patch, out=region)


def build_targets(gt_boxes: list[torch.Tensor], gt_labels: list[torch.Tensor],
                  gt_velocities: list[torch.Tensor], config: HeadConfig, grid: GridConfig,
                  stride: int) -> list[TaskTargets]:
    """Targets for every task.

    Args: per sample gt boxes (M, 7), labels (M,) ObjectClass values, velocities (M, 2);
    ``stride``: head map stride relative to the BEV grid.
    """
    H, W = grid.shape_hw
    h, w = H // stride, W // stride
    sx, sy = grid.cell_size_m[0] * stride, grid.cell_size_m[1] * stride
    r = grid.point_range_m
    K = config.max_objects
    B = len(gt_boxes)
    out = []
    for classes in config.task_classes():
        heat = np.zeros((B, len(classes), h, w), np.float32)
        index = np.zeros((B, K), np.int64)
        mask = np.zeros((B, K), bool)
        cells = np.zeros((B, K, 2), np.float32)
        boxes = torch.zeros((B, K, 7))
        vels = torch.zeros((B, K, 2))
        for b in range(B):
            bx = gt_boxes[b].detach().cpu()
            lab = gt_labels[b].detach().cpu().numpy()
            n = 0
            for j in range(bx.shape[0]):
                if int(lab[j]) not in [int(c) for c in classes] or n >= K:
                    continue
                ch = (float(bx[j, 0]) - r[0]) / sx
                cw = (float(bx[j, 1]) - r[1]) / sy
                if not (0 <= ch < h and 0 <= cw < w):
                    continue
                ih, iw = int(ch), int(cw)
                radius = gaussian_radius(float(bx[j, 3]) / sx, float(bx[j, 4]) / sy,
                                         config.gaussian_overlap)
                radius = max(config.min_radius_cells, int(radius))
                k = [int(c) for c in classes].index(int(lab[j]))
                draw_gaussian(heat[b, k], (ih, iw), radius)
                index[b, n] = ih * w + iw
                mask[b, n] = True
                cells[b, n] = (ih, iw)
                boxes[b, n] = bx[j]
                vels[b, n] = gt_velocities[b][j].detach().cpu()
                n += 1
        code = box_code(boxes, vels, torch.from_numpy(cells), grid, stride)
        out.append(TaskTargets(torch.from_numpy(heat), torch.from_numpy(index),
                               torch.from_numpy(mask), code, boxes))
    return out

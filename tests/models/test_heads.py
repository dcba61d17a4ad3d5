"""CenterPoint targets -> head output -> decoding round trip, NMS options, losses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from perception.models.config import GridConfig, HeadConfig
from perception.models.heads import TaskOutput, decode
from perception.models.losses import (
    aligned_iou_loss,
    center_losses,
    gaussian_focal_loss,
)
from perception.models.targets import build_targets, draw_gaussian, gaussian_radius
from perception.types import ObjectClass

GRID = GridConfig(point_range_m=(-20.0, -20.0, -3.0, 20.0, 20.0, 3.0), cell_size_m=(0.5, 0.5))
BOXES = torch.tensor([[5.3, -7.1, 0.8, 4.5, 1.9, 1.6, 0.4],
                      [-12.0, 3.3, 0.9, 0.8, 0.7, 1.8, -2.5],
                      [10.0, 10.0, 0.9, 1.8, 0.6, 1.7, 3.0],
                      [30.0, 0.0, 0.9, 4.0, 2.0, 1.5, 0.0]])  # the last is outside the grid
LABELS = torch.tensor([1, 2, 4, 1])
VELS = torch.tensor([[3.0, -1.0], [0.5, 0.2], [-2.0, 4.0], [0.0, 0.0]])


def _perfect_outputs(targets, config, shape):
    """Head outputs that reproduce the targets exactly (logits +-inf-ish)."""
    outs = []
    for t in targets:
        heat = torch.where(t.heatmap >= 1.0, torch.tensor(12.0), torch.tensor(-12.0))
        reg = torch.zeros((1, 10) + shape)
        flat = reg.view(1, 10, -1)
        for k in t.mask[0].nonzero().flatten().tolist():
            flat[0, :, t.index[0, k]] = t.regression[0, k]
        outs.append(TaskOutput(heat, reg))
    return outs


@pytest.mark.parametrize("nms", ["circle", "rotated", "none"])
@pytest.mark.parametrize("stride", [1, 2])
def test_targets_decode_round_trip(nms, stride):
    config = HeadConfig(nms=nms)
    targets = build_targets([BOXES], [LABELS], [VELS], config, GRID, stride)
    assert [int(t.mask.sum()) for t in targets] == [1, 2]  # out-of-grid box dropped
    shape = (80 // stride, 80 // stride)
    assert targets[0].heatmap.shape == (1, 1) + shape
    decoded = decode(_perfect_outputs(targets, config, shape), config, GRID, stride)[0]
    assert len(decoded.boxes) == 3
    order = decoded.labels.argsort()
    got = decoded.boxes[order]
    want = BOXES[:3][LABELS[:3].argsort()]
    assert torch.allclose(got[:, :6], want[:, :6], atol=1e-4)
    dh = torch.remainder(got[:, 6] - want[:, 6] + math.pi, 2 * math.pi) - math.pi
    assert dh.abs().max() < 1e-4
    assert torch.allclose(decoded.velocities[order], VELS[:3][LABELS[:3].argsort()], atol=1e-5)
    assert sorted(decoded.labels.tolist()) == [1, 2, 4]


def test_decode_nms_suppresses_duplicates():
    config = HeadConfig(nms="circle", nms_radius_m=(2.0, 0.5), score_threshold=0.2)
    heat = torch.full((1, 1, 80, 80), -10.0)
    heat[0, 0, 40, 40] = 3.0
    heat[0, 0, 41, 40] = 2.0  # 0.5 m away: suppressed
    heat[0, 0, 60, 40] = 1.0  # 10 m away: kept
    reg = torch.zeros((1, 10, 80, 80))
    reg[:, 3:6] = math.log(2.0)
    reg[:, 7] = 1.0
    outs = [TaskOutput(heat, reg), TaskOutput(torch.full((1, 2, 80, 80), -10.0), reg)]
    decoded = decode(outs, config, GRID, 1)[0]
    assert len(decoded.boxes) == 2
    assert decoded.scores[0] > decoded.scores[1]
    rotated = decode(outs, HeadConfig(nms="rotated", nms_iou_threshold=0.1,
                                      score_threshold=0.2), GRID, 1)[0]
    assert len(rotated.boxes) == 2


def test_gaussian_heatmap_peak_and_radius():
    heat = np.zeros((20, 20), np.float32)
    draw_gaussian(heat, (0, 5), 3)  # clipped at the border
    assert heat[0, 5] == 1.0 and heat[0, 9] == 0.0 and 0 < heat[3, 5] < 1
    assert gaussian_radius(9.0, 4.0, 0.1) > gaussian_radius(2.0, 1.0, 0.1)


def test_losses_vanish_for_perfect_outputs_and_grow_otherwise():
    config = HeadConfig(iou_loss_weight=1.0)
    targets = build_targets([BOXES], [LABELS], [VELS], config, GRID, 1)
    perfect = _perfect_outputs(targets, config, (80, 80))
    good = center_losses(perfect, targets, config, GRID, 1)
    noisy = [TaskOutput(o.heatmap, o.regression + 0.3) for o in perfect]
    bad = center_losses(noisy, targets, config, GRID, 1)
    assert good.parts["task0/l1"] < 1e-6 and good.parts["task0/iou"] < 1e-5
    assert bad.parts["task0/l1"] > 0.1 and bad.total > good.total
    flat = torch.zeros_like(targets[0].heatmap)
    assert gaussian_focal_loss(flat, targets[0].heatmap) > gaussian_focal_loss(
        perfect[0].heatmap, targets[0].heatmap)


def test_aligned_iou_loss():
    a = torch.tensor([[0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 0.0]])
    b = torch.tensor([[1.0, 0.0, 0.0, 2.0, 2.0, 2.0, 0.0]])
    assert torch.allclose(aligned_iou_loss(a, a), torch.zeros(1))
    assert torch.allclose(aligned_iou_loss(a, b), torch.tensor([1 - 4.0 / 12.0]))


def test_task_classes():
    assert HeadConfig().task_classes() == [[ObjectClass.VEHICLE],
                                           [ObjectClass.PEDESTRIAN, ObjectClass.CYCLIST]]

"""Early (point painting) and late (per-modality heads, NMS / WBF) fusion."""

from __future__ import annotations

import dataclasses

import torch

from perception.models.batch import collate_frames
from perception.models.config import ModelConfig, PaintingConfig
from perception.models.detector import LateFusionDetector, batch_spec, build_detector
from perception.models.heads import DecodedBoxes
from perception.models.late_fusion import merge_boxes
from perception.models.painting import PointPainter
from perception.types import Modality

from ._helpers import small_model_config


def _decoded(rows, scores, labels):
    boxes = torch.tensor(rows, dtype=torch.float32)
    return DecodedBoxes(boxes, torch.tensor(scores), torch.tensor(labels),
                        torch.zeros((len(rows), 2)))


def test_weighted_box_fusion_averages_and_penalises_single_sensor_boxes():
    a = _decoded([[0.0, 0.0, 1.0, 4.0, 2.0, 1.5, 0.0], [20.0, 0.0, 1.0, 4.0, 2.0, 1.5, 0.0]],
                 [0.9, 0.8], [1, 1])
    b = _decoded([[0.4, 0.0, 1.0, 4.0, 2.0, 1.5, 0.0]], [0.3], [1])
    fused = merge_boxes([a, b], "wbf", 0.3, 10)
    assert len(fused.boxes) == 2
    top = fused.boxes[0]
    assert abs(float(top[0]) - (0.9 * 0.0 + 0.3 * 0.4) / 1.2) < 1e-5
    assert abs(float(fused.scores[0]) - 0.6) < 1e-6  # mean(0.9, 0.3) * 2 sensors / 2
    assert abs(float(fused.scores[1]) - 0.4) < 1e-6  # 0.8 * 1 sensor / 2
    nms = merge_boxes([a, b], "nms", 0.3, 10)
    assert len(nms.boxes) == 2 and abs(float(nms.scores[0]) - 0.9) < 1e-6
    assert len(merge_boxes([], "wbf", 0.3, 10).boxes) == 0


def test_late_fusion_detector_branches_and_subsets(tiny_frames):
    config = dataclasses.replace(small_model_config(), fusion="late", late_merge="wbf")
    model = build_detector(config)
    assert isinstance(model, LateFusionDetector)
    assert set(model.branches) == {"lidar", "camera", "radar"}
    batch = collate_frames(tiny_frames[:2], batch_spec(config))
    out = model(batch)
    loss = model.loss(batch, out)
    loss.total.backward()
    assert all(k in loss.parts for k in ("lidar/total", "camera/total", "radar/total"))
    model.eval()
    det = model.predict(tiny_frames[:1], drop=frozenset({Modality.CAMERA}))[0]
    assert det.modalities == {Modality.LIDAR, Modality.RADAR}


def test_point_painting_appends_features_and_flag(tiny_frames):
    config = small_model_config()
    painter = PointPainter(PaintingConfig(channels=4, image_size_hw=(64, 96),
                                          backbone_channels=(8, 16, 16))).eval()
    batch = collate_frames(tiny_frames[:2], batch_spec(config))
    painted = painter(batch, batch.lidar_points)
    assert painted[0].shape == (batch.lidar_points[0].shape[0],
                                batch.lidar_points[0].shape[1] + 5)
    flag = painted[0][:, -1]
    # tiny has one 60-degree front camera: points ahead are painted, points behind are not.
    x = batch.lidar_points[0][:, 0]
    assert flag[x < -2].sum() == 0 and flag[x > 5].mean() > 0.2
    assert torch.equal(painted[0][:, :batch.lidar_points[0].shape[1]], batch.lidar_points[0])
    no_camera = painter(batch.without({Modality.CAMERA}), batch.lidar_points)
    assert no_camera[0][:, -1].sum() == 0


def test_early_fusion_detector_trains_and_reports(tiny_frames):
    base = small_model_config()
    config = ModelConfig(grid=base.grid, lidar=base.lidar,
                         painting=PaintingConfig(channels=4, backbone_channels=(8, 16, 16)),
                         fusion="early", fuser=base.fuser, backbone=base.backbone,
                         head=base.head)
    config.validate()
    model = build_detector(config)
    batch = collate_frames(tiny_frames[:2], batch_spec(config))
    model.loss(batch, model(batch)).total.backward()
    painter_grads = [p.grad for p in model.painter.parameters() if p.grad is not None]
    assert painter_grads and any(g.abs().sum() > 0 for g in painter_grads)
    model.eval()
    assert model.predict(tiny_frames[:1])[0].modalities == {Modality.LIDAR, Modality.CAMERA}
    lidar_only = model.predict(tiny_frames[:1], drop=frozenset({Modality.CAMERA}))[0]
    assert lidar_only.modalities == {Modality.LIDAR}
    camera_only = model.predict(tiny_frames[:1], drop=frozenset({Modality.LIDAR}))[0]
    assert len(camera_only) == 0 and camera_only.modalities == frozenset()

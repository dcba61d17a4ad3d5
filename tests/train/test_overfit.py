"""Overfit: a few ``tiny`` simulator frames reach high AP within a bounded number of steps,
through the real trainer (targets, losses, optimiser, schedule) and the Waymo metrics."""

from __future__ import annotations

import time

import torch

from perception.models.config import (
    BackboneConfig,
    GridConfig,
    HeadConfig,
    LidarConfig,
    ModelConfig,
)
from perception.train.config import AugmentConfig, ExperimentConfig, TrainConfig
from perception.train.data import FrameDataset
from perception.train.trainer import Trainer, evaluate_model
from perception.types import ObjectClass

STEPS = 100


def test_lidar_detector_overfits_a_few_frames(tiny_frames, tmp_path):
    model = ModelConfig(
        grid=GridConfig(point_range_m=(-25.6, -25.6, -3.0, 25.6, 25.6, 3.0),
                        cell_size_m=(0.4, 0.4)),
        lidar=LidarConfig(pillar_channels=(32,)),
        backbone=BackboneConfig(layer_nums=(1, 1), layer_strides=(2, 2), channels=(32, 64),
                                upsample_channels=(32, 32)),
        head=HeadConfig(head_channels=32, nms_radius_m=(2.0, 0.5)))
    config = ExperimentConfig(
        model=model, augment=AugmentConfig(enabled=False),
        train=TrainConfig(out_dir=str(tmp_path), epochs=STEPS // 2, batch_size=2, lr=0.01,
                          eval_every_epochs=0, tensorboard=False, progress=False))
    frames = tiny_frames
    dataset = FrameDataset(lambda i: frames[i], len(frames))
    trainer = Trainer(config, train_set=dataset, val_set=dataset)
    before = evaluate_model(trainer.model, frames)
    t0 = time.perf_counter()
    losses = []
    for _ in range(config.train.epochs):
        losses.append(trainer.train_epoch().mean_loss)
    seconds = time.perf_counter() - t0
    assert trainer.step == STEPS
    after = evaluate_model(trainer.model, frames)
    ap = {c: after.get(c, 1).ap for c in (ObjectClass.VEHICLE, ObjectClass.PEDESTRIAN)}
    print(f"overfit: {STEPS} steps in {seconds:.1f} s, loss {losses[0]:.3f} -> "
          f"{losses[-1]:.3f}, LEVEL_1 AP {ap}")
    assert before.get(ObjectClass.VEHICLE, 1).ap < 0.2
    assert losses[-1] < 0.25 * losses[0]
    assert ap[ObjectClass.VEHICLE] >= 0.9
    assert ap[ObjectClass.PEDESTRIAN] >= 0.7
    assert after.get(ObjectClass.VEHICLE, 1).aph >= 0.8  # headings learned too
    assert torch.isfinite(torch.tensor(losses)).all()

"""Distillation from single-modality specialists (train.distill): the soft focal loss on
hand-made cells, which samples are distilled, the teachers' target against each teacher run
on its own, the target raised to the labels, the term confined to some classes' channels, and
the errors for teachers and class lists that cannot teach this student."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from perception.config import from_dict
from perception.errors import ConfigError
from perception.models.batch import collate_frames
from perception.models.checkpoint import save_weights
from perception.models.config import HeadConfig
from perception.models.detector import build_detector
from perception.train.config import (
    AugmentConfig,
    DataConfig,
    DistillConfig,
    ExperimentConfig,
    TrainConfig,
)
from perception.train.data import FrameDataset
from perception.train.distill import Distiller, soft_focal_loss
from perception.train.trainer import Trainer
from perception.types import Modality

from ..models._helpers import small_model_config

def _teacher(tmp_path, name: str, **overrides) -> str:
    """Weights of a single-modality model (random: the tests compare, they do not score)."""
    keep = {"lidar": None, "camera": None, "radar": None}
    config = small_model_config(**{**keep, **overrides})
    model = build_detector(config)
    with torch.no_grad():  # heatmaps far from the student's, so the loss is not ~0
        for p in model.head.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return str(save_weights(tmp_path / f"{name}.pt", model, config, half=False))


def _camera_radar_teachers(tmp_path) -> tuple[str, str]:
    full = small_model_config()
    return (_teacher(tmp_path, "camera", camera=full.camera),
            _teacher(tmp_path, "radar", radar=full.radar))


def _run(student, frames, present: list[list[int]]):
    """The batch of ``frames`` given the sensors ``present`` (per sample: lidar, camera,
    radar) and the student's output on it, with the heatmaps' gradients kept."""
    batch = collate_frames(frames, student.spec)
    batch = dataclasses.replace(batch, present=torch.tensor(present, dtype=torch.bool))
    output = student(batch)
    for task in output.tasks:
        task.heatmap.retain_grad()
    return batch, output


def test_soft_focal_loss_on_hand_made_cells():
    # sigmoid(0) = 0.5 against target 1: |0.5|^2 * ln 2.
    assert float(soft_focal_loss(torch.zeros(1), torch.ones(1))) == pytest.approx(
        0.25 * math.log(2))
    # beta 0 is plain binary cross-entropy: ln 2 per cell at logit 0, whatever the target.
    assert float(soft_focal_loss(torch.zeros(3), torch.tensor([0.0, 0.3, 1.0]), beta=0)
                 ) == pytest.approx(3 * math.log(2))
    # A student equal to its teacher is at the minimum, 0, with zero gradient.
    logits = torch.tensor([-2.0, 0.5, 3.0], requires_grad=True)
    loss = soft_focal_loss(logits, logits.detach().sigmoid())
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert torch.all(logits.grad.abs() < 1e-7)


def test_only_samples_whose_every_sensor_has_a_teacher_are_distilled(tmp_path):
    distiller = Distiller(DistillConfig(_camera_radar_teachers(tmp_path)),
                          build_detector(small_model_config()), DataConfig())
    present = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 1], [0, 0, 0],
                            [1, 0, 1]], dtype=torch.bool)
    assert distiller.covered(present).tolist() == [False, False, True, True, True, False,
                                                   False]


def test_target_is_the_maximum_of_the_teachers_of_the_given_sensors(tiny_frames, tmp_path):
    camera_path, radar_path = _camera_radar_teachers(tmp_path)
    student = build_detector(small_model_config())
    distiller = Distiller(DistillConfig((camera_path, radar_path)), student, DataConfig())
    batch = collate_frames(tiny_frames[:3], student.spec)
    present = torch.tensor([[0, 1, 1], [0, 1, 0], [0, 0, 1]], dtype=torch.bool)
    targets = distiller.targets(batch, present, torch.arange(3))

    def alone(modality: Modality, row: int) -> list[torch.Tensor]:
        teacher = distiller.teachers[modality]
        sub = batch.rows(torch.tensor([row])).without(set(Modality) - {modality})
        with torch.no_grad():
            return [t.heatmap.sigmoid()[0] for t in teacher(sub).tasks]

    for t, target in enumerate(targets):
        camera0, radar0 = alone(Modality.CAMERA, 0)[t], alone(Modality.RADAR, 0)[t]
        assert not torch.allclose(camera0, radar0)  # the maximum is a real choice
        torch.testing.assert_close(target[0], torch.maximum(camera0, radar0))
        torch.testing.assert_close(target[1], alone(Modality.CAMERA, 1)[t])
        torch.testing.assert_close(target[2], alone(Modality.RADAR, 2)[t])


def test_label_floor_raises_the_target_to_the_label_heatmap(tiny_frames, tmp_path):
    teachers = _camera_radar_teachers(tmp_path)
    student = build_detector(small_model_config())
    plain = Distiller(DistillConfig(teachers), student, DataConfig())
    floored = Distiller(DistillConfig(teachers, label_floor=True), student, DataConfig())
    batch = collate_frames(tiny_frames[:2], student.spec)
    batch = dataclasses.replace(batch, present=torch.tensor([[0, 1, 0], [0, 1, 1]],
                                                            dtype=torch.bool))
    output = student(batch)
    rows = torch.arange(2)
    labels = floored.labels(batch, rows)
    objects = sum(int(b.shape[0]) for b in batch.gt_boxes)
    assert objects > 0
    # one peak of exactly 1 per labelled object (objects may share a centre cell)
    assert 0 < sum(int((label == 1).sum()) for label in labels) <= objects
    teacher_targets = plain.targets(batch, batch.present, rows)
    assert any(bool((label > t).any()) for label, t in zip(labels, teacher_targets))
    expected = sum(soft_focal_loss(task.heatmap, torch.maximum(t, label))
                   for task, t, label in zip(output.tasks, teacher_targets, labels)) / objects
    torch.testing.assert_close(floored.loss(batch, output), expected)
    assert not torch.isclose(plain.loss(batch, output), expected)


def test_classes_confine_the_term_to_their_channels(tiny_frames, tmp_path):
    teachers = _camera_radar_teachers(tmp_path)
    student = build_detector(small_model_config())
    assert student.config.head.tasks == (("VEHICLE",), ("PEDESTRIAN", "CYCLIST"))
    every = Distiller(DistillConfig(teachers), student, DataConfig())
    no_cyclists = Distiller(DistillConfig(teachers, classes=("VEHICLE", "PEDESTRIAN")),
                            student, DataConfig())
    assert no_cyclists.channels == [[0], [0]]
    batch, output = _run(student, tiny_frames[:2], [[0, 1, 0], [0, 0, 1]])
    rows = torch.arange(2)
    targets = every.targets(batch, batch.present, rows)
    objects = sum(int(b.shape[0]) for b in batch.gt_boxes)
    vehicle, person = (soft_focal_loss(task.heatmap[:, :1], t[:, :1])
                       for task, t in zip(output.tasks, targets))
    cyclist = soft_focal_loss(output.tasks[1].heatmap[:, 1:], targets[1][:, 1:])
    assert float(cyclist.detach()) > 0
    torch.testing.assert_close(every.loss(batch, output),
                               (vehicle + person + cyclist) / objects)
    loss = no_cyclists.loss(batch, output)
    torch.testing.assert_close(loss, (vehicle + person) / objects)
    loss.backward()
    assert float(output.tasks[1].heatmap.grad[:, 1].abs().sum()) == 0.0  # cyclists: labels only
    assert float(output.tasks[1].heatmap.grad[:, 0].abs().sum()) > 0.0
    assert float(output.tasks[0].heatmap.grad.abs().sum()) > 0.0


def test_class_lists_that_cannot_be_distilled_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="classes: unknown class 'TRUCK'"):
        from_dict(DistillConfig, {"classes": ["VEHICLE", "TRUCK"]}, source="distill")
    with pytest.raises(ConfigError, match="named twice"):
        from_dict(DistillConfig, {"classes": ["CYCLIST", "CYCLIST"]}, source="distill")
    vehicles_only = dataclasses.replace(small_model_config(), head=HeadConfig(
        head_channels=16, tasks=(("VEHICLE",),), nms_radius_m=(2.0,)))
    with pytest.raises(ConfigError, match="CYCLIST is not a class of the student's head"):
        Distiller(DistillConfig(_camera_radar_teachers(tmp_path), classes=("CYCLIST",)),
                  build_detector(vehicles_only), DataConfig())


def test_gradient_reaches_only_the_distilled_samples(tiny_frames, tmp_path):
    student = build_detector(small_model_config())
    distiller = Distiller(DistillConfig(_camera_radar_teachers(tmp_path)), student,
                          DataConfig())
    batch, output = _run(student, tiny_frames[:2], [[1, 1, 1], [0, 1, 0]])
    loss = distiller.loss(batch, output)
    assert loss is not None and float(loss.detach()) > 0
    loss.backward()
    for task in output.tasks:
        assert float(task.heatmap.grad[0].abs().sum()) == 0.0   # lidar: no teacher
        assert float(task.heatmap.grad[1].abs().sum()) > 0.0    # camera alone: distilled
    lidar_only = dataclasses.replace(batch, present=torch.tensor([[1, 0, 0], [1, 1, 0]],
                                                                 dtype=torch.bool))
    assert distiller.loss(lidar_only, student(lidar_only)) is None


def test_a_training_step_logs_the_distillation_term(tiny_frames, tmp_path):
    config = ExperimentConfig(
        model=dataclasses.replace(small_model_config(), fuser=dataclasses.replace(
            small_model_config().fuser, modality_dropout=1.0, modality_dropout_mode="subset",
            dropout_modalities=("lidar",))),
        augment=AugmentConfig(enabled=False),
        train=TrainConfig(out_dir=str(tmp_path / "run"), epochs=1, batch_size=2,
                          eval_every_epochs=0, tensorboard=False, progress=False,
                          distill=DistillConfig(_camera_radar_teachers(tmp_path))))
    trainer = Trainer(config, train_set=FrameDataset(lambda i: tiny_frames[i], 2))
    batch = next(iter(trainer.loader))
    result = trainer.train_step(batch)
    # Lidar is always dropped, so every sample is camera+radar and distilled.
    assert result.parts["distill"] > 0
    assert math.isfinite(result.parts["total"])


def test_teachers_that_cannot_teach_this_student_are_refused(tmp_path):
    student = build_detector(small_model_config())
    full = small_model_config()
    two = str(save_weights(tmp_path / "two.pt", build_detector(small_model_config(radar=None)),
                           small_model_config(radar=None)))
    cases = {
        "single-modality": two,
        "model.head.tasks": _teacher(tmp_path, "tasks", radar=full.radar,
                                     head=HeadConfig(head_channels=16,
                                                     tasks=(("VEHICLE",), ("PEDESTRIAN",),
                                                            ("CYCLIST",)),
                                                     nms_radius_m=(2.0, 0.7, 0.7))),
        "image_size_hw": _teacher(tmp_path, "image", camera=dataclasses.replace(
            full.camera, image_size_hw=(32, 48))),
        "checkpoint not found": str(tmp_path / "missing.pt"),
    }
    for message, path in cases.items():
        with pytest.raises(ConfigError, match=message):
            Distiller(DistillConfig((path,)), student, DataConfig())
    radar = _teacher(tmp_path, "radar", radar=full.radar)
    with pytest.raises(ConfigError, match="a second radar teacher"):
        Distiller(DistillConfig((radar, radar)), student, DataConfig())
    with pytest.raises(ConfigError, match="data.radar_scans"):
        Distiller(DistillConfig((radar,)), student, DataConfig(radar_scans=2))
    without_radar = build_detector(small_model_config(radar=None))
    with pytest.raises(ConfigError, match="which the student does not"):
        Distiller(DistillConfig((radar,)), without_radar, DataConfig())
    late = build_detector(small_model_config(fusion="late"))
    with pytest.raises(ConfigError, match="late fusion"):
        Distiller(DistillConfig((radar,)), late, DataConfig())

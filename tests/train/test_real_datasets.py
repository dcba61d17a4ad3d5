"""The training data pipeline on REAL sensor data, not only the simulator.

Each test takes a real fixture (``perception.fixtures``; skipped with the reason when absent),
turns it into the layout that ``DataConfig`` reads (the Waymo converter, or a nuScenes devkit
layout written into ``tmp_path`` around the real keyframe), lets :class:`Trainer` build the
training set from ``config.data`` through ``build_dataset``, takes optimisation steps on a
small model and evaluates or predicts on the same frames.

What the fixtures hold (see ``shared/data/PROVENANCE.md``):
- Waymo ``pvps_data_one_frame.tfrecord``: five camera JPEGs and 75 labels, but empty range
  images, so its converted frame has no lidar. The only real Waymo lidar is mmdet3d's 800-point
  KITTI-format subsample of the ``val.tfrecord`` frame (same timestamp); it is written into
  that frame's record before conversion so that the lidar path runs on real returns.
- nuScenes keyframe: full LIDAR_TOP sweep, six cameras, 69 boxes, no radar. The only real
  radar scan comes from another log; it is added, at an assumed mount, in one variant.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from perception.cli import main as cli_main
from perception.data import waymo, waymo_writer
from perception.geometry import count_points_in_boxes
from perception.models.config import GridConfig
from perception.train.config import (
    AugmentConfig,
    DataConfig,
    ExperimentConfig,
    TrainConfig,
)
from perception.train.trainer import Trainer, evaluate_model
from perception.types import LidarSweep, Modality, ObjectClass

from ..data.nuscenes_devkit import INFO_PKL, RADAR_PCD, build_devkit
from ..models._helpers import small_model_config

# The 800-point Waymo lidar of the val.tfrecord frame (timestamp 1507315488219118).
WAYMO_KITTI_LIDAR = "mmdetection3d/tests/data/waymo/kitti_format/training/velodyne/1000000.bin"
NUSCENES_PKL = INFO_PKL


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def _convert(src: Path, out: Path) -> None:
    """``perception convert waymo SRC OUT``, the command users run."""
    assert cli_main(["-q", "convert", "waymo", str(src), str(out), "--no-progress"]) == 0


def _trainer(model, data: DataConfig, tmp_path: Path) -> Trainer:
    # No train_set: the Trainer builds it from config.data with build_dataset, as in a run.
    # Augmentation off keeps the boxes where the assertions expect them.
    config = ExperimentConfig(
        model=model, data=data, augment=AugmentConfig(enabled=False),
        train=TrainConfig(out_dir=str(tmp_path / "run"), epochs=1, batch_size=1, lr=0.005,
                          max_steps_per_epoch=2, eval_every_epochs=0, tensorboard=False,
                          progress=False))
    return Trainer(config)


def _snapshot(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _changed(module: torch.nn.Module, before: list[torch.Tensor]) -> bool:
    return any(not torch.equal(p, q) for p, q in zip(module.parameters(), before))


def _train_two_steps(trainer: Trainer, present: set[Modality]) -> list[float]:
    """Two steps on the dataset's frames. The encoder of each modality in the data must learn
    (a modality silently lost by the pipeline would leave it untouched); the encoders of
    absent modalities get no gradient and must stay as they were."""
    encoders = {m: getattr(trainer.model, m.value) for m in Modality
                if getattr(trainer.model, m.value, None) is not None}
    before = {m: _snapshot(enc) for m, enc in encoders.items()}
    losses = []
    for _ in range(2):
        batch = next(iter(trainer.loader))
        losses.append(trainer.train_step(batch).parts["total"])
    assert all(math.isfinite(v) for v in losses), losses
    for m, enc in encoders.items():
        assert _changed(enc, before[m]) == (m in present), f"{m.value} encoder"
    return losses


def _evaluable_gt(result) -> int:
    """Ground truth the metric actually scores (in range, evaluated class, with points)."""
    c = result.counts
    return c.num_gt - c.gt_other_class - c.gt_dropped_zero_points


# --------------------------------------------------------------------------------------------
# Waymo
# --------------------------------------------------------------------------------------------

@pytest.fixture
def waymo_camera_root(tmp_path, fixture_file):
    out = tmp_path / "converted"
    _convert(fixture_file("waymo_camera_frame"), out)
    return out


@pytest.fixture
def waymo_lidar_root(tmp_path, fixture_file, shared_data):
    """The val.tfrecord frame (calibrations, pose, 18 labels) with its real 800-point lidar
    subsample written into the range images, then converted."""
    lidar_file = shared_data / WAYMO_KITTI_LIDAR
    if not lidar_file.exists():
        pytest.skip(f"{lidar_file} not present")
    frame = waymo.WaymoReader(fixture_file("waymo_frame"))[0]
    # mmdet3d layout: x, y, z, intensity, elongation, timestamp (us), vehicle frame.
    raw = np.fromfile(lidar_file, "<f4").reshape(-1, 6)
    # The same frame: every point carries its stamp (rounded to float32).
    assert (raw[:, 5] == np.float32(frame.stamp_ns // 1000)).all()
    sweep = LidarSweep("lidar", frame.stamp_ns, np.ascontiguousarray(raw[:, :5]),
                       waymo.LIDAR_COLUMNS)
    src = tmp_path / "src"
    src.mkdir()
    waymo_writer.write_frames(src / f"{frame.sequence_id}.tfrecord",
                       [dataclasses.replace(frame, lidar=sweep)])
    out = tmp_path / "converted"
    _convert(src, out)
    return out, raw


def test_waymo_camera_frame_trains_camera_lidar_model(waymo_camera_root, tmp_path):
    data = DataConfig(source="waymo", train_root=str(waymo_camera_root),
                      val_root=str(waymo_camera_root))
    trainer = _trainer(small_model_config(radar=None), data, tmp_path)
    frame = trainer.train_set[0]
    # The real frame: five cameras, 75 labels; its range images are empty, so no lidar.
    assert len(trainer.train_set) == 1
    assert set(frame.cameras) == {"FRONT", "FRONT_LEFT", "FRONT_RIGHT", "SIDE_LEFT",
                                  "SIDE_RIGHT"}
    assert frame.cameras["FRONT"].image.shape[2] == 3
    assert len(frame.boxes) == 75 and (frame.boxes.labels == ObjectClass.VEHICLE).sum() == 37
    assert frame.modalities == {Modality.CAMERA}

    _train_two_steps(trainer, {Modality.CAMERA})
    result = evaluate_model(trainer.model, trainer.train_set, batch_size=1)
    assert result.counts.num_frames == 1 and _evaluable_gt(result) > 0
    # The detector reports using the camera only: it was given no lidar.
    assert trainer.model.predict([frame])[0].modalities == {Modality.CAMERA}


def test_waymo_real_lidar_trains_lidar_model(waymo_lidar_root, tmp_path):
    root, raw = waymo_lidar_root
    # A 153.6 m grid: the frame's only vehicle is 77 m away (the rest are signs).
    grid = GridConfig(point_range_m=(-76.8, -76.8, -3.0, 76.8, 76.8, 5.0),
                      cell_size_m=(1.6, 1.6))
    model = small_model_config(camera=None, radar=None, grid=grid)
    data = DataConfig(source="waymo", train_root=str(root), val_root=str(root))
    trainer = _trainer(model, data, tmp_path)
    frame = trainer.train_set[0]
    assert frame.modalities == {Modality.LIDAR} and len(frame.boxes) == 18
    # Range-image projection keeps nearly every point (two on one pixel keep the nearer) and
    # the points stay in the labels' frame: some fall inside the labelled signs.
    assert len(frame.lidar) >= 0.95 * len(raw)
    assert count_points_in_boxes(frame.lidar.points, frame.boxes.boxes).sum() > 0

    _train_two_steps(trainer, {Modality.LIDAR})
    result = evaluate_model(trainer.model, trainer.train_set, batch_size=1)
    assert _evaluable_gt(result) > 0
    assert trainer.model.predict([frame])[0].modalities == {Modality.LIDAR}


# --------------------------------------------------------------------------------------------
# nuScenes
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("with_radar", [False, True], ids=["keyframe", "keyframe+radar"])
def test_nuscenes_trains_fusion_model(tmp_path, fixture_file, with_radar):
    demo = fixture_file("nuscenes_keyframe")
    if not (demo / NUSCENES_PKL).exists():
        pytest.skip(f"{demo / NUSCENES_PKL} not present")
    radar = fixture_file("nuscenes_radar") / RADAR_PCD if with_radar else None
    root = tmp_path / "nuscenes"
    build_devkit(root, demo, radar, previous_sample=False)
    data = DataConfig(source="nuscenes", train_root=str(root), nuscenes_version="v1.0-mini")
    trainer = _trainer(small_model_config(), data, tmp_path)
    frame = trainer.train_set[0]
    # The real keyframe: the full 34688-point sweep, six cameras, 69 boxes (+ the radar scan).
    expected = {Modality.LIDAR, Modality.CAMERA} | ({Modality.RADAR} if with_radar else set())
    assert frame.modalities == expected
    assert len(frame.lidar) == 34688 and len(frame.cameras) == 6 and len(frame.boxes) == 69
    assert len(frame.radars.get("RADAR_BACK_LEFT", ())) == (125 if with_radar else 0)
    # The boxes sit on the sweep: most annotated points are inside them.
    inside = count_points_in_boxes(frame.lidar.points, frame.boxes.boxes).sum()
    assert inside >= 0.9 * frame.boxes.num_points.sum()

    _train_two_steps(trainer, expected)
    result = evaluate_model(trainer.model, trainer.train_set, batch_size=1)
    assert _evaluable_gt(result) > 0
    # The model has all three encoders; it names only the modalities the frame carried.
    assert trainer.model.predict([frame])[0].modalities == expected


def test_nuscenes_info_file_is_a_training_root(tmp_path, fixture_file):
    """An mmdet3d info ``.pkl`` works as ``train_root`` directly (restricted unpickler)."""
    demo = fixture_file("nuscenes_keyframe")
    if not (demo / NUSCENES_PKL).exists():
        pytest.skip(f"{demo / NUSCENES_PKL} not present")
    data = DataConfig(source="nuscenes", train_root=str(demo / NUSCENES_PKL))
    trainer = _trainer(small_model_config(radar=None), data, tmp_path)
    frame = trainer.train_set[0]
    assert frame.modalities == {Modality.LIDAR, Modality.CAMERA}
    assert len(frame.cameras) == 6 and len(frame.boxes) == 69
    _train_two_steps(trainer, {Modality.LIDAR, Modality.CAMERA})

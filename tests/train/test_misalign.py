"""Test-time misalignment (camera yaw, lidar shift, camera lag) and the test split."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from perception.errors import ConfigError
from perception.geometry import project_points
from perception.train.config import DataConfig
from perception.train.data import FrameDataset, SimFrames, build_dataset
from perception.train.misalign import STANDARD, Misalignment, misalign, misaligned_loader


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    return SimFrames("tiny", seeds=[0], frames_per_seed=2, stride=3,
                     cache_dir=tmp_path_factory.mktemp("cache"))


def test_camera_yaw_moves_projections_sideways(frames):
    frame = frames(1)
    cam = frame.cameras["FRONT"]
    out = misalign(frame, Misalignment("yaw", camera_yaw_deg=1.0))
    moved = out.cameras["FRONT"]
    point = np.array([[20.0, 0.0, 1.0]])
    u0 = project_points(point, cam.calibration)[0][0, 0]
    u1 = project_points(point, moved.calibration)[0][0, 0]
    fx = cam.calibration.K[0, 0]
    # Turning the camera left by 1 deg moves a point ahead to the right by ~fx tan(1 deg).
    assert u1 - u0 == pytest.approx(fx * np.tan(np.deg2rad(1.0)), rel=0.05)
    assert np.array_equal(moved.image, cam.image) and moved.stamp_ns == cam.stamp_ns
    assert np.array_equal(out.lidar.points, frame.lidar.points)


def test_lidar_shift_and_camera_lag(frames):
    frame = frames(1)  # simulator frame 3
    shifted = misalign(frame, Misalignment("shift", lidar_shift_m=0.2))
    assert np.allclose(shifted.lidar.points[:, 0] - frame.lidar.points[:, 0], 0.2)
    assert np.array_equal(shifted.lidar.points[:, 1:], frame.lidar.points[:, 1:])
    earlier = frames.previous(1, 3)  # frames 2, 1, 0
    lagged = misalign(frame, Misalignment("lag", camera_lag_s=0.1), earlier)
    # tiny's lidar runs at 10 Hz: 100 ms earlier is simulator frame 2.
    assert np.array_equal(lagged.cameras["FRONT"].image, earlier[0].cameras["FRONT"].image)
    assert not np.array_equal(lagged.cameras["FRONT"].image, frame.cameras["FRONT"].image)
    assert lagged.cameras["FRONT"].stamp_ns == frame.cameras["FRONT"].stamp_ns
    first = misalign(frame, Misalignment("lag", camera_lag_s=0.1), [])  # sequence start
    assert np.array_equal(first.cameras["FRONT"].image, frame.cameras["FRONT"].image)
    with pytest.raises(ConfigError, match="camera lag"):
        misaligned_loader(frames, None, Misalignment("lag", camera_lag_s=0.1))


def test_misaligned_dataset_and_standard_rows(frames):
    dataset = FrameDataset(misaligned_loader(frames, frames.previous, STANDARD[-1]), 2,
                           previous=frames.previous)
    frame = dataset[1]
    assert np.allclose(frame.lidar.points[:, 0] - frames(1).lidar.points[:, 0], 0.2)
    assert [m.name for m in STANDARD] == ["camera_yaw_1deg", "lidar_shift_0.2m",
                                          "camera_lag_100ms", "misaligned_all"]


def test_test_split_is_held_out(tmp_path):
    config = DataConfig(sim_preset="tiny", train_seeds=(0,), val_seeds=(5,), test_seeds=(9,),
                        frames_per_seed=1, cache_dir=str(tmp_path))
    test = build_dataset(config, "test")
    assert test[0].sequence_id.endswith("seed9")
    with pytest.raises(ValueError, match="test_seeds"):
        dataclasses.replace(config, test_seeds=(5,)).validate()
    with pytest.raises(ConfigError, match="test_seeds: empty"):
        build_dataset(dataclasses.replace(config, test_seeds=()), "test")

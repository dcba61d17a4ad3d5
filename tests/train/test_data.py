"""Batches from SensorFrames (modality masks, camera resizing) and the .npz frame cache."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from perception.data.frame_npz import load_frame_npz, save_frame_npz
from perception.errors import DataError, ValidationError
from perception.models.batch import BatchSpec, collate_frames
from perception.train.data import SimFrames
from perception.types import Modality


def test_npz_cache_round_trip(tiny_frames, tmp_path):
    frame = tiny_frames[2]
    path = tmp_path / "f.npz"
    save_frame_npz(path, frame)
    back = load_frame_npz(path)
    assert back.stamp_ns == frame.stamp_ns and back.sequence_id == frame.sequence_id
    assert np.array_equal(back.lidar.points, frame.lidar.points)
    assert back.lidar.columns == frame.lidar.columns
    cam, cam0 = back.cameras["FRONT"], frame.cameras["FRONT"]
    assert np.array_equal(cam.image, cam0.image)
    assert np.allclose(cam.calibration.T_vehicle_optical, cam0.calibration.T_vehicle_optical)
    assert np.allclose(cam.calibration.K, cam0.calibration.K)
    radar, radar0 = back.radars["RADAR_FRONT"], frame.radars["RADAR_FRONT"]
    assert np.array_equal(radar.points, radar0.points) and radar.columns == radar0.columns
    assert np.array_equal(back.boxes.boxes, frame.boxes.boxes)
    assert np.array_equal(back.boxes.num_points, frame.boxes.num_points)
    assert np.array_equal(back.boxes.velocities, frame.boxes.velocities)
    assert np.allclose(back.ego_pose.T_world_vehicle, frame.ego_pose.T_world_vehicle)


def test_sim_frames_are_cached_and_reused(tmp_path):
    frames = SimFrames("tiny", seeds=[3], frames_per_seed=2, stride=2, cache_dir=tmp_path)
    first = frames(1)
    files = sorted(tmp_path.rglob("*.npz"))
    assert [f.name for f in files] == ["000002.npz"]
    again = SimFrames("tiny", seeds=[3], frames_per_seed=2, stride=2, cache_dir=tmp_path)(1)
    assert again.frame_index == first.frame_index == 2
    assert np.array_equal(again.lidar.points, first.lidar.points)


def test_corrupt_cache_file_is_a_data_error(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"junk")
    with pytest.raises(DataError):
        load_frame_npz(bad)


def test_collate_masks_and_camera_resize(tiny_frames):
    no_lidar = dataclasses.replace(tiny_frames[1], lidar=None)
    no_radar = dataclasses.replace(tiny_frames[2], radars={})
    spec = BatchSpec(lidar_columns=("intensity", "elongation"), image_size_hw=(32, 48),
                     radar=True)
    batch = collate_frames([tiny_frames[0], no_lidar, no_radar], spec)
    assert batch.present.tolist() == [[True, True, True], [False, True, True],
                                      [True, True, False]]
    assert batch.lidar_points[0].shape[1] == 5
    assert torch.count_nonzero(batch.lidar_points[0][:, 4]) == 0  # missing column -> 0
    assert batch.lidar_points[1].shape[0] == 0
    assert batch.images.shape == (3, 1, 3, 32, 48)
    K0 = tiny_frames[0].cameras["FRONT"].calibration.K
    assert np.allclose(batch.intrinsics[0, 0].numpy(), np.diag([0.5, 0.5, 1.0]) @ K0,
                       atol=1e-4)
    assert batch.has(Modality.RADAR).tolist() == [True, True, False]
    assert batch.without({Modality.CAMERA}).has(Modality.CAMERA).sum() == 0
    assert batch.gt_boxes[0].shape[1] == 7 and batch.gt_labels[0].dtype == torch.int64
    lidar_only = collate_frames(tiny_frames[:1], BatchSpec())
    assert lidar_only.present.tolist() == [[True, False, False]]
    with pytest.raises(ValidationError):
        collate_frames([], spec)
    with pytest.raises(ValidationError):
        collate_frames(["frame"], spec)


def test_radar_scans_accumulate_into_the_current_vehicle_frame(tmp_path):
    from perception.models.batch import radar_point_features
    from perception.train.data import FrameDataset

    sim = SimFrames("tiny", seeds=[0], frames_per_seed=3, stride=2, cache_dir=tmp_path)
    single = FrameDataset(sim, 3)
    multi = FrameDataset(sim, 3, radar_scans=3)
    assert sorted(multi[0].radars) == ["RADAR_FRONT"]  # nothing earlier in the sequence
    frame = multi[2]
    assert sorted(frame.radars) == ["RADAR_FRONT", "RADAR_FRONT@-1", "RADAR_FRONT@-2"]
    older = frame.radars["RADAR_FRONT@-1"]
    source = single[1].radars["RADAR_FRONT"]
    # The ego drives forward (+x): old returns of static structure move backwards.
    T = np.linalg.inv(frame.ego_pose.T_world_vehicle) @ single[1].ego_pose.T_world_vehicle
    assert T[0, 3] < -0.5
    expect = source.points[:, :3] @ T[:3, :3].T + T[:3, 3]
    assert np.allclose(older.points[:, :3], expect, atol=1e-4)
    # The world position of every old return is preserved.
    world_old = source.points[:, :3] @ single[1].ego_pose.T_world_vehicle[:3, :3].T \
        + single[1].ego_pose.T_world_vehicle[:3, 3]
    world_new = older.points[:, :3] @ frame.ego_pose.T_world_vehicle[:3, :3].T \
        + frame.ego_pose.T_world_vehicle[:3, 3]
    assert np.allclose(world_old, world_new, atol=1e-3)
    feats = radar_point_features(frame)
    n0 = len(frame.radars["RADAR_FRONT"])
    # The newest scan is within one radar period of the frame stamp; older ones are earlier.
    assert np.abs(feats[:n0, 6]).max() < 0.08
    assert (feats[n0:, 6] < feats[:n0, 6].min() - 0.05).all()


def test_lidar_sweeps_accumulate_with_time_offsets(tmp_path):
    from perception.train.data import FrameDataset

    sim = SimFrames("tiny", seeds=[0], frames_per_seed=3, stride=2, cache_dir=tmp_path)
    single = FrameDataset(sim, 3)
    multi = FrameDataset(sim, 3, lidar_sweeps=2)
    now, before = single[2].lidar, single[1].lidar
    merged = multi[2].lidar
    assert merged.columns == now.columns
    assert len(merged) == len(now) + len(before)
    assert np.array_equal(merged.points[:len(now)], now.points)
    t = merged.column("time_offset_s")
    dt = (before.stamp_ns - now.stamp_ns) * 1e-9
    assert dt < -0.1
    assert np.allclose(t[len(now):], before.column("time_offset_s") + dt, atol=1e-5)
    # Points keep their world position.
    pose_now, pose_before = multi[2].ego_pose.T_world_vehicle, single[1].ego_pose.T_world_vehicle
    w_old = before.points[:, :3] @ pose_before[:3, :3].T + pose_before[:3, 3]
    w_new = merged.points[len(now):, :3] @ pose_now[:3, :3].T + pose_now[:3, 3]
    assert np.allclose(w_old, w_new, atol=1e-3)
    assert sorted(multi[2].radars) == ["RADAR_FRONT"]  # radar_scans stays 1

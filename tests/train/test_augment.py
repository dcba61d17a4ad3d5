"""Global augmentation moves every modality and calibration together."""

from __future__ import annotations

import numpy as np
import pytest

from perception.geometry.camera import project_points
from perception.models.batch import radar_point_features
from perception.train.augment import global_transform, random_augment
from perception.train.config import AugmentConfig
from perception.types import wrap_heading

CASES = [(0.0, 1.0, False), (0.5, 1.0, False), (0.0, 1.0, True), (-0.7, 1.07, True),
         (0.3, 0.93, False)]


@pytest.mark.parametrize("yaw, scale, flip", CASES)
def test_projected_box_centres_keep_their_pixels(tiny_frames, yaw, scale, flip):
    frame = tiny_frames[0]
    out = global_transform(frame, yaw, scale, flip)
    cam0, cam1 = frame.cameras["FRONT"], out.cameras["FRONT"]
    uv0, depth0, vis0 = project_points(frame.boxes.centers, cam0.calibration)
    uv1, depth1, vis1 = project_points(out.boxes.centers, cam1.calibration)
    assert vis0.any()
    assert np.array_equal(vis0, vis1)
    W = cam0.calibration.width
    expect_u = W - uv0[vis0, 0] if flip else uv0[vis0, 0]
    assert np.allclose(uv1[vis1, 0], expect_u, atol=1e-3)
    assert np.allclose(uv1[vis1, 1], uv0[vis0, 1], atol=1e-3)
    assert np.allclose(depth1[vis1], scale * depth0[vis0], rtol=1e-5)
    # The image content under each centre is unchanged.
    for (u0, v0), (u1, v1) in zip(uv0[vis0], uv1[vis1]):
        assert np.array_equal(cam0.image[int(v0), int(u0)], cam1.image[int(v1), int(u1)])
    # Lidar points project onto the same content too.
    pts0 = frame.lidar.points[:, :3]
    pts1 = out.lidar.points[:, :3]
    a, _, va = project_points(pts0, cam0.calibration)
    b, _, vb = project_points(pts1, cam1.calibration)
    assert np.array_equal(va, vb) and va.sum() > 50
    assert np.allclose(b[vb, 1], a[va, 1], atol=1e-2)


@pytest.mark.parametrize("yaw, scale, flip", CASES)
def test_boxes_points_and_radar_move_together(tiny_frames, yaw, scale, flip):
    frame = tiny_frames[1]
    out = global_transform(frame, yaw, scale, flip)
    c, s = np.cos(yaw), np.sin(yaw)
    F = np.diag([1.0, -1.0 if flip else 1.0, 1.0])
    A = scale * np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ F
    assert np.allclose(out.lidar.points[:, :3], frame.lidar.points[:, :3] @ A.T, atol=1e-4)
    assert np.allclose(out.lidar.points[:, 3:], frame.lidar.points[:, 3:])
    assert np.allclose(out.boxes.centers, frame.boxes.centers @ A.T, atol=1e-4)
    assert np.allclose(out.boxes.boxes[:, 3:6], frame.boxes.boxes[:, 3:6] * scale, rtol=1e-5)
    h0 = frame.boxes.boxes[:, 6]
    expect = wrap_heading((-h0 if flip else h0) + yaw)
    dh = wrap_heading(out.boxes.boxes[:, 6] - expect)
    assert np.abs(dh).max() < 1e-5
    v0 = np.c_[frame.boxes.velocities, np.zeros(len(frame.boxes))]
    assert np.allclose(out.boxes.velocities, (v0 @ A.T)[:, :2], atol=1e-4)
    # Radar velocities (radial, from the moved sensor) rotate with the scene.
    r0 = radar_point_features(frame)
    r1 = radar_point_features(out)
    assert np.allclose(r1[:, :3], r0[:, :3] @ A.T, atol=1e-4)
    v = np.c_[r0[:, 3:5], np.zeros(len(r0))] @ A.T
    assert np.allclose(r1[:, 3:5], v[:, :2], atol=1e-3)
    assert np.allclose(r1[:, 5:], r0[:, 5:])
    # The original frame is untouched.
    assert not np.shares_memory(out.lidar.points, frame.lidar.points)


def test_random_augment_draws_within_range(tiny_frames):
    frame = tiny_frames[0]
    rng = np.random.default_rng(0)
    config = AugmentConfig(rotation_rad=0.2, scale_range=(0.9, 1.1), flip_y_prob=0.0)
    out = random_augment(frame, config, rng)
    r0 = np.linalg.norm(frame.boxes.centers[:, :2], axis=1)
    r1 = np.linalg.norm(out.boxes.centers[:, :2], axis=1)
    ratio = r1 / r0
    assert np.allclose(ratio, ratio[0], rtol=1e-4) and 0.9 <= ratio[0] <= 1.1
    assert random_augment(frame, AugmentConfig(enabled=False), rng) is frame

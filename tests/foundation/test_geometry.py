"""Geometry against hand-computed cases: transforms, corners, points-in-box, projection, IoU."""

from __future__ import annotations

import numpy as np
import pytest

from perception.errors import CalibrationError, ValidationError
from perception.geometry import (
    bev_corners,
    box_corners,
    boxes_iou_3d,
    boxes_iou_bev,
    count_points_in_boxes,
    distort,
    invert_transform,
    make_transform,
    matrix_to_quaternion,
    points_in_boxes,
    polygon_area,
    project_points,
    quaternion_to_matrix,
    rotation_z,
    transform_boxes,
    transform_points,
    undistort,
    unproject_pixels,
    yaw_of,
    yaw_to_quaternion,
)
from perception.types import Calibration, CameraConvention


def box(x=0.0, y=0.0, z=0.0, l=1.0, w=1.0, h=1.0, yaw=0.0):
    return np.array([[x, y, z, l, w, h, yaw]])


# ---- transforms ---------------------------------------------------------------------------------

def test_transform_roundtrip_and_inverse():
    rng = np.random.default_rng(0)
    q = rng.normal(size=4)
    T = make_transform(quaternion_to_matrix(q), rng.normal(size=3))
    np.testing.assert_allclose(T @ invert_transform(T), np.eye(4), atol=1e-12)
    pts = rng.normal(size=(20, 5)).astype(np.float32)
    back = transform_points(invert_transform(T), transform_points(T, pts))
    np.testing.assert_allclose(back, pts, atol=1e-5)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back[:, 3:], pts[:, 3:])  # extra columns pass through


def test_quaternion_conventions():
    # 90 degrees about z, (w, x, y, z): x axis goes to y.
    R = quaternion_to_matrix(yaw_to_quaternion(np.pi / 2))
    np.testing.assert_allclose(R @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    rng = np.random.default_rng(1)
    for _ in range(50):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        q = q if q[0] >= 0 else -q
        np.testing.assert_allclose(matrix_to_quaternion(quaternion_to_matrix(q)), q, atol=1e-9)
    # Near 180 degrees the trace is negative: the other branches must be exact too.
    np.testing.assert_allclose(matrix_to_quaternion(rotation_z(np.pi)), [0, 0, 0, 1], atol=1e-9)
    with pytest.raises(ValidationError, match="non-zero"):
        quaternion_to_matrix(np.zeros(4))


def test_yaw_and_box_transform():
    T = make_transform(rotation_z(np.pi / 2), [1.0, 2.0, 3.0])
    assert yaw_of(T) == pytest.approx(np.pi / 2)
    moved = transform_boxes(T, box(x=1.0, yaw=np.pi * 0.75))
    np.testing.assert_allclose(moved[0, :3], [1.0, 3.0, 3.0], atol=1e-6)
    assert moved[0, 6] == pytest.approx(-0.75 * np.pi, abs=1e-6)  # 1.25 pi wrapped


# ---- boxes --------------------------------------------------------------------------------------

def test_box_corners_hand_computed():
    corners = box_corners(box(x=1.0, l=4.0, w=2.0, h=2.0, yaw=np.pi / 2))[0]
    # Length along +y after a 90 degree yaw; front-left bottom corner first.
    np.testing.assert_allclose(corners[0], [0.0, 2.0, -1.0], atol=1e-12)
    np.testing.assert_allclose(corners[6], [2.0, -2.0, 1.0], atol=1e-12)
    assert polygon_area(bev_corners(box(l=4.0, w=2.0)), np.array([4]))[0] == pytest.approx(8.0)


def test_points_on_faces_count_as_inside():
    b = box(l=2.0, w=2.0, h=2.0, yaw=0.3)
    corners = box_corners(b)[0]
    face_centres = np.array([corners[[0, 3, 4, 7]].mean(0), corners[:4].mean(0),
                             corners[4:].mean(0)])
    outside = face_centres * 1.001 + np.sign(face_centres) * 1e-3
    pts = np.vstack([face_centres, corners, outside])
    inside = points_in_boxes(pts, b)[:, 0]
    np.testing.assert_array_equal(inside, [True] * 11 + [False] * 3)
    assert count_points_in_boxes(pts, b)[0] == 11


def test_count_points_matches_dense_mask():
    rng = np.random.default_rng(2)
    pts = rng.uniform(-10, 10, (5000, 3))
    boxes = np.c_[rng.uniform(-8, 8, (30, 3)), rng.uniform(0.5, 5, (30, 3)),
                  rng.uniform(-np.pi, np.pi, 30)]
    np.testing.assert_array_equal(count_points_in_boxes(pts, boxes),
                                  points_in_boxes(pts, boxes).sum(0))
    assert count_points_in_boxes(np.zeros((0, 3)), boxes).sum() == 0
    with pytest.raises(ValidationError, match=r"boxes: expected shape \(N, 7\)"):
        points_in_boxes(pts, boxes[:, :6])


# ---- camera -------------------------------------------------------------------------------------

def _waymo_camera(distortion=None) -> Calibration:
    # Camera 1.5 m up, looking along vehicle +x, Waymo axis convention.
    K = np.array([[1000.0, 0, 960], [0, 1000.0, 640], [0, 0, 1]])
    return Calibration("FRONT", make_transform(np.eye(3), [1.5, 0.0, 2.0]), K=K,
                       distortion=distortion, width=1920, height=1280,
                       camera_convention=CameraConvention.WAYMO)


def test_projection_waymo_convention_hand_computed():
    calib = _waymo_camera()
    # 10 m ahead of the camera, 1 m left, 0.5 m up: u = cx - f*1/10, v = cy - f*0.5/10.
    uv, depth, visible = project_points(np.array([[11.5, 1.0, 2.5], [-5.0, 0, 2.0]]), calib)
    np.testing.assert_allclose(uv[0], [860.0, 590.0])
    assert depth[0] == pytest.approx(10.0) and visible[0]
    assert not visible[1] and np.isnan(uv[1]).all()  # behind the camera


def test_projection_optical_equals_waymo_after_axis_change():
    waymo = _waymo_camera()
    optical = Calibration("FRONT", waymo.T_vehicle_optical, K=waymo.K, width=1920, height=1280,
                          camera_convention=CameraConvention.OPTICAL)
    pts = np.random.default_rng(3).uniform([2, -10, -2], [50, 10, 4], (100, 3))
    np.testing.assert_allclose(project_points(pts, waymo)[0], project_points(pts, optical)[0])


def test_distortion_roundtrip_and_unproject():
    dist = np.array([-0.3, 0.1, 0.001, -0.002, -0.02])
    calib = _waymo_camera(dist)
    x = np.linspace(-0.5, 0.5, 11)
    xd, yd = distort(x, x[::-1], dist)
    xn, yn = undistort(xd, yd, dist)
    np.testing.assert_allclose(np.c_[xn, yn], np.c_[x, x[::-1]], atol=1e-9)
    pts = np.random.default_rng(4).uniform([5, -3, 0], [40, 3, 3], (50, 3))
    uv, depth, _ = project_points(pts, calib)
    np.testing.assert_allclose(unproject_pixels(uv, depth, calib), pts, atol=1e-6)


def test_projection_needs_camera_calibration():
    with pytest.raises(CalibrationError, match="camera Calibration"):
        project_points(np.zeros((1, 3)), Calibration("TOP", np.eye(4)))


# ---- IoU ----------------------------------------------------------------------------------------

def test_iou_identical_and_disjoint():
    a = box(l=4.0, w=2.0, h=1.5, yaw=0.4)
    assert boxes_iou_bev(a, a)[0, 0] == pytest.approx(1.0)
    assert boxes_iou_3d(a, a)[0, 0] == pytest.approx(1.0)
    far = box(x=10.0, l=4.0, w=2.0, h=1.5)
    assert boxes_iou_bev(a, far)[0, 0] == 0.0
    above = box(z=5.0, l=4.0, w=2.0, h=1.5, yaw=0.4)
    assert boxes_iou_bev(a, above)[0, 0] == pytest.approx(1.0)
    assert boxes_iou_3d(a, above)[0, 0] == 0.0


def test_iou_rotated_by_half_pi_with_swapped_sizes_is_one():
    a = box(x=3.0, y=-1.0, l=4.0, w=2.0, h=1.5, yaw=0.0)
    b = box(x=3.0, y=-1.0, l=2.0, w=4.0, h=1.5, yaw=np.pi / 2)
    assert boxes_iou_bev(a, b)[0, 0] == pytest.approx(1.0, abs=1e-12)
    assert boxes_iou_3d(a, b)[0, 0] == pytest.approx(1.0, abs=1e-12)


def test_iou_unit_cubes_offset_half_metre_is_one_third():
    assert boxes_iou_3d(box(), box(x=0.5))[0, 0] == pytest.approx(1.0 / 3.0, abs=1e-12)
    assert boxes_iou_3d(box(), box(z=0.5))[0, 0] == pytest.approx(1.0 / 3.0, abs=1e-12)


def test_iou_rotated_square_analytic():
    # Unit square rotated 45 degrees over the axis-aligned one: a regular octagon of area
    # 2 (sqrt 2 - 1).
    inter = 2.0 * (np.sqrt(2.0) - 1.0)
    iou = boxes_iou_bev(box(yaw=np.pi / 4), box())[0, 0]
    assert iou == pytest.approx(inter / (2.0 - inter), abs=1e-12)


def test_iou_small_box_inside_big_is_volume_ratio():
    small, big = box(l=0.5, w=0.4, h=0.3, yaw=0.7), box(l=4.0, w=3.0, h=2.0, yaw=-0.2)
    assert boxes_iou_3d(small, big)[0, 0] == pytest.approx(0.06 / 24.0, abs=1e-12)


def test_iou_matches_monte_carlo_on_random_boxes():
    rng = np.random.default_rng(5)
    a = np.c_[rng.uniform(-1, 1, (20, 3)), rng.uniform(0.5, 2.5, (20, 3)),
              rng.uniform(-np.pi, np.pi, 20)]
    b = np.c_[rng.uniform(-1, 1, (15, 3)), rng.uniform(0.5, 2.5, (15, 3)),
              rng.uniform(-np.pi, np.pi, 15)]
    pts = rng.uniform(-3, 3, (200_000, 3))
    ia, ib = points_in_boxes(pts, a).astype(np.float64), points_in_boxes(pts, b)
    inter_mc = ia.T @ ib * (6.0 ** 3 / len(pts))
    vol_a, vol_b = a[:, 3:6].prod(1), b[:, 3:6].prod(1)
    iou_mc = inter_mc / (vol_a[:, None] + vol_b[None] - inter_mc)
    # Sampling noise is about 0.011 IoU per pair (1 sigma); a clipping bug is far larger.
    np.testing.assert_allclose(boxes_iou_3d(a, b), iou_mc, atol=0.06)
    assert (boxes_iou_3d(a, b) > 0.05).sum() > 20  # the case is not trivially all-disjoint


def test_iou_symmetric_and_shapes():
    rng = np.random.default_rng(6)
    a = np.c_[rng.uniform(-2, 2, (30, 3)), rng.uniform(0.5, 3, (30, 3)),
              rng.uniform(-3, 3, 30)]
    np.testing.assert_allclose(boxes_iou_bev(a, a[:7]), boxes_iou_bev(a[:7], a).T, atol=1e-12)
    assert boxes_iou_3d(a[:0], a).shape == (0, 30)

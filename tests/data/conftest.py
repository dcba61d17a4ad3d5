"""Builders of synthetic Waymo frames for the data tests.

The real Waymo fixtures have no lidar returns, so lidar frames are built here: random range
images with non-uniform TOP inclinations, uniform inclinations on the other lasers, and a
per-pixel TOP pose that differs from the frame pose (vehicle motion during the sweep).
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from waymo_open_dataset import dataset_pb2

from perception.data import waymo
from perception.data.waymo_matrix import compress_matrix, encode_zero_matrix_int32
from perception.data.waymo_range_image import (
    column_azimuths,
    rotation_from_rpy,
    rpy_from_rotation,
)
from perception.data.waymo_writer import default_laser_geometries
from perception.geometry import make_transform, rotation_z
from perception.types import (
    Boxes3D,
    Calibration,
    CameraConvention,
    CameraImage,
    EgoPose,
    LidarSweep,
    RollingShutter,
    SensorFrame,
)

# (laser id, height, width, explicit inclinations?) - small widths keep the tests fast.
SYNTH_LASERS = ((1, 64, 400, True), (2, 40, 60, False), (3, 40, 60, False),
                (4, 40, 60, False), (5, 40, 60, False))


def _frame_pose(rng: np.random.Generator) -> np.ndarray:
    R = rotation_from_rpy(np.array([[0.02, -0.01, rng.uniform(-np.pi, np.pi)]]))[0]
    return make_transform(R, [rng.uniform(-100, 100), rng.uniform(-100, 100), 10.0])


def _extrinsic(laser_id: int, rng: np.random.Generator) -> np.ndarray:
    yaw = {1: 0.0148, 2: 0.0, 3: np.pi / 2, 4: -np.pi / 2, 5: np.pi}[laser_id]
    R = rotation_from_rpy(np.array([[rng.normal(0, 0.01), rng.normal(0, 0.01), yaw]]))[0]
    return make_transform(R, rng.uniform([-1, -1, 0.5], [4, 1, 2.2]))


def _range_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    image = np.zeros((h, w, 4), np.float32)
    image[..., 0] = rng.uniform(0.5, 75.0, (h, w))
    image[..., 1] = rng.uniform(0.0, 2.0, (h, w))
    image[..., 2] = rng.uniform(0.0, 1.5, (h, w))
    empty = rng.random((h, w)) < 0.2
    image[empty, 0] = np.where(rng.random(empty.sum()) < 0.5, -1.0, 0.0)
    return image


def _add_return(ri, image: np.ndarray) -> None:
    ri.range_image_compressed = compress_matrix(image)
    ri.camera_projection_compressed = zlib.compress(
        encode_zero_matrix_int32(image.shape[:2] + (6,)))


def make_lidar_frame(seed: int = 0, stamp_us: int = 1_600_000_000_000_000):
    """A ``dataset_pb2.Frame`` with five lasers, two returns each, and a TOP pixel pose."""
    rng = np.random.default_rng(seed)
    frame = dataset_pb2.Frame()
    frame.context.name = f"synthetic_{seed}"
    frame.timestamp_micros = stamp_us
    pose = _frame_pose(rng)
    frame.pose.transform.extend(pose.reshape(-1).tolist())
    for laser_id, h, w, explicit in SYNTH_LASERS:
        calib = frame.context.laser_calibrations.add()
        calib.name = laser_id
        calib.extrinsic.transform.extend(_extrinsic(laser_id, rng).reshape(-1).tolist())
        if explicit:
            steps = rng.uniform(0.2, 1.0, h)
            incl = -0.31 + 0.355 * np.cumsum(steps) / steps.sum()
            calib.beam_inclinations.extend(incl.tolist())
            calib.beam_inclination_min, calib.beam_inclination_max = incl[0], incl[-1]
        else:
            calib.beam_inclination_min, calib.beam_inclination_max = -np.pi / 2, np.pi / 6
        laser = frame.lasers.add()
        laser.name = laser_id
        _add_return(laser.ri_return1, _range_image(rng, h, w))
        _add_return(laser.ri_return2, _range_image(rng, h, w))
        if laser_id == 1:
            pixel_pose = np.empty((h, w, 6), np.float32)
            base_rpy = rpy_from_rotation(pose[:3, :3])
            # Motion along the sweep: up to ~1.5 m and 0.05 rad between first and last column.
            frac = np.linspace(0.0, 1.0, w)[None, :, None]
            pixel_pose[..., :3] = base_rpy + frac * np.array([0.002, -0.003, 0.05])
            pixel_pose[..., 3:] = pose[:3, 3] + frac * np.array([1.2, -0.6, 0.05])
            if seed % 2:
                # Odd seeds: the pose also varies down each column (the general per-pixel
                # path of the decoder); even seeds keep one pose per column (its fast path).
                rows = np.linspace(0.0, 1.0, h)[:, None, None]
                pixel_pose[..., 2:3] += rows * 0.004
                pixel_pose[..., 3:4] += rows * 0.1
            laser.ri_return1.range_image_pose_compressed = compress_matrix(pixel_pose)
    return frame


def camera_calibration(name: str = "FRONT") -> Calibration:
    K = np.array([[500.0, 0.0, 160.0], [0.0, 500.0, 120.0], [0.0, 0.0, 1.0]])
    return Calibration(name, make_transform(rotation_z(0.1), [1.5, 0.0, 2.0]), K,
                       np.array([0.01, -0.02, 0.001, 0.0005, 0.0]), 320, 240,
                       CameraConvention.WAYMO)


def sim_like_frame(seed: int = 0, index: int = 0) -> SensorFrame:
    """A simulator-like SensorFrame: ground and box returns cast along the default rig's beams.

    Points lie exactly on beam directions (pixel centres) so that a write/read round trip is
    exact up to float32; ``jitter_rad`` in the test perturbs them to test quantization bounds.
    """
    rng = np.random.default_rng(seed)
    lasers = default_laser_geometries()
    xyz, feats, ids = [], [], []
    for laser_id, geometry in lasers.items():
        h, w = geometry.height, geometry.width
        rows, cols = np.meshgrid(np.arange(h), np.arange(0, w, 7 if laser_id == 1 else 3),
                                 indexing="ij")
        rows, cols = rows.ravel(), cols.ravel()
        incl = geometry.beam_inclinations_rad[::-1][rows]
        az = column_azimuths(w, geometry.T_vehicle_sensor)[cols]
        d_sensor = np.stack([np.cos(az) * np.cos(incl), np.sin(az) * np.cos(incl),
                             np.sin(incl)], axis=1)
        E = geometry.T_vehicle_sensor
        d = d_sensor @ E[:3, :3].T
        # Range to the ground plane (z = 0), capped at 70 m.
        t = np.where(d[:, 2] < -1e-3, -E[2, 3] / np.minimum(d[:, 2], -1e-3), 70.0)
        t = np.clip(t, 1.0, 70.0) * rng.uniform(0.97, 1.0, t.shape)
        xyz.append(E[:3, 3] + d * t[:, None])
        feats.append(rng.uniform(0, 1, (len(t), 2)))
        ids.append(np.full(len(t), laser_id, np.int8))
    points = np.concatenate([np.concatenate(xyz), np.concatenate(feats)], axis=1)
    stamp_ns = 1_600_000_000_000_000_000 + index * 100_000_000
    lidar = LidarSweep("lidar", stamp_ns, points.astype(np.float32), waymo.LIDAR_COLUMNS,
                       np.concatenate(ids), np.zeros(len(points), np.int8))
    boxes = Boxes3D(
        boxes=np.array([[10.0, 2.0, 0.8, 4.5, 1.9, 1.6, 0.3], [-6.0, -3.0, 0.9, 0.8, 0.7, 1.8,
                                                              -2.0]], np.float32),
        labels=np.array([1, 2], np.int32), ids=np.array(["car_a", "ped_b"]),
        velocities=np.array([[3.0, 0.5], [0.0, 1.0]], np.float32),
        accelerations=np.array([[0.1, 0.0], [0.0, -0.2]], np.float32),
        num_points=np.array([120, 4], np.int32), difficulty=np.array([0, 2], np.int8))
    u, v = np.meshgrid(np.arange(320), np.arange(240))
    pixels = np.stack([u * 0.7, v, (u + v + 40 * index) % 255], axis=-1).astype(np.uint8)
    shutter = RollingShutter("LEFT_TO_RIGHT", 0.002, stamp_ns - 20_000_000, stamp_ns + 20_000_000)
    camera = CameraImage("FRONT", stamp_ns, camera_calibration(), pixels=pixels,
                         rolling_shutter=shutter)
    pose = make_transform(rotation_z(0.4 + 0.01 * index), [100.0 + index, -50.0, 3.0])
    return SensorFrame(stamp_ns, f"sim_{seed}", index, lidar, {"FRONT": camera},
                       ego_pose=EgoPose(stamp_ns, pose), boxes=boxes, source="sim")


@pytest.fixture(scope="session", params=[3, 4], ids=["per_pixel_pose", "per_column_pose"])
def lidar_frame_proto(request):
    return make_lidar_frame(seed=request.param)


@pytest.fixture(scope="session")
def sim_frames():
    return [sim_like_frame(seed=5, index=i) for i in range(3)]


class Synth:
    """The builders above, handed to tests through the ``synth`` fixture."""

    make_lidar_frame = staticmethod(make_lidar_frame)
    sim_like_frame = staticmethod(sim_like_frame)
    camera_calibration = staticmethod(camera_calibration)
    lasers = SYNTH_LASERS


@pytest.fixture(scope="session")
def synth() -> type[Synth]:
    return Synth

"""Global augmentation applied consistently to every modality.

One similarity transform of the vehicle frame, ``p' = s R(yaw) F p`` with F an optional
mirror of y, moves lidar points, radar points (and their velocity columns), boxes (centre,
size, heading, velocity) and every sensor calibration together. Calibrations must stay rigid:

- scale: the camera moves to ``s R t`` with rotation ``R R_c``; its optical-frame coordinates
  scale by s, which leaves every pixel where it was;
- mirror: a mirror is not a rotation, so the image is mirrored too (column u -> W - u,
  ``cx -> W - cx``) and the optical x axis flips, which makes the composite rotation proper.

So a point and the pixel it projects to stay attached: ``tests/train/test_augment.py`` checks
that a box centre still lands on the same image content.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..types import (
    Boxes3D,
    Calibration,
    CameraConvention,
    CameraImage,
    RadarScan,
    SensorFrame,
    wrap_heading,
)
from .config import AugmentConfig

_MIRROR_Y = np.diag([1.0, -1.0, 1.0])
_MIRROR_OPTICAL_X = np.diag([-1.0, 1.0, 1.0])


def random_augment(frame: SensorFrame, config: AugmentConfig, rng: np.random.Generator
                   ) -> SensorFrame:
    """Draw a rotation, scale and flip from ``config`` and apply them to ``frame``."""
    if not config.enabled:
        return frame
    yaw = float(rng.uniform(-config.rotation_rad, config.rotation_rad))
    scale = float(rng.uniform(*config.scale_range))
    flip = bool(rng.random() < config.flip_y_prob)
    return global_transform(frame, yaw, scale, flip)


def _linear(yaw_rad: float, scale: float, flip_y: bool) -> np.ndarray:
    c, s = np.cos(yaw_rad), np.sin(yaw_rad)
    R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return scale * R @ (_MIRROR_Y if flip_y else np.eye(3))


def global_transform(frame: SensorFrame, yaw_rad: float, scale: float, flip_y: bool
                     ) -> SensorFrame:
    """``frame`` with ``p' = scale * R(yaw) * F p`` (F mirrors y when ``flip_y``) applied to
    every modality, its calibrations and its labels."""
    A = _linear(yaw_rad, scale, flip_y)
    R = _linear(yaw_rad, 1.0, False)
    lidar = frame.lidar
    if lidar is not None:
        lidar = dataclasses.replace(lidar, points=_points(lidar.points, A),
                                    calibration=_sensor_calibration(lidar.calibration, A, R,
                                                                    scale, flip_y))
    radars = {name: _radar(scan, A, R, scale, flip_y) for name, scan in frame.radars.items()}
    cameras = {name: _camera(cam, R, scale, flip_y) for name, cam in frame.cameras.items()}
    boxes = _boxes(frame.boxes, A, yaw_rad, scale, flip_y) if frame.boxes is not None else None
    return dataclasses.replace(frame, lidar=lidar, radars=radars, cameras=cameras, boxes=boxes)


def _points(points: np.ndarray, A: np.ndarray) -> np.ndarray:
    out = points.copy()
    out[:, :3] = (points[:, :3].astype(np.float64) @ A.T).astype(np.float32)
    return out


def _sensor_calibration(calib: Calibration | None, A: np.ndarray, R: np.ndarray, scale: float,
                        flip_y: bool) -> Calibration | None:
    """Non-camera sensor: position moves with A; orientation R (F R_s F when mirrored)."""
    if calib is None or calib.is_camera:
        return calib
    T = calib.T_vehicle_sensor
    out = np.eye(4)
    rot = T[:3, :3]
    out[:3, :3] = R @ (_MIRROR_Y @ rot @ _MIRROR_Y if flip_y else rot)
    out[:3, 3] = A @ T[:3, 3]
    return dataclasses.replace(calib, T_vehicle_sensor=out)


def _radar(scan: RadarScan, A: np.ndarray, R: np.ndarray, scale: float, flip_y: bool
           ) -> RadarScan:
    pts = _points(scan.points, A)
    cols = list(scan.columns)
    if "vx_comp" in cols and "vy_comp" in cols:
        i, j = cols.index("vx_comp"), cols.index("vy_comp")
        v = np.stack([scan.points[:, i], scan.points[:, j], np.zeros(len(scan))], 1)
        v = v @ A.T
        pts[:, i], pts[:, j] = v[:, 0], v[:, 1]
    for name in ("doppler_mps", "doppler_compensated_mps", "range_m"):
        if name in cols:  # radial speeds and ranges scale with the world
            pts[:, cols.index(name)] *= scale
    if flip_y and "azimuth_rad" in cols:  # sensor-frame azimuth mirrors with the sensor
        pts[:, cols.index("azimuth_rad")] *= -1.0
    return dataclasses.replace(scan, points=pts, calibration=_sensor_calibration(
        scan.calibration, A, R, scale, flip_y))


def _camera(cam: CameraImage, R: np.ndarray, scale: float, flip_y: bool) -> CameraImage:
    calib = cam.calibration
    T = calib.T_vehicle_optical
    rot = T[:3, :3]
    trans = T[:3, 3]
    K = calib.K.copy()
    pixels = cam.image
    distortion = calib.distortion
    if flip_y:
        rot = _MIRROR_Y @ rot @ _MIRROR_OPTICAL_X
        trans = _MIRROR_Y @ trans
        K[0, 2] = calib.width - K[0, 2]
        pixels = np.ascontiguousarray(pixels[:, ::-1])
        if distortion is not None:  # tangential p2 changes sign with x; radial terms do not
            distortion = distortion.copy()
            distortion[3] *= -1.0
    T_new = np.eye(4)
    T_new[:3, :3] = R @ rot
    T_new[:3, 3] = scale * (R @ trans)
    new_calib = Calibration(calib.sensor_name, T_new, K=K, distortion=distortion,
                            width=calib.width, height=calib.height,
                            camera_convention=CameraConvention.OPTICAL)
    return CameraImage(cam.name, cam.stamp_ns, new_calib, pixels=pixels,
                       rolling_shutter=cam.rolling_shutter)


def _boxes(boxes: Boxes3D, A: np.ndarray, yaw_rad: float, scale: float, flip_y: bool
           ) -> Boxes3D:
    b = boxes.boxes.astype(np.float64).copy()
    b[:, :3] = b[:, :3] @ A.T
    b[:, 3:6] *= scale
    heading = -b[:, 6] if flip_y else b[:, 6]
    b[:, 6] = wrap_heading(heading + yaw_rad)
    vel = boxes.velocities
    if vel is not None:
        v = np.concatenate([vel.astype(np.float64), np.zeros((len(vel), 1))], 1) @ A.T
        vel = v[:, :2].astype(np.float32)
    return dataclasses.replace(boxes, boxes=b.astype(np.float32), velocities=vel)

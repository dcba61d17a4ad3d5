"""Waymo range images: laser geometry, range image -> points and the inverse projection.

The maths is that of the official ``waymo_open_dataset.utils.range_image_utils``
(``compute_range_image_polar`` / ``compute_range_image_cartesian``), vectorised in NumPy (ray
directions and pose products in float64, the per-point products in float32):

* Row ``r`` of an ``H``-row image has inclination ``incl[H - 1 - r]`` where ``incl`` is the
  calibration's ascending list (explicit ``beam_inclinations``, or ``H`` uniform values between
  ``beam_inclination_min`` and ``max`` at bin centres).
* Column ``c`` of a ``W``-column image has azimuth
  ``((W - c - 0.5) / W * 2 - 1) * pi - atan2(E[1, 0], E[0, 0])`` in the sensor frame.
* A pixel with range > 0 is a return: ``p_sensor = r * (cos az cos incl, sin az cos incl,
  sin incl)``, ``p_vehicle = E @ p_sensor``.
* TOP only: each pixel carries the vehicle pose at its firing time (roll, pitch, yaw, x, y, z;
  rotation ``Rz(yaw) Ry(pitch) Rx(roll)``). The point is moved to the world with that pose and
  back into the vehicle frame of the frame pose: ``p = inv(frame_pose) @ pixel_pose @ p``.

``E`` is the laser extrinsic (sensor -> vehicle). Nothing here touches protos: images are
arrays, see :mod:`perception.data.waymo_matrix` for their storage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RANGE_CHANNELS = 4
"""Waymo range image channels: range (m), intensity, elongation, is-in-no-label-zone."""
POSE_CHANNELS = 6
"""TOP pixel pose channels: roll, pitch, yaw (rad), x, y, z (m), world frame."""


@dataclass(frozen=True, eq=False)
class LaserGeometry:
    """What is needed to turn one laser's range image into points, and back.

    Attributes:
        name: Waymo laser name, e.g. ``"TOP"``.
        laser_id: ``LaserName`` value (TOP=1, FRONT=2, SIDE_LEFT=3, SIDE_RIGHT=4, REAR=5).
        T_vehicle_sensor: (4, 4) float64 laser extrinsic, sensor -> vehicle.
        beam_inclinations_rad: (H,) float64 ascending inclinations; the image's top row uses
            the last (highest) one.
        width: range image columns (used by the writer; the reader takes it from the image).
    """

    name: str
    laser_id: int
    T_vehicle_sensor: np.ndarray
    beam_inclinations_rad: np.ndarray
    width: int

    @property
    def height(self) -> int:
        return int(self.beam_inclinations_rad.shape[0])


def uniform_inclinations(min_rad: float, max_rad: float, height: int) -> np.ndarray:
    """(H,) ascending inclinations at bin centres, as the official ``compute_inclination``."""
    return min_rad + (0.5 + np.arange(height, dtype=np.float64)) / height * (max_rad - min_rad)


def column_azimuths(width: int, T_vehicle_sensor: np.ndarray) -> np.ndarray:
    """(W,) float64 sensor-frame azimuth of each range image column."""
    az_correction = np.arctan2(T_vehicle_sensor[1, 0], T_vehicle_sensor[0, 0])
    ratios = (np.arange(width, 0, -1, dtype=np.float64) - 0.5) / width
    return (ratios * 2.0 - 1.0) * np.pi - az_correction


def rotation_from_rpy(rpy: np.ndarray) -> np.ndarray:
    """(N, 3) roll, pitch, yaw -> (N, 3, 3) rotations ``Rz(yaw) @ Ry(pitch) @ Rx(roll)``."""
    cr, sr = np.cos(rpy[:, 0]), np.sin(rpy[:, 0])
    cp, sp = np.cos(rpy[:, 1]), np.sin(rpy[:, 1])
    cy, sy = np.cos(rpy[:, 2]), np.sin(rpy[:, 2])
    R = np.empty((rpy.shape[0], 3, 3))
    R[:, 0, 0] = cy * cp
    R[:, 0, 1] = cy * sp * sr - sy * cr
    R[:, 0, 2] = cy * sp * cr + sy * sr
    R[:, 1, 0] = sy * cp
    R[:, 1, 1] = sy * sp * sr + cy * cr
    R[:, 1, 2] = sy * sp * cr - cy * sr
    R[:, 2, 0] = -sp
    R[:, 2, 1] = cp * sr
    R[:, 2, 2] = cp * cr
    return R


def rpy_from_rotation(R: np.ndarray) -> np.ndarray:
    """(3, 3) rotation -> (3,) roll, pitch, yaw with ``R = Rz(yaw) Ry(pitch) Rx(roll)``."""
    pitch = np.arcsin(np.clip(-R[2, 0], -1.0, 1.0))
    return np.array([np.arctan2(R[2, 1], R[2, 2]), pitch, np.arctan2(R[1, 0], R[0, 0])])


# --------------------------------------------------------------------------------------------
# Range image -> points
# --------------------------------------------------------------------------------------------

def range_image_to_points(range_image: np.ndarray, geometry: LaserGeometry,
                          pixel_pose: np.ndarray | None = None,
                          frame_pose: np.ndarray | None = None
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Decode the returns of one range image.

    Directions are evaluated in float64 and the per-point products in float32 (the output
    precision): the result differs from a float64 evaluation by about 1e-7 of the range.

    Args:
        range_image: (H, W, C>=3) float32, channels range, intensity, elongation, ...
        geometry: the laser's extrinsic and inclinations (H of them).
        pixel_pose: (H, W, 6) per-pixel vehicle pose in the world frame (TOP), or None.
        frame_pose: (4, 4) vehicle -> world pose of the frame; required with ``pixel_pose``.

    Returns:
        xyz: (M, 3) float32 vehicle-frame points of the pixels with range > 0, row-major order.
        features: (M, 2) float32 intensity and elongation of those pixels.
    """
    height, width = range_image.shape[:2]
    flat = range_image.reshape(height * width, -1)
    idx = np.flatnonzero(flat[:, 0] > 0)
    rng = flat[idx, 0:1].astype(np.float32)
    if pixel_pose is None:
        directions = _cached_directions(geometry, width)[1]
        xyz = directions[idx] * rng + geometry.T_vehicle_sensor[:3, 3].astype(np.float32)
    elif _pose_is_per_column(pixel_pose):
        xyz = _points_per_column_pose(geometry, width, idx, rng, pixel_pose[0], frame_pose)
    else:
        xyz = _points_per_pixel_pose(geometry, width, idx, rng, pixel_pose, frame_pose)
    return xyz, flat[idx, 1:3].astype(np.float32)


def _points_per_column_pose(geometry: LaserGeometry, width: int, idx: np.ndarray,
                            rng: np.ndarray, column_pose: np.ndarray, frame_pose: np.ndarray
                            ) -> np.ndarray:
    """(M, 3) float32 vehicle-frame points when the pixel pose is constant down each column.

    The usual case (the pose is that of the column's firing time): extrinsic, column pose and
    inverse frame pose are fused into one transform per column.

    Args:
        idx: (M,) flat pixel indices of the returns; rng: (M, 1) float32 their ranges.
        column_pose: (W, 6) pose of each column, world frame.
    """
    M = _pixel_transforms(column_pose, geometry.T_vehicle_sensor, frame_pose)   # (W, 3, 4)
    sensor = _cached_directions(geometry, width)[0]                              # (H, W, 3)
    # directions[h, w] = M[w, :, :3] @ sensor[h, w], as three broadcast products.
    directions = (sensor[..., 0:1] * M[:, :, 0] + sensor[..., 1:2] * M[:, :, 1]
                  + sensor[..., 2:3] * M[:, :, 2]).astype(np.float32)
    return directions.reshape(-1, 3)[idx] * rng + M[idx % width, :, 3].astype(np.float32)


def _points_per_pixel_pose(geometry: LaserGeometry, width: int, idx: np.ndarray,
                           rng: np.ndarray, pixel_pose: np.ndarray, frame_pose: np.ndarray
                           ) -> np.ndarray:
    """(M, 3) float32 vehicle-frame points with one transform per return pixel.

    Args:
        idx: (M,) flat pixel indices of the returns; rng: (M, 1) float32 their ranges.
        pixel_pose: (H, W, 6) pose of each pixel, world frame.
    """
    M = _pixel_transforms(pixel_pose.reshape(-1, POSE_CHANNELS)[idx],
                          geometry.T_vehicle_sensor, frame_pose)                 # (M, 3, 4)
    p = _cached_directions(geometry, width)[0].reshape(-1, 3)[idx] * rng
    return (np.einsum("nij,nj->ni", M[:, :, :3], p) + M[:, :, 3]).astype(np.float32)


_DIRECTIONS: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
_DIRECTIONS_MAX = 64


def _cached_directions(geometry: LaserGeometry, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit ray directions of every pixel: (H, W, 3) float64 in the sensor frame and
    (H * W, 3) float32 rotated into the vehicle frame. Calibrations rarely change within a
    segment, so they are computed once per (extrinsic, inclinations, width)."""
    E = geometry.T_vehicle_sensor
    key = (width, E.tobytes(), geometry.beam_inclinations_rad.tobytes())
    cached = _DIRECTIONS.get(key)
    if cached is None:
        incl = geometry.beam_inclinations_rad[::-1]
        azimuth = column_azimuths(width, E)
        cos_incl = np.cos(incl)[:, None]
        sensor = np.stack(np.broadcast_arrays(np.cos(azimuth)[None] * cos_incl,
                                              np.sin(azimuth)[None] * cos_incl,
                                              np.sin(incl)[:, None]), axis=-1)
        vehicle = (sensor.reshape(-1, 3) @ E[:3, :3].T).astype(np.float32)
        if len(_DIRECTIONS) >= _DIRECTIONS_MAX:
            _DIRECTIONS.clear()
        cached = _DIRECTIONS[key] = (sensor, vehicle)
    return cached


def _pose_is_per_column(pixel_pose: np.ndarray) -> bool:
    return bool((pixel_pose == pixel_pose[:1]).all())


def _pixel_transforms(pose: np.ndarray, E: np.ndarray, frame_pose: np.ndarray) -> np.ndarray:
    """(N, 6) pixel poses -> (N, 3, 4) float64 ``inv(frame_pose) @ pixel_pose @ E``."""
    pose = pose.astype(np.float64)
    T = np.zeros((pose.shape[0], 4, 4))
    T[:, :3, :3] = rotation_from_rpy(pose[:, :3])
    T[:, :3, 3] = pose[:, 3:6]
    T[:, 3, 3] = 1.0
    return (np.linalg.inv(frame_pose) @ T @ E)[:, :3, :]


# --------------------------------------------------------------------------------------------
# Points -> range image
# --------------------------------------------------------------------------------------------

def points_to_range_image(xyz: np.ndarray, features: np.ndarray, geometry: LaserGeometry
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Inverse projection of vehicle-frame points into a laser's first and second return images.

    Each point goes to the row of the nearest beam inclination and the column of its azimuth
    (as the official ``build_range_image_from_point_cloud``). Where several points share a
    pixel, the nearest becomes the first return, the next one the second return, and any
    further ones are dropped.

    Args:
        xyz: (N, 3) vehicle-frame points.
        features: (N, 2) intensity and elongation.
        geometry: target laser.

    Returns:
        first, second: (H, W, 4) float32 range images (range 0 where empty; channel 3 is 0).
    """
    pixel, rng = _pixels_and_ranges(xyz, geometry)
    order = np.lexsort((rng, pixel))
    pixel, rng, feats = pixel[order], rng[order], np.asarray(features)[order]
    is_first = np.ones(pixel.shape[0], bool)
    is_first[1:] = pixel[1:] != pixel[:-1]
    is_second = np.zeros_like(is_first)
    is_second[1:] = ~is_first[1:] & is_first[:-1]
    images = []
    for keep in (is_first, is_second):
        image = np.zeros((geometry.height * geometry.width, RANGE_CHANNELS), np.float32)
        image[pixel[keep], 0] = rng[keep]
        image[pixel[keep], 1:3] = feats[keep]
        images.append(image.reshape(geometry.height, geometry.width, RANGE_CHANNELS))
    return images[0], images[1]


def _pixels_and_ranges(xyz: np.ndarray, geometry: LaserGeometry
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) vehicle-frame points -> (N,) int64 flat pixel index (row-major) and (N,) float64
    range of each point in the laser's image."""
    height, width = geometry.height, geometry.width
    E_inv = np.linalg.inv(geometry.T_vehicle_sensor)
    p = np.asarray(xyz, np.float64) @ E_inv[:3, :3].T + E_inv[:3, 3]              # sensor frame
    rng = np.linalg.norm(p, axis=1)
    incl = np.arctan2(p[:, 2], np.hypot(p[:, 0], p[:, 1]))
    asc = geometry.beam_inclinations_rad
    upper = np.clip(np.searchsorted(asc, incl), 1, height - 1)
    nearest = np.where(incl - asc[upper - 1] <= asc[upper] - incl, upper - 1, upper)
    rows = height - 1 - nearest
    az_correction = np.arctan2(geometry.T_vehicle_sensor[1, 0], geometry.T_vehicle_sensor[0, 0])
    azimuth = np.arctan2(p[:, 1], p[:, 0]) + az_correction
    azimuth = (azimuth + np.pi) % (2.0 * np.pi) - np.pi
    cols = np.round(width - 0.5 - (azimuth + np.pi) / (2.0 * np.pi) * width).astype(np.int64)
    cols %= width
    return rows * width + cols, rng

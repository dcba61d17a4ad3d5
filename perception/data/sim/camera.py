"""Pinhole cameras rendered by ray casting, with simple shading.

Calibration: ``K`` from the horizontal field of view (square pixels, principal point at the
image centre, pixel centres at integer + 0.5), zero distortion, and ``T_vehicle_sensor`` in the
OPTICAL convention (x right, y down, z along the optical axis), so that
:func:`perception.geometry.project_points` applies directly.

A pixel's colour comes from what its ray hits: the per-instance albedo of actors (class
palettes), ground materials (road, sidewalk, grass, markings), buildings; times a Lambertian
sun term plus ambient light, times a texture-noise factor hashed from the world position (so
texture sticks to surfaces across frames); misses see a sky gradient; distance adds haze.
Cameras are global shutter: the whole image is cast at the image stamp.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...geometry import R_OPTICAL_FROM_WAYMO, make_transform, rotation_z
from ...types import Calibration, CameraConvention, CameraImage
from .scenario import EgoMotion
from .settings import SimCameraConfig
from .world import WorldSnapshot

SUN_DIRECTION = (np.array([0.45, 0.3, 0.84]) / np.linalg.norm([0.45, 0.3, 0.84])).astype(np.float32)
SKY_HORIZON = np.array([0.78, 0.85, 0.93], np.float32)
SKY_ZENITH = np.array([0.33, 0.52, 0.85], np.float32)
HAZE_DISTANCE_M = 350.0


@dataclass(frozen=True, eq=False)
class CameraRender:
    """A rendered image plus per-pixel truth.

    Attributes:
        image: the emitted :class:`CameraImage`.
        object_id: (H, W) int64 actor id per pixel, -1 for static structure, ground and sky.
        depth_m: (H, W) float32 depth along the optical axis, inf for sky.
    """

    image: CameraImage
    object_id: np.ndarray
    depth_m: np.ndarray


def camera_calibration(cfg: SimCameraConfig) -> Calibration:
    """Calibration of a configured camera (OPTICAL convention, zero distortion)."""
    fx = 0.5 * cfg.width / np.tan(0.5 * np.deg2rad(cfg.hfov_deg))
    K = np.array([[fx, 0.0, 0.5 * cfg.width], [0.0, fx, 0.5 * cfg.height], [0.0, 0.0, 1.0]])
    pitch = np.deg2rad(cfg.pitch_deg)  # positive pitch looks down
    cp, sp = np.cos(pitch), np.sin(pitch)
    R_pitch = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
    R_vehicle_waymo = rotation_z(np.deg2rad(cfg.yaw_deg)) @ R_pitch
    R_vehicle_optical = R_vehicle_waymo @ R_OPTICAL_FROM_WAYMO.T
    T = make_transform(R_vehicle_optical, np.asarray(cfg.mount_xyz_m, np.float64))
    return Calibration(cfg.name, T, K=K, distortion=np.zeros(5), width=cfg.width,
                       height=cfg.height, camera_convention=CameraConvention.OPTICAL)


class CameraModel:
    """Precomputed pixel rays of one camera."""

    def __init__(self, cfg: SimCameraConfig):
        self.cfg = cfg
        self.calibration = camera_calibration(cfg)
        K = self.calibration.K
        u, v = np.meshgrid(np.arange(cfg.width) + 0.5, np.arange(cfg.height) + 0.5)
        optical = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1],
                            np.ones_like(u)], axis=-1).reshape(-1, 3)
        self._z_per_unit = (1.0 / np.linalg.norm(optical, axis=1)).astype(np.float32)
        R = self.calibration.T_vehicle_sensor[:3, :3]
        # (H*W, 3) float32 unit ray directions in the vehicle frame (einsum: no BLAS threads).
        unit = optical * self._z_per_unit[:, None]
        self.directions = np.einsum("ij,kj->ik", unit, R).astype(np.float32)
        self.mount_m = self.calibration.T_vehicle_sensor[:3, 3]

    def render(self, stamp_ns: int, ego: EgoMotion, snapshot: WorldSnapshot,
               rng: np.random.Generator) -> CameraRender:
        """Render the image stamped ``stamp_ns``; ``ego`` holds the single pose at that stamp."""
        cfg = self.cfg
        T = ego.transforms()[0]
        origin = T[:3, :3] @ self.mount_m + T[:3, 3]
        # einsum rather than matmul: BLAS would wake its thread pool for this (N, 3) product.
        dirs = np.einsum("ij,kj->ik", self.directions, T[:3, :3].astype(np.float32))
        hits = snapshot.cast(origin[None], dirs)
        rgb = _shade(hits, dirs, rng)
        pixels = np.clip(rgb * np.float32(255.0) + np.float32(0.5), 0, 255).astype(np.uint8)
        pixels = pixels.reshape(cfg.height, cfg.width, 3)
        image = CameraImage(cfg.name, stamp_ns, self.calibration, pixels=pixels)
        shape = (cfg.height, cfg.width)
        object_id = hits.object_id.reshape(shape)  # misses already carry -1 (NO_OBJECT)
        depth = (hits.range_m * self._z_per_unit).reshape(shape)
        return CameraRender(image, object_id, depth)


def _shade(hits, dirs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, 3) float32 colour in [0, 1] of each ray (see the module docstring).

    Computed for every ray, then the sky is selected with ``where``: cheaper than gathering
    and scattering the hit rows.
    """
    up = np.sqrt(np.clip(dirs[:, 2:3], 0.0, 1.0))
    sky = SKY_HORIZON + (SKY_ZENITH - SKY_HORIZON) * up
    light = 0.45 + 0.6 * np.clip(np.einsum("ij,j->i", hits.normal, SUN_DIRECTION), 0.0, 1.0)
    texture = 0.85 + 0.3 * _hash_noise(hits.point)
    # A little luminance noise, so that flat regions are not exactly constant.
    gain = light * texture + 0.01 * rng.standard_normal(len(dirs), dtype=np.float32)
    colour = hits.albedo * gain[:, None]
    haze = (1.0 - np.exp(-hits.range_m / np.float32(HAZE_DISTANCE_M)))[:, None]
    colour += (SKY_HORIZON - colour) * haze
    return np.where(np.isfinite(hits.range_m)[:, None], colour, sky)


def _hash_noise(points: np.ndarray, cell_m: float = 0.2) -> np.ndarray:
    """(N,) float32 in [0, 1): value noise from a hash of the 20 cm cell of each world point."""
    cells = np.floor(points / cell_m).astype(np.int64)
    h = (cells[:, 0] * 73856093) ^ (cells[:, 1] * 19349663) ^ (cells[:, 2] * 83492791)
    h = (h ^ (h >> 13)) * 1274126177
    return ((h ^ (h >> 16)) & 0xFFFF).astype(np.float32) / np.float32(65536.0)

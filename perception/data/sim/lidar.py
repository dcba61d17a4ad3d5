"""Spinning lidar: ray casting with beam pattern, noise, dropout, intensity and motion distortion.

Timing: the sweep turns clockwise seen from above (azimuth decreasing), starting behind the
vehicle. Column ``j`` points at azimuth ``a_j`` (mount frame) and fires at
``time_offset_s = -a_j / (2 pi) * period``, so the forward column fires exactly at the sweep
stamp and offsets span ``[-period/2, period/2)``.

Motion distortion: every column is cast from the ego pose at its own firing time (actors are
posed at the firing time of their chunk of columns, ``motion_chunks`` per sweep), and the point
is expressed in the vehicle frame *of its firing time*. The sweep is therefore not
ego-motion compensated, as a raw sensor sweep: ``p_world = T_world_vehicle(stamp +
time_offset_s) @ p``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ...geometry import make_transform
from ...types import Calibration, LidarSweep
from .scenario import EgoMotion
from .settings import SimLidarConfig
from .world import WorldSnapshot

LIDAR_COLUMNS = ("x", "y", "z", "intensity", "time_offset_s")


def beam_inclinations_rad(cfg: SimLidarConfig) -> np.ndarray:
    """(B,) float64 beam inclinations, ascending.

    ``"waymo"`` spacing packs beams densely near the horizon and sparsely downwards (like the
    Waymo TOP and HDL-64 patterns): the inclination grows quadratically with the beam index
    from the top beam. ``"uniform"`` spaces them evenly.
    """
    lo, hi = np.deg2rad(cfg.inclination_min_deg), np.deg2rad(cfg.inclination_max_deg)
    if cfg.num_beams == 1:
        return np.array([0.5 * (lo + hi)])
    u = np.linspace(0.0, 1.0, cfg.num_beams)
    if cfg.beam_spacing == "waymo":
        u = 1.0 - (0.45 * (1.0 - u) + 0.55 * (1.0 - u) ** 2)  # dense at the top (u = 1)
    return lo + (hi - lo) * u


@dataclass(frozen=True, eq=False)
class LidarScanResult:
    """A simulated sweep plus the per-point truth used by tests and tools.

    Attributes:
        sweep: the emitted :class:`LidarSweep` (vehicle frame, columns ``LIDAR_COLUMNS``).
        object_id: (N,) int64 actor id of each point (-1: static structure or ground).
        beam: (N,) int16 beam index (0 = lowest).
        true_range_m: (N,) float64 range before noise.
    """

    sweep: LidarSweep
    object_id: np.ndarray
    beam: np.ndarray
    true_range_m: np.ndarray


class LidarModel:
    """Precomputed beam pattern of one lidar."""

    def __init__(self, cfg: SimLidarConfig):
        self.cfg = cfg
        self.period_s = 1.0 / cfg.rate_hz
        self.inclination_rad = beam_inclinations_rad(cfg)
        steps = cfg.azimuth_steps
        self.azimuth_rad = np.pi - 2.0 * np.pi * (np.arange(steps) + 0.5) / steps
        self.time_offset_s = -self.azimuth_rad / (2.0 * np.pi) * self.period_s
        self.mount_m = np.asarray(cfg.mount_xyz_m, np.float64)
        self.calibration = Calibration(cfg.name, make_transform(np.eye(3), self.mount_m))
        ci, si = np.cos(self.inclination_rad), np.sin(self.inclination_rad)
        ca, sa = np.cos(self.azimuth_rad), np.sin(self.azimuth_rad)
        # (A, B, 3) unit directions in the mount (= vehicle) axes, column-major by firing time.
        self.directions = np.stack([ca[:, None] * ci[None], sa[:, None] * ci[None],
                                    np.broadcast_to(si[None], (steps, len(ci)))], axis=-1)

    def scan(self, stamp_ns: int, t_s: float, ego: Callable[[np.ndarray], EgoMotion],
             snapshot: Callable[[float], WorldSnapshot], rng: np.random.Generator
             ) -> LidarScanResult:
        """Simulate the sweep stamped ``stamp_ns`` (scenario time ``t_s``).

        Args:
            ego: scenario time(s) -> :class:`EgoMotion`.
            snapshot: scenario time -> world snapshot with the actors posed at that time.
            rng: noise source (the caller seeds it per sensor and stamp).
        """
        cfg = self.cfg
        steps, beams = self.directions.shape[:2]
        T = ego(t_s + self.time_offset_s).transforms()                     # (A, 4, 4)
        origins = np.einsum("aij,j->ai", T[:, :3, :3], self.mount_m) + T[:, :3, 3]  # (A, 3)
        dirs_world = np.einsum("aij,abj->abi", T[:, :3, :3], self.directions)
        range_m = np.empty((steps, beams))
        object_id = np.empty((steps, beams), np.int64)
        cos_incidence = np.empty((steps, beams))
        reflectivity = np.empty((steps, beams))
        for chunk in np.array_split(np.arange(steps), min(cfg.motion_chunks, steps)):
            t_chunk = t_s + float(np.mean(self.time_offset_s[chunk]))
            d = dirs_world[chunk].reshape(-1, 3)
            o = np.repeat(origins[chunk], beams, axis=0)
            hits = snapshot(t_chunk).cast(o, d)
            shape = (len(chunk), beams)
            range_m[chunk] = hits.range_m.reshape(shape)
            object_id[chunk] = hits.object_id.reshape(shape)
            cos_incidence[chunk] = np.abs(np.einsum("ij,ij->i", hits.normal, d)).reshape(shape)
            reflectivity[chunk] = hits.reflectivity.reshape(shape)
        return self._points(stamp_ns, range_m, object_id, cos_incidence, reflectivity, rng)

    def _points(self, stamp_ns: int, range_m: np.ndarray, object_id: np.ndarray,
                cos_incidence: np.ndarray, reflectivity: np.ndarray,
                rng: np.random.Generator) -> LidarScanResult:
        cfg = self.cfg
        keep = np.isfinite(range_m) & (range_m >= cfg.min_range_m) & (range_m <= cfg.max_range_m)
        if cfg.dropout_prob > 0:
            # Dark, grazing returns are lost more often than bright, head-on ones.
            weak = 1.0 - np.clip(reflectivity * cos_incidence, 0.0, 1.0)
            keep &= rng.random(range_m.shape) >= cfg.dropout_prob * (0.5 + weak)
        col, beam = np.nonzero(keep)
        true_range = range_m[col, beam]
        noisy = true_range + rng.normal(0.0, cfg.range_noise_std_m, len(true_range)) \
            if cfg.range_noise_std_m > 0 else true_range
        xyz = self.directions[col, beam] * noisy[:, None] + self.mount_m
        intensity = reflectivity[col, beam] * (0.25 + 0.75 * cos_incidence[col, beam])
        if cfg.intensity_noise_std > 0:
            intensity = intensity + rng.normal(0.0, cfg.intensity_noise_std, len(intensity))
        points = np.column_stack([xyz, np.clip(intensity, 0.0, 1.0),
                                  self.time_offset_s[col]]).astype(np.float32)
        sweep = LidarSweep(cfg.name, stamp_ns, points, LIDAR_COLUMNS,
                           calibration=self.calibration)
        return LidarScanResult(sweep, object_id[col, beam], beam.astype(np.int16), true_range)

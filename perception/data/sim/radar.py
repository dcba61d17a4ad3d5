"""Automotive radar: detections sampled from ray-cast visible surfaces, plus clutter and false
alarms, with Doppler, ego-compensated Doppler and RCS.

A grid of rays (``ray_step_deg`` apart over the field of view) is cast at the scan stamp; an
actor hit by any ray is visible and yields up to ``detections_per_object_max`` detections at
hit points; static structure yields clutter with probability ``clutter_prob`` per hit; and a
Poisson number of false alarms is spread over the field of view. Each detection gets Gaussian
range, azimuth and elevation noise (positions are rebuilt from the noisy spherical values),
Doppler noise and RCS noise. The strongest ``max_detections`` (by RCS) are kept.

Velocities: an actor's surface moves with the actor's centre velocity (the yaw rate is
ignored); the sensor moves with the ego velocity plus ``yaw_rate x lever arm``. With ``u`` the
unit vector from the sensor to the detection:

* ``doppler_mps = (v_target - v_sensor) . u`` (raw radial velocity, positive moving away);
* ``doppler_compensated_mps = v_target . u`` (ego motion removed), which is
  ``doppler_mps + v_sensor . u`` with the same noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...geometry import make_transform, rotation_z
from ...types import Calibration, RadarScan
from .actors import ActorKind
from .scenario import EgoMotion, Scenario
from .settings import SimRadarConfig
from .world import NO_OBJECT, STATIC_MATERIALS, WorldSnapshot

RADAR_COLUMNS = ("x", "y", "z", "doppler_mps", "doppler_compensated_mps", "rcs_dbsm",
                 "range_m", "azimuth_rad", "elevation_rad", "object_id")
"""Columns of a simulated scan. Range, azimuth and elevation are in the radar's frame;
``object_id`` is the actor id of the detection, -1 for clutter and false alarms."""

RCS_BASE_DBSM = {ActorKind.CAR: 10.0, ActorKind.VAN: 13.0, ActorKind.TRUCK: 20.0,
                 ActorKind.BUS: 22.0, ActorKind.PEDESTRIAN: -8.0, ActorKind.CYCLIST: -2.0}
RCS_SIDE_GAIN_DB = {ActorKind.CAR: 6.0, ActorKind.VAN: 6.0, ActorKind.TRUCK: 8.0,
                    ActorKind.BUS: 8.0, ActorKind.PEDESTRIAN: 0.0, ActorKind.CYCLIST: 4.0}
"""Extra RCS when seen broadside (flat side panels reflect more than front and rear)."""
CLUTTER_RCS_DBSM = 5.0
FALSE_ALARM_RCS_DBSM = -12.0


@dataclass(frozen=True, eq=False)
class _Detections:
    """True (noise-free) detections in the radar frame before noise and truncation."""

    point_sensor: np.ndarray   # (N, 3)
    velocity_world: np.ndarray  # (N, 3) target velocity over ground
    rcs_dbsm: np.ndarray       # (N,)
    object_id: np.ndarray      # (N,)


class RadarModel:
    def __init__(self, cfg: SimRadarConfig):
        self.cfg = cfg
        T = make_transform(rotation_z(np.deg2rad(cfg.yaw_deg)),
                           np.asarray(cfg.mount_xyz_m, np.float64))
        self.calibration = Calibration(cfg.name, T)
        step = np.deg2rad(cfg.ray_step_deg)
        half_h, half_v = 0.5 * np.deg2rad(cfg.hfov_deg), 0.5 * np.deg2rad(cfg.vfov_deg)
        az = np.arange(-half_h + 0.5 * step, half_h, step)
        el = np.arange(-half_v + 0.5 * step, half_v, 2.0 * step)  # coarser vertically
        if len(el) == 0:
            el = np.zeros(1)
        A, E = np.meshgrid(az, el)
        self.directions_sensor = np.stack([np.cos(E) * np.cos(A), np.cos(E) * np.sin(A),
                                           np.sin(E)], axis=-1).reshape(-1, 3)

    def scan(self, stamp_ns: int, t_s: float, ego: EgoMotion, snapshot: WorldSnapshot,
             scenario: Scenario, rng: np.random.Generator) -> RadarScan:
        """Simulate the scan stamped ``stamp_ns`` (scenario time ``t_s``, ``ego`` at it)."""
        T_world_vehicle = ego.transforms()[0]
        T_world_sensor = T_world_vehicle @ self.calibration.T_vehicle_sensor
        R_ws = T_world_sensor[:3, :3]
        dirs = self.directions_sensor @ R_ws.T
        hits = snapshot.cast(T_world_sensor[:3, 3][None], dirs)
        truth = self._true_detections(hits, dirs, T_world_sensor, snapshot, scenario, rng)
        v_sensor = self.sensor_velocity_world(ego)
        return self._measure(stamp_ns, truth, R_ws, v_sensor, rng)

    def sensor_velocity_world(self, ego: EgoMotion) -> np.ndarray:
        """(3,) velocity of the radar over ground, world frame: ego velocity plus the yaw-rate
        lever-arm term ``omega x r``."""
        T = ego.transforms()[0]
        heading = ego.heading[0]
        v = ego.speed_mps[0] * np.array([np.cos(heading), np.sin(heading), 0.0])
        lever_world = T[:3, :3] @ self.calibration.T_vehicle_sensor[:3, 3]
        omega = np.array([0.0, 0.0, ego.yaw_rate[0]])
        return v + np.cross(omega, lever_world)

    def _true_detections(self, hits, dirs: np.ndarray, T_world_sensor: np.ndarray,
                         snapshot: WorldSnapshot, scenario: Scenario,
                         rng: np.random.Generator) -> _Detections:
        cfg = self.cfg
        in_range = hits.hit & (hits.range_m <= cfg.max_range_m)
        points_world, ids, rcs, vel = [], [], [], []
        actor_rows = {a.actor_id: i for i, a in enumerate(scenario.actors)}
        for actor_id in np.unique(hits.object_id[in_range & (hits.object_id != NO_OBJECT)]):
            rays = np.flatnonzero(in_range & (hits.object_id == actor_id))
            row = actor_rows[int(actor_id)]
            actor = scenario.actors[row]
            n = min(len(rays), int(rng.integers(1, cfg.detections_per_object_max + 1)))
            chosen = rng.choice(rays, size=n, replace=False)
            points_world.append(hits.point[chosen])
            aspect = _aspect_rad(snapshot.states.heading[row], hits.point[chosen],
                                 T_world_sensor[:3, 3])
            rcs.append(RCS_BASE_DBSM[actor.kind] + RCS_SIDE_GAIN_DB[actor.kind]
                       * np.abs(np.sin(aspect)) - 10.0 * np.log10(n))
            ids.append(np.full(n, actor_id))
            v = np.append(snapshot.states.velocity[row], 0.0)
            vel.append(np.broadcast_to(v, (n, 3)))
        static = np.flatnonzero(in_range & np.isin(hits.material, STATIC_MATERIALS))
        clutter = static[rng.random(len(static)) < cfg.clutter_prob]
        points_world.append(hits.point[clutter])
        rcs.append(np.full(len(clutter), CLUTTER_RCS_DBSM))
        ids.append(np.full(len(clutter), NO_OBJECT))
        vel.append(np.zeros((len(clutter), 3)))
        T_sensor_world = np.linalg.inv(T_world_sensor)
        p_world = np.concatenate(points_world)
        p_sensor = p_world @ T_sensor_world[:3, :3].T + T_sensor_world[:3, 3]
        p_sensor, velocity, rcs_all, ids_all = self._add_false_alarms(
            p_sensor, np.concatenate(vel), np.concatenate(rcs), np.concatenate(ids), rng)
        return _Detections(p_sensor, velocity, rcs_all, ids_all)

    def _add_false_alarms(self, p_sensor, velocity, rcs, ids, rng):
        cfg = self.cfg
        n = int(rng.poisson(cfg.false_alarms_per_scan))
        r = rng.uniform(2.0, cfg.max_range_m, n)
        az = rng.uniform(-0.5, 0.5, n) * np.deg2rad(cfg.hfov_deg)
        el = rng.uniform(-0.5, 0.5, n) * np.deg2rad(cfg.vfov_deg)
        p = np.stack([r * np.cos(el) * np.cos(az), r * np.cos(el) * np.sin(az),
                      r * np.sin(el)], axis=1)
        v = np.zeros((n, 3))
        v[:, 0] = rng.normal(0.0, 5.0, n)  # a ghost velocity over ground (world x)
        return (np.concatenate([p_sensor, p]), np.concatenate([velocity, v]),
                np.concatenate([rcs, np.full(n, FALSE_ALARM_RCS_DBSM)]),
                np.concatenate([ids, np.full(n, NO_OBJECT)]))

    def _measure(self, stamp_ns: int, truth: _Detections, R_ws: np.ndarray,
                 v_sensor_world: np.ndarray, rng: np.random.Generator) -> RadarScan:
        cfg = self.cfg
        p = truth.point_sensor
        n = len(p)
        range_m = np.linalg.norm(p, axis=1)
        u_world = (p / np.maximum(range_m, 1e-9)[:, None]) @ R_ws.T
        v_rel = truth.velocity_world - v_sensor_world
        doppler = np.einsum("ij,ij->i", v_rel, u_world) \
            + rng.normal(0.0, cfg.doppler_noise_std_mps, n)
        compensated = doppler + u_world @ v_sensor_world
        azimuth = np.arctan2(p[:, 1], p[:, 0]) \
            + rng.normal(0.0, np.deg2rad(cfg.azimuth_noise_std_deg), n)
        elevation = np.arcsin(np.clip(p[:, 2] / np.maximum(range_m, 1e-9), -1, 1)) \
            + rng.normal(0.0, np.deg2rad(cfg.elevation_noise_std_deg), n)
        range_noisy = np.maximum(range_m + rng.normal(0.0, cfg.range_noise_std_m, n), 0.1)
        rcs = truth.rcs_dbsm + rng.normal(0.0, cfg.rcs_noise_std_db, n)
        keep = np.argsort(-rcs, kind="stable")[:cfg.max_detections]
        keep = np.sort(keep)
        ce = np.cos(elevation)
        p_noisy = np.stack([range_noisy * ce * np.cos(azimuth), range_noisy * ce * np.sin(azimuth),
                            range_noisy * np.sin(elevation)], axis=1)
        T = self.calibration.T_vehicle_sensor
        p_vehicle = p_noisy @ T[:3, :3].T + T[:3, 3]
        columns = [p_vehicle, doppler[:, None], compensated[:, None], rcs[:, None],
                   range_noisy[:, None], azimuth[:, None], elevation[:, None],
                   truth.object_id[:, None].astype(np.float64)]
        points = np.concatenate(columns, axis=1)[keep].astype(np.float32)
        return RadarScan(cfg.name, stamp_ns, points, RADAR_COLUMNS, calibration=self.calibration)


def _aspect_rad(heading: float, points_world: np.ndarray, sensor_world: np.ndarray) -> np.ndarray:
    """Angle between the target's heading and the line of sight (0: seen from front/rear)."""
    los = points_world[:, :2] - sensor_world[:2]
    return np.arctan2(los[:, 1], los[:, 0]) - heading

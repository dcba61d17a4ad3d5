"""Radar: Doppler against the analytic radial velocity, compensation, clutter, limits."""

from __future__ import annotations

import numpy as np

from perception.data.sim import Simulator
from perception.data.sim.radar import RADAR_COLUMNS

from .conftest import tiny_config

NOISELESS = {"rig": {"radars": [{
    "name": "RADAR_FRONT", "mount_xyz_m": [3.8, 0.0, 0.6], "hfov_deg": 120.0, "rate_hz": 13.0,
    "ray_step_deg": 1.0, "range_noise_std_m": 0.0, "azimuth_noise_std_deg": 0.0,
    "elevation_noise_std_deg": 0.0, "doppler_noise_std_mps": 0.0, "false_alarms_per_scan": 0.0,
    "clutter_prob": 0.3}]}}
NOISY = {"rig": {"radars": [{
    "name": "RADAR_FRONT", "mount_xyz_m": [3.8, 0.0, 0.6], "hfov_deg": 120.0, "rate_hz": 13.0,
    "ray_step_deg": 1.0, "range_noise_std_m": 0.2, "azimuth_noise_std_deg": 0.3,
    "elevation_noise_std_deg": 0.5, "doppler_noise_std_mps": 0.1}]}}
BUSY_ROADS = {"scenario": {"actors": {"num_vehicles": 12, "turn_fraction": 0.5}}}


def _analytic_doppler(sim: Simulator, scan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw radial velocities of the actor detections from ground truth and the ego pose.

    Returns (measured raw Doppler, analytic raw Doppler, relative speed |v_actor - v_sensor|)."""
    boxes = sim.ground_truth(scan.stamp_ns, None)
    pose = sim.ego_pose(scan.stamp_ns)
    mount = scan.calibration.T_vehicle_sensor[:3, 3]
    v_sensor = pose.linear_velocity + np.cross(pose.angular_velocity, mount)
    object_id = scan.column("object_id").astype(np.int64)
    rows = {int(i): r for r, i in enumerate(boxes.ids)}
    pick = np.array([int(i) in rows for i in object_id], bool)
    p = scan.xyz[pick].astype(np.float64) - mount
    u = p / np.linalg.norm(p, axis=1, keepdims=True)
    v_actor = np.zeros((pick.sum(), 3))
    v_actor[:, :2] = boxes.velocities[[rows[int(i)] for i in object_id[pick]]]
    expected = np.einsum("ij,ij->i", v_actor - v_sensor, u)
    return (scan.column("doppler_mps")[pick], expected,
            np.linalg.norm(v_actor - v_sensor, axis=1))


def _sensor_speed_along_rays(sim: Simulator, scan) -> np.ndarray:
    pose = sim.ego_pose(scan.stamp_ns)
    mount = scan.calibration.T_vehicle_sensor[:3, 3]
    v_sensor = pose.linear_velocity + np.cross(pose.angular_velocity, mount)
    p = scan.xyz.astype(np.float64) - mount
    return (p / np.linalg.norm(p, axis=1, keepdims=True)) @ v_sensor


def _scans(sim: Simulator, n: int = 12):
    return [sim.radar_scan("RADAR_FRONT", k) for k in range(0, 3 * n, 3)]


def test_noiseless_doppler_equals_analytic_radial_velocity():
    sim = Simulator(tiny_config(BUSY_ROADS, NOISELESS), seed=2)
    measured, expected = [], []
    for scan in _scans(sim):
        m, e, _ = _analytic_doppler(sim, scan)
        measured.append(m)
        expected.append(e)
        compensated = scan.column("doppler_compensated_mps")
        raw = scan.column("doppler_mps")
        mine = scan.column("object_id") >= 0
        # Compensation adds back the sensor's own motion along the ray.
        np.testing.assert_allclose(compensated - raw, _sensor_speed_along_rays(sim, scan),
                                   atol=1e-3)
        # With no false alarms, every non-actor detection is static clutter: zero over ground.
        np.testing.assert_allclose(compensated[~mine], 0.0, atol=1e-3)
    measured, expected = np.concatenate(measured), np.concatenate(expected)
    assert len(measured) >= 10 and (np.abs(expected) > 1.0).sum() >= 3
    np.testing.assert_allclose(measured, expected, atol=1e-3)


def test_noisy_doppler_within_configured_noise():
    sim = Simulator(tiny_config(BUSY_ROADS, NOISY), seed=2)
    cfg = sim.config.rig.radars[0]
    angle_sigma = np.deg2rad(cfg.azimuth_noise_std_deg + cfg.elevation_noise_std_deg)
    residuals, bounds = [], []
    for scan in _scans(sim):
        measured, expected, v_rel = _analytic_doppler(sim, scan)
        # Angle noise tilts the ray: the radial velocity changes by at most |v_rel| * angle.
        residuals.append(measured - expected)
        bounds.append(4.0 * cfg.doppler_noise_std_mps + 4.0 * angle_sigma * v_rel)
    residuals, bounds = np.concatenate(residuals), np.concatenate(bounds)
    assert len(residuals) >= 10
    assert (np.abs(residuals) <= bounds).all()
    assert residuals.std() > 0.02  # the configured noise is actually applied


def test_scan_format_limits_and_calibration(tiny_sim):
    scan = tiny_sim.radar_scan("RADAR_FRONT", 4)
    assert scan.columns == RADAR_COLUMNS
    assert scan.columns[:6] == ("x", "y", "z", "doppler_mps", "doppler_compensated_mps",
                                "rcs_dbsm")
    assert scan.calibration is not None and scan.calibration.sensor_name == "RADAR_FRONT"
    assert len(scan) <= tiny_sim.config.rig.radars[0].max_detections
    capped = Simulator(tiny_config({"rig": {"radars": [{"name": "RADAR_FRONT",
                                                         "max_detections": 3}]}}), seed=0)
    assert len(capped.radar_scan("RADAR_FRONT", 4)) == 3
    # Range and azimuth columns agree with the vehicle-frame position and the mount.
    p = scan.xyz.astype(np.float64) - scan.calibration.T_vehicle_sensor[:3, 3]
    np.testing.assert_allclose(np.linalg.norm(p, axis=1), scan.column("range_m"), rtol=1e-4,
                               atol=1e-3)


def test_vehicle_rcs_exceeds_pedestrian_rcs():
    sim = Simulator(tiny_config({"scenario": {"actors": {"num_pedestrians": 12}}}, NOISELESS),
                    seed=4)
    labels = {a.actor_id: int(a.object_class) for a in sim.scenario.actors}
    rcs = {1: [], 2: []}
    for scan in _scans(sim, 20):
        for object_id, value in zip(scan.column("object_id"), scan.column("rcs_dbsm")):
            if object_id >= 0 and labels[int(object_id)] in rcs:
                rcs[labels[int(object_id)]].append(value)
    assert len(rcs[1]) >= 5 and len(rcs[2]) >= 2
    assert np.mean(rcs[1]) > np.mean(rcs[2]) + 10.0

"""Lidar: ranges against analytic geometry, visible faces, noise, intensity, motion distortion."""

from __future__ import annotations

import numpy as np
import pytest

from perception.data.sim import Simulator
from perception.data.sim.actors import ActorKind
from perception.data.sim.lidar import LIDAR_COLUMNS, beam_inclinations_rad
from perception.geometry import points_to_box_frame

from .conftest import EMPTY_WORLD, NOISELESS_LIDAR, tiny_config, with_static_actor

DOWNWARD = {"rig": {"lidar": {"inclination_min_deg": -25.0, "inclination_max_deg": -3.0}}}
STILL_EGO = {"scenario": {"ego": {"speed_mps": 0.0}}}


def _ranges_from_mount(sim: Simulator, scan) -> np.ndarray:
    return np.linalg.norm(scan.sweep.xyz - np.asarray(sim.lidar.cfg.mount_xyz_m), axis=1)


def test_ground_ranges_match_flat_road_analytically():
    sim = Simulator(tiny_config(EMPTY_WORLD, NOISELESS_LIDAR, DOWNWARD), seed=0)
    scan = sim.lidar_scan(0)
    height = sim.lidar.cfg.mount_xyz_m[2]
    inclination = beam_inclinations_rad(sim.lidar.cfg)
    expected = height / np.sin(-inclination[scan.beam])
    np.testing.assert_allclose(_ranges_from_mount(sim, scan), expected, rtol=0, atol=2e-3)
    np.testing.assert_allclose(scan.sweep.column("z"), 0.0, atol=2e-3)
    # No dropout and no noise: every beam inside the range returns every column.
    in_range = height / np.sin(-inclination) <= sim.lidar.cfg.max_range_m
    counts = np.bincount(scan.beam, minlength=len(inclination))
    assert (counts[in_range] == sim.lidar.cfg.azimuth_steps).all()
    assert (counts[~in_range] == 0).all()


def test_intensity_falls_with_grazing_incidence_on_one_material():
    sim = Simulator(tiny_config(EMPTY_WORLD, NOISELESS_LIDAR, DOWNWARD), seed=0)
    scan = sim.lidar_scan(0)
    intensity = scan.sweep.column("intensity")
    # The ego lane is road: compare the points straight ahead, steepest beam vs shallowest.
    ahead = (np.abs(scan.sweep.column("y")) < 1.0) & (scan.sweep.column("x") > 0)
    beams = np.unique(scan.beam[ahead])
    steep = intensity[ahead & (scan.beam == beams[0])].mean()
    shallow = intensity[ahead & (scan.beam == beams[-1])].mean()
    assert steep > shallow > 0


def test_range_noise_and_dropout_follow_the_config():
    noisy = {"rig": {"lidar": {"range_noise_std_m": 0.05, "dropout_prob": 0.2}}}
    sim = Simulator(tiny_config(EMPTY_WORLD, DOWNWARD, noisy), seed=0)
    scan = sim.lidar_scan(0)
    error = _ranges_from_mount(sim, scan) - scan.true_range_m
    assert 0.04 < error.std() < 0.06
    clean = Simulator(tiny_config(EMPTY_WORLD, DOWNWARD, NOISELESS_LIDAR), seed=0).lidar_scan(0)
    ratio = len(scan.sweep) / len(clean.sweep)
    assert 0.6 < ratio < 0.9  # dropout 0.2 scaled by 0.5 + weakness of the return


@pytest.mark.parametrize("offset_xy,size_lwh,roof_visible", [
    ((15.0, 4.0), (8.0, 2.5, 3.3), False), ((8.0, 4.0), (4.0, 2.0, 1.5), True)])
def test_box_returns_points_only_on_its_visible_faces(offset_xy, size_lwh, roof_visible):
    sim = Simulator(tiny_config(EMPTY_WORLD, NOISELESS_LIDAR, STILL_EGO), seed=0)
    # A single-box truck mesh (from 0.1 h to h) ahead and 4 m to the left of the lidar.
    actor = with_static_actor(sim, ActorKind.TRUCK, offset_xy, size_lwh)
    scan = sim.lidar_scan(0)
    boxes = sim.ground_truth(scan.sweep.stamp_ns, scan.sweep)
    assert boxes.ids.tolist() == [actor.actor_id]
    local = points_to_box_frame(scan.sweep.xyz[scan.object_id == actor.actor_id],
                                boxes.boxes[0])
    assert len(local) > 50
    l, w, h = actor.size_lwh_m
    on_rear = np.abs(local[:, 0] + l / 2) < 2e-3
    on_right = np.abs(local[:, 1] + w / 2) < 2e-3
    on_roof = np.abs(local[:, 2] - h / 2) < 2e-3
    visible = on_rear | on_right | (on_roof if roof_visible else False)
    # The lidar (z = 2.1 m) is behind the rear and to the right of the box; it sees the roof
    # only when the box is lower than the lidar. The front and left faces get no points.
    assert visible.all()
    assert on_rear.sum() > 10 and on_right.sum() > 10
    assert (on_roof.sum() > 10) == roof_visible
    far_faces = (np.abs(local[:, 0] - l / 2) < 2e-3) | (np.abs(local[:, 1] - w / 2) < 2e-3)
    assert not (far_faces & ~on_roof).any()
    # Every labelled point is inside the closed box and on its surface, not in its interior.
    assert (np.abs(local) <= np.array([l, w, h]) / 2 + 2e-3).all()


def test_time_offsets_and_motion_distortion():
    moving = {"scenario": {"ego": {"speed_mps": 10.0}}}
    sim = Simulator(tiny_config(EMPTY_WORLD, NOISELESS_LIDAR, moving), seed=0)
    actor = with_static_actor(sim, ActorKind.TRUCK, (0.0, 8.0), (8.0, 2.5, 3.3))
    scan = sim.lidar_scan(2)
    sweep = scan.sweep
    assert sweep.columns == LIDAR_COLUMNS
    offsets = sweep.column("time_offset_s")
    period = 1.0 / sim.lidar.cfg.rate_hz
    assert offsets.min() >= -period / 2 and offsets.max() < period / 2
    ahead = (np.abs(sweep.column("y")) < 0.3) & (sweep.column("x") > 3)
    assert np.abs(offsets[ahead]).max() < 0.002  # the forward column fires at the stamp
    # The truck is to the left: its points fire ~T/4 before the stamp. Undistorting each point
    # with the pose at its own time puts it on the static box; the stamp pose does not.
    mine = scan.object_id == actor.actor_id
    assert mine.sum() > 20
    stamp = sweep.stamp_ns
    box_world = np.array([*actor.path.at(actor.s0_m)[0][0], actor.size_lwh_m[2] / 2,
                          *actor.size_lwh_m, 0.0])
    t_points = sim.scenario_time_s(stamp) + offsets[mine].astype(np.float64)
    T_own = sim.scenario.ego_motion(t_points).transforms()
    T_stamp = np.broadcast_to(sim.ego_pose(stamp).T_world_vehicle, T_own.shape)
    assert abs(np.mean(offsets[mine]) + period / 4) < 0.01
    own = _in_box_frame(sweep.xyz[mine], T_own, box_world)
    at_stamp = _in_box_frame(sweep.xyz[mine], T_stamp, box_world)
    l, w, _ = actor.size_lwh_m
    # Per-point poses: on the near side face (|y| = w / 2) and within the length.
    assert np.abs(np.abs(own[:, 1]) - w / 2).max() < 0.01
    assert np.abs(own[:, 0]).max() < l / 2 + 0.01
    # One pose for the whole sweep: smeared along the motion by ~10 m/s * 25 ms = 0.25 m.
    assert np.abs(at_stamp[:, 0]).max() > l / 2 + 0.1


def _in_box_frame(xyz: np.ndarray, T_world_vehicle: np.ndarray, box: np.ndarray) -> np.ndarray:
    p = xyz.astype(np.float64)
    world = np.einsum("nij,nj->ni", T_world_vehicle[:, :3, :3], p) + T_world_vehicle[:, :3, 3]
    return points_to_box_frame(world, box)

"""Sweep statistics used by the realism report, on simulated and real (KITTI) sweeps."""

from __future__ import annotations

import numpy as np

from perception.data.sim import Simulator
from perception.data.sim.realism import RANGE_BINS_M, sweep_stats

from .conftest import EMPTY_WORLD, NOISELESS_LIDAR, tiny_config

DOWNWARD = {"rig": {"lidar": {"inclination_min_deg": -25.0, "inclination_max_deg": -3.0}}}


def test_flat_world_sweep_has_all_rings_and_only_ground():
    sim = Simulator(tiny_config(EMPTY_WORLD, NOISELESS_LIDAR, DOWNWARD), seed=0)
    sweep = sim.lidar_scan(0).sweep
    stats = sweep_stats(sweep.xyz - np.asarray(sim.lidar.cfg.mount_xyz_m),
                        sweep.column("intensity"))
    assert stats.num_rings == sim.config.rig.lidar.num_beams
    assert stats.ground_fraction > 0.99
    assert abs(sum(stats.range_fractions) - 1.0) < 1e-9
    assert len(stats.range_fractions) == len(RANGE_BINS_M) - 1
    assert -25.5 < stats.elevation_min_deg < -24.0
    # The "waymo" beam spacing is denser at the top than at the bottom.
    assert stats.ring_spacing_top_deg < stats.ring_spacing_bottom_deg


def test_real_kitti_sweeps_give_plausible_statistics(fixture_file):
    root = fixture_file("kitti_object")
    for name in ("000000.bin", "000001.bin", "000002.bin"):
        raw = np.fromfile(root / "velodyne" / name, np.float32).reshape(-1, 4)
        stats = sweep_stats(raw[:, :3], raw[:, 3])
        assert 100_000 < stats.num_points < 130_000
        assert -26.0 < stats.elevation_min_deg < -20.0 and 1.0 < stats.elevation_max_deg < 6.0
        assert 40 <= stats.num_rings <= 100
        assert 0.2 < stats.ground_fraction < 0.8
        assert 0.0 < stats.mean_intensity < 1.0

"""Simulator: time per synchronised frame (lidar + 5 cameras + 5 radars), split by sensor, and
the lidar realism report against real KITTI HDL-64 sweeps (when the fixtures are present).

The baseline is the bare open3d ``cast_rays`` of the same rays against the same scene: the
ratio says how much the simulator adds on top of ray casting (shading, noise, bookkeeping).
Everything runs pinned to one CPU core (target: < 0.5 s per frame, so that a 20 s scenario of
200 frames takes under 2 minutes). Each part is reported as the median CPU time of the process
(what the work costs on an idle core) and the median wall time (which includes waiting for the
core when the machine is shared).
"""

from __future__ import annotations

import os

import numpy as np
import open3d as o3d

from perception import fixtures
from perception.data.sim import Simulator
from perception.data.sim.realism import RANGE_BINS_M, sweep_stats

from .harness import Report, cpu_and_wall, peak_rss_mib

TARGET_FRAME_S = 0.5
KITTI_SWEEPS = ("000000.bin", "000001.bin", "000002.bin")


def run(report: Report) -> None:
    previous = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if previous:
        os.sched_setaffinity(0, {min(previous)})
    try:
        _timings(report)
    finally:
        if previous:
            os.sched_setaffinity(0, previous)
    _realism(report)


def _timings(report: Report) -> None:
    sim = Simulator("waymo_like", seed=0)
    report.section("Simulator: one synchronised frame (waymo_like, one CPU core)")
    k = 10
    stamp = sim.lidar_stamp_ns(k)
    t_s = sim.scenario_time_s(stamp)
    sweep = sim.lidar_scan(k).sweep
    parts = [("lidar (64 x 2650 rays, 8 motion chunks)", lambda: sim.lidar_scan(k), len(sweep))]
    parts += [(f"camera {n} (480 x 320)", lambda n=n: sim.render_camera(n, k), 480 * 320)
              for n in sim.cameras]
    parts += [(f"radar {n}", lambda n=n: sim.radar_scan(n, k), len(sim.radar_scan(n, k)))
              for n in sim.radars]
    parts += [("ground truth (boxes, num_points)", lambda: sim.ground_truth(stamp, sweep),
               len(sim.ground_truth(stamp, sweep)))]
    rows, cpu = [], {}
    for name, fn, size in parts:
        cpu[name], wall = cpu_and_wall(fn, repeat=5)
        rows.append([name, cpu[name], wall, size])
    snapshot_cpu, snapshot_wall = cpu_and_wall(lambda: sim.world.snapshot(t_s), repeat=5)
    rows.append(["(world snapshot, included above per stamp)", snapshot_cpu, snapshot_wall, ""])
    report.table(["part", "CPU s", "wall s", "rays / points / detections / boxes"], rows)
    frame_cpu, frame_wall = cpu_and_wall(lambda: sim.frame(k), repeat=5)
    lidar = sum(v for n, v in cpu.items() if n.startswith("lidar"))
    cameras = sum(v for n, v in cpu.items() if n.startswith("camera"))
    radars = sum(v for n, v in cpu.items() if n.startswith("radar"))
    summed = sum(cpu.values())
    report.line(f"Full frame (`Simulator.frame`): **{frame_cpu:.3f} s CPU** ({frame_wall:.3f} s "
                f"wall); 200 frames: {200 * frame_cpu:.0f} s CPU. Target < {TARGET_FRAME_S} s "
                f"per frame: {'met' if frame_cpu < TARGET_FRAME_S else 'NOT met'}.")
    report.line(f"Split of the CPU time: lidar {lidar / summed:.0%}, 5 cameras "
                f"{cameras / summed:.0%}, 5 radars {radars / summed:.0%}, ground truth "
                f"{(summed - lidar - cameras - radars) / summed:.0%}.")
    _baseline(report, sim, t_s, frame_cpu)
    report.line(f"Peak RSS: {peak_rss_mib():.0f} MiB.")


def _baseline(report: Report, sim: Simulator, t_s: float, frame_cpu_s: float) -> None:
    """Bare open3d casting of the frame's rays (lidar + 5 cameras + radars) on one scene."""
    snapshot = sim.world.snapshot(t_s)
    n_rays = sim.lidar.directions.shape[0] * sim.lidar.directions.shape[1]
    n_rays += sum(m.directions.shape[0] for m in sim.cameras.values())
    n_rays += sum(m.directions_sensor.shape[0] for m in sim.radars.values())
    rng = np.random.default_rng(0)
    dirs = rng.normal(size=(n_rays, 3))
    dirs[:, 2] = -np.abs(dirs[:, 2]) * 0.3
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    ego = sim.scenario.ego_motion(t_s).transforms()[0]
    rays = np.concatenate([np.broadcast_to(ego[:3, 3] + [0, 0, 2.0], dirs.shape), dirs], 1)
    tensor = o3d.core.Tensor(rays.astype(np.float32))
    cast_cpu_s, cast_wall_s = cpu_and_wall(lambda: snapshot.scene.cast_rays(tensor, nthreads=1),
                                        repeat=3)
    report.line(f"Baseline: bare open3d `cast_rays` of {n_rays} random rays (the frame's ray "
                f"count) takes {cast_cpu_s:.3f} s CPU ({cast_wall_s:.3f} s wall); the simulator "
                f"frame costs {frame_cpu_s / cast_cpu_s:.1f}x that.")


def _realism(report: Report) -> None:
    report.section("Simulator realism: waymo_like lidar vs real KITTI HDL-64 sweeps")
    root = fixtures.fixture_path("kitti_object")
    rows = []
    if root is None:
        report.line("KITTI fixtures not found: realism comparison skipped.")
    else:
        for name in KITTI_SWEEPS:
            raw = np.fromfile(root / "velodyne" / name, np.float32).reshape(-1, 4)
            rows.append([f"KITTI {name}"] + _stats_row(raw[:, :3], raw[:, 3]))
    sim = Simulator("waymo_like", seed=0)
    mount = np.asarray(sim.lidar.cfg.mount_xyz_m)
    for k in (0, 50, 100):
        sweep = sim.lidar_scan(k).sweep
        rows.append([f"sim waymo_like frame {k}"]
                    + _stats_row(sweep.xyz - mount, sweep.column("intensity")))
    bins = [f"{int(a)}-{int(b)}" if np.isfinite(b) else f">{int(a)}"
            for a, b in zip(RANGE_BINS_M[:-1], RANGE_BINS_M[1:])]
    report.table(["sweep", "points", "rings", "elev. min..max deg", "ring spacing top/bottom "
                  "deg", "ground frac.", "mean intensity"] + [f"% {b} m" for b in bins], rows)


def _stats_row(xyz: np.ndarray, intensity: np.ndarray) -> list:
    s = sweep_stats(xyz, intensity)
    return [s.num_points, s.num_rings, f"{s.elevation_min_deg:.1f}..{s.elevation_max_deg:.1f}",
            f"{s.ring_spacing_top_deg:.2f}/{s.ring_spacing_bottom_deg:.2f}",
            round(s.ground_fraction, 2), round(s.mean_intensity, 2)] \
        + [round(100 * f, 1) for f in s.range_fractions]

"""Detector models: CPU inference latency per frame and parameter count of every shipped
``configs/models/*.yaml``.

Each sim_cpu config runs on one frame of its own simulator preset (nuScenes-like rig: 32-beam
lidar, 6 cameras, 5 radars); the GPU-scale Waymo / nuScenes configs run on one waymo_like
frame for a parameter count and an indicative CPU latency. Latency is the median over a few
``predict`` calls (collation, encoders, fuser, backbone, head, decode + NMS), reported as
process CPU time (the per-core cost) and wall time (includes waiting for a shared core),
on one thread pinned to one core.
The peer is the lidar-only model: the ratio says what each extra modality costs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from perception.config import config_dir
from perception.data.sim import Simulator
from perception.models.detector import build_detector, count_parameters
from perception.train.config import load_experiment
from perception.types import SensorFrame

from .harness import Report, cpu_and_wall, peak_rss_mib

SIM_CONFIGS = ("sim_cpu_lidar", "sim_cpu_camera", "sim_cpu_radar", "sim_cpu_camera_lidar",
               "sim_cpu_camera_lidar_radar", "sim_cpu_camera_lidar_radar_gated",
               "sim_cpu_early_painting", "sim_cpu_late")
GPU_CONFIGS = ("waymo_lidar", "waymo_camera_lidar", "nuscenes_camera_lidar_radar")


@contextmanager
def one_pinned_thread() -> Iterator[None]:
    """One torch thread pinned to one core, for the block.

    On a shared machine, OpenMP threads spinning at barriers while a sibling is descheduled
    inflate both CPU and wall time by up to 10x.
    """
    previous = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    threads = torch.get_num_threads()
    if previous:
        os.sched_setaffinity(0, {min(previous)})
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if previous:
            os.sched_setaffinity(0, previous)


def measure(model: torch.nn.Module, frame: SensorFrame, repeat: int = 3
            ) -> tuple[int, float, float]:
    """(parameters, median CPU s, median wall s) of ``model.predict([frame])`` in eval mode,
    after ``repeat`` warm-up calls (one-time oneDNN kernel set-up must not count)."""
    model = model.eval()
    for _ in range(repeat):
        model.predict([frame])
    cpu_s, wall_s = cpu_and_wall(lambda: model.predict([frame]), repeat=repeat)
    return count_parameters(model), cpu_s, wall_s


def run(report: Report) -> None:
    with one_pinned_thread():
        _measure(report)


def _measure(report: Report) -> None:
    report.section("Detector models: CPU latency per frame and parameters")
    report.line(f"torch {torch.__version__}, 1 intra-op thread pinned to one core; one frame "
                f"per call, batch size 1, eval mode.")
    frames = {}
    rows = []
    baseline = None
    for name in SIM_CONFIGS + GPU_CONFIGS:
        config = load_experiment(config_dir() / "models" / f"{name}.yaml")
        preset = config.data.sim_preset if config.data.source == "sim" else "waymo_like"
        if preset not in frames:
            frames[preset] = next(iter(Simulator(preset, seed=0).frames(1)))
        parameters, cpu_s, wall_s = measure(build_detector(config.model), frames[preset],
                                            repeat=3 if name in SIM_CONFIGS else 1)
        if name == "sim_cpu_lidar":
            baseline = cpu_s
        ratio = f"{cpu_s / baseline:.2f}x" if baseline else "-"
        rows.append([name, config.model.fusion, "+".join(sorted(
            m.value for m in config.model.modalities())),
            "x".join(str(s) for s in config.model.grid.shape_hw),
            f"{parameters / 1e6:.2f} M", f"{cpu_s * 1000:.0f}",
            f"{wall_s * 1000:.0f}", ratio])
    report.table(["config", "fusion", "modalities", "BEV grid", "parameters", "CPU ms/frame",
                  "wall ms/frame", "CPU vs lidar-only"], rows)
    report.line(f"Peak RSS {peak_rss_mib():.0f} MiB. The Waymo and nuScenes configs are sized "
                f"for GPUs; their CPU latency is indicative only.")

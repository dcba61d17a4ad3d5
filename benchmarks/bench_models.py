"""Detector models: CPU inference latency per frame and parameter count of every shipped
``configs/models/*.yaml``.

Each sim_cpu config runs on one frame of its own simulator preset (nuScenes-like rig: 32-beam
lidar, 6 cameras, 5 radars); the GPU-scale Waymo / nuScenes configs run on one waymo_like
frame for a parameter count and an indicative CPU latency. Latency is the median over a few
``predict`` calls (collation, encoders, fuser, backbone, head, decode + NMS), reported as
process CPU time (the per-core cost) and wall time (includes waiting for a shared core),
on one thread pinned to one core.
The peer is the lidar-only model: the ratio says what each extra modality costs.

A second section times the camera view transform of a training step, forward and backward,
at feature strides 8 and 4: ``ops.lss_pool`` (what the encoder uses) against the explicit
frustum pooled with ``ops.bev_pool`` (what it used before), both with their layout built every
step, as augmentation moves the cameras of each sample.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from perception import ops
from perception.config import config_dir
from perception.data.sim import Simulator
from perception.models.batch import collate_frames
from perception.models.detector import build_detector, count_parameters
from perception.train.config import load_experiment
from perception.types import Modality, SensorFrame

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
        _camera_pooling_in_training(report)


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


def _camera_pooling_in_training(report: Report) -> None:
    report.section("Camera pooling in training: lss_pool vs the explicit frustum, with backward")
    config = load_experiment(config_dir() / "models" / "sim_cpu_camera_hires_light.yaml")
    frames = list(Simulator(config.data.sim_preset, seed=0).frames(2))
    rows = []
    for stride in (8, 4):
        camera = dataclasses.replace(config.model.camera, feature_stride=stride)
        model = build_detector(dataclasses.replace(config.model, camera=camera))
        encoder = model.camera
        batch = collate_frames(frames, model.spec)
        index = (batch.camera_valid & batch.has(Modality.CAMERA)[:, None]).nonzero()
        with torch.no_grad():
            images = batch.images[index[:, 0], index[:, 1]]
            out = encoder.depth_net(encoder.neck(*encoder.backbone(images)))
        depth = out[:, :encoder.D].softmax(1).contiguous()
        context = out[:, encoder.D:].contiguous()
        H, W = encoder.grid.shape_hw
        B, C = batch.batch_size, context.shape[1]
        weight = torch.randn((B, C, 1, H, W), generator=torch.Generator().manual_seed(0))

        def explicit() -> tuple[torch.Tensor, torch.Tensor]:
            d, c = depth.clone().requires_grad_(), context.clone().requires_grad_()
            cells, valid = encoder.frustum_cells(batch, index, tuple(depth.shape[-2:]))
            frustum = d.unsqueeze(-1) * c.permute(0, 2, 3, 1).unsqueeze(1)
            pooled = ops.bev_pool(frustum.reshape(-1, C)[valid], cells[valid], B, (1, H, W))
            (pooled * weight).sum().backward()
            return d.grad, c.grad

        def sparse() -> tuple[torch.Tensor, torch.Tensor]:
            d, c = depth.clone().requires_grad_(), context.clone().requires_grad_()
            plan = encoder.frustum_plan(batch, index, tuple(depth.shape))
            (ops.lss_pool(d, c, plan) * weight).sum().backward()
            return d.grad, c.grad

        diff = max(float((a - b).abs().max()) for a, b in zip(explicit(), sparse()))
        _, wall_old = cpu_and_wall(explicit, repeat=3)
        _, wall_new = cpu_and_wall(sparse, repeat=3)
        n, d_bins, h, w = depth.shape
        rows.append([stride, f"{h}x{w}", f"{n * d_bins * h * w / 1e6:.2f} M",
                     f"{wall_old * 1e3:.0f}", f"{wall_new * 1e3:.0f}",
                     f"{wall_old / wall_new:.1f}x", f"{diff:.1e}"])
    report.line(f"{len(index)} cameras of 2 frames at {tuple(batch.images.shape[-2:])}, "
                f"{encoder.D} depth bins, {C} channels, a {H}x{W} grid; one thread. Layout "
                f"(geometry, sort) built every call in both; gradients of depth and context "
                f"compared.")
    report.table(["stride", "feature map", "frustum points", "frustum + bev_pool ms",
                  "lss_pool ms", "speed-up", "largest gradient difference"], rows)

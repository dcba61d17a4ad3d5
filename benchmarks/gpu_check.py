"""GPU check: the GPU benchmarks of issue 17 as ratios against same-run baselines.

Run through ``benchmarks/gpu_check.sh`` (which also builds the ops with CUDA and runs the CUDA
parity tests). Needs torch, numpy and pyyaml only: no simulator, open3d, spconv or ROS. The
model benchmarks read simulator frames written beforehand on a machine that has the
simulator (``python -m benchmarks.gpu_check prepare``: a few ``.npz`` frames of plain arrays
under ``outputs/gpu_frames``, about 4 MB each).

``python -m benchmarks.gpu_check bench --device cuda`` (or ``--device cpu --quick`` for a dry
run of every code path on the CPU, which the tests do). Timings are medians of CUDA-event
timings (wall clock on the CPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
FRAMES = Path(os.environ.get("GPU_CHECK_FRAMES", REPO / "outputs" / "gpu_frames"))
BEVPOOLV2_MS = 0.82  # BEVPoolv2 paper, 2M x 80 into 180 x 180 (anchor, not measured here)


def timer(device: torch.device, repeat: int) -> Callable[[Callable[[], object]], float]:
    """Median milliseconds of ``fn()`` over ``repeat`` runs after 3 warm-up runs."""

    def measure(fn: Callable[[], object]) -> float:
        for _ in range(3):
            fn()
        times = []
        for _ in range(repeat):
            if device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(
                    enable_timing=True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)

    return measure


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def frustum_geometry(n: int, H: int, W: int, seed: int = 0) -> torch.Tensor:
    """(n, 4) (b, z, y, x) cells of camera-frustum points, dense near the ego as real LSS
    frustums are (the geometry of benchmarks/bench_ops.py); some fall outside."""
    g = torch.Generator().manual_seed(seed)
    r = torch.rand(n, generator=g) ** 2 * (0.53 * max(H, W))
    a = torch.rand(n, generator=g) * 2 * np.pi
    geo = torch.zeros((n, 4), dtype=torch.int64)
    geo[:, 2] = (H / 2 + r * torch.sin(a)).floor().long()
    geo[:, 3] = (W / 2 + r * torch.cos(a)).floor().long()
    return geo


def table(title: str, headers: list[str], rows: list[list[object]]) -> None:
    print(f"\n### {title}\n")
    print("| " + " | ".join(headers) + " |")
    print("|" + "---|" * len(headers))
    for row in rows:
        print("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row)
              + " |")
    sys.stdout.flush()


# ---- ops ----------------------------------------------------------------------------------------

def bench_bev_pool(device: torch.device, quick: bool, repeat: int) -> None:
    from perception import ops

    measure = timer(device, repeat)
    cases = [("2M x 80 -> 180x180", 2_000_000, 80, 180, 180),
             ("249k x 64 -> 128x128 (BEVDet size)", 249_000, 64, 128, 128)]
    if quick:
        cases = [(f"{n // 1000}k x {c} -> {h}x{w} (quick)", n, c, h, w)
                 for _, n, c, h, w in ((None, 40_000, 16, 60, 60), (None, 20_000, 8, 32, 32))]
    rows, rows_bwd = [], []
    for label, n, c, h, w in cases:
        geo = frustum_geometry(n, h, w).to(device)
        feats = torch.randn((n, c), device=device)
        plan = ops.bev_pool_plan(geo, 1, (h, w))
        lengths = plan.lengths
        inside = plan.point_rank >= 0
        rank = torch.where(inside, plan.point_rank, torch.full_like(plan.point_rank, h * w))

        def ours():
            return ops.bev_pool(feats, None, 1, (h, w), plan=plan)

        def index_add():  # outside points go to a dummy row, as in bench_ops
            out = feats.new_zeros((h * w + 1, c)).index_add_(0, rank, feats)
            return out[:-1].view(1, h, w, c).permute(0, 3, 1, 2)

        ref = index_add()
        torch.testing.assert_close(ours()[:, :, 0], ref, atol=1e-3, rtol=1e-4)
        t_ours, t_base = measure(ours), measure(index_add)
        rows.append([label, int(lengths.numel()), int(lengths.max()), t_ours, t_base,
                     t_base / t_ours, BEVPOOLV2_MS / t_ours if n == 2_000_000 else "-"])

        fx = feats.clone().requires_grad_()
        gx = feats.clone().requires_grad_()
        grad = torch.randn((1, c, 1, h, w), device=device)

        def ours_fb():
            (g,) = torch.autograd.grad(ops.bev_pool(fx, None, 1, (h, w), plan=plan), fx, grad)
            return g

        def base_fb():
            out = gx.new_zeros((h * w + 1, c)).index_add(0, rank, gx)
            out = out[:-1].view(1, h, w, c).permute(0, 3, 1, 2)[:, :, None]
            (g,) = torch.autograd.grad(out, gx, grad)
            return g

        torch.testing.assert_close(ours_fb(), base_fb())
        tf, tb = measure(ours_fb), measure(base_fb)
        rows_bwd.append([label, tf, tb, tb / tf])
    table(f"bev_pool forward, cached plan ({device})",
          ["case", "intervals", "longest interval", "ours ms", "torch index_add_ ms",
           "speed-up vs index_add_", "BEVPoolv2 0.82 ms / ours"], rows)
    table(f"bev_pool forward + backward ({device})",
          ["case", "ours ms", "torch index_add_ (autograd) ms", "speed-up"], rows_bwd)


def bench_voxelize(device: torch.device, quick: bool, repeat: int) -> None:
    from perception import ops
    from perception.ops import reference

    measure = timer(device, repeat)
    n = 20_000 if quick else 150_000
    g = torch.Generator().manual_seed(0)
    r = torch.rand(n, generator=g) * 70 + 2
    a = torch.rand(n, generator=g) * 2 * np.pi
    pts = torch.stack([r * torch.cos(a), r * torch.sin(a), torch.randn(n, generator=g) - 1,
                       torch.rand(n, generator=g)], 1).to(device)
    vs, rng = [0.1, 0.1, 0.15], [-75.2, -75.2, -2.0, 75.2, 75.2, 4.0]
    ours = measure(lambda: ops.voxelize_hard(pts, vs, rng, 5, 150_000))
    ref = measure(lambda: reference.voxelize_hard(pts, vs, rng, 5, 150_000))
    same = all(torch.equal(x.cpu(), y.cpu()) for x, y in zip(
        ops.voxelize_hard(pts, vs, rng, 5, 150_000),
        reference.voxelize_hard(pts, vs, rng, 5, 150_000)))
    table(f"hard voxelization, {n} points ({device})",
          ["ours ms", "torch reference ms", "speed-up", "identical"],
          [[ours, ref, ref / ours, same]])


# ---- models -------------------------------------------------------------------------------------

def load_frames(preset: str) -> list:
    from perception.data.frame_npz import load_frame_npz

    files = sorted(FRAMES.glob(f"{preset}_*.npz"))
    return [load_frame_npz(p) for p in files]


def model_timings(model, frames, device: torch.device, repeat: int) -> dict[str, float]:
    from perception.models.batch import collate_frames

    measure = timer(device, repeat)
    frame = frames[0]
    batch = collate_frames([frame], model.spec, device=device)
    with torch.no_grad():
        out = model(batch)
        t = {"predict": measure(lambda: model.predict([frame])),
             "collate": measure(lambda: collate_frames([frame], model.spec, device=device)),
             "forward": measure(lambda: model(batch)),
             "decode": measure(lambda: model.decode(batch, out))}
        if device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.float16):
                t["forward fp16"] = measure(lambda: model(batch))
            model.to(memory_format=torch.channels_last)
            t["forward fp32 channels-last"] = measure(lambda: model(batch))
            with torch.autocast("cuda", dtype=torch.float16):
                t["forward fp16 channels-last"] = measure(lambda: model(batch))
            model.to(memory_format=torch.contiguous_format)
    return t


def bench_models(device: torch.device, quick: bool, repeat: int) -> None:
    from perception.config import config_dir
    from perception.models.checkpoint import read_detector
    from perception.models.detector import build_detector
    from perception.models.shipped import shipped_weights_path
    from perception.train.config import load_experiment

    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    nus, way = load_frames("nuscenes_like"), load_frames("waymo_like")
    if not nus:
        print(f"\n(no frames under {FRAMES}: run `python -m benchmarks.gpu_check prepare` on a "
              f"machine with the simulator first; model benchmarks skipped)")
        return
    models = [("sim_fusion (shipped)", read_detector(shipped_weights_path()).model, nus)]

    def from_config(name: str, **lidar):
        config = load_experiment(config_dir() / "models" / f"{name}.yaml").model
        if lidar:
            config = dataclasses.replace(config, lidar=dataclasses.replace(config.lidar, **lidar))
        torch.manual_seed(0)
        return build_detector(config).eval()

    if not quick:
        models.append(("sim_cpu_late", from_config("sim_cpu_late"), nus))
    if way and not quick:
        # The Waymo figure used the pillar encoder (spconv is not on the GPU machine).
        models.append(("waymo_camera_lidar (pillar encoder)",
                       from_config("waymo_camera_lidar", encoder="pillar",
                                   pillar_channels=(64, 64)),
                       way))
    rows = []
    for name, model, frames in models:
        model = model.to(device).eval()
        t = model_timings(model, frames, device, repeat)
        row = [name, t["predict"], t["collate"], t["forward"], t["decode"],
               t["predict"] / t["forward"]]
        if device.type == "cuda":
            row += [t["forward fp16"], t["forward"] / t["forward fp16"],
                    t["forward fp32 channels-last"], t["forward fp16 channels-last"]]
        rows.append(row)
        del model
    headers = ["model", "predict ms", "collate ms", "forward ms", "decode ms",
               "predict / forward"]
    if device.type == "cuda":
        headers += ["forward fp16 ms", "fp32 / fp16", "fp32 channels-last ms",
                    "fp16 channels-last ms"]
    table(f"detectors, one frame ({device})", headers, rows)


def prepare(args) -> int:
    """Write simulator frames for the GPU machine (needs the simulator)."""
    from perception.data.frame_npz import save_frame_npz
    from perception.data.sim import Simulator

    FRAMES.mkdir(parents=True, exist_ok=True)
    for preset, n in (("nuscenes_like", args.frames), ("waymo_like", 1)):
        for i, frame in enumerate(Simulator(preset, seed=1000).frames(n)):
            save_frame_npz(FRAMES / f"{preset}_{i}.npz", frame)
    total = sum(p.stat().st_size for p in FRAMES.glob("*.npz"))
    print(f"wrote {len(list(FRAMES.glob('*.npz')))} frames, {total / 2**20:.1f} MiB, to {FRAMES}")
    return 0


def bench(args) -> int:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device", file=sys.stderr)
        return 2
    from perception import ops

    status = ops.extension_status()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"## GPU check: {name}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
          f"ops {status['backend']}")
    print(json.dumps({"device": name, "torch": torch.__version__, "ops": status}))
    if device.type == "cuda" and not status.get("cuda"):
        print("the ops extension has no CUDA kernels: build it with CUDA first", file=sys.stderr)
        return 2
    repeat = 3 if args.quick else 15
    t0 = time.perf_counter()
    for part in args.only or ("bev_pool", "voxelize", "models"):
        {"bev_pool": bench_bev_pool, "voxelize": bench_voxelize,
         "models": bench_models}[part](device, args.quick, repeat)
    print(f"\n(gpu_check benchmarks took {time.perf_counter() - t0:.0f} s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="write simulator frames to carry to the GPU machine")
    p.add_argument("--frames", type=int, default=2)
    p.set_defaults(func=prepare)
    b = sub.add_parser("bench", help="run the benchmarks")
    b.add_argument("--device", default="cuda")
    b.add_argument("--quick", action="store_true", help="small sizes (CPU dry run)")
    b.add_argument("--only", nargs="*", choices=["bev_pool", "voxelize", "models"])
    b.set_defaults(func=bench)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

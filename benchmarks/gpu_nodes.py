"""The perception chain's latency benchmark on a GPU (the in-process part of
``benchmarks/bench_nodes.py``: sensor stamp -> tracks, sync in a producer thread, the newest
frame to the model, detector and tracker in a worker; 10 Hz lidar, then 80 % of the
throughput).

The GPU machine has neither the simulator's ray caster (open3d) nor ROS, so the frames are made
on a CPU machine first and carried over::

    # on the CPU machine (with the simulator)
    python -m benchmarks.gpu_nodes make-frames outputs/gpu_node_frames
    # on the GPU machine, from the repository root (C++/CUDA ops built in place, or
    # PERCEPTION_SKIP_EXT=1 for their PyTorch references)
    python3 -m benchmarks.gpu_nodes run outputs/gpu_node_frames --device cuda [--precision fp16] [--out gpu.md]

Frames travel as ``.npz`` files of plain arrays (:mod:`perception.data.frame_npz`), never
pickles.

It prints a Markdown table (and writes it with ``--out``) with the same columns as
``benchmarks/RESULTS.md``, plus the CPU rows when run with ``--device cpu`` for a ratio.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .harness import Report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("make-frames", help="simulate the frames (needs the simulator)")
    make.add_argument("out", type=Path, help="directory for the .npz frames")
    bench = sub.add_parser("run", help="time the chain on the frames")
    bench.add_argument("frames", type=Path, help="directory written by make-frames")
    bench.add_argument("--device", default="cuda")
    bench.add_argument("--precision", default="fp32", choices=["fp32", "fp16"])
    bench.add_argument("--seconds", type=float, default=20.0)
    bench.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    from .bench_nodes import HEADERS, make_frames

    from perception.data.frame_npz import load_frame_npz, save_frame_npz

    if args.command == "make-frames":
        frames = make_frames()
        args.out.mkdir(parents=True, exist_ok=True)
        for k, frame in enumerate(frames):
            save_frame_npz(args.out / f"{k:04d}.npz", frame)
        size = sum(p.stat().st_size for p in args.out.glob("*.npz"))
        print(f"wrote {len(frames)} frames to {args.out} ({size / 2**20:.1f} MiB)")
        return 0

    import torch

    from .bench_nodes import in_process_runs

    frames = [load_frame_npz(p) for p in sorted(args.frames.glob("*.npz"))]
    if not frames:
        parser.error(f"{args.frames}: no .npz frames (run make-frames first)")
    where = f"in process, {args.device} {args.precision}"
    saturated, sustained = in_process_runs(frames, device=args.device, where=where,
                                           seconds=args.seconds, precision=args.precision)
    report = Report()
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    report.section(f"Perception chain on {name}: sensor stamp -> tracks")
    report.line(f"torch {torch.__version__}, {len(frames)} nuscenes_like frames in a loop, "
                f"{args.seconds:.0f} s per phase.")
    report.table(HEADERS, [saturated.row(), sustained.row()])
    report.line(f"Sustainable input rate {saturated.throughput_hz:.2f} Hz; at "
                f"{saturated.rate_hz:.0f} Hz lidar {saturated.drop_ratio:.0%} of the frames are "
                f"dropped.")
    if args.out:
        args.out.write_text(report.markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The soak loop of :mod:`test_soak`, run as its own process.

A fresh process sets the allocator up as the nodes do (:func:`perception.processes.
settle_allocator`, before any thread starts) and holds nothing but the pipeline, so its
resident memory measures the pipeline alone, not the garbage of the tests that ran before it
in the same interpreter.

``python tests/reliability/_soak_run.py --frames N --report FILE`` writes the figures to
FILE as JSON (every 1,000 frames too, so that an interrupted long run still reports).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from perception.processes import settle_allocator

PERIOD_NS = 100_000_000
RSS_EVERY_FRAMES = 10


def warmup_frames(frames: int) -> int:
    return max(20, min(500, frames // 5))


def restamped(frame, stamp_ns: int, index: int):
    """``frame`` with every stamp moved so that its reference stamp is ``stamp_ns``."""
    shift = stamp_ns - frame.stamp_ns

    def move(item):
        if item is None:
            return None
        changes = {"stamp_ns": item.stamp_ns + shift}
        shutter = getattr(item, "rolling_shutter", None)
        if shutter is not None:
            changes["rolling_shutter"] = dataclasses.replace(
                shutter, trigger_stamp_ns=shutter.trigger_stamp_ns + shift,
                readout_done_stamp_ns=shutter.readout_done_stamp_ns + shift)
        return dataclasses.replace(item, **changes)

    return dataclasses.replace(
        frame, stamp_ns=stamp_ns, frame_index=index, lidar=move(frame.lidar),
        cameras={k: move(v) for k, v in frame.cameras.items()},
        radars={k: move(v) for k, v in frame.radars.items()}, ego_pose=move(frame.ego_pose))


def static_frames() -> list:
    """Three simulator frames with one ego pose: the vehicle stands still in a static world."""
    from perception.data.sim import Simulator

    sim = Simulator("tiny", seed=3)
    first = sim.frame(0)
    return [dataclasses.replace(sim.frame(i), ego_pose=dataclasses.replace(
        first.ego_pose, stamp_ns=sim.frame(i).ego_pose.stamp_ns)) for i in range(3)]


def figures(done: int, warmup: int, latency_ms: list, tracks: list, rss: list) -> dict:
    import numpy as np

    after = [(k, r) for k, r in rss if k >= warmup]
    rss_warm, rss_end = after[0][1], after[-1][1]
    window = max(10, (done - warmup) // 5)
    return {
        "frames": done, "warmup": warmup, "rss_after_warmup_mib": rss_warm / 2**20,
        "rss_end_mib": rss_end / 2**20,
        "rss_growth_percent": 100 * (rss_end - rss_warm) / rss_warm,
        "latency_p50_ms": float(np.percentile(latency_ms[warmup:], 50)),
        "latency_p99_first_window_ms": float(np.percentile(latency_ms[warmup:warmup + window],
                                                           99)),
        "latency_p99_last_window_ms": float(np.percentile(latency_ms[-window:], 99)),
        "tracks_at_warmup": max(tracks[warmup - 10:warmup]),
        "tracks_max_after_warmup": max(tracks[warmup:]),
        "tracks_end": tracks[-1],
    }


def soak(frames: int, report: Path) -> dict:
    import psutil
    import torch

    from perception.pipeline import Pipeline

    torch.set_num_threads(1)
    warmup = warmup_frames(frames)
    base = static_frames()
    pipeline = Pipeline.default()
    process = psutil.Process()
    start = base[0].stamp_ns
    latency_ms, tracks, rss = [], [], []
    for k in range(frames):
        frame = restamped(base[k % len(base)], start + k * PERIOD_NS, k)
        t0 = time.perf_counter()
        out = pipeline.process(frame)
        latency_ms.append((time.perf_counter() - t0) * 1e3)
        tracks.append(len(out.tracks) if out.tracks is not None else 0)
        if k % RSS_EVERY_FRAMES == 0 or k == frames - 1:
            rss.append((k, process.memory_info().rss))
        if k > warmup and k % 1000 == 0:
            report.write_text(json.dumps(figures(k + 1, warmup, latency_ms, tracks, rss),
                                         indent=1))
            print(f"soak: {k + 1} of {frames} frames", file=sys.stderr, flush=True)
    result = figures(frames, warmup, latency_ms, tracks, rss)
    report.write_text(json.dumps(result, indent=1))
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, required=True)
    parser.add_argument("--report", type=Path, required=True)
    args = parser.parse_args()
    if args.frames < warmup_frames(args.frames) + 10:
        parser.error(f"--frames {args.frames}: too few to measure after the warm-up")
    note = settle_allocator()  # before torch starts its threads
    print(f"soak: {note or 'allocator as it was'}", file=sys.stderr, flush=True)
    print(json.dumps(soak(args.frames, args.report), indent=1), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

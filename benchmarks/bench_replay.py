"""Log replay throughput in frames/s on this CPU.

A simulator scenario with the shipped model's rig (``nuscenes_like``: one 32-beam lidar, six
cameras as lossless PNG, five radars, ego poses and ground truth; ``BENCH_REPLAY_FRAMES``
frames at 10 Hz, default 10) is written as an MCAP bag with ``perception convert sim-bag``,
then read three ways:

* the floor: ``rosbags`` alone reads and deserialises every message of the bag (what any
  reader must do at least);
* (a) reading and decoding only: :func:`perception.replay.bag_frames`, i.e. the floor plus
  PointCloud2 / image / pose decoding, calibration and the sensor sync, into ``SensorFrame`` s
  (images stay encoded, as replay hands them to the model);
* (b) the full replay, ``perception replay`` with the shipped model and the tracker, writing
  the output bag and ``metrics.json`` (no video).

CPU time counts all threads of the process (the per-core cost on a shared machine); wall time
includes other jobs' turns.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from .harness import Report

FRAMES = int(os.environ.get("BENCH_REPLAY_FRAMES", "10"))


def _timed(fn) -> tuple[object, float, float]:
    c0, w0 = time.process_time(), time.perf_counter()
    result = fn()
    return result, time.process_time() - c0, time.perf_counter() - w0


def _rosbags_floor(path: Path) -> int:
    from rosbags.highlevel import AnyReader

    n = 0
    with AnyReader([path]) as reader:
        for connection, _, raw in reader.messages():
            reader.deserialize(raw, connection.msgtype)
            n += 1
    return n


def _decode_only(path: Path) -> int:
    from perception.replay import bag_frames

    return sum(1 for _ in bag_frames(path, compensate_motion=True))


def _full(path: Path, out: Path) -> int:
    from perception.replay import ReplayOptions, replay

    return replay(path, out, ReplayOptions(video=False, progress=False)).frames


def run(report: Report) -> None:
    from perception.replay import sim_to_bag

    report.section("replay: frames/s of a recorded log (rosbags floor, decode only, full "
                   "pipeline)")
    with tempfile.TemporaryDirectory() as tmp:
        bag = Path(tmp) / "bench.mcap"
        written = sim_to_bag("nuscenes_like", bag, seed=1001, frames=FRAMES, progress=False)
        size_mb = bag.stat().st_size / 2**20
        report.line(f"Bag: {written.frames} frames of the `nuscenes_like` rig, "
                    f"{written.messages} messages, {size_mb:.1f} MiB MCAP.")
        _decode_only(bag)  # warm-up: imports and the type store
        messages, floor_cpu, floor_wall = _timed(lambda: _rosbags_floor(bag))
        frames_a, a_cpu, a_wall = _timed(lambda: _decode_only(bag))
        frames_b, b_cpu, b_wall = _timed(lambda: _full(bag, Path(tmp) / "out"))
        rows = [
            ["rosbags alone: read + deserialise (floor)", messages, FRAMES / floor_cpu,
             FRAMES / floor_wall, 1.0],
            ["(a) replay read + decode + sync", frames_a, frames_a / a_cpu,
             frames_a / a_wall, a_cpu / floor_cpu],
            ["(b) full replay, shipped model + tracker", frames_b, frames_b / b_cpu,
             frames_b / b_wall, b_cpu / floor_cpu],
        ]
        report.table(["what", "messages / frames", "frames/s (CPU)", "frames/s (wall)",
                      "CPU time vs floor"], rows)
        report.line("(a) costs over the floor: PointCloud2 -> float32 matrices (one copy per "
                    "field of a non-float layout), radar and pose conversion, transforms to "
                    "the vehicle frame and the sync's motion compensation. (b) is dominated "
                    "by the model (image decoding and resizing included).")

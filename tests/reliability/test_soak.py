"""Soak: many frames through :class:`perception.pipeline.Pipeline` in one process.

The shipped model and tracker (``Pipeline.default()``) process a static scene: three
simulator frames reused in turn, re-stamped 100 ms apart, with the vehicle standing still, so
nothing real changes over the run. After a warm-up:

- resident memory grows by less than 5 %;
- the number of live tracks does not grow (a static scene has a fixed set of objects);
- the latency p99 of the last window is close to that of the first (no slow-down).

``PERCEPTION_SOAK_FRAMES`` sets the length: 100 frames in CI, 10,000 in ``make reliability``.
With ``PERCEPTION_SOAK_REPORT=FILE`` the figures are written there as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch

from perception.data.sim import Simulator
from perception.pipeline import Pipeline
from perception.types import SensorFrame

FRAMES = int(os.environ.get("PERCEPTION_SOAK_FRAMES", "100"))
WARMUP = max(20, min(500, FRAMES // 5))
PERIOD_NS = 100_000_000


def restamped(frame: SensorFrame, stamp_ns: int, index: int) -> SensorFrame:
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


def _static_frames():
    sim = Simulator("tiny", seed=3)
    first = sim.frame(0)
    # The same ego pose in every frame: the vehicle stands still in a static world.
    return [dataclasses.replace(sim.frame(i), ego_pose=dataclasses.replace(
        first.ego_pose, stamp_ns=sim.frame(i).ego_pose.stamp_ns)) for i in range(3)]


@pytest.fixture()
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_soak_pipeline(one_thread):
    base = _static_frames()
    pipeline = Pipeline.default()
    process = psutil.Process()
    start = base[0].stamp_ns
    latency_ms, tracks, rss = [], [], []
    for k in range(FRAMES):
        frame = restamped(base[k % len(base)], start + k * PERIOD_NS, k)
        t0 = time.perf_counter()
        out = pipeline.process(frame)
        latency_ms.append((time.perf_counter() - t0) * 1e3)
        tracks.append(len(out.tracks) if out.tracks is not None else 0)
        if k % 10 == 0 or k == FRAMES - 1:
            rss.append((k, process.memory_info().rss))
        if k > WARMUP and k % 1000 == 0:
            # Interim figures of a long run, so that an interrupted soak still reports.
            _write_report(_figures(k + 1, latency_ms, tracks, rss))
    figures = _figures(FRAMES, latency_ms, tracks, rss)
    _write_report(figures)
    print(json.dumps(figures, indent=1))
    assert figures["rss_growth_percent"] < 5.0, figures
    assert figures["tracks_max_after_warmup"] <= figures["tracks_at_warmup"] + 2, figures
    # The machine is shared: allow for noise, but not for a trend.
    assert figures["latency_p99_last_window_ms"] <= \
        2.0 * figures["latency_p99_first_window_ms"] + 20.0, figures


def _write_report(figures: dict) -> None:
    report = os.environ.get("PERCEPTION_SOAK_REPORT")
    if report:
        Path(report).write_text(json.dumps(figures, indent=1))


def _figures(done: int, latency_ms: list, tracks: list, rss: list) -> dict:
    after = [(k, r) for k, r in rss if k >= WARMUP]
    rss_warm, rss_end = after[0][1], after[-1][1]
    growth = (rss_end - rss_warm) / rss_warm
    window = max(10, (done - WARMUP) // 5)
    first = np.percentile(latency_ms[WARMUP:WARMUP + window], 99)
    last = np.percentile(latency_ms[-window:], 99)
    tracks_warm = max(tracks[WARMUP - 10:WARMUP])
    tracks_after = max(tracks[WARMUP:])
    return {
        "frames": done, "warmup": WARMUP, "rss_after_warmup_mib": rss_warm / 2**20,
        "rss_end_mib": rss_end / 2**20, "rss_growth_percent": 100 * growth,
        "latency_p50_ms": float(np.percentile(latency_ms[WARMUP:], 50)),
        "latency_p99_first_window_ms": float(first), "latency_p99_last_window_ms": float(last),
        "tracks_at_warmup": tracks_warm, "tracks_max_after_warmup": tracks_after,
        "tracks_end": tracks[-1],
    }

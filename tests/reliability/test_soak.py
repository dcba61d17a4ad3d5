"""Soak: many frames through :class:`perception.pipeline.Pipeline` in a process of its own.

The shipped model and tracker (``Pipeline.default()``) process a static scene: three
simulator frames reused in turn, re-stamped 100 ms apart, with the vehicle standing still, so
nothing real changes over the run. The loop runs in a fresh process (:mod:`._soak_run`) with
the allocator set as the nodes set it, so the memory figure is the pipeline's, not that of
the tests that ran before in the pytest process. After a warm-up:

- resident memory grows by less than 5 %;
- the number of live tracks does not grow (a static scene has a fixed set of objects);
- the latency p99 of the last window is close to that of the first (no slow-down).

``PERCEPTION_SOAK_FRAMES`` sets the length: 100 frames in CI, 10,000 in ``make reliability``.
With ``PERCEPTION_SOAK_REPORT=FILE`` the figures are written there as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FRAMES = int(os.environ.get("PERCEPTION_SOAK_FRAMES", "100"))
RUN = Path(__file__).with_name("_soak_run.py")
REPO = Path(__file__).resolve().parents[2]
SECONDS_PER_FRAME_MAX = 10.0
"""Guard against a hung child only: a frame takes 0.1 to 0.5 s on a busy 2-core CPU."""


def test_soak_pipeline(tmp_path):
    report = Path(os.environ.get("PERCEPTION_SOAK_REPORT") or tmp_path / "soak.json")
    done = subprocess.run(
        [sys.executable, str(RUN), f"--frames={FRAMES}", f"--report={report}"], cwd=REPO,
        timeout=120 + SECONDS_PER_FRAME_MAX * FRAMES, check=False)
    assert done.returncode == 0, f"the soak process exited with {done.returncode}"
    figures = json.loads(report.read_text())
    assert figures["frames"] == FRAMES, figures
    assert figures["rss_growth_percent"] < 5.0, figures
    assert figures["tracks_max_after_warmup"] <= figures["tracks_at_warmup"] + 2, figures
    # The machine is shared: allow for noise, but not for a trend.
    assert figures["latency_p99_last_window_ms"] <= \
        2.0 * figures["latency_p99_first_window_ms"] + 20.0, figures

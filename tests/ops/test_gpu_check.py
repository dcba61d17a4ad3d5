"""The prepared GPU check (benchmarks/gpu_check.sh) as a CPU dry run: frames written by
``prepare``, every step on small sizes, no CUDA build. The real run happens on a GPU machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_gpu_check_dry_run_on_cpu(tmp_path):
    pytest.importorskip("open3d", reason="prepare needs the simulator")
    env = dict(os.environ, GPU_CHECK_FRAMES=str(tmp_path), PYTHON=sys.executable,
               OMP_NUM_THREADS="1")
    prep = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "prepare",
                           "--frames", "1"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert prep.returncode == 0, prep.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.glob("*.npz")) == ["nuscenes_like_0.npz",
                                                               "waymo_like_0.npz"]
    run = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--device", "cpu", "--quick"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    for heading in ("bev_pool forward, cached plan (cpu)", "bev_pool forward + backward (cpu)",
                    "hard voxelization", "detectors, one frame (cpu)", "[gpu_check", "done"):
        assert heading in out, out[-4000:]
    assert "| sim_fusion (shipped) |" in out

"""Real ``torch.distributed`` on the CPU: 2 gloo processes under torchrun."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def _run(argv: list[str], timeout_s: float) -> subprocess.CompletedProcess:
    """Run in a new process group; on timeout kill exactly that group (torchrun + workers)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"timed out after {timeout_s} s:\n{out[-3000:]}")
    return subprocess.CompletedProcess(argv, proc.returncode, out, None)


def test_two_gloo_ranks_end_with_identical_parameters(tmp_path):
    result = _run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                   "--nproc-per-node=2", str(HERE / "ddp_step.py"), str(tmp_path)], 150)
    assert result.returncode == 0, result.stdout[-3000:]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["seen"] != r1["seen"]  # each rank trained on its own shard
    assert r0["params"].keys() == r1["params"].keys()
    for name, p in r0["params"].items():
        if "running_" in name:  # BatchNorm statistics are per rank (no SyncBatchNorm on CPU)
            continue
        assert torch.equal(p, r1["params"][name]), name


def test_cli_relaunches_under_torchrun(tmp_path):
    config = tmp_path / "exp.yaml"
    config.write_text(
        "model:\n"
        "  grid: {point_range_m: [-25.6, -25.6, -3.0, 25.6, 25.6, 3.0], cell_size_m: [0.8, 0.8]}\n"
        "  lidar: {pillar_channels: [16]}\n"
        "  backbone: {layer_nums: [1], layer_strides: [1], channels: [16], "
        "upsample_channels: [16]}\n"
        "  head: {head_channels: 16}\n"
        f"data: {{sim_preset: tiny, train_seeds: [0], val_seeds: [7], frames_per_seed: 2, "
        f"cache_dir: {tmp_path / 'cache'}, max_val_frames: 2}}\n"
        "train: {epochs: 1, batch_size: 1, tensorboard: true, progress: false}\n")
    out = tmp_path / "run"
    result = _run([sys.executable, "-m", "perception.cli", "train", str(config), "--out",
                   str(out), "--nproc-per-node", "2", "--cpu"], 150)
    assert result.returncode == 0, result.stdout[-3000:]
    assert (out / "checkpoints" / "last.pt").is_file()
    assert (out / "metrics_epoch1.json").is_file()
    assert list((out / "tb").glob("events.out.tfevents.*"))
    assert "VEHICLE_LEVEL_1: AP" in result.stdout

"""`perception demo`: the detector, tracker, ablation, explanations, real frames and pictures
end to end, and the page that shows them, opened in a real headless browser."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import torch
from PIL import Image

from perception import cli, fixtures
from perception.models.checkpoint import save_weights
from perception.models.detector import build_detector

from ..models._helpers import small_model_config

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A small untrained camera + lidar + radar model: the demo's code paths, fast."""
    torch.manual_seed(0)
    config = small_model_config()
    config.head.score_threshold = 0.2
    path = tmp_path_factory.mktemp("weights") / "small.pt"
    return save_weights(path, build_detector(config), config, radar_scans=2)


@pytest.fixture(scope="module")
def model_demo(tmp_path_factory, weights):
    out = tmp_path_factory.mktemp("demo")
    done = subprocess.run(
        [*_perception(), "demo", "--frames", "3", "--preset", "tiny", "--weights",
         str(weights), "--out", str(out), "--no-progress"],
        capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    return out, done.stdout


def _perception() -> list[str]:
    import sys

    return [sys.executable, "-m", "perception.cli"]


def test_demo_with_a_model_prints_metrics_ablation_and_explanations(model_demo):
    out, text = model_demo
    assert "ops" in text and "rclpy" in text                 # perception info came first
    assert "Metrics (Waymo AP/APH, MOTA/IDF1) of the shipped detector" in text
    assert "detector (collate..NMS)" in text and "tracker" in text
    for row in ("without lidar", "camera only", "radar only"):
        assert row in text
    assert "What each sensor contributed" in text
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["counts"]["num_frames"] == 3 and "tracking" in metrics
    for name in ("sim_bev.png", "sim_cameras.png", "explain.png", "pr_VEHICLE.png"):
        assert Image.open(out / name).size[0] > 300
    gif = Image.open(out / "sim_sequence.gif")
    assert gif.n_frames == 3
    if fixtures.fixture_path("nuscenes_keyframe") is not None:
        assert "nuScenes keyframe" in text and (out / "real_nuscenes_keyframe.png").is_file()
    if fixtures.fixture_path("kitti_object") is not None:
        assert (out / "real_kitti_000000.png").is_file()
    assert (out / "index.html").is_file()


def test_demo_noisy_ground_truth_mode(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--frames", "4", "--preset", "tiny", "--detections", "noisy-gt",
                     "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "noise model" in text and "Modality ablation" not in text
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["counts"]["num_frames"] == 4 and metrics["counts"]["num_gt"] > 0
    # Noisy ground truth is mostly right: the tracker's input scores far above zero.
    assert metrics["VEHICLE_LEVEL_1"]["AP"] > 0.1
    assert Image.open(out / "sim_bev.png").size == (900, 900)


@pytest.mark.parametrize("frames", ["0", "-3"])
def test_demo_refuses_no_frames(frames, capsys):
    assert cli.main(["demo", "--frames", frames]) == 1
    err = capsys.readouterr().err
    assert "--frames must be >= 1" in err and len(err.strip().splitlines()) == 1


def test_demo_page_loads_in_a_headless_browser(model_demo, tmp_path):
    browser = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        pytest.skip("no Chromium installed (Debian package 'chromium')")
    out, _ = model_demo
    page = (out / "index.html").resolve().as_uri()
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--dump-dom",
         page], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    images = dom.count("<img ")
    assert images >= 6
    assert f'data-images-loaded="{images}/{images}"' in dom, dom[:500]
    errors = [line for line in done.stderr.splitlines()
              if "CONSOLE" in line and ("Uncaught" in line or "Error" in line)]
    assert errors == []

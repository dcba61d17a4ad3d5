"""`perception demo` runs the existing pipeline end to end and writes its outputs."""

from __future__ import annotations

import json

from PIL import Image

from perception import cli, fixtures


def test_demo_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--frames", "4", "--preset", "tiny", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ops" in text and "rclpy" in text                 # perception info came first
    assert "the fusion detector is not in the demo yet" in text
    metrics = json.loads((out / "metrics.json").read_text())
    for name in ("VEHICLE_LEVEL_1", "PEDESTRIAN_LEVEL_2", "CYCLIST_LEVEL_1"):
        assert 0.0 <= metrics[name]["AP"] <= 1.0
    assert metrics["counts"]["num_frames"] == 4 and metrics["counts"]["num_gt"] > 0
    assert "tracking" in metrics
    bev = Image.open(out / "sim_bev.png")
    assert bev.size[0] > 300 and bev.size[1] > 300
    if fixtures.fixture_path("waymo_camera_frame") is not None:
        assert "labels: 75" in text
        image = Image.open(out / "waymo_front_labels.png")
        assert image.size == (1920, 1280)
    else:
        assert "skipped: the Waymo fixture is not present" in text


def test_demo_refuses_zero_frames(capsys):
    assert cli.main(["demo", "--frames", "0"]) == 1
    assert "--frames must be >= 1" in capsys.readouterr().err

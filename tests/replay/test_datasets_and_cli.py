"""Data set logs (a nuScenes scene, a KITTI raw drive) through replay, and the command line:
``perception convert sim-bag``, ``perception replay`` and Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from perception.cli import main as cli_main
from perception.replay import ReplayOptions, replay

from ..data.nuscenes_devkit import build_devkit

REPO = Path(__file__).resolve().parents[2]
FAST = dict(progress=False, video=False)


def test_nuscenes_scene_replays_in_time_order(fixture_file, tmp_path):
    root = tmp_path / "nuscenes"
    build_devkit(root, fixture_file("nuscenes_keyframe"), None, previous_sample=True)
    summary = replay(root, tmp_path / "out", ReplayOptions(**FAST))
    assert summary.kind == "nuscenes" and summary.frames == 2
    stamps = [r.stamp_ns for r in summary.rows]
    assert stamps == sorted(stamps) and stamps[1] - stamps[0] == 500_000_000
    assert [r.present for r in summary.rows] == ["lidar", "camera+lidar"]
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["counts"]["num_gt"] > 0


def _kitti_raw(root: Path, kitti: Path) -> Path:
    """A KITTI raw drive laid out around the three real KITTI object frames (files linked)."""
    from perception.data.kitti import read_calibration

    date = root / "2011_09_26"
    drive = date / "2011_09_26_drive_0001_sync"
    calib = read_calibration(kitti / "calib" / "000000.txt")
    flat = " ".join
    (date / "calib_cam_to_cam.txt").parent.mkdir(parents=True)
    (date / "calib_cam_to_cam.txt").write_text(
        f"calib_time: 09-Jan-2012 13:57:47\nP_rect_02: {flat(map(str, calib.P2.ravel()))}\n"
        f"R_rect_00: {flat(map(str, calib.R0_rect.ravel()))}\n")
    (date / "calib_velo_to_cam.txt").write_text(
        f"R: {flat(map(str, calib.Tr_velo_to_cam[:, :3].ravel()))}\n"
        f"T: {flat(map(str, calib.Tr_velo_to_cam[:, 3]))}\n")
    (date / "calib_imu_to_velo.txt").write_text("R: 1 0 0 0 1 0 0 0 1\nT: -0.8 0.3 -0.8\n")
    stamps = [f"2011-09-26 13:02:25.{100_000_000 * k + 964389445 % 100_000_000:09d}"
              for k in range(3)]
    for folder, suffix, source in (("velodyne_points", "bin", "velodyne"),
                                   ("image_02", "png", "image_2")):
        (drive / folder / "data").mkdir(parents=True)
        (drive / folder / "timestamps.txt").write_text("\n".join(stamps) + "\n")
        for k in range(3):
            os.symlink(kitti / source / f"{k:06d}.{suffix}",
                       drive / folder / "data" / f"{k:010d}.{suffix}")
    (drive / "oxts" / "data").mkdir(parents=True)
    (drive / "oxts" / "timestamps.txt").write_text("\n".join(stamps) + "\n")
    for k in range(3):  # driving north-east at about 10 m/s
        record = [49.011 + 1e-5 * k, 8.4227 + 1e-5 * k, 112.8, 0.01, -0.02, 0.8] + [0.0] * 24
        (drive / "oxts" / "data" / f"{k:010d}.txt").write_text(" ".join(map(str, record)))
    return drive


def test_kitti_raw_drive_replays(fixture_file, tmp_path):
    from perception.data.kitti_raw import KittiRawReader

    drive = _kitti_raw(tmp_path / "raw", fixture_file("kitti_object"))
    reader = KittiRawReader(drive)
    frames = list(reader)
    assert [f.stamp_ns - frames[0].stamp_ns for f in frames] == [0, 100_000_000, 200_000_000]
    np.testing.assert_allclose(frames[0].ego_pose.T_world_vehicle[:3, 3], 0.0, atol=1e-6)
    moved = frames[2].ego_pose.T_world_vehicle[:3, 3]
    assert 1.0 < np.hypot(moved[0], moved[1]) < 5.0  # 2e-5 degrees of latitude and longitude
    assert frames[0].cameras["image_02"].calibration.width == 1224
    summary = replay(drive, tmp_path / "out", ReplayOptions(every=2, **FAST))
    assert summary.kind == "kitti_raw" and summary.frames == 2 and summary.ego_pose
    assert {r.present for r in summary.rows} == {"camera+lidar"}


def test_cli_convert_and_replay(tmp_path, capsys):
    bag = tmp_path / "demo.mcap"
    assert cli_main(["convert", "sim-bag", "tiny", str(bag), "--frames", "2", "--seed", "3",
                     "--no-progress"]) == 0
    assert "2 frames" in capsys.readouterr().out and bag.is_file()
    assert cli_main(["replay", str(bag), "--out", str(tmp_path / "out"), "--no-progress",
                     "--no-video", "--drop", "radar", "--map", "lidar.TOP=/sensors/lidar/points"
                     ]) == 0
    out = capsys.readouterr().out
    assert "**2 frames**" in out and "camera+lidar" in out
    assert cli_main(["replay", str(bag), "--out", str(tmp_path / "bad"),
                     "--map", "lidar=/sensors/camera/front/camera_info"]) == 1
    assert "reads sensor_msgs/msg/PointCloud2" in capsys.readouterr().err


def test_ctrl_c_leaves_a_valid_bag(tmp_path):
    from rosbags.highlevel import AnyReader

    from perception.replay import sim_to_bag

    bag = tmp_path / "long.mcap"
    sim_to_bag("tiny", bag, frames=30, progress=False)
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "perception.cli", "replay", str(bag), "--out", str(out),
         "--no-progress", "--no-video"], cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    partial = out / ".replay.partial"
    deadline = time.monotonic() + 120
    while not partial.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2.0)  # a few frames in
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output
    assert "interrupted" in output
    with AnyReader([out / "bag"]) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] and 0 < summary["frames"] < 30
    assert counts.get("/perception/detections", 0) == summary["frames"]
    assert not partial.exists()


@pytest.mark.parametrize("path, kind", [("x.tfrecord", "waymo_segment"), ("y.db3", "bag")])
def test_log_kinds(tmp_path, path, kind):
    from perception.replay import detect_kind

    (tmp_path / path).write_bytes(b"")
    assert detect_kind(tmp_path / path).value == kind

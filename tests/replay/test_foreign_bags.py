"""Bags from other recorders: a Velodyne layout written by ``rosbags`` in both storages,
mapped with ``--map``, calibrated from a YAML file; and corrupt input, each a clear error or
a counted skip with the output still a valid bag."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import yaml

from perception.errors import ConfigError, DataError
from perception.replay import ReplayOptions, replay

from .foreign_bags import write_velodyne_bag

MAP = {"lidar": "/velodyne_points", "ego_pose": "/odom"}
FAST = dict(progress=False, video=False)
T_BASE_VELODYNE = (1.2, 0.0, 1.8)


@pytest.fixture
def calibration(tmp_path) -> Path:
    path = tmp_path / "calibration.yaml"
    path.write_text(yaml.safe_dump({"vehicle_frame": "base_link", "transforms": [
        {"parent": "base_link", "child": "velodyne", "translation": list(T_BASE_VELODYNE),
         "rotation_xyzw": [0, 0, 0, 1]}]}))
    return path


def _valid_bag(path: Path) -> dict[str, int]:
    from rosbags.highlevel import AnyReader

    with AnyReader([path]) as reader:
        return {c.topic: c.msgcount for c in reader.connections}


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_velodyne_bag_written_by_rosbags_replays(storage, calibration, tmp_path):
    bag = tmp_path / "velodyne"
    written = write_velodyne_bag(bag, storage)
    summary = replay(bag, tmp_path / "out", ReplayOptions(
        topic_map=MAP, calibration=str(calibration), **FAST))
    assert summary.frames == len(written) == 3 and summary.ego_pose
    assert summary.rows[-1].motion_compensated
    assert _valid_bag(tmp_path / "out" / "bag")["/perception/detections"] == 3


def test_velodyne_fields_are_read_by_name_and_calibrated(calibration, tmp_path):
    from perception.replay.bag import open_bag
    from perception.replay.calibration import CalibrationStore, load_calibration_file
    from perception.replay.decode import MessageDecoder
    from perception.replay.read import decoded_messages
    from perception.replay.topics import build_topic_map
    from perception.types import LidarSweep

    bag_path = tmp_path / "velodyne"
    written = write_velodyne_bag(bag_path, "sqlite3")
    with open_bag(bag_path) as bag:
        topic_map = build_topic_map(MAP, bag.topics)
        store = CalibrationStore("base_link", load_calibration_file(calibration))
        decoder = MessageDecoder(topic_map, store)
        sweeps = [item for _, items in decoded_messages(bag, topic_map, decoder)
                  for item in items if isinstance(item, LidarSweep)]
    assert len(sweeps) == 3
    sweep, points = sweeps[0], written[0]
    assert sweep.columns == ("x", "y", "z", "intensity", "ring", "time_offset_s")
    np.testing.assert_allclose(sweep.xyz, np.column_stack([points["x"], points["y"],
                                                           points["z"]]) + T_BASE_VELODYNE,
                               atol=1e-5)
    np.testing.assert_array_equal(sweep.column("time_offset_s"), points["time"])
    np.testing.assert_array_equal(sweep.column("ring"), points["ring"].astype(np.float32))


def test_a_bag_without_calibration_says_how_to_fix_it(tmp_path):
    bag = tmp_path / "velodyne"
    write_velodyne_bag(bag, "mcap")
    summary = replay(bag, tmp_path / "out", ReplayOptions(topic_map=MAP, **FAST))
    assert summary.frames == 0
    assert "no transform from frame 'velodyne'" in " ".join(summary.notes)
    assert summary.skipped["/velodyne_points"] == {"ConversionError": 3}
    _valid_bag(tmp_path / "out" / "bag")


# ------------------------------------------------------------------------------------------
# Corrupt input
# ------------------------------------------------------------------------------------------

def test_truncated_mcap_replays_its_readable_part(calibration, tmp_path):
    from perception.replay.bag import open_bag

    whole = tmp_path / "whole"
    write_velodyne_bag(whole, "mcap", sweeps=80)
    source = next(whole.glob("*.mcap"))
    cut = tmp_path / "cut.mcap"
    data = source.read_bytes()
    cut.write_bytes(data[:int(len(data) * 0.75)])
    with open_bag(cut) as bag:
        recovered = bag.topics["/velodyne_points"].count
        assert bag.truncated and 0 < recovered < 80
    summary = replay(cut, tmp_path / "out", ReplayOptions(
        topic_map=MAP, calibration=str(calibration), every=10, **FAST))
    assert summary.truncated_log and summary.frames == -(-recovered // 10)
    assert _valid_bag(tmp_path / "out" / "bag")["/perception/detections"] == summary.frames


def test_sqlite3_bag_with_a_missing_table_is_a_clear_error(tmp_path):
    bag = tmp_path / "velodyne"
    write_velodyne_bag(bag, "sqlite3")
    with sqlite3.connect(next(bag.glob("*.db3"))) as db:
        db.execute("DROP TABLE messages")
    with pytest.raises(DataError, match="cannot open as rosbag2.*missing tables"):
        replay(bag, tmp_path / "out", ReplayOptions(topic_map=MAP, **FAST))
    assert not (tmp_path / "out" / "bag").exists()


def test_unknown_type_and_corrupt_message_are_counted_skips(calibration, tmp_path):
    bag = tmp_path / "velodyne"
    write_velodyne_bag(bag, "sqlite3", garbage_sweep=1, blob=True)
    with sqlite3.connect(next(bag.glob("*.db3"))) as db:  # the recorder lost the definition
        db.execute("DELETE FROM message_definitions WHERE topic_type = 'acme_msgs/msg/Blob'")
    summary = replay(bag, tmp_path / "out", ReplayOptions(
        topic_map=MAP, calibration=str(calibration), with_input=True, **FAST))
    assert summary.frames == 2
    assert summary.skipped == {"/velodyne_points": {"DataError": 1}}
    assert any("/blob (acme_msgs/msg/Blob) not copied" in note for note in summary.notes)
    counts = _valid_bag(tmp_path / "out" / "bag")
    assert "/blob" not in counts and counts["/velodyne_points"] == 3


def test_topic_mapped_to_the_wrong_type_is_refused(tmp_path):
    bag = tmp_path / "velodyne"
    write_velodyne_bag(bag, "mcap")
    with pytest.raises(ConfigError, match="lidar: topic /odom has type nav_msgs/msg/Odometry, "
                                          "but lidar reads sensor_msgs/msg/PointCloud2"):
        replay(bag, tmp_path / "out", ReplayOptions(topic_map={"lidar": "/odom"}, **FAST))
    with pytest.raises(ConfigError, match="not in the log"):
        replay(bag, tmp_path / "out", ReplayOptions(topic_map={"lidar": "/nope"}, **FAST))
    assert not (tmp_path / "out").exists()
    shutil.rmtree(bag)

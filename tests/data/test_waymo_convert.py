"""Converter: format round trip, resume, atomicity, bad frames, sharding, CLI and datasets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from waymo_open_dataset import dataset_pb2

from perception.cli import main as cli_main
from perception.data import waymo, waymo_writer
from perception.data.datasets import WaymoConvertedDataset, WaymoTFRecordDataset
from perception.data.tfrecord import TFRecordFile, write_records
from perception.data.waymo_convert import (
    ConvertedSegment,
    convert,
    list_segments,
    select_shard,
)
from perception.errors import DataError

PVPS = "waymo-open-dataset/src/waymo_open_dataset/utils/testdata/pvps_data_one_frame.tfrecord"


@pytest.fixture(scope="module")
def source_dir(tmp_path_factory, sim_frames):
    src = tmp_path_factory.mktemp("src")
    waymo_writer.write_frames(src / "seg_a.tfrecord", sim_frames)
    waymo_writer.write_frames(src / "seg_b.tfrecord", sim_frames[:2])
    return src


def _assert_same_frame(a, b):
    assert a.stamp_ns == b.stamp_ns and a.sequence_id == b.sequence_id
    assert a.frame_index == b.frame_index
    np.testing.assert_array_equal(a.lidar.points, b.lidar.points)
    np.testing.assert_array_equal(a.lidar.laser_id, b.lidar.laser_id)
    np.testing.assert_array_equal(a.lidar.return_index, b.lidar.return_index)
    np.testing.assert_array_equal(a.lidar.calibration.T_vehicle_sensor,
                                  b.lidar.calibration.T_vehicle_sensor)
    np.testing.assert_array_equal(a.ego_pose.T_world_vehicle, b.ego_pose.T_world_vehicle)
    for name in ("boxes", "labels", "ids", "velocities", "accelerations", "num_points",
                 "difficulty"):
        np.testing.assert_array_equal(getattr(a.boxes, name), getattr(b.boxes, name))
    assert set(a.cameras) == set(b.cameras)
    for name, cam in a.cameras.items():
        other = b.cameras[name]
        assert cam.encoded == other.encoded and cam.stamp_ns == other.stamp_ns
        np.testing.assert_array_equal(cam.calibration.K, other.calibration.K)
        np.testing.assert_array_equal(cam.calibration.distortion, other.calibration.distortion)
        assert cam.calibration.camera_convention is other.calibration.camera_convention
        assert cam.rolling_shutter.trigger_stamp_ns == other.rolling_shutter.trigger_stamp_ns


def test_convert_round_trip_and_resume(tmp_path, source_dir):
    out = tmp_path / "out"
    summary = convert(source_dir, out, progress=False)
    assert summary.segments_converted == 2 and summary.frames == 5
    assert summary.objects == 10 and summary.frame_errors == 0
    assert "frames: 5, objects: 10, frame errors: 0" in summary.text()
    index = json.loads((out / "index.json").read_text())
    assert [s["name"] for s in index["segments"]] == ["seg_a", "seg_b"]
    segment = ConvertedSegment(out / "seg_a")
    reader = waymo.WaymoReader(source_dir / "seg_a.tfrecord")
    assert len(segment) == len(reader) == 3
    for i in (2, 0, 1):                                   # random order
        _assert_same_frame(reader[i], segment[i])
    # Resume: everything is skipped; a removed segment and a stale partial are redone.
    again = convert(source_dir, out, progress=False)
    assert again.segments_skipped == 2 and again.segments_converted == 0
    shutil.rmtree(out / "seg_b")
    (out / ".seg_b.partial").mkdir()
    (out / ".seg_b.partial" / "points.f32").write_bytes(b"junk")
    third = convert(source_dir, out, progress=False)
    assert third.segments_converted == 1 and third.segments_skipped == 1
    assert sorted(p.name for p in out.iterdir()) == ["index.json", "seg_a", "seg_b"]
    assert len(ConvertedSegment(out / "seg_b")) == 2


def test_real_frame_converts_with_cameras(tmp_path, shared_data):
    src = shared_data / PVPS
    if not src.exists():
        pytest.skip(f"{src} not present")
    summary = convert(src, tmp_path, progress=False)
    assert summary.frames == 1 and summary.objects == 75
    frame = ConvertedSegment(tmp_path / src.stem)[0]
    original = waymo.WaymoReader(src)[0]
    assert frame.lidar is None
    assert frame.cameras["FRONT"].encoded == original.cameras["FRONT"].encoded
    assert frame.cameras["SIDE_LEFT"].image.shape == (886, 1920, 3)
    np.testing.assert_array_equal(frame.boxes.ids, original.boxes.ids)


def test_bad_frames_are_skipped_and_reported(tmp_path, sim_frames, lidar_frame_proto):
    src = tmp_path / "src"
    src.mkdir()
    good = [waymo_writer.sensor_frame_to_proto(f).SerializeToString() for f in sim_frames]
    broken = dataset_pb2.Frame()
    broken.CopyFrom(lidar_frame_proto)
    broken.lasers[1].ri_return1.range_image_compressed = b"not zlib at all"
    write_records(src / "bad.tfrecord", [good[0], broken.SerializeToString(), good[1]])
    # A truncated tail: the readable prefix is converted, the damage reported.
    write_records(src / "cut.tfrecord", good)
    data = (src / "cut.tfrecord").read_bytes()
    (src / "cut.tfrecord").write_bytes(data[:-10])
    # A payload CRC mismatch in record 0 and an unknown label type in record 2.
    unknown_type = dataset_pb2.Frame()
    unknown_type.ParseFromString(good[2])
    unknown_type.laser_labels[0].ClearField("type")
    unknown_type.laser_labels[0].MergeFromString(bytes([3 << 3, 7]))
    write_records(src / "mixed.tfrecord", [good[0], good[1], unknown_type.SerializeToString()])
    data = bytearray((src / "mixed.tfrecord").read_bytes())
    data[12 + 40] ^= 0xFF                                   # inside record 0's payload
    (src / "mixed.tfrecord").write_bytes(bytes(data))
    out = tmp_path / "out"
    summary = convert(src, out, progress=False)
    assert summary.segments_converted == 3 and summary.segments_failed == 0
    assert summary.frames == 2 + 2 + 1 and summary.frame_errors == 4
    text = summary.text()
    assert "zlib" in text and "[record 1]" in text and "truncated" in text
    assert "payload CRC mismatch" in text and "unknown label type" in text
    mixed = json.loads((out / "mixed" / "meta.json").read_text())
    assert [f["frame_index"] for f in mixed["frames"]] == [1]
    meta = json.loads((out / "bad" / "meta.json").read_text())
    assert len(meta["frames"]) == 2 and "record 1" in meta["errors"][0]
    assert [f["frame_index"] for f in meta["frames"]] == [0, 2]
    bad = ConvertedSegment(out / "bad")
    np.testing.assert_array_equal(bad[1].lidar.points,
                                  waymo.WaymoReader(src / "bad.tfrecord")[2].lidar.points)
    assert not list(out.glob(".*"))                       # no partial outputs left


def test_shards_partition_the_segments():
    paths = [Path(f"s{i}.tfrecord") for i in range(7)]
    shards = [select_shard(paths, i, 3) for i in range(3)]
    assert sorted(sum(shards, [])) == sorted(paths)
    assert all(not set(a) & set(b) for a in shards for b in shards if a is not b)


def test_cli_convert_with_workers_and_shard(tmp_path, source_dir, capsys):
    out = tmp_path / "cli_out"
    code = cli_main(["convert", "waymo", str(source_dir), str(out), "--workers", "2",
                     "--shard", "1/2", "--no-progress"])
    assert code == 0
    assert "frames: 2" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["index.json", "seg_b"]
    assert cli_main(["convert", "waymo", str(tmp_path / "missing"), str(out)]) == 1


def test_datasets_agree(tmp_path, source_dir):
    out = tmp_path / "out"
    convert(source_dir, out, progress=False)
    converted = WaymoConvertedDataset(out)
    raw = WaymoTFRecordDataset(source_dir)
    assert len(converted) == len(raw) == 5
    assert converted.locate(4) == (1, 1)
    for i in (4, 0, 3):
        _assert_same_frame(raw[i], converted[i])
    loader = torch.utils.data.DataLoader(
        WaymoConvertedDataset(out, transform=lambda f: torch.from_numpy(f.lidar.points)),
        batch_size=2, collate_fn=list)
    batches = list(loader)
    assert [len(b) for b in batches] == [2, 2, 1]
    assert batches[0][0].shape[1] == 5
    with pytest.raises(IndexError):
        converted[5]
    with pytest.raises(DataError):
        WaymoConvertedDataset(tmp_path / "nothing_here")


def test_list_segments(source_dir):
    assert [p.name for p in list_segments(source_dir)] == ["seg_a.tfrecord", "seg_b.tfrecord"]
    assert len(TFRecordFile(source_dir / "seg_b.tfrecord")) == 2


def test_interrupted_conversion_leaves_nothing_partial(tmp_path, source_dir, monkeypatch):
    from perception.data import waymo_convert

    calls = []
    original_add = waymo_convert._SegmentWriter.add

    def add_then_die(self, frame):
        calls.append(frame.frame_index)
        if len(calls) == 2:
            raise KeyboardInterrupt                       # e.g. Ctrl-C in the middle
        original_add(self, frame)

    monkeypatch.setattr(waymo_convert._SegmentWriter, "add", add_then_die)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        convert(source_dir, out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == []    # no segment, no partial directory
    monkeypatch.setattr(waymo_convert._SegmentWriter, "add", original_add)
    summary = convert(source_dir, out, progress=False)
    assert summary.segments_converted == 2 and summary.frames == 5

"""Simulator -> bag -> replay: frames read back equal the simulator's; the replay's
``metrics.json`` equals running the pipeline directly on the same frames; the same input
gives byte-identical outputs; options select frames and sensors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from perception.align import SyncConfig
from perception.data.sim import Simulator
from perception.eval.detection import evaluate_detection
from perception.eval.frames import FrameKey
from perception.eval.report import metrics_json
from perception.eval.tracking import evaluate_tracking
from perception.models.config import GridConfig, ground_truth_in_grid
from perception.pipeline import Pipeline
from perception.replay import ReplayOptions, bag_frames, replay, sim_to_bag
from perception.types import Detections, Modality

from .conftest import SIM_FRAMES, SIM_PRESET, SIM_SEED

FAST = dict(progress=False, video=False)


def assert_same_frames(original, back) -> None:
    """Points exactly equal, images byte-equal (pixels equal for decoded ones), stamps and
    ground truth equal."""
    assert [f.stamp_ns for f in back] == [f.stamp_ns for f in original]
    for a, b in zip(original, back):
        assert b.lidar.columns == a.lidar.columns
        np.testing.assert_allclose(b.lidar.calibration.T_vehicle_sensor,
                                   a.lidar.calibration.T_vehicle_sensor, atol=1e-12)
        np.testing.assert_array_equal(b.lidar.points, a.lidar.points)
        assert sorted(b.cameras) == sorted(a.cameras) and sorted(b.radars) == sorted(a.radars)
        for name, image in a.cameras.items():
            assert b.cameras[name].stamp_ns == image.stamp_ns
            if image.encoded is not None:
                assert b.cameras[name].encoded == image.encoded
            np.testing.assert_array_equal(b.cameras[name].image, image.image)
            np.testing.assert_allclose(b.cameras[name].calibration.T_vehicle_optical,
                                       image.calibration.T_vehicle_optical, atol=1e-12)
        for name, scan in a.radars.items():
            assert b.radars[name].columns == scan.columns
            # the radar's mounting (its Doppler is radial from there), though the cloud is
            # stored in the vehicle frame
            np.testing.assert_allclose(b.radars[name].calibration.T_vehicle_sensor,
                                       scan.calibration.T_vehicle_sensor, atol=1e-12)
            np.testing.assert_array_equal(b.radars[name].points, scan.points)
        np.testing.assert_array_equal(b.boxes.boxes, a.boxes.boxes)
        np.testing.assert_array_equal(b.boxes.ids, a.boxes.ids)
        np.testing.assert_array_equal(b.boxes.num_points, a.boxes.num_points)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_reads_back_the_same_frames(storage, sim_bag, sim_frames, tmp_path):
    path = sim_bag
    if storage == "sqlite3":
        path = tmp_path / "sim_sqlite"
        sim_to_bag(SIM_PRESET, path, seed=SIM_SEED, frames=SIM_FRAMES, storage="sqlite3",
                   progress=False)
        assert list(path.glob("*.db3")) and (path / "metadata.yaml").is_file()
    back = list(bag_frames(path))
    assert_same_frames([f for f, _ in sim_frames], back)


def _direct_metrics(sim_frames) -> str:
    """The pipeline fed the simulator's own messages (arrival = stamp), scored as replay
    scores: ground truth in the model's range, detection and tracking metrics."""
    sim = Simulator(SIM_PRESET, seed=SIM_SEED)
    pipeline = Pipeline.from_checkpoint(sync_config=SyncConfig(
        reference=sim.lidar.cfg.name, cameras=tuple(sorted(sim.cameras)),
        radars=tuple(sorted(sim.radars)), camera_tolerance_s=0.1, radar_tolerance_s=0.05,
        timeout_s=0.3))
    truth, outputs, last = {}, [], 0
    for frame, _ in sim_frames:
        truth[frame.stamp_ns] = frame.boxes
        for message in sim.frame_messages(frame):
            last = message.stamp_ns
            outputs += pipeline.push(message.payload, message.stamp_ns)
    outputs += pipeline.flush(last)
    grid = GridConfig(point_range_m=tuple(pipeline.detector.config.grid.point_range_m))
    gt, detections, tracks, ids = {}, {}, {}, {}
    for o in outputs:
        key = FrameKey("direct", o.stamp_ns)
        gt[key] = ground_truth_in_grid(truth[o.stamp_ns], grid)
        detections[key] = o.detections
        tracks[key] = Detections(o.tracks.stamp_ns, o.tracks.boxes, o.tracks.scores,
                                 o.tracks.labels, velocities=o.tracks.velocities)
        ids[key] = o.tracks.ids
    metrics = metrics_json(evaluate_detection(gt, detections),
                           evaluate_tracking(gt, tracks, ids))
    return json.dumps(metrics, indent=2, sort_keys=True) + "\n"


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_replay_metrics_equal_the_direct_pipeline_and_are_deterministic(sim_bag, sim_frames,
                                                                         tmp_path):
    first = replay(sim_bag, tmp_path / "a", ReplayOptions(**FAST))
    second = replay(sim_bag, tmp_path / "b", ReplayOptions(**FAST))
    assert first.frames == second.frames == SIM_FRAMES
    metrics = (tmp_path / "a" / "metrics.json").read_text()
    assert metrics == _direct_metrics(sim_frames)
    assert (tmp_path / "b" / "metrics.json").read_text() == metrics
    assert _files(tmp_path / "a" / "bag") == _files(tmp_path / "b" / "bag")
    assert {r.present for r in first.rows} == {"camera+lidar+radar"}
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["frames"] == SIM_FRAMES and summary["ego_pose"] is True
    assert set(summary["latency_ms"]) >= {"model_ms", "track_ms", "sync_wait_ms"}
    assert (tmp_path / "a" / "summary.md").read_text().startswith("# Replay of")
    assert not list((tmp_path / "a").glob(".*"))  # no temporary names left


def test_output_bag_topics(sim_bag, tmp_path):
    from rosbags.highlevel import AnyReader

    replay(sim_bag, tmp_path, ReplayOptions(progress=False, video_max_frames=2,
                                            with_input=True))
    assert (tmp_path / "replay.gif").stat().st_size > 0
    with AnyReader([tmp_path / "bag"]) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
        statuses = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages(
            [c for c in reader.connections if c.topic == "/perception/status"])]
    for topic in ("/perception/detections", "/perception/tracks", "/perception/status",
                  "/perception/detections/markers", "/perception/tracks/markers",
                  "/perception/ground_truth/markers", "/sensors/lidar/points",
                  "/sim/ground_truth"):
        assert counts[topic] == SIM_FRAMES, topic
    assert counts["/tf_static"] >= 1
    assert statuses[0].modalities == ["camera", "lidar", "radar"]
    # the first sweep starts before the first pose; poses cover a later one
    assert any(s.motion_compensated for s in statuses)
    assert all(s.total_latency_ms == 0.0 for s in statuses)


def test_every_window_and_dropped_sensor(sim_bag, sim_frames, tmp_path):
    stamps = [f.stamp_ns for f, _ in sim_frames]
    every = replay(sim_bag, tmp_path / "every", ReplayOptions(every=2, **FAST))
    assert [r.stamp_ns for r in every.rows] == stamps[::2]
    windowed = replay(sim_bag, tmp_path / "window", ReplayOptions(
        start_offset_s=0.05, duration_s=0.1, drop=(Modality.CAMERA,), **FAST))
    assert [r.stamp_ns for r in windowed.rows] == [stamps[1]]
    assert windowed.rows[0].present == "lidar+radar"
    assert "FRONT" not in windowed.sensors

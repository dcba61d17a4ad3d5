"""The ROS-free pipeline: live multi-rate input and synchronised frames through sync,
accumulation, detector and tracker, with the same accumulation as training."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from perception.align import SweepHistory, SyncConfig
from perception.data.sim import Simulator
from perception.errors import ConfigError
from perception.models.checkpoint import save_weights
from perception.models.detector import build_detector
from perception.pipeline import Pipeline
from perception.tracking import Tracker
from perception.tracking.config import load_tracker_config
from perception.train.data import FrameDataset, SimFrames
from perception.types import Modality

from ..models._helpers import small_model_config

NS = 1_000_000_000


@pytest.fixture(scope="module")
def sim() -> Simulator:
    return Simulator("tiny", seed=3)


@pytest.fixture(scope="module")
def detector():
    torch.manual_seed(0)
    return build_detector(small_model_config()).eval()


def _tracker() -> Tracker:
    from perception.pipeline import DEFAULT_TRACKER_CONFIG

    return Tracker(load_tracker_config(DEFAULT_TRACKER_CONFIG))


def test_run_gives_one_output_per_frame_with_stage_timings(sim, detector):
    frames = list(sim.frames(4))
    pipeline = Pipeline(detector, _tracker())
    outputs = list(pipeline.run(frames))
    assert [o.stamp_ns for o in outputs] == [f.stamp_ns for f in frames]
    for out, frame in zip(outputs, frames):
        assert out.frame is frame
        assert out.modalities == frozenset(Modality)
        assert out.tracks is not None and out.tracks.stamp_ns == frame.stamp_ns
        t = out.timings
        assert t.sync_wait_ms == 0.0 and min(t.collate_ms, t.model_ms, t.decode_ms,
                                             t.track_ms) >= 0.0
        assert t.model_ms > 0.0 and t.total_ms >= t.model_ms
    # The detector stage is exactly the model's own predict().
    direct = detector.predict(frames[:1])[0]
    assert np.array_equal(outputs[0].detections.boxes, direct.boxes)
    assert np.array_equal(outputs[0].detections.scores, direct.scores)
    assert pipeline.stats.frames == 4


def test_push_synchronises_a_multi_rate_stream(sim, detector):
    config = SyncConfig(reference="TOP", cameras=("FRONT",), radars=("RADAR_FRONT",),
                        timeout_s=0.3)
    pipeline = Pipeline(detector, _tracker(), config)
    stream = list(sim.stream(1.0))
    outputs = []
    for message in stream:
        outputs += pipeline.push(message.payload, message.stamp_ns + int(0.01 * NS))
    outputs += pipeline.flush(stream[-1].stamp_ns + NS)
    sweeps = [m.stamp_ns for m in stream if m.payload.__class__.__name__ == "LidarSweep"]
    assert [o.stamp_ns for o in outputs] == sweeps
    middle = outputs[1:-1]
    assert all(o.modalities == frozenset(Modality) and o.missing == () for o in middle)
    assert all(o.motion_compensated for o in middle)
    assert all(o.timings.sync_wait_ms >= 0.0 for o in outputs)
    assert pipeline.sensor_stats["TOP"].used == len(sweeps)
    # The detections are the model's on the aligned frame.
    direct = detector.predict([middle[0].frame])[0]
    assert np.array_equal(middle[0].detections.boxes, direct.boxes)


def test_push_without_a_sync_config_is_a_clear_error(sim, detector):
    pipeline = Pipeline(detector)
    with pytest.raises(ConfigError, match="sync_config"):
        pipeline.push(sim.frame(0).lidar)


def test_dropped_modality_is_not_used(sim, detector):
    pipeline = Pipeline(detector, drop={Modality.CAMERA})
    out = next(pipeline.run([sim.frame(0)]))
    assert out.modalities == frozenset({Modality.LIDAR, Modality.RADAR})
    assert out.tracks is None


def test_online_accumulation_equals_training(tmp_path):
    """A model trained with radar_scans / lidar_sweeps > 1 sees the same input online."""
    frames = SimFrames("tiny", seeds=[0], frames_per_seed=3, stride=4, cache_dir=tmp_path)
    dataset = FrameDataset(frames, len(frames), radar_scans=3, lidar_sweeps=2,
                           previous=frames.previous)
    offline = dataset[2]  # simulator frame 8, with frames 7 and 6 merged in
    history = SweepHistory(lidar_sweeps=2, radar_scans=3)
    online = None
    for k in range(9):  # what a live stream delivers, frame by frame
        online = history.add(frames._frame(0, k))
    assert online.stamp_ns == offline.stamp_ns
    assert np.array_equal(online.lidar.points, offline.lidar.points)
    assert sorted(online.radars) == sorted(offline.radars)
    assert len(online.radars) > 1
    for name in online.radars:
        assert np.array_equal(online.radars[name].points, offline.radars[name].points)
    # Same scan delivered to two frames (13 Hz radar, 10 Hz frames) is merged once.
    stamps = [(name.split("@")[0], s.stamp_ns) for name, s in online.radars.items()]
    assert len(stamps) == len(set(stamps))


def test_backwards_stamp_resets_the_tracker(sim, detector):
    frames = list(sim.frames(3))
    pipeline = Pipeline(detector, _tracker())
    outs = list(pipeline.run(frames + frames[:2]))  # a looped log
    assert [o.tracker_reset for o in outs] == [False, False, False, True, False]
    assert pipeline.stats.tracker_resets == 1
    assert outs[3].tracks.stamp_ns == frames[0].stamp_ns


def test_from_checkpoint_reads_the_sweeps_it_was_trained_with(sim, tmp_path, detector):
    path = save_weights(tmp_path / "w.pt", detector, detector.config, lidar_sweeps=1,
                        radar_scans=2)
    pipeline = Pipeline.from_checkpoint(path)
    assert pipeline.history.radar_scans == 2 and pipeline.history.lidar_sweeps == 1
    assert pipeline.tracker is not None
    out = next(pipeline.run([sim.frame(0)]))
    direct = detector.predict([sim.frame(0)])[0]
    # float16 weights: the same boxes up to half-precision rounding of the parameters.
    assert len(out.detections) > 0
    assert np.abs(out.detections.scores[:5] - direct.scores[:5]).max() < 0.05


def test_fp16_needs_cuda(detector):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ConfigError, match="fp16"):
        Pipeline(detector, precision="fp16")
    with pytest.raises(ConfigError, match="precision"):
        Pipeline(detector, precision="int3")


def test_frames_are_not_modified(sim, detector):
    frame = sim.frame(1)
    before = frame.lidar.points.copy()
    list(Pipeline(detector, _tracker(), lidar_sweeps=2).run([sim.frame(0), frame]))
    assert np.array_equal(frame.lidar.points, before)
    assert dataclasses.is_dataclass(frame)

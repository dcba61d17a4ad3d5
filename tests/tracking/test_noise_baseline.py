"""The detection noise model and the greedy baseline tracker."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from perception.errors import TimestampError, ValidationError
from perception.tracking import GreedyCenterTracker, Tracker, TrackerConfig
from perception.tracking.noise import NOISE_LEVELS, noisy_detections
from perception.types import Boxes3D, Detections, TrackState

NOISE = {n.name: n for n in NOISE_LEVELS}


def _gt_sequence(n_frames: int = 200, n_objects: int = 20):
    """Objects on a grid moving along +x at 5 m/s; ids 0..n-1; vehicle frame = world."""
    base = np.zeros((n_objects, 7))
    base[:, 0] = np.arange(n_objects) % 5 * 10.0
    base[:, 1] = np.arange(n_objects) // 5 * 8.0
    base[:, 2] = 0.8
    base[:, 3:6] = (4.5, 1.9, 1.6)
    frames, stamps = [], []
    for k in range(n_frames):
        boxes = base.copy()
        boxes[:, 0] += 0.5 * k
        frames.append(Boxes3D(boxes, np.ones(n_objects, np.int32), ids=np.arange(n_objects),
                              velocities=np.tile([5.0, 0.0], (n_objects, 1))))
        stamps.append(1_000_000_000 + k * 100_000_000)
    return frames, stamps


def test_noise_is_deterministic_for_a_seed():
    frames, stamps = _gt_sequence(20)
    a = noisy_detections(frames, stamps, NOISE["medium"], np.random.default_rng(3))
    b = noisy_detections(frames, stamps, NOISE["medium"], np.random.default_rng(3))
    assert all(np.array_equal(x.boxes, y.boxes) for x, y in zip(a, b))
    assert all(d.stamp_ns == s for d, s in zip(a, stamps))


def test_noise_statistics_follow_the_parameters():
    frames, stamps = _gt_sequence()
    noise = dataclasses.replace(NOISE["medium"], false_positives_per_frame=0.0, burst_prob=0.0,
                                heading_flip_prob=0.0)
    dets = noisy_detections(frames, stamps, noise, np.random.default_rng(0))
    detected = sum(len(d) for d in dets) / sum(len(f) for f in frames)
    assert detected == pytest.approx(1 - noise.miss_prob, abs=0.02)
    # Each detection is close to a ground-truth box; the offsets have the configured spread.
    offsets = []
    for d, gt in zip(dets, frames):
        dist = np.linalg.norm(d.boxes[:, None, :2] - gt.boxes[None, :, :2], axis=-1)
        nearest = dist.argmin(axis=1)
        offsets.append(d.boxes[:, :2] - gt.boxes[nearest, :2])
    offsets = np.concatenate(offsets)
    assert offsets.std(axis=0) == pytest.approx([noise.position_std_m] * 2, rel=0.1)
    assert (dets[0].scores >= noise.tp_score[0]).all()


def test_false_positives_and_bursts():
    frames, stamps = _gt_sequence(300, 10)
    fp_only = dataclasses.replace(NOISE["high"], miss_prob=0.0, burst_prob=0.0)
    dets = noisy_detections(frames, stamps, fp_only, np.random.default_rng(1))
    extra = np.mean([len(d) - len(f) for d, f in zip(dets, frames)])
    assert extra == pytest.approx(fp_only.false_positives_per_frame, rel=0.1)

    bursts = dataclasses.replace(NOISE["high"], miss_prob=0.0, burst_prob=0.05,
                                 false_positives_per_frame=0.0, position_std_m=0.01)
    dets = noisy_detections(frames, stamps, bursts, np.random.default_rng(2))
    # Recover which objects were seen per frame and measure the lengths of the gaps.
    gaps = []
    for obj in range(10):
        seen = [bool((np.abs(d.boxes[:, :2] - f.boxes[obj, :2]).max(axis=1) < 0.1).any())
                for d, f in zip(dets, frames)]
        run = 0
        for s in seen:                     # a burst cut short by the end is left out
            if not s:
                run += 1
            elif run:
                gaps.append(run)
                run = 0
    assert gaps and min(gaps) >= bursts.burst_min_frames
    # Bursts may follow one another; most gaps are single bursts.
    assert np.median(gaps) <= bursts.burst_max_frames


def test_noise_needs_ids():
    frames = [Boxes3D(np.array([[0, 0, 0.8, 4, 2, 1.5, 0]], np.float32), np.ones(1, np.int32))]
    with pytest.raises(ValidationError, match="ids"):
        noisy_detections(frames, [0], NOISE["low"], np.random.default_rng(0))


def test_baseline_follows_straight_objects_and_outputs_only_matched_tracks():
    frames, stamps = _gt_sequence(30, 5)
    baseline = GreedyCenterTracker()
    ids = set()
    for k, (gt, stamp_ns) in enumerate(zip(frames, stamps)):
        boxes = gt.boxes if k != 10 else gt.boxes[1:]             # object 0 missed once
        dets = Detections(stamp_ns, boxes, np.full(len(boxes), 0.9, np.float32),
                          gt.labels[:len(boxes)], velocities=gt.velocities[:len(boxes)])
        tracks = baseline.update(dets, stamp_ns)
        assert len(tracks) == len(boxes)
        assert (tracks.states == TrackState.CONFIRMED).all()
        ids.update(tracks.ids.tolist())
    assert ids == {1, 2, 3, 4, 5}
    np.testing.assert_allclose(tracks.velocities, gt.velocities, atol=1e-5)
    with pytest.raises(TimestampError):
        baseline.update(Detections.empty(stamps[0]), stamps[0])


def test_tracker_beats_baseline_on_noisy_detections():
    """High noise on 20 objects in a grid: fewer id switches than the greedy baseline."""
    frames, stamps = _gt_sequence(150, 20)
    dets = noisy_detections(frames, stamps, NOISE["high"], np.random.default_rng(4))

    def id_changes(tracker) -> int:
        owner: dict[int, int] = {}
        changes = 0
        for d, gt, stamp_ns in zip(dets, frames, stamps):
            tracks = tracker.update(d, stamp_ns)
            if len(tracks) == 0:
                continue
            dist = np.linalg.norm(gt.boxes[:, None, :2] - tracks.boxes[None, :, :2], axis=-1)
            for obj, j in enumerate(dist.argmin(axis=1)):
                if dist[obj, j] < 1.5:
                    tid = int(tracks.ids[j])
                    changes += owner.get(obj, tid) != tid
                    owner[obj] = tid
        return changes

    ours = id_changes(Tracker(TrackerConfig()))
    base = id_changes(GreedyCenterTracker(min_score=0.4))
    assert ours < base

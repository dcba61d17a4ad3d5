"""Bad input: NaN boxes, empty frames, stamps that repeat or go backwards, large time gaps."""

from __future__ import annotations

import numpy as np
import pytest

from perception.errors import TimestampError, ValidationError
from perception.tracking import ManagementConfig, Tracker, TrackerConfig, detections_from_arrays
from perception.types import Detections, EgoPose, ObjectClass


def _tracker(**management) -> Tracker:
    return Tracker(TrackerConfig(management=ManagementConfig(**management)))


def _run(tracker: Tracker, scene, frames: range, x0: float = 10.0, speed_mps: float = 5.0):
    tracks = None
    for k in frames:
        box = scene.world_box(x0 + speed_mps * k * 0.1, 0.0, 0.0)
        tracks = tracker.update(scene.detections(k, [box], scene.ego_pose(k)), scene.stamp(k))
    return tracks


def test_nan_boxes_are_dropped_and_counted(scene):
    tracker = _tracker(confirm_hits=1)
    boxes = np.array([scene.world_box(10.0, 0.0, 0.0), scene.world_box(20.0, 5.0, 0.0),
                      scene.world_box(30.0, -5.0, 0.0), scene.world_box(40.0, 0.0, 0.0)])
    boxes[1, 0] = np.nan
    boxes[2, 6] = np.inf
    boxes[3, 3] = 0.0                                    # zero length is refused as well
    tracks = tracker.update_arrays(scene.stamp(0), boxes, np.full(4, 0.9),
                                   np.full(4, ObjectClass.VEHICLE))
    assert len(tracks) == 1
    np.testing.assert_allclose(tracks.boxes[0, :2], [10.0, 0.0], atol=1e-5)
    assert tracker.stats.dropped_invalid == 3
    tracks = tracker.update_arrays(scene.stamp(1), boxes[:2], [0.9, 0.9], [1, 1])
    assert tracker.stats.dropped_invalid == 4
    assert len(tracks) == 1


def test_detections_from_arrays_drops_bad_scores_labels_and_velocities():
    boxes = np.tile(np.array([[1.0, 2.0, 0.5, 4.0, 2.0, 1.5, 0.0]]), (5, 1))
    scores = np.array([0.5, np.nan, 1.5, 0.5, 0.5])
    labels = np.array([1, 1, 1, 99, 2])
    velocities = np.array([[1.0, 0.0]] * 4 + [[np.nan, 0.0]])
    dets, dropped = detections_from_arrays(7, boxes, scores, labels, velocities)
    assert dropped == 4 and len(dets) == 1
    assert dets.velocities.shape == (1, 2) and dets.stamp_ns == 7
    with pytest.raises(ValidationError):
        detections_from_arrays(7, boxes, scores[:3], labels)
    with pytest.raises(ValidationError, match=r"\(N, 7\)"):
        detections_from_arrays(7, np.zeros((2, 8)), [0.5, 0.5], [1, 1])


def test_empty_frames_are_fine_and_make_tracks_coast(scene):
    tracker = _tracker(max_coast_frames=3)
    empty = tracker.update(Detections.empty(scene.stamp(0)), scene.stamp(0))
    assert len(empty) == 0 and empty.covariances is not None
    tracks = _run(tracker, scene, range(1, 6))
    assert len(tracks) == 1
    coasted = tracker.update(Detections.empty(scene.stamp(6)), scene.stamp(6))
    assert len(coasted) == 1 and coasted.ids[0] == tracks.ids[0]
    # Coasting predicts forward: 5 m/s for 0.1 s.
    assert coasted.boxes[0, 0] == pytest.approx(tracks.boxes[0, 0] + 0.5, abs=0.15)
    tracks = tracker.update_arrays(scene.stamp(7), np.zeros((0, 7)), [], [])
    assert len(tracks) == 1


@pytest.mark.parametrize("step", [0, -1])
def test_repeated_or_backward_stamp_raises_and_leaves_the_state(scene, step):
    tracker = _tracker()
    tracks = _run(tracker, scene, range(5))
    before = (tracker.num_tracks, tracker.stats.frames)
    k = 4 + step
    with pytest.raises(TimestampError, match="does not increase"):
        tracker.update(scene.detections(k, [], scene.ego_pose(k)), scene.stamp(k))
    assert (tracker.num_tracks, tracker.stats.frames) == before
    after = _run(tracker, scene, range(5, 7))
    assert after.ids.tolist() == tracks.ids.tolist()


def test_backward_stamp_resets_with_the_reset_policy(scene):
    tracker = _tracker(on_time_reversal="reset", confirm_hits=1)
    tracks = _run(tracker, scene, range(5, 10))
    restarted = _run(tracker, scene, range(0, 3))
    assert tracker.stats.resets == 1
    assert len(restarted) == 1 and restarted.ids[0] > tracks.ids[0]
    assert restarted.hits[0] == 3


def test_mismatched_stamps_are_refused(scene):
    tracker = _tracker()
    with pytest.raises(TimestampError, match="differs"):
        tracker.update(Detections.empty(scene.stamp(1)), scene.stamp(2))
    pose = EgoPose(scene.stamp(0), np.eye(4))
    with pytest.raises(TimestampError, match="ego_pose"):
        tracker.update(Detections.empty(scene.stamp(5)), scene.stamp(5), pose)
    with pytest.raises(TimestampError):
        tracker.update(Detections.empty(scene.stamp(5)), 0.5)
    with pytest.raises(ValidationError):
        tracker.update(np.zeros((1, 7)), scene.stamp(5))
    assert tracker.stats.frames == 0


def test_short_time_gap_coasts_and_keeps_the_id(scene):
    tracker = _tracker(max_coast_s=1.0, max_coast_frames=5)
    tracks = _run(tracker, scene, range(5))
    # 0.8 s without any frame: one prediction over the gap, then the object is found again.
    resumed = _run(tracker, scene, range(13, 16))
    assert len(resumed) == 1 and resumed.ids[0] == tracks.ids[0]
    assert tracker.stats.deletions == 0


def test_long_time_gap_deletes_the_tracks(scene):
    tracker = _tracker(max_coast_s=1.0, max_coast_frames=5, confirm_hits=1)
    tracks = _run(tracker, scene, range(5))
    gap = tracker.update(Detections.empty(scene.stamp(30)), scene.stamp(30))
    assert len(gap) == 0 and tracker.num_tracks == 0
    assert tracker.stats.deletions == 1
    later = _run(tracker, scene, range(31, 33))
    assert later.ids[0] != tracks.ids[0]


def test_time_since_last_hit_deletes_even_within_the_frame_limit(scene):
    """Frames at 20 Hz: 10 misses stay within max_coast_frames=20 but exceed max_coast_s."""
    tracker = _tracker(max_coast_s=0.4, max_coast_frames=20)
    _run(tracker, scene, range(5))
    alive = []
    for i in range(1, 11):
        stamp_ns = scene.stamp(4) + i * 50_000_000
        alive.append(len(tracker.update(Detections.empty(stamp_ns), stamp_ns)))
    assert alive[:8] == [1] * 8 and alive[8:] == [0, 0]

"""Live-input behaviour of the sync (stale sensors, frames without lidar) and the helpers that
hand live frames to the model and the tracker (:mod:`perception.align.realtime`)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from perception.align import (
    DeadlineMonitor,
    Health,
    LatestFrame,
    PoseBuffer,
    SensorSync,
    StampOrder,
    StampVerdict,
    SyncConfig,
    near_tracks,
)
from perception.config import from_dict
from perception.data.sim import MessageKind, Simulator
from perception.errors import ConfigError
from perception.geometry import make_transform, rotation_z
from perception.types import EgoPose, Modality, Tracks

NS = 1_000_000_000
LATENCY_NS = 20_000_000


@pytest.fixture(scope="module")
def stream():
    """The tiny preset for 2 s: lidar TOP 10 Hz, camera FRONT 10 Hz, radar RADAR_FRONT 13 Hz,
    ego poses 20 Hz."""
    return list(Simulator("tiny", seed=3).stream(2.0))


def _config(**changes) -> SyncConfig:
    values = dict(reference="TOP", cameras=("FRONT",), radars=("RADAR_FRONT",),
                  camera_tolerance_s=0.03, radar_tolerance_s=0.04, timeout_s=0.3)
    values.update(changes)
    return SyncConfig(**values)


def _run(sync: SensorSync, stream, drop=lambda m: False):
    """Push in stamp order with a fixed latency; time passes at the end."""
    frames = []
    last = 0
    for message in stream:
        if drop(message):
            continue
        last = message.stamp_ns + LATENCY_NS
        frames += sync.push(message.payload, last)
    return frames + sync.poll(last + 10 * NS)


# -------------------------------------------------------------------------------------------
# max_sensor_delay_s
# -------------------------------------------------------------------------------------------

def test_a_dead_camera_is_masked_and_not_waited_for(stream):
    stop_ns = stream[0].stamp_ns + NS
    dead = lambda m: m.kind is MessageKind.CAMERA and m.stamp_ns >= stop_ns  # noqa: E731
    waiting = SensorSync(_config())
    masked = SensorSync(_config(max_sensor_delay_s=0.25))
    old = _run(waiting, stream, dead)
    new = _run(masked, stream, dead)
    assert [f.stamp_ns for f in new] == [f.stamp_ns for f in old]  # no frame is lost
    # once the newest image is more than 0.25 s older than the sweep, frames stop waiting
    last_image = max(m.stamp_ns for m in stream if m.kind is MessageKind.CAMERA and not dead(m))
    stale = [f for f in new if f.stamp_ns > last_image + 250_000_000]
    assert stale and all(f.missing == ("FRONT",) and not f.timed_out for f in stale[:-1])
    assert all(Modality.CAMERA not in f.modalities for f in stale)
    waited = {f.stamp_ns: f for f in old}
    assert all(waited[f.stamp_ns].timed_out for f in stale[:-1])
    assert all(f.emitted_arrival_ns - f.reference_arrival_ns < masked.timeout_ns
               for f in stale[:-1])
    assert masked.stats["FRONT"].stale == len(stale)
    assert masked.stats["FRONT"].missing >= masked.stats["FRONT"].stale
    # frames before the camera stopped are untouched
    before = [f for f in new if f.stamp_ns < stop_ns]
    assert all("FRONT" in f.frame.cameras for f in before)


def test_max_sensor_delay_masks_old_matches_one_sided(stream):
    """A camera always 40 ms behind the sweep: within a 50 ms tolerance, but older than a
    30 ms maximum delay."""
    shifted = []
    for m in stream:
        if m.kind is MessageKind.CAMERA:
            image = m.payload
            image = type(image)(image.name, image.stamp_ns - 40_000_000, image.calibration,
                                pixels=image.image)
            m = type(m)(m.kind, m.sensor_name, image.stamp_ns, image)
        shifted.append(m)
    shifted.sort(key=lambda m: m.stamp_ns)
    tolerant = _run(SensorSync(_config(camera_tolerance_s=0.05)), shifted)
    strict = _run(SensorSync(_config(camera_tolerance_s=0.05, max_sensor_delay_s=0.03)), shifted)
    assert all("FRONT" in f.frame.cameras for f in tolerant[1:])
    assert all("FRONT" not in f.frame.cameras for f in strict)


def test_without_the_new_options_nothing_changes(stream):
    a = _run(SensorSync(_config()), stream)
    b = _run(SensorSync(_config(max_sensor_delay_s=None, fallback_reference=None)), stream)
    assert [(f.stamp_ns, f.missing, f.timed_out) for f in a] == \
        [(f.stamp_ns, f.missing, f.timed_out) for f in b]


# -------------------------------------------------------------------------------------------
# fallback_reference
# -------------------------------------------------------------------------------------------

def test_frames_without_lidar_after_the_timeout(stream):
    stop_ns = stream[0].stamp_ns + NS
    sync = SensorSync(_config(fallback_reference="FRONT", max_sensor_delay_s=0.25))
    frames = _run(sync, stream, lambda m: m.kind is MessageKind.LIDAR and m.stamp_ns >= stop_ns)
    with_lidar = [f for f in frames if f.frame.lidar is not None]
    without = [f for f in frames if f.frame.lidar is None]
    assert with_lidar and without
    assert all(f.stamp_ns < stop_ns for f in with_lidar)
    # the first fallback frame comes once no sweep arrived for timeout_s (0.3 s)
    last_sweep = max(f.stamp_ns for f in with_lidar)
    assert min(f.stamp_ns for f in without) >= last_sweep + 300_000_000 - 100_000_000
    cameras = [m.stamp_ns for m in stream if m.kind is MessageKind.CAMERA]
    assert all(f.stamp_ns in cameras for f in without)  # stamped with the camera's stamp
    for f in without:
        assert f.missing[0] == "TOP" and "TOP" not in f.offsets_ns
        assert f.offsets_ns["FRONT"] == 0
        assert f.modalities == frozenset({Modality.CAMERA, Modality.RADAR}) or \
            f.modalities == frozenset({Modality.CAMERA})
    assert sum(Modality.RADAR in f.modalities for f in without) >= len(without) - 1
    assert any(f.motion_compensated for f in without)
    assert sync.frames_without_reference == len(without)
    assert sync.stats["TOP"].missing == len(without)
    stamps = [f.stamp_ns for f in frames]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


def test_lidar_back_after_a_gap_takes_over_again(stream):
    start = stream[0].stamp_ns
    gap = (start + int(0.5 * NS), start + int(1.2 * NS))
    sync = SensorSync(_config(fallback_reference="FRONT"))
    frames = _run(sync, stream, lambda m: m.kind is MessageKind.LIDAR
                  and gap[0] <= m.stamp_ns < gap[1])
    kinds = ["L" if f.frame.lidar is not None else "-" for f in frames]
    text = "".join(kinds)
    assert text.startswith("L") and text.rstrip("L") != text  # lidar at the end again
    assert "-" in text
    late = [f for f in frames if f.stamp_ns >= gap[1]]
    assert all(f.frame.lidar is not None for f in late)


def test_no_fallback_without_the_option(stream):
    frames = _run(SensorSync(_config()), stream, lambda m: m.kind is MessageKind.LIDAR)
    assert frames == []


def test_fallback_reference_is_validated():
    with pytest.raises(ConfigError, match="fallback_reference: 'BACK' is not one of"):
        from_dict(SyncConfig, {"reference": "TOP", "cameras": ["FRONT"],
                               "fallback_reference": "BACK"})
    with pytest.raises(ConfigError, match="max_sensor_delay_s: value 0.0 out of range"):
        from_dict(SyncConfig, {"max_sensor_delay_s": 0.0})


# -------------------------------------------------------------------------------------------
# PoseBuffer.pose_near
# -------------------------------------------------------------------------------------------

def test_pose_near():
    poses = PoseBuffer()
    for k in range(3):
        T = make_transform(rotation_z(0.1 * k), [float(k), 0.0, 0.0])
        poses.add(EgoPose(k * 100, T))
    inside = poses.pose_near(150, 10)
    assert inside.stamp_ns == 150 and inside.T_world_vehicle[0, 3] == pytest.approx(1.5)
    after = poses.pose_near(205, 10)
    assert after.stamp_ns == 200 and after.T_world_vehicle[0, 3] == pytest.approx(2.0)
    assert poses.pose_near(-5, 10).stamp_ns == 0
    assert poses.pose_near(215, 10) is None
    assert PoseBuffer().pose_near(0, 10) is None


# -------------------------------------------------------------------------------------------
# LatestFrame
# -------------------------------------------------------------------------------------------

def test_latest_frame_keeps_the_newest_and_counts_the_rest():
    box: LatestFrame[int] = LatestFrame()
    assert box.take(timeout_s=0.01) is None
    assert box.put(1) is None
    assert box.put(2) == 1 and box.put(3) == 2
    assert box.take() == 3 and box.take(timeout_s=0.01) is None
    assert (box.offered, box.taken, box.dropped) == (3, 1, 2)
    assert box.drop_ratio == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        box.put(None)


def test_latest_frame_with_a_slow_consumer_in_another_thread():
    """A producer at 1 kHz, a consumer taking 20 ms per item: the consumer always gets the
    newest item, the rest are dropped, and the slot never holds more than one."""
    box: LatestFrame[int] = LatestFrame()
    seen: list[tuple[int, int]] = []
    produced = []

    def consume():
        while True:
            item = box.take(timeout_s=1.0)
            if item is None:
                return
            seen.append((item, produced[-1]))
            time.sleep(0.02)

    worker = threading.Thread(target=consume)
    worker.start()
    for i in range(300):
        produced.append(i)
        box.put(i)
        time.sleep(0.001)
    time.sleep(0.1)
    box.close()
    worker.join(timeout=5)
    assert not worker.is_alive()
    taken = [item for item, _ in seen]
    assert taken == sorted(taken) and taken[-1] == 299
    assert box.taken == len(taken) and box.dropped == 300 - len(taken)
    assert len(taken) < 100  # the consumer was busy: most items were dropped
    # each item taken was the newest one at the time (the producer may have moved on by one)
    assert all(newest - item <= 2 for item, newest in seen)


def test_close_wakes_a_waiting_consumer():
    box: LatestFrame[int] = LatestFrame()
    result = []
    worker = threading.Thread(target=lambda: result.append(box.take()))
    worker.start()
    time.sleep(0.05)
    box.close()
    worker.join(timeout=5)
    assert result == [None]


# -------------------------------------------------------------------------------------------
# DeadlineMonitor, StampOrder
# -------------------------------------------------------------------------------------------

def test_deadline_monitor_warns_then_errors():
    monitor = DeadlineMonitor(max_ms=100.0, error_after=3)
    assert monitor.level is Health.OK
    assert [monitor.add(ms) for ms in (50, 150, 150, 150, 150, 90, 150)] == [
        Health.OK, Health.WARN, Health.WARN, Health.ERROR, Health.ERROR, Health.OK, Health.WARN]
    assert (monitor.checks, monitor.misses, monitor.consecutive) == (7, 5, 1)
    assert monitor.last_ms == 150
    with pytest.raises(ValueError):
        DeadlineMonitor(max_ms=0.0)
    with pytest.raises(ValueError):
        DeadlineMonitor(max_ms=1.0, error_after=0)


def test_stamp_order():
    order = StampOrder(late_tolerance_s=0.5)
    assert order.check(10 * NS) is StampVerdict.ACCEPT
    assert order.check(11 * NS) is StampVerdict.ACCEPT
    assert order.check(11 * NS) is StampVerdict.LATE  # a duplicate
    assert order.check(11 * NS - 400_000_000) is StampVerdict.LATE  # another input, behind
    assert order.check(5 * NS) is StampVerdict.RESET  # a looped log
    assert order.check(5 * NS + 1) is StampVerdict.ACCEPT
    assert (order.late, order.resets, order.last_ns) == (2, 1, 5 * NS + 1)


# -------------------------------------------------------------------------------------------
# near_tracks
# -------------------------------------------------------------------------------------------

def _tracks(xy, labels, velocities=None) -> Tracks:
    n = len(xy)
    boxes = np.zeros((n, 7), np.float32)
    boxes[:, :2] = xy
    boxes[:, 3:6] = 1.0
    return Tracks(0, boxes, np.asarray(labels, np.int32), np.arange(1, n + 1),
                  np.zeros((n, 2), np.float32) if velocities is None
                  else np.asarray(velocities, np.float32),
                  np.ones(n, np.float32), np.ones(n, np.int32), np.ones(n, np.int32),
                  np.ones(n, np.int8))


def test_near_tracks_gates_by_class_motion_and_ego_motion():
    tracks = _tracks([[10.0, 0.0], [0.0, 5.0]], [1, 2], velocities=[[10.0, 0.0], [0.0, 0.0]])
    gates = {1: 2.0, 2: 1.0}
    boxes = np.zeros((4, 7))
    boxes[:, :2] = [[11.5, 0.0], [0.0, 5.5], [0.0, 7.0], [11.0, 0.0]]
    labels = np.array([1, 2, 2, 2])
    assert near_tracks(boxes, labels, tracks, gates).tolist() == [True, True, False, False]
    # 0.5 s later the vehicle track is 5 m further
    boxes[0, :2] = [15.0, 0.0]
    assert near_tracks(boxes, labels, tracks, gates, dt_s=0.5)[0]
    assert not near_tracks(boxes, labels, tracks, gates, dt_s=0.0)[0]
    # the ego moved 5 m forward: the (static) pedestrian is 5 m closer in the new frame
    T_now_previous = make_transform(np.eye(3), [-5.0, 0.0, 0.0])
    boxes[1, :2] = [-5.0, 5.0]
    assert near_tracks(boxes, labels, tracks, gates, T_now_previous=T_now_previous)[1]
    assert not near_tracks(boxes, labels, None, gates).any()
    assert near_tracks(np.zeros((0, 7)), np.zeros(0), tracks, gates).shape == (0,)


def test_slow_playback_is_not_a_silent_lidar(stream):
    """Played back 20 times slower than real time, sweeps arrive 2 s apart (longer than the
    timeout) but their stamps stay close to the cameras': no frame goes out without lidar."""
    sync = SensorSync(_config(fallback_reference="FRONT", timeout_s=0.3))
    start = stream[0].stamp_ns
    frames = []
    for message in stream:
        arrival = start + (message.stamp_ns - start) * 20
        frames += sync.push(message.payload, arrival)
    assert frames and all(f.frame.lidar is not None for f in frames)
    assert sync.frames_without_reference == 0


def test_a_sweep_after_its_camera_cancels_the_frame_without_lidar(stream):
    """Sensors at 1 Hz (slower than the timeout): each camera image arrives before its sweep,
    when the lidar looks silent; the sweep that follows still makes the frame."""
    sync = SensorSync(_config(fallback_reference="FRONT", timeout_s=0.2,
                              max_sensor_delay_s=2.0, compensate_motion=False))
    frames = []
    for i, message in enumerate(m for m in stream if m.kind is MessageKind.LIDAR):
        sweep = message.payload
        stamp = sweep.stamp_ns
        camera = next(m.payload for m in stream if m.kind is MessageKind.CAMERA
                      and m.stamp_ns == stamp)
        arrival = stream[0].stamp_ns + i * NS
        frames += sync.push(camera, arrival)
        frames += sync.push(sweep, arrival + 1_000_000)
        frames += sync.poll(arrival + 500_000_000)
    assert frames and all(f.frame.lidar is not None for f in frames)
    assert sum("FRONT" in f.frame.cameras for f in frames) >= len(frames) - 1
    assert sync.frames_without_reference == 0


def test_deferred_compensation_equals_compensation_in_the_sync(stream):
    eager = _run(SensorSync(_config()), stream)
    lazy = _run(SensorSync(_config(), defer_compensation=True), stream)
    assert len(eager) == len(lazy)
    compensated = 0
    for a, b in zip(eager, lazy):
        assert not b.motion_compensated
        done = b.compensated()
        assert done.motion_compensated == a.motion_compensated
        assert done.deferred_poses is None and done.compensated() is done
        if a.motion_compensated:
            compensated += 1
            np.testing.assert_allclose(done.frame.lidar.points, a.frame.lidar.points, atol=1e-5)
            for name, scan in a.frame.radars.items():
                np.testing.assert_allclose(done.frame.radars[name].points, scan.points,
                                           atol=1e-5)
        else:
            assert b.deferred_poses is None
    assert compensated >= len(eager) - 2


def test_pose_window_interpolates_like_the_buffer():
    poses = PoseBuffer()
    for k in range(10):
        poses.add(EgoPose(k * 100, make_transform(rotation_z(0.05 * k), [float(k), 0.0, 0.0])))
    window = poses.window(250, 420)
    assert len(window) == 4  # 200, 300, 400, 500
    stamps = np.array([250, 300, 377, 420])
    np.testing.assert_allclose(window.transforms_at(stamps), poses.transforms_at(stamps))

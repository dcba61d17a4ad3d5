"""Sensor sync and ego-motion compensation on the simulator's multi-rate message stream."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from perception.align import (
    PoseBuffer,
    SensorSync,
    SyncConfig,
    compensate_points,
    compensate_scan,
    compensate_sweep,
)
from perception.data.sim import MessageKind, Simulator
from perception.errors import TimestampError
from perception.geometry import invert_transform, make_transform, rotation_z
from perception.types import EgoPose, LidarSweep, Modality

NS = 1_000_000_000
DURATION_S = 2.0
LATENCY_S = {MessageKind.LIDAR: 0.03, MessageKind.CAMERA: 0.02, MessageKind.RADAR: 0.04,
             MessageKind.EGO_POSE: 0.005}


@pytest.fixture(scope="module")
def sim() -> Simulator:
    return Simulator("tiny", seed=3)


@pytest.fixture(scope="module")
def stream(sim):
    """The tiny preset: lidar TOP 10 Hz, camera FRONT 10 Hz, radar RADAR_FRONT 13 Hz, ego
    poses 20 Hz."""
    return list(sim.stream(DURATION_S))


def _config(**changes) -> SyncConfig:
    values = dict(reference="TOP", cameras=("FRONT",), radars=("RADAR_FRONT",),
                  camera_tolerance_s=0.03, radar_tolerance_s=0.04, timeout_s=0.3)
    values.update(changes)
    return SyncConfig(**values)


def _arrivals(stream, latency_s=None, jitter_s=0.005, seed=0, drop=lambda m: False):
    """(arrival_ns, message) in arrival order: stamp + per-kind latency + uniform jitter."""
    latency_s = {**LATENCY_S, **(latency_s or {})}
    rng = np.random.default_rng(seed)
    out = []
    for message in stream:
        if drop(message):
            continue
        delay_s = latency_s[message.kind] + rng.uniform(0.0, jitter_s)
        out.append((message.stamp_ns + int(delay_s * NS), message))
    out.sort(key=lambda item: item[0])
    return out


def _run(sync: SensorSync, arrivals):
    frames = []
    for arrival_ns, message in arrivals:
        frames += sync.push(message.payload, arrival_ns)
    frames += sync.poll(arrivals[-1][0] + 10 * NS)  # time passes: the rest time out
    return frames


def _stamps(stream, kind):
    return np.array([m.stamp_ns for m in stream if m.kind is kind])


def test_jittered_stream_matches_every_sensor(stream):
    sync = SensorSync(_config())
    frames = _run(sync, _arrivals(stream))
    lidar = _stamps(stream, MessageKind.LIDAR)
    radar = _stamps(stream, MessageKind.RADAR)
    assert [f.stamp_ns for f in frames] == lidar.tolist()
    for f in frames[:-1]:  # the last sweep has no later radar scan to close its window
        assert f.missing == () and f.modalities == frozenset(Modality)
        assert f.offsets_ns["FRONT"] == 0
        nearest = radar[np.argmin(np.abs(radar - f.stamp_ns))]
        assert f.offsets_ns["RADAR_FRONT"] == nearest - f.stamp_ns
        assert f.frame.radars["RADAR_FRONT"].stamp_ns == nearest
        assert not f.timed_out
    # poses (20 Hz) cover +-50 ms around every sweep but the first and the last
    assert all(f.motion_compensated for f in frames[1:-1])
    assert not frames[0].motion_compensated
    assert frames[5].frame.ego_pose is not None
    assert sync.stats["TOP"].used == len(lidar) and sync.stats["FRONT"].missing == 0


def test_camera_that_stops_is_dropped_after_the_timeout(stream):
    stop_ns = stream[0].stamp_ns + int(1.0 * NS)
    sync = SensorSync(_config())
    arrivals = _arrivals(stream, drop=lambda m: m.kind is MessageKind.CAMERA
                         and m.stamp_ns >= stop_ns)
    frames = _run(sync, arrivals)
    assert len(frames) == len(_stamps(stream, MessageKind.LIDAR))  # no frame is lost
    after = [f for f in frames if f.stamp_ns >= stop_ns]
    before = [f for f in frames if f.stamp_ns < stop_ns]
    assert after and all(f.missing[0] == "FRONT" and Modality.CAMERA not in f.modalities
                         for f in after)
    assert all(f.timed_out for f in after[:-1])
    assert all(f.emitted_arrival_ns - f.reference_arrival_ns >= sync.timeout_ns
               for f in after[:-1])
    assert all("FRONT" in f.frame.cameras for f in before)
    assert sync.stats["FRONT"].missing == len(after)


def test_late_radar_is_dropped_and_counted(stream):
    late = {MessageKind.RADAR: 0.5}
    sync = SensorSync(_config(timeout_s=0.2))
    frames = _run(sync, _arrivals(stream, latency_s=late))
    assert all("RADAR_FRONT" in f.missing and Modality.RADAR not in f.modalities
               for f in frames)
    assert all("FRONT" in f.frame.cameras for f in frames)
    stats = sync.stats["RADAR_FRONT"]
    assert stats.used == 0 and stats.dropped_late >= stats.received - 1  # last one still buffered

    # a timeout longer than the radar latency waits for it
    patient = SensorSync(_config(timeout_s=0.8))
    frames = _run(patient, _arrivals(stream, latency_s=late))
    assert all("RADAR_FRONT" in f.frame.radars for f in frames[:-1])


def test_out_of_order_stamps(stream):
    arrivals = _arrivals(stream, jitter_s=0.0)
    rng = np.random.default_rng(7)
    for i in rng.choice(len(arrivals) - 1, size=len(arrivals) // 3, replace=False):
        arrivals[i], arrivals[i + 1] = arrivals[i + 1], arrivals[i]  # neighbours swap
    # one sweep arrives 0.5 s late, after newer sweeps went out
    lidar_positions = [i for i, (_, m) in enumerate(arrivals) if m.kind is MessageKind.LIDAR]
    late_index = lidar_positions[5]
    late = arrivals.pop(late_index)
    arrivals.insert(late_index + 40, late)
    # the arrival clock is the message index (ns): the 1 s timeout never fires during the
    # stream, so frames go out by completeness alone
    arrivals = [(i, message) for i, (_, message) in enumerate(arrivals)]
    sync = SensorSync(_config(timeout_s=1.0))
    frames = _run(sync, arrivals)
    stamps = [f.stamp_ns for f in frames]
    assert stamps == sorted(set(stamps))
    assert late[1].stamp_ns not in stamps
    assert sync.stats["TOP"].dropped_late == 1
    assert len(frames) == len(lidar_positions) - 1


def test_buffers_are_bounded(sim, stream):
    sync = SensorSync(_config(buffer_size=4, timeout_s=1.0))
    cameras = [m for m in stream if m.kind is MessageKind.CAMERA]
    for message in cameras:
        sync.push(message.payload, 0)
    assert len(sync._buffers["FRONT"]) == 4
    assert sync.stats["FRONT"].dropped_overflow == len(cameras) - 4
    sweeps = [m for m in stream if m.kind is MessageKind.LIDAR]
    lonely = SensorSync(_config(buffer_size=4, timeout_s=1.0))
    for message in sweeps:  # cameras and radars never come, time stands still
        assert lonely.push(message.payload, 0) == []
    assert len(lonely._pending) == 4
    assert lonely.stats["TOP"].dropped_unmatched == len(sweeps) - 4
    assert len(lonely.flush(0)) == 4


def test_config_is_validated_by_the_config_loader():
    from perception.config import from_dict
    from perception.errors import ConfigError

    with pytest.raises(ConfigError, match="timeout_s.*expected > 0"):
        from_dict(SyncConfig, {"timeout_s": 0}, source="sync")
    with pytest.raises(ConfigError, match="unique"):
        from_dict(SyncConfig, {"cameras": ["TOP"]}, source="sync")


# ------------------------------------------------------------------------------------------
# Ego-motion compensation
# ------------------------------------------------------------------------------------------

def _pose_buffer(stream) -> PoseBuffer:
    poses = PoseBuffer()
    for message in stream:
        if message.kind is MessageKind.EGO_POSE:
            poses.add(message.payload)
    return poses


def test_pose_interpolation():
    poses = PoseBuffer(max_poses=3)
    for k in range(4):
        poses.add(EgoPose(k * NS, make_transform(rotation_z(0.4 * k), [2.0 * k, 0.0, 0.0])))
    assert len(poses) == 3  # bounded: stamp 0 fell out
    mid = poses.transforms_at(np.array([int(1.5 * NS)]))[0]
    np.testing.assert_allclose(mid, make_transform(rotation_z(0.6), [3.0, 0.0, 0.0]),
                               atol=1e-12)
    np.testing.assert_allclose(poses.pose_at(2 * NS).T_world_vehicle,
                               make_transform(rotation_z(0.8), [4.0, 0.0, 0.0]), atol=1e-12)
    with pytest.raises(TimestampError, match="ego poses cover"):
        poses.transforms_at(np.array([0]))


def test_lidar_compensation_matches_exact_poses(sim, stream):
    poses = _pose_buffer(stream)
    message = [m for m in stream if m.kind is MessageKind.LIDAR][5]
    sweep: LidarSweep = message.payload
    t_ref = sweep.stamp_ns
    offsets_s = sweep.column("time_offset_s").astype(np.float64)
    compensated = compensate_sweep(sweep, t_ref, poses)
    assert compensated.stamp_ns == t_ref and compensated.columns == sweep.columns

    # exact: each point through the simulator's own pose at its firing time
    capture = t_ref + np.round(offsets_s * NS).astype(np.int64)
    T_ref_world = invert_transform(sim.ego_pose(t_ref).T_world_vehicle)
    expected = np.empty((len(sweep), 3))
    for stamp in np.unique(capture):  # one loop step per firing time, not per point
        rows = capture == stamp
        T = T_ref_world @ sim.ego_pose(int(stamp)).T_world_vehicle
        expected[rows] = sweep.xyz[rows].astype(np.float64) @ T[:3, :3].T + T[:3, 3]
    error = np.linalg.norm(compensated.xyz - expected, axis=1)
    assert error.max() < 0.01
    raw_error = np.linalg.norm(sweep.xyz - expected, axis=1)
    assert raw_error.max() > 0.1  # ~6 m/s x 50 ms: compensation matters
    np.testing.assert_array_equal(compensated.points[:, 3:], sweep.points[:, 3:])


def test_radar_compensation_to_the_lidar_stamp(sim, stream):
    poses = _pose_buffer(stream)
    scan = [m for m in stream if m.kind is MessageKind.RADAR][6].payload
    t_ref = int(scan.stamp_ns + 0.03 * NS)
    moved = compensate_scan(scan, t_ref, poses)
    T = invert_transform(sim.ego_pose(t_ref).T_world_vehicle) @ \
        sim.ego_pose(scan.stamp_ns).T_world_vehicle
    expected = scan.xyz.astype(np.float64) @ T[:3, :3].T + T[:3, 3]
    assert np.abs(moved.xyz - expected).max() < 0.01
    assert moved.stamp_ns == scan.stamp_ns
    np.testing.assert_array_equal(moved.points[:, 3:], scan.points[:, 3:])
    with pytest.raises(TimestampError):
        compensate_points(scan.points, scan.stamp_ns, t_ref + 100 * NS, poses)


def test_a_looped_stream_restarts_the_sync(stream):
    """A log played twice: the second pass starts over instead of being dropped as late."""
    sync = SensorSync(_config())
    first = _run(sync, _arrivals(stream))
    offset = stream[-1].stamp_ns + NS  # the second pass arrives later on the arrival clock
    again = []
    for arrival_ns, message in _arrivals(stream):
        again += sync.push(message.payload, arrival_ns + offset)
    again += sync.poll(offset + stream[-1].stamp_ns + 10 * NS)
    assert sync.restarts == 1
    assert [f.stamp_ns for f in again] == [f.stamp_ns for f in first]
    # Messages that arrived before the sweep that revealed the loop were late for the old
    # pass and are gone: only the first frame of the new pass may miss them.
    assert all(f.modalities == frozenset(Modality) for f in again[1:-1])
    # A small step back is a late sweep, not a restart.
    sweep = next(m.payload for m in stream if m.kind is MessageKind.LIDAR)
    sync.push(dataclasses.replace(sweep, stamp_ns=again[-1].stamp_ns - NS // 10),
              offset + 20 * NS)
    assert sync.restarts == 1 and sync.stats["TOP"].dropped_late >= 1

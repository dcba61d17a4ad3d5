"""Simulator: frames and ground truth, determinism, the message stream, presets."""

from __future__ import annotations

import numpy as np
import pytest

from perception.data.sim import (
    PRESET_FILES,
    MessageKind,
    Simulator,
    load_sim_config,
    preset_path,
)
from perception.geometry import points_in_boxes
from perception.types import (
    CameraImage,
    Difficulty,
    EgoPose,
    LidarSweep,
    ObjectClass,
    RadarScan,
    SensorFrame,
)


def test_frame_contents_and_ground_truth(tiny_sim):
    frame = next(iter(tiny_sim.frames(1)))
    assert isinstance(frame, SensorFrame) and frame.source == "sim"
    assert frame.lidar.columns == ("x", "y", "z", "intensity", "time_offset_s")
    assert set(frame.cameras) == {"FRONT"} and set(frame.radars) == {"RADAR_FRONT"}
    assert frame.ego_pose.stamp_ns == frame.stamp_ns == frame.lidar.stamp_ns
    boxes = frame.boxes
    assert len(boxes) > 0
    assert set(boxes.labels.tolist()) <= {int(c) for c in (ObjectClass.VEHICLE,
                                                           ObjectClass.PEDESTRIAN,
                                                           ObjectClass.CYCLIST)}
    assert len(np.unique(boxes.ids)) == len(boxes)
    assert boxes.velocities.shape == (len(boxes), 2)
    assert ((boxes.boxes[:, 6] >= -np.pi) & (boxes.boxes[:, 6] < np.pi)).all()
    np.testing.assert_allclose(boxes.boxes[:, 2], boxes.boxes[:, 5] / 2, atol=1e-5)  # on ground


def test_num_points_equals_independent_points_in_box_count():
    sim = Simulator("tiny", seed=5)
    for frame in sim.frames(3):
        boxes = frame.boxes
        inside = points_in_boxes(frame.lidar.xyz, boxes.boxes)
        np.testing.assert_array_equal(boxes.num_points, inside.sum(axis=0))
        assert (boxes.num_points >= sim.config.scenario.actors.min_label_points).all()
        level_2 = boxes.num_points <= 5
        np.testing.assert_array_equal(boxes.difficulty == Difficulty.LEVEL_2, level_2)
        np.testing.assert_array_equal(boxes.levels(), np.where(level_2, 2, 1))


def test_ids_are_stable_and_moving_actors_move():
    sim = Simulator("tiny", seed=0)
    a, b = sim.ground_truth(sim.lidar_stamp_ns(0), None), sim.ground_truth(
        sim.lidar_stamp_ns(5), None)
    common = np.intersect1d(a.ids, b.ids)
    assert len(common) > 0
    ego_shift = (sim.ego_pose(sim.lidar_stamp_ns(5)).T_world_vehicle[:2, 3]
                 - sim.ego_pose(sim.lidar_stamp_ns(0)).T_world_vehicle[:2, 3])
    assert np.linalg.norm(ego_shift) == pytest.approx(0.5 * sim.config.scenario.ego.speed_mps,
                                                      rel=1e-3)
    for actor_id in common:
        ia, ib = np.flatnonzero(a.ids == actor_id)[0], np.flatnonzero(b.ids == actor_id)[0]
        # Over-ground motion in 0.5 s (boxes are in the moving vehicle frame: add ego shift).
        moved = np.linalg.norm(b.boxes[ib, :2] - a.boxes[ia, :2] + ego_shift)
        speed = np.linalg.norm(a.velocities[ia])
        assert moved == pytest.approx(0.5 * speed, abs=0.3)


def _frame_arrays(frame: SensorFrame) -> list[np.ndarray]:
    arrays = [frame.lidar.points, frame.boxes.boxes, frame.boxes.ids]
    arrays += [frame.cameras[n].pixels for n in sorted(frame.cameras)]
    arrays += [frame.radars[n].points for n in sorted(frame.radars)]
    return arrays


def test_same_seed_same_output_different_seed_different_scene():
    first = _frame_arrays(Simulator("tiny", seed=11).frame(2))
    again = _frame_arrays(Simulator("tiny", seed=11).frame(2))
    for x, y in zip(first, again):
        np.testing.assert_array_equal(x, y)
    other_sim = Simulator("tiny", seed=12)
    other = _frame_arrays(other_sim.frame(2))
    assert first[0].shape != other[0].shape or not np.array_equal(first[0], other[0])
    ref_sim = Simulator("tiny", seed=11)
    positions = [a.path.at(a.s0_m)[0][0] for a in ref_sim.scenario.actors]
    other_positions = [a.path.at(a.s0_m)[0][0] for a in other_sim.scenario.actors]
    assert not np.allclose(np.array(positions), np.array(other_positions))


def test_stream_is_time_ordered_and_matches_frames(tiny_sim):
    messages = list(tiny_sim.stream(0.3))
    stamps = [m.stamp_ns for m in messages]
    assert stamps == sorted(stamps)
    start = tiny_sim.start_stamp_ns
    assert start <= stamps[0] and stamps[-1] < start + 300_000_000
    kinds = [m.kind for m in messages]
    assert kinds.count(MessageKind.LIDAR) == 3
    assert kinds.count(MessageKind.CAMERA) == 3
    assert kinds.count(MessageKind.RADAR) == 4        # 13 Hz: 0, 77, 154, 231 ms
    assert kinds.count(MessageKind.EGO_POSE) == 6     # 20 Hz
    payload_type = {MessageKind.LIDAR: LidarSweep, MessageKind.CAMERA: CameraImage,
                    MessageKind.RADAR: RadarScan, MessageKind.EGO_POSE: EgoPose}
    for m in messages:
        assert isinstance(m.payload, payload_type[m.kind])
        assert m.payload.stamp_ns == m.stamp_ns
    lidar_1 = [m for m in messages if m.kind is MessageKind.LIDAR][1].payload
    np.testing.assert_array_equal(lidar_1.points, tiny_sim.frame(1).lidar.points)


@pytest.mark.parametrize("name,beams,steps,cameras,radars", [
    ("waymo_like", 64, 2650, 5, 5), ("nuscenes_like", 32, 1084, 6, 5), ("vlp16", 16, 1800, 1, 1),
])
def test_presets_describe_their_rigs(name, beams, steps, cameras, radars):
    cfg = load_sim_config(preset_path(name))
    assert cfg.rig.lidar.num_beams == beams and cfg.rig.lidar.azimuth_steps == steps
    assert len(cfg.rig.cameras) == cameras and len(cfg.rig.radars) == radars
    assert set(PRESET_FILES) >= {"waymo_like", "nuscenes_like", "vlp16", "tiny"}


def test_waymo_like_frame_is_complete():
    sim = Simulator("waymo_like", seed=0)
    assert sim.config.rig.lidar.max_range_m == 75.0
    frame = sim.frame(0)
    assert 100_000 < len(frame.lidar) <= 64 * 2650
    assert np.linalg.norm(frame.lidar.xyz, axis=1).max() < 75.0 + 2.2
    assert set(frame.cameras) == {"FRONT", "FRONT_LEFT", "FRONT_RIGHT", "SIDE_LEFT",
                                  "SIDE_RIGHT"}
    for image in frame.cameras.values():
        assert image.pixels.shape == (320, 480, 3)
        assert abs(image.stamp_ns - frame.stamp_ns) <= 25_000_000
    assert len(frame.radars) == 5
    assert all(scan.calibration is not None for scan in frame.radars.values())
    assert len(frame.boxes) >= 5

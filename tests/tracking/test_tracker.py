"""Known behaviour of the tracker on small scripted scenes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from perception.geometry import transform_velocities
from perception.tracking import (
    AssociationConfig,
    ClassValues,
    ManagementConfig,
    MotionConfig,
    Tracker,
    TrackerConfig,
)
from perception.types import ObjectClass, TrackState

COSTS = ("center", "iou", "mahalanobis")


def _config(model: str = "cv", cost: str = "center", solver: str = "hungarian",
            **management) -> TrackerConfig:
    return TrackerConfig(motion=MotionConfig(model=model),
                         association=AssociationConfig(cost=cost, solver=solver),
                         management=ManagementConfig(**management))


@pytest.mark.parametrize("model", ["cv", "ctrv"])
@pytest.mark.parametrize("cost", COSTS)
def test_straight_object_keeps_its_id_through_three_missed_frames(scene, model, cost):
    tracker = Tracker(_config(model, cost, max_coast_frames=3))
    rng = np.random.default_rng(0)
    ids_seen = set()
    for k in range(25):
        pose = scene.ego_pose(k, speed_mps=5.0)
        x = 10.0 + 8.0 * k * 0.1
        box = np.array(scene.world_box(x, 3.0, 0.0))
        box[:2] += rng.normal(0.0, 0.05, 2)
        boxes = [] if k in (12, 13, 14) else [box]
        tracks = tracker.update(scene.detections(k, boxes, pose), scene.stamp(k), pose)
        if k >= 3:
            assert len(tracks) == 1, f"frame {k}: {len(tracks)} tracks"
            ids_seen.add(int(tracks.ids[0]))
        if k in (12, 13, 14):
            assert tracks.states[0] == TrackState.COASTING
    assert len(ids_seen) == 1
    assert tracks.states[0] == TrackState.CONFIRMED


def test_fourth_missed_frame_deletes_the_track(scene):
    tracker = Tracker(_config(max_coast_frames=3))
    for k in range(10):
        boxes = [scene.world_box(10.0, 0.0, 0.0)] if k < 5 else []
        tracks = tracker.update(scene.detections(k, boxes, scene.ego_pose(k)), scene.stamp(k))
        if k == 7:
            assert len(tracks) == 1       # third miss: still coasting
        if k == 8:
            assert len(tracks) == 0       # fourth miss: deleted
    assert tracker.num_tracks == 0


@pytest.mark.parametrize("model", ["cv", "ctrv"])
@pytest.mark.parametrize("solver", ["hungarian", "greedy"])
def test_crossing_objects_keep_their_ids(scene, model, solver):
    """Two cars cross paths at right angles, 0.4 s apart (2 m at the closest, inside the gate)."""
    tracker = Tracker(_config(model, "center", solver))
    rng = np.random.default_rng(1)
    first_ids = None
    for k in range(40):
        t = k * 0.1
        pose = scene.ego_pose(k, speed_mps=3.0)
        a = scene.world_box(20.0 - 10.0 + 5.0 * t, 0.0, 0.0)           # along +x
        b = scene.world_box(20.0, -12.0 + 5.0 * t, np.pi / 2)            # along +y
        boxes = np.array([a, b])
        boxes[:, :2] += rng.normal(0.0, 0.1, (2, 2))
        tracks = tracker.update(scene.detections(k, boxes, pose), scene.stamp(k), pose)
        if k < 3:
            continue
        assert len(tracks) == 2
        vel_world = transform_velocities(pose.T_world_vehicle, tracks.velocities)
        by_direction = {int(i): ("a" if abs(v[0]) > abs(v[1]) else "b")
                        for i, v in zip(tracks.ids, vel_world)}
        if first_ids is None:
            first_ids = by_direction
        assert by_direction == first_ids, f"frame {k}"


@pytest.mark.parametrize("confirm_hits", [2, 3])
def test_single_false_positive_is_never_confirmed(scene, confirm_hits):
    tracker = Tracker(_config(confirm_hits=confirm_hits, output_tentative=True))
    real = scene.world_box(10.0, 0.0, 0.0)
    ghost = scene.world_box(-15.0, 8.0, 1.0)
    ghost_ids = set()
    for k in range(10):
        boxes = [real, ghost] if k == 4 else [real]
        tracks = tracker.update(scene.detections(k, boxes, scene.ego_pose(k)), scene.stamp(k))
        far = np.linalg.norm(tracks.boxes[:, :2] - np.array([-15.0, 8.0]), axis=1) < 1.0
        ghost_ids.update(tracks.ids[far].tolist())
        assert not (far & (tracks.states != TrackState.TENTATIVE)).any()
    assert len(ghost_ids) == 1             # it was seen (as tentative) and then dropped
    assert tracker.num_tracks == 1


def test_tentative_tracks_are_hidden_by_default(scene):
    tracker = Tracker(_config(confirm_hits=3))
    counts = []
    for k in range(4):
        tracks = tracker.update(scene.detections(k, [scene.world_box(5, 5, 0)], scene.ego_pose(k)),
                                scene.stamp(k))
        counts.append(len(tracks))
    assert counts == [0, 0, 1, 1]
    assert tracks.hits.tolist() == [4] and tracks.ages.tolist() == [3]


@pytest.mark.parametrize("model", ["cv", "ctrv"])
def test_velocity_converges_to_the_true_velocity(scene, model):
    true_v = np.array([6.0, -2.0])
    heading = float(np.arctan2(true_v[1], true_v[0]))
    tracker = Tracker(_config(model))
    rng = np.random.default_rng(2)
    for k in range(40):
        t = k * 0.1
        pose = scene.ego_pose(k, speed_mps=4.0, yaw_rate_radps=0.1)
        box = np.array(scene.world_box(5.0 + true_v[0] * t, 4.0 + true_v[1] * t, heading))
        box[:2] += rng.normal(0.0, 0.2, 2)
        box[6] += rng.normal(0.0, 0.05)
        tracks = tracker.update(scene.detections(k, [box], pose), scene.stamp(k), pose)
    vel_world = transform_velocities(pose.T_world_vehicle, tracks.velocities)[0]
    assert np.linalg.norm(vel_world - true_v) < 0.5
    assert abs(tracks.boxes[0, 6] - (heading - np.arctan2(pose.T_world_vehicle[1, 0],
                                                          pose.T_world_vehicle[0, 0]))) < 0.1


def _follow_circle(scene, model: str) -> tuple[set, float, Tracker]:
    """An object on a circle (radius 20 m, 8 m/s). Returns (ids, velocity error, tracker)."""
    tracker = Tracker(_config(model))
    radius, speed = 20.0, 8.0
    omega = speed / radius
    ids = set()
    for k in range(50):
        angle = omega * k * 0.1
        box = scene.world_box(radius * np.sin(angle), radius * (1 - np.cos(angle)), angle)
        tracks = tracker.update(scene.detections(k, [box], scene.ego_pose(k)), scene.stamp(k))
        ids.update(tracks.ids.tolist())
    expected_v = speed * np.array([np.cos(angle), np.sin(angle)])
    return ids, float(np.linalg.norm(tracks.velocities[0] - expected_v)), tracker


def test_ctrv_follows_a_turn_better_than_cv(scene):
    ids_cv, err_cv, _ = _follow_circle(scene, "cv")
    ids_ctrv, err_ctrv, tracker = _follow_circle(scene, "ctrv")
    assert len(ids_cv) == 1 and len(ids_ctrv) == 1
    assert err_ctrv < 0.3 and err_cv < 2.0
    assert err_ctrv < err_cv
    # The last state entry of CTRV is the yaw rate: 8 m/s on a 20 m radius is 0.4 rad/s.
    assert abs(tracker._tracks.x[0, 8] - 0.4) < 0.05


def test_static_objects_have_near_zero_velocity_while_ego_moves(scene):
    tracker = Tracker(_config())
    rng = np.random.default_rng(3)
    static = np.array([scene.world_box(30.0, 5.0, 0.3), scene.world_box(45.0, -6.0, 2.0),
                       scene.world_box(25.0, 2.0, 0.0, scene.PED)])
    labels = np.array([ObjectClass.VEHICLE, ObjectClass.VEHICLE, ObjectClass.PEDESTRIAN])
    for k in range(30):
        pose = scene.ego_pose(k, speed_mps=10.0, yaw_rate_radps=0.2)
        boxes = static.copy()
        boxes[:, :2] += rng.normal(0.0, 0.1, (3, 2))
        tracks = tracker.update(scene.detections(k, boxes, pose, labels=labels), scene.stamp(k),
                                pose)
    assert len(tracks) == 3
    speeds = np.linalg.norm(tracks.velocities, axis=1)
    assert speeds.max() < 0.3, speeds
    # Relative to the vehicle the objects move at about 10 m/s: the output is over ground.
    world_centres = (pose.T_world_vehicle[:3, :3] @ tracks.boxes[:, :3].T).T \
        + pose.T_world_vehicle[:3, 3]
    assert np.abs(np.sort(world_centres[:, 0]) - np.sort(static[:, 0])).max() < 0.2


@pytest.mark.parametrize("model", ["cv", "ctrv"])
def test_heading_flip_fix_turns_boxes_to_the_motion(scene, model):
    """Detections say the car faces backwards half of the time; the track follows the motion."""
    tracker = Tracker(_config(model))
    for k in range(20):
        heading = 0.0 if k % 2 else np.pi - 1e-3
        box = scene.world_box(5.0 + 1.0 * k, 0.0, heading)
        tracks = tracker.update(scene.detections(k, [box], scene.ego_pose(k)), scene.stamp(k))
    assert tracks.velocities[0, 0] > 5.0
    assert abs(tracks.boxes[0, 6]) < 0.1


def test_classes_do_not_associate_across(scene):
    tracker = Tracker(_config(confirm_hits=1))
    car = scene.world_box(10.0, 0.0, 0.0)
    ped = scene.world_box(10.2, 0.0, 0.0, scene.PED)
    t0 = tracker.update(scene.detections(0, [car], scene.ego_pose(0)), scene.stamp(0))
    t1 = tracker.update(scene.detections(1, [ped], scene.ego_pose(1),
                                         labels=[ObjectClass.PEDESTRIAN]), scene.stamp(1))
    assert t0.ids.tolist() == [1]
    assert sorted(t1.ids.tolist()) == [1, 2]
    assert dict(zip(t1.ids.tolist(), t1.labels.tolist()))[2] == ObjectClass.PEDESTRIAN


def test_output_is_in_the_current_vehicle_frame_with_covariances(scene):
    tracker = Tracker(_config(confirm_hits=1))
    world = np.array([scene.world_box(12.0, -3.0, 0.7), scene.world_box(-8.0, 6.0, -2.0)])
    for k in range(5):
        pose = scene.ego_pose(k, speed_mps=7.0, yaw_rate_radps=0.3)
        dets = scene.detections(k, world, pose)
        tracks = tracker.update(dets, scene.stamp(k), pose)
    order = np.argsort(tracks.ids)
    np.testing.assert_allclose(tracks.boxes[order], dets.boxes, atol=1e-3)
    cov = tracks.covariances
    assert cov.shape == (2, 9, 9) and cov.dtype == np.float32
    np.testing.assert_allclose(cov, cov.transpose(0, 2, 1), atol=1e-6)
    assert (np.linalg.eigvalsh(cov.astype(np.float64)) > -1e-6).all()
    # Position variance shrinks below the single-detection variance after a few hits.
    assert (cov[:, 0, 0] < 0.3 ** 2).all()


def test_ids_never_repeat_even_after_reset(scene):
    tracker = Tracker(_config(confirm_hits=1, max_coast_frames=0))
    seen = []
    for k in range(12):
        if k == 6:
            tracker.reset()
        box = scene.world_box(10.0 * (k % 3), 0.0, 0.0)      # jumps: a new track each frame
        tracks = tracker.update(scene.detections(k, [box], scene.ego_pose(k)), scene.stamp(k))
        seen.extend(tracks.ids.tolist())
    assert len(seen) == len(set(seen)) == 12
    assert tracker.stats.births == 12


def test_detection_velocity_option_uses_centerpoint_back_projection(scene):
    """A track born without velocity meets a fast detection (30 m/s, 3 m away, gate 1 m):
    only the back-projection by the detector's velocity associates them."""
    for use_velocity, expected_ids in ((True, 1), (False, 2)):
        config = TrackerConfig(
            association=AssociationConfig(
                use_detection_velocity=use_velocity,
                center_gate_m=ClassValues(vehicle=1.0, pedestrian=1.0, cyclist=1.0)),
            management=ManagementConfig(confirm_hits=1))
        tracker = Tracker(config)
        first = scene.detections(0, [scene.world_box(0.0, 0.0, 0.0)], scene.ego_pose(0))
        second = scene.detections(1, [scene.world_box(3.0, 0.0, 0.0)], scene.ego_pose(1),
                                  velocities_world=[[30.0, 0.0]])
        ids = set(tracker.update(first, scene.stamp(0)).ids.tolist())
        ids.update(tracker.update(second, scene.stamp(1)).ids.tolist())
        assert len(ids) == expected_ids, use_velocity


def test_velocity_seeded_from_detections_in_world_frame(scene):
    tracker = Tracker(_config(confirm_hits=1))
    pose = scene.ego_pose(0, speed_mps=5.0, yaw_rate_radps=0.5)
    pose = type(pose)(pose.stamp_ns, pose.T_world_vehicle @ np.diag([-1.0, -1.0, 1.0, 1.0]))
    dets = scene.detections(0, [scene.world_box(10.0, 0.0, 0.0)], pose,
                            velocities_world=[[4.0, 1.0]])
    tracks = tracker.update(dets, scene.stamp(0), pose)
    # Same vehicle frame in and out: the seeded velocity comes back unchanged.
    np.testing.assert_allclose(tracks.velocities, dets.velocities, atol=1e-5)
    world = transform_velocities(pose.T_world_vehicle, tracks.velocities)
    np.testing.assert_allclose(world[0], [4.0, 1.0], atol=1e-5)


@pytest.mark.parametrize("model", ["cv", "ctrv"])
def test_output_does_not_depend_on_the_world_frame(scene, model):
    """The same vehicle-frame detections under two world frames (rotated by 0.7 rad and
    shifted by 1 km) give the same tracks, covariances included."""
    from perception.geometry import make_transform, rotation_z
    from perception.types import EgoPose

    outputs = []
    for T_world_ref in (np.eye(4), make_transform(rotation_z(0.7), [1000.0, -500.0, 3.0])):
        tracker = Tracker(_config(model, confirm_hits=1))
        for k in range(15):
            pose = scene.ego_pose(k, speed_mps=6.0, yaw_rate_radps=0.2)
            dets = scene.detections(k, [scene.world_box(5.0 + 0.8 * k, 2.0 + 0.3 * k, 0.35)],
                                    pose)
            moved = EgoPose(pose.stamp_ns, T_world_ref @ pose.T_world_vehicle)
            tracks = tracker.update(dets, scene.stamp(k), moved)
        outputs.append(tracks)
    a, b = outputs
    np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
    np.testing.assert_allclose(a.velocities, b.velocities, atol=1e-3)
    np.testing.assert_allclose(a.covariances, b.covariances, atol=1e-5, rtol=1e-3)


def test_covariances_are_rotated_into_the_current_vehicle_frame(scene):
    """CTRV is most uncertain along the heading: the major axis of the output x/y covariance
    follows the output box heading while the ego turns by 1.4 rad."""
    tracker = Tracker(_config("ctrv", confirm_hits=1))
    for k in range(15):
        pose = scene.ego_pose(k, speed_mps=6.0, yaw_rate_radps=1.0)
        dets = scene.detections(k, [scene.world_box(5.0 + 0.8 * k, 2.0 + 0.3 * k, 0.35)], pose)
        tracks = tracker.update(dets, scene.stamp(k), pose)
    eigval, eigvec = np.linalg.eigh(tracks.covariances[0, :2, :2].astype(np.float64))
    assert eigval[1] > eigval[0] * 1.01
    major_axis = np.arctan2(eigvec[1, 1], eigvec[0, 1])
    diff = (major_axis - tracks.boxes[0, 6] + np.pi / 2) % np.pi - np.pi / 2
    assert abs(diff) < 0.05
    assert abs(tracks.boxes[0, 6] - (0.35 - 1.4)) < 0.05


def test_waymo_preset_fuses_detector_velocities(scene):
    """Boxes with 0.3 m of noise and velocities with 0.5 m/s: fused velocities give a good
    estimate within 5 frames, better than the boxes alone."""
    from pathlib import Path

    from perception.tracking import load_tracker_config

    preset = Path(__file__).resolve().parents[2] / "configs" / "tracking" / "waymo.yaml"
    config = load_tracker_config(preset)
    assert config.measurement.fuse_velocity
    true_v = np.array([-3.0, 7.0])
    heading = float(np.arctan2(true_v[1], true_v[0]))
    errors = {}
    for fuse in (True, False):
        rng = np.random.default_rng(6)
        measurement = dataclasses.replace(config.measurement, fuse_velocity=fuse)
        tracker = Tracker(dataclasses.replace(config, measurement=measurement))
        for k in range(5):
            pose = scene.ego_pose(k, speed_mps=5.0, yaw_rate_radps=0.1)
            box = np.array(scene.world_box(10.0 + true_v[0] * k * 0.1,
                                           1.0 + true_v[1] * k * 0.1, heading))
            box[:2] += rng.normal(0.0, 0.3, 2)
            vel = None if k == 0 else [true_v + rng.normal(0.0, 0.5, 2)]
            dets = scene.detections(k, [box], pose, velocities_world=vel)
            tracks = tracker.update(dets, scene.stamp(k), pose)
        world_v = transform_velocities(pose.T_world_vehicle, tracks.velocities)[0]
        errors[fuse] = float(np.linalg.norm(world_v - true_v))
    assert errors[True] < 0.5
    assert errors[True] < errors[False]

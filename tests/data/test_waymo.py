"""Waymo reader, range-image decoding, writer round trip, bad input and Objects export."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import cKDTree
from waymo_open_dataset import dataset_pb2

from perception.data import waymo
from perception.data.tfrecord import write_records
from perception.errors import CalibrationError, DataError
from perception.types import CameraConvention, Detections, LidarSweep, Modality, ObjectClass

PVPS = "waymo-open-dataset/src/waymo_open_dataset/utils/testdata/pvps_data_one_frame.tfrecord"


def _write(tmp_path: Path, frame, name: str = "seg.tfrecord") -> Path:
    path = tmp_path / name
    write_records(path, [frame.SerializeToString()])
    return path


# --------------------------------------------------------------------------------------------
# Real frames
# --------------------------------------------------------------------------------------------

def test_real_frame_with_cameras_and_labels(shared_data):
    path = shared_data / PVPS
    if not path.exists():
        pytest.skip(f"{path} not present")
    reader = waymo.WaymoReader(path)
    assert len(reader) == 1
    frame = reader[0]
    assert frame.source == "waymo"
    assert frame.stamp_ns == 1553735853462203 * 1000
    assert frame.sequence_id == "1024360143612057520_3580_000_3600_000"
    assert frame.lidar is None                     # lasers present, range images empty
    assert set(frame.cameras) == {"FRONT", "FRONT_LEFT", "FRONT_RIGHT", "SIDE_LEFT",
                                  "SIDE_RIGHT"}
    front = frame.cameras["FRONT"]
    assert not front.is_decoded                    # lazy: nothing decoded yet
    calib = front.calibration
    assert calib.camera_convention is CameraConvention.WAYMO
    assert (calib.width, calib.height) == (1920, 1280)
    proto = reader.proto(0)
    intr = proto.context.camera_calibrations[0].intrinsic
    assert calib.K[0, 0] == pytest.approx(intr[0]) and calib.K[1, 2] == pytest.approx(intr[3])
    np.testing.assert_allclose(calib.distortion, intr[4:9])
    assert front.image.shape == (1280, 1920, 3) and front.is_decoded
    assert frame.cameras["SIDE_LEFT"].image.shape == (886, 1920, 3)
    assert front.rolling_shutter.direction == "LEFT_TO_RIGHT"
    assert front.rolling_shutter.trigger_stamp_ns < front.rolling_shutter.readout_done_stamp_ns
    boxes = frame.boxes
    assert len(boxes) == 75
    counts = np.bincount(boxes.labels, minlength=5)
    assert counts[ObjectClass.VEHICLE] == 37 and counts[ObjectClass.PEDESTRIAN] == 12
    assert counts[ObjectClass.SIGN] == 25 and counts[ObjectClass.CYCLIST] == 1
    label = proto.laser_labels[0]
    assert boxes.ids[0] == label.id
    assert boxes.velocities[0, 0] == pytest.approx(label.metadata.speed_x, abs=1e-6)
    assert boxes.accelerations is not None
    assert boxes.num_points[0] == label.num_lidar_points_in_box
    np.testing.assert_allclose(frame.ego_pose.T_world_vehicle.ravel(), proto.pose.transform)


def test_stripped_real_frame(fixture_file):
    frame = waymo.WaymoReader(fixture_file("waymo_frame"))[0]
    assert frame.lidar is None and frame.cameras == {}
    assert len(frame.boxes) == 18
    assert (frame.boxes.labels == ObjectClass.SIGN).sum() == 17
    assert frame.boxes.boxes.dtype == np.float32


# --------------------------------------------------------------------------------------------
# Range images
# --------------------------------------------------------------------------------------------

def test_matrix_float_codec_matches_protobuf():
    array = np.random.default_rng(0).normal(size=(3, 5, 4)).astype(np.float32)
    blob = waymo.encode_matrix_float(array)
    msg = dataset_pb2.MatrixFloat()
    msg.ParseFromString(blob)
    assert list(msg.shape.dims) == [3, 5, 4]
    np.testing.assert_array_equal(np.asarray(msg.data, np.float32).reshape(3, 5, 4), array)
    np.testing.assert_array_equal(waymo.parse_matrix_float(msg.SerializeToString()), array)
    zeros = dataset_pb2.MatrixInt32()
    zeros.ParseFromString(waymo.encode_zero_matrix_int32((2, 3, 6)))
    assert list(zeros.shape.dims) == [2, 3, 6] and list(zeros.data) == [0] * 36


def _reference_point(frame, laser_id: int, ret: int, row: int, col: int) -> np.ndarray:
    """One pixel decoded with scalar maths, straight from the proto (an independent check)."""
    laser = [la for la in frame.lasers if la.name == laser_id][0]
    ri = (laser.ri_return1, laser.ri_return2)[ret]
    image = waymo.decompress_matrix(ri.range_image_compressed)
    calib = [c for c in frame.context.laser_calibrations if c.name == laser_id][0]
    h, w = image.shape[:2]
    if len(calib.beam_inclinations):
        incl = list(calib.beam_inclinations)[h - 1 - row]
    else:
        lo, hi = calib.beam_inclination_min, calib.beam_inclination_max
        incl = lo + (h - 1 - row + 0.5) / h * (hi - lo)
    E = np.array(calib.extrinsic.transform).reshape(4, 4)
    az = ((w - col - 0.5) / w * 2 - 1) * np.pi - np.arctan2(E[1, 0], E[0, 0])
    r = image[row, col, 0]
    p = E @ np.array([r * np.cos(az) * np.cos(incl), r * np.sin(az) * np.cos(incl),
                      r * np.sin(incl), 1.0])
    if laser_id == 1:
        pose = waymo.decompress_matrix(laser.ri_return1.range_image_pose_compressed)[row, col]
        roll, pitch, yaw = (float(v) for v in pose[:3])
        rx = np.array([[1, 0, 0], [0, np.cos(roll), -np.sin(roll)],
                       [0, np.sin(roll), np.cos(roll)]])
        ry = np.array([[np.cos(pitch), 0, np.sin(pitch)], [0, 1, 0],
                       [-np.sin(pitch), 0, np.cos(pitch)]])
        rz = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0],
                       [0, 0, 1]])
        world = rz @ ry @ rx @ p[:3] + pose[3:6]
        frame_pose = np.array(frame.pose.transform).reshape(4, 4)
        p = np.linalg.inv(frame_pose) @ np.append(world, 1.0)
    return p[:3]


def test_lidar_decode_matches_scalar_reference(lidar_frame_proto, synth):
    sweep = waymo.decode_lidar(lidar_frame_proto)
    assert isinstance(sweep, LidarSweep)
    assert sweep.columns == ("x", "y", "z", "intensity", "elongation")
    assert sweep.points.dtype == np.float32
    assert sweep.laser_id.dtype == np.int8 and sweep.return_index.dtype == np.int8
    assert set(np.unique(sweep.laser_id)) == {1, 2, 3, 4, 5}
    assert set(np.unique(sweep.return_index)) == {0, 1}
    rng = np.random.default_rng(1)
    for laser_id, h, w, _ in synth.lasers:
        for ret in (0, 1):
            laser = [la for la in lidar_frame_proto.lasers if la.name == laser_id][0]
            ri = (laser.ri_return1, laser.ri_return2)[ret]
            image = waymo.decompress_matrix(ri.range_image_compressed)
            valid_rows, valid_cols = np.nonzero(image[..., 0] > 0)
            mine = sweep.points[(sweep.laser_id == laser_id) & (sweep.return_index == ret)]
            assert len(mine) == len(valid_rows)
            for k in rng.choice(len(valid_rows), 5, replace=False):
                expected = _reference_point(lidar_frame_proto, laser_id, ret, valid_rows[k],
                                            valid_cols[k])
                np.testing.assert_allclose(mine[k, :3], expected, atol=1e-4)
                np.testing.assert_allclose(mine[k, 3:5],
                                           image[valid_rows[k], valid_cols[k], 1:3])


def test_top_pixel_pose_moves_points(lidar_frame_proto):
    """Without the per-pixel pose the TOP points land elsewhere (the correction is applied)."""
    with_pose = waymo.decode_lidar(lidar_frame_proto)
    stripped = dataset_pb2.Frame()
    stripped.CopyFrom(lidar_frame_proto)
    stripped.lasers[0].ri_return1.range_image_pose_compressed = b""
    without = waymo.decode_lidar(stripped)
    top = with_pose.laser_id == 1
    shift = np.linalg.norm(with_pose.points[top, :3] - without.points[top, :3], axis=1)
    assert shift.max() > 0.5
    np.testing.assert_array_equal(with_pose.points[~top], without.points[~top])


@pytest.mark.skipif(not os.environ.get("WOD_OFFICIAL_PYTHON"),
                    reason="set WOD_OFFICIAL_PYTHON to a Python with the full "
                           "waymo-open-dataset-tf-2-12-0 package to run the parity check")
def test_official_parity(tmp_path, synth):
    frames = [synth.make_lidar_frame(seed) for seed in (11, 12)]
    path = tmp_path / "parity.tfrecord"
    write_records(path, [f.SerializeToString() for f in frames])
    out = tmp_path / "official.npz"
    script = Path(__file__).with_name("official_waymo_points.py")
    subprocess.run([os.environ["WOD_OFFICIAL_PYTHON"], str(script), str(path), str(out)],
                   check=True, capture_output=True, timeout=280)
    official = np.load(out)
    reader = waymo.WaymoReader(path)
    worst = 0.0
    for i in range(len(frames)):
        sweep = reader[i].lidar
        for ret in (0, 1):
            theirs = official[f"r{i}_ret{ret}_points"]
            mask = sweep.return_index == ret
            mine = sweep.points[mask]
            assert mine.shape[0] == theirs.shape[0]
            np.testing.assert_array_equal(sweep.laser_id[mask], official[f"r{i}_ret{ret}_laser"])
            np.testing.assert_allclose(mine[:, 3:5], theirs[:, 1:3], atol=1e-6)
            worst = max(worst, float(np.abs(mine[:, :3] - theirs[:, 3:6]).max()))
    print(f"max |official - ours| = {worst:.2e} m")
    assert worst < 1e-4


# --------------------------------------------------------------------------------------------
# Writer round trip
# --------------------------------------------------------------------------------------------

def test_writer_round_trip_exact_on_beam_points(tmp_path, sim_frames):
    path = tmp_path / "sim.tfrecord"
    assert waymo.write_frames(path, sim_frames) == len(sim_frames)
    reader = waymo.WaymoReader(path)
    assert len(reader) == len(sim_frames)
    for original, back in zip(sim_frames, reader):
        assert back.stamp_ns == original.stamp_ns
        assert back.sequence_id == original.sequence_id
        np.testing.assert_allclose(back.ego_pose.T_world_vehicle,
                                   original.ego_pose.T_world_vehicle, atol=1e-9)
        a, b = original.lidar, back.lidar
        assert len(b) == len(a)
        # Same set of points: match each original point to its nearest decoded one.
        dist, nearest = cKDTree(b.points[:, :3]).query(a.points[:, :3])
        assert len(np.unique(nearest)) == len(a)               # one to one
        # Float32 storage of the range plus the float32 per-pixel pose: well under a mm.
        assert dist.max() < 2e-3
        np.testing.assert_array_equal(b.laser_id[nearest], a.laser_id)
        np.testing.assert_allclose(b.points[nearest, 3:], a.points[:, 3:], atol=1e-6)
        np.testing.assert_array_equal(back.boxes.boxes, original.boxes.boxes)
        np.testing.assert_array_equal(back.boxes.labels, original.boxes.labels)
        np.testing.assert_array_equal(back.boxes.ids, original.boxes.ids)
        np.testing.assert_array_equal(back.boxes.velocities, original.boxes.velocities)
        np.testing.assert_array_equal(back.boxes.num_points, original.boxes.num_points)
        np.testing.assert_array_equal(back.boxes.difficulty, original.boxes.difficulty)
        cam_a, cam_b = original.cameras["FRONT"], back.cameras["FRONT"]
        np.testing.assert_allclose(cam_b.calibration.K, cam_a.calibration.K)
        np.testing.assert_allclose(cam_b.calibration.T_vehicle_sensor,
                                   cam_a.calibration.T_vehicle_sensor)
        assert cam_b.rolling_shutter.direction == "LEFT_TO_RIGHT"
        # JPEG is lossy: compare the decoded image loosely.
        assert np.abs(cam_b.image.astype(int) - cam_a.image.astype(int)).mean() < 3


def test_writer_quantization_bound_for_off_beam_points(tmp_path, sim_frames):
    """Points off the beam directions come back within half a pixel of angle times range."""
    frame = sim_frames[0]
    rng = np.random.default_rng(7)
    keep = frame.lidar.laser_id == 1
    pts = frame.lidar.points[keep].copy()
    pts = pts[np.arange(0, len(pts), 4)]                     # at most one point per pixel
    yaw = rng.uniform(-0.4, 0.4, len(pts)) * (2 * np.pi / 2650)
    c, s = np.cos(yaw), np.sin(yaw)
    top = waymo.default_laser_geometries()[1].T_vehicle_sensor[:3, 3]
    rel = pts[:, :3] - top
    pts[:, 0] = top[0] + c * rel[:, 0] - s * rel[:, 1]
    pts[:, 1] = top[1] + s * rel[:, 0] + c * rel[:, 1]
    import dataclasses

    lidar = LidarSweep("lidar", frame.stamp_ns, pts, waymo.LIDAR_COLUMNS,
                       np.ones(len(pts), np.int8), np.zeros(len(pts), np.int8))
    path = tmp_path / "jitter.tfrecord"
    waymo.write_frames(path, [dataclasses.replace(frame, lidar=lidar, cameras={})])
    back = waymo.WaymoReader(path)[0].lidar
    assert len(back) == len(pts)
    rng_a = np.linalg.norm(pts[:, :3] - top, axis=1)
    rng_b = np.linalg.norm(back.points[:, :3] - top, axis=1)
    np.testing.assert_allclose(np.sort(rng_b), np.sort(rng_a), atol=1e-3)
    # Nearest returned point for each input: within range * half a column of azimuth.
    dist, _ = cKDTree(back.points[:, :3]).query(pts[:, :3])
    bound = rng_a * (np.pi / 2650) * 1.01 + 1e-3
    assert (dist <= bound).all()
    assert dist.max() > 1e-3                                 # the test is not trivially exact


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------

def _copy(frame):
    out = dataset_pb2.Frame()
    out.CopyFrom(frame)
    return out


def test_corrupt_zlib(tmp_path, lidar_frame_proto):
    frame = _copy(lidar_frame_proto)
    blob = bytearray(frame.lasers[2].ri_return2.range_image_compressed)
    blob[10:20] = bytes(10)
    frame.lasers[2].ri_return2.range_image_compressed = bytes(blob)
    path = _write(tmp_path, frame)
    with pytest.raises(DataError, match="zlib") as err:
        waymo.WaymoReader(path)[0]
    assert err.value.index == 0 and err.value.source == str(path)


def test_range_image_shape_disagrees_with_calibration(tmp_path, lidar_frame_proto):
    frame = _copy(lidar_frame_proto)
    image = np.ones((63, 400, 4), np.float32)         # TOP has 64 beam inclinations
    frame.lasers[0].ri_return1.range_image_compressed = waymo.compress_matrix(image)
    path = _write(tmp_path, frame)
    with pytest.raises(DataError, match="disagrees with its calibration") as err:
        waymo.WaymoReader(path)[0]
    assert err.value.index == 0 and str(path) in str(err.value)


def test_missing_laser_calibration(tmp_path, lidar_frame_proto):
    frame = _copy(lidar_frame_proto)
    del frame.context.laser_calibrations[1]
    path = _write(tmp_path, frame)
    with pytest.raises(CalibrationError, match=r"record 0.*laser FRONT") as err:
        waymo.WaymoReader(path)[0]
    assert str(path) in str(err.value)


def test_missing_camera_calibration(tmp_path, shared_data):
    path = shared_data / PVPS
    if not path.exists():
        pytest.skip(f"{path} not present")
    frame = waymo.WaymoReader(path).proto(0)
    del frame.context.camera_calibrations[2]
    bad = _write(tmp_path, frame)
    with pytest.raises(CalibrationError, match=r"record 0.*no calibration") as err:
        waymo.WaymoReader(bad)[0]
    assert str(bad) in str(err.value)


def test_unknown_label_type(tmp_path, fixture_file):
    frame = waymo.WaymoReader(fixture_file("waymo_frame")).proto(0)
    # Label.Type is a closed proto2 enum, so write the wire bytes of "type = 9" directly.
    frame.laser_labels[4].ClearField("type")
    frame.laser_labels[4].MergeFromString(bytes([3 << 3, 9]))
    path = _write(tmp_path, frame)
    with pytest.raises(DataError, match=r"unknown label type.*\[9\]") as err:
        waymo.WaymoReader(path)[0]
    assert err.value.index == 0


def test_garbage_payload(tmp_path):
    path = tmp_path / "garbage.tfrecord"
    write_records(path, [b"\xff" * 50])
    with pytest.raises(DataError, match="cannot parse Frame") as err:
        waymo.WaymoReader(path)[0]
    assert err.value.index == 0


# --------------------------------------------------------------------------------------------
# Objects export
# --------------------------------------------------------------------------------------------

def test_detections_to_objects(tmp_path):
    from waymo_open_dataset.protos import metrics_pb2

    det = Detections(
        stamp_ns=1_507_315_488_219_118_000,
        boxes=np.array([[1.0, 2.0, 0.5, 4.0, 2.0, 1.5, 0.1], [5.0, -1.0, 0.9, 0.9, 0.8, 1.8,
                                                            -3.0]], np.float32),
        scores=np.array([0.9, 0.4], np.float32), labels=np.array([1, 2], np.int32),
        velocities=np.array([[2.0, 0.0], [0.5, 0.5]], np.float32),
        modalities=frozenset({Modality.LIDAR}))
    empty = Detections.empty(1_507_315_488_319_118_000)
    path = tmp_path / "pred.bin"
    assert waymo.write_objects(path, [("seg_a", det), ("seg_a", empty)]) == 2
    objects = metrics_pb2.Objects()
    objects.ParseFromString(path.read_bytes())
    first, second = objects.objects
    assert first.context_name == "seg_a"
    assert first.frame_timestamp_micros == 1_507_315_488_219_118
    assert first.object.type == 1 and second.object.type == 2
    assert first.score == pytest.approx(0.9)
    assert first.object.box.length == pytest.approx(4.0)
    assert first.object.box.heading == pytest.approx(0.1)
    assert second.object.metadata.speed_y == pytest.approx(0.5)


def test_no_tensorflow_import():
    code = ("import sys; import perception.data.waymo, perception.data.waymo_convert; "
            "sys.exit(1 if 'tensorflow' in sys.modules else 0)")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0


def test_zlib_level_does_not_change_points(tmp_path, sim_frames):
    a, b = tmp_path / "a.tfrecord", tmp_path / "b.tfrecord"
    waymo.write_frames(a, sim_frames[:1], zlib_level=1)
    waymo.write_frames(b, sim_frames[:1], zlib_level=9)
    np.testing.assert_array_equal(waymo.WaymoReader(a)[0].lidar.points,
                                  waymo.WaymoReader(b)[0].lidar.points)


def test_simulator_round_trip(tmp_path):
    """Simulated frames -> Waymo records -> reader: the same points up to float32 storage."""
    sim_module = pytest.importorskip("perception.data.sim")
    sim = sim_module.Simulator("waymo_like", seed=2)
    frames = list(sim.frames(2))
    # The simulated TOP laser fires along the Waymo column azimuths at its own inclinations:
    # describing it exactly makes the inverse projection lossless.
    top = waymo.LaserGeometry("TOP", 1, sim.lidar.calibration.T_vehicle_sensor,
                              sim.lidar.inclination_rad, sim.lidar.cfg.azimuth_steps)
    path = tmp_path / "sim.tfrecord"
    waymo.write_frames(path, frames, lasers={1: top})
    for original, back in zip(frames, waymo.WaymoReader(path)):
        a, b = original.lidar, back.lidar
        assert len(b) == len(a)
        dist, nearest = cKDTree(b.points[:, :3]).query(a.xyz)
        assert len(np.unique(nearest)) == len(a) and dist.max() < 1e-3
        np.testing.assert_allclose(b.column("intensity")[nearest], a.column("intensity"))
        assert (b.laser_id == 1).all()
        np.testing.assert_array_equal(back.boxes.boxes, original.boxes.boxes)
        np.testing.assert_array_equal(back.boxes.labels, original.boxes.labels)
        assert back.boxes.ids.tolist() == [str(i) for i in original.boxes.ids]
        assert set(back.cameras) == set(original.cameras)
        for name, cam in original.cameras.items():
            got = back.cameras[name]
            np.testing.assert_allclose(got.calibration.T_vehicle_optical,
                                       cam.calibration.T_vehicle_optical, atol=1e-9)
            np.testing.assert_allclose(got.calibration.K, cam.calibration.K)
            assert abs(got.stamp_ns - cam.stamp_ns) < 1000
            assert np.abs(got.image.astype(int) - cam.image.astype(int)).mean() < 4


def test_real_labels_project_onto_waymo_projected_labels(shared_data):
    """Our camera model (Waymo convention, distortion) reproduces Waymo's own projection of the
    3D labels into each camera (``projected_lidar_labels``) to a fraction of a pixel."""
    path = shared_data / PVPS
    if not path.exists():
        pytest.skip(f"{path} not present")
    from perception.geometry import box_corners, project_points

    reader = waymo.WaymoReader(path)
    proto, frame = reader.proto(0), reader[0]
    row_of = {box_id: k for k, box_id in enumerate(frame.boxes.ids)}
    checked = 0
    for camera_labels in proto.projected_lidar_labels:
        name = waymo.CAMERA_NAMES[camera_labels.name]
        calib = frame.cameras[name].calibration
        for label in camera_labels.labels:
            box = frame.boxes.boxes[row_of[label.id.removesuffix(f"_{name}")]]
            uv, _, visible = project_points(box_corners(box[None])[0], calib)
            if not visible.all():          # clipped boxes: Waymo clips to the image border
                continue
            b = label.box
            expected = [b.center_x - b.length / 2, b.center_y - b.width / 2,
                        b.center_x + b.length / 2, b.center_y + b.width / 2]
            np.testing.assert_allclose(np.concatenate([uv.min(0), uv.max(0)]), expected,
                                       atol=1.0)
            checked += 1
    assert checked >= 30

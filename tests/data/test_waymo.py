"""Waymo reader: real frames, range-image decoding, bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from waymo_open_dataset import dataset_pb2

from perception.data import waymo
from perception.data.tfrecord import write_records
from perception.data.waymo_matrix import compress_matrix, decompress_matrix
from perception.errors import CalibrationError, DataError
from perception.types import CameraConvention, LidarSweep, ObjectClass

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

def _reference_point(frame, laser_id: int, ret: int, row: int, col: int) -> np.ndarray:
    """One pixel decoded with scalar maths, straight from the proto (an independent check)."""
    laser = [la for la in frame.lasers if la.name == laser_id][0]
    ri = (laser.ri_return1, laser.ri_return2)[ret]
    image = decompress_matrix(ri.range_image_compressed)
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
        pose = decompress_matrix(laser.ri_return1.range_image_pose_compressed)[row, col]
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
            image = decompress_matrix(ri.range_image_compressed)
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
    frame.lasers[0].ri_return1.range_image_compressed = compress_matrix(image)
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


def test_no_tensorflow_import():
    code = ("import sys; import perception.data.waymo, perception.data.waymo_convert, "
            "perception.data.waymo_writer, perception.data.waymo_objects; "
            "sys.exit(1 if 'tensorflow' in sys.modules else 0)")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0


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

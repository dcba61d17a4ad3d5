"""nuScenes: mmdet3d info pkl, a devkit layout built from the real keyframe, radar .pcd."""

from __future__ import annotations

import os
import pickle
import shutil

import numpy as np
import pytest

from perception.data import nuscenes, safe_pickle
from perception.errors import DataError
from perception.geometry import count_points_in_boxes, rotation_z
from perception.types import Modality, ObjectClass

from .nuscenes_devkit import INFO_PKL, RADAR_PCD, build_devkit

DEMO = "mmdetection3d/demo/data/nuscenes"
DEMO_PKL = INFO_PKL
RADAR = RADAR_PCD


@pytest.fixture(scope="module")
def demo_dir(shared_data):
    path = shared_data / DEMO
    if not (path / DEMO_PKL).exists():
        pytest.skip(f"{path / DEMO_PKL} not present")
    return path


@pytest.fixture(scope="module")
def info_frame(demo_dir):
    return nuscenes.NuScenesInfoReader(demo_dir / DEMO_PKL)[0]


def test_info_pkl_keyframe(info_frame, demo_dir):
    frame = info_frame
    assert frame.stamp_ns == 1532402927647951000
    assert len(frame.lidar) == 34688 and frame.lidar.columns[3] == "intensity"
    assert set(frame.cameras) == set(nuscenes.CAMERA_CHANNELS)
    assert frame.cameras["CAM_FRONT"].image.shape == (900, 1600, 3)
    assert len(frame.boxes) == 69
    counts = np.bincount(frame.boxes.labels, minlength=5)
    assert counts[ObjectClass.VEHICLE] > 0 and counts[ObjectClass.PEDESTRIAN] > 0
    # The centre-z reading of the boxes reproduces the annotated point counts (a bottom-z
    # reading would lose most of them): this pins the box convention and the frame change.
    counts = count_points_in_boxes(frame.lidar.points, frame.boxes.boxes)
    assert np.abs(counts - frame.boxes.num_points).sum() <= 0.05 * frame.boxes.num_points.sum()
    # The lidar sits about 1.84 m above the ego origin: ground points are near z = 0.
    assert abs(np.percentile(frame.lidar.points[:, 2], 10)) < 0.6


def test_reduced_info_pkl(fixture_file):
    root = fixture_file("nuscenes_reduced")
    reader = nuscenes.NuScenesInfoReader(root / "nus_info.pkl", skip_missing_cameras=True)
    assert len(reader) == 2
    frame = reader[0]
    assert len(frame.lidar) == 100 and len(frame.boxes) == 37
    with pytest.raises(DataError, match=r"\[record 0\].*CAM_FRONT"):
        nuscenes.NuScenesInfoReader(root / "nus_info.pkl")[0]


def test_restricted_unpickler(tmp_path):
    data = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": [np.int64(3), 2.5],
            "c": ("x", b"yy", {1, 2})}
    for protocol in (2, 4, 5):
        out = safe_pickle.loads_restricted(pickle.dumps(data, protocol=protocol))
        np.testing.assert_array_equal(out["a"], data["a"])
        assert out["b"] == data["b"] and out["c"] == data["c"]

    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo owned > " + str(tmp_path / "owned"),))

    bad = tmp_path / "evil.pkl"
    bad.write_bytes(pickle.dumps({"x": Exploit()}))
    with pytest.raises(DataError, match="refusing.*system") as err:
        safe_pickle.load_file(bad)
    assert str(bad) in str(err.value)
    assert not (tmp_path / "owned").exists()
    with pytest.raises(DataError, match="refusing.*eval"):
        safe_pickle.loads_restricted(b"cbuiltins\neval\n(S'1+1'\ntR.")
    with pytest.raises(DataError, match="cannot unpickle"):
        safe_pickle.loads_restricted(pickle.dumps([1, 2, 3])[:-4])


def test_devkit_layout_matches_the_info_reader(tmp_path, demo_dir, info_frame, fixture_file):
    radar_file = fixture_file("nuscenes_radar") / RADAR
    poses = build_devkit(tmp_path, demo_dir, radar_file)
    reader = nuscenes.NuScenesDevkit(tmp_path, "v1.0-mini", sweeps=1)
    assert len(reader) == 2
    frame = reader[1]
    assert frame.modalities == {Modality.LIDAR, Modality.CAMERA, Modality.RADAR}
    assert frame.stamp_ns == info_frame.stamp_ns
    np.testing.assert_allclose(frame.ego_pose.T_world_vehicle, poses["T_world_ego"], atol=1e-6)
    # Boxes: the same as read from the info file, through the world frame and back.
    assert len(frame.boxes) == 69
    np.testing.assert_allclose(frame.boxes.boxes[:, :6], info_frame.boxes.boxes[:, :6],
                               atol=1e-3)
    heading_error = np.angle(np.exp(1j * (frame.boxes.boxes[:, 6]
                                          - info_frame.boxes.boxes[:, 6])))
    assert np.abs(heading_error).max() < 2e-3
    np.testing.assert_array_equal(frame.boxes.labels, info_frame.boxes.labels)
    # Velocity of the first object: 3 m/s along world x, expressed in the ego frame.
    R_ego_world = poses["T_world_ego"][:3, :3].T
    np.testing.assert_allclose(frame.boxes.velocities[0], (R_ego_world @ [3.0, 0, 0])[:2],
                               atol=1e-4)
    assert not frame.boxes.velocities[1:].any()
    # Two sweeps: the key frame (time 0) equals the info reader's points; the earlier sweep
    # is the same scan seen from the earlier pose, 0.5 s back.
    lidar = frame.lidar
    assert lidar.columns[-1] == "time_offset_s"
    key = lidar.points[:, -1] == 0
    assert key.sum() == 34688 and (lidar.points[~key, -1] == np.float32(-0.5)).all()
    np.testing.assert_allclose(lidar.points[key, :3], info_frame.lidar.points[:, :3], atol=1e-4)
    T_key_prev = np.linalg.inv(poses["T_world_ego"]) @ poses["T_world_ego_prev"]
    expected = info_frame.lidar.points[:, :3] @ T_key_prev[:3, :3].T + T_key_prev[:3, 3]
    np.testing.assert_allclose(lidar.points[~key, :3], expected, atol=1e-3)
    # Cameras carry the same calibration as in the info file.
    for name, cam in frame.cameras.items():
        np.testing.assert_allclose(cam.calibration.K, info_frame.cameras[name].calibration.K)
        np.testing.assert_allclose(cam.calibration.T_vehicle_sensor,
                                   info_frame.cameras[name].calibration.T_vehicle_sensor,
                                   atol=1e-6)
    radar = frame.radars["RADAR_BACK_LEFT"]
    assert len(radar) == 125


def test_radar_pcd(fixture_file):
    path = fixture_file("nuscenes_radar") / RADAR
    scan = nuscenes.read_radar_pcd(path)
    assert scan.sensor_name == "RADAR_BACK_LEFT" and scan.stamp_ns == 1532506682462345000
    assert len(scan) == 125 and scan.columns == nuscenes.RADAR_COLUMNS
    header, data = nuscenes._split_pcd(path.read_bytes(), str(path))
    raw = np.frombuffer(data, nuscenes._pcd_dtype(header, str(path)), count=125)
    np.testing.assert_allclose(scan.column("rcs_dbsm"), raw["rcs"])
    # Radial speed = velocity projected on the line of sight.
    los = np.stack([raw["x"], raw["y"]], axis=1)
    los = los / np.linalg.norm(los, axis=1, keepdims=True)
    expected = raw["vx_comp"] * los[:, 0] + raw["vy_comp"] * los[:, 1]
    np.testing.assert_allclose(scan.column("doppler_compensated_mps"), expected, atol=1e-5)
    # With a calibration the points and compensated velocities are rotated into the vehicle.
    from perception.types import Calibration

    T = np.eye(4)
    T[:3, :3] = rotation_z(np.pi / 2)
    T[:3, 3] = [1.0, 2.0, 0.5]
    moved = nuscenes.read_radar_pcd(path, Calibration("RADAR_BACK_LEFT", T))
    np.testing.assert_allclose(moved.xyz[:, 0], 1.0 - raw["y"], atol=1e-5)
    np.testing.assert_allclose(moved.column("vx_comp"), -raw["vy_comp"], atol=1e-5)
    np.testing.assert_allclose(moved.column("doppler_compensated_mps"), expected, atol=1e-5)


def test_radar_pcd_with_unexpected_fields(tmp_path, fixture_file):
    blob = (fixture_file("nuscenes_radar") / RADAR).read_bytes()
    bad = tmp_path / "renamed.pcd"
    bad.write_bytes(blob.replace(b"FIELDS x y z dyn_prop", b"FIELDS x y z dyn_XXXX", 1))
    with pytest.raises(DataError, match="unexpected PCD fields") as err:
        nuscenes.read_radar_pcd(bad)
    assert str(bad) in str(err.value)
    cut = tmp_path / "cut.pcd"
    _, data = nuscenes._split_pcd(blob, "radar")
    cut.write_bytes(blob[:len(blob) - len(data) + 3000])      # 125 points need 5375 bytes
    with pytest.raises(DataError, match="truncated"):
        nuscenes.read_radar_pcd(cut)
    ascii_pcd = tmp_path / "ascii.pcd"
    ascii_pcd.write_bytes(blob.replace(b"DATA binary", b"DATA ascii", 1))
    with pytest.raises(DataError, match="binary"):
        nuscenes.read_radar_pcd(ascii_pcd)


def test_devkit_missing_table(tmp_path):
    (tmp_path / "v1.0-mini").mkdir()
    with pytest.raises(DataError, match="missing nuScenes table"):
        nuscenes.NuScenesDevkit(tmp_path)
    shutil.rmtree(tmp_path / "v1.0-mini")

"""nuScenes: mmdet3d info pkl, a devkit layout built from the real keyframe, radar .pcd."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from perception.data import nuscenes, safe_pickle
from perception.errors import DataError
from perception.geometry import count_points_in_boxes, matrix_to_quaternion, rotation_z
from perception.types import Modality, ObjectClass

DEMO = "mmdetection3d/demo/data/nuscenes"
DEMO_PKL = "n015-2018-07-24-11-22-45+0800.pkl"
RADAR = "n015-2018-07-25-16-15-50+0800__RADAR_BACK_LEFT__1532506682462345.pcd"


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


def _pose_row(token: str, T: np.ndarray) -> dict:
    return {"token": token, "translation": T[:3, 3].tolist(),
            "rotation": matrix_to_quaternion(T[:3, :3]).tolist()}


def _build_devkit(root: Path, demo: Path, radar_file: Path) -> dict:
    """A two-sample devkit layout around the real keyframe (files linked, tables written)."""
    entry = safe_pickle.load_file(demo / DEMO_PKL)["data_list"][0]
    T_world_ego = np.asarray(entry["ego2global"])
    T_ego_lidar = np.asarray(entry["lidar_points"]["lidar2ego"])
    stamp_us = int(round(entry["timestamp"] * 1e6))
    # An earlier ego pose 0.5 s before: 1 m back along the ego x axis, yawed by 0.02 rad.
    T_world_ego_prev = T_world_ego.copy()
    T_world_ego_prev[:3, 3] -= T_world_ego[:3, 0]
    T_world_ego_prev[:3, :3] = T_world_ego[:3, :3] @ rotation_z(-0.02)
    tables = {name: [] for name in nuscenes._TABLES}
    tables["ego_pose"] += [_pose_row("pose_key", T_world_ego), _pose_row("pose_prev",
                                                                       T_world_ego_prev)]
    tables["sample"] += [{"token": "s_prev", "timestamp": stamp_us - 500_000, "prev": "",
                          "next": "s_key", "scene_token": "scene-0061"},
                         {"token": "s_key", "timestamp": stamp_us, "prev": "s_prev", "next": "",
                          "scene_token": "scene-0061"}]

    def add_sensor(channel, T, intrinsic=None):
        tables["sensor"].append({"token": f"sensor_{channel}", "channel": channel})
        row = _pose_row(f"calib_{channel}", T)
        row.update(sensor_token=f"sensor_{channel}", camera_intrinsic=intrinsic or [])
        tables["calibrated_sensor"].append(row)

    def add_data(token, sample, channel, src, stamp, pose, key=True, prev=""):
        rel = Path("samples" if key else "sweeps") / channel / src.name
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        if not (root / rel).exists():
            os.symlink(src, root / rel)
        tables["sample_data"].append({
            "token": token, "sample_token": sample, "ego_pose_token": pose,
            "calibrated_sensor_token": f"calib_{channel}", "filename": str(rel),
            "timestamp": stamp, "is_key_frame": key, "prev": prev, "next": ""})

    lidar_file = demo / entry["lidar_points"]["lidar_path"]
    add_sensor("LIDAR_TOP", T_ego_lidar)
    add_data("lidar_prev", "s_prev", "LIDAR_TOP", lidar_file, stamp_us - 500_000, "pose_prev")
    add_data("lidar_key", "s_key", "LIDAR_TOP", lidar_file, stamp_us, "pose_key",
             prev="lidar_prev")
    for channel, cam in entry["images"].items():
        add_sensor(channel, np.asarray(cam["cam2ego"]), np.asarray(cam["cam2img"]).tolist())
        add_data(f"{channel}_key", "s_key", channel, demo / cam["img_path"],
                 int(round(cam["timestamp"] * 1e6)), "pose_key")
    # The real radar sweep comes from another log; it stands in for this sample's radar.
    add_sensor("RADAR_BACK_LEFT", np.array([[0, 1, 0, -0.5], [-1, 0, 0, 0.9], [0, 0, 1, 0.6],
                                            [0, 0, 0, 1.0]]))
    add_data("radar_key", "s_key", "RADAR_BACK_LEFT", radar_file, stamp_us, "pose_key")
    names = {v: k for k, v in safe_pickle.load_file(demo / DEMO_PKL)["metainfo"]
             ["categories"].items()}
    devkit_names = {"car": "vehicle.car", "truck": "vehicle.truck", "trailer": "vehicle.trailer",
                    "bus": "vehicle.bus.rigid", "construction_vehicle": "vehicle.construction",
                    "bicycle": "vehicle.bicycle", "motorcycle": "vehicle.motorcycle",
                    "pedestrian": "human.pedestrian.adult", "traffic_cone":
                    "movable_object.trafficcone", "barrier": "movable_object.barrier"}
    for name in (*devkit_names.values(), "animal"):
        tables["category"].append({"token": f"cat_{name}", "name": name})
    T_world_lidar = T_world_ego @ T_ego_lidar
    for k, inst in enumerate(entry["instances"]):
        x, y, z, length, width, height, yaw = inst["bbox_3d"]
        centre = T_world_lidar @ np.array([x, y, z, 1.0])
        R = T_world_lidar[:3, :3] @ rotation_z(yaw)
        # Label -1 marks classes outside the ten detection classes; any other category.
        category = devkit_names.get(names.get(inst["bbox_label_3d"]), "animal")
        tables["instance"].append({"token": f"inst_{k}", "category_token": f"cat_{category}"})
        row = {"token": f"ann_{k}", "sample_token": "s_key", "instance_token": f"inst_{k}",
               "translation": centre[:3].tolist(), "size": [width, length, height],
               "rotation": matrix_to_quaternion(R).tolist(), "prev": "", "next": "",
               "num_lidar_pts": int(inst["num_lidar_pts"])}
        if k == 0:
            # The same object 0.5 s earlier, 1.5 m further along world x: 3 m/s along +x.
            row["prev"] = "ann_prev"
            earlier = dict(row, token="ann_prev", sample_token="s_prev", prev="",
                           next="ann_0", translation=(centre[:3] - [1.5, 0, 0]).tolist())
            tables["sample_annotation"].append(earlier)
        tables["sample_annotation"].append(row)
    (root / "v1.0-mini").mkdir(parents=True)
    for name, rows in tables.items():
        (root / "v1.0-mini" / f"{name}.json").write_text(json.dumps(rows))
    return {"T_world_ego": T_world_ego, "T_world_ego_prev": T_world_ego_prev}


def test_devkit_layout_matches_the_info_reader(tmp_path, demo_dir, info_frame, fixture_file):
    radar_file = fixture_file("nuscenes_radar") / RADAR
    poses = _build_devkit(tmp_path, demo_dir, radar_file)
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

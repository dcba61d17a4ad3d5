"""A nuScenes devkit layout (tables + linked files) built around the real keyframe fixture.

Shared by the reader tests and the training tests; the data files are symlinked into the
layout, never copied.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from perception.data import nuscenes, safe_pickle
from perception.geometry import matrix_to_quaternion, rotation_z

INFO_PKL = "n015-2018-07-24-11-22-45+0800.pkl"
"""The keyframe's mmdet3d info file inside the fixture directory."""
RADAR_PCD = "n015-2018-07-25-16-15-50+0800__RADAR_BACK_LEFT__1532506682462345.pcd"
"""The real radar scan inside the nuscenes_radar fixture directory."""


def pose_row(token: str, T: np.ndarray) -> dict:
    return {"token": token, "translation": T[:3, 3].tolist(),
            "rotation": matrix_to_quaternion(T[:3, :3]).tolist()}


def build_devkit(root: Path, demo: Path, radar_file: Path | None,
                 previous_sample: bool = True) -> dict:
    """A devkit layout around the real keyframe (files linked, never copied; tables written).

    ``previous_sample``: add a lidar-only sample 0.5 s earlier (sweep chain, annotation
    velocity); ``radar_file``: a real radar scan standing in for this sample's
    RADAR_BACK_LEFT, or None for none.
    """
    entry = safe_pickle.load_file(demo / INFO_PKL)["data_list"][0]
    T_world_ego = np.asarray(entry["ego2global"])
    T_ego_lidar = np.asarray(entry["lidar_points"]["lidar2ego"])
    stamp_us = int(round(entry["timestamp"] * 1e6))
    # An earlier ego pose 0.5 s before: 1 m back along the ego x axis, yawed by 0.02 rad.
    T_world_ego_prev = T_world_ego.copy()
    T_world_ego_prev[:3, 3] -= T_world_ego[:3, 0]
    T_world_ego_prev[:3, :3] = T_world_ego[:3, :3] @ rotation_z(-0.02)
    tables = {name: [] for name in nuscenes._TABLES}
    prev = "s_prev" if previous_sample else ""
    tables["ego_pose"].append(pose_row("pose_key", T_world_ego))
    tables["sample"].append({"token": "s_key", "timestamp": stamp_us, "prev": prev, "next": "",
                             "scene_token": "scene-0061"})
    if previous_sample:
        tables["ego_pose"].append(pose_row("pose_prev", T_world_ego_prev))
        tables["sample"].insert(0, {"token": "s_prev", "timestamp": stamp_us - 500_000,
                                    "prev": "", "next": "s_key", "scene_token": "scene-0061"})

    def add_sensor(channel, T, intrinsic=None):
        tables["sensor"].append({"token": f"sensor_{channel}", "channel": channel})
        row = pose_row(f"calib_{channel}", T)
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
    if previous_sample:
        add_data("lidar_prev", "s_prev", "LIDAR_TOP", lidar_file, stamp_us - 500_000,
                 "pose_prev")
    add_data("lidar_key", "s_key", "LIDAR_TOP", lidar_file, stamp_us, "pose_key",
             prev="lidar_prev" if previous_sample else "")
    for channel, cam in entry["images"].items():
        add_sensor(channel, np.asarray(cam["cam2ego"]), np.asarray(cam["cam2img"]).tolist())
        add_data(f"{channel}_key", "s_key", channel, demo / cam["img_path"],
                 int(round(cam["timestamp"] * 1e6)), "pose_key")
    if radar_file is not None:
        # The real radar sweep comes from another log; it stands in for this sample's radar.
        add_sensor("RADAR_BACK_LEFT", np.array([[0, 1, 0, -0.5], [-1, 0, 0, 0.9],
                                                [0, 0, 1, 0.6], [0, 0, 0, 1.0]]))
        add_data("radar_key", "s_key", "RADAR_BACK_LEFT", radar_file, stamp_us, "pose_key")
    names = {v: k for k, v in safe_pickle.load_file(demo / INFO_PKL)["metainfo"]
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
        if k == 0 and previous_sample:
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

"""Whole :class:`SensorFrame`s as ``.npz`` files of plain arrays: lidar, cameras, radars, ego
pose, calibration and boxes. Read with ``allow_pickle=False``, so a file can never run code.
Used as the simulator frame cache of training and to carry frames to machines without the
simulator.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import DataError
from ..types import (
    Boxes3D,
    Calibration,
    CameraImage,
    EgoPose,
    LidarSweep,
    RadarScan,
    SensorFrame,
)


def save_frame_npz(path: str | os.PathLike, frame: SensorFrame) -> None:
    """Write ``frame`` (lidar, cameras, radars, ego pose, boxes) as plain arrays."""
    a: dict[str, np.ndarray] = {
        "stamp_ns": np.int64(frame.stamp_ns), "sequence_id": np.str_(frame.sequence_id),
        "frame_index": np.int64(frame.frame_index), "source": np.str_(frame.source)}
    if frame.lidar is not None:
        s = frame.lidar
        a.update({"lidar/name": np.str_(s.sensor_name), "lidar/stamp_ns": np.int64(s.stamp_ns),
                  "lidar/points": s.points, "lidar/columns": np.array(s.columns)})
        _put_calibration(a, "lidar", s.calibration)
    for i, (name, cam) in enumerate(sorted(frame.cameras.items())):
        p = f"camera{i}"
        a.update({f"{p}/name": np.str_(name), f"{p}/stamp_ns": np.int64(cam.stamp_ns),
                  f"{p}/pixels": cam.image})
        _put_calibration(a, p, cam.calibration)
    for i, (name, scan) in enumerate(sorted(frame.radars.items())):
        p = f"radar{i}"
        a.update({f"{p}/name": np.str_(name), f"{p}/stamp_ns": np.int64(scan.stamp_ns),
                  f"{p}/points": scan.points, f"{p}/columns": np.array(scan.columns)})
        _put_calibration(a, p, scan.calibration)
    if frame.ego_pose is not None:
        a["ego/stamp_ns"] = np.int64(frame.ego_pose.stamp_ns)
        a["ego/T_world_vehicle"] = frame.ego_pose.T_world_vehicle
    if frame.boxes is not None:
        b = frame.boxes
        a["boxes/boxes"], a["boxes/labels"] = b.boxes, b.labels
        a["boxes/difficulty"] = b.difficulty
        for name in ("velocities", "num_points"):
            if getattr(b, name) is not None:
                a[f"boxes/{name}"] = getattr(b, name)
        if b.ids is not None and b.ids.dtype.kind in "iu":
            a["boxes/ids"] = b.ids
    np.savez(path, **a)


def load_frame_npz(path: str | os.PathLike) -> SensorFrame:
    """Read a frame written by :func:`save_frame_npz` (no pickle)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read cached frame: {exc}", source=str(path)) from None
    lidar = None
    if "lidar/points" in a:
        lidar = LidarSweep(str(a["lidar/name"]), int(a["lidar/stamp_ns"]), a["lidar/points"],
                           tuple(str(c) for c in a["lidar/columns"]),
                           calibration=_get_calibration(a, "lidar"))
    cameras, radars = {}, {}
    i = 0
    while f"camera{i}/name" in a:
        p = f"camera{i}"
        name = str(a[f"{p}/name"])
        cameras[name] = CameraImage(name, int(a[f"{p}/stamp_ns"]), _get_calibration(a, p),
                                    pixels=a[f"{p}/pixels"])
        i += 1
    i = 0
    while f"radar{i}/name" in a:
        p = f"radar{i}"
        name = str(a[f"{p}/name"])
        radars[name] = RadarScan(name, int(a[f"{p}/stamp_ns"]), a[f"{p}/points"],
                                 tuple(str(c) for c in a[f"{p}/columns"]),
                                 calibration=_get_calibration(a, p))
        i += 1
    ego = (EgoPose(int(a["ego/stamp_ns"]), a["ego/T_world_vehicle"])
           if "ego/stamp_ns" in a else None)
    boxes = None
    if "boxes/boxes" in a:
        boxes = Boxes3D(a["boxes/boxes"], a["boxes/labels"], ids=a.get("boxes/ids"),
                        velocities=a.get("boxes/velocities"),
                        num_points=a.get("boxes/num_points"),
                        difficulty=a["boxes/difficulty"])
    return SensorFrame(stamp_ns=int(a["stamp_ns"]), sequence_id=str(a["sequence_id"]),
                       frame_index=int(a["frame_index"]), lidar=lidar, cameras=cameras,
                       radars=radars, ego_pose=ego, boxes=boxes, source=str(a["source"]))


def _put_calibration(a: dict, prefix: str, calib: Calibration | None) -> None:
    if calib is None:
        return
    a[f"{prefix}/calib/name"] = np.str_(calib.sensor_name)
    a[f"{prefix}/calib/T"] = calib.T_vehicle_sensor
    a[f"{prefix}/calib/convention"] = np.str_(calib.camera_convention.value)
    if calib.K is not None:
        a[f"{prefix}/calib/K"] = calib.K
        a[f"{prefix}/calib/distortion"] = calib.distortion
        a[f"{prefix}/calib/size_wh"] = np.array([calib.width, calib.height], np.int64)


def _get_calibration(a: dict, prefix: str) -> Calibration | None:
    if f"{prefix}/calib/T" not in a:
        return None
    K = a.get(f"{prefix}/calib/K")
    size = a.get(f"{prefix}/calib/size_wh")
    return Calibration(str(a[f"{prefix}/calib/name"]), a[f"{prefix}/calib/T"], K=K,
                       distortion=a.get(f"{prefix}/calib/distortion"),
                       width=int(size[0]) if size is not None else None,
                       height=int(size[1]) if size is not None else None,
                       camera_convention=str(a[f"{prefix}/calib/convention"]))

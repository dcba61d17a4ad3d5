"""nuScenes: the devkit layout (JSON tables), mmdet3d info ``.pkl`` files and radar ``.pcd``.

Everything is returned in the vehicle (ego) frame of the sample's LIDAR_TOP key frame
(nuScenes' ego frame is x forward, y left, z up, like ours). nuScenes boxes are centre-z with
``size = (width, length, height)``; they become ``(x, y, z, length, width, height, heading)``.
Quaternions are ``(w, x, y, z)`` as in nuScenes.

Classes: ``vehicle.*`` (car, truck, bus, trailer, construction, emergency) -> VEHICLE;
``vehicle.bicycle`` / ``vehicle.motorcycle`` -> CYCLIST; ``human.pedestrian.*`` -> PEDESTRIAN;
anything else (barriers, cones, debris, animals) -> UNKNOWN (kept, so box counts match).

Radar ``.pcd`` files hold the 18 standard Continental ARS408 fields. A scan becomes a
:class:`RadarScan` with columns ``x, y, z, doppler_mps, doppler_compensated_mps, rcs_dbsm,
vx_comp, vy_comp, dyn_prop``: the radial (Doppler) speeds are the projections of ``(vx, vy)``
and ``(vx_comp, vy_comp)`` on the line of sight in the sensor frame; the compensated velocity
vector is rotated into the vehicle frame with the positions.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CalibrationError, DataError
from ..geometry import invert_transform, make_transform, quaternion_to_matrix, yaw_of
from ..types import (
    Boxes3D,
    Calibration,
    CameraConvention,
    CameraImage,
    EgoPose,
    LidarSweep,
    ObjectClass,
    RadarScan,
    SensorFrame,
    wrap_heading,
)
from . import safe_pickle

RADAR_FIELDS = ("x", "y", "z", "dyn_prop", "id", "rcs", "vx", "vy", "vx_comp", "vy_comp",
                "is_quality_valid", "ambig_state", "x_rms", "y_rms", "invalid_state", "pdh0",
                "vx_rms", "vy_rms")
RADAR_COLUMNS = ("x", "y", "z", "doppler_mps", "doppler_compensated_mps", "rcs_dbsm",
                 "vx_comp", "vy_comp", "dyn_prop")
LIDAR_COLUMNS = ("x", "y", "z", "intensity", "ring")
LIDAR_FLOATS_PER_POINT = 5
CAMERA_CHANNELS = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK",
                   "CAM_BACK_LEFT", "CAM_BACK_RIGHT")
_PCD_TYPES = {("F", 4): "<f4", ("F", 8): "<f8", ("I", 1): "i1", ("I", 2): "<i2",
              ("I", 4): "<i4", ("U", 1): "u1", ("U", 2): "<u2", ("U", 4): "<u4"}
# mmdet3d nuScenes category names (the detection classes) -> our classes.
MMDET3D_CLASSES = {
    "car": ObjectClass.VEHICLE, "truck": ObjectClass.VEHICLE, "trailer": ObjectClass.VEHICLE,
    "bus": ObjectClass.VEHICLE, "construction_vehicle": ObjectClass.VEHICLE,
    "bicycle": ObjectClass.CYCLIST, "motorcycle": ObjectClass.CYCLIST,
    "pedestrian": ObjectClass.PEDESTRIAN, "traffic_cone": ObjectClass.UNKNOWN,
    "barrier": ObjectClass.UNKNOWN,
}


def category_to_class(name: str) -> ObjectClass:
    """nuScenes devkit category name (e.g. ``vehicle.bus.rigid``) -> :class:`ObjectClass`."""
    if name in ("vehicle.bicycle", "vehicle.motorcycle"):
        return ObjectClass.CYCLIST
    if name.startswith("vehicle."):
        return ObjectClass.VEHICLE
    if name.startswith("human.pedestrian."):
        return ObjectClass.PEDESTRIAN
    return ObjectClass.UNKNOWN


def pose_matrix(translation: Any, rotation_wxyz: Any) -> np.ndarray:
    """nuScenes ``translation`` + ``rotation`` (w, x, y, z) -> (4, 4) transform."""
    return make_transform(quaternion_to_matrix(np.asarray(rotation_wxyz, np.float64)),
                          np.asarray(translation, np.float64))


def _stamp_from_name(path: Path) -> int | None:
    match = re.search(r"__(\d{16})\.", path.name)
    return int(match.group(1)) * 1000 if match else None


def _sensor_from_name(path: Path) -> str | None:
    match = re.search(r"__([A-Z_]+)__\d+\.", path.name)
    return match.group(1) if match else None


# --------------------------------------------------------------------------------------------
# Radar
# --------------------------------------------------------------------------------------------

def read_radar_pcd(path: str | os.PathLike, calibration: Calibration | None = None,
                   stamp_ns: int | None = None, T_ref_sensor: np.ndarray | None = None
                   ) -> RadarScan:
    """Read a nuScenes radar ``.pcd`` (binary) into a :class:`RadarScan`.

    Args:
        path: the file; its name gives the sensor and stamp when they are not passed.
        calibration: the radar's calibration (``T_vehicle_sensor``); None keeps the points in
            the sensor frame (the standalone file carries no calibration).
        stamp_ns: scan stamp; default: the microseconds in the file name.
        T_ref_sensor: overrides ``calibration.T_vehicle_sensor`` as the transform applied, e.g.
            to move a scan into the ego frame of another time.

    Raises:
        DataError: not a binary PCD, unexpected fields, or truncated data.
    """
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror or exc}", source=str(path)) from None
    name = calibration.sensor_name if calibration is not None else (
        _sensor_from_name(path) or "radar")
    stamp = stamp_ns if stamp_ns is not None else (_stamp_from_name(path) or 0)
    return parse_radar_pcd(blob, name, stamp, calibration, T_ref_sensor, str(path))


def parse_radar_pcd(blob: bytes, sensor_name: str, stamp_ns: int,
                    calibration: Calibration | None = None,
                    T_ref_sensor: np.ndarray | None = None,
                    source: str = "pcd") -> RadarScan:
    """The bytes of a nuScenes radar ``.pcd`` -> :class:`RadarScan` (see
    :func:`read_radar_pcd`; ``source`` names the file in errors).

    Raises:
        DataError: not a binary PCD, unexpected fields, a bad point count, or truncated data.
    """
    header, data = _split_pcd(blob, source)
    fields = tuple(header.get("FIELDS", []))
    if fields != RADAR_FIELDS:
        raise DataError(f"unexpected PCD fields {list(fields)}; expected the nuScenes radar "
                        f"fields {list(RADAR_FIELDS)}", source=source)
    dtype = _pcd_dtype(header, source)
    points_text = header.get("POINTS", [])
    try:
        n = int(points_text[0])
    except (IndexError, ValueError):
        raise DataError(f"PCD POINTS must be a count, got {points_text}", source=source) from None
    if n < 0:
        raise DataError(f"PCD POINTS must be >= 0, got {n}", source=source)
    if len(data) < n * dtype.itemsize:
        raise DataError(f"truncated PCD data: {len(data)} bytes for {n} points of "
                        f"{dtype.itemsize} bytes", source=source)
    rec = np.frombuffer(data, dtype=dtype, count=n)
    xyz = np.stack([rec["x"], rec["y"], rec["z"]], axis=1).astype(np.float64)
    distance = np.maximum(np.hypot(xyz[:, 0], xyz[:, 1]), 1e-6)
    ux, uy = xyz[:, 0] / distance, xyz[:, 1] / distance
    doppler = rec["vx"] * ux + rec["vy"] * uy
    doppler_comp = rec["vx_comp"] * ux + rec["vy_comp"] * uy
    velocity = np.stack([rec["vx_comp"], rec["vy_comp"], np.zeros(n)], axis=1).astype(np.float64)
    T = T_ref_sensor if T_ref_sensor is not None else (
        calibration.T_vehicle_sensor if calibration is not None else np.eye(4))
    xyz = xyz @ T[:3, :3].T + T[:3, 3]
    velocity = velocity @ T[:3, :3].T
    points = np.column_stack([xyz, doppler, doppler_comp, rec["rcs"], velocity[:, :2],
                              rec["dyn_prop"]]).astype(np.float32)
    return RadarScan(sensor_name, stamp_ns, points, RADAR_COLUMNS, calibration)


def _split_pcd(blob: bytes, source: str) -> tuple[dict[str, list[str]], bytes]:
    header: dict[str, list[str]] = {}
    pos = 0
    while True:
        end = blob.find(b"\n", pos)
        if end < 0:
            raise DataError("PCD header without a DATA line", source=source)
        line = blob[pos:end].decode("ascii", errors="replace").strip()
        pos = end + 1
        if not line or line.startswith("#"):
            continue
        key, *values = line.split()
        header[key.upper()] = values
        if key.upper() == "DATA":
            if values != ["binary"]:
                raise DataError(f"only binary PCD data is supported, got {values}",
                                source=source)
            return header, blob[pos:]


def _pcd_dtype(header: dict[str, list[str]], source: str) -> np.dtype:
    fields, sizes, types = header["FIELDS"], header.get("SIZE", []), header.get("TYPE", [])
    counts = header.get("COUNT", ["1"] * len(fields))
    if not len(fields) == len(sizes) == len(types) == len(counts) or set(counts) != {"1"}:
        raise DataError("PCD FIELDS/SIZE/TYPE/COUNT disagree", source=source)
    try:
        return np.dtype([(f, _PCD_TYPES[(t, int(s))]) for f, s, t in zip(fields, sizes, types)])
    except (KeyError, ValueError):
        raise DataError(f"unsupported PCD field types {list(zip(types, sizes))}",
                        source=source) from None


# --------------------------------------------------------------------------------------------
# Lidar and cameras
# --------------------------------------------------------------------------------------------

def read_lidar_bin(path: str | os.PathLike) -> np.ndarray:
    """``.pcd.bin`` -> (N, 5) float32 x, y, z, intensity, ring (sensor frame)."""
    data = _read_floats(path)
    if data.size % LIDAR_FLOATS_PER_POINT:
        raise DataError(f"{data.size} floats is not a multiple of {LIDAR_FLOATS_PER_POINT}",
                        source=str(path))
    return data.reshape(-1, LIDAR_FLOATS_PER_POINT)


def _read_floats(path: str | os.PathLike) -> np.ndarray:
    try:
        return np.fromfile(path, dtype="<f4")
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror or exc}", source=str(path)) from None


def _transform(points: np.ndarray, T: np.ndarray) -> np.ndarray:
    out = points.copy()
    out[:, :3] = (points[:, :3].astype(np.float64) @ T[:3, :3].T + T[:3, 3]).astype(np.float32)
    return out


def _camera(name: str, path: Path, stamp_ns: int, K: np.ndarray, T_vehicle_optical: np.ndarray,
            size: tuple[int, int] | None = None) -> CameraImage:
    from PIL import Image

    try:
        encoded = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {name} image: {exc.strerror or exc}",
                        source=str(path)) from None
    if size is None:
        with Image.open(io.BytesIO(encoded)) as img:          # header only
            size = img.size
    calib = Calibration(name, T_vehicle_optical, np.asarray(K, np.float64), np.zeros(5),
                        int(size[0]), int(size[1]), CameraConvention.OPTICAL)
    return CameraImage(name, stamp_ns, calib, encoded=encoded)


def _boxes_to_vehicle(boxes: np.ndarray, velocities: np.ndarray, T: np.ndarray) -> tuple:
    """(N, 7) boxes and (N, 2) velocities in a sensor frame -> vehicle frame via ``T``."""
    out = boxes.astype(np.float64).copy()
    out[:, :3] = boxes[:, :3] @ T[:3, :3].T + T[:3, 3]
    out[:, 6] = wrap_heading(boxes[:, 6] + yaw_of(T))
    v = np.column_stack([velocities, np.zeros(len(velocities))]) @ T[:3, :3].T
    return out.astype(np.float32), v[:, :2].astype(np.float32)


# --------------------------------------------------------------------------------------------
# mmdet3d info files
# --------------------------------------------------------------------------------------------

class NuScenesInfoReader:
    """Frames described by an mmdet3d (v1.x, ``data_list``) nuScenes info ``.pkl``.

    The file is read with :mod:`perception.data.safe_pickle` (builtins and NumPy only). Data
    files are looked up under ``data_root`` as named, then under ``samples/<SENSOR>/`` and
    ``sweeps/<SENSOR>/`` (the devkit layout). Boxes in these files are in the LIDAR_TOP frame
    with the centre at mid-height (mmdet3d loads them with origin (0.5, 0.5, 0.5)).
    """

    def __init__(self, pkl_path: str | os.PathLike, data_root: str | os.PathLike | None = None,
                 skip_missing_cameras: bool = False):
        self.path = Path(pkl_path)
        self.data_root = Path(data_root) if data_root is not None else self.path.parent
        self.skip_missing_cameras = skip_missing_cameras
        info = safe_pickle.load_file(self.path)
        if not isinstance(info, dict) or not isinstance(info.get("data_list"), list):
            raise DataError("not an mmdet3d v1.x info file (no data_list)", source=str(self.path))
        try:
            meta = info.get("metainfo") or {}
            categories = meta.get("categories") or {
                n: i for i, n in enumerate(meta.get("CLASSES", ()))}
            if not categories:
                categories = {name: i for i, name in enumerate(MMDET3D_CLASSES)}
            self.class_by_label = {int(i): MMDET3D_CLASSES.get(n, ObjectClass.UNKNOWN)
                                   for n, i in categories.items()}
        except _MALFORMED as exc:
            raise DataError(f"malformed metainfo: {type(exc).__name__}: {exc}",
                            source=str(self.path)) from None
        self.entries: list[dict] = info["data_list"]

    def __len__(self) -> int:
        return len(self.entries)

    def _find(self, name: str, sensor: str, index: int) -> Path | None:
        for candidate in (self.data_root / name, self.data_root / "samples" / sensor / name,
                          self.data_root / "sweeps" / sensor / name):
            if candidate.is_file():
                return candidate
        if sensor.startswith("CAM") and self.skip_missing_cameras:
            return None
        raise DataError(f"{sensor} file {name!r} not found under {self.data_root}",
                        source=str(self.path), index=index)

    def __getitem__(self, i: int) -> SensorFrame:
        entry = self.entries[i]
        try:
            return self._frame(entry, i)
        except _MALFORMED as exc:
            raise DataError(f"malformed info entry: {type(exc).__name__}: {exc}",
                            source=str(self.path), index=i) from None

    def _frame(self, entry: dict, i: int) -> SensorFrame:
        stamp_ns = int(round(float(entry["timestamp"]) * 1e6)) * 1000
        lidar_info = entry["lidar_points"]
        T_ego_lidar = np.asarray(lidar_info["lidar2ego"], np.float64)
        points = read_lidar_bin(self._find(lidar_info["lidar_path"], "LIDAR_TOP", i))
        lidar = LidarSweep("LIDAR_TOP", stamp_ns, _transform(points, T_ego_lidar), LIDAR_COLUMNS,
                           calibration=Calibration("LIDAR_TOP", T_ego_lidar))
        cameras = {}
        for name, cam in entry.get("images", {}).items():
            path = self._find(cam["img_path"], name, i) if cam.get("img_path") else None
            if path is None:
                continue
            cam_stamp = int(round(float(cam["timestamp"]) * 1e6)) * 1000
            cameras[name] = _camera(name, path, cam_stamp,
                                    np.asarray(cam["cam2img"], np.float64)[:3, :3],
                                    np.asarray(cam["cam2ego"], np.float64))
        return SensorFrame(stamp_ns, str(entry.get("token", self.path.stem)), i, lidar, cameras,
                           ego_pose=EgoPose(stamp_ns, np.asarray(entry["ego2global"])),
                           boxes=self._boxes(entry.get("instances", []), T_ego_lidar),
                           source="nuscenes")

    def _boxes(self, instances: list[dict], T_ego_lidar: np.ndarray) -> Boxes3D:
        if not instances:
            return Boxes3D.empty()
        boxes = np.array([inst["bbox_3d"][:7] for inst in instances], np.float64)
        velocity = np.nan_to_num(np.array([inst.get("velocity", [0.0, 0.0])[:2]
                                           for inst in instances], np.float64))
        boxes, velocity = _boxes_to_vehicle(boxes, velocity, T_ego_lidar)
        labels = np.array([self.class_by_label.get(int(inst.get("bbox_label_3d", -1)),
                                                   ObjectClass.UNKNOWN)
                           for inst in instances], np.int32)
        num_points = np.array([int(inst.get("num_lidar_pts", 0)) for inst in instances],
                              np.int32)
        return Boxes3D(boxes, labels, velocities=velocity, num_points=num_points)


# --------------------------------------------------------------------------------------------
# Devkit layout
# --------------------------------------------------------------------------------------------

# What reading a malformed table or info entry raises from plain Python and NumPy (a missing
# key, a value of the wrong type or shape, a singular matrix): reported as one DataError.
_MALFORMED = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError,
              np.linalg.LinAlgError)

_TABLES = ("sample", "sample_data", "calibrated_sensor", "ego_pose", "sample_annotation",
           "instance", "category", "sensor")


class NuScenesDevkit:
    """Samples of a nuScenes release in the devkit layout (``<dataroot>/<version>/*.json``).

    ``reader[i]`` gives sample ``i`` (table order) as a SensorFrame in the ego frame of its
    LIDAR_TOP key frame: the key-frame sweep plus ``sweeps`` earlier sweeps (each moved through
    the world frame into that ego frame, with a ``time_offset_s`` column), the six cameras, the
    radars, and the annotations.
    """

    def __init__(self, dataroot: str | os.PathLike, version: str = "v1.0-mini",
                 sweeps: int = 0):
        self.dataroot = Path(dataroot)
        self.sweeps = sweeps
        table_dir = self.dataroot / version
        self.tables = {name: self._load(table_dir / f"{name}.json") for name in _TABLES}
        try:
            self._index()
        except _MALFORMED as exc:
            raise DataError(f"malformed nuScenes tables: {type(exc).__name__}: {exc}",
                            source=str(table_dir)) from None

    def _index(self) -> None:
        self.by_token = {name: {row["token"]: row for row in rows}
                         for name, rows in self.tables.items()}
        self.samples = self.tables["sample"]
        self.key_data: dict[str, dict[str, dict]] = {}
        for sd in self.tables["sample_data"]:
            if sd.get("is_key_frame"):
                self.key_data.setdefault(sd["sample_token"], {})[self._channel(sd)] = sd
        self.annotations: dict[str, list[dict]] = {}
        for ann in self.tables["sample_annotation"]:
            self.annotations.setdefault(ann["sample_token"], []).append(ann)

    @staticmethod
    def _load(path: Path) -> list[dict]:
        if not path.is_file():
            raise DataError("missing nuScenes table", source=str(path))
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise DataError(f"invalid JSON: {exc}", source=str(path)) from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise DataError("a nuScenes table must be a JSON list of objects",
                            source=str(path))
        return rows

    def _channel(self, sd: dict) -> str:
        calib = self.by_token["calibrated_sensor"].get(sd["calibrated_sensor_token"])
        if calib is None:
            raise CalibrationError(f"{self.dataroot}: sample_data {sd['token']} has no "
                                   f"calibrated_sensor")
        return self.by_token["sensor"][calib["sensor_token"]]["channel"]

    def __len__(self) -> int:
        return len(self.samples)

    def _T_world_ego(self, sd: dict) -> np.ndarray:
        pose = self.by_token["ego_pose"][sd["ego_pose_token"]]
        return pose_matrix(pose["translation"], pose["rotation"])

    def _T_ego_sensor(self, sd: dict) -> np.ndarray:
        calib = self.by_token["calibrated_sensor"][sd["calibrated_sensor_token"]]
        return pose_matrix(calib["translation"], calib["rotation"])

    def _T_ref_sensor(self, sd: dict, T_ref_world: np.ndarray) -> np.ndarray:
        return T_ref_world @ self._T_world_ego(sd) @ self._T_ego_sensor(sd)

    def __getitem__(self, i: int) -> SensorFrame:
        sample = self.samples[i]
        try:
            return self._sample(sample, i)
        except _MALFORMED as exc:
            raise DataError(f"malformed sample {sample.get('token')!r}: "
                            f"{type(exc).__name__}: {exc}", source=str(self.dataroot),
                            index=i) from None

    def _sample(self, sample: dict, i: int) -> SensorFrame:
        data = self.key_data.get(sample["token"], {})
        if "LIDAR_TOP" not in data:
            raise DataError(f"sample {sample['token']} has no LIDAR_TOP key frame",
                            source=str(self.dataroot), index=i)
        ref = data["LIDAR_TOP"]
        T_world_ref = self._T_world_ego(ref)
        T_ref_world = invert_transform(T_world_ref)
        stamp_ns = int(ref["timestamp"]) * 1000
        cameras = {ch: self._camera(sd, ch, T_ref_world) for ch, sd in data.items()
                   if ch.startswith("CAM_")}
        radars = {ch: self._radar(sd, ch, T_ref_world) for ch, sd in data.items()
                  if ch.startswith("RADAR_")}
        return SensorFrame(stamp_ns, sample.get("scene_token", "nuscenes"), i,
                           self._lidar(ref, T_ref_world), cameras, radars,
                           EgoPose(stamp_ns, T_world_ref), self._boxes(sample, T_ref_world),
                           source="nuscenes")

    def _lidar(self, ref: dict, T_ref_world: np.ndarray) -> LidarSweep:
        parts, offsets = [], []
        sd = ref
        for _ in range(self.sweeps + 1):
            points = read_lidar_bin(self.dataroot / sd["filename"])
            parts.append(_transform(points, self._T_ref_sensor(sd, T_ref_world)))
            offsets.append(np.full(len(points), (sd["timestamp"] - ref["timestamp"]) * 1e-6,
                                   np.float32))
            if not sd.get("prev"):
                break
            sd = self.by_token["sample_data"][sd["prev"]]
        points = np.column_stack([np.concatenate(parts), np.concatenate(offsets)])
        return LidarSweep("LIDAR_TOP", int(ref["timestamp"]) * 1000, points,
                          LIDAR_COLUMNS + ("time_offset_s",),
                          calibration=Calibration("LIDAR_TOP", self._T_ego_sensor(ref)))

    def _camera(self, sd: dict, channel: str, T_ref_world: np.ndarray) -> CameraImage:
        calib = self.by_token["calibrated_sensor"][sd["calibrated_sensor_token"]]
        K = np.asarray(calib.get("camera_intrinsic") or [], np.float64)
        if K.shape != (3, 3):
            raise CalibrationError(f"{self.dataroot}: {channel} calibrated_sensor has no 3x3 "
                                   f"camera_intrinsic")
        size = (sd["width"], sd["height"]) if sd.get("width") else None
        return _camera(channel, self.dataroot / sd["filename"], int(sd["timestamp"]) * 1000, K,
                       self._T_ref_sensor(sd, T_ref_world), size)

    def _radar(self, sd: dict, channel: str, T_ref_world: np.ndarray) -> RadarScan:
        calib = Calibration(channel, self._T_ego_sensor(sd))
        return read_radar_pcd(self.dataroot / sd["filename"], calib, int(sd["timestamp"]) * 1000,
                              T_ref_sensor=self._T_ref_sensor(sd, T_ref_world))

    def _velocity(self, ann: dict) -> np.ndarray:
        """World-frame (vx, vy) from the neighbouring annotations (as the devkit), or 0."""
        anns = self.by_token["sample_annotation"]
        prev, nxt = anns.get(ann.get("prev", "")), anns.get(ann.get("next", ""))
        first, last = prev or ann, nxt or ann
        if first is last:
            return np.zeros(2)
        t0 = self.by_token["sample"][first["sample_token"]]["timestamp"] * 1e-6
        t1 = self.by_token["sample"][last["sample_token"]]["timestamp"] * 1e-6
        if t1 <= t0:
            return np.zeros(2)
        moved = np.asarray(last["translation"][:2]) - np.asarray(first["translation"][:2])
        return moved / (t1 - t0)

    def _boxes(self, sample: dict, T_ref_world: np.ndarray) -> Boxes3D:
        anns = self.annotations.get(sample["token"], [])
        if not anns:
            return Boxes3D.empty()
        boxes = np.zeros((len(anns), 7))
        for k, ann in enumerate(anns):
            w, l, h = ann["size"]
            T_world_box = pose_matrix(ann["translation"], ann["rotation"])
            boxes[k] = [*ann["translation"], l, w, h, yaw_of(T_world_box)]
        velocity = np.array([self._velocity(ann) for ann in anns])
        boxes, velocity = _boxes_to_vehicle(boxes, velocity, T_ref_world)
        categories = [self.by_token["category"][self.by_token["instance"][a["instance_token"]]
                                                ["category_token"]]["name"] for a in anns]
        return Boxes3D(boxes, np.array([category_to_class(c) for c in categories], np.int32),
                       ids=np.array([a["instance_token"] for a in anns], dtype=str),
                       velocities=velocity,
                       num_points=np.array([a.get("num_lidar_pts", 0) for a in anns], np.int32))

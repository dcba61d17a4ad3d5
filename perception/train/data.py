"""Training and validation frames: the simulator (cached on disk as .npz), converted Waymo
segments, or nuScenes; wrapped as torch datasets of :class:`SensorFrame`.

The simulator cache stores plain arrays (``np.savez``, loaded with ``allow_pickle=False``);
a cache file is named by preset, seed and frame index, so any run with the same data config
reuses it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from ..errors import ConfigError, DataError
from ..eval.frames import FrameKey
from ..types import (Boxes3D, Calibration, CameraImage, EgoPose, LidarSweep, RadarScan,
                     SensorFrame)
from .config import DataConfig


class FrameDataset(Dataset):
    """``len()`` frames; item i is ``transform(frame_i)`` (a :class:`SensorFrame`).

    With ``radar_scans > 1`` (``lidar_sweeps > 1``) the radar scans (lidar sweeps) of up to
    ``radar_scans - 1`` (``lidar_sweeps - 1``) previous items of the same sequence are added to
    frame i first (:func:`accumulate_radar`, :func:`accumulate_lidar`).
    """

    def __init__(self, load: Callable[[int], SensorFrame], length: int,
                 transform: Callable[[SensorFrame], SensorFrame] | None = None,
                 radar_scans: int = 1, lidar_sweeps: int = 1):
        self.load = load
        self.length = length
        self.transform = transform
        self.radar_scans = radar_scans
        self.lidar_sweeps = lidar_sweeps

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> SensorFrame:
        if not 0 <= i < self.length:
            raise IndexError(i)
        frame = self.load(i)
        history = max(self.radar_scans, self.lidar_sweeps) - 1
        if history > 0:
            previous = []
            for j in range(i - 1, max(-1, i - 1 - history), -1):
                earlier = self.load(j)
                if earlier.sequence_id != frame.sequence_id or earlier.stamp_ns >= frame.stamp_ns:
                    break
                previous.append(earlier)
            radar_from = accumulate_radar(frame, previous[:self.radar_scans - 1])
            frame = accumulate_lidar(radar_from, previous[:self.lidar_sweeps - 1])
        return self.transform(frame) if self.transform is not None else frame


def accumulate_lidar(frame: SensorFrame, previous: Sequence[SensorFrame]) -> SensorFrame:
    """``frame`` whose sweep also holds the points of the ``previous`` frames' sweeps (newest
    first), moved through the ego poses into the current vehicle frame, with
    ``time_offset_s`` relative to the current sweep's stamp (the column is added if absent).
    Sweeps with other columns or without ego poses are skipped."""
    if frame.ego_pose is None or frame.lidar is None or not previous:
        return frame
    sweep = frame.lidar
    columns = sweep.columns if "time_offset_s" in sweep.columns else sweep.columns + (
        "time_offset_s",)
    t_col = columns.index("time_offset_s")

    def with_time(points: np.ndarray, cols: tuple[str, ...], dt_s: float) -> np.ndarray:
        out = np.zeros((points.shape[0], len(columns)), np.float32)
        out[:, :len(cols)] = points
        out[:, t_col] = (points[:, cols.index("time_offset_s")] if "time_offset_s" in cols
                         else 0.0) + dt_s
        return out

    parts = [with_time(sweep.points, sweep.columns, 0.0)]
    T_vehicle_world = np.linalg.inv(frame.ego_pose.T_world_vehicle)
    for earlier in previous:
        old = earlier.lidar
        if earlier.ego_pose is None or old is None or old.columns != sweep.columns:
            continue
        T = T_vehicle_world @ earlier.ego_pose.T_world_vehicle
        pts = with_time(old.points, old.columns, (int(old.stamp_ns) - int(sweep.stamp_ns)) * 1e-9)
        pts[:, :3] = (old.points[:, :3].astype(np.float64) @ T[:3, :3].T
                      + T[:3, 3]).astype(np.float32)
        parts.append(pts)
    merged = dataclasses.replace(sweep, points=np.concatenate(parts), columns=columns,
                                 laser_id=None, return_index=None)
    return dataclasses.replace(frame, lidar=merged)


def accumulate_radar(frame: SensorFrame, previous: Sequence[SensorFrame]) -> SensorFrame:
    """``frame`` plus the radar scans of ``previous`` frames (newest first), moved into the
    vehicle frame of ``frame`` through the ego poses (points, velocity columns and the
    sensor's calibration). Each older scan keeps its own ``stamp_ns``, so its points get a
    negative ``dt`` in the batch, and is named ``<sensor>@-k``. Frames without ego poses are
    skipped (their scans cannot be placed)."""
    if frame.ego_pose is None or not previous:
        return frame
    radars = dict(frame.radars)
    T_vehicle_world = np.linalg.inv(frame.ego_pose.T_world_vehicle)
    for k, earlier in enumerate(previous, start=1):
        if earlier.ego_pose is None:
            continue
        T = T_vehicle_world @ earlier.ego_pose.T_world_vehicle
        for name, scan in earlier.radars.items():
            pts = scan.points.copy()
            pts[:, :3] = (scan.points[:, :3].astype(np.float64) @ T[:3, :3].T
                          + T[:3, 3]).astype(np.float32)
            cols = scan.columns
            if "vx_comp" in cols and "vy_comp" in cols:
                i, j = cols.index("vx_comp"), cols.index("vy_comp")
                v = np.stack([scan.points[:, i], scan.points[:, j],
                              np.zeros(len(scan))], 1) @ T[:3, :3].T
                pts[:, i], pts[:, j] = v[:, 0], v[:, 1]
            calib = scan.calibration
            if calib is not None:
                calib = dataclasses.replace(calib, sensor_name=f"{name}@-{k}",
                                            T_vehicle_sensor=T @ calib.T_vehicle_sensor)
            key = f"{name}@-{k}"
            radars[key] = dataclasses.replace(scan, sensor_name=key, points=pts,
                                              calibration=calib)
    return dataclasses.replace(frame, radars=radars)


class SimFrames:
    """Simulator frames ``(seed, k * stride)`` for the given seeds, generated once and cached."""

    def __init__(self, preset: str, seeds: Sequence[int], frames_per_seed: int, stride: int,
                 cache_dir: str | os.PathLike | None):
        self.preset = preset
        self.items = [(int(s), k * stride) for s in seeds for k in range(frames_per_seed)]
        tag = hashlib.sha1(str(preset).encode()).hexdigest()[:8]
        self.cache = Path(cache_dir) / f"{Path(str(preset)).stem}-{tag}" if cache_dir else None
        self._sims: dict[int, object] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __call__(self, i: int) -> SensorFrame:
        seed, k = self.items[i]
        path = self.cache / f"seed{seed}" / f"{k:06d}.npz" if self.cache is not None else None
        if path is not None and path.is_file():
            return load_frame_npz(path)
        frame = self._simulator(seed).frame(k)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.stem + f".{os.getpid()}.tmp.npz")
            save_frame_npz(tmp, frame)
            os.replace(tmp, path)  # atomic: concurrent ranks never read half a file
        return frame

    def _simulator(self, seed: int):
        if seed not in self._sims:
            from ..data.sim import Simulator
            self._sims[seed] = Simulator(self.preset, seed=seed)
        return self._sims[seed]


def build_dataset(config: DataConfig, split: str,
                  transform: Callable[[SensorFrame], SensorFrame] | None = None) -> FrameDataset:
    """The ``train`` or ``val`` frames of ``config``."""
    if split not in ("train", "val"):
        raise ConfigError(f"split: expected 'train' or 'val', got {split!r}")
    if config.source == "sim":
        seeds = config.train_seeds if split == "train" else config.val_seeds
        frames = SimFrames(config.sim_preset, seeds, config.frames_per_seed, config.frame_stride,
                           config.cache_dir)
        return FrameDataset(frames, len(frames), transform, config.radar_scans,
                            config.lidar_sweeps)
    root = config.train_root if split == "train" else (config.val_root or config.train_root)
    if root is None:
        raise ConfigError(f"data.{split}_root: required for source {config.source!r}")
    if config.source == "waymo":
        from ..data.datasets import WaymoConvertedDataset
        ds = WaymoConvertedDataset(root)
    elif Path(root).suffix == ".pkl":
        # mmdet3d's nuScenes info file (read with a restricted unpickler, never plain pickle).
        from ..data.nuscenes import NuScenesInfoReader
        ds = NuScenesInfoReader(root)
    else:
        from ..data.nuscenes import NuScenesDevkit
        ds = NuScenesDevkit(root, version=config.nuscenes_version, sweeps=config.nuscenes_sweeps)
    return FrameDataset(ds.__getitem__, len(ds), transform, config.radar_scans,
                        config.lidar_sweeps)


def frame_key(frame: SensorFrame) -> FrameKey:
    return FrameKey(frame.sequence_id, int(frame.stamp_ns))


# --------------------------------------------------------------------------------------------
# .npz frame cache (arrays only; loaded without pickle)
# --------------------------------------------------------------------------------------------

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

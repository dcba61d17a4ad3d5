"""Multi-sweep accumulation: earlier lidar sweeps and radar scans moved through the ego poses
into the current vehicle frame.

The same functions serve training (:class:`perception.train.data.FrameDataset` passes the
previous items of a sequence) and online inference (:class:`SweepHistory` keeps the previous
frames of a live stream), so a model trained with ``lidar_sweeps > 1`` or ``radar_scans > 1``
sees the same input online as in training.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Sequence

import numpy as np

from ..types import SensorFrame


class SweepHistory:
    """Online accumulation over a stream of frames of one sequence (newest last).

    ``add(frame)`` returns ``frame`` with the lidar sweeps of up to ``lidar_sweeps - 1`` and
    the radar scans of up to ``radar_scans - 1`` previous frames merged in (exactly what
    training does with the previous items of a sequence). The history restarts when the
    sequence changes or a stamp does not increase (a looped log, a restarted simulator).

    Args:
        lidar_sweeps, radar_scans: sweeps (scans) per frame fed to the model, >= 1.
    """

    def __init__(self, lidar_sweeps: int = 1, radar_scans: int = 1):
        if lidar_sweeps < 1 or radar_scans < 1:
            raise ValueError(f"lidar_sweeps and radar_scans must be >= 1, got {lidar_sweeps}, "
                             f"{radar_scans}")
        self.lidar_sweeps = lidar_sweeps
        self.radar_scans = radar_scans
        self._previous: deque[SensorFrame] = deque(maxlen=max(lidar_sweeps, radar_scans) - 1)

    def reset(self) -> None:
        self._previous.clear()

    def add(self, frame: SensorFrame) -> SensorFrame:
        """The accumulated ``frame``; ``frame`` itself (as received) joins the history."""
        if self._previous.maxlen == 0:
            return frame
        last = self._previous[-1] if self._previous else None
        if last is not None and (last.sequence_id != frame.sequence_id
                                 or last.stamp_ns >= frame.stamp_ns):
            self.reset()
        previous = list(reversed(self._previous))  # newest first
        out = accumulate(frame, previous, self.lidar_sweeps, self.radar_scans)
        self._previous.append(frame)
        return out


def accumulate(frame: SensorFrame, previous: Sequence[SensorFrame], lidar_sweeps: int,
               radar_scans: int) -> SensorFrame:
    """``frame`` with the radar scans of ``previous[:radar_scans - 1]`` and the lidar sweeps
    of ``previous[:lidar_sweeps - 1]`` merged in (``previous``: newest first, same
    sequence, earlier stamps)."""
    merged = accumulate_radar(frame, previous[:radar_scans - 1])
    return accumulate_lidar(merged, previous[:lidar_sweeps - 1])


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
    negative ``dt`` in the batch, and is named ``<sensor>@-k``. A scan already in the frame
    (a radar slower than the frame rate delivers the same scan to consecutive frames) is
    added once. Frames without ego poses are skipped (their scans cannot be placed)."""
    if frame.ego_pose is None or not previous:
        return frame
    radars = dict(frame.radars)
    seen = {(name, scan.stamp_ns) for name, scan in frame.radars.items()}
    T_vehicle_world = np.linalg.inv(frame.ego_pose.T_world_vehicle)
    for k, earlier in enumerate(previous, start=1):
        if earlier.ego_pose is None:
            continue
        T = T_vehicle_world @ earlier.ego_pose.T_world_vehicle
        for name, scan in earlier.radars.items():
            if (name, scan.stamp_ns) in seen:
                continue
            seen.add((name, scan.stamp_ns))
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

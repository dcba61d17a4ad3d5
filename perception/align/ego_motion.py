"""Ego-motion compensation: interpolated ego poses and points moved between vehicle frames.

Lidar points and radar scans are moved into the vehicle frame of a reference stamp:
``p_ref = T_world_vehicle(t_ref)^-1 @ T_world_vehicle(t_point) @ p``, with poses interpolated
(linear translation, slerp rotation) from the ego-pose stream in :class:`PoseBuffer`. A lidar
sweep with a ``time_offset_s`` column is compensated per point (``t_point = stamp +
time_offset_s``; the column is kept), a radar scan per scan (or per point when it has
``time_offset_s``).
"""

from __future__ import annotations

import bisect
import dataclasses

import numpy as np

from ..errors import TimestampError
from ..geometry import (
    invert_transform,
    matrix_to_quaternion,
    quaternions_to_matrices,
    slerp,
)
from ..types import EgoPose, LidarSweep, RadarScan

NS_PER_S = 1_000_000_000
TIME_OFFSET_COLUMN = "time_offset_s"


class PoseBuffer:
    """Bounded, stamp-sorted buffer of ego poses with vectorised interpolation.

    Args:
        max_poses: the oldest poses are dropped beyond this many.
    """

    def __init__(self, max_poses: int = 400):
        if max_poses < 2:
            raise ValueError(f"max_poses must be >= 2, got {max_poses}")
        self.max_poses = max_poses
        self._stamps: list[int] = []
        self._quaternions: list[np.ndarray] = []
        self._translations: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self._stamps)

    def add(self, pose: EgoPose) -> None:
        """Insert ``pose`` in stamp order (a repeated stamp replaces the older pose)."""
        T = pose.T_world_vehicle
        i = bisect.bisect_left(self._stamps, pose.stamp_ns)
        if i < len(self._stamps) and self._stamps[i] == pose.stamp_ns:
            self._quaternions[i] = matrix_to_quaternion(T[:3, :3])
            self._translations[i] = T[:3, 3].copy()
            return
        self._stamps.insert(i, pose.stamp_ns)
        self._quaternions.insert(i, matrix_to_quaternion(T[:3, :3]))
        self._translations.insert(i, T[:3, 3].copy())
        if len(self._stamps) > self.max_poses:
            del self._stamps[0], self._quaternions[0], self._translations[0]

    @property
    def last_stamp_ns(self) -> int:
        """Stamp of the newest pose (IndexError when empty)."""
        return self._stamps[-1]

    def covers(self, first_ns: int, last_ns: int) -> bool:
        """True when ``[first_ns, last_ns]`` lies within the buffered stamps."""
        return bool(self._stamps) and self._stamps[0] <= first_ns and last_ns <= self._stamps[-1]

    def transforms_at(self, stamps_ns: np.ndarray) -> np.ndarray:
        """(M,) int64 stamps -> (M, 4, 4) float64 ``T_world_vehicle``, interpolated.

        Raises:
            TimestampError: a stamp outside the buffered range (no extrapolation).
        """
        stamps_ns = np.asarray(stamps_ns, dtype=np.int64).reshape(-1)
        if not len(stamps_ns):
            return np.zeros((0, 4, 4))
        if not self.covers(int(stamps_ns.min()), int(stamps_ns.max())):
            have = (self._stamps[0], self._stamps[-1]) if self._stamps else None
            raise TimestampError(f"ego poses cover {have}, need [{int(stamps_ns.min())}, "
                                 f"{int(stamps_ns.max())}] ns")
        known = np.asarray(self._stamps, dtype=np.int64)
        quats = np.asarray(self._quaternions)
        trans = np.asarray(self._translations)
        if len(known) == 1:
            lo = hi = np.zeros(len(stamps_ns), dtype=np.int64)
            alpha = np.zeros(len(stamps_ns))
        else:
            lo = np.clip(np.searchsorted(known, stamps_ns, side="right") - 1, 0, len(known) - 2)
            hi = lo + 1
            alpha = (stamps_ns - known[lo]).astype(np.float64) / (known[hi] - known[lo])
        T = np.zeros((len(stamps_ns), 4, 4))
        T[:, :3, :3] = quaternions_to_matrices(slerp(quats[lo], quats[hi], alpha))
        T[:, :3, 3] = trans[lo] + alpha[:, None] * (trans[hi] - trans[lo])
        T[:, 3, 3] = 1.0
        return T

    def pose_at(self, stamp_ns: int) -> EgoPose:
        """Interpolated :class:`EgoPose` at ``stamp_ns`` (no velocities)."""
        return EgoPose(int(stamp_ns), self.transforms_at(np.array([stamp_ns]))[0])

    def window(self, first_ns: int, last_ns: int) -> PoseBuffer:
        """A copy holding the poses that interpolation over ``[first_ns, last_ns]`` uses (the
        last at or before ``first_ns`` to the first at or after ``last_ns``)."""
        lo = max(bisect.bisect_right(self._stamps, first_ns) - 1, 0)
        hi = bisect.bisect_left(self._stamps, last_ns) + 1
        out = PoseBuffer(max(self.max_poses, 2))
        out._stamps = self._stamps[lo:hi]
        out._quaternions = [q.copy() for q in self._quaternions[lo:hi]]
        out._translations = [t.copy() for t in self._translations[lo:hi]]
        return out

    def pose_near(self, stamp_ns: int, max_offset_ns: int) -> EgoPose | None:
        """The pose at ``stamp_ns``: interpolated where the buffer covers it, else the nearest
        buffered pose (with its own stamp) when it lies within ``max_offset_ns``, else None.

        For consumers that get a frame after its poses, where the newest pose may still be
        a few milliseconds short of the frame's stamp.
        """
        stamp_ns = int(stamp_ns)
        if self.covers(stamp_ns, stamp_ns):
            return self.pose_at(stamp_ns)
        if not self._stamps:
            return None
        i = 0 if stamp_ns < self._stamps[0] else len(self._stamps) - 1
        if abs(self._stamps[i] - stamp_ns) > max_offset_ns:
            return None
        return self.pose_at(self._stamps[i])


def compensate_points(points: np.ndarray, point_stamps_ns: np.ndarray | int,
                      target_stamp_ns: int, poses: PoseBuffer) -> np.ndarray:
    """Move points from the vehicle frame at their own stamps into the vehicle frame at
    ``target_stamp_ns``.

    Args:
        points: (N, C) float32, vehicle frame at capture; columns 0..2 are x, y, z (the other
            columns are copied unchanged).
        point_stamps_ns: (N,) int64 capture stamps, or one int for all points.
        target_stamp_ns: the reference stamp.
        poses: ego poses covering the capture stamps and the target.

    Returns:
        (N, C) float32, vehicle frame at ``target_stamp_ns``.

    Raises:
        TimestampError: the poses do not cover the needed stamps.
    """
    stamps = np.broadcast_to(np.asarray(point_stamps_ns, dtype=np.int64), (points.shape[0],))
    unique, inverse = np.unique(stamps, return_inverse=True)  # one transform per capture time
    T_world_target = poses.transforms_at(np.array([target_stamp_ns]))[0]
    T_target_capture = invert_transform(T_world_target) @ poses.transforms_at(unique)
    out = points.copy()
    xyz = points[:, :3].astype(np.float64)
    if len(unique) == 1:
        xyz = xyz @ T_target_capture[0, :3, :3].T + T_target_capture[0, :3, 3]
    else:
        R = T_target_capture[inverse, :3, :3]
        xyz = np.einsum("nij,nj->ni", R, xyz) + T_target_capture[inverse, :3, 3]
    out[:, :3] = xyz.astype(points.dtype)
    return out


def capture_stamps(stamp_ns: int, columns: tuple[str, ...], points: np.ndarray
                    ) -> np.ndarray | int:
    if TIME_OFFSET_COLUMN not in columns:
        return stamp_ns
    offsets_s = points[:, columns.index(TIME_OFFSET_COLUMN)].astype(np.float64)
    return stamp_ns + np.round(offsets_s * NS_PER_S).astype(np.int64)


def capture_range(stamp_ns: int, columns: tuple[str, ...], points: np.ndarray
                   ) -> tuple[int, int]:
    stamps = np.asarray(capture_stamps(stamp_ns, columns, points))
    if stamps.size == 0:
        return stamp_ns, stamp_ns
    return int(stamps.min()), int(stamps.max())


def compensate_sweep(sweep: LidarSweep, target_stamp_ns: int, poses: PoseBuffer) -> LidarSweep:
    """A sweep (per point when it has ``time_offset_s``) in the vehicle frame at
    ``target_stamp_ns``; the stamp becomes ``target_stamp_ns``."""
    stamps = capture_stamps(sweep.stamp_ns, sweep.columns, sweep.points)
    points = compensate_points(sweep.points, stamps, target_stamp_ns, poses)
    return dataclasses.replace(sweep, points=points, stamp_ns=target_stamp_ns)


def compensate_scan(scan: RadarScan, target_stamp_ns: int, poses: PoseBuffer) -> RadarScan:
    """A radar scan in the vehicle frame at ``target_stamp_ns`` (its stamp is kept: the
    Doppler values belong to the capture time)."""
    stamps = capture_stamps(scan.stamp_ns, scan.columns, scan.points)
    return dataclasses.replace(scan, points=compensate_points(scan.points, stamps,
                                                              target_stamp_ns, poses))

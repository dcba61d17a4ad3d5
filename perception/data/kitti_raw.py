"""KITTI raw sequences (``<date>/<date>_drive_<id>_sync``) -> SensorFrame.

Layout (the "synced + rectified" download)::

    <date>/calib_cam_to_cam.txt   P_rect_02, R_rect_00, S_rect_02
    <date>/calib_velo_to_cam.txt  R, T (Velodyne -> camera 0)
    <date>/calib_imu_to_velo.txt  R, T (IMU -> Velodyne)
    <date>/<drive>/velodyne_points/{timestamps.txt, data/0000000000.bin ...}
    <date>/<drive>/image_02/{timestamps.txt, data/0000000000.png ...}       (optional)
    <date>/<drive>/oxts/{timestamps.txt, data/0000000000.txt ...}           (optional)

Frames follow the Velodyne sweeps. As for KITTI object data (:mod:`.kitti`), the vehicle frame
is the Velodyne frame and ``image_02`` uses the same rectified camera-2 calibration. Stamps
are the sweeps' ``timestamps.txt`` times (read as UTC) in ns; an image keeps its own stamp.
Ego poses come from the OXTS GPS/IMU records as the KITTI devkit computes them (Mercator
projection scaled at the first record's latitude, ``R = Rz(yaw) Ry(pitch) Rx(roll)``), moved
to the Velodyne frame and made relative to the first pose. Raw sequences have no box labels
in this layout (``tracklet_labels.xml`` is not read), so frames carry no ``boxes``.
"""

from __future__ import annotations

import datetime as dt
import io
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import CalibrationError, DataError
from ..geometry import invert_transform, make_transform
from ..types import Calibration, CameraImage, EgoPose, LidarSweep, SensorFrame
from .kitti import LIDAR_COLUMNS, KittiCalibration, camera_calibration, read_points

EARTH_RADIUS_M = 6378137.0
CAMERA_NAME = "image_02"
LIDAR_NAME = "velodyne"


def is_kitti_raw(path: str | os.PathLike) -> bool:
    """``path`` is a drive directory (it has ``velodyne_points/data``)."""
    return (Path(path) / "velodyne_points" / "data").is_dir()


def read_timestamps(path: Path) -> list[int]:
    """``timestamps.txt`` (``2011-09-26 13:02:25.964389445`` per line) -> int ns (UTC).

    Raises:
        DataError: a line that is not such a time.
    """
    stamps = []
    for i, line in enumerate(path.read_text().splitlines()):
        line = line.strip()
        if not line:
            continue
        try:
            day, clock = line.split(" ")
            seconds, _, fraction = clock.partition(".")
            base = dt.datetime.fromisoformat(f"{day}T{seconds}").replace(tzinfo=dt.timezone.utc)
            nanos = int((fraction + "000000000")[:9])
        except ValueError:
            raise DataError(f"not a timestamp: {line!r}", source=str(path), index=i) from None
        stamps.append(int(base.timestamp()) * 1_000_000_000 + nanos)
    return stamps


def _key_values(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise CalibrationError(f"{path}: calibration file missing")
    values = {}
    for line in path.read_text().splitlines():
        key, sep, rest = line.partition(":")
        if not sep:
            continue
        try:
            values[key.strip()] = np.array(rest.split(), dtype=np.float64)
        except ValueError:
            continue  # calib_time and other text entries
    return values


def _matrix(values: dict[str, np.ndarray], key: str, shape: tuple[int, int], path: Path
            ) -> np.ndarray:
    if key not in values or values[key].size != shape[0] * shape[1]:
        raise CalibrationError(f"{path}: missing or malformed {key} (expected "
                               f"{shape[0] * shape[1]} numbers)")
    return values[key].reshape(shape)


def _rigid(path: Path) -> np.ndarray:
    """``R`` (9) and ``T`` (3) of a KITTI calibration file -> (4, 4)."""
    values = _key_values(path)
    return make_transform(_matrix(values, "R", (3, 3), path),
                          _matrix(values, "T", (3, 1), path).reshape(3))


def read_raw_calibration(date_dir: Path) -> tuple[KittiCalibration, np.ndarray | None]:
    """The camera-2 calibration and ``T_velo_imu`` (None without ``calib_imu_to_velo.txt``)."""
    cam_path = date_dir / "calib_cam_to_cam.txt"
    cam = _key_values(cam_path)
    T_cam0_velo = _rigid(date_dir / "calib_velo_to_cam.txt")
    calib = KittiCalibration(_matrix(cam, "P_rect_02", (3, 4), cam_path),
                             _matrix(cam, "R_rect_00", (3, 3), cam_path), T_cam0_velo[:3, :4])
    imu_path = date_dir / "calib_imu_to_velo.txt"
    return calib, (_rigid(imu_path) if imu_path.is_file() else None)


def oxts_pose(values: np.ndarray, scale: float) -> np.ndarray:
    """One OXTS record (lat, lon, alt, roll, pitch, yaw, ...) -> (4, 4) ``T_world_imu``."""
    lat, lon, alt, roll, pitch, yaw = (float(v) for v in values[:6])
    tx = scale * lon * np.pi * EARTH_RADIUS_M / 180.0
    ty = scale * EARTH_RADIUS_M * np.log(np.tan((90.0 + lat) * np.pi / 360.0))
    cr, sr, cp, sp, cy, sy = (np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch),
                              np.cos(yaw), np.sin(yaw))
    Rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    Ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    Rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return make_transform(Rz @ Ry @ Rx, np.array([tx, ty, alt]))


class KittiRawReader:
    """Frames of one KITTI raw drive (see the module doc); ``reader[i]`` is sweep ``i``."""

    def __init__(self, drive_dir: str | os.PathLike):
        self.drive = Path(drive_dir)
        if not is_kitti_raw(self.drive):
            raise DataError("not a KITTI raw drive (no velodyne_points/data)",
                            source=str(self.drive))
        self.sweeps = sorted((self.drive / "velodyne_points" / "data").glob("*.bin"))
        self.stamps = read_timestamps(self.drive / "velodyne_points" / "timestamps.txt")
        if len(self.stamps) < len(self.sweeps):
            raise DataError(f"{len(self.sweeps)} sweeps but {len(self.stamps)} timestamps",
                            source=str(self.drive / "velodyne_points"))
        self.calib, self.T_velo_imu = read_raw_calibration(self.drive.parent)
        self.images = self._optional("image_02", "png")
        self.oxts = self._optional("oxts", "txt")
        self._poses = self._read_poses() if self.oxts and self.T_velo_imu is not None else None

    def _optional(self, folder: str, suffix: str) -> tuple[list[Path], list[int]] | None:
        data = self.drive / folder / "data"
        if not data.is_dir():
            return None
        return (sorted(data.glob(f"*.{suffix}")),
                read_timestamps(self.drive / folder / "timestamps.txt"))

    def _read_poses(self) -> list[np.ndarray]:
        files, _ = self.oxts
        records = [np.array(f.read_text().split(), np.float64) for f in files]
        scale = np.cos(records[0][0] * np.pi / 180.0)
        T_imu_velo = invert_transform(self.T_velo_imu)
        poses = [oxts_pose(r, scale) @ T_imu_velo for r in records]
        origin = np.eye(4)
        origin[:3, 3] = -poses[0][:3, 3]  # keep the heading, drop the large Mercator offsets
        return [origin @ T for T in poses]

    @property
    def sequence_id(self) -> str:
        return self.drive.name

    def __len__(self) -> int:
        return len(self.sweeps)

    def __iter__(self) -> Iterator[SensorFrame]:
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, i: int) -> SensorFrame:
        stamp = self.stamps[i]
        points = read_points(self.sweeps[i])
        lidar = LidarSweep(LIDAR_NAME, stamp, points, LIDAR_COLUMNS,
                           calibration=Calibration(LIDAR_NAME, np.eye(4)))
        pose = None
        if self._poses is not None and i < len(self._poses):
            pose = EgoPose(stamp, self._poses[i])
        return SensorFrame(stamp, self.sequence_id, i, lidar, self._camera(i), ego_pose=pose,
                           source="kitti_raw")

    def _camera(self, i: int) -> dict[str, CameraImage]:
        from PIL import Image

        if self.images is None or i >= len(self.images[0]):
            return {}
        encoded = self.images[0][i].read_bytes()
        with Image.open(io.BytesIO(encoded)) as img:  # reads the header only
            width, height = img.size
        calibration = camera_calibration(self.calib, width, height)
        calibration = Calibration(CAMERA_NAME, calibration.T_vehicle_sensor, calibration.K,
                                  calibration.distortion, width, height)
        return {CAMERA_NAME: CameraImage(CAMERA_NAME, self.images[1][i], calibration,
                                         encoded=encoded)}

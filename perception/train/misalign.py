"""Test-time sensor misalignment: what happens to a fusion model when calibration is off or a
sensor lags (docs/fusion.md).

- ``camera_yaw_deg``: every camera's extrinsic rotation is off by this yaw (about the vehicle
  z axis): the model projects image features to the wrong place.
- ``lidar_shift_m``: lidar points are displaced this far along the vehicle x axis (a lidar
  extrinsic error).
- ``camera_lag_s``: the images are the ones captured this long before the frame (a camera
  pipeline that lags), while the model still takes them for current (the first frame of a
  sequence has no earlier image and keeps its own).

Radar and ground truth are left as they are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ..geometry import rotation_z
from ..types import CameraImage, SensorFrame

LAG_HISTORY_FRAMES = 6
"""Earlier frames searched for the lagged images (0.3 s at 20 Hz, 0.6 s at 10 Hz)."""


@dataclass(frozen=True)
class Misalignment:
    """One test-time perturbation (all zero: none)."""

    name: str
    camera_yaw_deg: float = 0.0
    lidar_shift_m: float = 0.0
    camera_lag_s: float = field(default=0.0, metadata={"ge": 0.0})


STANDARD: tuple[Misalignment, ...] = (
    Misalignment("camera_yaw_1deg", camera_yaw_deg=1.0),
    Misalignment("lidar_shift_0.2m", lidar_shift_m=0.2),
    Misalignment("camera_lag_100ms", camera_lag_s=0.1),
    Misalignment("misaligned_all", camera_yaw_deg=1.0, lidar_shift_m=0.2, camera_lag_s=0.1),
)
"""The rows of the misalignment table: each error alone, then all three together."""


def misalign(frame: SensorFrame, m: Misalignment,
             earlier: list[SensorFrame] | None = None) -> SensorFrame:
    """``frame`` with misalignment ``m``; ``earlier`` (newest first, same sequence) supplies
    the lagged images."""
    cameras = dict(frame.cameras)
    if m.camera_lag_s > 0:
        cameras = _lagged(frame, m.camera_lag_s, earlier or [])
    if m.camera_yaw_deg:
        R = rotation_z(np.deg2rad(m.camera_yaw_deg))[:3, :3]
        cameras = {name: _rotated(cam, R) for name, cam in cameras.items()}
    lidar = frame.lidar
    if m.lidar_shift_m and lidar is not None:
        points = lidar.points.copy()
        points[:, 0] += np.float32(m.lidar_shift_m)
        lidar = dataclasses.replace(lidar, points=points)
    return dataclasses.replace(frame, cameras=cameras, lidar=lidar)


def _rotated(cam: CameraImage, R: np.ndarray) -> CameraImage:
    calib = cam.calibration
    T = calib.T_vehicle_sensor.copy()
    T[:3, :3] = R @ T[:3, :3]
    return dataclasses.replace(cam, calibration=dataclasses.replace(calib, T_vehicle_sensor=T))


def _lagged(frame: SensorFrame, lag_s: float, earlier: list[SensorFrame]
            ) -> dict[str, CameraImage]:
    """Each camera's image from the earlier frame stamped closest to ``stamp - lag``, with
    the current image's stamp and calibration (the model is told it is current). The first
    frame of a sequence has no earlier image and keeps its own."""
    if not earlier:
        return dict(frame.cameras)
    target = frame.stamp_ns - int(round(lag_s * 1e9))
    source = min(earlier, key=lambda f: abs(f.stamp_ns - target))
    out = {}
    for name, cam in frame.cameras.items():
        old = source.cameras.get(name)
        out[name] = cam if old is None else dataclasses.replace(
            cam, pixels=np.asarray(old.image), encoded=None)
    return out


def misaligned_loader(load: Callable[[int], SensorFrame],
                      previous: Callable[[int, int], list[SensorFrame]] | None,
                      m: Misalignment) -> Callable[[int], SensorFrame]:
    """A ``load(i)`` for :class:`~perception.train.data.FrameDataset` giving misaligned
    frames."""
    if m.camera_lag_s > 0 and previous is None:
        raise ConfigError(f"{m.name}: camera lag needs a data source with the earlier frames "
                          f"of each sequence (the simulator)")

    def load_misaligned(i: int) -> SensorFrame:
        earlier = previous(i, LAG_HISTORY_FRAMES) if m.camera_lag_s > 0 else None
        return misalign(load(i), m, earlier)

    return load_misaligned

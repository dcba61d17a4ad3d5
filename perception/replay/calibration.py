"""Sensor calibration of a log: from ``/tf_static`` and ``CameraInfo`` in the bag, or from a
YAML file when the bag has none.

The YAML file (``--calibration FILE``) says what ``/tf_static`` and ``CameraInfo`` would::

    vehicle_frame: base_link            # optional; --vehicle-frame wins when given
    transforms:                         # T_parent_child, as on /tf_static
      - parent: base_link
        child: velodyne
        translation: [1.2, 0.0, 1.8]    # metres
        rotation_xyzw: [0, 0, 0, 1]     # or `matrix: [[...4 rows...]]` instead of both
    cameras:                            # intrinsics, by camera name, when there is no CameraInfo
      FRONT: {K: [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], distortion: [k1, k2, p1, p2, k3],
              width: 1920, height: 1080}

Transforms from the bag and from the file are merged (the file's win on a conflict, so it can
correct a bag). A camera's frame is its optical frame (see :mod:`perception.rosmsg.image`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import load_yaml_with_base
from ..errors import CalibrationError, ConfigError, ConversionError, ValidationError
from ..geometry import make_transform, quaternion_to_matrix
from ..rosmsg.image import camera_info_to_calibration
from ..rosmsg.tf import parent_map, resolve_frames, sensor_mounting
from ..types import Calibration, CameraConvention

DEFAULT_VEHICLE_FRAME = "base_link"


@dataclass(frozen=True)
class CameraIntrinsics:
    """Intrinsics of one camera from the calibration file (pixels; plumb_bob distortion)."""

    K: np.ndarray
    distortion: np.ndarray
    width: int
    height: int


@dataclass
class CalibrationFile:
    """What a calibration YAML file holds (see the module doc)."""

    vehicle_frame: str | None = None
    parent_of: dict[str, tuple[str, np.ndarray]] = field(default_factory=dict)
    cameras: dict[str, CameraIntrinsics] = field(default_factory=dict)


def load_calibration_file(path: str | Path) -> CalibrationFile:
    """Read a calibration YAML file.

    Raises:
        ConfigError: unknown keys, a malformed transform or camera, naming the file and key.
    """
    path = Path(path)
    data = load_yaml_with_base(path)
    unknown = set(data) - {"vehicle_frame", "transforms", "cameras"}
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}; expected vehicle_frame, "
                          f"transforms, cameras")
    out = CalibrationFile(data.get("vehicle_frame"))
    for i, item in enumerate(data.get("transforms") or []):
        out.parent_of[str(item.get("child"))] = (str(item.get("parent")),
                                                 _transform(item, f"{path}: transforms[{i}]"))
    for name, item in (data.get("cameras") or {}).items():
        out.cameras[str(name)] = _intrinsics(item, f"{path}: cameras.{name}")
    return out


def _transform(item: Any, where: str) -> np.ndarray:
    try:
        if not isinstance(item, dict) or "parent" not in item or "child" not in item:
            raise ValueError("needs parent and child")
        if "matrix" in item:
            T = np.asarray(item["matrix"], np.float64)
            if T.shape != (4, 4):
                raise ValueError(f"matrix must be 4x4, got shape {T.shape}")
            return T
        x, y, z, w = (float(v) for v in item.get("rotation_xyzw", (0, 0, 0, 1)))
        return make_transform(quaternion_to_matrix(np.array([w, x, y, z])),
                              np.asarray(item.get("translation", (0, 0, 0)), np.float64))
    except (TypeError, ValueError, ValidationError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _intrinsics(item: Any, where: str) -> CameraIntrinsics:
    try:
        return CameraIntrinsics(np.asarray(item["K"], np.float64).reshape(3, 3),
                                np.asarray(item.get("distortion", [0.0] * 5),
                                           np.float64).reshape(5),
                                int(item["width"]), int(item["height"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: expected K (3x3), width, height and optionally "
                          f"distortion (5): {exc}") from None


class CalibrationStore:
    """Transforms into the vehicle frame and camera calibrations, as the log reveals them.

    Args:
        vehicle_frame: the frame everything is converted into.
        file: a calibration file, or None.
    """

    def __init__(self, vehicle_frame: str = DEFAULT_VEHICLE_FRAME,
                 file: CalibrationFile | None = None):
        self.file = file or CalibrationFile()
        self.vehicle_frame = vehicle_frame
        self._bag_parents: dict[str, tuple[str, np.ndarray]] = {}
        self._resolved: dict[str, np.ndarray] = {}
        self._camera_info: dict[str, Any] = {}
        self._cameras: dict[tuple[str, str], Calibration] = {}
        self._resolve()

    def add_tf_static(self, msg: Any, topic: str) -> None:
        """Add the transforms of a ``TFMessage``."""
        self._bag_parents = parent_map(msg.transforms, topic, self._bag_parents)
        self._resolve()

    def add_camera_info(self, name: str, msg: Any) -> None:
        """Remember camera ``name``'s latest ``CameraInfo``."""
        self._camera_info[name] = msg
        self._cameras = {k: v for k, v in self._cameras.items() if k[0] != name}

    def _resolve(self) -> None:
        parents = {**self._bag_parents, **self.file.parent_of}
        self._resolved = resolve_frames(parents, self.vehicle_frame)
        self._resolved[self.vehicle_frame] = np.eye(4)
        self._cameras.clear()

    @property
    def transforms(self) -> dict[str, np.ndarray]:
        """``{frame: T_vehicle_frame}`` of every frame connected to the vehicle frame."""
        return dict(self._resolved)

    def T_vehicle(self, frame_id: str, topic: str) -> np.ndarray | None:
        """Transform from ``frame_id`` to the vehicle frame (None: it is the vehicle frame).

        Raises:
            ConversionError: no chain of transforms connects ``frame_id`` to the vehicle frame.
        """
        if frame_id == self.vehicle_frame:
            return None
        T = self._resolved.get(frame_id)
        if T is None:
            raise ConversionError(
                f"{topic}: no transform from frame {frame_id!r} to the vehicle frame "
                f"{self.vehicle_frame!r} on /tf_static or in the calibration file (known "
                f"frames: {sorted(self._resolved)}); set --vehicle-frame or give "
                f"--calibration")
        return T

    def sensor_calibration(self, name: str, frame_id: str, topic: str) -> Calibration:
        """A lidar's or radar's calibration (its mounting, see
        :func:`~perception.rosmsg.tf.sensor_mounting`).

        Raises:
            ConversionError: no transform from ``frame_id`` (see :meth:`T_vehicle`).
        """
        self.T_vehicle(frame_id, topic)
        return Calibration(name, sensor_mounting(name, frame_id, self._resolved,
                                                 self.vehicle_frame))

    def camera(self, name: str, frame_id: str, topic: str) -> Calibration:
        """Camera ``name``'s calibration for an image in ``frame_id`` (its optical frame).

        Raises:
            CalibrationError: no ``CameraInfo`` yet and no intrinsics in the calibration file.
            ConversionError: no transform from ``frame_id`` (see :meth:`T_vehicle`).
        """
        cached = self._cameras.get((name, frame_id))
        if cached is not None:
            return cached
        T = self.T_vehicle(frame_id, topic)
        T = np.eye(4) if T is None else T
        if name in self._camera_info:
            calibration = camera_info_to_calibration(self._camera_info[name], name, T, topic)
        elif name in self.file.cameras:
            c = self.file.cameras[name]
            calibration = Calibration(name, T, K=c.K, distortion=c.distortion, width=c.width,
                                      height=c.height, camera_convention=CameraConvention.OPTICAL)
        else:
            raise CalibrationError(f"{topic}: no CameraInfo for camera {name} yet and no "
                                   f"intrinsics for it in the calibration file")
        self._cameras[(name, frame_id)] = calibration
        return calibration


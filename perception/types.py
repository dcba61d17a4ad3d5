"""Typed data contracts that flow between the stages of the pipeline.

Conventions (see docs/conventions.md):

* Frames: the vehicle frame as Waymo defines it (x forward, y left, z up, metres). Every
  sensor carries ``T_vehicle_sensor`` (4x4, maps sensor-frame points into the vehicle frame).
  The world frame comes from :class:`EgoPose` (``T_world_vehicle``).
* Boxes: ``(x, y, z, length, width, height, heading)`` float32, centre z is the box centre,
  heading in radians counter-clockwise from +x, wrapped to [-pi, pi).
* Time: ``stamp_ns`` int64 nanoseconds everywhere.
* Images: uint8 (H, W, 3) RGB.

All containers are frozen dataclasses of numpy arrays and validate on construction: a bad
shape, dtype, NaN or stamp raises :class:`perception.errors.ValidationError` naming the field.
Use :func:`dataclasses.replace` to derive a modified copy (it re-validates).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._validate import (
    ShapeContext,
    check_array,
    check_name,
    check_rigid_transform,
    check_stamp_ns,
)
from .conventions import BOX_DIM, T_WAYMO_FROM_OPTICAL, wrap_heading
from .errors import CalibrationError, ValidationError
from .image_codec import decode_image

__all__ = [
    "Modality", "ObjectClass", "Difficulty", "TrackState", "CameraConvention",
    "DETECTION_CLASSES", "Calibration", "LidarSweep", "CameraImage", "RollingShutter",
    "RadarScan", "EgoPose", "Boxes3D", "Detections", "Tracks", "SensorFrame",
    "BOX_DIM", "wrap_heading",
]

class Modality(str, enum.Enum):
    LIDAR = "lidar"
    CAMERA = "camera"
    RADAR = "radar"


class ObjectClass(enum.IntEnum):
    """Object types; the values are Waymo's ``Label.Type``."""

    UNKNOWN = 0
    VEHICLE = 1
    PEDESTRIAN = 2
    SIGN = 3
    CYCLIST = 4


DETECTION_CLASSES: tuple[ObjectClass, ...] = (
    ObjectClass.VEHICLE, ObjectClass.PEDESTRIAN, ObjectClass.CYCLIST)
"""The classes the detector and the metrics consider (signs are ignored)."""


class Difficulty(enum.IntEnum):
    """Waymo detection difficulty. ``UNSET`` means: derive it from the lidar point count."""

    UNSET = 0
    LEVEL_1 = 1
    LEVEL_2 = 2


LEVEL_2_MAX_POINTS = 5
"""A box with at most this many lidar points and no explicit difficulty is LEVEL_2."""


class TrackState(enum.IntEnum):
    TENTATIVE = 0
    CONFIRMED = 1
    COASTING = 2


class CameraConvention(str, enum.Enum):
    """Axis convention of a camera's sensor frame.

    ``WAYMO``: x forward (along the optical axis), y left, z up; this is the Waymo camera frame.
    ``OPTICAL``: x right, y down, z forward; this is the OpenCV / ROS ``*_optical_frame``.
    Pixel projection always happens in the optical frame: ``p_optical = R_OPTICAL_WAYMO @
    p_waymo``, see :data:`perception.conventions.R_OPTICAL_FROM_WAYMO`.
    """

    WAYMO = "waymo"
    OPTICAL = "optical"


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


# --------------------------------------------------------------------------------------------
# Calibration and pose
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Calibration:
    """Calibration of one sensor.

    Attributes:
        sensor_name: e.g. ``"TOP"``, ``"FRONT"``, ``"CAM_FRONT"``, ``"RADAR_FRONT"``.
        T_vehicle_sensor: (4, 4) float64 rigid transform, sensor frame -> vehicle frame.
        K: (3, 3) float64 camera intrinsics (pixels) in the optical frame, or None (non-camera).
        distortion: (5,) float64 Brown-Conrady ``(k1, k2, p1, p2, k3)`` (OpenCV order, as Waymo
            stores them), zeros when the image is rectified. None for non-cameras.
        width, height: image size in pixels (cameras only).
        camera_convention: axis convention of the sensor frame (cameras only).
    """

    sensor_name: str
    T_vehicle_sensor: np.ndarray
    K: np.ndarray | None = None
    distortion: np.ndarray | None = None
    width: int | None = None
    height: int | None = None
    camera_convention: CameraConvention = CameraConvention.OPTICAL

    def __post_init__(self) -> None:
        owner = "Calibration"
        check_name(owner, "sensor_name", self.sensor_name)
        _set(self, "T_vehicle_sensor",
             check_rigid_transform(owner, "T_vehicle_sensor", self.T_vehicle_sensor))
        _set(self, "camera_convention", CameraConvention(self.camera_convention))
        if self.K is None:
            if self.distortion is not None or self.width is not None or self.height is not None:
                raise ValidationError(f"{owner}.K: required when distortion or image size is set")
            return
        ctx = ShapeContext(owner)
        K = check_array(ctx, "K", self.K, (3, 3), np.float64)
        if K[0, 0] <= 0 or K[1, 1] <= 0 or not np.allclose(K[2], [0.0, 0.0, 1.0]):
            raise ValidationError(f"{owner}.K: expected [[fx, s, cx], [0, fy, cy], [0, 0, 1]] "
                                  f"with fx, fy > 0, got {K.tolist()}")
        _set(self, "K", K)
        dist = np.zeros(5) if self.distortion is None else self.distortion
        _set(self, "distortion", check_array(ctx, "distortion", dist, (5,), np.float64))
        for name in ("width", "height"):
            size = getattr(self, name)
            if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size <= 0:
                raise ValidationError(f"{owner}.{name}: expected a positive int for a camera, "
                                      f"got {size!r}")
            _set(self, name, int(size))

    @property
    def is_camera(self) -> bool:
        return self.K is not None

    @property
    def T_vehicle_optical(self) -> np.ndarray:
        """(4, 4) transform from the camera's optical frame (x right, y down, z fwd) to vehicle."""
        if not self.is_camera:
            raise CalibrationError(f"{self.sensor_name}: not a camera calibration (K is None)")
        if self.camera_convention is CameraConvention.OPTICAL:
            return self.T_vehicle_sensor
        return self.T_vehicle_sensor @ T_WAYMO_FROM_OPTICAL


@dataclass(frozen=True, eq=False)
class EgoPose:
    """Pose of the vehicle in the world frame at ``stamp_ns``.

    Attributes:
        stamp_ns: int64 ns.
        T_world_vehicle: (4, 4) float64, vehicle frame -> world frame.
        linear_velocity: (3,) float64 m/s in the vehicle frame, or None.
        angular_velocity: (3,) float64 rad/s in the vehicle frame, or None.
    """

    stamp_ns: int
    T_world_vehicle: np.ndarray
    linear_velocity: np.ndarray | None = None
    angular_velocity: np.ndarray | None = None

    def __post_init__(self) -> None:
        owner = "EgoPose"
        _set(self, "stamp_ns", check_stamp_ns(owner, "stamp_ns", self.stamp_ns))
        _set(self, "T_world_vehicle",
             check_rigid_transform(owner, "T_world_vehicle", self.T_world_vehicle))
        ctx = ShapeContext(owner)
        for name in ("linear_velocity", "angular_velocity"):
            value = getattr(self, name)
            if value is not None:
                _set(self, name, check_array(ctx, name, value, (3,), np.float64))


# --------------------------------------------------------------------------------------------
# Sensor data
# --------------------------------------------------------------------------------------------

def _check_columns(owner: str, columns: Any, n_cols: int) -> tuple[str, ...]:
    if not isinstance(columns, (tuple, list)) or not all(isinstance(c, str) for c in columns):
        raise ValidationError(f"{owner}.columns: expected a tuple of column names, got "
                              f"{columns!r}")
    columns = tuple(columns)
    if len(columns) != n_cols:
        raise ValidationError(f"{owner}.columns: {len(columns)} names for {n_cols} point "
                              f"columns")
    if columns[:3] != ("x", "y", "z"):
        raise ValidationError(f"{owner}.columns: must start with ('x', 'y', 'z'), got {columns}")
    if len(set(columns)) != len(columns):
        raise ValidationError(f"{owner}.columns: duplicate names in {columns}")
    return columns


class _PointSet:
    """Column access shared by lidar sweeps and radar scans."""

    points: np.ndarray
    columns: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.points.shape[0])

    @property
    def xyz(self) -> np.ndarray:
        """(N, 3) float32 view of the point coordinates, vehicle frame."""
        return self.points[:, :3]

    def column(self, name: str) -> np.ndarray:
        """(N,) float32 view of the named column."""
        try:
            return self.points[:, self.columns.index(name)]
        except ValueError:
            raise KeyError(f"no column {name!r}; columns are {self.columns}") from None


@dataclass(frozen=True, eq=False)
class LidarSweep(_PointSet):
    """One lidar sweep (possibly several lasers merged), in the vehicle frame.

    Attributes:
        sensor_name: e.g. ``"TOP"`` or ``"lidar"`` for a merged multi-laser sweep.
        stamp_ns: int64 ns, the sweep's reference time (Waymo: frame timestamp).
        points: (N, C) float32, vehicle frame. Columns start with x, y, z.
        columns: names of the C columns, e.g. ``("x", "y", "z", "intensity", "elongation")``.
            ``"time_offset_s"``, when present, is each point's time relative to ``stamp_ns``.
        laser_id: (N,) int8 laser index (Waymo ``LaserName`` values), or None.
        return_index: (N,) int8, 0 for first and 1 for second return, or None.
        calibration: the (main) lidar's calibration, or None when unknown.

    Non-finite points are refused; drop them at the source with :func:`finite_points`.
    """

    sensor_name: str
    stamp_ns: int
    points: np.ndarray
    columns: tuple[str, ...] = ("x", "y", "z", "intensity")
    laser_id: np.ndarray | None = None
    return_index: np.ndarray | None = None
    calibration: Calibration | None = None

    def __post_init__(self) -> None:
        owner = "LidarSweep"
        check_name(owner, "sensor_name", self.sensor_name)
        _set(self, "stamp_ns", check_stamp_ns(owner, "stamp_ns", self.stamp_ns))
        ctx = ShapeContext(owner)
        _set(self, "points", check_array(ctx, "points", self.points, ("N", "C"), np.float32))
        _set(self, "columns", _check_columns(owner, self.columns, self.points.shape[1]))
        for name in ("laser_id", "return_index"):
            value = getattr(self, name)
            if value is not None:
                _set(self, name, check_array(ctx, name, value, ("N",), np.int8))
        _check_optional_type(owner, "calibration", self.calibration, Calibration)


@dataclass(frozen=True, eq=False)
class RadarScan(_PointSet):
    """One radar scan, in the vehicle frame.

    Attributes:
        sensor_name: e.g. ``"RADAR_FRONT"``.
        stamp_ns: int64 ns.
        points: (N, C) float32 detections, vehicle frame. Columns start with x, y, z. Standard
            names: ``doppler_mps`` (raw radial velocity, positive away from the sensor),
            ``doppler_compensated_mps`` (radial velocity with ego motion removed), ``rcs_dbsm``,
            ``vx_comp``/``vy_comp`` (m/s, vehicle frame, where the radar provides them),
            ``time_offset_s``.
        calibration: the radar's calibration, or None.
    """

    sensor_name: str
    stamp_ns: int
    points: np.ndarray
    columns: tuple[str, ...] = ("x", "y", "z", "doppler_mps", "doppler_compensated_mps",
                                "rcs_dbsm")
    calibration: Calibration | None = None

    def __post_init__(self) -> None:
        owner = "RadarScan"
        check_name(owner, "sensor_name", self.sensor_name)
        _set(self, "stamp_ns", check_stamp_ns(owner, "stamp_ns", self.stamp_ns))
        ctx = ShapeContext(owner)
        _set(self, "points", check_array(ctx, "points", self.points, ("N", "C"), np.float32))
        _set(self, "columns", _check_columns(owner, self.columns, self.points.shape[1]))
        _check_optional_type(owner, "calibration", self.calibration, Calibration)


@dataclass(frozen=True, eq=False)
class RollingShutter:
    """Rolling-shutter timing of one camera image (Waymo ``CameraImage`` fields).

    Attributes:
        direction: readout direction, e.g. ``"LEFT_TO_RIGHT"``, ``"TOP_TO_BOTTOM"``,
            ``"GLOBAL_SHUTTER"``.
        shutter_s: exposure duration of one row/column, seconds.
        trigger_stamp_ns: when the exposure was triggered.
        readout_done_stamp_ns: when the readout finished.
    """

    direction: str
    shutter_s: float
    trigger_stamp_ns: int
    readout_done_stamp_ns: int

    def __post_init__(self) -> None:
        owner = "RollingShutter"
        check_name(owner, "direction", self.direction)
        for name in ("trigger_stamp_ns", "readout_done_stamp_ns"):
            _set(self, name, check_stamp_ns(owner, name, getattr(self, name)))
        if not np.isfinite(self.shutter_s) or self.shutter_s < 0:
            raise ValidationError(f"{owner}.shutter_s: expected a finite value >= 0, "
                                  f"got {self.shutter_s!r}")


@dataclass(frozen=True, eq=False)
class CameraImage:
    """One camera image with its calibration.

    Give either decoded ``pixels`` or ``encoded`` bytes (JPEG or PNG). Encoded images are
    decoded on first access of :attr:`image`, then cached; the decoded size must match the
    calibration's width and height.

    Attributes:
        name: camera name, e.g. ``"FRONT"``.
        stamp_ns: int64 ns, the image's reference time (mid-exposure where known).
        calibration: camera calibration (``K`` must be set).
        pixels: (H, W, 3) uint8 RGB, or None when ``encoded`` is given.
        encoded: JPEG/PNG bytes, or None.
        rolling_shutter: rolling-shutter timing, or None (global shutter or unknown).
    """

    name: str
    stamp_ns: int
    calibration: Calibration
    pixels: np.ndarray | None = None
    encoded: bytes | None = field(default=None, repr=False)
    rolling_shutter: RollingShutter | None = None

    def __post_init__(self) -> None:
        owner = "CameraImage"
        check_name(owner, "name", self.name)
        _set(self, "stamp_ns", check_stamp_ns(owner, "stamp_ns", self.stamp_ns))
        _check_optional_type(owner, "calibration", self.calibration, Calibration)
        if self.calibration is None or not self.calibration.is_camera:
            raise ValidationError(f"{owner}.calibration: a camera calibration (with K) is "
                                  f"required for camera {self.name!r}")
        _check_optional_type(owner, "rolling_shutter", self.rolling_shutter, RollingShutter)
        if (self.pixels is None) == (self.encoded is None):
            raise ValidationError(f"{owner}: give exactly one of pixels or encoded "
                                  f"(camera {self.name!r})")
        if self.encoded is not None:
            if not isinstance(self.encoded, (bytes, bytearray, memoryview)) or not self.encoded:
                raise ValidationError(f"{owner}.encoded: expected non-empty bytes")
            _set(self, "encoded", bytes(self.encoded))
        else:
            _set(self, "pixels", self._check_pixels(self.pixels))

    def _check_pixels(self, pixels: Any) -> np.ndarray:
        ctx = ShapeContext("CameraImage")
        pixels = check_array(ctx, "pixels", pixels, ("H", "W", 3), np.uint8, exact_dtype=True)
        self._check_size(pixels.shape[1], pixels.shape[0])
        return pixels

    def _check_size(self, width: int, height: int) -> None:
        calib = self.calibration
        if (height, width) != (calib.height, calib.width):
            raise ValidationError(
                f"CameraImage.pixels: image {self.name!r} is {width}x{height} "
                f"(WxH) but its calibration says {calib.width}x{calib.height}")

    @property
    def image(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB; decodes ``encoded`` on first access.

        Raises:
            DataError: the encoded bytes are not a decodable JPEG/PNG.
            ValidationError: the decoded size disagrees with the calibration.
        """
        if self.pixels is not None:
            return self.pixels
        cached = self.__dict__.get("_decoded")
        if cached is None:
            # the size in the header is checked before decoding: a forged header claiming
            # a huge image is refused without allocating it
            cached = self._check_pixels(decode_image(self.encoded, source=self.name,
                                                     check_size=self._check_size))
            _set(self, "_decoded", cached)
        return cached

    @property
    def is_decoded(self) -> bool:
        return self.pixels is not None or "_decoded" in self.__dict__


# --------------------------------------------------------------------------------------------
# Boxes, detections, tracks
# --------------------------------------------------------------------------------------------

class _BoxSet:
    """Row selection shared by box containers: every array field with a leading N is indexed."""

    boxes: np.ndarray

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def select(self, index: np.ndarray | slice) -> Any:
        """Return a copy with rows ``index`` (bool mask or integer indices)."""
        n = len(self)
        changes = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == n:
                changes[f.name] = value[index]
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    @property
    def centers(self) -> np.ndarray:
        return self.boxes[:, :3]


def _check_boxes(ctx: ShapeContext, value: Any) -> np.ndarray:
    boxes = check_array(ctx, "boxes", value, ("N", BOX_DIM), np.float32)
    if boxes.size and (boxes[:, 3:6] <= 0).any():
        bad = int(np.flatnonzero((boxes[:, 3:6] <= 0).any(axis=1))[0])
        raise ValidationError(f"{ctx.owner}.boxes: non-positive size in row {bad}: "
                              f"{boxes[bad, 3:6].tolist()} (length, width, height must be > 0)")
    heading = boxes[:, 6]
    if ((heading < -np.pi) | (heading >= np.pi)).any():
        boxes = boxes.copy()  # never wrap the caller's array in place
        boxes[:, 6] = wrap_heading(heading)
    return boxes


def _check_labels(ctx: ShapeContext, value: Any) -> np.ndarray:
    labels = check_array(ctx, "labels", value, ("N",), np.int32)
    known = np.array([c.value for c in ObjectClass], dtype=np.int32)
    if labels.size and not np.isin(labels, known).all():
        bad = sorted(set(labels.tolist()) - set(known.tolist()))
        raise ValidationError(f"{ctx.owner}.labels: unknown class value(s) {bad}; known: "
                              f"{ {c.name: c.value for c in ObjectClass} }")
    return labels


def _check_ids(ctx: ShapeContext, value: Any) -> np.ndarray:
    """Object ids: int64, or unicode strings (Waymo label ids are strings)."""
    if isinstance(value, np.ndarray) and value.dtype.kind == "U":
        return check_array(ctx, "ids", value, ("N",), value.dtype, finite=False)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return check_array(ctx, "ids", np.asarray(value, dtype=str), ("N",),
                           np.asarray(value, dtype=str).dtype, finite=False)
    return check_array(ctx, "ids", value, ("N",), np.int64)


def _check_optional_type(owner: str, name: str, value: Any, cls: type) -> None:
    if value is not None and not isinstance(value, cls):
        raise ValidationError(f"{owner}.{name}: expected {cls.__name__} or None, got "
                              f"{type(value).__name__}")


def _optional_array(ctx: ShapeContext, obj: Any, name: str, shape: tuple, dtype: Any) -> None:
    value = getattr(obj, name)
    if value is not None:
        _set(obj, name, check_array(ctx, name, value, shape, dtype))


@dataclass(frozen=True, eq=False)
class Boxes3D(_BoxSet):
    """Ground-truth 3D boxes of one frame, vehicle frame.

    Attributes:
        boxes: (N, 7) float32 ``(x, y, z, l, w, h, heading)``; heading wrapped to [-pi, pi).
        labels: (N,) int32 :class:`ObjectClass` values.
        ids: (N,) int64 or unicode object ids, stable across frames of a sequence; or None.
        velocities: (N, 2) float32 ``(vx, vy)`` m/s, vehicle frame; or None when unknown.
        accelerations: (N, 2) float32 ``(ax, ay)`` m/s^2, vehicle frame; or None.
        num_points: (N,) int32 lidar points inside each box (``num_lidar_points_in_box``);
            or None when unknown.
        difficulty: (N,) int8 :class:`Difficulty` as labelled (``UNSET`` = derive from points).
    """

    boxes: np.ndarray
    labels: np.ndarray
    ids: np.ndarray | None = None
    velocities: np.ndarray | None = None
    accelerations: np.ndarray | None = None
    num_points: np.ndarray | None = None
    difficulty: np.ndarray | None = None

    def __post_init__(self) -> None:
        ctx = ShapeContext("Boxes3D")
        _set(self, "boxes", _check_boxes(ctx, self.boxes))
        _set(self, "labels", _check_labels(ctx, self.labels))
        if self.ids is not None:
            _set(self, "ids", _check_ids(ctx, self.ids))
        _optional_array(ctx, self, "velocities", ("N", 2), np.float32)
        _optional_array(ctx, self, "accelerations", ("N", 2), np.float32)
        if self.num_points is not None:
            _set(self, "num_points", check_array(ctx, "num_points", self.num_points, ("N",),
                                                 np.int32))
            if (self.num_points < 0).any():
                raise ValidationError("Boxes3D.num_points: counts must be >= 0")
        difficulty = self.difficulty
        if difficulty is None:
            difficulty = np.zeros(len(self.boxes), np.int8)
        difficulty = check_array(ctx, "difficulty", difficulty, ("N",), np.int8)
        if difficulty.size and not np.isin(difficulty, [0, 1, 2]).all():
            raise ValidationError("Boxes3D.difficulty: values must be 0 (unset), 1 (LEVEL_1) "
                                  "or 2 (LEVEL_2)")
        _set(self, "difficulty", difficulty)

    @classmethod
    def empty(cls) -> Boxes3D:
        return cls(np.zeros((0, BOX_DIM), np.float32), np.zeros(0, np.int32))

    def levels(self) -> np.ndarray:
        """(N,) int8 effective Waymo difficulty level (1 or 2).

        An explicit label wins; otherwise boxes with ``num_points <= 5`` are LEVEL_2 and the
        rest LEVEL_1. Boxes with unknown point counts and no label are LEVEL_1.
        """
        level = np.where(self.difficulty == Difficulty.LEVEL_2, 2, 1).astype(np.int8)
        if self.num_points is not None:
            derived = self.num_points <= LEVEL_2_MAX_POINTS
            level[(self.difficulty == Difficulty.UNSET) & derived] = 2
        return level


@dataclass(frozen=True, eq=False)
class Detections(_BoxSet):
    """Detector output for one frame, vehicle frame.

    Attributes:
        stamp_ns: int64 ns of the frame the detections belong to.
        boxes: (N, 7) float32, as in :class:`Boxes3D`.
        scores: (N,) float32 confidence in [0, 1].
        labels: (N,) int32 :class:`ObjectClass` values.
        velocities: (N, 2) float32 m/s, vehicle frame; or None.
        modalities: the sensor modalities the detector actually used for this frame.
    """

    stamp_ns: int
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    velocities: np.ndarray | None = None
    modalities: frozenset[Modality] = frozenset()

    def __post_init__(self) -> None:
        ctx = ShapeContext("Detections")
        _set(self, "stamp_ns", check_stamp_ns("Detections", "stamp_ns", self.stamp_ns))
        _set(self, "boxes", _check_boxes(ctx, self.boxes))
        _set(self, "scores", check_array(ctx, "scores", self.scores, ("N",), np.float32))
        if self.scores.size and ((self.scores < 0) | (self.scores > 1)).any():
            raise ValidationError("Detections.scores: values must lie in [0, 1]")
        _set(self, "labels", _check_labels(ctx, self.labels))
        _optional_array(ctx, self, "velocities", ("N", 2), np.float32)
        _set(self, "modalities", _check_modalities("Detections", self.modalities))

    @classmethod
    def empty(cls, stamp_ns: int, modalities: frozenset[Modality] = frozenset()) -> Detections:
        return cls(stamp_ns, np.zeros((0, BOX_DIM), np.float32), np.zeros(0, np.float32),
                   np.zeros(0, np.int32), modalities=modalities)


def _check_modalities(owner: str, value: Any) -> frozenset[Modality]:
    try:
        return frozenset(Modality(m) for m in value)
    except (TypeError, ValueError):
        raise ValidationError(f"{owner}.modalities: expected a set of "
                              f"{[m.value for m in Modality]}, got {value!r}") from None


@dataclass(frozen=True, eq=False)
class Tracks(_BoxSet):
    """Tracker output for one frame, vehicle frame of ``stamp_ns``.

    Attributes:
        stamp_ns: int64 ns.
        boxes: (N, 7) float32 filtered boxes.
        labels: (N,) int32 :class:`ObjectClass` values.
        ids: (N,) int64 track ids, unique and never reused within a run.
        velocities: (N, 2) float32 ``(vx, vy)`` m/s, vehicle frame (over ground, not relative
            to the ego vehicle).
        scores: (N,) float32 track confidence in [0, 1].
        ages: (N,) int32 frames since birth.
        hits: (N,) int32 frames with an associated detection.
        states: (N,) int8 :class:`TrackState`.
        covariances: (N, S, S) float32 state covariance, or None. The state order is the
            tracker's (documented in :mod:`perception.tracking`).
    """

    stamp_ns: int
    boxes: np.ndarray
    labels: np.ndarray
    ids: np.ndarray
    velocities: np.ndarray
    scores: np.ndarray
    ages: np.ndarray
    hits: np.ndarray
    states: np.ndarray
    covariances: np.ndarray | None = None

    def __post_init__(self) -> None:
        ctx = ShapeContext("Tracks")
        _set(self, "stamp_ns", check_stamp_ns("Tracks", "stamp_ns", self.stamp_ns))
        _set(self, "boxes", _check_boxes(ctx, self.boxes))
        _set(self, "labels", _check_labels(ctx, self.labels))
        _set(self, "ids", check_array(ctx, "ids", self.ids, ("N",), np.int64))
        if len(np.unique(self.ids)) != len(self.ids):
            raise ValidationError("Tracks.ids: ids must be unique within a frame")
        _set(self, "velocities", check_array(ctx, "velocities", self.velocities, ("N", 2),
                                             np.float32))
        _set(self, "scores", check_array(ctx, "scores", self.scores, ("N",), np.float32))
        for name in ("ages", "hits"):
            _set(self, name, check_array(ctx, name, getattr(self, name), ("N",), np.int32))
        _set(self, "states", check_array(ctx, "states", self.states, ("N",), np.int8))
        if self.states.size and not np.isin(self.states, [s.value for s in TrackState]).all():
            raise ValidationError(f"Tracks.states: values must be TrackState "
                                  f"{[(s.name, s.value) for s in TrackState]}")
        _optional_array(ctx, self, "covariances", ("N", "S", "S"), np.float32)

    @classmethod
    def empty(cls, stamp_ns: int) -> Tracks:
        z = np.zeros
        return cls(stamp_ns, z((0, BOX_DIM), np.float32), z(0, np.int32), z(0, np.int64),
                   z((0, 2), np.float32), z(0, np.float32), z(0, np.int32), z(0, np.int32),
                   z(0, np.int8))


# --------------------------------------------------------------------------------------------
# Frame
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class SensorFrame:
    """Everything known about one moment: the unit every data source yields.

    Attributes:
        stamp_ns: int64 ns reference time (the lidar stamp when there is a lidar).
        sequence_id: name of the sequence/segment/log this frame comes from.
        frame_index: index of the frame in its sequence.
        lidar: merged lidar sweep, or None when absent.
        cameras: camera name -> :class:`CameraImage` (possibly empty).
        radars: radar name -> :class:`RadarScan` (possibly empty).
        ego_pose: pose of the vehicle at ``stamp_ns``, or None.
        boxes: ground-truth boxes, or None (no labels).
        source: where the frame came from, e.g. ``"waymo"``, ``"kitti"``, ``"sim"``.
    """

    stamp_ns: int
    sequence_id: str = "unknown"
    frame_index: int = 0
    lidar: LidarSweep | None = None
    cameras: Mapping[str, CameraImage] = field(default_factory=dict)
    radars: Mapping[str, RadarScan] = field(default_factory=dict)
    ego_pose: EgoPose | None = None
    boxes: Boxes3D | None = None
    source: str = "unknown"

    def __post_init__(self) -> None:
        owner = "SensorFrame"
        _set(self, "stamp_ns", check_stamp_ns(owner, "stamp_ns", self.stamp_ns))
        check_name(owner, "sequence_id", self.sequence_id)
        check_name(owner, "source", self.source)
        if isinstance(self.frame_index, bool) or not isinstance(self.frame_index,
                                                                 (int, np.integer)) \
                or self.frame_index < 0:
            raise ValidationError(f"{owner}.frame_index: expected an int >= 0, got "
                                  f"{self.frame_index!r}")
        _check_optional_type(owner, "lidar", self.lidar, LidarSweep)
        _check_optional_type(owner, "ego_pose", self.ego_pose, EgoPose)
        _check_optional_type(owner, "boxes", self.boxes, Boxes3D)
        _set(self, "cameras", _check_sensor_map(owner, "cameras", self.cameras, CameraImage))
        _set(self, "radars", _check_sensor_map(owner, "radars", self.radars, RadarScan))

    @property
    def modalities(self) -> frozenset[Modality]:
        """The modalities present in this frame."""
        present = set()
        if self.lidar is not None:
            present.add(Modality.LIDAR)
        if self.cameras:
            present.add(Modality.CAMERA)
        if self.radars:
            present.add(Modality.RADAR)
        return frozenset(present)


def _check_sensor_map(owner: str, name: str, value: Any, cls: type) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationError(f"{owner}.{name}: expected a mapping of sensor name -> "
                              f"{cls.__name__}, got {type(value).__name__}")
    out = {}
    for key, item in value.items():
        if not isinstance(item, cls):
            raise ValidationError(f"{owner}.{name}[{key!r}]: expected {cls.__name__}, got "
                                  f"{type(item).__name__}")
        item_name = getattr(item, "name", None) or getattr(item, "sensor_name")
        if key != item_name:
            raise ValidationError(f"{owner}.{name}: key {key!r} differs from the sensor's own "
                                  f"name {item_name!r}")
        out[key] = item
    return out


def finite_points(points: np.ndarray) -> tuple[np.ndarray, int]:
    """Drop rows of ``points`` (N, C) that contain NaN or inf. Returns (points, n_dropped)."""
    keep = np.isfinite(points).all(axis=1)
    return points[keep], int(points.shape[0] - keep.sum())


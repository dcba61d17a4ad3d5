"""Waymo Open Dataset v1 ``Frame`` TFRecords -> :class:`~perception.types.SensorFrame`.

:class:`WaymoReader` gives SensorFrames of a segment file, with random access through the
TFRecord offset index and lazy JPEG decoding; the ``decode_*`` functions map the parts of one
``Frame`` proto (lidar, cameras, labels), all in the vehicle frame. Range images become points
as :mod:`perception.data.waymo_range_image` describes; they are stored as compressed matrices
(:mod:`perception.data.waymo_matrix`). The inverse, SensorFrames -> ``Frame`` records, is
:mod:`perception.data.waymo_writer`; metrics ``Objects`` files are
:mod:`perception.data.waymo_objects`.

Only the protobuf messages of the ``waymo_open_dataset`` package are used; TensorFlow is never
imported.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
from google.protobuf.message import DecodeError

from ..errors import CalibrationError, DataError
from ..types import (
    Boxes3D,
    Calibration,
    CameraConvention,
    CameraImage,
    EgoPose,
    LidarSweep,
    ObjectClass,
    RollingShutter,
    SensorFrame,
)
from .tfrecord import TFRecordFile
from .waymo_matrix import decompress_matrix
from .waymo_range_image import (
    POSE_CHANNELS,
    RANGE_CHANNELS,
    LaserGeometry,
    range_image_to_points,
    uniform_inclinations,
)

LIDAR_COLUMNS = ("x", "y", "z", "intensity", "elongation")
# Waymo enum values <-> names (``LaserName``, ``CameraName``, ``RollingShutterReadOutDirection``);
# the writer maps back with the same tables.
LASER_NAMES = {1: "TOP", 2: "FRONT", 3: "SIDE_LEFT", 4: "SIDE_RIGHT", 5: "REAR"}
CAMERA_NAMES = {1: "FRONT", 2: "FRONT_LEFT", 3: "FRONT_RIGHT", 4: "SIDE_LEFT", 5: "SIDE_RIGHT"}
LASER_IDS = {name: value for value, name in LASER_NAMES.items()}
CAMERA_IDS = {name: value for value, name in CAMERA_NAMES.items()}
TOP_LASER_ID = 1
SHUTTER_DIRECTIONS = {0: "UNKNOWN", 1: "TOP_TO_BOTTOM", 2: "LEFT_TO_RIGHT", 3: "BOTTOM_TO_TOP",
                      4: "RIGHT_TO_LEFT", 5: "GLOBAL_SHUTTER"}
_KNOWN_LABEL_TYPES = frozenset(int(c) for c in ObjectClass)
_LABEL_TYPE_FIELD = 3


def _where(source: str, index: int | None) -> str:
    return f"{source} [record {index}]" if index is not None else source


def _matrix(values, source: str, index: int | None, what: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.size != 16:
        raise DataError(f"{what}: expected 16 values, got {values.size}", source=source,
                        index=index)
    return values.reshape(4, 4)


def laser_geometries(frame, height_by_laser: dict[int, int], source: str = "frame",
                     index: int | None = None) -> dict[int, LaserGeometry]:
    """Geometry of every laser calibrated in ``frame.context``, keyed by ``LaserName`` value.

    Uniform inclinations need the image height: it is taken from ``height_by_laser`` (lasers
    without an image there are skipped when their inclinations are not explicit).
    """
    out = {}
    for calib in frame.context.laser_calibrations:
        if len(calib.beam_inclinations):
            incl = np.asarray(calib.beam_inclinations, dtype=np.float64)
        elif calib.name in height_by_laser:
            incl = uniform_inclinations(calib.beam_inclination_min, calib.beam_inclination_max,
                                        height_by_laser[calib.name])
        else:
            continue
        extrinsic = _matrix(calib.extrinsic.transform, source, index,
                            f"laser {calib.name} extrinsic")
        out[calib.name] = LaserGeometry(LASER_NAMES.get(calib.name, str(calib.name)),
                                        calib.name, extrinsic, incl, 0)
    return out


def decode_lidar(frame, source: str = "frame", index: int | None = None
                 ) -> LidarSweep | None:
    """All lasers and both returns of ``frame`` as one vehicle-frame sweep, or None (no returns).

    Points are ordered by return (first, then second), then by laser id, then row-major pixel
    order. Empty range images (lasers without returns) contribute no points.

    Raises:
        DataError: corrupt zlib or MatrixFloat, or an image shape that disagrees with the
            calibration (wrong channel count or number of rows).
        CalibrationError: a laser with returns but no calibration.
    """
    images, top_pose = _decompress_range_images(frame, source, index)
    if not images:
        return None
    heights = {laser: image.shape[0] for (_, laser), image in images.items()}
    geometries = laser_geometries(frame, heights, source, index)
    frame_pose = _matrix(frame.pose.transform, source, index, "frame pose") \
        if len(frame.pose.transform) else None
    xyz_parts, feat_parts, laser_parts, return_parts = [], [], [], []
    for ret, laser in sorted(images):
        image = images[(ret, laser)]
        geometry = _checked_geometry(geometries, laser, image, source, index)
        pixel_pose = None
        if laser == TOP_LASER_ID and top_pose is not None:
            pixel_pose = _checked_pixel_pose(top_pose, image, frame_pose, source, index)
        xyz, feats = range_image_to_points(image, geometry, pixel_pose, frame_pose)
        xyz_parts.append(xyz)
        feat_parts.append(feats)
        laser_parts.append(np.full(len(xyz), laser, np.int8))
        return_parts.append(np.full(len(xyz), ret, np.int8))
    points = np.concatenate([np.concatenate(xyz_parts).astype(np.float32),
                             np.concatenate(feat_parts)], axis=1)
    top = geometries.get(TOP_LASER_ID)
    calibration = Calibration("TOP", top.T_vehicle_sensor) if top is not None else None
    return LidarSweep("lidar", int(frame.timestamp_micros) * 1000, points, LIDAR_COLUMNS,
                      np.concatenate(laser_parts), np.concatenate(return_parts), calibration)


def _decompress_range_images(frame, source: str, index: int | None
                             ) -> tuple[dict[tuple[int, int], np.ndarray], np.ndarray | None]:
    """The non-empty range images of ``frame`` and the TOP pixel pose.

    Returns:
        images: ``{(return index 0/1, laser id): (H, W, C) float32 image}``.
        top_pose: (H, W, 6) float32 TOP per-pixel pose (world frame), or None.
    """
    images: dict[tuple[int, int], np.ndarray] = {}
    top_pose = None
    for laser in frame.lasers:
        for ret, ri in enumerate((laser.ri_return1, laser.ri_return2)):
            if not ri.range_image_compressed:
                continue
            images[(ret, laser.name)] = _decompress(ri.range_image_compressed, source, index,
                                                     f"laser {laser.name} return {ret + 1}")
            if ret == 0 and laser.name == TOP_LASER_ID and ri.range_image_pose_compressed:
                top_pose = _decompress(ri.range_image_pose_compressed, source, index,
                                       "TOP range_image_pose")
    return images, top_pose


def _decompress(data: bytes, source: str, index: int | None, what: str) -> np.ndarray:
    try:
        return decompress_matrix(data)
    except DataError as exc:
        raise DataError(f"{what}: {exc}", source=source, index=index) from None


def _checked_geometry(geometries: dict[int, LaserGeometry], laser: int, image: np.ndarray,
                      source: str, index: int | None) -> LaserGeometry:
    if laser not in geometries:
        raise CalibrationError(f"{_where(source, index)}: laser {LASER_NAMES.get(laser, laser)} "
                               f"has returns but no calibration in frame.context")
    geometry = geometries[laser]
    if image.ndim != 3 or image.shape[2] < 3 or image.shape[0] != geometry.height:
        raise DataError(f"laser {geometry.name}: range image shape {list(image.shape)} "
                        f"disagrees with its calibration ({geometry.height} beam inclinations, "
                        f"expected [H, W, {RANGE_CHANNELS}])", source=source, index=index)
    return geometry


def _checked_pixel_pose(pose: np.ndarray, image: np.ndarray, frame_pose: np.ndarray | None,
                        source: str, index: int | None) -> np.ndarray:
    if pose.shape != (image.shape[0], image.shape[1], POSE_CHANNELS):
        raise DataError(f"TOP range_image_pose shape {list(pose.shape)} disagrees with the "
                        f"range image {list(image.shape[:2])} x {POSE_CHANNELS}",
                        source=source, index=index)
    if frame_pose is None:
        raise DataError("TOP has a per-pixel pose but the frame has no pose", source=source,
                        index=index)
    return pose


def decode_cameras(frame, source: str = "frame", index: int | None = None
                   ) -> dict[str, CameraImage]:
    """Camera images of ``frame`` keyed by camera name; JPEGs stay encoded until ``.image``.

    Raises:
        CalibrationError: an image whose camera has no calibration in ``frame.context``.
    """
    calibrations = {c.name: c for c in frame.context.camera_calibrations}
    out = {}
    for image in frame.images:
        name = CAMERA_NAMES.get(image.name, f"CAMERA_{image.name}")
        if image.name not in calibrations:
            raise CalibrationError(f"{_where(source, index)}: camera {name} has an image but no "
                                   f"calibration in frame.context")
        calib = camera_calibration(calibrations[image.name], source, index)
        def stamp(t_s: float, field: str, name: str = name) -> int:
            return _seconds_to_ns(t_s, source, index, f"camera {name} {field}")

        stamp_ns = stamp(image.pose_timestamp, "pose_timestamp") \
            or int(frame.timestamp_micros) * 1000
        shutter = RollingShutter(
            SHUTTER_DIRECTIONS.get(calibrations[image.name].rolling_shutter_direction,
                                   "UNKNOWN"),
            float(image.shutter), stamp(image.camera_trigger_time, "camera_trigger_time"),
            stamp(image.camera_readout_done_time, "camera_readout_done_time"))
        out[name] = CameraImage(name, stamp_ns, calib, encoded=bytes(image.image),
                                rolling_shutter=shutter)
    return out


def _seconds_to_ns(t_s: float, source: str, index: int | None, what: str) -> int:
    """Seconds (a proto double) -> int ns; DataError for NaN, infinities and values that do
    not fit an int64 stamp, which ``int()`` would otherwise refuse with an untyped error."""
    t_s = float(t_s)
    if not np.isfinite(t_s) or not 0.0 <= t_s < 9.2e9:
        raise DataError(f"{what}: {t_s!r} s is not a valid time (expected a finite value in "
                        f"[0, 9.2e9) s)", source=source, index=index)
    return int(round(t_s * 1e9))


def camera_calibration(calib, source: str = "frame", index: int | None = None) -> Calibration:
    """Waymo ``CameraCalibration`` -> :class:`Calibration` in the Waymo camera convention."""
    name = CAMERA_NAMES.get(calib.name, f"CAMERA_{calib.name}")
    intrinsic = np.asarray(calib.intrinsic, dtype=np.float64)
    if intrinsic.size != 9 or calib.width <= 0 or calib.height <= 0:
        raise CalibrationError(f"{_where(source, index)}: camera {name}: expected 9 intrinsics "
                               f"and a positive size, got {intrinsic.size} and "
                               f"{calib.width}x{calib.height}")
    f_u, f_v, c_u, c_v = intrinsic[:4]
    K = np.array([[f_u, 0.0, c_u], [0.0, f_v, c_v], [0.0, 0.0, 1.0]])
    extrinsic = _matrix(calib.extrinsic.transform, source, index, f"camera {name} extrinsic")
    return Calibration(name, extrinsic, K, intrinsic[4:9], int(calib.width), int(calib.height),
                       CameraConvention.WAYMO)


def decode_labels(frame, source: str = "frame", index: int | None = None) -> Boxes3D:
    """``frame.laser_labels`` -> :class:`Boxes3D` (vehicle frame) with Waymo metadata.

    Raises:
        DataError: a label type outside ``Label.Type``.
    """
    labels = frame.laser_labels
    n = len(labels)
    types = np.fromiter((lab.type for lab in labels), np.int64, n)
    # Label.Type is a closed proto2 enum: an unknown value parses as TYPE_UNKNOWN (0) and is
    # kept among the label's unknown fields, so look there for the labels that read as 0.
    for i in np.flatnonzero(types == 0).tolist():
        raw = _unknown_enum_value(labels[i], _LABEL_TYPE_FIELD)
        if raw is not None:
            types[i] = raw
    unknown = sorted(set(types.tolist()) - _KNOWN_LABEL_TYPES)
    if unknown:
        first = int(np.flatnonzero(~np.isin(types, list(_KNOWN_LABEL_TYPES)))[0])
        raise DataError(f"unknown label type(s) {unknown} (first at laser_labels[{first}], "
                        f"id {labels[first].id!r})", source=source, index=index)
    values = np.array([[lab.box.center_x, lab.box.center_y, lab.box.center_z, lab.box.length,
                        lab.box.width, lab.box.height, lab.box.heading,
                        lab.metadata.speed_x, lab.metadata.speed_y,
                        lab.metadata.accel_x, lab.metadata.accel_y] for lab in labels],
                      dtype=np.float64).reshape(n, 11)
    return Boxes3D(
        boxes=values[:, :7].astype(np.float32), labels=types.astype(np.int32),
        ids=np.array([lab.id for lab in labels], dtype=str) if n else None,
        velocities=values[:, 7:9].astype(np.float32),
        accelerations=values[:, 9:11].astype(np.float32),
        num_points=np.fromiter((lab.num_lidar_points_in_box for lab in labels), np.int32, n),
        difficulty=np.fromiter((lab.detection_difficulty_level for lab in labels), np.int8, n))


def _unknown_enum_value(message, field_number: int) -> int | None:
    from google.protobuf import unknown_fields

    for field in unknown_fields.UnknownFieldSet(message):
        if field.field_number == field_number and field.wire_type == 0:
            return int(field.data)
    return None


def frame_to_sensor_frame(frame, source: str = "frame", index: int | None = None,
                          frame_index: int | None = None) -> SensorFrame:
    """Decode one Waymo ``Frame`` proto into a :class:`SensorFrame` (source ``"waymo"``).

    Args:
        frame: ``dataset_pb2.Frame``.
        source, index: file and record index, used in error messages.
        frame_index: index in the segment (defaults to ``index`` or 0).
    """
    stamp_ns = int(frame.timestamp_micros) * 1000
    ego_pose = None
    if len(frame.pose.transform):
        ego_pose = EgoPose(stamp_ns, _matrix(frame.pose.transform, source, index, "frame pose"))
    return SensorFrame(
        stamp_ns=stamp_ns, sequence_id=frame.context.name or "unknown",
        frame_index=frame_index if frame_index is not None else (index or 0),
        lidar=decode_lidar(frame, source, index), cameras=decode_cameras(frame, source, index),
        ego_pose=ego_pose, boxes=decode_labels(frame, source, index), source="waymo")


def parse_frame(payload: bytes, source: str = "frame", index: int | None = None):
    """Serialized bytes -> ``dataset_pb2.Frame``; DataError when they do not parse."""
    from waymo_open_dataset import dataset_pb2

    frame = dataset_pb2.Frame()
    try:
        frame.ParseFromString(payload)
    except DecodeError as exc:
        raise DataError(f"cannot parse Frame proto: {exc}", source=source, index=index) from None
    return frame


class WaymoReader:
    """Random-access reader of one Waymo v1 segment TFRecord.

    ``len(reader)``, ``reader[i]`` and iteration give :class:`SensorFrame` s; ``reader.proto(i)``
    gives the raw ``Frame``. Both CRCs of each record are checked on every read.
    """

    def __init__(self, path: str | os.PathLike, index: np.ndarray | None = None):
        self.path = str(path)
        self._records = TFRecordFile(self.path, index)

    def __len__(self) -> int:
        return len(self._records)

    def proto(self, i: int):
        return parse_frame(self._records.read(i), self.path, i)

    def __getitem__(self, i: int) -> SensorFrame:
        n = len(self)
        if not isinstance(i, (int, np.integer)) or not -n <= i < n:
            raise IndexError(f"{self.path}: frame index {i!r} out of range ({n} frames)")
        i = int(i) % n
        return frame_to_sensor_frame(self.proto(i), self.path, i)

    def __iter__(self) -> Iterator[SensorFrame]:
        for i, payload in enumerate(self._records):
            yield frame_to_sensor_frame(parse_frame(payload, self.path, i), self.path, i)

"""Waymo Open Dataset (v1 ``Frame`` TFRecords): reader, writer and prediction export.

* :class:`WaymoReader` gives :class:`~perception.types.SensorFrame` s from a segment file, with
  random access through the TFRecord offset index and lazy JPEG decoding.
* :func:`write_frames` writes SensorFrames back as Waymo ``Frame`` records with compressed range
  images (the inverse projection of the points), so simulated data can be read by Waymo tools.
* :func:`detections_to_objects` exports predictions as a metrics ``Objects`` proto.

Only the protobuf messages of the ``waymo_open_dataset`` package are used; TensorFlow is never
imported.

Range images
------------
The maths is that of the official ``waymo_open_dataset.utils.range_image_utils``
(``compute_range_image_polar`` / ``compute_range_image_cartesian``), vectorised in NumPy (ray
directions and pose products in float64, the per-point products in float32):

* Row ``r`` of an ``H``-row image has inclination ``incl[H - 1 - r]`` where ``incl`` is the
  calibration's ascending list (explicit ``beam_inclinations``, or ``H`` uniform values between
  ``beam_inclination_min`` and ``max`` at bin centres).
* Column ``c`` of a ``W``-column image has azimuth
  ``((W - c - 0.5) / W * 2 - 1) * pi - atan2(E[1, 0], E[0, 0])`` in the sensor frame.
* A pixel with range > 0 is a return: ``p_sensor = r * (cos az cos incl, sin az cos incl,
  sin incl)``, ``p_vehicle = E @ p_sensor``.
* TOP only: each pixel carries the vehicle pose at its firing time (roll, pitch, yaw, x, y, z;
  rotation ``Rz(yaw) Ry(pitch) Rx(roll)``). The point is moved to the world with that pose and
  back into the vehicle frame of the frame pose: ``p = inv(frame_pose) @ pixel_pose @ p``.

Serialized ``MatrixFloat`` protos are parsed straight from the wire format with NumPy (the
packed float payload becomes an array without per-element Python objects); anything unusual
falls back to the protobuf parser.
"""

from __future__ import annotations

import io
import os
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from google.protobuf.message import DecodeError

from ..errors import CalibrationError, ConversionError, DataError
from ..types import (
    Boxes3D,
    Calibration,
    CameraConvention,
    CameraImage,
    Detections,
    EgoPose,
    LidarSweep,
    ObjectClass,
    RollingShutter,
    SensorFrame,
)
from .tfrecord import TFRecordFile, write_records

RANGE_CHANNELS = 4
"""Waymo range image channels: range (m), intensity, elongation, is-in-no-label-zone."""
POSE_CHANNELS = 6
"""TOP pixel pose channels: roll, pitch, yaw (rad), x, y, z (m), world frame."""


@dataclass(frozen=True, eq=False)
class LaserGeometry:
    """What is needed to turn one laser's range image into points, and back.

    Attributes:
        name: Waymo laser name, e.g. ``"TOP"``.
        laser_id: ``LaserName`` value (TOP=1, FRONT=2, SIDE_LEFT=3, SIDE_RIGHT=4, REAR=5).
        T_vehicle_sensor: (4, 4) float64 laser extrinsic, sensor -> vehicle.
        beam_inclinations_rad: (H,) float64 ascending inclinations; the image's top row uses
            the last (highest) one.
        width: range image columns (used by the writer; the reader takes it from the image).
    """

    name: str
    laser_id: int
    T_vehicle_sensor: np.ndarray
    beam_inclinations_rad: np.ndarray
    width: int

    @property
    def height(self) -> int:
        return int(self.beam_inclinations_rad.shape[0])


def uniform_inclinations(min_rad: float, max_rad: float, height: int) -> np.ndarray:
    """(H,) ascending inclinations at bin centres, as the official ``compute_inclination``."""
    return min_rad + (0.5 + np.arange(height, dtype=np.float64)) / height * (max_rad - min_rad)


def column_azimuths(width: int, T_vehicle_sensor: np.ndarray) -> np.ndarray:
    """(W,) float64 sensor-frame azimuth of each range image column."""
    az_correction = np.arctan2(T_vehicle_sensor[1, 0], T_vehicle_sensor[0, 0])
    ratios = (np.arange(width, 0, -1, dtype=np.float64) - 0.5) / width
    return (ratios * 2.0 - 1.0) * np.pi - az_correction


def rotation_from_rpy(rpy: np.ndarray) -> np.ndarray:
    """(N, 3) roll, pitch, yaw -> (N, 3, 3) rotations ``Rz(yaw) @ Ry(pitch) @ Rx(roll)``."""
    cr, sr = np.cos(rpy[:, 0]), np.sin(rpy[:, 0])
    cp, sp = np.cos(rpy[:, 1]), np.sin(rpy[:, 1])
    cy, sy = np.cos(rpy[:, 2]), np.sin(rpy[:, 2])
    R = np.empty((rpy.shape[0], 3, 3))
    R[:, 0, 0] = cy * cp
    R[:, 0, 1] = cy * sp * sr - sy * cr
    R[:, 0, 2] = cy * sp * cr + sy * sr
    R[:, 1, 0] = sy * cp
    R[:, 1, 1] = sy * sp * sr + cy * cr
    R[:, 1, 2] = sy * sp * cr - cy * sr
    R[:, 2, 0] = -sp
    R[:, 2, 1] = cp * sr
    R[:, 2, 2] = cp * cr
    return R


def rpy_from_rotation(R: np.ndarray) -> np.ndarray:
    """(3, 3) rotation -> (3,) roll, pitch, yaw with ``R = Rz(yaw) Ry(pitch) Rx(roll)``."""
    pitch = np.arcsin(np.clip(-R[2, 0], -1.0, 1.0))
    return np.array([np.arctan2(R[2, 1], R[2, 2]), pitch, np.arctan2(R[1, 0], R[0, 0])])


def range_image_to_points(range_image: np.ndarray, geometry: LaserGeometry,
                          pixel_pose: np.ndarray | None = None,
                          frame_pose: np.ndarray | None = None
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Decode the returns of one range image.

    Directions are evaluated in float64 and the per-point products in float32 (the output
    precision): the result differs from a float64 evaluation by about 1e-7 of the range.

    Args:
        range_image: (H, W, C>=3) float32, channels range, intensity, elongation, ...
        geometry: the laser's extrinsic and inclinations (H of them).
        pixel_pose: (H, W, 6) per-pixel vehicle pose (TOP), or None.
        frame_pose: (4, 4) vehicle -> world pose of the frame; required with ``pixel_pose``.

    Returns:
        xyz: (M, 3) float32 vehicle-frame points of the pixels with range > 0, row-major order.
        features: (M, 2) float32 intensity and elongation of those pixels.
    """
    height, width = range_image.shape[:2]
    flat = range_image.reshape(height * width, -1)
    idx = np.flatnonzero(flat[:, 0] > 0)
    rng = flat[idx, 0:1].astype(np.float32)
    E = geometry.T_vehicle_sensor
    if pixel_pose is None:
        directions = _cached_directions(geometry, width)[1]
        xyz = directions[idx] * rng + E[:3, 3].astype(np.float32)
    elif _pose_is_per_column(pixel_pose):
        # The usual case (the pose is that of the column's firing time): fuse extrinsic,
        # column pose and inverse frame pose into one transform per column.
        M = _pixel_transforms(pixel_pose[0], E, frame_pose)                  # (W, 3, 4)
        sensor = _cached_directions(geometry, width)[0]                       # (H, W, 3)
        # directions[h, w] = M[w, :, :3] @ sensor[h, w], as three broadcast products.
        directions = (sensor[..., 0:1] * M[:, :, 0] + sensor[..., 1:2] * M[:, :, 1]
                      + sensor[..., 2:3] * M[:, :, 2]).astype(np.float32)
        xyz = directions.reshape(-1, 3)[idx] * rng + M[idx % width, :, 3].astype(np.float32)
    else:
        M = _pixel_transforms(pixel_pose.reshape(-1, POSE_CHANNELS)[idx], E, frame_pose)
        p = _cached_directions(geometry, width)[0].reshape(-1, 3)[idx] * rng
        xyz = (np.einsum("nij,nj->ni", M[:, :, :3], p) + M[:, :, 3]).astype(np.float32)
    return xyz, flat[idx, 1:3].astype(np.float32)


_DIRECTIONS: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
_DIRECTIONS_MAX = 64


def _cached_directions(geometry: LaserGeometry, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit ray directions of every pixel: (H, W, 3) float64 in the sensor frame and
    (H * W, 3) float32 rotated into the vehicle frame. Calibrations rarely change within a
    segment, so they are computed once per (extrinsic, inclinations, width)."""
    E = geometry.T_vehicle_sensor
    key = (width, E.tobytes(), geometry.beam_inclinations_rad.tobytes())
    cached = _DIRECTIONS.get(key)
    if cached is None:
        incl = geometry.beam_inclinations_rad[::-1]
        azimuth = column_azimuths(width, E)
        cos_incl = np.cos(incl)[:, None]
        sensor = np.stack(np.broadcast_arrays(np.cos(azimuth)[None] * cos_incl,
                                              np.sin(azimuth)[None] * cos_incl,
                                              np.sin(incl)[:, None]), axis=-1)
        vehicle = (sensor.reshape(-1, 3) @ E[:3, :3].T).astype(np.float32)
        if len(_DIRECTIONS) >= _DIRECTIONS_MAX:
            _DIRECTIONS.clear()
        cached = _DIRECTIONS[key] = (sensor, vehicle)
    return cached


def _pose_is_per_column(pixel_pose: np.ndarray) -> bool:
    return bool((pixel_pose == pixel_pose[:1]).all())


def _pixel_transforms(pose: np.ndarray, E: np.ndarray, frame_pose: np.ndarray) -> np.ndarray:
    """(N, 6) pixel poses -> (N, 3, 4) float64 ``inv(frame_pose) @ pixel_pose @ E``."""
    pose = pose.astype(np.float64)
    T = np.zeros((pose.shape[0], 4, 4))
    T[:, :3, :3] = rotation_from_rpy(pose[:, :3])
    T[:, :3, 3] = pose[:, 3:6]
    T[:, 3, 3] = 1.0
    return (np.linalg.inv(frame_pose) @ T @ E)[:, :3, :]


def points_to_range_image(xyz: np.ndarray, features: np.ndarray, geometry: LaserGeometry
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Inverse projection of vehicle-frame points into a laser's first and second return images.

    Each point goes to the row of the nearest beam inclination and the column of its azimuth
    (as the official ``build_range_image_from_point_cloud``). Where several points share a
    pixel, the nearest becomes the first return, the next one the second return, and any
    further ones are dropped.

    Args:
        xyz: (N, 3) vehicle-frame points.
        features: (N, 2) intensity and elongation.
        geometry: target laser.

    Returns:
        first, second: (H, W, 4) float32 range images (range 0 where empty; channel 3 is 0).
    """
    height, width = geometry.height, geometry.width
    E_inv = np.linalg.inv(geometry.T_vehicle_sensor)
    p = np.asarray(xyz, np.float64) @ E_inv[:3, :3].T + E_inv[:3, 3]
    rng = np.linalg.norm(p, axis=1)
    incl = np.arctan2(p[:, 2], np.hypot(p[:, 0], p[:, 1]))
    asc = geometry.beam_inclinations_rad
    upper = np.clip(np.searchsorted(asc, incl), 1, height - 1)
    nearest = np.where(incl - asc[upper - 1] <= asc[upper] - incl, upper - 1, upper)
    rows = height - 1 - nearest
    az_correction = np.arctan2(geometry.T_vehicle_sensor[1, 0], geometry.T_vehicle_sensor[0, 0])
    azimuth = np.arctan2(p[:, 1], p[:, 0]) + az_correction
    azimuth = (azimuth + np.pi) % (2.0 * np.pi) - np.pi
    cols = np.round(width - 0.5 - (azimuth + np.pi) / (2.0 * np.pi) * width).astype(np.int64)
    cols %= width
    pixel = rows * width + cols
    order = np.lexsort((rng, pixel))
    pixel, rng, feats = pixel[order], rng[order], np.asarray(features)[order]
    is_first = np.ones(pixel.shape[0], bool)
    is_first[1:] = pixel[1:] != pixel[:-1]
    is_second = np.zeros_like(is_first)
    is_second[1:] = ~is_first[1:] & is_first[:-1]
    images = []
    for keep in (is_first, is_second):
        image = np.zeros((height * width, 4), np.float32)
        image[pixel[keep], 0] = rng[keep]
        image[pixel[keep], 1:3] = feats[keep]
        images.append(image.reshape(height, width, 4))
    return images[0], images[1]


# --------------------------------------------------------------------------------------------
# MatrixFloat wire format
# --------------------------------------------------------------------------------------------

def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise DataError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise DataError("varint too long")


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _parse_dims(buf: bytes) -> list[int]:
    dims, pos = [], 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        if tag == 0x08:                      # dims, unpacked (proto2 default)
            value, pos = _varint(buf, pos)
            dims.append(value)
        elif tag == 0x0A:                    # dims, packed
            length, pos = _varint(buf, pos)
            end = pos + length
            while pos < end:
                value, pos = _varint(buf, pos)
                dims.append(value)
        else:
            raise DataError(f"unexpected field tag {tag} in MatrixShape")
    return dims


def parse_matrix_float(buf: bytes) -> np.ndarray:
    """Serialized ``MatrixFloat`` -> float32 array of its shape. Raises DataError when bad."""
    try:
        return _parse_matrix_float_fast(buf)
    except DataError:
        return _parse_matrix_float_proto(buf)


def _parse_matrix_float_fast(buf: bytes) -> np.ndarray:
    data = None
    dims: list[int] = []
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        if tag not in (0x0A, 0x12):
            raise DataError(f"unexpected field tag {tag} in MatrixFloat")
        length, pos = _varint(buf, pos)
        if pos + length > len(buf):
            raise DataError("truncated MatrixFloat field")
        if tag == 0x0A:
            if data is not None or length % 4:
                raise DataError("unsupported MatrixFloat data layout")
            data = np.frombuffer(buf, dtype="<f4", count=length // 4, offset=pos)
        else:
            dims = _parse_dims(buf[pos:pos + length])
        pos += length
    return _shaped(np.zeros(0, np.float32) if data is None else data, dims)


def _parse_matrix_float_proto(buf: bytes) -> np.ndarray:
    from waymo_open_dataset import dataset_pb2

    msg = dataset_pb2.MatrixFloat()
    try:
        msg.ParseFromString(buf)
    except DecodeError as exc:
        raise DataError(f"cannot parse MatrixFloat: {exc}") from None
    return _shaped(np.asarray(msg.data, dtype=np.float32), list(msg.shape.dims))


def _shaped(data: np.ndarray, dims: list[int]) -> np.ndarray:
    if not dims or int(np.prod(dims)) != data.size:
        raise DataError(f"MatrixFloat has {data.size} values but shape {dims}")
    return data.astype(np.float32, copy=False).reshape(dims)


def encode_matrix_float(array: np.ndarray) -> bytes:
    """float array -> serialized ``MatrixFloat`` (packed data, unpacked proto2 dims)."""
    payload = np.ascontiguousarray(array, dtype="<f4").tobytes()
    shape = b"".join(b"\x08" + _encode_varint(int(d)) for d in array.shape)
    return (b"\x0a" + _encode_varint(len(payload)) + payload
            + b"\x12" + _encode_varint(len(shape)) + shape)


def encode_zero_matrix_int32(shape: tuple[int, ...]) -> bytes:
    """Serialized all-zero ``MatrixInt32`` of ``shape`` (each packed zero varint is one byte)."""
    count = int(np.prod(shape))
    dims = b"".join(b"\x08" + _encode_varint(int(d)) for d in shape)
    return (b"\x0a" + _encode_varint(count) + bytes(count)
            + b"\x12" + _encode_varint(len(dims)) + dims)


def decompress_matrix(compressed: bytes) -> np.ndarray:
    """zlib-compressed serialized ``MatrixFloat`` -> float32 array. Raises DataError when bad."""
    try:
        raw = zlib.decompress(compressed)
    except zlib.error as exc:
        raise DataError(f"corrupt zlib data: {exc}") from None
    return parse_matrix_float(raw)


def compress_matrix(array: np.ndarray, level: int = 6) -> bytes:
    return zlib.compress(encode_matrix_float(array), level)


# --------------------------------------------------------------------------------------------
# Frame -> SensorFrame
# --------------------------------------------------------------------------------------------

LIDAR_COLUMNS = ("x", "y", "z", "intensity", "elongation")
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
        stamp_ns = _seconds_to_ns(image.pose_timestamp) or int(frame.timestamp_micros) * 1000
        shutter = RollingShutter(
            SHUTTER_DIRECTIONS.get(calibrations[image.name].rolling_shutter_direction,
                                   "UNKNOWN"),
            float(image.shutter), _seconds_to_ns(image.camera_trigger_time),
            _seconds_to_ns(image.camera_readout_done_time))
        out[name] = CameraImage(name, stamp_ns, calib, encoded=bytes(image.image),
                                rolling_shutter=shutter)
    return out


def _seconds_to_ns(t_s: float) -> int:
    return int(round(float(t_s) * 1e9))


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


# --------------------------------------------------------------------------------------------
# Writer: SensorFrame -> Frame
# --------------------------------------------------------------------------------------------

def default_laser_geometries() -> dict[int, LaserGeometry]:
    """A Waymo-like five-laser rig: TOP 64 x 2650 and four 200 x 600 short-range lasers.

    The TOP inclinations are non-uniform (denser near the horizon), as on the real sensor. The
    mounting positions are plausible values, not a real vehicle's calibration.
    """
    from ..geometry import make_transform, rotation_z

    t = np.linspace(0.0, 1.0, 64)
    top_incl = -0.31 + 0.355 * (1.0 - (1.0 - t) ** 1.6)     # ascending, -17.8 .. +2.6 deg
    short_incl = uniform_inclinations(-np.pi / 2, np.pi / 6, 200)
    mounts = {1: (0.0, (1.43, 0.0, 2.18)), 2: (0.0, (4.07, 0.0, 0.69)),
              3: (np.pi / 2, (3.24, 1.03, 0.98)), 4: (-np.pi / 2, (3.24, -1.03, 0.98)),
              5: (np.pi, (-1.15, 0.0, 0.46))}
    out = {}
    for laser_id, (yaw, xyz) in mounts.items():
        top = laser_id == TOP_LASER_ID
        out[laser_id] = LaserGeometry(LASER_NAMES[laser_id], laser_id,
                                      make_transform(rotation_z(yaw), xyz),
                                      top_incl if top else short_incl, 2650 if top else 600)
    return out


def sensor_frame_to_proto(frame: SensorFrame,
                          lasers: dict[int, LaserGeometry] | None = None,
                          zlib_level: int = 6):
    """Build a Waymo ``Frame`` proto from a :class:`SensorFrame`.

    Lidar points go to the laser named by ``laser_id`` (all to TOP when the sweep has no laser
    ids) and are projected into that laser's range images (:func:`points_to_range_image`).
    The TOP per-pixel pose is written as the frame pose at every pixel (no motion within the
    sweep), so the official decoder reproduces the same points. Stamps are truncated to
    microseconds. Cameras must be named as Waymo cameras (``FRONT`` ...).

    Raises:
        ConversionError: a camera that Waymo cannot name, or points of a laser the rig lacks.
    """
    from waymo_open_dataset import dataset_pb2

    lasers = lasers if lasers is not None else default_laser_geometries()
    proto = dataset_pb2.Frame()
    proto.context.name = frame.sequence_id
    proto.timestamp_micros = frame.stamp_ns // 1000
    T_world_vehicle = frame.ego_pose.T_world_vehicle if frame.ego_pose is not None else np.eye(4)
    proto.pose.transform.extend(T_world_vehicle.reshape(-1).tolist())
    for geometry in lasers.values():
        calib = proto.context.laser_calibrations.add()
        calib.name = geometry.laser_id
        calib.beam_inclinations.extend(geometry.beam_inclinations_rad.tolist())
        calib.beam_inclination_min = float(geometry.beam_inclinations_rad[0])
        calib.beam_inclination_max = float(geometry.beam_inclinations_rad[-1])
        calib.extrinsic.transform.extend(geometry.T_vehicle_sensor.reshape(-1).tolist())
    if frame.lidar is not None:
        _write_lidar(proto, frame.lidar, lasers, T_world_vehicle, zlib_level)
    for camera in frame.cameras.values():
        _write_camera(proto, camera)
    if frame.boxes is not None:
        _write_labels(proto, frame.boxes)
    return proto


def _write_lidar(proto, lidar: LidarSweep, lasers: dict[int, LaserGeometry],
                 T_world_vehicle: np.ndarray, zlib_level: int) -> None:
    features = np.zeros((len(lidar), 2), np.float32)
    for j, name in enumerate(("intensity", "elongation")):
        if name in lidar.columns:
            features[:, j] = lidar.column(name)
    laser_ids = lidar.laser_id if lidar.laser_id is not None \
        else np.full(len(lidar), TOP_LASER_ID, np.int8)
    unknown = sorted(set(np.unique(laser_ids).tolist()) - set(lasers))
    if unknown:
        raise ConversionError(f"lidar points from laser id(s) {unknown} but the rig has only "
                              f"{sorted(lasers)}")
    for laser_id, geometry in sorted(lasers.items()):
        keep = laser_ids == laser_id
        first, second = points_to_range_image(lidar.xyz[keep], features[keep], geometry)
        laser = proto.lasers.add()
        laser.name = laser_id
        # Empty camera projections keep the official parser (which reads them) working.
        no_projection = zlib.compress(
            encode_zero_matrix_int32((geometry.height, geometry.width, 6)), zlib_level)
        for ri, image in ((laser.ri_return1, first), (laser.ri_return2, second)):
            ri.range_image_compressed = compress_matrix(image, zlib_level)
            ri.camera_projection_compressed = no_projection
        if laser_id == TOP_LASER_ID:
            pose = np.empty((geometry.height, geometry.width, POSE_CHANNELS), np.float32)
            pose[..., :3] = rpy_from_rotation(T_world_vehicle[:3, :3])
            pose[..., 3:] = T_world_vehicle[:3, 3]
            laser.ri_return1.range_image_pose_compressed = compress_matrix(pose, zlib_level)


def _write_camera(proto, camera: CameraImage) -> None:
    from ..geometry.camera import T_WAYMO_FROM_OPTICAL
    from ..geometry.transforms import invert_transform

    if camera.name not in CAMERA_IDS:
        raise ConversionError(f"camera {camera.name!r} has no Waymo name; expected one of "
                              f"{sorted(CAMERA_IDS)}")
    calib = camera.calibration
    T = calib.T_vehicle_sensor
    if calib.camera_convention is CameraConvention.OPTICAL:
        T = calib.T_vehicle_optical @ invert_transform(T_WAYMO_FROM_OPTICAL)
    c = proto.context.camera_calibrations.add()
    c.name = CAMERA_IDS[camera.name]
    c.intrinsic.extend([calib.K[0, 0], calib.K[1, 1], calib.K[0, 2], calib.K[1, 2],
                        *calib.distortion.tolist()])
    c.extrinsic.transform.extend(T.reshape(-1).tolist())
    c.width, c.height = calib.width, calib.height
    image = proto.images.add()
    image.name = CAMERA_IDS[camera.name]
    image.image = camera.encoded if camera.encoded is not None else _jpeg(camera.pixels)
    image.pose_timestamp = camera.stamp_ns * 1e-9
    shutter = camera.rolling_shutter
    if shutter is not None:
        c.rolling_shutter_direction = {v: k for k, v in SHUTTER_DIRECTIONS.items()}.get(
            shutter.direction, 0)
        image.shutter = shutter.shutter_s
        image.camera_trigger_time = shutter.trigger_stamp_ns * 1e-9
        image.camera_readout_done_time = shutter.readout_done_stamp_ns * 1e-9


def _jpeg(pixels: np.ndarray, quality: int = 95) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _write_labels(proto, boxes: Boxes3D) -> None:
    for i in range(len(boxes)):
        label = proto.laser_labels.add()
        _fill_label(label, boxes.boxes[i], int(boxes.labels[i]))
        label.id = str(boxes.ids[i]) if boxes.ids is not None else str(i)
        if boxes.velocities is not None:
            label.metadata.speed_x, label.metadata.speed_y = boxes.velocities[i].tolist()
        if boxes.accelerations is not None:
            label.metadata.accel_x, label.metadata.accel_y = boxes.accelerations[i].tolist()
        if boxes.num_points is not None:
            label.num_lidar_points_in_box = int(boxes.num_points[i])
        label.detection_difficulty_level = int(boxes.difficulty[i])


def _fill_label(label, box: np.ndarray, label_type: int) -> None:
    b = label.box
    (b.center_x, b.center_y, b.center_z, b.length, b.width, b.height,
     b.heading) = (float(v) for v in box)
    label.type = label_type


def write_frames(path: str | os.PathLike, frames: Iterable[SensorFrame],
                 lasers: dict[int, LaserGeometry] | None = None, zlib_level: int = 6) -> int:
    """Write SensorFrames as a Waymo segment TFRecord (atomically). Returns the frame count.

    See :func:`sensor_frame_to_proto` for the mapping; ``lasers`` defaults to
    :func:`default_laser_geometries`.
    """
    lasers = lasers if lasers is not None else default_laser_geometries()
    return write_records(path, (sensor_frame_to_proto(f, lasers, zlib_level).SerializeToString()
                                for f in frames))


# --------------------------------------------------------------------------------------------
# Predictions -> metrics Objects
# --------------------------------------------------------------------------------------------

def detections_to_objects(items: Iterable[tuple[str, Detections]]):
    """Export predictions as a Waymo metrics ``Objects`` proto (leaderboard / official eval).

    Args:
        items: ``(context_name, detections)`` pairs, one per frame; the frame timestamp is
            ``detections.stamp_ns // 1000`` microseconds (it must equal the frame's
            ``timestamp_micros``).

    Returns:
        ``metrics_pb2.Objects`` with one ``Object`` per box: box, type, score, speed (when the
        detections carry velocities), ``context_name`` and ``frame_timestamp_micros``.
    """
    from waymo_open_dataset.protos import metrics_pb2

    objects = metrics_pb2.Objects()
    for context_name, det in items:
        for i in range(len(det)):
            obj = objects.objects.add()
            _fill_label(obj.object, det.boxes[i], int(det.labels[i]))
            if det.velocities is not None:
                obj.object.metadata.speed_x, obj.object.metadata.speed_y = \
                    det.velocities[i].tolist()
            obj.score = float(det.scores[i])
            obj.context_name = context_name
            obj.frame_timestamp_micros = det.stamp_ns // 1000
    return objects


def write_objects(path: str | os.PathLike, items: Iterable[tuple[str, Detections]]) -> int:
    """Write :func:`detections_to_objects` as a serialized ``.bin`` file. Returns the count."""
    objects = detections_to_objects(items)
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_bytes(objects.SerializeToString())
    os.replace(tmp, path)
    return len(objects.objects)

"""``sensor_msgs/PointCloud2`` <-> numpy, through a structured dtype built from the message.

Reading: the message's ``fields`` (any order, any offsets, padding between fields or at the
end of a point, ``count > 1``), ``point_step``, ``row_step`` and ``is_bigendian`` give a numpy
structured dtype; :func:`cloud_to_structured` is then a zero-copy ``np.frombuffer`` view of
``msg.data`` with shape ``(N,)``, or ``(height, width)`` for an organized cloud.
:func:`cloud_to_points` returns the ``(N, C)`` float32 matrix the data model uses; it is a
zero-copy strided view when the requested fields are native float32 laid out side by side
(in the requested order), and one vectorised copy per field otherwise.

Writing: :func:`points_to_cloud` packs an ``(N, C)`` float32 matrix with one memory copy into
the message buffer; :func:`empty_cloud` hands out a writable view of a new message's buffer
(no copy at all); :func:`structured_to_cloud` writes any structured array (its dtype's
offsets, padding and byte order become the message layout).

Radar clouds carry the fields ``x, y, z, doppler, doppler_compensated, rcs``; the data model
names these columns ``doppler_mps``, ``doppler_compensated_mps`` and ``rcs_dbsm``
(:data:`RADAR_FIELD_OF_COLUMN`).
"""

from __future__ import annotations

import array
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from perception.types import Calibration, LidarSweep, RadarScan, finite_points
from perception.geometry import transform_points

from .stamps import conversion_error, ns_to_stamp

_DTYPE_OF_DATATYPE = {
    PointField.INT8: np.dtype(np.int8), PointField.UINT8: np.dtype(np.uint8),
    PointField.INT16: np.dtype(np.int16), PointField.UINT16: np.dtype(np.uint16),
    PointField.INT32: np.dtype(np.int32), PointField.UINT32: np.dtype(np.uint32),
    PointField.FLOAT32: np.dtype(np.float32), PointField.FLOAT64: np.dtype(np.float64),
}
_DATATYPE_OF_DTYPE = {dtype: code for code, dtype in _DTYPE_OF_DATATYPE.items()}

RADAR_FIELD_OF_COLUMN: dict[str, str] = {
    "doppler_mps": "doppler",
    "doppler_compensated_mps": "doppler_compensated",
    "rcs_dbsm": "rcs",
}
"""Radar column name in :class:`RadarScan` -> PointCloud2 field name."""
RADAR_COLUMN_OF_FIELD = {field: column for column, field in RADAR_FIELD_OF_COLUMN.items()}
RADAR_COLUMNS = ("x", "y", "z", "doppler_mps", "doppler_compensated_mps", "rcs_dbsm")
"""The radar columns published on a radar PointCloud2, in field order."""
XYZ = ("x", "y", "z")


# ------------------------------------------------------------------------------------------
# Message -> numpy
# ------------------------------------------------------------------------------------------

def cloud_dtype(msg: PointCloud2, topic: str = "") -> np.dtype:
    """Structured dtype of one point of ``msg`` (itemsize ``point_step``).

    Raises:
        ConversionError: unsupported datatype, duplicate or overlapping-the-end field, or a
            non-positive ``point_step``.
    """
    if msg.point_step <= 0:
        raise conversion_error(topic, msg, f"point_step must be > 0, got {msg.point_step}")
    order = ">" if msg.is_bigendian else "<"
    names, formats, offsets = [], [], []
    for field in msg.fields:
        base = _DTYPE_OF_DATATYPE.get(field.datatype)
        if base is None:
            raise conversion_error(topic, msg, f"field {field.name!r} has unsupported datatype "
                                               f"{field.datatype} (supported: 1..8, INT8.."
                                               f"FLOAT64)")
        if field.name in names:
            raise conversion_error(topic, msg, f"duplicate field {field.name!r}")
        count = max(int(field.count), 1)
        dtype = base.newbyteorder(order) if base.itemsize > 1 else base
        if field.offset + dtype.itemsize * count > msg.point_step:
            raise conversion_error(topic, msg, f"field {field.name!r} at offset {field.offset} "
                                               f"(x{count}) ends past point_step "
                                               f"{msg.point_step}")
        names.append(field.name)
        formats.append(dtype if count == 1 else (dtype, (count,)))
        offsets.append(int(field.offset))
    return np.dtype({"names": names, "formats": formats, "offsets": offsets,
                     "itemsize": int(msg.point_step)})


def _data_buffer(msg: PointCloud2) -> Any:
    data = msg.data
    if isinstance(data, (array.array, bytes, bytearray, memoryview, np.ndarray)):
        return data
    return np.asarray(data, dtype=np.uint8)  # a plain list: one copy, unavoidable


def cloud_to_structured(msg: PointCloud2, topic: str = "") -> np.ndarray:
    """Zero-copy structured view of the points: shape (width,) when ``height == 1``, else
    (height, width). Row padding (``row_step > width * point_step``) gives a strided view.

    Raises:
        ConversionError: the data length is not ``height * row_step`` (``row_step`` being
            ``width * point_step`` for unpadded rows), or a bad layout (see :func:`cloud_dtype`).
    """
    dtype = cloud_dtype(msg, topic)
    width, height, step = int(msg.width), int(msg.height), int(msg.point_step)
    row_step = int(msg.row_step) or width * step
    data = _data_buffer(msg)
    n_bytes = len(memoryview(data).cast("B")) if not isinstance(data, np.ndarray) else data.nbytes
    if row_step < width * step:
        raise conversion_error(topic, msg, f"row_step {row_step} < width {width} x point_step "
                                           f"{step}")
    if n_bytes != height * row_step:
        raise conversion_error(topic, msg, f"data length {n_bytes} != height {height} x "
                                           f"row_step {row_step} (width {width} x point_step "
                                           f"{step} = {width * step} per row)")
    raw = np.frombuffer(data, dtype=np.uint8)
    if row_step == width * step:
        points = raw.view(dtype)
    else:
        points = raw.reshape(height, row_step)[:, :width * step].view(dtype)
    return points.reshape(height, width) if height > 1 else points.reshape(width)


def cloud_to_points(msg: PointCloud2, topic: str = "", columns: Sequence[str] | None = None,
                    column_of_field: Mapping[str, str] | None = None
                    ) -> tuple[np.ndarray, tuple[str, ...]]:
    """Points of ``msg`` as an ``(N, C)`` float32 matrix (organized clouds are flattened).

    Args:
        columns: field names to read, in order; default x, y, z, then every other scalar
            field in message order.
        column_of_field: renames fields to column names (e.g. :data:`RADAR_COLUMN_OF_FIELD`).

    Returns:
        ``(points, column_names)``; ``points`` is a view of ``msg.data`` when the layout allows.

    Raises:
        ConversionError: x, y or z missing, a requested field missing, or a bad layout.
    """
    structured = cloud_to_structured(msg, topic).reshape(-1)
    fields = structured.dtype.fields
    missing_xyz = [name for name in XYZ if name not in fields]
    if missing_xyz:
        raise conversion_error(topic, msg, f"missing field(s) {missing_xyz}; a cloud needs x, "
                                           f"y and z (fields: {list(fields)})")
    if columns is None:
        others = [n for n in structured.dtype.names
                  if n not in XYZ and fields[n][0].shape == ()]
        columns = XYZ + tuple(others)
    absent = [name for name in columns if name not in fields]
    if absent:
        raise conversion_error(topic, msg, f"missing field(s) {absent} (fields: {list(fields)})")
    multi = [name for name in columns if fields[name][0].shape != ()]
    if multi:
        raise conversion_error(topic, msg, f"field(s) {multi} have count > 1; a point column "
                                           f"needs count 1")
    rename = column_of_field or {}
    names = tuple(rename.get(name, name) for name in columns)
    return _as_float32_matrix(structured, tuple(columns)), names


def _as_float32_matrix(structured: np.ndarray, columns: tuple[str, ...]) -> np.ndarray:
    """(N, C) float32; a strided view when the columns are adjacent native float32 fields."""
    fields = structured.dtype.fields
    first = fields[columns[0]][1]
    native_f4 = np.dtype(np.float32)
    adjacent = all(fields[name][0] == native_f4 and fields[name][1] == first + 4 * i
                   for i, name in enumerate(columns))
    n = structured.shape[0]
    if adjacent and structured.flags.c_contiguous and n > 0:
        raw = structured.view(np.uint8)  # plain bytes: structured dtypes cannot export a buffer
        return np.ndarray((n, len(columns)), dtype=np.float32, buffer=raw, offset=first,
                          strides=(structured.dtype.itemsize, 4))
    out = np.empty((n, len(columns)), dtype=np.float32)
    for i, name in enumerate(columns):
        out[:, i] = structured[name]  # one vectorised (byte-swapping, casting) copy per field
    return out


# ------------------------------------------------------------------------------------------
# numpy -> message
# ------------------------------------------------------------------------------------------

def _header(stamp_ns: int, frame_id: str) -> Header:
    return Header(stamp=ns_to_stamp(stamp_ns), frame_id=frame_id)


def _message_buffer(contiguous: np.ndarray) -> array.array:
    """One memcpy of ``contiguous`` into the ``array.array('B')`` rclpy stores as ``data``."""
    buffer = array.array("B")
    buffer.frombytes(contiguous.view(np.uint8).reshape(-1))  # also fine for zero points
    return buffer


def points_to_cloud(points: np.ndarray, columns: Sequence[str], stamp_ns: int, frame_id: str,
                    field_of_column: Mapping[str, str] | None = None,
                    height: int = 1) -> PointCloud2:
    """An ``(N, C)`` float32 matrix -> a dense PointCloud2 of float32 fields (no padding).

    ``height > 1`` writes an organized cloud of ``height x N / height`` points (row-major).
    """
    points = np.ascontiguousarray(points, dtype=np.float32)
    if points.ndim != 2 or points.shape[1] != len(columns):
        raise ValueError(f"points must be (N, {len(columns)}) for columns {tuple(columns)}, "
                         f"got {points.shape}")
    n, c = points.shape
    if height < 1 or n % height:
        raise ValueError(f"{n} points cannot form {height} rows")
    rename = field_of_column or {}
    fields = [PointField(name=rename.get(name, name), offset=4 * i,
                         datatype=PointField.FLOAT32, count=1) for i, name in enumerate(columns)]
    width = n // height
    return PointCloud2(header=_header(stamp_ns, frame_id), height=height, width=width,
                       fields=fields, is_bigendian=False, point_step=4 * c,
                       row_step=4 * c * width, data=_message_buffer(points),
                       is_dense=bool(np.isfinite(points).all()))


def empty_cloud(n_points: int, columns: Sequence[str], stamp_ns: int, frame_id: str,
                field_of_column: Mapping[str, str] | None = None
                ) -> tuple[PointCloud2, np.ndarray]:
    """A dense float32 PointCloud2 of ``n_points`` and a writable ``(N, C)`` float32 view of
    its data: a producer that writes its points into the view builds the message without
    any copy."""
    buffer = array.array("B", bytes(4 * len(columns))) * n_points
    msg = points_to_cloud(np.zeros((0, len(columns)), np.float32), columns, stamp_ns, frame_id,
                          field_of_column)
    msg.width, msg.row_step, msg.data = n_points, 4 * len(columns) * n_points, buffer
    view = np.frombuffer(msg.data, dtype=np.float32).reshape(n_points, len(columns))
    return msg, view


def structured_to_cloud(points: np.ndarray, stamp_ns: int, frame_id: str) -> PointCloud2:
    """Any structured array, shape (N,) or (height, width) -> PointCloud2 with the same layout.

    The dtype's field offsets, padding (``itemsize``) and byte order are kept; every field must
    share one byte order (a message has one ``is_bigendian`` flag).
    """
    dtype = points.dtype
    if dtype.names is None:
        raise ValueError("points must be a structured array")
    fields, orders = [], set()
    for name in dtype.names:
        sub, offset = dtype.fields[name][:2]
        base, count = (sub.base, int(np.prod(sub.shape))) if sub.shape else (sub, 1)
        if base.itemsize > 1:
            orders.add(base.byteorder == ">" or (base.byteorder == "=" and
                                                   sys.byteorder == "big"))
        code = _DATATYPE_OF_DTYPE.get(base.newbyteorder("="))
        if code is None:
            raise ValueError(f"field {name!r}: dtype {base} has no PointField datatype")
        fields.append(PointField(name=name, offset=int(offset), datatype=code, count=count))
    if len(orders) > 1:
        raise ValueError("all fields must share one byte order")
    height, width = (points.shape if points.ndim == 2 else (1, points.shape[0]))
    return PointCloud2(header=_header(stamp_ns, frame_id), height=height, width=width,
                       fields=fields, is_bigendian=bool(orders and orders.pop()),
                       point_step=dtype.itemsize, row_step=dtype.itemsize * width,
                       data=_message_buffer(np.ascontiguousarray(points)), is_dense=True)


# ------------------------------------------------------------------------------------------
# Data model <-> message
# ------------------------------------------------------------------------------------------

def lidar_sweep_to_cloud(sweep: LidarSweep, frame_id: str) -> PointCloud2:
    """A sweep (vehicle frame) -> PointCloud2 in ``frame_id`` with one float32 field per
    column, named as the columns (x, y, z, intensity, ..., time_offset_s)."""
    return points_to_cloud(sweep.points, sweep.columns, sweep.stamp_ns, frame_id)


def radar_scan_to_cloud(scan: RadarScan, frame_id: str,
                        columns: Sequence[str] = RADAR_COLUMNS) -> PointCloud2:
    """A radar scan -> PointCloud2 with fields x, y, z, doppler, doppler_compensated, rcs."""
    index = [scan.columns.index(name) for name in columns]
    return points_to_cloud(scan.points[:, index], columns, scan.stamp_ns, frame_id,
                           field_of_column=RADAR_FIELD_OF_COLUMN)


def _to_vehicle(points: np.ndarray, T_vehicle_frame: np.ndarray | None) -> np.ndarray:
    return points if T_vehicle_frame is None else transform_points(T_vehicle_frame, points)


def cloud_to_lidar_sweep(msg: PointCloud2, sensor_name: str, stamp_ns: int, topic: str = "",
                         T_vehicle_frame: np.ndarray | None = None,
                         calibration: Calibration | None = None) -> LidarSweep:
    """PointCloud2 -> :class:`LidarSweep` in the vehicle frame.

    ``T_vehicle_frame`` (4, 4) maps the cloud's ``header.frame_id`` into the vehicle frame
    (None: the cloud is already in the vehicle frame). Non-finite points (an organized cloud's
    invalid returns) are dropped.
    """
    points, columns = cloud_to_points(msg, topic)
    if not np.isfinite(points).all():
        points, _ = finite_points(points)
    return LidarSweep(sensor_name, stamp_ns, _to_vehicle(points, T_vehicle_frame), columns,
                      calibration=calibration)


def cloud_to_radar_scan(msg: PointCloud2, sensor_name: str, stamp_ns: int, topic: str = "",
                        T_vehicle_frame: np.ndarray | None = None,
                        calibration: Calibration | None = None) -> RadarScan:
    """Radar PointCloud2 (x, y, z, doppler, doppler_compensated, rcs) -> :class:`RadarScan`.

    Doppler values are radial speeds and are not rotated by ``T_vehicle_frame``.
    """
    wanted = tuple(RADAR_FIELD_OF_COLUMN.get(name, name) for name in RADAR_COLUMNS)
    points, columns = cloud_to_points(msg, topic, columns=wanted,
                                      column_of_field=RADAR_COLUMN_OF_FIELD)
    if not np.isfinite(points).all():
        points, _ = finite_points(points)
    return RadarScan(sensor_name, stamp_ns, _to_vehicle(points, T_vehicle_frame), columns,
                     calibration=calibration)

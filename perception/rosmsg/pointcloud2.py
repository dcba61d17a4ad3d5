"""``sensor_msgs/PointCloud2`` <-> numpy, through a structured dtype built from the message.

Reading: the message's ``fields`` (any order, any offsets, padding between fields or at the
end of a point, ``count > 1``), ``point_step``, ``row_step`` and ``is_bigendian`` give a numpy
structured dtype; :func:`cloud_to_structured` is then a zero-copy ``np.frombuffer`` view of
``msg.data`` with shape ``(N,)``, or ``(height, width)`` for an organized cloud.
:func:`cloud_to_points` returns the ``(N, C)`` float32 matrix the data model uses; it is a
zero-copy strided view when the requested fields are native float32 laid out side by side
(in the requested order), and one vectorised copy per field otherwise.

Lidar clouds from other drivers are read by field name: x, y, z, then every other scalar
field. A per-point time field becomes the ``time_offset_s`` column (seconds after the header
stamp): ``time_offset_s`` as it is, ``time`` (seconds, Velodyne), ``t`` and ``offset_time``
(integer nanoseconds, Ouster, Livox), ``timestamp`` (absolute seconds, Hesai). Fields
``laser_id`` and ``return_index`` become :attr:`LidarSweep.laser_id` / ``return_index``.

Writing (:func:`points_to_cloud`, :func:`structured_to_cloud`, :func:`lidar_sweep_to_cloud`,
:func:`radar_scan_to_cloud`) goes through a :class:`~.factory.MessageFactory`; the data is
copied once into the message buffer.

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

from ..geometry import transform_points
from ..types import Calibration, LidarSweep, RadarScan, finite_points
from .factory import MessageFactory, header_msg
from .stamps import NS_PER_S, conversion_error

INT8, UINT8, INT16, UINT16, INT32, UINT32, FLOAT32, FLOAT64 = range(1, 9)
"""``sensor_msgs/PointField`` datatype constants."""
DTYPE_OF_DATATYPE = {
    INT8: np.dtype(np.int8), UINT8: np.dtype(np.uint8),
    INT16: np.dtype(np.int16), UINT16: np.dtype(np.uint16),
    INT32: np.dtype(np.int32), UINT32: np.dtype(np.uint32),
    FLOAT32: np.dtype(np.float32), FLOAT64: np.dtype(np.float64),
}
DATATYPE_OF_DTYPE = {dtype: code for code, dtype in DTYPE_OF_DATATYPE.items()}

RADAR_FIELD_OF_COLUMN: dict[str, str] = {
    "doppler_mps": "doppler",
    "doppler_compensated_mps": "doppler_compensated",
    "rcs_dbsm": "rcs",
}
"""Radar column name in :class:`RadarScan` -> PointCloud2 field name."""
RADAR_COLUMN_OF_FIELD = {field: column for column, field in RADAR_FIELD_OF_COLUMN.items()}
RADAR_COLUMNS = ("x", "y", "z", "doppler_mps", "doppler_compensated_mps", "rcs_dbsm")
"""The radar columns every radar PointCloud2 carries, in field order."""
XYZ = ("x", "y", "z")
MAX_POINT_STEP_BYTES = 1 << 16
"""The largest point a cloud may declare. Real sensors use tens of bytes; NumPy cannot describe
a point of 2**31 bytes or more, which the message's uint32 field allows."""
TIME_OFFSET_COLUMN = "time_offset_s"
TIME_FIELD_SCALE_S: dict[str, float] = {"time_offset_s": 1.0, "time": 1.0, "t": 1e-9,
                                        "offset_time": 1e-9}
"""Per-point time fields relative to the header stamp, and their unit in seconds."""
ABSOLUTE_TIME_FIELDS = ("timestamp",)
"""Per-point time fields in absolute seconds."""
INDEX_FIELDS = ("laser_id", "return_index")
"""int8 fields that become :class:`LidarSweep` arrays rather than point columns."""


# ------------------------------------------------------------------------------------------
# Message -> numpy
# ------------------------------------------------------------------------------------------

def cloud_dtype(msg: Any, topic: str = "") -> np.dtype:
    """Structured dtype of one point of ``msg`` (itemsize ``point_step``).

    Raises:
        ConversionError: unsupported datatype, duplicate or overlapping-the-end field, or a
            non-positive ``point_step``.
    """
    if not 0 < msg.point_step <= MAX_POINT_STEP_BYTES:
        raise conversion_error(topic, msg, f"point_step must be in [1, {MAX_POINT_STEP_BYTES}] "
                                           f"bytes, got {msg.point_step}")
    order = ">" if msg.is_bigendian else "<"
    names, formats, offsets = [], [], []
    for field in msg.fields:
        base = DTYPE_OF_DATATYPE.get(field.datatype)
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


def _data_buffer(msg: Any) -> Any:
    data = msg.data
    if isinstance(data, (array.array, bytes, bytearray, memoryview, np.ndarray)):
        return data
    return np.asarray(data, dtype=np.uint8)  # a plain list: one copy, unavoidable


def cloud_to_structured(msg: Any, topic: str = "") -> np.ndarray:
    """Zero-copy structured view of the points: shape (width,) when ``height == 1``, else
    (height, width) (an empty cloud of height 0 included). Row padding (``row_step > width * point_step``) gives a strided view.

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
    # height 0 (with no data): no points, as (0, width); only height 1 is a flat cloud
    return points.reshape(width) if height == 1 else points.reshape(height, width)


def cloud_to_points(msg: Any, topic: str = "", columns: Sequence[str] | None = None,
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
    columns = _columns(structured, msg, topic, columns)
    rename = column_of_field or {}
    names = tuple(rename.get(name, name) for name in columns)
    return _as_float32_matrix(structured, tuple(columns)), names


def _columns(structured: np.ndarray, msg: Any, topic: str,
             columns: Sequence[str] | None) -> tuple[str, ...]:
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
    return tuple(columns)


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
# Message -> data model
# ------------------------------------------------------------------------------------------

def _to_vehicle(points: np.ndarray, T_vehicle_frame: np.ndarray | None) -> np.ndarray:
    return points if T_vehicle_frame is None else transform_points(T_vehicle_frame, points)


def _time_field(structured: np.ndarray) -> str | None:
    names = structured.dtype.names
    for name in (*TIME_FIELD_SCALE_S, *ABSOLUTE_TIME_FIELDS):
        if name in names and structured.dtype.fields[name][0].shape == ():
            return name
    return None


def _lidar_columns(structured: np.ndarray, msg: Any, topic: str, stamp_ns: int
                   ) -> tuple[np.ndarray, tuple[str, ...]]:
    """(N, C) float32 and names: x, y, z, the other scalar fields in message order, a time
    field as ``time_offset_s`` in seconds after ``stamp_ns``; index fields left out."""
    names = _columns(structured, msg, topic, None)
    time_field = _time_field(structured)
    keep = tuple(n for n in names if n not in INDEX_FIELDS)
    if time_field in (None, TIME_OFFSET_COLUMN):
        return _as_float32_matrix(structured, keep), keep
    points = _as_float32_matrix(structured, tuple(n for n in keep if n != time_field))
    values = structured[time_field].astype(np.float64)
    if time_field in ABSOLUTE_TIME_FIELDS:
        values = values - stamp_ns / NS_PER_S
    else:
        values = values * TIME_FIELD_SCALE_S[time_field]
    columns = tuple(n for n in keep if n != time_field) + (TIME_OFFSET_COLUMN,)
    return np.column_stack([points, values.astype(np.float32)]), columns


def _index_array(structured: np.ndarray, name: str) -> np.ndarray | None:
    if name not in structured.dtype.names or structured.dtype.fields[name][0].shape != ():
        return None
    return structured[name].astype(np.int8)


def cloud_to_lidar_sweep(msg: Any, sensor_name: str, stamp_ns: int, topic: str = "",
                         T_vehicle_frame: np.ndarray | None = None,
                         calibration: Calibration | None = None, *,
                         drop_origin: bool = False) -> LidarSweep:
    """PointCloud2 -> :class:`LidarSweep` in the vehicle frame, fields read by name (see the
    module doc for time and index fields).

    ``T_vehicle_frame`` (4, 4) maps the cloud's ``header.frame_id`` into the vehicle frame
    (None: the cloud is already in the vehicle frame). Non-finite points (an organized cloud's
    invalid returns) are dropped; with ``drop_origin`` also points at exactly (0, 0, 0) in the
    cloud's frame, which drivers such as Ouster's write for pixels without a return.
    """
    structured = cloud_to_structured(msg, topic).reshape(-1)
    points, columns = _lidar_columns(structured, msg, topic, stamp_ns)
    indices = {name: _index_array(structured, name) for name in INDEX_FIELDS}
    keep = None
    if not np.isfinite(points).all():
        keep = np.isfinite(points).all(axis=1)
    if drop_origin:
        at_origin = ~points[:, :3].any(axis=1)
        if at_origin.any():
            keep = ~at_origin if keep is None else keep & ~at_origin
    if keep is not None:
        points = points[keep]
        indices = {k: v if v is None else v[keep] for k, v in indices.items()}
    return LidarSweep(sensor_name, stamp_ns, _to_vehicle(points, T_vehicle_frame), columns,
                      laser_id=indices["laser_id"], return_index=indices["return_index"],
                      calibration=calibration)


def cloud_to_radar_scan(msg: Any, sensor_name: str, stamp_ns: int, topic: str = "",
                        T_vehicle_frame: np.ndarray | None = None,
                        calibration: Calibration | None = None) -> RadarScan:
    """Radar PointCloud2 (x, y, z, doppler, doppler_compensated, rcs, then any other scalar
    fields) -> :class:`RadarScan` with columns :data:`RADAR_COLUMNS` and the others after them.

    Doppler values are radial speeds and are not rotated by ``T_vehicle_frame``.
    """
    wanted = tuple(RADAR_FIELD_OF_COLUMN.get(name, name) for name in RADAR_COLUMNS)
    structured = cloud_to_structured(msg, topic).reshape(-1)
    fields = structured.dtype.fields
    extra = tuple(n for n in structured.dtype.names
                  if n not in wanted and fields[n][0].shape == ())
    points, columns = cloud_to_points(msg, topic, columns=wanted + extra,
                                      column_of_field=RADAR_COLUMN_OF_FIELD)
    if not np.isfinite(points).all():
        points, _ = finite_points(points)
    return RadarScan(sensor_name, stamp_ns, _to_vehicle(points, T_vehicle_frame), columns,
                     calibration=calibration)


# ------------------------------------------------------------------------------------------
# numpy / data model -> message
# ------------------------------------------------------------------------------------------

def points_to_cloud(factory: MessageFactory, points: np.ndarray, columns: Sequence[str],
                    stamp_ns: int, frame_id: str,
                    field_of_column: Mapping[str, str] | None = None, height: int = 1) -> Any:
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
    fields = [factory.new("sensor_msgs/msg/PointField", name=rename.get(name, name),
                          offset=4 * i, datatype=FLOAT32, count=1)
              for i, name in enumerate(columns)]
    width = n // height
    return factory.new("sensor_msgs/msg/PointCloud2", header=header_msg(factory, stamp_ns,
                                                                         frame_id),
                       height=height, width=width, fields=fields, is_bigendian=False,
                       point_step=4 * c, row_step=4 * c * width,
                       data=factory.bytes_field(points.view(np.uint8).reshape(-1)),
                       is_dense=bool(np.isfinite(points).all()))


def structured_to_cloud(factory: MessageFactory, points: np.ndarray, stamp_ns: int,
                        frame_id: str) -> Any:
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
        code = DATATYPE_OF_DTYPE.get(base.newbyteorder("="))
        if code is None:
            raise ValueError(f"field {name!r}: dtype {base} has no PointField datatype")
        fields.append(factory.new("sensor_msgs/msg/PointField", name=name, offset=int(offset),
                                  datatype=code, count=count))
    if len(orders) > 1:
        raise ValueError("all fields must share one byte order")
    height, width = (points.shape if points.ndim == 2 else (1, points.shape[0]))
    data = np.ascontiguousarray(points).view(np.uint8).reshape(-1)
    return factory.new("sensor_msgs/msg/PointCloud2",
                       header=header_msg(factory, stamp_ns, frame_id), height=height,
                       width=width, fields=fields, is_bigendian=bool(orders and orders.pop()),
                       point_step=dtype.itemsize, row_step=dtype.itemsize * width,
                       data=factory.bytes_field(data), is_dense=True)


def lidar_sweep_to_cloud(factory: MessageFactory, sweep: LidarSweep, frame_id: str) -> Any:
    """A sweep (vehicle frame) -> PointCloud2 in ``frame_id``: one float32 field per column,
    named as the columns (x, y, z, intensity, ..., time_offset_s), then int8 ``laser_id`` and
    ``return_index`` fields when the sweep has them (read back by
    :func:`cloud_to_lidar_sweep`)."""
    indices = [(name, getattr(sweep, name)) for name in INDEX_FIELDS
               if getattr(sweep, name) is not None]
    if not indices:
        return points_to_cloud(factory, sweep.points, sweep.columns, sweep.stamp_ns, frame_id)
    formats = [(name, "<f4") for name in sweep.columns] + [(name, "i1") for name, _ in indices]
    structured = np.empty(len(sweep), np.dtype(formats))
    for i, name in enumerate(sweep.columns):
        structured[name] = sweep.points[:, i]
    for name, values in indices:
        structured[name] = values
    return structured_to_cloud(factory, structured, sweep.stamp_ns, frame_id)


def radar_scan_to_cloud(factory: MessageFactory, scan: RadarScan, frame_id: str,
                        columns: Sequence[str] = RADAR_COLUMNS) -> Any:
    """A radar scan -> PointCloud2 with fields x, y, z, doppler, doppler_compensated, rcs
    (``columns``: which columns to write, e.g. ``scan.columns`` for all of them)."""
    index = [scan.columns.index(name) for name in columns]
    return points_to_cloud(factory, scan.points[:, index], columns, scan.stamp_ns, frame_id,
                           field_of_column=RADAR_FIELD_OF_COLUMN)

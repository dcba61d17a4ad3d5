"""Fuzzing the ROS message conversions of :mod:`perception.rosmsg` (shared by replay and the
nodes), on ``rosbags`` message objects as a bag or a subscription gives them.

Targets:

- ``pointcloud2``: clouds with any fields by name (x, y, z, intensity, the per-point time
  fields, laser_id, radar fields), in any order, with padding, wrong or unknown datatypes,
  ``count`` 0 or > 1, offsets past ``point_step``, big- and little-endian data, hostile
  ``width`` / ``height`` / ``point_step`` / ``row_step``, data of the wrong length, and NaN,
  infinite or huge values -> :func:`cloud_to_lidar_sweep` and :func:`cloud_to_radar_scan`.
  A cloud with a valid layout must also read back its x, y, z exactly;
- ``image``: raw ``Image`` (any encoding string, ``step``, sizes, data length) and
  ``CompressedImage`` (JPEG / PNG bytes mutated, truncated, other formats, and headers that
  claim huge images) -> :class:`CameraImage`, decoded as the detector decodes it;
- ``camera_info``: ``CameraInfo`` with hostile K, D, R, P (NaN, zero and negative focal
  lengths, huge values), distortion models and image sizes -> the camera
  :class:`Calibration`; an accepted calibration must be finite with fx, fy > 0.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from perception.errors import ConversionError, DataError
from perception.replay.typestore import typestore
from perception.rosmsg.image import (
    camera_info_to_calibration,
    compressed_to_camera_image,
    image_to_camera_image,
)
from perception.rosmsg.pointcloud2 import (
    DTYPE_OF_DATATYPE,
    cloud_to_lidar_sweep,
    cloud_to_points,
    cloud_to_radar_scan,
)
from perception.types import Calibration, CameraConvention

from . import _builders
from ._fuzz import contract, fuzz_settings, seeded
from ._strategies import EXTREME_FLOATS, hostile_floats, hostile_ints, mutated_bytes

_T = typestore().types
UINT32 = (0, 2**32 - 1)
_STAMP_NS = 1_700_000_000_000_000_000
_T_SENSOR = np.eye(4)
_T_SENSOR[:3, 3] = (1.0, 0.0, 1.8)


def _header(frame_id: str = "top"):
    return _T["std_msgs/msg/Header"](
        stamp=_T["builtin_interfaces/msg/Time"](sec=1_700_000_000, nanosec=0),
        frame_id=frame_id)


# ------------------------------------------------------------------------------------------
# PointCloud2
# ------------------------------------------------------------------------------------------

_FIELD_NAMES = ("x", "y", "z", "intensity", "time", "t", "timestamp", "offset_time",
                "time_offset_s", "laser_id", "return_index", "ring", "doppler",
                "doppler_compensated", "rcs", "")


@st.composite
def cloud_layouts(draw):
    """``(fields, point_step, big_endian, valid)``: a packed layout of named fields (any order,
    optional padding), then maybe one hostile edit (``valid`` says whether none was made)."""
    names = draw(st.lists(st.sampled_from(_FIELD_NAMES[:-1]), min_size=0, max_size=7,
                          unique=True))
    if draw(st.integers(0, 3)):
        names = list(dict.fromkeys(["x", "y", "z"] + names))   # most clouds have x, y, z
        names = draw(st.permutations(names))
    fields, offset = [], 0
    for name in names:
        datatype = draw(st.sampled_from([7, 7, 7, 8, 1, 2, 3, 4, 5, 6]))
        count = draw(st.sampled_from([1] * 10 + [2, 3])) if name not in "xyz" else 1
        offset += draw(st.sampled_from([0, 0, 0, 1, 2, 4]))   # padding before the field
        fields.append([name, offset, datatype, count])
        offset += DTYPE_OF_DATATYPE[datatype].itemsize * count
    point_step = offset + draw(st.sampled_from([0, 0, 1, 4, 16]))  # padding at the end
    valid = True
    if fields and draw(st.integers(0, 2)) == 0:
        valid = False
        f = draw(st.sampled_from(fields))
        edit = draw(st.sampled_from(["datatype", "count", "offset", "name", "duplicate",
                                     "point_step"]))
        if edit == "datatype":
            f[2] = draw(st.sampled_from([0, 9, 17, 255]))
        elif edit == "count":
            f[3] = draw(st.sampled_from([0, 2**20, 2**32 - 1]))
        elif edit == "offset":
            f[1] = draw(st.sampled_from([point_step, point_step - 1, 2**31, 2**32 - 1]))
        elif edit == "name":
            f[0] = draw(st.sampled_from(_FIELD_NAMES))
        elif edit == "duplicate":
            fields.append(list(f))
        else:
            point_step = draw(hostile_ints(*UINT32))
    big_endian = draw(st.booleans())
    return fields, point_step, big_endian, valid


def _structured(fields, point_step, big_endian) -> np.dtype | None:
    order = ">" if big_endian else "<"
    try:
        return np.dtype({"names": [f[0] for f in fields],
                         "formats": [(DTYPE_OF_DATATYPE[f[2]].newbyteorder(order), (f[3],))
                                     if f[3] > 1 else DTYPE_OF_DATATYPE[f[2]].newbyteorder(order)
                                     for f in fields],
                         "offsets": [f[1] for f in fields], "itemsize": point_step})
    except (KeyError, ValueError, TypeError):
        return None


@st.composite
def clouds(draw):
    """``(msg, expected xyz or None)``: a PointCloud2 of a drawn layout and values."""
    fields, point_step, big_endian, valid = draw(cloud_layouts())
    height = draw(st.sampled_from([1, 1, 1, 2, 4]))
    width = draw(st.integers(0, 12))
    dtype = _structured(fields, point_step, big_endian) if valid and point_step else None
    expected = None
    if dtype is not None:
        points = np.zeros(height * width, dtype)
        # values from a drawn seed (drawing each one would make generation the slow part),
        # then up to 3 hostile values planted in float fields
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        errstate = np.errstate(all="ignore")        # extreme float64 values cast to float32
        errstate.__enter__()
        points.view(np.uint8)[:] = rng.integers(0, 256, points.nbytes, dtype=np.uint8)
        for name in dtype.names if points.size else ():
            if dtype.fields[name][0].base.kind == "f":
                column = points[name].reshape(points.size, -1)
                column[:] = rng.uniform(-200.0, 200.0, column.shape)
                for _ in range(draw(st.integers(0, 3)) if points.size else 0):
                    column.flat[draw(st.integers(0, column.size - 1))] = \
                        draw(st.sampled_from(EXTREME_FLOATS))
        data = points.view(np.uint8).reshape(-1)
        if {"x", "y", "z"} <= set(dtype.names) and all(
                dtype.fields[n][0].shape == () for n in ("x", "y", "z")):
            expected = np.stack([points[n].astype(np.float32) for n in ("x", "y", "z")], 1)
        errstate.__exit__(None, None, None)
    else:
        data = np.frombuffer(draw(st.binary(max_size=256)), np.uint8)
    row_step = width * point_step
    edit = draw(st.sampled_from(["none", "none", "none", "width", "height", "row_step",
                                 "cut", "grow"]))
    if edit != "none":
        expected = None
    if edit == "width":
        width = draw(hostile_ints(*UINT32))
    elif edit == "height":
        height = draw(hostile_ints(*UINT32))
    elif edit == "row_step":
        row_step = draw(hostile_ints(*UINT32))
    elif edit == "cut":
        data = data[:draw(st.integers(0, max(data.size - 1, 0)))]
    elif edit == "grow":
        data = np.concatenate([data, np.zeros(draw(st.integers(1, 40)), np.uint8)])
    msg = _T["sensor_msgs/msg/PointCloud2"](
        header=_header(), height=height, width=width,
        fields=[_T["sensor_msgs/msg/PointField"](name=f[0], offset=f[1], datatype=f[2],
                                                  count=f[3]) for f in fields],
        is_bigendian=big_endian, point_step=point_step, row_step=row_step,
        data=np.ascontiguousarray(data), is_dense=False)
    return msg, expected


def _read_cloud(msg, expected):
    calibration = Calibration("TOP", _T_SENSOR)
    sweep = cloud_to_lidar_sweep(msg, "TOP", _STAMP_NS, "/sensors/lidar/points", _T_SENSOR,
                                 calibration, drop_origin=True)
    assert sweep.points.dtype == np.float32 and np.isfinite(sweep.points).all()
    if expected is not None:
        points, _ = cloud_to_points(msg, "/sensors/lidar/points", columns=("x", "y", "z"))
        np.testing.assert_array_equal(points, expected)
    try:
        cloud_to_radar_scan(msg, "RADAR_FRONT", _STAMP_NS, "/sensors/radar/front/points",
                            _T_SENSOR, Calibration("RADAR_FRONT", _T_SENSOR))
    except ConversionError:
        pass                # a lidar cloud has no doppler: refused with a typed error
    return sweep


@seeded
@fuzz_settings()
@given(cloud=clouds())
def test_fuzz_pointcloud2(cloud):
    contract("pointcloud2", _read_cloud, *cloud)


# ------------------------------------------------------------------------------------------
# Image and CompressedImage
# ------------------------------------------------------------------------------------------

_CAMERA = Calibration("FRONT", np.eye(4), K=np.array([[20.0, 0, 8], [0, 20.0, 6], [0, 0, 1]]),
                      distortion=np.zeros(5), width=16, height=12,
                      camera_convention=CameraConvention.OPTICAL)
_JPEG = _builders.tiny_jpeg()


def _png(width: int = 16, height: int = 12) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    pixels = (np.arange(width * height * 3) % 251).astype(np.uint8).reshape(height, width, 3)
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


_PNG = _png()


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` RGB pixels over a tiny compressed body."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 4096)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + \
        chunk(b"IEND", b"")


def _jpeg_claiming(width: int, height: int) -> bytes:
    """The tiny JPEG with its frame header (SOF0) claiming ``width x height``."""
    data = bytearray(_JPEG)
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


_BOMBS = [_png_claiming(30000, 30000), _png_claiming(12000, 12000), _png_claiming(2**31 - 1, 1),
          _jpeg_claiming(65000, 65000), _jpeg_claiming(12000, 9000), _png_claiming(16, 12),
          _jpeg_claiming(16, 13)]
_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "16UC1", "32FC1",
              "bayer_rggb8", "yuv422", "", "RGB8", "rgb8\0")


@st.composite
def raw_images(draw):
    encoding = draw(st.one_of(st.sampled_from(_ENCODINGS), st.text(max_size=8)))
    channels = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}.get(encoding, 3)
    width, height = 16, 12
    step = width * channels + draw(st.sampled_from([0, 0, 0, 1, 4]))
    edit = draw(st.sampled_from(["none", "none", "width", "height", "step", "cut", "grow"]))
    size = step * height
    if edit == "width":
        width = draw(hostile_ints(*UINT32))
    elif edit == "height":
        height = draw(hostile_ints(*UINT32))
    elif edit == "step":
        step = draw(hostile_ints(*UINT32))
    elif edit == "cut":
        size = draw(st.integers(0, max(size - 1, 0)))
    elif edit == "grow":
        size += draw(st.integers(1, 64))
    data = np.frombuffer(draw(st.binary(min_size=min(size, 64), max_size=min(size, 64)))
                         .ljust(size, b"\x80")[:size], np.uint8)
    return _T["sensor_msgs/msg/Image"](
        header=_header("front_optical"), height=height, width=width, encoding=encoding,
        is_bigendian=draw(st.integers(0, 1)), step=step, data=data)


@st.composite
def compressed_images(draw):
    data = draw(st.one_of(mutated_bytes(_JPEG), mutated_bytes(_PNG),
                          st.sampled_from(_BOMBS), st.binary(max_size=64),
                          st.builds(lambda n: _JPEG[:n], st.integers(0, len(_JPEG))),
                          st.builds(lambda n: _PNG[:n], st.integers(0, len(_PNG)))))
    fmt = draw(st.sampled_from(["jpeg", "png", "rgb8; jpeg compressed bgr8", "", "tiff"]))
    return _T["sensor_msgs/msg/CompressedImage"](header=_header("front_optical"), format=fmt,
                                                 data=np.frombuffer(data, np.uint8))


def _read_image(msg):
    if hasattr(msg, "format"):
        image = compressed_to_camera_image(msg, _CAMERA, "/sensors/camera/front/image_raw/"
                                                          "compressed")
    else:
        image = image_to_camera_image(msg, _CAMERA, "/sensors/camera/front/image_raw")
    pixels = image.image
    assert pixels.shape == (12, 16, 3) and pixels.dtype == np.uint8
    return image


@seeded
@fuzz_settings()
@given(msg=st.one_of(raw_images(), compressed_images()))
def test_fuzz_image(msg):
    contract("image", _read_image, msg)


# ------------------------------------------------------------------------------------------
# CameraInfo
# ------------------------------------------------------------------------------------------

_K = [20.0, 0.0, 8.0, 0.0, 20.0, 6.0, 0.0, 0.0, 1.0]
_P = [20.0, 0.0, 8.0, 0.0, 0.0, 20.0, 6.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def _edited(draw, values: list[float]) -> np.ndarray:
    out = list(values)
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(out) - 1))
        out[i] = draw(st.one_of(hostile_floats(), st.sampled_from([0.0, -20.0, 1e-300])))
    return np.asarray(out, np.float64)


@st.composite
def camera_infos(draw):
    d = draw(st.one_of(st.just([0.0] * 5), st.lists(hostile_floats(), max_size=9)))
    return _T["sensor_msgs/msg/CameraInfo"](
        header=_header("front_optical"),
        height=draw(st.one_of(st.just(12), hostile_ints(*UINT32))),
        width=draw(st.one_of(st.just(16), hostile_ints(*UINT32))),
        distortion_model=draw(st.sampled_from(["plumb_bob", "", "rational_polynomial",
                                               "equidistant", "PLUMB_BOB", "\0"])),
        d=np.asarray(d, np.float64), k=_edited(draw, _K),
        r=_edited(draw, [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0]), p=_edited(draw, _P),
        binning_x=draw(hostile_ints(*UINT32)), binning_y=0,
        roi=_T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                   do_rectify=False))


def _read_camera_info(msg):
    T = np.array([[0.0, 0.0, 1.0, 1.5], [-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 1.4],
                  [0.0, 0.0, 0.0, 1.0]])
    calibration = camera_info_to_calibration(msg, "FRONT", T, "/sensors/camera/front/"
                                                              "camera_info")
    K = calibration.K
    assert np.isfinite(K).all() and K[0, 0] > 0 and K[1, 1] > 0
    assert np.isfinite(calibration.distortion).all()
    assert calibration.width > 0 and calibration.height > 0
    return calibration


@seeded
@fuzz_settings()
@given(msg=camera_infos())
def test_fuzz_camera_info(msg):
    contract("camera_info", _read_camera_info, msg)


# ------------------------------------------------------------------------------------------
# Sanity of the starting points
# ------------------------------------------------------------------------------------------

def test_valid_images_and_camera_info_are_accepted():
    jpeg = _T["sensor_msgs/msg/CompressedImage"](header=_header("front_optical"),
                                                 format="jpeg",
                                                 data=np.frombuffer(_JPEG, np.uint8))
    assert _read_image(jpeg).image.shape == (12, 16, 3)
    info = _T["sensor_msgs/msg/CameraInfo"](
        header=_header("front_optical"), height=12, width=16, distortion_model="plumb_bob",
        d=np.zeros(5), k=np.asarray(_K), r=np.eye(3).ravel(), p=np.asarray(_P), binning_x=0,
        binning_y=0, roi=_T["sensor_msgs/msg/RegionOfInterest"](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
    assert _read_camera_info(info).K[0, 0] == 20.0


# Crashing inputs found by the targets above, kept as regression tests.

def test_cloud_of_height_zero_is_an_empty_cloud():
    """``height = 0, width = 1`` over no data: the length check passed (0 bytes), then
    ``reshape(width)`` raised ValueError (found by ``pointcloud2`` at 2,000 inputs)."""
    msg = _T["sensor_msgs/msg/PointCloud2"](
        header=_header(), height=0, width=1,
        fields=[_T["sensor_msgs/msg/PointField"](name=n, offset=4 * i, datatype=7, count=1)
                for i, n in enumerate("xyz")],
        is_bigendian=False, point_step=12, row_step=12, data=np.zeros(0, np.uint8),
        is_dense=True)
    assert len(_read_cloud(msg, None).points) == 0


def test_cloud_with_a_point_step_numpy_cannot_hold_is_refused():
    """``point_step = 2**31`` (a valid uint32) with a field inside it: ``np.dtype`` raised an
    untyped ValueError ("integer won't fit into a C int") (found by ``pointcloud2`` at
    10,000 inputs)."""
    msg = _T["sensor_msgs/msg/PointCloud2"](
        header=_header(), height=1, width=0,
        fields=[_T["sensor_msgs/msg/PointField"](name="x", offset=0, datatype=7, count=1)],
        is_bigendian=False, point_step=2**31, row_step=0, data=np.zeros(0, np.uint8),
        is_dense=False)
    with pytest.raises(ConversionError, match="point_step must be in"):
        _read_cloud(msg, None)

@pytest.mark.parametrize("blob", _BOMBS[:5], ids=["png30k", "png12k", "png_wide", "jpeg65k",
                                                   "jpeg12k"])
def test_compressed_image_claiming_a_huge_size_is_refused_before_decoding(blob):
    """A PNG or JPEG header claiming 900 M pixels raised PIL's untyped DecompressionBombError
    when the image was decoded; one claiming 144 M pixels (under Pillow's limit) was decoded
    whole (432 MB) before its size was compared with the calibration. Now the message is
    refused from its header (ConversionError naming the topic), and a CameraImage holding such
    bytes refuses them before decoding."""
    from perception.errors import ValidationError
    from perception.types import CameraImage

    from ._fuzz import memory_cap

    msg = _T["sensor_msgs/msg/CompressedImage"](header=_header("front_optical"), format="png",
                                                data=np.frombuffer(blob, np.uint8))
    with memory_cap(64 << 20):
        with pytest.raises(ConversionError, match="^/cam .*(compressed image is|header cannot be read)"):
            compressed_to_camera_image(msg, _CAMERA, "/cam")
        image = CameraImage("FRONT", 1, _CAMERA, encoded=blob)
        with pytest.raises((DataError, ValidationError), match="FRONT|calibration says 16x12"):
            image.image

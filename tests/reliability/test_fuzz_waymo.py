"""Fuzzing the Waymo inputs: TFRecord framing, ``Frame`` decoding, range-image compression.

Targets (names as in docs/reliability.md):

- ``tfrecord``: a file of framed records, mutated (bit flips, truncation, insertions, forged
  length headers with valid CRCs) -> :class:`TFRecordFile` index, random reads, iteration;
- ``waymo_frame_bytes``: a valid serialized ``Frame``, mutated -> ``parse_frame`` ->
  ``frame_to_sensor_frame``;
- ``waymo_frame_fields``: a valid ``Frame`` whose fields are set to hostile values (NaN,
  infinities, huge numbers, wrong counts, mismatched image shapes, corrupt matrices) ->
  ``frame_to_sensor_frame``;
- ``range_image_codec``: bytes -> ``decompress_matrix`` / ``parse_matrix_float``
  (zlib, the packed ``MatrixFloat`` wire format, forged shapes, decompression bombs).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from perception.data import tfrecord, waymo
from perception.data.waymo_matrix import (
    MAX_MATRIX_BYTES,
    compress_matrix,
    decompress_matrix,
    encode_matrix_float,
    parse_matrix_float,
)
from perception.errors import DataError

from . import _builders
from ._fuzz import contract, count_skip, fuzz_settings, seeded
from ._strategies import hostile_floats, hostile_ints, mutated_bytes

_FRAME = _builders.waymo_frame()
_FRAME_BYTES = _FRAME.SerializeToString()
_RECORDS = [b"", b"x" * 7, _FRAME_BYTES[:300], b"\x00" * 40]
_FILE_BYTES = b"".join(tfrecord.frame_record(p) for p in _RECORDS)


# zlib streams of zeros: 1 MiB (inflates, then fails as a matrix) and just past the cap.
_BOMBS = (zlib.compress(bytes(1 << 20), 9), zlib.compress(bytes(MAX_MATRIX_BYTES + 1), 9))


def _forged_header(length: int) -> bytes:
    """A record header claiming ``length`` bytes, with a valid length CRC."""
    head = struct.pack("<Q", length)
    return head + struct.pack("<I", tfrecord.masked_crc32c(head))


def _read_all(path) -> int:
    records = tfrecord.TFRecordFile(path)
    n = 0
    for payload in records:
        n += len(payload)
    for i in range(len(records)):
        records.read(i)
    return n


@seeded
@fuzz_settings()
@given(data=st.one_of(
    mutated_bytes(_FILE_BYTES),
    st.builds(lambda n, tail: _FILE_BYTES + _forged_header(n) + tail,
              hostile_ints(0, 2**64 - 1), st.binary(max_size=64)),
    st.binary(max_size=64)))
def test_fuzz_tfrecord(tmp_path_factory, data):
    path = tmp_path_factory.getbasetemp() / "fuzz.tfrecord"
    path.write_bytes(data)
    contract("tfrecord", _read_all, path)
    index, error = tfrecord.scan_index(path)
    assert index.dtype == np.int64 and index.ndim == 2
    assert error is None or isinstance(error, DataError)


def _decode(payload: bytes):
    frame = waymo.frame_to_sensor_frame(waymo.parse_frame(payload, "fuzz", 0), "fuzz", 0)
    if frame.lidar is not None:
        assert frame.lidar.points.dtype == np.float32
    for camera in frame.cameras.values():
        assert camera.encoded is not None
    return frame


@seeded
@fuzz_settings()
@given(payload=mutated_bytes(_FRAME_BYTES, max_ops=3))
def test_fuzz_waymo_frame_bytes(payload):
    contract("waymo_frame_bytes", _decode, payload)


@st.composite
def matrix_blobs(draw) -> bytes:
    """A range image or pose cell: valid, corrupt, forged or inconsistent."""
    kind = draw(st.sampled_from(["array", "raw", "zlib_raw", "forged_dims", "empty",
                                 "bomb"]))
    if kind == "array":
        shape = tuple(draw(st.lists(st.integers(0, 9), min_size=1, max_size=4)))
        fill = draw(hostile_floats())
        return compress_matrix(np.full(shape, fill, np.float32))
    if kind == "raw":
        return draw(st.binary(max_size=64))
    if kind == "zlib_raw":
        return zlib.compress(draw(st.binary(max_size=64)))
    if kind == "forged_dims":
        dims = draw(st.lists(hostile_ints(0, 2**64 - 1), min_size=0, max_size=4))
        data = np.zeros(draw(st.integers(0, 16)), "<f4").tobytes()
        dim_bytes = b"".join(b"\x08" + _varint(d) for d in dims)
        return zlib.compress(b"\x0a" + _varint(len(data)) + data
                             + b"\x12" + _varint(len(dim_bytes)) + dim_bytes)
    if kind == "bomb":
        return draw(st.sampled_from(_BOMBS))
    return b""


def _varint(value: int) -> bytes:
    value &= 2**64 - 1          # as protobuf writes a negative int64
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


@st.composite
def hostile_frames(draw):
    frame = _builders.waymo_frame(draw(st.integers(0, 3)))
    edits = draw(st.lists(st.sampled_from([
        "stamp", "pose", "laser_extrinsic", "inclinations", "inclination_range", "range_image",
        "pixel_pose", "camera_time", "camera_intrinsic", "camera_size", "label_box",
        "drop_laser_calibration", "drop_camera_calibration", "drop_pose"]),
        min_size=1, max_size=3))
    try:
        for edit in edits:
            _edit(draw, frame, edit)
    except (ValueError, TypeError, OverflowError):
        return None        # the proto itself refused the value: nothing to decode
    return frame.SerializeToString()


def _floats(draw, n_choices=(16,)):
    n = draw(st.sampled_from(list(n_choices)))
    return draw(st.lists(hostile_floats(), min_size=n, max_size=n))


def _edit(draw, frame, edit: str) -> None:
    calibrations = frame.context.laser_calibrations
    laser_k = draw(st.integers(0, max(len(calibrations) - 1, 0)))
    calib = calibrations[laser_k] if len(calibrations) else calibrations.add()
    if edit == "stamp":
        frame.timestamp_micros = draw(hostile_ints())
    elif edit == "pose":
        del frame.pose.transform[:]
        frame.pose.transform.extend(_floats(draw, (16, 16, 15, 0)))
    elif edit == "drop_pose":
        del frame.pose.transform[:]
    elif edit == "laser_extrinsic":
        del calib.extrinsic.transform[:]
        calib.extrinsic.transform.extend(_floats(draw, (16, 16, 12)))
    elif edit == "inclinations":
        del calib.beam_inclinations[:]
        calib.beam_inclinations.extend(draw(st.lists(hostile_floats(), max_size=12)))
    elif edit == "inclination_range":
        calib.beam_inclination_min = draw(hostile_floats())
        calib.beam_inclination_max = draw(hostile_floats())
    elif edit == "range_image":
        laser = frame.lasers[draw(st.integers(0, len(frame.lasers) - 1))]
        ri = laser.ri_return1 if draw(st.booleans()) else laser.ri_return2
        ri.range_image_compressed = draw(matrix_blobs())
    elif edit == "pixel_pose":
        frame.lasers[0].ri_return1.range_image_pose_compressed = draw(matrix_blobs())
    elif edit == "camera_time":
        image = frame.images[0] if len(frame.images) else frame.images.add()
        image.pose_timestamp = draw(hostile_floats())
        image.camera_trigger_time = draw(hostile_floats())
        image.camera_readout_done_time = draw(hostile_floats())
        image.shutter = draw(hostile_floats())
    elif edit == "camera_intrinsic":
        cam = _camera_calibration(frame)
        del cam.intrinsic[:]
        cam.intrinsic.extend(_floats(draw, (9, 9, 4, 0)))
    elif edit == "camera_size":
        cam = _camera_calibration(frame)
        cam.width = draw(hostile_ints(-(2**31), 2**31 - 1))
        cam.height = draw(hostile_ints(-(2**31), 2**31 - 1))
    elif edit == "label_box":
        label = frame.laser_labels[draw(st.integers(0, len(frame.laser_labels) - 1))]
        for name in ("center_x", "center_y", "center_z", "length", "width", "height",
                     "heading"):
            if draw(st.booleans()):
                setattr(label.box, name, draw(hostile_floats()))
        label.num_lidar_points_in_box = draw(hostile_ints(-(2**31), 2**31 - 1))
    elif edit == "drop_laser_calibration":
        del frame.context.laser_calibrations[laser_k]
    elif edit == "drop_camera_calibration":
        del frame.context.camera_calibrations[:]


def _camera_calibration(frame):
    cams = frame.context.camera_calibrations
    if not len(cams):
        cams.add().name = 1
    return cams[0]


@seeded
@fuzz_settings()
@given(payload=hostile_frames())
def test_fuzz_waymo_frame_fields(payload):
    if payload is None:
        count_skip("waymo_frame_fields")
        return
    contract("waymo_frame_fields", _decode, payload)


@seeded
@fuzz_settings()
@given(blob=st.one_of(matrix_blobs(),
                      mutated_bytes(compress_matrix(np.ones((4, 6, 4), np.float32)))))
def test_fuzz_range_image_codec(blob):
    out = contract("range_image_codec", decompress_matrix, blob)
    if out is not None:
        assert out.dtype == np.float32 and out.nbytes <= MAX_MATRIX_BYTES
    raw = blob[:64]
    out = contract("range_image_codec", parse_matrix_float, raw)
    if out is not None:
        assert out.dtype == np.float32


def test_decompression_bomb_is_refused_without_inflating_it():
    """A few kilobytes that inflate past the largest plausible range image are refused
    while inflating, not after."""
    bomb = _BOMBS[1]
    assert len(bomb) < MAX_MATRIX_BYTES // 500
    with pytest.raises(DataError, match="larger than"):
        decompress_matrix(bomb)


def test_matrix_round_trip_still_exact():
    image = np.random.default_rng(0).normal(size=(5, 7, 4)).astype(np.float32)
    np.testing.assert_array_equal(decompress_matrix(compress_matrix(image)), image)
    np.testing.assert_array_equal(parse_matrix_float(encode_matrix_float(image)), image)


# Crashing inputs found by the targets above, kept as regression tests.

@pytest.mark.parametrize("field", ["pose_timestamp", "camera_trigger_time",
                                   "camera_readout_done_time"])
@pytest.mark.parametrize("value", [float("inf"), float("nan"), 1e300, -5.0])
def test_camera_time_out_of_range_is_a_data_error(field, value):
    frame = _builders.waymo_frame()
    setattr(frame.images[0], field, value)
    with pytest.raises(DataError, match=rf"fuzz \[record 0\]: camera FRONT {field}"):
        _decode(frame.SerializeToString())


def test_matrix_dims_whose_product_wraps_around_are_a_data_error():
    """dims [2**32, 2**32] over no data: their int64 product wrapped to 0 = the data size and
    reshape failed with an untyped ValueError. Now the wire parser refuses the shape and the
    protobuf parser reads the dims as int32 (0, 0): an empty matrix."""
    dims = b"\x08" + _varint(2**32) + b"\x08" + _varint(2**32)
    blob = b"\x12" + _varint(len(dims)) + dims
    for parse in (lambda: parse_matrix_float(blob),
                  lambda: decompress_matrix(zlib.compress(blob))):
        try:
            out = parse()
        except DataError:
            continue
        assert out.size == 0 and out.dtype == np.float32


def test_empty_matrix_with_huge_other_dims_is_a_data_error():
    """dims [0, 2**31 - 1, 2**31 - 1] over no data: the sizes agree (0), but NumPy refuses the
    shape with an untyped ValueError (found by the full-mode run)."""
    dims = b"".join(b"\x08" + _varint(d) for d in (0, 2**31 - 1, 2**31 - 1))
    blob = b"\x12" + _varint(len(dims)) + dims
    with pytest.raises(DataError, match="larger than any range image"):
        parse_matrix_float(blob)
    np.testing.assert_array_equal(parse_matrix_float(encode_matrix_float(np.zeros((0, 5, 4)))),
                                  np.zeros((0, 5, 4), np.float32))

"""Codec of the Waymo ``MatrixFloat`` / ``MatrixInt32`` protos, the cells of range images.

A range image (and the TOP per-pixel pose) is stored as a zlib-compressed serialized
``MatrixFloat``: ``data`` (field 1, packed little-endian float32) and ``shape`` (field 2, a
``MatrixShape`` whose ``dims`` are field 1). Serialized matrices are parsed straight from the
wire format with NumPy (the packed float payload becomes an array without per-element Python
objects); anything unusual falls back to the protobuf parser. Encoding writes the same layout
the official tools write, so their parser reads it back.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
from google.protobuf.message import DecodeError

from ..errors import DataError

# Wire tags, (field_number << 3) | wire_type: 0 = varint, 2 = length-delimited.
_TAG_DIMS_VARINT = 0x08          # MatrixShape.dims, one varint (proto2 default, unpacked)
_TAG_DIMS_PACKED = 0x0A          # MatrixShape.dims, packed
_TAG_DATA = 0x0A                 # Matrix*.data, packed
_TAG_SHAPE = 0x12                # Matrix*.shape

MAX_MATRIX_BYTES = 64 << 20
"""Largest serialized matrix accepted (64 MiB). Waymo's largest cell, the TOP pixel pose, is
64 x 2650 x 6 float32 (4 MiB); the cap leaves room for larger sensors while a few kilobytes of
forged zlib data (a decompression bomb) cannot inflate into gigabytes."""

_MAX_DIMS = 8
_MAX_DIM = 2**31 - 1


def parse_matrix_float(buf: bytes) -> np.ndarray:
    """Serialized ``MatrixFloat`` -> float32 array of its shape. Raises DataError when bad."""
    try:
        return _parse_matrix_float_fast(buf)
    except DataError:
        return _parse_matrix_float_proto(buf)


def decompress_matrix(compressed: bytes) -> np.ndarray:
    """zlib-compressed serialized ``MatrixFloat`` -> float32 array. Raises DataError when bad."""
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(compressed, MAX_MATRIX_BYTES + 1)
        if not inflater.unconsumed_tail:
            raw += inflater.flush()
    except zlib.error as exc:
        raise DataError(f"corrupt zlib data: {exc}") from None
    if len(raw) > MAX_MATRIX_BYTES or inflater.unconsumed_tail:
        raise DataError(f"compressed matrix inflates to more than {MAX_MATRIX_BYTES} bytes "
                        f"(larger than any range image)")
    if not inflater.eof:
        raise DataError("corrupt zlib data: truncated stream")
    return parse_matrix_float(raw)


def encode_matrix_float(array: np.ndarray) -> bytes:
    """float array -> serialized ``MatrixFloat`` (packed data, unpacked proto2 dims)."""
    payload = np.ascontiguousarray(array, dtype="<f4").tobytes()
    return _field(_TAG_DATA, payload) + _field(_TAG_SHAPE, _encode_dims(array.shape))


def encode_zero_matrix_int32(shape: tuple[int, ...]) -> bytes:
    """Serialized all-zero ``MatrixInt32`` of ``shape`` (each packed zero varint is one byte)."""
    return _field(_TAG_DATA, bytes(int(np.prod(shape)))) + _field(_TAG_SHAPE, _encode_dims(shape))


def compress_matrix(array: np.ndarray, level: int = 6) -> bytes:
    """float array -> zlib-compressed serialized ``MatrixFloat`` (as range images are stored)."""
    return zlib.compress(encode_matrix_float(array), level)


def _parse_matrix_float_fast(buf: bytes) -> np.ndarray:
    data = None
    dims: list[int] = []
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        if tag not in (_TAG_DATA, _TAG_SHAPE):
            raise DataError(f"unexpected field tag {tag} in MatrixFloat")
        length, pos = _varint(buf, pos)
        if pos + length > len(buf):
            raise DataError("truncated MatrixFloat field")
        if tag == _TAG_DATA:
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
    # Exact integer checks: a product taken in int64 wraps around, so forged dims such as
    # [2**32, 2**32] would "match" an empty payload and reach reshape.
    if not 0 < len(dims) <= _MAX_DIMS or any(not 0 <= d <= _MAX_DIM for d in dims):
        raise DataError(f"MatrixFloat shape {dims[:_MAX_DIMS + 1]} is not a valid shape "
                        f"(1 to {_MAX_DIMS} dimensions, each in [0, {_MAX_DIM}])")
    # NumPy refuses a shape whose nonzero dims multiply past its limit even when another dim
    # is 0 (so the array is empty); no real matrix comes near MAX_MATRIX_BYTES anyway.
    if math.prod(max(d, 1) for d in dims) > MAX_MATRIX_BYTES // 4:
        raise DataError(f"MatrixFloat shape {dims} is larger than any range image")
    if math.prod(dims) != data.size:
        raise DataError(f"MatrixFloat has {data.size} values but shape {dims}")
    return data.astype(np.float32, copy=False).reshape(dims)


def _parse_dims(buf: bytes) -> list[int]:
    dims, pos = [], 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        if tag == _TAG_DIMS_VARINT:
            value, pos = _varint(buf, pos)
            dims.append(value)
        elif tag == _TAG_DIMS_PACKED:
            length, pos = _varint(buf, pos)
            end = pos + length
            while pos < end:
                value, pos = _varint(buf, pos)
                dims.append(value)
        else:
            raise DataError(f"unexpected field tag {tag} in MatrixShape")
    return dims


def _encode_dims(shape: tuple[int, ...]) -> bytes:
    return b"".join(bytes([_TAG_DIMS_VARINT]) + _encode_varint(int(d)) for d in shape)


def _field(tag: int, payload: bytes) -> bytes:
    """One length-delimited field: tag, length, payload."""
    return bytes([tag]) + _encode_varint(len(payload)) + payload


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

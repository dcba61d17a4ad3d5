"""TFRecord framing without TensorFlow: a streaming reader with an offset index, and a writer.

A TFRecord file is a sequence of records, each framed as::

    uint64 length            (little endian)
    uint32 masked_crc32c(length bytes)
    byte   payload[length]
    uint32 masked_crc32c(payload)

``masked(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8`` (mod 2**32). Both CRCs of every
record are verified when the record is read; the length CRC is also verified while the offset
index is built, so a damaged header is reported before any payload is trusted.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

import crc32c
import numpy as np

from ..errors import DataError

HEADER_BYTES = 12
FOOTER_BYTES = 4
_MASK_DELTA = 0xA282EAD8
_U32 = 0xFFFFFFFF


def masked_crc32c(data: bytes | memoryview) -> int:
    """TFRecord's masked CRC32C of ``data`` (uint32)."""
    crc = crc32c.crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & _U32) + _MASK_DELTA) & _U32


def _check_length_header(header: bytes, path: str, index: int) -> int:
    length, length_crc = struct.unpack("<QI", header)
    if masked_crc32c(header[:8]) != length_crc:
        raise DataError("length CRC mismatch (corrupt record header)", source=path, index=index)
    return length


def build_index(path: str | os.PathLike) -> np.ndarray:
    """Scan the record headers of a TFRecord file.

    Returns:
        (R, 2) int64 array of ``(payload_offset, payload_length)`` in bytes, one row per record.

    Raises:
        DataError: a header CRC mismatch, or a record that runs past the end of the file
            (truncated), naming the file and the record index.
    """
    index, error = scan_index(path)
    if error is not None:
        raise error
    return index


def scan_index(path: str | os.PathLike) -> tuple[np.ndarray, DataError | None]:
    """Like :func:`build_index`, but returns the index of the readable prefix and the error
    that stopped the scan (None when the whole file is sound)."""
    try:
        return _scan(str(path)), None
    except _Stop as stop:
        return stop.index, stop.error


class _Stop(Exception):
    def __init__(self, index: np.ndarray, error: DataError):
        super().__init__(str(error))
        self.index, self.error = index, error


def _scan(path: str) -> np.ndarray:
    size = os.path.getsize(path)
    rows = []
    with open(path, "rb") as f:
        offset = 0
        while offset < size:
            index = len(rows)
            header = f.read(HEADER_BYTES)
            try:
                if len(header) < HEADER_BYTES:
                    raise DataError(f"truncated record header ({len(header)} of "
                                    f"{HEADER_BYTES} bytes)", source=path, index=index)
                length = _check_length_header(header, path, index)
                end = offset + HEADER_BYTES + length + FOOTER_BYTES
                if end > size:
                    raise DataError(f"truncated record: needs {end - offset} bytes, file has "
                                    f"{size - offset} left", source=path, index=index)
            except DataError as exc:
                raise _Stop(_as_index(rows), exc) from None
            rows.append((offset + HEADER_BYTES, length))
            offset = end
            f.seek(offset)
    return _as_index(rows)


def _as_index(rows: list[tuple[int, int]]) -> np.ndarray:
    return np.asarray(rows, dtype=np.int64).reshape(-1, 2)


class TFRecordFile:
    """Random and sequential access to the records of one TFRecord file.

    The offset index is built once on construction (headers only, cheap). The file is opened
    per read, so an instance can be pickled into DataLoader workers.
    """

    def __init__(self, path: str | os.PathLike, index: np.ndarray | None = None):
        self.path = str(path)
        if not os.path.isfile(self.path):
            raise DataError("no such TFRecord file", source=self.path)
        self.index = build_index(self.path) if index is None else index

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def read(self, i: int) -> bytes:
        """Payload of record ``i`` with both CRCs verified."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"{self.path}: record {i} out of range ({n} records)")
        i %= n
        offset, length = (int(v) for v in self.index[i])
        with open(self.path, "rb") as f:
            f.seek(offset - HEADER_BYTES)
            blob = f.read(HEADER_BYTES + length + FOOTER_BYTES)
        return _verify_record(blob, self.path, i)

    def __iter__(self) -> Iterator[bytes]:
        """Stream the payloads in file order, one read per record."""
        with open(self.path, "rb") as f:
            for i, (offset, length) in enumerate(self.index.tolist()):
                f.seek(offset - HEADER_BYTES)
                yield _verify_record(f.read(HEADER_BYTES + length + FOOTER_BYTES), self.path, i)


def _verify_record(blob: bytes, path: str, index: int) -> bytes:
    if len(blob) < HEADER_BYTES + FOOTER_BYTES:
        raise DataError("truncated record", source=path, index=index)
    length = _check_length_header(blob[:HEADER_BYTES], path, index)
    if len(blob) != HEADER_BYTES + length + FOOTER_BYTES:
        raise DataError("truncated record payload", source=path, index=index)
    payload = blob[HEADER_BYTES:HEADER_BYTES + length]
    (payload_crc,) = struct.unpack("<I", blob[-FOOTER_BYTES:])
    if masked_crc32c(payload) != payload_crc:
        raise DataError("payload CRC mismatch (corrupt record data)", source=path, index=index)
    return payload


def frame_record(payload: bytes) -> bytes:
    """Frame one payload as a TFRecord record (header, payload, footer)."""
    header = struct.pack("<Q", len(payload))
    return b"".join([header, struct.pack("<I", masked_crc32c(header)), payload,
                     struct.pack("<I", masked_crc32c(payload))])


def write_records(path: str | os.PathLike, payloads: Iterable[bytes]) -> int:
    """Write payloads to a TFRecord file atomically (temp file + rename). Returns the count."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    count = 0
    try:
        with open(tmp, "wb") as f:
            for payload in payloads:
                f.write(frame_record(payload))
                count += 1
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return count

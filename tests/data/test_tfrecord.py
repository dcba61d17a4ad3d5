"""TFRecord framing: CRCs, offset index, truncation and corruption."""

from __future__ import annotations

import numpy as np
import pytest

from perception.data.tfrecord import (
    TFRecordFile,
    build_index,
    frame_record,
    masked_crc32c,
    write_records,
)
from perception.errors import DataError

PAYLOADS = [b"first record", b"", bytes(range(256)) * 40, b"last"]


@pytest.fixture
def records(tmp_path):
    path = tmp_path / "r.tfrecord"
    assert write_records(path, PAYLOADS) == len(PAYLOADS)
    return path


def test_framing_reproduces_a_tensorflow_written_file(fixture_file):
    """The real Waymo record was written by TensorFlow: re-framing its payload gives its bytes."""
    path = fixture_file("waymo_frame")
    f = TFRecordFile(path)
    assert len(f) == 1
    assert frame_record(f.read(0)) == path.read_bytes()


def test_masking_is_the_tfrecord_rotation():
    import crc32c

    masked = masked_crc32c(b"abc")
    unmasked = (masked - 0xA282EAD8) & 0xFFFFFFFF
    assert ((unmasked >> 17) | (unmasked << 15)) & 0xFFFFFFFF == crc32c.crc32c(b"abc")


def test_round_trip_sequential_and_random_access(records):
    f = TFRecordFile(records)
    assert len(f) == len(PAYLOADS)
    assert list(f) == PAYLOADS
    for i in (3, 0, 2, 1, -1):
        assert f.read(i) == PAYLOADS[i]
    index = build_index(records)
    assert index.shape == (4, 2)
    assert index[:, 1].tolist() == [len(p) for p in PAYLOADS]
    with pytest.raises(IndexError):
        f.read(4)


def test_payload_crc_mismatch_names_file_and_record(records, tmp_path):
    data = bytearray(records.read_bytes())
    offset = int(build_index(records)[2, 0]) + 100
    data[offset] ^= 0xFF
    bad = tmp_path / "bad_payload.tfrecord"
    bad.write_bytes(bytes(data))
    f = TFRecordFile(bad)                    # headers are intact: the index builds
    assert f.read(0) == PAYLOADS[0]
    with pytest.raises(DataError, match="payload CRC") as err:
        f.read(2)
    assert err.value.index == 2 and err.value.source == str(bad)
    with pytest.raises(DataError, match=r"\[record 2\]"):
        list(f)


def test_length_crc_mismatch(records, tmp_path):
    data = bytearray(records.read_bytes())
    data[int(build_index(records)[1, 0]) - 12] ^= 0x01    # low byte of record 1's length
    bad = tmp_path / "bad_header.tfrecord"
    bad.write_bytes(bytes(data))
    with pytest.raises(DataError, match="length CRC") as err:
        TFRecordFile(bad)
    assert err.value.index == 1


@pytest.mark.parametrize("cut", [1, 5, 13])
def test_truncated_file(records, tmp_path, cut):
    data = records.read_bytes()
    bad = tmp_path / "truncated.tfrecord"
    bad.write_bytes(data[:-cut])
    with pytest.raises(DataError, match="truncated") as err:
        TFRecordFile(bad)
    assert err.value.index == 3
    assert str(bad) in str(err.value)


def test_writer_is_atomic_on_failure(tmp_path):
    path = tmp_path / "atomic.tfrecord"

    def payloads():
        yield b"ok"
        raise RuntimeError("producer failed")

    with pytest.raises(RuntimeError):
        write_records(path, payloads())
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_index_dtype(records):
    assert build_index(records).dtype == np.int64

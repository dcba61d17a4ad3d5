"""MatrixFloat / MatrixInt32 codec against the protobuf parser."""

from __future__ import annotations

import numpy as np
from waymo_open_dataset import dataset_pb2

from perception.data.waymo_matrix import (
    encode_matrix_float,
    encode_zero_matrix_int32,
    parse_matrix_float,
)


def test_matrix_float_codec_matches_protobuf():
    array = np.random.default_rng(0).normal(size=(3, 5, 4)).astype(np.float32)
    blob = encode_matrix_float(array)
    msg = dataset_pb2.MatrixFloat()
    msg.ParseFromString(blob)
    assert list(msg.shape.dims) == [3, 5, 4]
    np.testing.assert_array_equal(np.asarray(msg.data, np.float32).reshape(3, 5, 4), array)
    np.testing.assert_array_equal(parse_matrix_float(msg.SerializeToString()), array)
    zeros = dataset_pb2.MatrixInt32()
    zeros.ParseFromString(encode_zero_matrix_int32((2, 3, 6)))
    assert list(zeros.shape.dims) == [2, 3, 6] and list(zeros.data) == [0] * 36

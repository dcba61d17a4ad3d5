"""Fuzzing KITTI label and calibration text and nuScenes radar ``.pcd`` files.

Targets: ``kitti_labels`` (label text -> labels -> vehicle-frame boxes), ``kitti_calib``
(calibration text -> camera calibration), ``nuscenes_radar_pcd`` (PCD bytes -> RadarScan),
each from a valid file mutated at the byte level and at the token level (a number replaced by
NaN, an infinity, a huge value, a word, or dropped).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from perception.data import kitti, nuscenes
from perception.errors import CalibrationError, DataError

from . import _builders
from ._fuzz import contract, fuzz_settings, seeded
from ._strategies import mutated_bytes

_TOKENS = ["nan", "inf", "-inf", "1e308", "-1e308", "0", "-0", "1e-320", "x", "", "1,5",
           "0x10", "99999999999999999999", "Car", "DontCare", "Tram", ":", "P2:"]


@st.composite
def mutated_text(draw, base: str) -> str:
    """``base`` with a few whitespace-separated tokens replaced, dropped or duplicated, or
    with its UTF-8 bytes mutated (possibly into invalid UTF-8, decoded with replacement)."""
    if draw(st.booleans()):
        raw = draw(mutated_bytes(base.encode()))
        return raw.decode("utf-8", errors=draw(st.sampled_from(["replace", "surrogateescape"])))
    lines = [line.split(" ") for line in base.splitlines()]
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        if not lines[i]:
            continue
        j = draw(st.integers(0, len(lines[i]) - 1))
        action = draw(st.sampled_from(["replace", "drop", "duplicate", "drop_line"]))
        if action == "replace":
            lines[i][j] = draw(st.one_of(st.sampled_from(_TOKENS), st.text(max_size=6)))
        elif action == "drop":
            del lines[i][j]
        elif action == "duplicate":
            lines[i].insert(j, lines[i][j])
        else:
            del lines[i]
            if not lines:
                lines = [[]]
    return "\n".join(" ".join(tokens) for tokens in lines)


def _labels_to_boxes(text: str):
    calib = kitti.parse_calibration(_builders.KITTI_CALIB, "calib.txt")
    return kitti.labels_to_boxes(kitti.parse_labels(text, "label.txt"), calib)


def _calibration(text: str):
    calib = kitti.parse_calibration(text, "calib.txt")
    kitti.labels_to_boxes(kitti.parse_labels(_builders.KITTI_LABELS, "label.txt"), calib)
    return kitti.camera_calibration(calib, 1242, 375)


@seeded
@fuzz_settings()
@given(text=mutated_text(_builders.KITTI_LABELS))
def test_fuzz_kitti_labels(text):
    contract("kitti_labels", _labels_to_boxes, text)


@seeded
@fuzz_settings()
@given(text=mutated_text(_builders.KITTI_CALIB))
def test_fuzz_kitti_calib(text):
    contract("kitti_calib", _calibration, text)


_PCD = _builders.radar_pcd()
_PCD_HEADER_END = _PCD.index(b"DATA binary\n") + len(b"DATA binary\n")


@st.composite
def pcd_files(draw) -> bytes:
    kind = draw(st.sampled_from(["bytes", "header", "data"]))
    if kind == "bytes":
        return draw(mutated_bytes(_PCD))
    if kind == "header":
        header = draw(mutated_text(_PCD[:_PCD_HEADER_END].decode()))
        return header.encode("utf-8", "surrogateescape") + b"\n" + _PCD[_PCD_HEADER_END:]
    # A valid header over hostile point values (NaN, infinities, huge magnitudes).
    values = np.frombuffer(_PCD[_PCD_HEADER_END:], np.uint8).copy()
    floats = draw(st.lists(st.sampled_from([np.nan, np.inf, -np.inf, 3.4e38, -3.4e38, 0.0]),
                           min_size=1, max_size=8))
    blob = bytearray(values.tobytes())
    for k, value in enumerate(floats):
        pos = draw(st.integers(0, max(len(blob) - 4, 0)))
        blob[pos:pos + 4] = np.float32(value).tobytes()
    return _PCD[:_PCD_HEADER_END] + bytes(blob)


@seeded
@fuzz_settings()
@given(blob=pcd_files())
def test_fuzz_nuscenes_radar_pcd(blob):
    scan = contract("nuscenes_radar_pcd", nuscenes.parse_radar_pcd, blob, "RADAR_FRONT", 0)
    if scan is not None:
        assert scan.points.dtype == np.float32


# Crashing inputs found by the targets above, kept as regression tests.

def test_label_with_infinite_occlusion_is_a_data_error():
    line = "Car 0.00 inf 1.85 387.63 181.54 423.81 203.12 1.67 1.87 3.69 -16.53 2.39 58.49 1.57"
    with pytest.raises(DataError, match=r"label.txt \[record 0\].*non-finite"):
        kitti.parse_labels(line, "label.txt")


def test_label_with_fractional_occlusion_is_a_data_error():
    line = "Car 0.00 0.5 1.85 387.63 181.54 423.81 203.12 1.67 1.87 3.69 -16.53 2.39 58.49 1.57"
    with pytest.raises(DataError, match="occluded must be an integer"):
        kitti.parse_labels(line, "label.txt")


def test_calibration_with_nan_is_a_calibration_error():
    text = _builders.KITTI_CALIB.replace("9.999239e-01", "nan", 1)
    with pytest.raises(CalibrationError, match="R0_rect has non-finite"):
        kitti.parse_calibration(text, "calib.txt")


def test_calibration_with_singular_intrinsics_is_a_calibration_error():
    text = _builders.KITTI_CALIB.replace("P2: 7.215377e+02", "P2: 0", 1).replace(
        "0.000000e+00 7.215377e+02 1.728540e+02 2.163791e-01",
        "0.000000e+00 0 1.728540e+02 2.163791e-01")
    with pytest.raises(CalibrationError, match="singular"):
        kitti.parse_calibration(text, "calib.txt")


def test_non_utf8_label_file_is_a_data_error(tmp_path):
    path = tmp_path / "000000.txt"
    path.write_bytes(b"Car \xff\xfe 0 0\n")
    with pytest.raises(DataError, match="not a text file"):
        kitti.read_labels(path)


@pytest.mark.parametrize("points", [b"POINTS\n", b"POINTS -3\n", b"POINTS many\n"])
def test_pcd_with_a_bad_point_count_is_a_data_error(points):
    blob = _PCD.replace(b"POINTS 6\n", points)
    with pytest.raises(DataError, match="POINTS"):
        nuscenes.parse_radar_pcd(blob, "RADAR_FRONT", 0, source="radar.pcd")

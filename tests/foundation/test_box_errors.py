"""The box-error diagnostic (benchmarks/box_errors.py) on hand-made boxes with known errors:
matching by score and BEV IoU, errors along and across the true heading, and which corrected
parameter lifts a pair over the IoU threshold."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.box_errors import errors, iou_3d_pairs, match, report


def _box(x: float, y: float, heading: float = 0.0, length: float = 4.0) -> list[float]:
    return [x, y, 0.0, length, 2.0, 1.5, heading]


def test_match_takes_detections_by_score_and_skips_far_ones():
    gt = np.array([_box(0, 0), _box(10, 0)])
    pred = np.array([_box(0.2, 0), _box(0.1, 0), _box(10, 5), _box(9.9, 0)])
    scores = np.array([0.5, 0.9, 0.8, 0.3])
    # 0.9 takes box 0 before 0.5 can; (10, 5) overlaps nothing; 0.3 takes box 1
    assert match(gt, pred, scores, 0.5) == [(0, 1), (1, 3)]
    assert match(gt, pred[:0], scores[:0], 0.5) == []


def test_errors_are_along_and_across_the_true_heading():
    gt = np.array([_box(0, 0, heading=np.pi / 2)])
    # 0.3 m further along +y (the heading), 0.1 m to the right of it (-x is left of +y)
    pred = np.array(_box(0.1, 0.3, heading=np.pi / 2 - 0.05 + np.pi, length=4.2))[None]
    e = errors(gt, pred)
    assert e["along m"][0] == pytest.approx(0.3)
    assert e["across m"][0] == pytest.approx(-0.1)
    assert e["length m"][0] == pytest.approx(0.2)
    assert e["heading rad (mod pi)"][0] == pytest.approx(-0.05)  # a box facing back is fine


def test_report_names_the_parameter_that_keeps_pairs_below_the_threshold():
    gt = np.array([_box(0, 0), _box(20, 0)])
    pred = np.array([_box(0, 0, heading=0.45), _box(20, 0, heading=0.45)])
    assert (iou_3d_pairs(pred, gt) < 0.7).all()
    text = "\n".join(report("model", gt, pred, total=3, iou=0.7))
    assert "2 of 3 true boxes matched" in text
    assert "| none | 0.000 |" in text
    assert "| heading | 1.000 |" in text
    assert "| centre x, y | 0.000 |" in text

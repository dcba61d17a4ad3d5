"""AP integration and precision/recall, on curves with known areas."""

import numpy as np
import pytest

from perception.eval.detection import mean_average_precision, precision_recall


def test_perfect_curve_has_ap_one():
    assert mean_average_precision([1.0], [1.0]) == pytest.approx(1.0, abs=1e-6)


def test_recall_zero_point_takes_the_neighbours_precision():
    # Only (p=0.5, r=1): the fake (p=1, r=0) point is replaced by 0.5, so the area is 0.5.
    assert mean_average_precision([0.5], [1.0]) == pytest.approx(0.5, abs=1e-6)


def test_area_stops_at_the_highest_recall():
    assert mean_average_precision([1.0], [0.5]) == pytest.approx(0.5, abs=1e-6)


def test_trapezoid_not_step_between_points():
    # Points (1, 0.5) and (0.5, 1). The gap is filled every 0.05 at the envelope precision
    # (0.5), and the last 0.05 before recall 0.5 is a trapezoid from 0.5 up to 1:
    # 0.5 * 1 (recall 0..0.5) + 9 * 0.05 * 0.5 + 0.05 * 0.75 = 0.7625 (a step rule: 0.75).
    ap = mean_average_precision([1.0, 0.5], [0.5, 1.0])
    assert ap == pytest.approx(0.7625, abs=1e-5)


def test_envelope_uses_the_best_precision_at_higher_recall():
    # A dip at recall 0.5 (p=0.2) is lifted to the precision at recall 1 (0.6).
    ap = mean_average_precision([0.2, 0.6], [0.5, 1.0])
    assert ap == pytest.approx(0.6, abs=1e-5)


def test_no_detections_gives_zero():
    p, r, ph = precision_recall(np.zeros(3, int), np.zeros(3, int), np.full(3, 4),
                                np.zeros(3))
    assert (p == 1).all() and (r == 0).all()       # precision forced to 1 where recall is 0
    assert mean_average_precision(p, r) == 0.0


def test_precision_recall_values():
    p, r, ph = precision_recall(np.array([3]), np.array([1]), np.array([1]), np.array([1.5]))
    assert p[0] == pytest.approx(0.75) and r[0] == pytest.approx(0.75)
    assert ph[0] == pytest.approx(1.5 / 4)

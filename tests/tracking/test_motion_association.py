"""Motion models (CV, CTRV) and association costs and solvers."""

from __future__ import annotations

import numpy as np
import pytest

from perception.tracking import association
from perception.tracking.config import MeasurementConfig, MotionConfig
from perception.tracking.motion import (
    CTRV,
    HEADING,
    ConstantVelocity,
    innovation,
    kalman_update,
    measurement_noise,
)

CAR = np.array([[0.0, 0.0, 0.8, 4.5, 1.9, 1.6, 0.0]])
LABELS = np.array([1], np.int32)


def _model(name: str):
    cls = ConstantVelocity if name == "cv" else CTRV
    return cls(MotionConfig(model=name), MeasurementConfig())


def test_cv_predict_moves_by_velocity_and_grows_covariance():
    model = _model("cv")
    x, P = model.init_state(CAR, LABELS, np.array([[3.0, -1.0]]))
    x2, P2 = model.predict(x, P, LABELS, 0.5)
    np.testing.assert_allclose(x2[0, :2], [1.5, -0.5])
    assert (np.diag(P2[0]) >= np.diag(P[0])).all() and P2[0, 0, 0] > P[0, 0, 0]
    np.testing.assert_allclose(model.velocities(x2), [[3.0, -1.0]])


def test_ctrv_predict_goes_round_a_circle():
    model = _model("ctrv")
    x, P = model.init_state(CAR, LABELS, np.array([[5.0, 0.0]]))
    x[0, 8] = 0.5                                      # yaw rate: radius 10 m
    for _ in range(20):
        x, P = model.predict(x, P, LABELS, 2 * np.pi / 0.5 / 20)
    np.testing.assert_allclose(x[0, :2], [0.0, 0.0], atol=1e-9)
    x, _ = model.predict(x, P, LABELS, np.pi / 0.5)    # half a turn: top of the circle
    np.testing.assert_allclose(x[0, :2], [0.0, 20.0], atol=1e-9)
    assert x[0, HEADING] == pytest.approx(-np.pi)


@pytest.mark.parametrize("yaw_rate", [0.0, 0.3])
def test_ctrv_jacobian_matches_finite_differences(yaw_rate):
    model = _model("ctrv")
    x0 = np.array([[1.0, 2.0, 0.5, 4.0, 2.0, 1.5, 0.4, 6.0, yaw_rate]])
    P0 = np.zeros((1, 9, 9))
    dt = 0.1
    # With P0 = e_j e_j^T, the predicted covariance minus Q is F[:, j] F[:, j]^T.
    _, Q = model.predict(x0, P0, LABELS, dt)
    eps = 1e-6
    for j in (6, 7, 8):
        P = np.zeros((1, 9, 9))
        P[0, j, j] = 1.0
        _, Pj = model.predict(x0, P, LABELS, dt)
        col_from_P = (Pj - Q)[0, :, j]
        plus, minus = x0.copy(), x0.copy()
        plus[0, j] += eps
        minus[0, j] -= eps
        xp, _ = model.predict(plus, P0, LABELS, dt)
        xm, _ = model.predict(minus, P0, LABELS, dt)
        numeric = (xp - xm)[0] / (2 * eps)
        np.testing.assert_allclose(col_from_P[:2], numeric[:2], atol=1e-5)


def test_kalman_update_pulls_towards_measurement_and_shrinks_covariance():
    model = _model("cv")
    x, P = model.init_state(CAR, LABELS, None)
    R = measurement_noise(MeasurementConfig())
    z = CAR + np.array([[1.0, 0.0, 0, 0, 0, 0, 0]])
    x2, P2 = kalman_update(x.copy(), P.copy(), z, R)
    assert 0.4 < x2[0, 0] < 0.6                        # equal noise: halfway
    assert P2[0, 0, 0] == pytest.approx(P[0, 0, 0] / 2)


def test_flipped_heading_measurement_does_not_flip_the_state():
    model = _model("cv")
    x, P = model.init_state(CAR, LABELS, None)
    z = CAR.copy()
    z[0, HEADING] = np.pi - 0.1                         # the same box, front and back swapped
    y = innovation(x.copy(), z)
    assert y[0, HEADING] == pytest.approx(-0.1)
    x2, _ = kalman_update(x.copy(), P.copy(), z, measurement_noise(MeasurementConfig()))
    assert -0.1 < x2[0, HEADING] < 0.0


def test_ctrv_flip_keeps_the_motion():
    model = _model("ctrv")
    x, P = model.init_state(CAR, LABELS, np.array([[-4.0, 0.0]]))
    assert x[0, 7] == pytest.approx(-4.0)
    before = model.velocities(x)
    model.flip_heading(x, P, np.array([True]))
    np.testing.assert_allclose(model.velocities(x), before, atol=1e-12)
    assert x[0, 7] == pytest.approx(4.0)


def test_center_cost_gates_per_track():
    cost = association.center_distance_cost(np.array([[0.0, 0.0], [10.0, 0.0]]),
                                            np.array([[1.0, 0.0], [10.0, 3.0]]),
                                            np.array([2.0, 2.5]))
    assert cost[0, 0] == pytest.approx(1.0)
    assert np.isinf(cost[1, 1]) and np.isinf(cost[0, 1]) and np.isinf(cost[1, 0])


def test_hungarian_is_optimal_where_greedy_is_not():
    cost = np.array([[1.0, 2.0], [1.1, np.inf]])
    rows, cols = association.solve_hungarian(cost)
    assert sorted(zip(rows.tolist(), cols.tolist())) == [(0, 1), (1, 0)]
    rows, cols = association.solve_greedy(cost)
    assert list(zip(rows.tolist(), cols.tolist())) == [(0, 0)]


def test_solvers_never_return_gated_pairs():
    rng = np.random.default_rng(0)
    for _ in range(20):
        cost = rng.uniform(0, 1, (7, 5))
        cost[rng.random((7, 5)) < 0.6] = np.inf
        for solve in (association.solve_hungarian, association.solve_greedy):
            rows, cols = solve(cost)
            assert np.isfinite(cost[rows, cols]).all()
            assert len(set(rows.tolist())) == rows.size and len(set(cols.tolist())) == cols.size
    for solve in (association.solve_hungarian, association.solve_greedy):
        rows, cols = solve(np.full((3, 0), np.inf))
        assert rows.size == cols.size == 0


def test_iou_and_mahalanobis_costs():
    tracks = np.array([[0.0, 0.0, 0.8, 4.0, 2.0, 1.5, 0.0]])
    dets = np.array([[0.5, 0.0, 0.8, 4.0, 2.0, 1.5, 0.0], [5.0, 0.0, 0.8, 4.0, 2.0, 1.5, 0.0]])
    cost = association.iou_cost(tracks, dets, iou_min=0.1)
    assert cost[0, 0] == pytest.approx(1 - 3.5 / 4.5)
    assert np.isinf(cost[0, 1])
    model = _model("cv")
    x, P = model.init_state(tracks, LABELS, None)
    R = measurement_noise(MeasurementConfig())
    d2 = association.mahalanobis_cost(x, P, R, dets, gate=18.5)
    # Position std 0.3 m in both P and R: 0.5 m is 0.5^2 / 0.18 in squared units.
    assert d2[0, 0] == pytest.approx(0.25 / 0.18)
    assert np.isinf(d2[0, 1])


def test_hungarian_matches_the_plain_optimal_assignment():
    """The shortcut for isolated pairs changes nothing: same count and total cost."""
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(5)
    for _ in range(30):
        cost = rng.uniform(0, 1, (12, 9))
        cost[rng.random((12, 9)) < 0.8] = np.inf
        rows, cols = association.solve_hungarian(cost)
        big = 1e6
        r, c = linear_sum_assignment(np.where(np.isfinite(cost), cost, big))
        ok = np.isfinite(cost[r, c])
        assert rows.size == ok.sum()
        assert cost[rows, cols].sum() == pytest.approx(cost[r[ok], c[ok]].sum())


def test_ctrv_velocity_measurement_jacobian_matches_finite_differences():
    model = _model("ctrv")
    x = np.array([[1.0, 2.0, 0.5, 4.0, 2.0, 1.5, 0.7, -3.0, 0.2]])
    _, H = model.velocity_measurement(x)
    eps = 1e-6
    for j in range(9):
        plus, minus = x.copy(), x.copy()
        plus[0, j] += eps
        minus[0, j] -= eps
        numeric = (model.velocities(plus) - model.velocities(minus))[0] / (2 * eps)
        np.testing.assert_allclose(H[0, :, j], numeric, atol=1e-6)


@pytest.mark.parametrize("name", ["cv", "ctrv"])
def test_velocity_fusion_pulls_the_velocity_towards_the_measurement(name):
    from perception.tracking.motion import kalman_update_with_velocity

    model = _model(name)
    x, P = model.init_state(CAR, LABELS, None)
    R = measurement_noise(MeasurementConfig())
    x_box, P_box = kalman_update(x.copy(), P.copy(), CAR.copy(), R)
    x_vel, P_vel = kalman_update_with_velocity(x.copy(), P.copy(), CAR.copy(), R,
                                               np.array([[4.0, 0.0]]), 0.5, model)
    assert np.linalg.norm(model.velocities(x_box)) < 1e-9     # boxes alone: still unknown
    np.testing.assert_allclose(model.velocities(x_vel), [[4.0, 0.0]], atol=0.2)
    assert P_vel[0, 7, 7] < P_box[0, 7, 7] / 10
    assert (np.linalg.eigvalsh(P_vel[0]) > 0).all()
    # The box part of the update is the same as without the velocity.
    np.testing.assert_allclose(x_vel[0, :7], x_box[0, :7], atol=1e-9)

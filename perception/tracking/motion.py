"""Motion models for the tracker: constant velocity (linear Kalman) and CTRV (extended Kalman).

Both models are batched over tracks and run in the tracker's world frame, float64. Their
states share the first seven entries, the box in the package's box order, which is also the
measurement:

* CV:   ``(x, y, z, length, width, height, heading, vx, vy)``
* CTRV: ``(x, y, z, length, width, height, heading, v, yaw_rate)``, where the object moves
  along its heading at signed speed ``v``.

So ``S = 9`` for both and the measurement matrix ``H`` is ``[I_7 | 0]``. Shapes: ``x`` (T, 9),
``P`` (T, 9, 9); ``labels`` (T,) int32 :class:`~perception.types.ObjectClass` values.

Both derive from :class:`KalmanMotionModel`, which holds the shared state set-up and prediction
step; a model states its motion (initial velocity entries, transition, process noise) and how
it reads velocities.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..types import ObjectClass, wrap_heading
from .config import ClassValues, MeasurementConfig, MotionConfig

STATE_DIM = 9
MEAS_DIM = 7
X, Y, Z, LENGTH, WIDTH, HEIGHT, HEADING = range(7)
V0, V1 = 7, 8
"""CV: (vx, vy). CTRV: (v, yaw_rate)."""

_MIN_SIZE_M = 0.05
_MIN_YAW_RATE = 1e-4


def per_label(values: ClassValues, labels: np.ndarray) -> np.ndarray:
    """(T,) float64 value of ``values`` for each label; unknown labels take the vehicle value."""
    table = {int(ObjectClass.VEHICLE): values.vehicle,
             int(ObjectClass.PEDESTRIAN): values.pedestrian,
             int(ObjectClass.CYCLIST): values.cyclist}
    out = np.full(labels.shape, values.vehicle, dtype=np.float64)
    for label, value in table.items():
        out[labels == label] = value
    return out


def measurement_noise(config: MeasurementConfig) -> np.ndarray:
    """(7, 7) float64 diagonal R of one detection box."""
    std = [config.position_std_m, config.position_std_m, config.z_std_m, config.size_std_m,
           config.size_std_m, config.size_std_m, config.heading_std_rad]
    return np.diag(np.square(std))


def innovation(x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """(..., 7) innovation ``z - H x`` with the heading difference wrapped to [-pi/2, pi/2).

    Detectors confuse front and back; the box is the same either way, so the heading
    innovation is taken modulo pi and a flipped detection does not turn the track.
    """
    y = z - x[..., :MEAS_DIM]
    dh = wrap_heading(y[..., HEADING])
    dh = np.where(dh >= np.pi / 2, dh - np.pi, dh)
    dh = np.where(dh < -np.pi / 2, dh + np.pi, dh)
    y[..., HEADING] = dh
    return y


def kalman_update(x: np.ndarray, P: np.ndarray, z: np.ndarray, R: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Batched Kalman update with ``H = [I_7 | 0]`` (both models measure the box linearly).

    x (M, 9), P (M, 9, 9), z (M, 7), R (7, 7). Returns the posterior (x, P); sizes are kept
    positive and the heading wrapped.
    """
    if x.shape[0] == 0:
        return x, P
    S = P[:, :MEAS_DIM, :MEAS_DIM] + R
    K = np.linalg.solve(S, P[:, :MEAS_DIM, :]).transpose(0, 2, 1)    # (M, 9, 7), S symmetric
    y = innovation(x, z)
    x = x + np.einsum("mij,mj->mi", K, y)
    P = P - K @ P[:, :MEAS_DIM, :]
    P = 0.5 * (P + P.transpose(0, 2, 1))
    x[:, HEADING] = wrap_heading(x[:, HEADING])
    x[:, LENGTH:HEIGHT + 1] = np.maximum(x[:, LENGTH:HEIGHT + 1], _MIN_SIZE_M)
    return x, P


def kalman_update_with_velocity(x: np.ndarray, P: np.ndarray, z: np.ndarray, R: np.ndarray,
                                velocity: np.ndarray, velocity_std_mps: float,
                                model: MotionModel) -> tuple[np.ndarray, np.ndarray]:
    """Batched (extended) Kalman update with the box and a measured velocity.

    x (M, 9), P (M, 9, 9), z (M, 7) boxes, R (7, 7), velocity (M, 2) over ground in the state's
    frame. The velocity rows of the measurement come from ``model.velocity_measurement``
    (linear for CV, linearised for CTRV).
    """
    M = x.shape[0]
    if M == 0:
        return x, P
    m = MEAS_DIM + 2
    H = np.zeros((M, m, STATE_DIM))
    H[:, :MEAS_DIM, :MEAS_DIM] = np.eye(MEAS_DIM)
    predicted_velocity, H[:, MEAS_DIM:, :] = model.velocity_measurement(x)
    R_full = np.zeros((m, m))
    R_full[:MEAS_DIM, :MEAS_DIM] = R
    R_full[MEAS_DIM:, MEAS_DIM:] = np.eye(2) * velocity_std_mps ** 2
    y = np.concatenate([innovation(x, z), velocity - predicted_velocity], axis=1)
    PHt = P @ H.transpose(0, 2, 1)                                           # (M, 9, m)
    S = H @ PHt + R_full
    K = np.linalg.solve(S, PHt.transpose(0, 2, 1)).transpose(0, 2, 1)       # (M, 9, m)
    x = x + np.einsum("mij,mj->mi", K, y)
    P = P - K @ H @ P
    P = 0.5 * (P + P.transpose(0, 2, 1))
    x[:, HEADING] = wrap_heading(x[:, HEADING])
    x[:, LENGTH:HEIGHT + 1] = np.maximum(x[:, LENGTH:HEIGHT + 1], _MIN_SIZE_M)
    return x, P


class KalmanMotionModel(ABC):
    """What the CV and CTRV models share: the state layout, the initial covariance, the
    prediction step and the noise of z and the sizes.

    The box part of a new state is the detection with the measurement noise as covariance; z and
    the sizes are random walks in every model. A model says only what differs:
    :meth:`initial_motion` (entries 7 and 8 of a new state and their variances),
    :meth:`transition` (the predicted state and the Jacobian ``F`` of the motion) and
    :meth:`process_noise` (its own part of ``Q``), plus how it reads velocities and turns a
    track round.
    """

    name: str

    def __init__(self, motion: MotionConfig, measurement: MeasurementConfig):
        self.motion = motion
        self.measurement = measurement

    def init_state(self, boxes: np.ndarray, labels: np.ndarray,
                   velocities: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """New states from world-frame boxes (N, 7) and optional over-ground velocities (N, 2)."""
        n = boxes.shape[0]
        x = np.zeros((n, STATE_DIM))
        x[:, :MEAS_DIM] = boxes
        P = np.zeros((n, STATE_DIM, STATE_DIM))
        P[:, :MEAS_DIM, :MEAS_DIM] = measurement_noise(self.measurement)
        x[:, V0:V1 + 1], var = self.initial_motion(boxes, labels, velocities)
        P[:, V0, V0] = var[:, 0]
        P[:, V1, V1] = var[:, 1]
        return x, P

    def predict(self, x: np.ndarray, P: np.ndarray, labels: np.ndarray, dt_s: float
                ) -> tuple[np.ndarray, np.ndarray]:
        """States and covariances ``dt_s`` seconds later: ``F P F^T + Q``."""
        if x.shape[0] == 0 or dt_s == 0.0:
            return x, P
        x_pred, F = self.transition(x, dt_s)
        Q = self._random_walk_noise(dt_s, x.shape[0]) + self.process_noise(x, labels, dt_s)
        P = F @ P @ np.swapaxes(F, -1, -2) + Q
        return x_pred, P

    def _random_walk_noise(self, dt_s: float, n: int) -> np.ndarray:
        """(n, 9, 9) process noise of z and the sizes, zero elsewhere."""
        Q = np.zeros((n, STATE_DIM, STATE_DIM))
        Q[:, Z, Z] = (self.motion.z_rate_std_mps * dt_s) ** 2
        for i in (LENGTH, WIDTH, HEIGHT):
            Q[:, i, i] = (self.motion.size_rate_std_mps * dt_s) ** 2
        return Q

    def flip_heading(self, x: np.ndarray, P: np.ndarray, mask: np.ndarray) -> None:
        """Turn the heading of the masked tracks by pi (in place). The rest of the state is
        unchanged, as the CV velocity is over ground; CTRV also negates its speed."""
        x[mask, HEADING] = wrap_heading(x[mask, HEADING] + np.pi)

    def frame_jacobian(self, yaw: float) -> np.ndarray:
        """(9, 9) Jacobian of the state under a frame rotation by ``yaw`` (for covariances)."""
        J = np.eye(STATE_DIM)
        c, s = np.cos(yaw), np.sin(yaw)
        J[X:Y + 1, X:Y + 1] = np.array([[c, -s], [s, c]])
        return J

    # ---- what each model states --------------------------------------------------------
    @abstractmethod
    def initial_motion(self, boxes: np.ndarray, labels: np.ndarray,
                       velocities: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Entries 7 and 8 of new states (N, 2) and their variances (N, 2)."""

    @abstractmethod
    def transition(self, x: np.ndarray, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Predicted states (T, 9), a new array, and the Jacobian ``F`` of the motion,
        (9, 9) or (T, 9, 9)."""

    @abstractmethod
    def process_noise(self, x: np.ndarray, labels: np.ndarray, dt_s: float) -> np.ndarray:
        """(T, 9, 9) process noise of the motion at the prior states ``x``; z and the sizes are
        added by :meth:`predict`."""

    @abstractmethod
    def velocities(self, x: np.ndarray) -> np.ndarray:
        """(T, 2) over-ground velocity in the state's frame."""

    @abstractmethod
    def velocity_measurement(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted velocity (T, 2) and its Jacobian (T, 2, 9)."""


class ConstantVelocity(KalmanMotionModel):
    """Linear constant-velocity model; the heading is a slow random walk."""

    name = "cv"

    def initial_motion(self, boxes: np.ndarray, labels: np.ndarray,
                       velocities: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        n = boxes.shape[0]
        if velocities is not None:
            v = velocities
            var_v = np.full(n, self.measurement.velocity_std_mps ** 2)
        else:
            v = np.zeros((n, 2))
            var_v = per_label(self.motion.init_velocity_std_mps, labels) ** 2
        return v, np.stack([var_v, var_v], axis=1)

    def transition(self, x: np.ndarray, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
        F = np.eye(STATE_DIM)
        F[X, V0] = dt_s
        F[Y, V1] = dt_s
        return x @ F.T, F

    def process_noise(self, x: np.ndarray, labels: np.ndarray, dt_s: float) -> np.ndarray:
        """White acceleration per class on x and y; the heading a random walk."""
        Q = np.zeros((x.shape[0], STATE_DIM, STATE_DIM))
        q = per_label(self.motion.accel_std_mps2, labels) ** 2
        for pos, vel in ((X, V0), (Y, V1)):
            Q[:, pos, pos] = q * dt_s ** 4 / 4.0
            Q[:, pos, vel] = Q[:, vel, pos] = q * dt_s ** 3 / 2.0
            Q[:, vel, vel] = q * dt_s ** 2
        Q[:, HEADING, HEADING] = (self.motion.heading_rate_std_radps * dt_s) ** 2
        return Q

    def velocities(self, x: np.ndarray) -> np.ndarray:
        return x[:, V0:V1 + 1].copy()

    def velocity_measurement(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted velocity (T, 2) and its Jacobian (T, 2, 9): here linear."""
        H = np.zeros((x.shape[0], 2, STATE_DIM))
        H[:, 0, V0] = 1.0
        H[:, 1, V1] = 1.0
        return self.velocities(x), H

    def frame_jacobian(self, yaw: float) -> np.ndarray:
        """(9, 9) Jacobian of the state under a frame rotation by ``yaw``: the velocity turns
        with the position."""
        J = super().frame_jacobian(yaw)
        J[V0:V1 + 1, V0:V1 + 1] = J[X:Y + 1, X:Y + 1]
        return J


class CTRV(KalmanMotionModel):
    """Constant turn rate and velocity, linearised per track (extended Kalman filter)."""

    name = "ctrv"

    def initial_motion(self, boxes: np.ndarray, labels: np.ndarray,
                       velocities: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        n = boxes.shape[0]
        v = np.zeros((n, 2))
        var = np.zeros((n, 2))
        if velocities is not None:
            # Signed speed along the box heading; the flip fix turns the box if v < 0.
            heading = boxes[:, HEADING]
            v[:, 0] = velocities[:, 0] * np.cos(heading) + velocities[:, 1] * np.sin(heading)
            var[:, 0] = self.measurement.velocity_std_mps ** 2
        else:
            var[:, 0] = per_label(self.motion.init_velocity_std_mps, labels) ** 2
        var[:, 1] = self.motion.init_yaw_rate_std_radps ** 2
        return v, var

    def transition(self, x: np.ndarray, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
        h, v, w = x[:, HEADING], x[:, V0], x[:, V1]
        turning = np.abs(w) > _MIN_YAW_RATE
        w_safe = np.where(turning, w, 1.0)
        h1 = h + w * dt_s
        sin_h, cos_h, sin_h1, cos_h1 = np.sin(h), np.cos(h), np.sin(h1), np.cos(h1)
        # Turning: exact arc; nearly straight: its expansion to first order in w, which keeps
        # the motion and the Jacobian consistent at w = 0.
        dx = np.where(turning, v / w_safe * (sin_h1 - sin_h),
                      v * dt_s * cos_h - 0.5 * v * w * dt_s ** 2 * sin_h)
        dy = np.where(turning, v / w_safe * (cos_h - cos_h1),
                      v * dt_s * sin_h + 0.5 * v * w * dt_s ** 2 * cos_h)
        F = np.broadcast_to(np.eye(STATE_DIM), (x.shape[0], STATE_DIM, STATE_DIM)).copy()
        F[:, X, HEADING] = np.where(turning, v / w_safe * (cos_h1 - cos_h), -v * sin_h * dt_s)
        F[:, Y, HEADING] = np.where(turning, v / w_safe * (sin_h1 - sin_h), v * cos_h * dt_s)
        F[:, X, V0] = np.where(turning, (sin_h1 - sin_h) / w_safe, cos_h * dt_s)
        F[:, Y, V0] = np.where(turning, (cos_h - cos_h1) / w_safe, sin_h * dt_s)
        F[:, X, V1] = np.where(turning, v * dt_s * cos_h1 / w_safe
                               - v / w_safe ** 2 * (sin_h1 - sin_h),
                               -0.5 * v * dt_s ** 2 * sin_h)
        F[:, Y, V1] = np.where(turning, v * dt_s * sin_h1 / w_safe
                               - v / w_safe ** 2 * (cos_h - cos_h1),
                               0.5 * v * dt_s ** 2 * cos_h)
        F[:, HEADING, V1] = dt_s
        x = x.copy()
        x[:, X] += dx
        x[:, Y] += dy
        x[:, HEADING] = wrap_heading(h1)
        return x, F

    def process_noise(self, x: np.ndarray, labels: np.ndarray, dt_s: float) -> np.ndarray:
        """A longitudinal acceleration per class and a yaw acceleration, ``G q G^T``."""
        n = x.shape[0]
        cos_h, sin_h = np.cos(x[:, HEADING]), np.sin(x[:, HEADING])
        G = np.zeros((n, STATE_DIM, 2))
        G[:, X, 0] = 0.5 * dt_s ** 2 * cos_h
        G[:, Y, 0] = 0.5 * dt_s ** 2 * sin_h
        G[:, V0, 0] = dt_s
        G[:, HEADING, 1] = 0.5 * dt_s ** 2
        G[:, V1, 1] = dt_s
        q = np.zeros((n, 2, 2))
        q[:, 0, 0] = per_label(self.motion.accel_std_mps2, labels) ** 2
        q[:, 1, 1] = self.motion.yaw_accel_std_radps2 ** 2
        return G @ q @ G.transpose(0, 2, 1)

    def velocities(self, x: np.ndarray) -> np.ndarray:
        v = x[:, V0]
        return np.stack([v * np.cos(x[:, HEADING]), v * np.sin(x[:, HEADING])], axis=1)

    def velocity_measurement(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted velocity ``v (cos h, sin h)`` (T, 2) and its Jacobian (T, 2, 9)."""
        v, c, s = x[:, V0], np.cos(x[:, HEADING]), np.sin(x[:, HEADING])
        H = np.zeros((x.shape[0], 2, STATE_DIM))
        H[:, 0, HEADING] = -v * s
        H[:, 1, HEADING] = v * c
        H[:, 0, V0] = c
        H[:, 1, V0] = s
        return self.velocities(x), H

    def flip_heading(self, x: np.ndarray, P: np.ndarray, mask: np.ndarray) -> None:
        """Turn the masked tracks by pi and negate their speed (in place): same motion."""
        super().flip_heading(x, P, mask)
        x[mask, V0] = -x[mask, V0]
        P[mask, V0, :] = -P[mask, V0, :]
        P[mask, :, V0] = -P[mask, :, V0]


MotionModel = KalmanMotionModel


def make_motion_model(motion: MotionConfig, measurement: MeasurementConfig) -> MotionModel:
    """The model named by ``motion.model``."""
    if motion.model == "cv":
        return ConstantVelocity(motion, measurement)
    if motion.model == "ctrv":
        return CTRV(motion, measurement)
    raise ValueError(f"unknown motion model {motion.model!r}")

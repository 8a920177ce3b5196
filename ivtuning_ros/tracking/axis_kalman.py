"""ByteTrack's Kalman filter at the cost of a few float operations per track.

`trackers`' filter is general: 8x8 matrix products per track per frame, 1.7 ms per frame
at 50 boxes, most of what tracking costs. With ByteTrack's noise settings the same filter
splits into one small filter per box coordinate; `AxisKalmanEstimator` computes it that
way and plugs into the library's ByteTrack through its `state_estimator_class`, so
association, track life and identities stay the library's.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from trackers.utils.motion_models import ScalableProcessNoise
from trackers.utils.state_representations import XYXYStateEstimator


@lru_cache(maxsize=64)
def _axis_process_noise(
    frame_step: float, frame_rate: float | None, q_position: float, q_velocity: float
) -> tuple[float, float, float]:
    """One axis's process noise (position, cross, velocity) for a step, scaled for gaps
    exactly as the library scales its 8x8 one (same code, on the 2x2 block). Every track
    of a frame shares the step, so this runs once per frame."""
    one_frame = np.diag([q_position, q_velocity])
    noise = ScalableProcessNoise(
        dim_x=2,
        pos_idx=np.array([0]),
        vel_idx=np.array([1]),
        baseline_Q=one_frame,
        sigma_a2=np.array([q_velocity]),
        extra_q_diagonal=np.diag(one_frame).copy(),
    )
    q = noise.build_Q(frame_step, frame_rate)
    return float(q[0, 0]), float(q[0, 1]), float(q[1, 1])


class AxisKalmanEstimator(XYXYStateEstimator):
    """`trackers`' XYXY constant-velocity Kalman filter, computed one coordinate at a time.

    ByteTrack sets the measurement noise, the process noise and the initial covariance to
    multiples of the identity, so the four corner coordinates are independent
    (position, velocity) filters that share one 2x2 covariance: predict and update are a
    dozen float operations instead of 8x8 matrix products, with the same result (a test
    runs both side by side). Noise of any other form is refused. The library's 8x8 filter
    (`self.kf`) holds the configuration and is brought up to date only when its state is
    asked for (`get_state`).
    """

    def __init__(self, bbox: np.ndarray) -> None:
        super().__init__(bbox)
        self._read_filter()

    def _read_filter(self) -> None:
        kf = self.kf
        r, q, p = kf.measurement_noise, kf.process_noise, kf.state_covariance
        pos, vel = self._POS_IDX[0], self._VEL_IDX[0]
        self._r = float(r[0, 0])
        self._q = (float(q[pos, pos]), float(q[vel, vel]))
        self._p = (float(p[pos, pos]), float(p[pos, vel]), float(p[vel, vel]))
        if not (
            np.array_equal(r, self._r * np.eye(4))
            and np.array_equal(q, np.diag(np.repeat(self._q, 4)))
            and np.array_equal(p, self._covariance())
        ):
            raise ValueError(
                "AxisKalmanEstimator needs noise and covariance that treat the four "
                "coordinates alike (multiples of the identity); use XYXYStateEstimator"
            )
        self._x = [float(v) for v in kf.state[self._POS_IDX, 0]]
        self._v = [float(v) for v in kf.state[self._VEL_IDX, 0]]

    def _covariance(self) -> np.ndarray:
        """The 8x8 covariance that the shared per-axis one (`_p`) stands for."""
        a, b, c = self._p
        eye = np.eye(4)
        return np.block([[a * eye, b * eye], [b * eye, c * eye]])

    def _write_filter(self) -> None:
        self.kf.state = np.array(self._x + self._v, np.float64).reshape(8, 1)
        self.kf.state_covariance = self._covariance()

    def set_kf_covariances(
        self,
        measurement_noise: np.ndarray | None = None,
        process_noise: np.ndarray | None = None,
        state_covariance: np.ndarray | None = None,
    ) -> None:
        self._write_filter()
        super().set_kf_covariances(measurement_noise, process_noise, state_covariance)
        self._read_filter()

    def predict(self, frame_step: float = 1.0, frame_rate: float | None = None) -> None:
        q_pp, q_pv, q_vv = _axis_process_noise(frame_step, frame_rate, *self._q)
        dt = frame_step
        a, b, c = self._p
        self._p = (a + dt * (2.0 * b + dt * c) + q_pp, b + dt * c + q_pv, c + q_vv)
        x, v = self._x, self._v
        self._x = [x[0] + dt * v[0], x[1] + dt * v[1], x[2] + dt * v[2], x[3] + dt * v[3]]

    def update(self, bbox: np.ndarray | None) -> None:
        if bbox is None:
            return
        a, b, c = self._p
        s = a + self._r
        k_x, k_v = a / s, b / s  # the Kalman gain of every axis
        x, v = self._x, self._v
        y = [float(bbox[i]) - x[i] for i in range(4)]
        self._x = [x[i] + k_x * y[i] for i in range(4)]
        self._v = [v[i] + k_v * y[i] for i in range(4)]
        self._p = ((1.0 - k_x) * a, (1.0 - k_x) * b, c - k_v * b)

    def state_to_bbox(self) -> np.ndarray:
        return np.array(self._x)

    def get_state(self) -> dict:
        self._write_filter()
        return super().get_state()

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self._read_filter()

"""The vectorised constant-velocity Kalman filter."""

from __future__ import annotations

import numpy as np
import pytest

from togethernet_ros.tracking.kalman import BoxKalmanFilter, KalmanStates


def test_filter_learns_constant_velocity_without_lag():
    kalman = BoxKalmanFilter(process_noise=0.5, measurement_noise=0.05)
    velocity = np.array([[60.0, -30.0, 2.0, 4.0]])  # px/s
    start = np.array([[100.0, 200.0, 50.0, 100.0]])
    states = kalman.initiate(start)
    dt = 1 / 30
    for step in range(1, 40):
        kalman.predict(states, dt)
        kalman.update(states, np.array([0]), start + velocity * step * dt)
    np.testing.assert_allclose(states.velocity, velocity, rtol=1e-3)
    np.testing.assert_allclose(states.position, start + velocity * 39 * dt, atol=1e-3)


def test_filter_smooths_noise_and_uses_real_time_steps():
    rng = np.random.default_rng(0)
    kalman = BoxKalmanFilter(process_noise=0.3, measurement_noise=0.05)
    truth = np.array([[300.0, 300.0, 80.0, 80.0]])
    states = kalman.initiate(truth)
    errors_raw, errors_filtered = [], []
    for _ in range(200):
        kalman.predict(states, 1 / 30)
        measured = truth + rng.normal(0, 4.0, (1, 4))
        kalman.update(states, np.array([0]), measured)
        errors_raw.append(measured - truth)
        errors_filtered.append(states.position - truth)
    assert np.std(errors_filtered[20:]) < 0.5 * np.std(errors_raw[20:])
    # A longer step means more uncertainty: variance grows with dt.
    a, b = states.select(np.array([0])), states.select(np.array([0]))
    kalman.predict(a, 1 / 30)
    kalman.predict(b, 0.5)
    assert np.all(b.var_position > a.var_position)


def test_states_select_and_append_keep_rows_together():
    kalman = BoxKalmanFilter(1.0, 0.1)
    states = kalman.initiate(np.array([[1.0, 2, 3, 4], [5, 6, 7, 8]])).append(
        kalman.initiate(np.array([[9.0, 10, 11, 12]]))
    )
    assert len(states) == 3 and len(KalmanStates.empty()) == 0
    picked = states.select(np.array([False, True, True]))
    assert picked.position[:, 0].tolist() == [5.0, 9.0]
    assert picked.var_velocity.shape == (2, 4)


def test_filter_rejects_non_positive_noise():
    with pytest.raises(ValueError, match="process_noise"):
        BoxKalmanFilter(0.0, 0.05)

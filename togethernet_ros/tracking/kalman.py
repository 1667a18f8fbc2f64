"""Constant-velocity Kalman filter over box centre and size, for many tracks at once.

State per track: (cx, cy, w, h) and their velocities in pixels per second, driven by white
acceleration noise with the real time step between frames (dropped frames just mean a longer step).
The x, y, w and h axes never mix in this model (F, H, Q and R are all per-axis), so each track's
8×8 covariance is four independent 2×2 blocks; storing only (var_pos, cov, var_vel) per axis makes
predict/update plain element-wise numpy with no per-track loop or matrix inverse. A
constant-velocity filter has no steady-state lag on constant-velocity motion, unlike a low-pass
filter.

Noise is relative to box size (x axes scale with width, y axes with height), so a far-away car and
a close bus are smoothed alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Prior velocity std of a new track, in box sizes per second: loose enough that the second
# measurement sets the velocity almost entirely.
_INITIAL_VELOCITY_STD = 2.0
# The smallest box side a track's state takes; the tracker ignores detections below it, whose
# IoU with their own (clamped) track would be ~0 and start a new track every frame.
MIN_BOX_SIDE_PX = 1.0


@dataclass
class KalmanStates:
    """Filter state of T tracks; every array is (T, 4) over the axes (cx, cy, w, h)."""

    position: np.ndarray
    velocity: np.ndarray
    var_position: np.ndarray
    covariance: np.ndarray
    var_velocity: np.ndarray

    @classmethod
    def empty(cls) -> KalmanStates:
        """State holding no tracks."""
        zeros = np.zeros((0, 4), dtype=np.float64)
        return cls(zeros, zeros.copy(), zeros.copy(), zeros.copy(), zeros.copy())

    def __len__(self) -> int:
        return len(self.position)

    def select(self, index: np.ndarray) -> KalmanStates:
        """The tracks picked by a boolean mask or an index array (copies)."""
        return KalmanStates(
            self.position[index],
            self.velocity[index],
            self.var_position[index],
            self.covariance[index],
            self.var_velocity[index],
        )

    def append(self, other: KalmanStates) -> KalmanStates:
        """These tracks followed by ``other``'s."""
        return KalmanStates(
            np.concatenate([self.position, other.position]),
            np.concatenate([self.velocity, other.velocity]),
            np.concatenate([self.var_position, other.var_position]),
            np.concatenate([self.covariance, other.covariance]),
            np.concatenate([self.var_velocity, other.var_velocity]),
        )


class BoxKalmanFilter:
    """Vectorised constant-velocity Kalman filter for (cx, cy, w, h) boxes.

    ``process_noise``: white-acceleration density, in box sizes per second per √second.
    ``measurement_noise``: std of a measured coordinate, in box sizes.
    """

    def __init__(self, process_noise: float, measurement_noise: float) -> None:
        if not process_noise > 0 or not measurement_noise > 0:
            raise ValueError(
                f"Kalman noise must be > 0, got process_noise={process_noise!r}, "
                f"measurement_noise={measurement_noise!r}"
            )
        self.process_noise = float(process_noise)
        self.measurement_noise = float(measurement_noise)

    def initiate(self, measurements: np.ndarray) -> KalmanStates:
        """New tracks at the measured (M, 4) cxcywh boxes, velocity unknown (zero mean)."""
        measured = np.asarray(measurements, dtype=np.float64).reshape(-1, 4)
        scale = _axis_scale(measured)
        return KalmanStates(
            position=measured.copy(),
            velocity=np.zeros_like(measured),
            var_position=(self.measurement_noise * scale) ** 2,
            covariance=np.zeros_like(measured),
            var_velocity=(_INITIAL_VELOCITY_STD * scale) ** 2,
        )

    def predict(self, states: KalmanStates, dt: float) -> None:
        """Advance every track by ``dt`` seconds, in place."""
        if dt <= 0.0 or len(states) == 0:
            return
        scale_sq = _axis_scale(states.position) ** 2
        density = self.process_noise**2 * scale_sq
        states.position += states.velocity * dt
        states.var_position += (
            2.0 * dt * states.covariance + dt * dt * states.var_velocity + density * (dt**3 / 3.0)
        )
        states.covariance += dt * states.var_velocity + density * (dt * dt / 2.0)
        states.var_velocity += density * dt
        np.maximum(states.position[:, 2:], MIN_BOX_SIDE_PX, out=states.position[:, 2:])

    def update(self, states: KalmanStates, index: np.ndarray, measurements: np.ndarray) -> None:
        """Correct the tracks ``index`` (int array) with their (K, 4) cxcywh boxes, in place."""
        if len(index) == 0:
            return
        measured = np.asarray(measurements, dtype=np.float64).reshape(-1, 4)
        position = states.position[index]
        var_position = states.var_position[index]
        covariance = states.covariance[index]
        noise = (self.measurement_noise * _axis_scale(position)) ** 2
        innovation_var = var_position + noise
        gain_position = var_position / innovation_var
        gain_velocity = covariance / innovation_var
        innovation = measured - position
        states.position[index] = np.maximum(
            position + gain_position * innovation,
            [-np.inf, -np.inf, MIN_BOX_SIDE_PX, MIN_BOX_SIDE_PX],
        )
        states.velocity[index] += gain_velocity * innovation
        states.var_velocity[index] -= gain_velocity * covariance
        states.var_position[index] = (1.0 - gain_position) * var_position
        states.covariance[index] = (1.0 - gain_position) * covariance


def _axis_scale(cxcywh: np.ndarray) -> np.ndarray:
    """Per-axis noise scale: width for (cx, w), height for (cy, h), at least one pixel."""
    size = np.maximum(cxcywh[:, 2:4], MIN_BOX_SIDE_PX)
    return np.concatenate([size, size], axis=1)

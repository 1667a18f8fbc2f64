"""When each camera's next frame is due, learned from the rhythm of its recent frames.

Cameras run at a steady rate, so a camera's next frame arrives about one period after its last
one, give or take its jitter. The frame batcher asks this forecast whether a camera that has no
frame waiting is worth waiting for: only if its next frame is due before the batch's deadline.
Cameras triggered together then share a batch (the batch starts once the last expected frame is
in), and cameras out of phase no longer hold each other's frames back for the whole
``max_batch_wait_ms`` for a frame that cannot come in time.

A camera whose rhythm is not known yet (fewer than ``min_intervals`` intervals since it started
or came back from a pause), or whose jitter is so large that its slots cover the whole period,
is always "due": the batcher then waits for it up to the deadline, as it would without a
forecast.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from itertools import pairwise
from statistics import median

# A median absolute deviation times this is the jitter window: ~2 standard deviations of
# normally distributed jitter (MAD ≈ 0.67 σ), robust to the odd doubled interval of a lost frame.
_MAD_TO_WINDOW = 3.0
# The next frame is projected from this many recent arrivals (their median), so one late frame
# does not move the camera's next slot late too.
_PHASE_ARRIVALS = 3


@dataclass
class _CameraRhythm:
    arrivals: deque[float]
    fitted: tuple[float, float] | None = None
    stale: bool = False
    """Whether an arrival came after ``fitted`` was computed (refit on the next question)."""


class ArrivalForecast:
    """Per-camera arrival rhythm: period (median interval) and jitter window.

    The last ``history`` intervals are kept per camera; an interval longer than
    ``max_interval_s`` (a pause, a restarted driver) or a clock going backwards (a looping bag)
    starts the camera's rhythm afresh. The jitter window is at least ``min_window_s`` so a
    perfectly regular camera still tolerates scheduling noise.
    """

    def __init__(
        self,
        history: int = 16,
        min_intervals: int = 3,
        min_window_s: float = 0.001,
        max_interval_s: float = 1.0,
    ) -> None:
        if history < 1 or min_intervals < 1 or min_intervals > history:
            raise ValueError(
                f"need 1 <= min_intervals <= history, got {min_intervals} and {history}"
            )
        if not (math.isfinite(min_window_s) and min_window_s >= 0):
            raise ValueError(f"min_window_s must be finite and >= 0, got {min_window_s!r}")
        if not (math.isfinite(max_interval_s) and max_interval_s > 0):
            raise ValueError(f"max_interval_s must be finite and > 0, got {max_interval_s!r}")
        self._history = history
        self._min_intervals = min_intervals
        self._min_window_s = min_window_s
        self._max_interval_s = max_interval_s
        self._cameras: dict[str, _CameraRhythm] = {}

    def record(self, camera_id: str, arrived_at: float) -> None:
        """Note that a frame of ``camera_id`` arrived at ``arrived_at`` (seconds, monotonic)."""
        camera = self._cameras.get(camera_id)
        if camera is None:
            camera = self._cameras[camera_id] = _CameraRhythm(deque(maxlen=self._history + 1))
        arrivals = camera.arrivals
        if arrivals:
            interval = arrived_at - arrivals[-1]
            if interval == 0:
                return  # a frame in the same clock tick says nothing about the rate
            if not 0 < interval <= self._max_interval_s:
                arrivals.clear()
        arrivals.append(arrived_at)
        # Refit lazily: put() runs on every frame, the question only when a batch waits.
        camera.stale = True

    def rhythm(self, camera_id: str) -> tuple[float, float] | None:
        """``(period_s, window_s)`` of a camera, or None while it is unknown or too irregular."""
        camera = self._cameras.get(camera_id)
        if camera is None:
            return None
        if camera.stale:
            camera.fitted = self._fit(camera.arrivals)
            camera.stale = False
        return camera.fitted

    def next_slot(self, camera_id: str, now: float) -> tuple[float, float] | None:
        """``(earliest, latest)`` arrival times of the camera's next frame not overdue at ``now``.

        None when the camera's rhythm is unknown. A frame still missing at its slot's latest
        time is taken as lost (a dropped sample, a skipped trigger): the next slot is a period
        on, so ``latest > now`` always.
        """
        rhythm = self.rhythm(camera_id)
        if rhythm is None:
            return None
        period, window = rhythm
        arrivals = self._cameras[camera_id].arrivals
        last = arrivals[-1]
        # Each recent arrival projected to the slot after the last one, whole periods on.
        expected = median(
            arrival + (round((last - arrival) / period) + 1) * period
            for arrival in list(arrivals)[-_PHASE_ARRIVALS:]
        )
        while expected + window <= now:
            # Whole periods at once, at least one: rounding must not leave it overdue.
            expected += max(1, math.floor((now - expected - window) / period)) * period
        return expected - window, expected + window

    def _fit(self, arrivals: deque[float]) -> tuple[float, float] | None:
        if len(arrivals) <= self._min_intervals:
            return None
        intervals = [later - earlier for earlier, later in pairwise(arrivals)]
        period = median(intervals)
        deviation = median(abs(interval - period) for interval in intervals)
        window = max(self._min_window_s, _MAD_TO_WINDOW * deviation)
        # Slots as wide as the period leave no time at which the camera is surely not coming.
        if 2 * window >= period:
            return None
        return period, window

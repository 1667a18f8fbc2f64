"""Sliding-window latency percentiles for diagnostics (p50 / p95 / p99), and when to trust one.

Percentiles are numpy's default estimate (``method="linear"``: interpolated between the two
order statistics around rank ``p / 100 * (n - 1)``). A tail percentile from few samples is
not a measurement of the tail: of 30 samples, "p99" lies between the two largest, 0.71 of the
way to the max. The rule used here and in every latency report: the p-th percentile is
reliable from ``100 / (100 - p)`` samples on, where at least one sample is expected above it
(p95 from 20 samples, p99 from 100). Below that it is still reported, and flagged.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

# The name numpy gives the estimator (np.percentile's ``method``), as reports state it.
PERCENTILE_METHOD = "linear"


def min_samples_for_percentile(percent: float) -> int:
    """Fewest samples for a reliable ``percent``-th percentile: ceil(100 / (100 - percent)).

    p50: 2, p95: 20, p99: 100, p99.9: 1000. ValueError outside [0, 100).
    """
    if not 0.0 <= percent < 100.0:
        raise ValueError(f"percent must be in [0, 100), got {percent!r}")
    # Rounded before the ceiling: 100 / (100 - 99.9) is 1000.0000000000114 in floating point.
    return max(1, math.ceil(round(100.0 / (100.0 - percent), 9)))


def percentile_reliable(percent: float, count: int) -> bool:
    """Whether ``count`` samples are enough for the ``percent``-th percentile to mean it."""
    return count >= min_samples_for_percentile(percent)


@dataclass(frozen=True)
class LatencySummary:
    """Statistics of the samples in the window, in the unit they were recorded in.

    p95 and p99 are reported from any number of samples; :attr:`p95_reliable` and
    :attr:`p99_reliable` say whether there were enough for them (see the module docstring).
    """

    count: int
    mean: float
    p50: float
    p95: float
    p99: float
    max: float
    method: ClassVar[str] = PERCENTILE_METHOD

    @property
    def p95_reliable(self) -> bool:
        """At least 20 samples: p95 is more than an interpolation near the max."""
        return percentile_reliable(95.0, self.count)

    @property
    def p99_reliable(self) -> bool:
        """At least 100 samples: p99 is more than an interpolation near the max."""
        return percentile_reliable(99.0, self.count)


class LatencyWindow:
    """Keeps the last ``window_size`` samples; safe to record and read from different threads.

    The samples live in a fixed numpy ring, so a summary copies one array and sorts it once:
    the node's diagnostics read 24 windows a second on the thread that takes camera frames
    (a deque read through ``np.fromiter`` and ``np.percentile`` cost ~50 µs a window there).
    """

    def __init__(self, window_size: int = 1000) -> None:
        if isinstance(window_size, bool) or not isinstance(window_size, int) or window_size < 1:
            raise ValueError(f"window_size must be an integer >= 1, got {window_size!r}")
        self._ring = np.empty(window_size, dtype=np.float64)
        self._count = 0  # samples held, at most window_size
        self._next = 0  # where the next sample goes
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return self._count

    def record(self, value: float) -> None:
        """Add one sample (NaN/inf raise ValueError: they would poison every percentile)."""
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"latency sample must be finite, got {value!r}")
        with self._lock:
            self._ring[self._next] = value
            self._next = (self._next + 1) % len(self._ring)
            self._count = min(self._count + 1, len(self._ring))

    def clear(self) -> None:
        """Drop every sample."""
        with self._lock:
            self._count = 0
            self._next = 0

    def summary(self) -> LatencySummary:
        """Percentiles of the current window (all NaN and count 0 when empty)."""
        with self._lock:
            samples = self._ring[: self._count].copy()  # order does not matter: sorted below
        if len(samples) == 0:
            return LatencySummary(0, math.nan, math.nan, math.nan, math.nan, math.nan)
        samples.sort()
        return LatencySummary(
            count=len(samples),
            mean=float(samples.mean()),
            p50=_sorted_percentile(samples, 50.0),
            p95=_sorted_percentile(samples, 95.0),
            p99=_sorted_percentile(samples, 99.0),
            max=float(samples[-1]),
        )


def _sorted_percentile(ordered: np.ndarray, percent: float) -> float:
    """``np.percentile``'s default (:data:`PERCENTILE_METHOD`) estimate, from sorted samples."""
    position = percent / 100.0 * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    low, high = float(ordered[below]), float(ordered[above])
    return low + (high - low) * (position - below)

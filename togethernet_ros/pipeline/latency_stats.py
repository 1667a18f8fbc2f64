"""Sliding-window latency percentiles for diagnostics (p50 / p95 / p99)."""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LatencySummary:
    """Statistics of the samples in the window, in the unit they were recorded in."""

    count: int
    mean: float
    p50: float
    p95: float
    p99: float
    max: float


class LatencyWindow:
    """Keeps the last ``window_size`` samples; safe to record and read from different threads."""

    def __init__(self, window_size: int = 1000) -> None:
        if isinstance(window_size, bool) or not isinstance(window_size, int) or window_size < 1:
            raise ValueError(f"window_size must be an integer >= 1, got {window_size!r}")
        self._samples: deque[float] = deque(maxlen=window_size)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._samples)

    def record(self, value: float) -> None:
        """Add one sample (NaN/inf raise ValueError: they would poison every percentile)."""
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"latency sample must be finite, got {value!r}")
        with self._lock:
            self._samples.append(value)

    def clear(self) -> None:
        """Drop every sample."""
        with self._lock:
            self._samples.clear()

    def summary(self) -> LatencySummary:
        """Percentiles of the current window (all NaN and count 0 when empty)."""
        with self._lock:
            samples = np.fromiter(self._samples, dtype=np.float64, count=len(self._samples))
        if len(samples) == 0:
            return LatencySummary(0, math.nan, math.nan, math.nan, math.nan, math.nan)
        p50, p95, p99 = np.percentile(samples, [50.0, 95.0, 99.0])
        return LatencySummary(
            count=len(samples),
            mean=float(samples.mean()),
            p50=float(p50),
            p95=float(p95),
            p99=float(p99),
            max=float(samples.max()),
        )

"""Rate-limiting repeated warnings per key, at no cost while they are suppressed.

rclpy's `throttle_duration_sec` looks up the caller's source line on every call, even when the
message is then suppressed (0.3–1 ms each on the 2-core EPYC), and throttles per line of code:
a camera sending only bad frames would pay it for every frame on the executor thread, and a
second bad camera would not be named. Plain Python (no rclpy).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable


class WarningThrottle:
    """`due(key)` is True at most once per `period_s` for each key."""

    def __init__(self, period_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.period_s = period_s
        self._clock = clock
        self._last: dict[Hashable, float] = {}
        self._lock = threading.Lock()  # the executor and the inference thread both warn

    def due(self, key: Hashable) -> bool:
        """Whether a warning for `key` should be emitted now (and, if so, note that it was)."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.period_s:
                return False
            self._last[key] = now
            return True

"""Per-camera counters and rates for /diagnostics (plain Python, thread-safe)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from togethernet_ros.pipeline.latency_stats import LatencyWindow
from togethernet_ros.ros.publisher_sequence_gaps import PublisherSequenceGaps
from togethernet_ros.ros.receive_timing import ReceiveSplit


class CameraStats:
    """What one camera's diagnostics report: rates, counts, latency and inference time.

    Rates are frames per second over the last ``rate_window_s`` seconds of ``clock``.
    Latencies are publish time minus the source stamp, in milliseconds, and split into where
    a frame spent them: ``receive_delay_ms`` (stamp to the node's callback), itself split into
    ``driver_delay_ms``, ``transport_delay_ms`` and ``executor_delay_ms`` (see
    ros/receive_timing.py) where the middleware timestamps samples, ``batch_wait_ms``
    (callback to the start of its batch's inference: other cameras and the previous batch),
    ``inference_ms`` (the batch's `detect`), and the rest (smoothing and publishing, in
    ``node_overhead_ms`` together with the batch wait).
    """

    def __init__(
        self, rate_window_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate_window_s = rate_window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._inputs: deque[float] = deque()
        self._outputs: deque[float] = deque()
        self.received = 0
        self.processed = 0
        self.dropped = 0
        self.bad_frames = 0
        self.prepared_ahead = 0
        self.unstamped = 0
        self.last_problem = ""
        self._last_problem_at: float | None = None
        self._last_input_at: float | None = None
        self.latency_ms = LatencyWindow(500)
        self.node_overhead_ms = LatencyWindow(500)
        self.inference_ms = LatencyWindow(500)
        self.batch_sizes = LatencyWindow(500)
        self.receive_delay_ms = LatencyWindow(500)
        self.batch_wait_ms = LatencyWindow(500)
        self.driver_delay_ms = LatencyWindow(500)
        self.transport_delay_ms = LatencyWindow(500)
        self.executor_delay_ms = LatencyWindow(500)
        self._sequence_gaps = PublisherSequenceGaps()

    def record_input(
        self,
        receive_delay_ms: float | None = None,
        split: ReceiveSplit | None = None,
        sequence_number: int | None = None,
    ) -> None:
        """Count a received frame (input rate), how long after its stamp it arrived and, where
        known, how that time split between the driver, DDS and the node's executor, and its
        publisher's sequence number (gaps: frames lost before the node)."""
        with self._lock:
            self.received += 1
            self._sequence_gaps.observe(sequence_number)
            self._last_input_at = self._clock()
            self._inputs.append(self._last_input_at)
            self._forget_old(self._inputs, self._last_input_at)
        if receive_delay_ms is not None:
            self.receive_delay_ms.record(receive_delay_ms)
        if split is not None:
            for window, value in (
                (self.driver_delay_ms, split.driver_ms),
                (self.transport_delay_ms, split.transport_ms),
                (self.executor_delay_ms, split.executor_ms),
            ):
                if value is not None:
                    window.record(value)

    def restart_publisher_sequence(self) -> None:
        """A new subscription or a publisher (re)connected: count gaps afresh from its next frame."""
        with self._lock:
            self._sequence_gaps.restart()

    @property
    def lost_before_node(self) -> int | None:
        """Frames the camera published that never reached the node's callback; None when no
        frame came with a publisher sequence number (Humble, or a middleware without them)."""
        with self._lock:
            return self._sequence_gaps.missed if self._sequence_gaps.numbered else None

    def record_dropped(self, count: int = 1) -> None:
        """Count received frames that never reached inference (overwritten, or left at stop)."""
        with self._lock:
            self.dropped += count

    def record_bad_frame(self, problem: str) -> None:
        """Count a rejected frame and keep its problem for the diagnostics message."""
        with self._lock:
            self.bad_frames += 1
            self.last_problem = problem
            self._last_problem_at = self._clock()

    def record_unstamped(self) -> None:
        """Count a frame whose header stamp is 0 (no latency can be measured for it)."""
        with self._lock:
            self.unstamped += 1

    def record_prepared_ahead(self) -> None:
        """Count a frame pre-processed while its batch waited for other cameras."""
        with self._lock:
            self.prepared_ahead += 1

    def record_output(
        self,
        latency_ms: float | None,
        inference_ms: float,
        batch_size: int,
        node_overhead_ms: float | None = None,
        batch_wait_ms: float | None = None,
    ) -> None:
        """One processed frame (its outputs published to every subscribed topic).

        node_overhead_ms = in-node time minus the batch's inference; batch_wait_ms = from the
        callback to the start of the batch's inference; latency_ms is None where it cannot be
        measured (use_sim_time before the first /clock).
        """
        with self._lock:
            self.processed += 1
            now = self._clock()
            self._outputs.append(now)
            # Also here, not only when the rates are read: under use_sim_time the diagnostics
            # timer waits for /clock, and may never read them.
            self._forget_old(self._outputs, now)
        if latency_ms is not None:
            self.latency_ms.record(latency_ms)
        if node_overhead_ms is not None:
            self.node_overhead_ms.record(node_overhead_ms)
        if batch_wait_ms is not None:
            self.batch_wait_ms.record(batch_wait_ms)
        self.inference_ms.record(inference_ms)
        self.batch_sizes.record(batch_size)

    def health(self) -> tuple[bool, str]:
        """(healthy, message) for the diagnostics status, judged over the rate window.

        A bad frame makes the camera unhealthy for one window, not for good; a camera that
        sent frames and then fell silent for longer than the window is unhealthy too.
        """
        now = self._clock()
        with self._lock:
            if self._last_input_at is None:
                return False, "no frames received"
            silent_s = now - self._last_input_at
            if silent_s > self._rate_window_s:
                return False, f"no frame for {silent_s:.0f} s"
            if self._last_problem_at is not None and now - self._last_problem_at <= (
                self._rate_window_s
            ):
                return False, self.last_problem
            if self.bad_frames:
                return True, f"ok ({self.bad_frames} bad frames so far; last: {self.last_problem})"
            return True, "ok"

    def rates_hz(self) -> tuple[float, float]:
        """(input rate, output rate) over the recent window."""
        now = self._clock()
        with self._lock:
            return self._rate(self._inputs, now), self._rate(self._outputs, now)

    def _forget_old(self, stamps: deque[float], now: float) -> None:
        while stamps and now - stamps[0] > self._rate_window_s:
            stamps.popleft()

    def _rate(self, stamps: deque[float], now: float) -> float:
        self._forget_old(stamps, now)
        if len(stamps) < 2:
            return 0.0
        span = stamps[-1] - stamps[0]
        return (len(stamps) - 1) / span if span > 0 else 0.0

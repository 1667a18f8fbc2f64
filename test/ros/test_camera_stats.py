"""CameraStats: counts, rates over a sliding window, and the latency split per stage."""

from __future__ import annotations

import math

from togethernet_ros.ros.camera_stats import CameraStats


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_rates_counts_and_the_latency_split():
    clock = Clock()
    stats = CameraStats(rate_window_s=2.0, clock=clock)
    for index in range(11):  # 10 Hz for one second
        stats.record_input(receive_delay_ms=4.0 + index)
        if index % 2 == 0:
            stats.record_output(
                latency_ms=20.0 + index,
                inference_ms=6.0,
                batch_size=4,
                node_overhead_ms=3.0,
                batch_wait_ms=1.0 + index,
            )
        clock.now += 0.1
    stats.record_bad_frame("bad step")
    input_hz, output_hz = stats.rates_hz()
    assert math.isclose(input_hz, 10.0) and math.isclose(output_hz, 5.0)
    assert (stats.received, stats.processed, stats.bad_frames) == (11, 6, 1)
    assert stats.last_problem == "bad step"
    assert stats.receive_delay_ms.summary().p50 == 9.0  # 4..14
    assert stats.batch_wait_ms.summary().max == 11.0  # 1, 3, ..., 11
    assert stats.latency_ms.summary().p50 == 25.0
    # Samples older than the rate window stop counting towards the rates, not the percentiles.
    clock.now += 10.0
    assert stats.rates_hz() == (0.0, 0.0)
    assert len(stats.receive_delay_ms) == 11


def test_optional_samples_are_not_recorded():
    stats = CameraStats()
    stats.record_input()
    stats.record_output(latency_ms=10.0, inference_ms=5.0, batch_size=1)
    assert len(stats.receive_delay_ms) == 0 and len(stats.batch_wait_ms) == 0
    assert len(stats.node_overhead_ms) == 0 and len(stats.latency_ms) == 1


def test_health_recovers_after_a_bad_frame_and_notices_a_silent_camera():
    clock = Clock()
    stats = CameraStats(rate_window_s=5.0, clock=clock)
    assert stats.health() == (False, "no frames received")
    stats.record_input()
    assert stats.health() == (True, "ok")
    stats.record_bad_frame("corrupt JPEG")
    assert stats.health() == (False, "corrupt JPEG")
    for second in range(1, 7):  # good frames for 6 s: WARN while the bad one is in the window
        clock.now += 1.0
        stats.record_input()
        if second <= 4:
            assert stats.health() == (False, "corrupt JPEG"), f"{second} s after the bad frame"
    assert stats.health() == (True, "ok (1 bad frames so far; last: corrupt JPEG)")
    clock.now += 4.0  # silent, but not for longer than the window yet
    assert stats.health()[0]
    clock.now += 3.0  # the camera stopped sending
    assert stats.health() == (False, "no frame for 7 s")


def test_rate_windows_stay_bounded_while_nobody_reads_the_rates():
    """Under use_sim_time without /clock the diagnostics timer never fires to read the rates:
    a camera at 30 Hz must not grow them by every frame it ever sent."""
    clock = Clock()
    stats = CameraStats(rate_window_s=5.0, clock=clock)
    for _ in range(30 * 60):  # one minute at 30 Hz
        stats.record_input()
        stats.record_output(latency_ms=None, inference_ms=5.0, batch_size=1)
        clock.now += 1 / 30
    assert len(stats._inputs) <= 30 * 5 + 1 and len(stats._outputs) <= 30 * 5 + 1
    input_hz, output_hz = stats.rates_hz()
    assert math.isclose(input_hz, 30.0) and math.isclose(output_hz, 30.0)

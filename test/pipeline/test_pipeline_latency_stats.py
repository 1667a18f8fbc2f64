"""Sliding-window latency percentiles."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from togethernet_ros.pipeline import LatencyWindow


def test_percentiles_of_a_known_window():
    window = LatencyWindow(window_size=100)
    for value in range(1, 101):
        window.record(value / 1000.0)
    summary = window.summary()
    assert summary.count == 100
    assert summary.p50 == pytest.approx(0.0505)
    assert summary.p95 == pytest.approx(0.09505)
    assert summary.p99 == pytest.approx(0.09901)
    assert summary.max == pytest.approx(0.1) and summary.mean == pytest.approx(0.0505)


def test_window_slides_and_clears():
    window = LatencyWindow(window_size=10)
    for value in [100.0] * 10 + [1.0] * 10:
        window.record(value)
    assert window.summary().max == 1.0 and len(window) == 10
    window.clear()
    empty = window.summary()
    assert empty.count == 0 and math.isnan(empty.p99)


def test_rejects_bad_samples_and_sizes():
    window = LatencyWindow()
    with pytest.raises(ValueError, match="latency sample must be finite"):
        window.record(float("nan"))
    with pytest.raises(ValueError, match="window_size must be an integer >= 1"):
        LatencyWindow(window_size=0)


def test_recording_from_threads_while_reading():
    window = LatencyWindow(window_size=500)

    def record() -> None:
        for value in np.linspace(0.0, 1.0, 2000):
            window.record(float(value))

    threads = [threading.Thread(target=record) for _ in range(3)]
    for thread in threads:
        thread.start()
    summaries = [window.summary() for _ in range(50)]
    for thread in threads:
        thread.join()
    assert len(window) == 500
    assert all(s.count <= 500 for s in summaries)
    # Every summary read mid-way is consistent, and counts never go down.
    for summary in summaries:
        if summary.count:
            assert 0.0 <= summary.p50 <= summary.p95 <= summary.p99 <= summary.max <= 1.0
    counts = [s.count for s in summaries]
    assert counts == sorted(counts)
    # The window holds the newest 500 values: the tails of the threads' rising ramps, so none
    # is below 1500/1999 whatever the interleaving, and each thread ended on 1.0.
    final = window.summary()
    assert final.count == 500 and final.max == 1.0 and final.mean > 0.75 and final.p50 > 0.75


@pytest.mark.parametrize(("size", "recorded"), [(1, 1), (7, 5), (500, 499), (500, 1234)])
def test_summary_equals_numpy_over_the_newest_samples(size, recorded):
    values = np.random.default_rng(size + recorded).gamma(2.0, 5.0, recorded)
    window = LatencyWindow(window_size=size)
    for value in values:
        window.record(float(value))
    newest = values[-size:]  # what a sliding window of `size` holds after wrapping around
    summary = window.summary()
    assert summary.count == len(newest) == len(window)
    p50, p95, p99 = np.percentile(newest, [50.0, 95.0, 99.0])
    assert summary.p50 == pytest.approx(p50, rel=1e-12)
    assert summary.p95 == pytest.approx(p95, rel=1e-12)
    assert summary.p99 == pytest.approx(p99, rel=1e-12)
    assert summary.max == newest.max() and summary.mean == pytest.approx(newest.mean())

"""Latency reports say how many samples a percentile came from, how, and whether it means much.

numpy's default (linear) estimate of p99 from 10 samples is 0.91 of the way from the 9th to
the 10th largest: the max, nearly, not a tail measured. Reports keep the number and flag it:
p95 needs 20 samples, p99 100 (one sample expected above the percentile).
"""

from __future__ import annotations

import numpy as np
import pytest

from togethernet_ros.bag.replay_metrics import ReceivedOutput, SentFrame, replay_metrics
from togethernet_ros.pipeline import LatencyWindow
from togethernet_ros.pipeline.latency_stats import (
    PERCENTILE_METHOD,
    min_samples_for_percentile,
    percentile_reliable,
)

CAM = "/cam_front/image_raw"
OUT = "/cam_front/detections"


def test_the_rule_one_sample_expected_above_the_percentile():
    assert [min_samples_for_percentile(p) for p in (50, 90, 95, 99, 99.9)] == [
        2,
        10,
        20,
        100,
        1000,
    ]
    assert not percentile_reliable(95, 19) and percentile_reliable(95, 20)
    assert not percentile_reliable(99, 99) and percentile_reliable(99, 100)
    assert not percentile_reliable(99, 0)
    with pytest.raises(ValueError, match="percent must be in"):
        min_samples_for_percentile(100)


def test_the_window_flags_a_tail_from_few_samples_and_keeps_its_value():
    window = LatencyWindow(500)
    for value in range(1, 11):  # 1..10 ms
        window.record(float(value))
    summary = window.summary()
    assert summary.count == 10 and summary.method == PERCENTILE_METHOD == "linear"
    # Position 0.99 x 9 = 8.91: 9 + 0.91 x (10 - 9). Reported, and flagged.
    assert summary.p99 == pytest.approx(9.91) and not summary.p99_reliable
    assert summary.p95 == pytest.approx(9.55) and not summary.p95_reliable
    for value in range(11, 101):
        window.record(float(value))
    summary = window.summary()
    assert summary.count == 100 and summary.p95_reliable and summary.p99_reliable
    assert summary.p99 == pytest.approx(np.percentile(np.arange(1.0, 101.0), 99))
    assert not LatencyWindow(5).summary().p95_reliable  # empty


def _stream(frames: int, latency_s: list[float]) -> tuple[list, list]:
    sent = [SentFrame(CAM, i, 0.1 * i) for i in range(frames)]
    received = [ReceivedOutput(OUT, i, 0.1 * i + latency_s[i]) for i in range(frames)]
    return sent, received


def test_replay_metrics_state_count_method_and_flags():
    sent, received = _stream(10, [0.001 * (i + 1) for i in range(10)])
    metrics = replay_metrics(sent, received)
    for latency in (metrics["cameras"][CAM]["latency_ms"], metrics["overall"]["latency_ms"]):
        assert latency["count"] == 10 and latency["percentile_method"] == "linear"
        assert latency["p99"] == pytest.approx(9.91) and latency["p99_reliable"] is False
        assert latency["p95"] == pytest.approx(9.55) and latency["p95_reliable"] is False
        assert latency["max"] == pytest.approx(10.0)
    # 9 output intervals: the jitter figures are flagged too.
    intervals = metrics["cameras"][CAM]["output_interval_ms"]
    assert intervals["count"] == 9 and intervals["p95_reliable"] is False

    sent, received = _stream(120, [0.005] * 120)
    latency = replay_metrics(sent, received)["overall"]["latency_ms"]
    assert latency["count"] == 120 and latency["p95_reliable"] and latency["p99_reliable"]


def test_replay_metrics_of_nothing_received_say_zero_samples():
    sent, _ = _stream(3, [0.0] * 3)
    latency = replay_metrics(sent, [])["cameras"][CAM]["latency_ms"]
    assert latency["count"] == 0 and latency["percentile_method"] == "linear"
    assert latency["p99_reliable"] is False and latency["p99"] is None
    assert all(latency[key] is None for key in ("mean", "p50", "p95", "max", "min", "std"))

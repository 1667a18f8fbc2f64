"""The plain-Python parts of the node's /diagnostics: reset counts and latency key-values.

The node tests (test_node_gap_resets_and_percentiles.py) check them over DDS; here the cases a
short node run does not reach: stamp-back resets, a gap run ended by a normal frame, source
changes, an empty window.
"""

from __future__ import annotations

import pytest

from togethernet_ros.pipeline.latency_stats import LatencyWindow
from togethernet_ros.ros.diagnostics_latency import latency_values
from togethernet_ros.tracking.reset_counts import (
    TrackerResetCounts,
    every_frame_reset_warning,
)
from togethernet_ros.tracking.tracker import GAP, STAMP_BACK, TrackerReset


def test_counts_by_reason_and_the_run_of_consecutive_gap_resets():
    counts = TrackerResetCounts()
    gap = TrackerReset(GAP, 1.3, 1.0)
    runs = [
        counts.record(None),
        counts.record(gap),
        counts.record(gap),
        counts.record(None),  # one frame within max_gap_s ends the run
        counts.record(gap),
        counts.record(TrackerReset(STAMP_BACK, -30.0, 1.0)),
        counts.record(None, source_changed=True),
    ]
    assert runs == [0, 1, 2, 0, 1, 0, 0]
    snapshot = counts.snapshot()
    assert (snapshot.gap, snapshot.stamp_back, snapshot.source_changed) == (3, 1, 1)
    assert not snapshot.every_frame and snapshot.status_message() == ""
    assert snapshot.values() == {
        "tracker_resets_gap": "3",
        "tracker_resets_stamp_back": "1",
        "tracker_resets_source_changed": "1",
        "tracker_consecutive_gap_resets": "0",
        "tracker_last_gap_s": "1.300",
    }
    counts.record(gap)
    counts.record(TrackerReset(GAP, 1.25, 1.0))
    snapshot = counts.snapshot()
    assert snapshot.every_frame
    assert snapshot.status_message() == (
        "tracks restart every frame: frames 1.25 s apart > tracking.max_gap_s 1 s"
    )


def test_the_warning_names_the_cause_the_consequence_and_the_remedies():
    reset = TrackerReset(GAP, 1.18, 1.0)
    dropping = every_frame_reset_warning("/front/image_raw", reset, 3, "/front/detections", 42)
    assert "/front/image_raw" in dropping and "1.18 s apart" in dropping
    assert "tracking.min_hits=3" in dropping and "/front/detections" in dropping
    assert "dropped 42 of its frames" in dropping
    assert "raise tracking.max_gap_s above 1.18" in dropping
    one_hit = every_frame_reset_warning("/front/image_raw", reset, 1, "/front/detections", 0)
    assert "new track id" in one_hit and "min_hits" not in one_hit
    assert "publishes that seldom" in one_hit


def test_latency_values_state_the_count_and_flag_the_tail():
    window = LatencyWindow(500)
    assert latency_values("latency", window.summary(), (50, 95, 99)) == {
        "latency_samples": "0",
        "latency_p50_ms": "nan",
        "latency_p95_ms": "nan",
        "latency_p95_reliable": "false",
        "latency_p99_ms": "nan",
        "latency_p99_reliable": "false",
    }
    for value in range(1, 11):
        window.record(float(value))
    young = latency_values("latency", window.summary(), (50, 95, 99))
    assert young["latency_samples"] == "10"
    assert young["latency_p99_ms"] == "9.91"  # 0.91 of the way from the 9th to the max
    assert young["latency_p99_reliable"] == "false"
    for value in range(11, 101):
        window.record(float(value))
    full = latency_values("node_overhead", window.summary(), (50, 95))
    assert full["node_overhead_p95_reliable"] == "true"
    assert "node_overhead_p99_ms" not in full
    assert latency_values("latency", window.summary(), (99,))["latency_p99_reliable"] == "true"
    with pytest.raises(ValueError, match="p90"):
        latency_values("latency", window.summary(), (90,))

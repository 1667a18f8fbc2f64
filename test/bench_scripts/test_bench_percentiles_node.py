"""benchmarks/bench_node.py reports each p95/p99 with its sample count and reliability.

The overhead mode's default is 40 frames (1 Hz for 40 s): its "p99" was printed as a tail
latency while it is an interpolation between the two slowest frames. The receiver's latency,
the soak's first/last-minute p99, the node's own overhead p95 and the node's latency p99 from
/diagnostics now come with ``count``/``*_samples`` and ``*_reliable`` (``*`` in the table).
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from togethernet_ros.pipeline import LatencyWindow
from togethernet_ros.ros.diagnostics_latency import latency_values

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def bench_node(monkeypatch):
    # As `python benchmarks/bench_node.py` does: its helpers are top-level modules there.
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    return importlib.import_module("bench_node")


def window_values(name: str, samples: list[float], percentiles: tuple[int, ...]) -> dict:
    """The /diagnostics key-values the node publishes for one latency window."""
    window = LatencyWindow(500)
    for value in samples:
        window.record(value)
    return latency_values(name, window.summary(), percentiles)


def test_node_overhead_p95_comes_with_the_nodes_sample_count(bench_node):
    few = window_values("node_overhead", [1.0 + 0.1 * i for i in range(12)], (50, 95))
    overhead = bench_node.node_overhead_ms({**few, "percentile_method": "linear"})
    assert overhead["count"] == 12 and overhead["p95_reliable"] is False
    assert overhead["p50"] == pytest.approx(1.55) and overhead["p95"] == pytest.approx(
        2.04
    )  # 2.045, as the node prints it
    assert overhead["percentile_method"] == "linear"
    many = window_values("node_overhead", [1.0] * 20, (50, 95))
    assert bench_node.node_overhead_ms(many)["p95_reliable"] is True
    # No diagnostics received (or a node from before the counts): unknown, not "reliable".
    unknown = bench_node.node_overhead_ms({})
    assert unknown["count"] is None and unknown["p95_reliable"] is None


def test_soak_windows_give_p99_with_counts_in_any_input_order(bench_node):
    times = np.arange(60) * 0.5  # 30 s of frames at 2 Hz: windows of 10 s hold 21 frames
    latencies = np.where(times < 15, 10.0, 20.0) + times / 100
    order = np.random.default_rng(0).permutation(60)
    windows = bench_node.soak_windows_p99(times[order], latencies[order], seconds=30.0)
    first, last = latencies[times <= 10.0], latencies[times >= 19.5]
    assert windows == {
        "latency_first_window_p99_ms": pytest.approx(np.percentile(first, 99)),
        "latency_first_window_samples": 21,
        "latency_first_window_p99_reliable": False,
        "latency_last_window_p99_ms": pytest.approx(np.percentile(last, 99)),
        "latency_last_window_samples": 21,
        "latency_last_window_p99_reliable": False,
    }
    # A real soak (>= 180 s) has minute-long windows; at 4 x 30 Hz they hold thousands.
    times = np.arange(200 * 120) / 120.0
    windows = bench_node.soak_windows_p99(times, np.ones_like(times), seconds=200.0)
    assert windows["latency_first_window_samples"] == 60 * 120 + 1
    assert windows["latency_first_window_p99_reliable"] is True
    assert windows["latency_last_window_p99_reliable"] is True


def test_printed_report_marks_tails_and_shows_the_nodes_sample_count(bench_node):
    latencies = list(np.linspace(30.0, 70.0, 40))
    diagnostics = {
        **window_values("latency", latencies, (50, 95, 99)),
        **window_values("node_overhead", [1.0] * 40, (50, 95)),
        "frames_processed": "40",
        "percentile_method": "linear",
    }
    result = {
        "mode": "soak",
        "latency_ms": bench_node.percentile_stats(np.array(latencies)),
        "in_node_overhead_ms": bench_node.node_overhead_ms(diagnostics),
        "rss_mib": [(0.0, 480.0), (5.0, 481.0)],
        "node_diagnostics": {"detector: /cam0/image_raw": diagnostics},
        **bench_node.soak_windows_p99(np.arange(40.0), np.array(latencies), seconds=40.0),
    }
    json.dumps(result)  # what --out writes
    lines = bench_node.report_lines(result)
    table = dict(line.split(maxsplit=1) for line in lines if not line.startswith(("detector", " ")))
    assert table["latency_ms"] == "p50 50.0  p95 68.0  p99 69.6*  max 70.0 ms (n=40)"
    assert table["in_node_overhead_ms"] == "p50 1.00  p95 1.00 ms (n=40)"
    assert table["latency_first_window_p99_ms"].endswith("* (n=14)")
    assert "latency_first_window_samples" not in table  # shown with the p99
    assert "* from too few samples for a tail (p95 needs 20 samples, p99 100)" in "\n".join(lines)
    node_line = next(line for line in lines if line.startswith("detector: /cam0/image_raw"))
    assert "latency_p99_ms=69.60" in node_line
    assert "latency_samples=40 latency_p99_reliable=false" in node_line


@pytest.mark.ros
def test_a_short_soak_reports_its_p99s_as_unreliable(tmp_path):
    # The real benchmark, briefly: the node (untrained, 128 px) fed by one camera at 10 Hz.
    out = tmp_path / "soak.json"
    completed = subprocess.run(
        [
            sys.executable, str(REPO / "benchmarks" / "bench_node.py"), "soak",
            "--seconds", "6", "--cameras", "1", "--rate-hz", "10", "--weights", "",
            "--input-size", "128", "128", "--out", str(out),
        ],
        cwd=REPO, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    result = json.loads(out.read_text())
    latency = result["latency_ms"]
    assert latency["count"] == result["frames_with_detections"] > 0
    assert latency["p99_reliable"] is False  # ~60 frames
    assert result["latency_first_window_samples"] < 100
    assert result["latency_first_window_p99_reliable"] is False
    assert result["in_node_overhead_ms"]["count"] > 0
    node = result["node_diagnostics"]["detector: /bench_cam0/image_raw"]
    assert node["latency_p99_reliable"] == "false"
    assert f"latency_samples={node['latency_samples']}" in completed.stdout
    assert f"p99 {latency['p99']:.1f}*" in completed.stdout

"""A soak of benchmarks/bench_node.py too short for a memory trend reports what it has.

RSS is sampled every 5 s and the first sample is taken before the node processed a frame; a soak
under ~5 s has that one sample only, and the run ended in ``IndexError`` (``rss[1]``) after all
its measuring, its latencies lost.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def bench_node(monkeypatch):
    # As `python benchmarks/bench_node.py` does: its helpers are top-level modules there.
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    return importlib.import_module("bench_node")


def test_one_sample_is_reported_with_why_there_is_no_trend(bench_node):
    trend = bench_node.rss_trend([(0.0, 480.5)])
    assert trend["rss_first_mib"] is None  # no sample after warm-up
    assert trend["rss_last_mib"] == 480.5
    assert trend["rss_trend_note"] == (
        "1 memory sample(s), taken every 5 s: the memory trend needs a soak longer than 10 s"
    )


def test_no_sample_and_two_samples_have_no_trend_either(bench_node):
    empty = bench_node.rss_trend([])
    assert (empty["rss_first_mib"], empty["rss_last_mib"]) == (None, None)
    assert empty["rss_trend_note"].startswith("0 memory sample(s)")
    # Two samples: the one after warm-up is also the last, a trend of nothing.
    two = bench_node.rss_trend([(0.0, 400.0), (5.0, 480.0)])
    assert (two["rss_first_mib"], two["rss_last_mib"]) == (480.0, 480.0)
    assert two["rss_trend_note"].startswith("2 memory sample(s)")


def test_a_long_enough_soak_reports_after_warm_up_to_the_end(bench_node):
    trend = bench_node.rss_trend([(0.0, 400.0), (5.0, 480.0), (10.0, 482.0), (15.0, 490.0)])
    assert trend == {"rss_first_mib": 480.0, "rss_last_mib": 490.0}


def test_a_short_soaks_report_prints_and_serialises(bench_node):
    result = {"mode": "soak", "rss_mib": [(0.0, 480.5)], **bench_node.rss_trend([(0.0, 480.5)])}
    json.dumps(result)  # what --out writes
    lines = bench_node.report_lines(result)
    table = dict(line.split(maxsplit=1) for line in lines)
    assert table["rss_last_mib"] == "480.5"
    assert table["rss_trend_note"].endswith("needs a soak longer than 10 s")
    assert lines[-1].endswith("[480] ... [480]")


@pytest.mark.ros
@pytest.mark.parametrize("camera_publish", ["serialized", "message"])
def test_a_two_second_soak_writes_its_results(tmp_path, camera_publish):
    # The real benchmark (about 10 s): the node, untrained at 128 px, fed by one camera.
    out = tmp_path / "soak.json"
    completed = subprocess.run(
        [
            sys.executable, str(REPO / "benchmarks" / "bench_node.py"), "soak",
            "--seconds", "2", "--cameras", "1", "--rate-hz", "10", "--weights", "",
            "--input-size", "128", "128", "--camera-publish", camera_publish, "--out", str(out),
        ],
        cwd=REPO, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["frames_with_detections"] > 0
    assert result["camera_publish"] == camera_publish
    # The stamp written into the camera's bytes is the send time: latencies of a CPU node at
    # 128 px are milliseconds to a second, not the decades since a zero stamp.
    assert result["latency_ms"]["count"] == result["frames_with_detections"]
    assert 0 < result["latency_ms"]["p50"] < 5_000
    assert len(result["rss_mib"]) == 1 and result["rss_first_mib"] is None
    assert result["rss_last_mib"] == result["rss_mib"][0][1] > 0
    assert "needs a soak longer than 10 s" in result["rss_trend_note"]
    assert "rss_trend_note" in completed.stdout

"""The transport, pipeline, tracking and GPU-check benchmarks report tails with their counts.

Each p95/p99 in their JSON carries the number of samples it came from and the shared rule's
flag (p95 from 20, p99 from 100); their printed tables mark a flagged value ``*``. The brief
runs use the scripts' cheap settings; the rest feeds their reporting functions small inputs.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from togethernet_ros.tracking import TrackerConfig

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def scripts(monkeypatch):
    # As `python benchmarks/<script>.py` does: its helpers are top-level modules there.
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    return importlib.import_module


def run_script(*arguments: str) -> str:
    completed = subprocess.run(
        [sys.executable, *arguments], cwd=REPO, capture_output=True, text=True, timeout=240
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return completed.stdout


def test_transport_latency_and_publish_times_carry_counts(scripts):
    transport = scripts("bench_transport")
    records = [(index % 2, 2.0 * index) for index in range(50)]
    latency = transport.latency_summary(records)
    assert latency["count"] == 50 and latency["percentile_method"] == "linear"
    assert latency["p95"] == 93.1 and latency["p99"] == 97.02 and latency["max"] == 98.0
    assert latency["p95_reliable"] is True and latency["p99_reliable"] is False
    publish = transport.publish_call_stats([0.5] * 19)
    assert publish["publish_call_samples"] == 19
    assert (
        publish["publish_call_ms_p95"] == 0.5 and publish["publish_call_ms_p95_reliable"] is False
    )
    runs = [
        {
            "qos": "reliable",
            "received": 50,
            "sent": 60,
            "delivery": 50 / 60,
            "latency_ms": latency,
            "subscriber_cpu_s": 1.0,
            "fastdds_stderr": [],
        },
        {
            "qos": "best_effort",
            "received": 0,
            "sent": 60,
            "delivery": 0.0,
            "latency_ms": transport.latency_summary([]),
            "subscriber_cpu_s": 1.0,
            "fastdds_stderr": [],
        },
    ]
    lines = transport.table_lines(runs)
    assert lines[1].split()[-3:] == ["93.1", "97.0*", "1.0"]  # p95, p99 marked, CPU
    assert lines[2].split()[-4:] == ["n/a", "n/a*", "n/a*", "1.0"]  # nothing received
    assert lines[-1].endswith("p95 needs 20 (here from 0), p99 needs 100 (here from 0, 50)")


@pytest.mark.ros
def test_transport_brief_run_flags_its_p99(tmp_path):
    out = tmp_path / "transport.json"
    stdout = run_script(
        "benchmarks/bench_transport.py", "--cameras", "1", "--rate", "10", "--seconds", "2",
        "--qos", "best_effort", "--json", str(out),
    )  # fmt: skip
    run = json.loads(out.read_text())["runs"][0]
    assert run["latency_ms"]["count"] == run["received"] > 0
    assert run["latency_ms"]["p99_reliable"] is False  # ~20 images
    assert run["publisher"]["publish_call_samples"] == sum(run["publisher"]["sent"])
    assert f"{run['latency_ms']['p99']:.1f}*" in stdout and "p99 needs 100" in stdout


def test_pipeline_brief_run_marks_tails_from_few_frames(tmp_path):
    out = tmp_path / "pipeline.json"
    stdout = run_script("benchmarks/bench_pipeline.py", "--seconds", "0.3", "--out", str(out))
    rows = json.loads(out.read_text())["scenarios"]
    for row in rows:
        latency, wait = row["latency_ms"], row["queue_wait_ms"]
        assert latency["count"] == wait["count"] == row["processed"]
        assert latency["count"] < 100 and latency["p99_reliable"] is False
        assert latency["p95_reliable"] is (latency["count"] >= 20)
        assert wait["p99_reliable"] is False and "p95" not in wait
    first = next(
        line for line in stdout.splitlines() if line.startswith(rows[0]["scenario"]["name"])
    )
    assert first.endswith("*") and first.split()[-3].endswith("*")  # p99 and queue p99
    assert "* from too few frames" in stdout and "p99 needs 100" in stdout


def test_gpu_check_timings_carry_the_number_of_timed_calls(scripts):
    gpu_check = scripts("gpu_check")
    ten = gpu_check.timing_entry(np.arange(1.0, 11.0), batch=16, restore=False)
    assert ten["samples"] == 10 and ten["p95_reliable"] is False
    assert ten["p50_ms"] == pytest.approx(5.5) and ten["p95_ms"] == pytest.approx(9.55)
    assert ten["images_per_s"] == pytest.approx(16 / 5.5e-3)
    assert ten["percentile_method"] == "linear"
    line = gpu_check.timing_line("torch fp16", ten)
    assert "p50    5.50 ms  p95    9.55*ms (n= 10)" in line
    thirty = gpu_check.timing_entry(np.ones(30), batch=1, restore=True)
    assert thirty["p95_reliable"] is True
    assert "p95    1.00 ms (n= 30)" in gpu_check.timing_line("torch fp16", thirty)


def test_tracking_timing_rows_carry_counts_and_marks(scripts):
    tracking = scripts("bench_tracking")
    row = tracking.timing_row(np.arange(30.0), np.arange(30.0), repeats=2, boxes=3.0)
    assert row["samples"] == 30 and row["percentile_method"] == "linear"
    assert row["cpu_median_ms"] == 14.5 and row["cpu_p99_ms"] == pytest.approx(28.71)
    assert row["wall_p95_reliable"] is True and row["cpu_p95_reliable"] is True
    assert row["cpu_p99_reliable"] is False
    assert row["cpu_slowest_frame_ms"] == 22.0 - 0.5  # median over the 2 repeats of frame 14
    line = tracking.timing_line("7", row)
    assert "cpu_p99_ms= 28.7100*" in line and "cpu_p95_ms= 27.5500 " in line
    assert "samples=      30" in line and "reliable" not in line
    # The real table: 190 timed updates a repeat (the first 10 frames are skipped).
    table = tracking.timing_table([3], 1, TrackerConfig())
    assert table["3"]["samples"] == 190
    assert table["3"]["cpu_p99_reliable"] is True and table["3"]["cpu_p95_reliable"] is True

"""bench_node.py --emulate-gpu: the real node with a stand-in model timed like a GPU; and a node
that cannot start is reported with its own words at once, not after a 150 s barrier timeout."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def bench_node(*arguments: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_node.py"), *arguments],
        cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def test_the_emulated_detector_sleeps_its_cost_and_returns_ten_moving_boxes(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    from emulated_gpu_node import BOXES_PER_IMAGE, EmulatedGpuDetector

    detector = EmulatedGpuDetector(20.0, 10.0, ("person", "car"), 0.3, 0.45)
    images = [np.zeros((720, 1280, 3), np.uint8)] * 3
    began = time.perf_counter()
    first = detector.detect(images)
    assert time.perf_counter() - began >= 0.050  # 20 + 3 × 10 ms
    second = detector.detect(images[:1])
    assert len(first) == 3 and all(len(r.detections) == BOXES_PER_IMAGE for r in first)
    boxes = first[0].detections.boxes
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 1280).all() and (boxes[:, 3] <= 720).all()
    moved = second[0].detections.boxes[:, 0] - boxes[:, 0]
    assert 0 < np.median(moved) < 10  # drifting objects for the trackers, not a frozen frame
    assert set(first[0].detections.class_ids) == {0, 1}
    assert detector.runs_on_gpu and not detector.supports_restoration


@pytest.mark.ros
@pytest.mark.parametrize(
    ("forecast", "phase", "camera_format"),
    [(True, "synchronized", "raw"), (False, "staggered", "raw"), (True, "synchronized", "jpeg")],
)
def test_a_soak_with_an_emulated_gpu_runs_the_node_and_reports_it(
    tmp_path, forecast, phase, camera_format
):
    out = tmp_path / "soak.json"
    completed = bench_node(
        "soak", "--seconds", "2", "--cameras", "2", "--rate-hz", "15", "--weights", "",
        "--emulate-gpu", "2.2:0.8", *([] if forecast else ["--no-forecast"]),
        "--camera-phase", phase, "--camera-format", camera_format, "--out", str(out),
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["backend"] == "emulated-gpu" and result["emulated_gpu_ms"] == "2.2:0.8"
    assert result["forecast_arrivals"] is forecast and result["camera_phase"] == phase
    # --no-forecast reaches the node as its parameter (test_detector_node checks what it does).
    expected = {} if forecast else {"batch_arrival_forecast": "false"}
    assert result["node_parameters"] == expected
    # Two cameras for 2 s at 15 Hz: 30 frames each, however the machine stalls.
    assert result["frames_sent"] == 2 * 30
    assert result["frames_with_detections"] > 0 and result["exit_code_after_sigint"] == 0
    # The node's own inference time is the emulated one: 2.2 + 0.8 × (1 or 2) ms plus a sleep's
    # overshoot, not a CPU model's hundreds of milliseconds.
    assert 3.0 <= result["detector_p50_ms"] < 30.0
    # JPEG cameras publish on <topic>/compressed; the node decodes them and answers on <ns>.
    assert result["image"].startswith(
        "1280x720 JPEG" if camera_format == "jpeg" else "1280x720 bgr8"
    )
    cameras = result["node_diagnostics"]
    assert len(cameras) == 2
    assert all(name.endswith("/compressed") == (camera_format == "jpeg") for name in cameras)
    # Where the receive delay went: DDS's and the executor's parts, as many as frames taken.
    for values in cameras.values():
        assert int(values["transport_delay_samples"]) == int(values["executor_delay_samples"]) > 0
        assert 0.0 <= float(values["transport_delay_p50_ms"]) < 1000.0


def test_bad_emulate_gpu_values_are_refused_by_name():
    for value in ("2.2", "fast:1", "-1:0.8"):
        completed = bench_node("soak", f"--emulate-gpu={value}", timeout=60)
        assert completed.returncode == 2
        assert f"--emulate-gpu takes BASE:PER_FRAME in ms, got {value!r}" in completed.stderr


@pytest.mark.ros
def test_a_node_that_cannot_start_is_reported_with_its_own_error_at_once():
    began = time.monotonic()
    completed = bench_node(
        "soak", "--seconds", "2", "--cameras", "1", "--weights", "", "--input-size", "64", "64",
        timeout=120,
    )  # fmt: skip
    assert completed.returncode != 0
    assert "did not come up (node exit code 1)" in completed.stderr
    assert "parameter 'input_size' must be >= 128, got 64" in completed.stderr
    assert time.monotonic() - began < 60  # the barrier waits up to 150 s

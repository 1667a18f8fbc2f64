"""The GPU session's scripts run end to end on the CPU (their `--device cpu` dry runs).

GPU time comes in short, rare windows (the device tool), so a script that breaks between
sessions costs a whole session's measurements. These dry runs keep the plumbing honest: the
scripts start, read real weights and frames, run every check and write the JSON that the
session reads back. The numbers themselves only mean something on a GPU.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
WEIGHTS = REPO / "models" / "togethernet_vtest_384.pt"


def run_script(name: str, *arguments: str) -> str:
    """Run ``benchmarks/<name>`` as the GPU session does; its stdout."""
    completed = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / name), *arguments],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return completed.stdout


def test_session_script_parses():
    completed = subprocess.run(
        ["bash", "-n", str(REPO / "benchmarks" / "gpu_session.sh")], capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr


def test_gpu_check_dry_run_passes_its_own_checks(tmp_path):
    out = tmp_path / "check.json"
    stdout = run_script(
        "gpu_check.py", "--device", "cpu", "--size", "128", "--iterations", "1", "--out", str(out)
    )
    report = json.loads(out.read_text())
    assert report["checks"] and all(check["ok"] for check in report["checks"])
    # NMS inside the model's graph is a GPU feature: a CPU run says it did not check it.
    assert "device NMS (torch fp32): off on this device" in report["skipped"]
    assert {entry["batch"] for entry in report["timings"]} >= {1}
    # A CPU dry run times 2 calls: its p95 is reported with that count, flagged and marked.
    for entry in report["timings"]:
        assert entry["samples"] == 2 and entry["p95_reliable"] is False
        assert entry["p95_ms"] >= entry["p50_ms"] > 0
    assert "*ms (n=  2)" in stdout and "p95 needs 20 samples" in stdout


def test_gpu_profile_dry_run_profiles_real_weights_on_a_frame_folder(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for index in range(3):
        frame = np.full((240, 320, 3), 90 + 40 * index, dtype=np.uint8)
        x, y = (int(v) for v in rng.integers(20, 200, 2))
        cv2.rectangle(frame, (x, y), (x + 40, y + 80), (30, 60, 200), cv2.FILLED)
        cv2.imwrite(str(frames / f"frame_{index}.jpg"), frame)
    out = tmp_path / "profile.json"
    run_script(
        "gpu_profile.py",
        "--device", "cpu", "--trained-only", "--weights", str(WEIGHTS), "--source", str(frames),
        "--input-size", "128", "128", "--iterations", "1", "--batches", "1", "4",
        "--frame-size", "640", "360", "--out", str(out),
    )  # fmt: skip
    report = json.loads(out.read_text())
    # Upload timings are CUDA-only: a CPU run records none, per batch size.
    assert report["upload_batch_1"] == report["upload_batch_4"] == {}
    rows = report["rows"]
    # The trained batches without and with restoration, the same without restoration with NMS
    # on the host (the A/B of device_nms, which a CPU leaves off anyway), then batch 1 again in
    # the published module forms and fused without grouped sampling (the A/B of model_fusion; a
    # CPU never groups).
    forms = [
        (row["batch"], row["restore"], row["fuse_modules"], row["grouped_sampling"]) for row in rows
    ]
    assert forms == [
        (1, False, True, False),
        (4, False, True, False),
        (1, True, True, False),
        (4, True, True, False),
        (1, False, True, False),
        (4, False, True, False),
        (1, False, False, None),
        (1, False, True, False),
    ]
    assert [row.get("device_nms") for row in rows[4:6]] == [False, False]
    assert all(row["frame_size"] == [640, 360] for row in rows)
    for row in rows:
        assert row["graphed_stages"] == {"letterbox": False, "model": False}  # no graphs on a CPU
        assert row["total_ms"] >= row["forward_ms"] > 0
    assert out.with_suffix(".ops.txt").read_text().strip()
    assert "conv" in out.with_suffix(".kernels.txt").read_text()  # the forward's operators


def test_gpu_pipeline_check_dry_run_processes_frames(tmp_path):
    out = tmp_path / "pipeline.json"
    stdout = run_script(
        "gpu_pipeline_check.py",
        "--device", "cpu", "--precision", "fp32", "--seconds", "3", "--cameras", "2",
        "--rate-hz", "5", "--input-size", "128", "128", "--out", str(out),
    )  # fmt: skip
    report = json.loads(out.read_text())
    latency = report["latency_ms"]
    assert report["frames_out"] > 0 and latency["p99"] >= latency["p50"] > 0
    # Its p99 comes with the count it was computed from and, from a few dozen frames (fewer
    # than the 100 a p99 needs), flagged in the JSON and marked in the printed summary.
    assert latency["count"] == report["frames_out"] < 100
    assert latency["percentile_method"] == "linear" and latency["p99_reliable"] is False
    assert report["latency_max_ms"] >= latency["p99"]
    assert f"p99 {latency['p99']:.2f}* ms (n={latency['count']})" in stdout
    assert "p99 needs 100 samples" in stdout

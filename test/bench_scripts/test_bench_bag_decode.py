"""bench_bag_decode.py: `bag run` over JPEG cameras with a GPU-fast stand-in model, per
decode-thread count; a short run writes every count's result."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support.sample_video_frames import sample_video

REPO = Path(__file__).resolve().parents[2]


def test_a_short_run_reports_each_thread_count(tmp_path):
    out = tmp_path / "decode.json"
    completed = subprocess.run(
        [
            sys.executable, str(REPO / "benchmarks" / "bench_bag_decode.py"),
            "--video", str(sample_video()), "--cameras", "2", "--frames", "3",
            "--threads", "1", "2", "--repeats", "1", "--out", str(out),
        ],
        cwd=REPO, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    result = json.loads(out.read_text())
    assert (result["cameras"], result["frames"], result["frame_size"]) == (2, 6, [720, 1280])
    assert sorted(result["runs"]) == ["1", "2"]
    for run in result["runs"].values():
        [wall] = run["wall_s"]
        # The model's emulated time ((2.2 + 0.8 × batch) ms per batch) is part of the wall time.
        assert 0.0 < run["median_model_s"] < wall
        assert run["median_frames_per_s"] > 0
    assert 0.1 < result["serial_decode_ms_per_frame"] < 1000.0
    assert "2 decode thread(s)" in completed.stdout

"""`bag replay` through a real detector_node process over real DDS, checked by another subscriber."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy", reason="rclpy not importable: the ROS 2 wheels are not installed")
pytest.importorskip("vision_msgs.msg", reason="vision_msgs not built in this environment")

from togethernet_ros.bag.replay_report import write_replay_report
from togethernet_ros.ros.bag_replay import ReplayOptions, run_replay
from togethernet_ros.ros.local_dds import local_dds_environment

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.ros


def test_replay_report_matches_an_independent_subscriber(camera_bag, tmp_path):
    bag = camera_bag(frames=8)
    domain_id = random.SystemRandom().randint(1, 100)
    env = {**os.environ, **local_dds_environment(domain_id)}
    seen_path = tmp_path / "seen.json"
    topics = ["/cam_front/detections", "/cam_side/detections"]
    observer = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("independent_subscriber.py")),
            str(seen_path),
            *topics,
        ],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert observer.stdout.readline().strip() == "ready"
        options = ReplayOptions(
            rate=1.0,
            params_file=REPO / "config" / "detect.yaml",
            node_parameters={"allow_untrained_weights": True, "device": "cpu", "input_size": [128]},
            record_bag=tmp_path / "recorded",
            domain_id=domain_id,
            min_output_subscribers=2,  # the observer must be matched before the first output
            startup_timeout_s=120,
            # The replay stops counting after the drain timeout while the observer counts on
            # until the node stops: each camera's last output must be in before that, however
            # slow the machine (the wait ends as soon as it is).
            drain_timeout_s=120,
        )
        result = run_replay(bag, options)
    finally:
        observer.send_signal(signal.SIGINT)
        observer.wait(timeout=30)
    seen = json.loads(seen_path.read_text())
    main = result.trials[0]
    metrics = main.metrics
    assert metrics["overall"]["sent"] == 16
    assert result.node_exit_code == 0, result.node_log_tail
    for topic, camera in metrics["cameras"].items():
        output = camera["output_topic"]
        by_observer = {stamp for name, stamp, _ in seen if name == output}
        by_replay = {r.stamp_ns for r in main.received if r.topic == output}
        assert by_replay == by_observer, topic
        assert camera["received"] == len(by_observer)
        assert camera["received"] + camera["dropped"] == camera["sent"] == 8
    # The node drops by design under load (newest frame wins), so only ask for enough outputs to
    # make the comparison above meaningful; the exact count depends on the machine's load.
    assert all(camera["received"] >= 2 for camera in metrics["cameras"].values())
    latency = metrics["overall"]["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert main.resources["rss_mb_max"] > 50  # torch is loaded in the node process
    written = write_replay_report(result, tmp_path / "report", {})
    summary = json.loads(written["json"].read_text())
    assert summary["metrics"]["overall"]["received"] == metrics["overall"]["received"]
    assert written["latency_plot"].stat().st_size > 1000
    assert "| /cam_front/image_raw |" in written["markdown"].read_text()
    from rosbags.rosbag2 import Reader

    with Reader(tmp_path / "recorded") as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
    assert counts["/cam_front/image_raw"] == 8
    assert counts["/cam_front/detections"] == metrics["cameras"]["/cam_front/image_raw"]["received"]

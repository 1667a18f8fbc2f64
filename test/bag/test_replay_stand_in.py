"""`bag replay` against the real node with the blob stand-in detector (blob_node.py): fast."""

from __future__ import annotations

import importlib
import os
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy not importable: the ROS 2 wheels are not installed")
pytest.importorskip("vision_msgs.msg", reason="vision_msgs not built in this environment")

from togethernet_ros.bag.bag_reader import BagReader
from togethernet_ros.bag.bag_writer import BagWriter
from togethernet_ros.bag.image_codec import IMAGE_TYPE, encode_image_message, make_header
from togethernet_ros.bag.replay_report import write_replay_report
from togethernet_ros.ros.bag_replay import ReplayError, ReplayOptions, _recorded_fps, run_replay

from .bag_samples import START_NS, read_messages

pytestmark = pytest.mark.ros
BLOB_NODE = [sys.executable, str(Path(__file__).with_name("blob_node.py"))]
FRONT = (("/cam_front/image_raw", IMAGE_TYPE),)


def _replay(bag: Path, rate: float, *node_args: str):
    options = ReplayOptions(
        rate=rate,
        node_command=BLOB_NODE + list(node_args),
        node_parameters={"max_batch_wait_ms": 0.0},
        startup_timeout_s=60,
        # At rate 0 a frame not back within accept_timeout_s is followed anyway and may be
        # dropped (newest frame wins): wait as long as a loaded machine may need.
        accept_timeout_s=60.0,
        drain_timeout_s=60.0,
    )
    return run_replay(bag, options)


def test_a_looping_bag_counts_and_waits_for_every_frame(camera_bag):
    # Stamps 0..3 twice: the last frame's stamp came back once already in the first loop.
    # As fast as accepted (rate 0): each frame goes out once the previous one is back, so the
    # node never drops one (newest-frame-wins on a loaded machine made this flaky at rate 1),
    # and the end-of-trial wait still has to tell the second loop's last output from the first.
    bag = camera_bag(frames=8, topics=FRONT, stamps=[0, 1, 2, 3, 0, 1, 2, 3])
    result = _replay(bag, 0.0)
    camera = result.trials[0].metrics["cameras"]["/cam_front/image_raw"]
    assert (camera["sent"], camera["received"], camera["dropped"]) == (8, 8, 0)
    # Each output matched to its own loop's frame: frame k went out only once output k - 1 was
    # back, so output k is frame k's. (Not a bound in ms: on a loaded machine a round trip can
    # take longer than any fixed bound; matched to the first loop's frame, output k's latency
    # would also hold the 4 round trips in between.)
    trial = result.trials[0]
    outputs = sorted(
        (r for r in trial.received if r.topic == camera["output_topic"]),
        key=lambda r: r.received_s,
    )
    frames = sorted(trial.sent, key=lambda f: f.sent_s)
    assert [f.stamp_ns for f in frames] == [r.stamp_ns for r in outputs]
    latencies_ms = [(r.received_s - f.sent_s) * 1000 for f, r in zip(frames, outputs, strict=True)]
    assert camera["latency_ms"]["max"] == pytest.approx(max(latencies_ms), abs=0.01)
    assert camera["latency_ms"]["mean"] == pytest.approx(sum(latencies_ms) / 8, abs=0.01)


def test_as_fast_as_accepted_waits_for_frames_without_stamp(camera_bag):
    # Stamp 0 on every frame: each frame must still wait for the previous one to come back.
    bag = camera_bag(frames=6, topics=FRONT, stamps=[-START_NS] * 6)
    result = _replay(bag, 0.0)
    overall = result.trials[0].metrics["overall"]
    assert (overall["sent"], overall["received"], overall["dropped"]) == (6, 6, 0)


def test_a_node_that_dies_mid_replay_ends_the_replay_naming_its_exit(camera_bag):
    # The replay used to play on into the dead node: at rate 0 each frame then waited its
    # 60 s accept timeout, and the command still exited 0.
    bag = camera_bag(frames=20, topics=FRONT)
    started = time.monotonic()
    with pytest.raises(ReplayError, match="detector_node exited with code 3 during the replay"):
        _replay(bag, 0.0, "--die-after-batches", "3")
    assert time.monotonic() - started < 50  # not one 60 s accept timeout


def test_repeated_stamps_drain_every_output_and_the_recording_has_label_info(camera_bag, tmp_path):
    # Stamp 0 on every frame, a node slower than the frame period: the drain took the
    # second-to-last output (same stamp, after the last send) for the last one and cut it.
    # label_info is latched: it arrived before the recording started and was never written.
    bag = camera_bag(frames=12, topics=FRONT, stamps=[-START_NS] * 12, period_ns=30_000_000)
    options = ReplayOptions(
        rate=1.0,
        node_command=[*BLOB_NODE, "--delay-s", "0.5"],
        node_parameters={"max_batch_wait_ms": 0.0},
        startup_timeout_s=60,
        accept_timeout_s=60.0,
        drain_timeout_s=60.0,
        record_bag=tmp_path / "recorded",
    )
    trial = run_replay(bag, options).trials[0]
    # The last frame (the newest, never replaced) is processed after it was sent, in a batch
    # of 0.5 s: its output comes at least that long after the last send, while the earlier
    # frame's output that ended the drain came sooner.
    last_output = max(r.received_s for r in trial.received if r.topic == "/cam_front/detections")
    assert last_output - max(f.sent_s for f in trial.sent) >= 0.5
    recorded = read_messages(tmp_path / "recorded")
    assert len(recorded.get("/cam_front/label_info", [])) == 1


def test_resources_follow_a_launcher_to_the_node(camera_bag, tmp_path):
    # Like `ros2 run`, the started process is a launcher and the node its child.
    result = _replay(camera_bag(frames=10, topics=FRONT), 1.0, "--wrap")
    resources = result.trials[0].resources
    assert resources["processes_max"] == 2
    assert resources["rss_mb_max"] > 60  # the launcher alone has ~12 MiB, the node ~100
    assert resources["threads_max"] > 5
    summary = write_replay_report(result, tmp_path / "report")
    markdown = summary["markdown"].read_text()
    assert "Machine: " in markdown and "max_batch_wait_ms" in markdown


def test_a_replay_reads_the_frames_while_it_sends_them(tmp_path):
    # An hour of camera frames (two 720p cameras at 30 Hz: some 580 GB raw) cannot be loaded
    # before playing: the harness must hold a few frames at a time, not the bag's 79 MiB.
    bag = tmp_path / "bag"
    frame = np.zeros((720, 1280, 3), np.uint8)
    with BagWriter(bag) as writer:
        for index in range(30):
            stamp = START_NS + index * 100_000_000
            header = make_header(writer.typestore, stamp, "cam_front")
            message = encode_image_message(writer.typestore, frame, header, "bgr8")
            writer.write(FRONT[0][0], IMAGE_TYPE, stamp, message)
    # What the replay imports on its first run (torch among them) is not the frames.
    importlib.import_module("togethernet_ros.ros.node_settings")
    tracemalloc.start()
    try:
        result = _replay(bag, 0.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    overall = result.trials[0].metrics["overall"]
    assert (overall["sent"], overall["received"]) == (30, 30), result.node_log_tail
    assert result.settings["frames"] == 30
    # Imports on the way take most of it: about 19 MiB when this test runs alone.
    assert peak < 40 * 2**20, f"replay held {peak / 2**20:.0f} MiB (the bag's frames: 79 MiB)"


def test_recorded_rate_adds_the_cameras(camera_bag):
    # Two cameras × 6 frames at 10 Hz: 20 frames/s, not (12 - 1) / 0.5 s = 22.
    with BagReader(camera_bag(frames=6)) as reader:
        frames = list(reader.records(reader.image_topics))
    assert _recorded_fps(frames) == pytest.approx(20.0)


def test_a_node_publishing_best_effort_is_still_measured(camera_bag):
    # `-p output_reliability:=best_effort` is a valid node setting; a reliable subscription
    # never matches a best-effort publisher, so the replay must subscribe the way it publishes.
    options = ReplayOptions(
        rate=0.0,
        node_command=BLOB_NODE,
        node_parameters={"max_batch_wait_ms": 0.0, "output_reliability": "best_effort"},
        startup_timeout_s=60,
        # Only a failing run waits this long: a frame that never comes back.
        accept_timeout_s=30.0,
        drain_timeout_s=30.0,
    )
    result = run_replay(camera_bag(frames=4, topics=FRONT), options)
    overall = result.trials[0].metrics["overall"]
    assert (overall["sent"], overall["received"]) == (4, 4), result.node_log_tail


def test_the_output_reliability_is_read_from_the_params_file_under_the_overlay(tmp_path):
    from togethernet_ros.ros.bag_replay import _node_parameter

    params = tmp_path / "params.yaml"
    params.write_text("/**:\n  ros__parameters:\n    output_reliability: best_effort\n")
    assert _node_parameter(params, {}, "output_reliability", "reliable") == "best_effort"
    overlay = {"output_reliability": "reliable"}
    assert _node_parameter(params, overlay, "output_reliability", "?") == "reliable"
    # No params file: the node's own config/detect.yaml.
    assert _node_parameter(None, {}, "output_reliability", "?") == "reliable"


def test_another_nodes_section_of_a_shared_params_file_is_not_the_replayed_nodes(tmp_path):
    # A robot's params file holds other nodes' sections too: the replay took the last section
    # naming the key, subscribing best effort to a node publishing reliable (or the reverse).
    from togethernet_ros.ros.bag_replay import _node_parameter

    params = tmp_path / "params.yaml"
    params.write_text(
        "detector:\n  ros__parameters:\n    output_reliability: reliable\n"
        "lidar_driver:\n  ros__parameters:\n    output_reliability: best_effort\n"
    )
    assert _node_parameter(params, {}, "output_reliability", "?") == "reliable"


def test_a_replay_gives_the_callers_environment_back(camera_bag, monkeypatch):
    # It set ROS_DOMAIN_ID and the DDS profile for its own node and kept them set after.
    monkeypatch.setenv("ROS_DOMAIN_ID", "7")
    monkeypatch.delenv("FASTRTPS_DEFAULT_PROFILES_FILE", raising=False)
    _replay(camera_bag(frames=2, topics=FRONT), 0.0)
    assert os.environ["ROS_DOMAIN_ID"] == "7"
    assert "FASTRTPS_DEFAULT_PROFILES_FILE" not in os.environ

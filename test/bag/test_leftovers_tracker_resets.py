"""`bag run` counts each camera's tracker restarts and warns when they hit every frame.

The node counts them for /diagnostics and warns when gap resets hit consecutive frames
(tracking/reset_counts.py). Offline the tracker is timed by the bag's stamps, so a
camera recorded further apart than ``tracking.max_gap_s`` (a 0.5 Hz camera against the default
1 s) restarts its tracks on every frame and, with ``min_hits`` >= 2, ``<ns>/detections`` stays
empty: `bag run` said nothing about it.
"""

from __future__ import annotations

import json

import pytest
from rosbags.rosbag2 import Reader

from togethernet_ros.bag.bag_run import BagRunOptions, run_bag
from togethernet_ros.bag.bag_writer import BagWriter
from togethernet_ros.bag.image_codec import IMAGE_TYPE, encode_image_message, make_header
from togethernet_ros.bag.vision_msgs_definitions import create_typestore
from togethernet_ros.cli import main
from togethernet_ros.tracking.config import TrackerConfig

from .bag_samples import START_NS, scene
from .blob_detector import BlobDetector

SLOW, FAST = "/slow/image_raw", "/fast/image_raw"
SECOND = 1_000_000_000


def _two_rate_bag(path, slow_frames: int = 4, fast_frames: int = 6):
    """A 0.5 Hz camera (2 s apart) and a 10 Hz one (0.1 s apart), stamped as logged."""
    typestore = create_typestore()
    frames = [(SLOW, i, i * 2 * SECOND) for i in range(slow_frames)]
    frames += [(FAST, i, i * SECOND // 10) for i in range(fast_frames)]
    with BagWriter(path, typestore=typestore) as writer:
        for topic, index, offset in sorted(frames, key=lambda frame: frame[2]):
            header = make_header(typestore, START_NS + offset, topic.split("/")[1])
            message = encode_image_message(typestore, scene(index), header, "bgr8")
            writer.write(topic, IMAGE_TYPE, START_NS + offset, message)
    return path


def _boxes_per_message(path, topic):
    typestore = create_typestore()
    with Reader(path) as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        return [
            len(typestore.deserialize_cdr(raw, c.msgtype).detections)
            for c, _, raw in reader.messages(connections=connections)
        ]


def test_gap_resets_are_counted_per_camera_and_warned_about(tmp_path):
    source = _two_rate_bag(tmp_path / "in")
    output = tmp_path / "out"
    config = TrackerConfig(max_gap_s=1.0, min_hits=3)
    report = run_bag(source, output, BlobDetector(), BagRunOptions(tracker_config=config))
    slow, fast = report.tracker_resets[SLOW], report.tracker_resets[FAST]
    # Every slow frame after the first came 2 s after the last one.
    assert slow["gap"] == 3 and slow["longest_consecutive_gap_resets"] == 3
    assert slow["every_frame_gap_s"] == pytest.approx(2.0)
    assert slow["stamp_back"] == 0 and slow["source_changed"] == 0
    assert fast["gap"] == 0 and fast["longest_consecutive_gap_resets"] == 0
    # What the warning is about: the blob is found on every frame, never published smoothed.
    assert _boxes_per_message(output, "/slow/detections_raw") == [1] * 4
    assert _boxes_per_message(output, "/slow/detections") == [0] * 4
    assert _boxes_per_message(output, "/fast/detections") == [0, 0, 1, 1, 1, 1]
    (warning,) = report.tracker_warnings()
    assert warning.startswith(f"tracks on {SLOW} restarted on every frame (3 frames in a row)")
    assert "2.00 s apart" in warning and "tracking.max_gap_s=1 s" in warning
    assert "/slow/detections holds no box" in warning
    assert "raise tracking.max_gap_s above 2.00" in warning
    summary = report.to_dict()
    assert summary["tracker_warnings"] == [warning]
    assert summary["pipeline"]["tracker_resets"][SLOW]["gap"] == 3


def test_one_pause_and_a_looping_bag_are_counted_without_the_warning(camera_bag, tmp_path):
    # 0, 0.1, 0.2 s, then a 5 s pause, then the recording plays again from its start.
    stamps = [0, SECOND // 10, SECOND // 5, 5 * SECOND + SECOND // 5, 0, SECOND // 10]
    source = camera_bag(frames=6, topics=(("/cam/image_raw", IMAGE_TYPE),), stamps=stamps)
    report = run_bag(source, tmp_path / "out", BlobDetector(), BagRunOptions())
    resets = report.tracker_resets["/cam/image_raw"]
    assert (resets["gap"], resets["stamp_back"]) == (1, 1)
    assert resets["longest_consecutive_gap_resets"] == 1
    assert resets["every_frame_gap_s"] is None
    assert report.tracker_warnings() == []


def test_no_resets_are_reported_with_tracking_off(tmp_path):
    source = _two_rate_bag(tmp_path / "in")
    report = run_bag(source, tmp_path / "out", BlobDetector(), BagRunOptions(tracking=False))
    assert report.tracker_resets == {} and report.tracker_warnings() == []


def test_bag_run_with_the_default_tracker_warns_for_a_half_hertz_camera_only(tmp_path, capsys):
    """No params file: the node's config/detect.yaml tracker (max_gap_s 1 s, min_hits 3)."""
    source = _two_rate_bag(tmp_path / "in")
    report_file = tmp_path / "report.json"
    command = [
        "bag", "run", str(source), "--output", str(tmp_path / "out"), "--allow-untrained-weights",
        "--weights", "", "--input-size", "128", "--device", "cpu", "--report", str(report_file),
    ]  # fmt: skip
    assert main(command) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if "restarted on every frame" in line]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"bag run: warning: tracks on {SLOW} restarted on every frame")
    assert "raise tracking.max_gap_s above 2.00" in warnings[0]
    assert FAST not in captured.err
    out = captured.out
    assert f"tracks restarted on {SLOW}: 3 time(s) (gap > tracking.max_gap_s 1 s: 3," in out
    assert f"tracks restarted on {FAST}" not in out  # only cameras whose tracks restarted
    summary = json.loads(report_file.read_text())
    assert summary["pipeline"]["tracker_resets"][SLOW]["min_hits"] == 3
    assert len(summary["tracker_warnings"]) == 1


def test_the_advice_follows_the_cameras_cadence_not_one_hole_in_the_recording():
    # A 0.5 Hz camera with one 120 s hole (split files): "raise max_gap_s above 120 s" would let
    # stale tracks survive two-minute blackouts; the camera's cadence is 2 s.
    from togethernet_ros.bag.bag_run import every_frame_reset_advice
    from togethernet_ros.bag.offline_pipeline import CameraResets
    from togethernet_ros.tracking.tracker import Tracker
    from togethernet_ros.vision.detections import Detections

    config = TrackerConfig(max_gap_s=1.0, min_hits=3)
    tracker, resets = Tracker(config), CameraResets(config)
    for stamp_s in (0, 2, 4, 6, 126, 128, 130):
        tracker.update(Detections.empty(), float(stamp_s))
        resets.record(tracker.last_reset, source_changed=False)
    counts = resets.to_dict()
    assert counts["every_frame_gap_s"] == 2.0 and counts["every_frame_gap_max_s"] == 120.0
    advice = every_frame_reset_advice(SLOW, counts)
    assert "raise tracking.max_gap_s above 2.00" in advice and "up to 120.00 s" in advice

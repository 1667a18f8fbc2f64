"""The node over real DDS: tracker resets and young latency windows are visible, not silent.

A camera whose processed frames lie more than tracking.max_gap_s apart (a CPU running several
cameras) restarted its tracks on every frame: with tracking.min_hits >= 2 its detections stayed
empty while detections_raw had boxes, and nothing said why. And in a camera's first seconds
/diagnostics reported a p99 of a handful of samples as if it were a tail.

A stand-in detector (one person in every frame) keeps the frames fast and the boxes certain.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from support.detector_nodes import active_detector_node
from support.ros_messages import MessageRecorder, bgr8_image
from support.wait import wait_for

pytestmark = pytest.mark.ros

CAM = "/cam_a/image_raw"
EVERY_FRAME_WARNING = "restart on every frame"


def _image(stamp_ns: int, index: int):
    return bgr8_image(np.full((96, 128, 3), 40 + index, dtype=np.uint8), stamp_ns, "cam_a")


class _Recorder(MessageRecorder):
    def status(self):
        """The latest /diagnostics status of CAM (None before the first)."""
        for array in reversed(self.get("/diagnostics")):
            for status in array.status:
                if status.name.endswith(CAM):
                    return status
        return None

    def value(self, key: str) -> str | None:
        status = self.status()
        if status is None:
            return None
        return {pair.key: pair.value for pair in status.values}.get(key)

    def warnings(self, text: str) -> list[str]:
        """The node's WARN lines on /rosout containing ``text``."""
        return [
            log.msg
            for log in self.get("/rosout")
            if log.name == "detector" and log.level == 30 and text in log.msg
        ]


@pytest.fixture
def one_camera(ros, monkeypatch):
    """Start an active DetectorNode on CAM with the stand-in; return (publish, recorder)."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rcl_interfaces.msg import Log
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from support.stand_in_detectors import FadingObjectDetector
    from vision_msgs.msg import Detection2DArray

    from togethernet_ros.ros.detector_node import DetectorNode

    stand_in = FadingObjectDetector([0.9])

    def create(node, settings):
        stand_in.conf_threshold = settings.detector_threshold()
        return stand_in

    monkeypatch.setattr(DetectorNode, "_create_detector", create)
    reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)

    def start(**overrides):
        values = {
            "image_topics": [CAM],
            "conf_threshold": 0.3,
            "max_batch_wait_ms": 0.0,
            "diagnostics_period_s": 0.1,
            **overrides,
        }
        tester = ros.add_node(rclpy.create_node("gap_test_harness", context=ros.context))
        recorder = _Recorder()
        # Before the detector exists: its warnings go out on /rosout from configure on.
        tester.create_subscription(
            Log,
            "/rosout",
            recorder.callback("/rosout"),
            QoSProfile(
                depth=200,
                reliability=ReliabilityPolicy.RELIABLE,
                durability=DurabilityPolicy.TRANSIENT_LOCAL,
            ),
        )
        detector = active_detector_node(ros, values)
        for topic in ("/cam_a/detections", "/cam_a/detections_raw"):
            tester.create_subscription(Detection2DArray, topic, recorder.callback(topic), reliable)
        tester.create_subscription(
            DiagnosticArray, "/diagnostics", recorder.callback("/diagnostics"), 10
        )
        camera = tester.create_publisher(Image, CAM, reliable)
        wait_for(lambda: camera.get_subscription_count() >= 1, 60.0, "the node's subscription")
        wait_for(
            lambda: detector._cameras[CAM].detections_raw.get_subscription_count() >= 1,
            60.0,
            "the test's subscriptions",
        )

        def publish(index: int, stamp_ns: int) -> None:
            camera.publish(_image(stamp_ns, index))
            wait_for(
                lambda: len(recorder.get("/cam_a/detections")) >= index + 1,
                60.0,
                f"the smoothed detections of frame {index}",
            )

        return publish, recorder

    return start


def _boxes(recorder: _Recorder, topic: str) -> list[int]:
    return [len(array.detections) for array in recorder.get(topic)]


def test_frames_further_apart_than_max_gap_s_are_counted_and_warned_about(one_camera):
    # A camera whose frames the node gets 0.4 s apart, as 4 cameras on a 2-core CPU; max_gap_s
    # scaled down with it to keep the test short. The stamps are the wall clock at publishing.
    publish, recorder = one_camera(**{"tracking.max_gap_s": 0.25, "tracking.min_hits": 2})
    frames = 4
    for index in range(frames):
        if index:
            time.sleep(0.4)
        publish(index, time.time_ns())
    wait_for(lambda: len(recorder.get("/cam_a/detections_raw")) >= frames, 60.0, "raw")
    # The symptom: every frame has its box in detections_raw, none in detections.
    assert _boxes(recorder, "/cam_a/detections_raw") == [1] * frames
    assert _boxes(recorder, "/cam_a/detections") == [0] * frames
    # The first frame has no previous one; each later one resets by gap.
    wait_for(
        lambda: recorder.value("tracker_resets_gap") == str(frames - 1),
        30.0,
        "the gap resets in /diagnostics",
    )
    assert recorder.value("tracker_consecutive_gap_resets") == str(frames - 1)
    assert recorder.value("tracker_resets_stamp_back") == "0"
    assert float(recorder.value("tracker_last_gap_s")) >= 0.4
    from diagnostic_msgs.msg import DiagnosticStatus

    status = recorder.status()
    assert status.level == DiagnosticStatus.WARN  # though frames flow
    assert "tracking.max_gap_s" in status.message
    wait_for(lambda: recorder.warnings(EVERY_FRAME_WARNING), 30.0, "the warning on /rosout")
    time.sleep(0.3)
    warnings = recorder.warnings(EVERY_FRAME_WARNING)
    assert len(warnings) == 1, warnings  # throttled (5 s a camera), not one per frame
    text = warnings[0]
    assert CAM in text
    assert "raise tracking.max_gap_s" in text
    assert "tracking.min_hits=2" in text and "/cam_a/detections" in text
    assert "fewer cameras" in text and "input_size" in text and "GPU" in text
    interval = float(text.split(" s apart")[0].rsplit(" ", 1)[1])
    assert interval >= 0.4
    # The warning quotes the gap of the frame that raised it (the second), the diagnostics the
    # latest frame's: both are the 0.4 s sleep plus the wait for the previous frame's output
    # (polled every 20 ms) and the sleep's overshoot, which vary under load.
    assert interval == pytest.approx(float(recorder.value("tracker_last_gap_s")), abs=0.2)


def test_a_camera_at_a_normal_rate_gets_no_warning_and_no_resets(one_camera):
    publish, recorder = one_camera(**{"tracking.min_hits": 2})  # max_gap_s: the default 1 s
    start_ns = time.time_ns()
    frames = 6
    for index in range(frames):
        publish(index, start_ns + index * 100_000_000)  # a 10 Hz camera
    assert _boxes(recorder, "/cam_a/detections") == [0] + [1] * (frames - 1)
    wait_for(
        lambda: recorder.value("frames_processed") == str(frames), 30.0, "the processed frames"
    )
    assert recorder.value("tracker_resets_gap") == "0"
    assert recorder.value("tracker_consecutive_gap_resets") == "0"
    assert recorder.value("tracker_last_gap_s") == "nan"
    from diagnostic_msgs.msg import DiagnosticStatus

    assert recorder.status().level == DiagnosticStatus.OK
    time.sleep(0.3)
    assert recorder.warnings(EVERY_FRAME_WARNING) == []


def test_a_young_latency_window_states_its_count_and_flags_its_tail(one_camera):
    publish, recorder = one_camera()
    for index in range(3):
        publish(index, time.time_ns())
    # The windows fill one after another on the inference thread: a diagnostics message can
    # fall between them, so wait until every one has all three.
    windows = ("latency_samples", "node_overhead_samples", "receive_delay_samples")
    wait_for(
        lambda: all(recorder.value(key) == "3" for key in windows), 30.0, "3 samples in each window"
    )
    assert recorder.value("percentile_method") == "linear"
    # The old keys stay numbers (benchmarks/bench_node.py and tools parse them), flagged.
    for key in ("latency_p95_ms", "latency_p99_ms", "node_overhead_p95_ms"):
        assert math.isfinite(float(recorder.value(key))), key
    assert recorder.value("latency_p95_reliable") == "false"
    assert recorder.value("latency_p99_reliable") == "false"
    assert recorder.value("node_overhead_samples") == "3"
    assert recorder.value("node_overhead_p95_reliable") == "false"
    assert recorder.value("receive_delay_samples") == "3"
    assert recorder.value("receive_delay_p99_reliable") == "false"
    assert recorder.value("batch_wait_p99_reliable") == "false"
    for index in range(3, 20):
        publish(index, time.time_ns())
    wait_for(
        lambda: all(recorder.value(key) == "20" for key in windows),
        30.0,
        "20 samples in each window",
    )
    assert recorder.value("latency_p95_reliable") == "true"  # p95 from 20 samples on
    assert recorder.value("latency_p99_reliable") == "false"  # p99 from 100
    assert recorder.value("node_overhead_p95_reliable") == "true"
    assert recorder.value("batch_wait_p99_reliable") == "false"

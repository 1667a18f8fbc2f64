"""The detector node over weeks: lifecycle cycles, run-time changes and pauses, over real DDS.

Robot stacks deactivate and reactivate the node whenever a mission pauses, clean it up and
configure it again, and change its parameters while frames flow. These tests repeat that and
measure what must not grow or drift: threads, file descriptors, publishers and subscriptions, and
the frame counts the diagnostics report. All run an UNTRAINED model at a small input size.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from support.ros_messages import noise_frame
from support.wait import wait_for

pytestmark = pytest.mark.ros

CAMERA = "/cam_a/image_raw"
DETECTIONS = "/cam_a/detections"


def _parameters(**overrides):
    from rclpy.parameter import Parameter

    values = {
        "image_topics": [CAMERA],
        "weights": "",
        "allow_untrained_weights": True,
        "input_size": [128, 128],
        "conf_threshold": 0.05,
        "max_batch_size": 1,
        "max_batch_wait_ms": 5.0,
        "diagnostics_period_s": 0.1,
        # Reliable input: what the node counts is then what the test sent, bar overwrites.
        "input_reliability": "reliable",
        "input_depth": 5,
        **overrides,
    }
    return [Parameter(name, value=value) for name, value in values.items()]


def _reliable(depth: int = 10):
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)


def _frame(stamp_ns: int):
    return noise_frame(stamp_ns, "cam_a_optical")


def _stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


class Counts:
    """Stamps of the detections received, and the newest diagnostics values of the camera."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.stamps: list[int] = []
        self.diagnostics: dict[str, str] = {}

    def on_detections(self, message) -> None:
        with self._lock:
            self.stamps.append(_stamp_ns(message.header))

    def on_diagnostics(self, message) -> None:
        for status in message.status:
            if status.name.endswith(CAMERA):
                with self._lock:
                    self.diagnostics = {pair.key: pair.value for pair in status.values}

    def seen(self, stamp_ns: int) -> bool:
        with self._lock:
            return stamp_ns in self.stamps

    def value(self, key: str) -> int:
        with self._lock:
            return int(self.diagnostics.get(key, "-1"))


@pytest.fixture
def node_and_tester(ros):
    """An unconfigured DetectorNode and a test node with the camera publisher and recorders."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    from togethernet_ros.ros.detector_node import DetectorNode

    def start(**overrides):
        detector = DetectorNode(parameter_overrides=_parameters(**overrides), context=ros.context)
        ros.add_node(detector)
        tester = ros.add_node(rclpy.create_node("long_running_tester", context=ros.context))
        counts = Counts()
        tester.create_subscription(Detection2DArray, DETECTIONS, counts.on_detections, _reliable())
        tester.create_subscription(DiagnosticArray, "/diagnostics", counts.on_diagnostics, 10)
        camera = tester.create_publisher(Image, CAMERA, _reliable(5))
        return detector, tester, camera, counts

    return start


def _activate(detector) -> None:
    from rclpy.lifecycle import TransitionCallbackReturn

    assert detector.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert detector.trigger_activate() == TransitionCallbackReturn.SUCCESS


def _process_resources() -> dict[str, int]:
    """Threads (Python and native, DDS included) and open file descriptors of this process."""
    return {
        "python_threads": threading.active_count(),
        "native_threads": len(os.listdir("/proc/self/task")),
        "file_descriptors": len(os.listdir("/proc/self/fd")),
    }


def test_twenty_lifecycle_cycles_leave_no_threads_descriptors_or_entities_behind(
    node_and_tester, ros
):
    from rclpy.lifecycle import TransitionCallbackReturn

    detector, tester, camera, counts = node_and_tester()

    def one_cycle(index: int) -> None:
        _activate(detector)
        assert detector.count_publishers(DETECTIONS) == 1
        wait_for(lambda: camera.get_subscription_count() == 1, 60.0, "the node's subscription")
        stamp = 1_000_000_000 * (index + 1)
        camera.publish(_frame(stamp))
        wait_for(lambda: counts.seen(stamp), 60.0, f"detections of cycle {index}")
        with ros.paused():  # a transition from this thread destroys the camera subscription
            assert detector.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        # rclpy destroys an entity once the executor's wait set lets go of it: moments later.
        wait_for(lambda: detector.count_subscribers(CAMERA) == 0, 30.0, "unsubscribing")
        assert not any(t.name == "togethernet-inference" for t in threading.enumerate())
        with ros.paused():
            assert detector.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        wait_for(
            lambda: (
                detector.count_publishers(DETECTIONS) == 0
                and detector.count_publishers("/diagnostics") == 0
            ),
            30.0,
            "the publishers to go",
        )

    # The first cycles create what lives as long as the process (torch's and DDS' pools).
    for index in range(3):
        one_cycle(index)
    before = _process_resources()
    for index in range(3, 23):
        one_cycle(index)
    after = _process_resources()
    # At most as many: a leak adds one a cycle, while a thread an earlier test of the session
    # left winding down may end meanwhile.
    assert after["python_threads"] <= before["python_threads"], (before, after)
    # Native threads come and go with DDS discovery and the executor; a leak adds one a cycle.
    assert after["native_threads"] <= before["native_threads"] + 3, (before, after)
    assert after["file_descriptors"] <= before["file_descriptors"] + 3, (before, after)
    # A cycle's entities are gone for the other participants too, not only locally.
    wait_for(
        lambda: tester.count_subscribers(CAMERA) == 0 and tester.count_publishers(DETECTIONS) == 0,
        60.0,
        "the cleaned-up node's entities to leave the graph",
    )


def test_frame_counts_add_up_across_deactivate_and_activate_while_frames_flow(
    node_and_tester, monkeypatch, ros
):
    """frames_received = frames_processed + dropped_frames + bad_frames, however often paused.

    Dropped frames used to be counted by each activation's batcher, so every reactivation reset
    them to 0 while the other counts went on; and the frame waiting at deactivate was lost
    without being counted at all.
    """
    from rclpy.lifecycle import TransitionCallbackReturn

    detector, _tester, camera, counts = node_and_tester()
    _activate(detector)
    real_detect = detector._detector.detect

    def slow_detect(images, restore=False):
        time.sleep(0.05)  # fault injection: a model slower than the camera, so frames queue up
        return real_detect(images, restore=restore)

    monkeypatch.setattr(detector._detector, "detect", slow_detect)
    wait_for(lambda: camera.get_subscription_count() == 1, 60.0, "the node's subscription")
    stop = threading.Event()
    sent = []

    def stream() -> None:
        stamp = 1_000_000_000
        while not stop.is_set():
            stamp += 10_000_000
            camera.publish(_frame(stamp))
            sent.append(stamp)
            time.sleep(0.01)

    streamer = threading.Thread(target=stream, name="long-running-camera")
    streamer.start()
    try:
        for cycle in range(4):
            wait_for(
                lambda done=2 * cycle: detector._cameras[CAMERA].stats.processed > done,
                60.0,
                f"output before pause {cycle}",
            )
            with ros.paused():  # a transition from this thread destroys the subscription
                assert detector.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
                assert detector.trigger_activate() == TransitionCallbackReturn.SUCCESS
    finally:
        stop.set()
        streamer.join(10.0)
    # A last frame after the stream: once it is out, nothing else waits or runs.
    marker = sent[-1] + 1_000_000_000
    camera.publish(_frame(marker))
    wait_for(lambda: counts.seen(marker), 60.0, "the marker frame's detections")
    stats = detector._cameras[CAMERA].stats
    assert stats.received > stats.processed, "the slow model must have dropped frames"

    def balanced() -> bool:
        received = counts.value("frames_received")
        accounted = (
            counts.value("frames_processed")
            + counts.value("dropped_frames")
            + counts.value("bad_frames")
        )
        return received == stats.received and received == accounted

    try:
        wait_for(balanced, 30.0, "diagnostics whose frame counts add up")
    except AssertionError as error:
        keys = ("frames_received", "frames_processed", "dropped_frames", "bad_frames")
        reported = {key: counts.value(key) for key in keys}
        raise AssertionError(f"{error}; last reported {reported}") from None

"""The detector node over real DDS, in-process and as a separate process.

All tests run an UNTRAINED model (allow_untrained_weights): they check plumbing — topics,
headers, sizes, counts, batching, bad input, parameters, shutdown — not detection quality.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.oversized_jpeg import jpeg_claiming_size
from support.ros_messages import MessageRecorder, jpeg_image
from support.sample_video_frames import sample_video, video_frame
from support.wait import wait_for

pytestmark = pytest.mark.ros

REPO = Path(__file__).resolve().parents[2]
PARAMS_FILE = REPO / "config" / "detect.yaml"
CAM_A = "/cam_a/image_raw"
CAM_B = "/cam_b/image_raw/compressed"


def _qos_reliable(depth: int = 50):
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)


def _latched_qos(depth: int = 1):
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )


def _scene(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.integers(60, 200, (height, width, 3), dtype=np.uint8)
    cv2.rectangle(image, (width // 4, height // 4), (width // 2, height - 10), (20, 30, 220), -1)
    return image


def _image_message(pixels: np.ndarray, frame_id: str, stamp_ns: int, encoding: str = "bgr8"):
    from sensor_msgs.msg import Image

    message = Image()
    message.header.frame_id = frame_id
    message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    message.height, message.width = pixels.shape[:2]
    message.encoding = encoding
    message.step = pixels.shape[1] * (pixels.shape[2] if pixels.ndim == 3 else 1)
    message.data = pixels.tobytes()
    return message


def _stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def _node_parameters(**overrides):
    from rclpy.parameter import Parameter

    values = {
        "image_topics": [CAM_A, CAM_B],
        "weights": "",
        "allow_untrained_weights": True,
        "input_size": [128, 256],
        "conf_threshold": 0.05,
        "max_batch_wait_ms": 30.0,
        "diagnostics_period_s": 0.2,
        "tracking.min_hits": 1,
        # Untrained scores lie around 0.2-0.4: let them start tracks.
        "tracking.high_score_threshold": 0.1,
        "tracking.low_score_threshold": 0.05,
        **overrides,
    }
    return [Parameter(name, value=value) for name, value in values.items()]


@pytest.fixture
def harness(ros):
    """A configured and active DetectorNode plus a test node with publishers and recorders."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.lifecycle import TransitionCallbackReturn
    from sensor_msgs.msg import CompressedImage, Image
    from vision_msgs.msg import Detection2DArray

    from togethernet_ros.ros.detector_node import DetectorNode

    def start(**overrides):
        detector = DetectorNode(
            parameter_overrides=_node_parameters(**overrides), context=ros.context
        )
        assert detector.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert detector.trigger_activate() == TransitionCallbackReturn.SUCCESS
        ros.add_node(detector)
        tester = ros.add_node(rclpy.create_node("detector_test_harness", context=ros.context))
        recorder = MessageRecorder()
        for topic, message_type in [
            ("/cam_a/detections", Detection2DArray),
            ("/cam_a/detections_raw", Detection2DArray),
            ("/cam_b/detections", Detection2DArray),
            ("/cam_a/dehazed/image_raw", Image),
            ("/cam_b/dehazed/image_raw", Image),
            ("/cam_a/debug_image", Image),
        ]:
            tester.create_subscription(
                message_type, topic, recorder.callback(topic), _qos_reliable()
            )
        tester.create_subscription(
            DiagnosticArray, "/diagnostics", recorder.callback("/diagnostics"), 10
        )
        publishers = {
            CAM_A: tester.create_publisher(Image, CAM_A, _qos_reliable(5)),
            CAM_B: tester.create_publisher(CompressedImage, CAM_B, _qos_reliable(5)),
        }
        wait_for(
            lambda: all(p.get_subscription_count() >= 1 for p in publishers.values()),
            60.0,
            "the node's camera subscriptions",
        )
        wait_for(
            lambda: detector._cameras[CAM_A].dehazed.get_subscription_count() >= 1,
            60.0,
            "the test's dehazed subscription",
        )
        return detector, tester, publishers, recorder

    yield start


def _diagnostic_value(recorder: MessageRecorder, camera_topic: str, key: str) -> str | None:
    for array in reversed(recorder.get("/diagnostics")):
        for status in array.status:
            if status.name.endswith(camera_topic):
                for pair in status.values:
                    if pair.key == key:
                        return pair.value
    return None


def _publish_in_lock_step(publisher, make_message, recorder, output_topic: str, frames: int):
    """Publish ``frames`` messages, each after the previous one's output on ``output_topic``
    (newest-frame-wins batching rightly drops frames sent faster than the model runs)."""
    for index in range(frames):
        publisher.publish(make_message())
        wait_for(
            lambda n=index + 1: len(recorder.get(output_topic)) >= n,
            60.0,
            f"{output_topic} for frame {index}",
        )


def test_untrained_two_cameras_headers_sizes_and_dehazed_images(harness):
    detector, _tester, publishers, recorder = harness()
    frame_a = _scene(480, 640, seed=1)
    frame_b = _scene(240, 320, seed=2)
    stamps = [1_700_000_000_000_000_000 + i * 100_000_000 for i in range(4)]
    for index, stamp in enumerate(stamps):
        # Lock-step: newest-frame-wins batching rightly drops frames sent faster than the model
        # runs; this test wants every frame's outputs.
        publishers[CAM_A].publish(_image_message(frame_a, "cam_a_optical", stamp))
        publishers[CAM_B].publish(jpeg_image(frame_b, stamp, "cam_b_optical"))
        wait_for(
            lambda n=index + 1: (
                len(recorder.get("/cam_a/detections")) >= n
                and len(recorder.get("/cam_b/detections")) >= n
                and len(recorder.get("/cam_a/dehazed/image_raw")) >= n
                and len(recorder.get("/cam_b/dehazed/image_raw")) >= n
            ),
            60.0,
            f"detections and dehazed images for frame {index}",
        )
    for array in recorder.get("/cam_a/detections") + recorder.get("/cam_a/detections_raw"):
        assert array.header.frame_id == "cam_a_optical"
        assert _stamp_ns(array.header) in stamps
        for detection in array.detections:
            assert detection.header.frame_id == "cam_a_optical"
            assert 0.0 <= detection.bbox.center.position.x <= 640.0
            assert 0.0 <= detection.bbox.center.position.y <= 480.0
            assert detection.results[0].hypothesis.class_id in detector._class_names
    assert [_stamp_ns(a.header) for a in recorder.get("/cam_b/detections")] == stamps
    dehazed = recorder.get("/cam_a/dehazed/image_raw")[0]
    assert (dehazed.height, dehazed.width, dehazed.encoding) == (480, 640, "bgr8")
    assert dehazed.header.frame_id == "cam_a_optical"
    dehazed_b = recorder.get("/cam_b/dehazed/image_raw")[0]
    assert (dehazed_b.height, dehazed_b.width) == (240, 320)
    debug = recorder.get("/cam_a/debug_image")[0]
    assert (debug.height, debug.width, debug.encoding) == (480, 640, "bgr8")
    # Same frame, deterministic model: once confirmed, every track keeps its id.
    smoothed = recorder.get("/cam_a/detections")
    assert len(smoothed[-1].detections) > 0, "conf 0.05 should let untrained boxes through"
    ids_last = sorted(d.id for d in smoothed[-1].detections)
    ids_before = sorted(d.id for d in smoothed[-2].detections)
    assert ids_last == ids_before and all(i.isdigit() for i in ids_last)
    # Raw detections carry no track id.
    assert all(d.id == "" for d in recorder.get("/cam_a/detections_raw")[-1].detections)
    wait_for(
        lambda: _diagnostic_value(recorder, CAM_A, "frames_processed") not in (None, "0"),
        60.0,
        "diagnostics with published frames",
    )
    assert "torch" in _diagnostic_value(recorder, CAM_A, "backend")
    latency_p50 = float(_diagnostic_value(recorder, CAM_A, "latency_p50_ms"))
    inference_p50 = float(_diagnostic_value(recorder, CAM_A, "inference_p50_ms"))
    assert 0.0 < inference_p50 < latency_p50
    # What the node adds excludes the model's own time, so it is below the latency.
    overhead_p50 = float(_diagnostic_value(recorder, CAM_A, "node_overhead_p50_ms"))
    assert 0.0 < overhead_p50 < latency_p50 - inference_p50 + 1.0
    # The latency split: stamp -> callback, then callback -> start of the batch's inference;
    # both are parts of the whole latency.
    receive_delay = float(_diagnostic_value(recorder, CAM_A, "receive_delay_p50_ms"))
    assert 0.0 < receive_delay <= latency_p50
    batch_wait_p99 = float(_diagnostic_value(recorder, CAM_A, "batch_wait_p99_ms"))
    assert 0.0 <= batch_wait_p99 <= float(_diagnostic_value(recorder, CAM_A, "latency_p99_ms"))


def test_untrained_receive_delay_splits_into_driver_dds_and_executor_parts(harness):
    """A driver that stamps its frames 40 ms before publishing them shows as the driver part,
    not as DDS or the node: the parts come from the DDS write and reception times."""
    _detector, _tester, publishers, recorder = harness()
    frame = _scene(480, 640, seed=3)
    late_by_ns = 40_000_000
    _publish_in_lock_step(
        publishers[CAM_A],
        lambda: _image_message(frame, "cam_a_optical", time.time_ns() - late_by_ns),
        recorder,
        "/cam_a/detections",
        6,
    )
    wait_for(
        lambda: _diagnostic_value(recorder, CAM_A, "driver_delay_samples") == "6",
        60.0,
        "diagnostics counting the 6 frames' receive parts",
    )

    def value(key: str) -> float:
        return float(_diagnostic_value(recorder, CAM_A, key))

    assert value("transport_delay_samples") == value("executor_delay_samples") == 6
    driver, transport = value("driver_delay_p50_ms"), value("transport_delay_p50_ms")
    executor, receive = value("executor_delay_p50_ms"), value("receive_delay_p50_ms")
    assert 40.0 <= driver < 40.0 + 500.0
    # Loose upper bounds (a loaded 2-core machine): the split itself is the behaviour.
    assert 0.0 <= transport < 250.0 and 0.0 <= executor < 250.0
    # Per frame the parts add up to the receive delay, so its median is at least the driver's.
    assert driver <= receive <= driver + transport + executor + 40.0


@pytest.mark.parametrize(
    ("decode_threads", "decoded_on"), [(-1, "togethernet-decode_0"), (0, "test-executor")]
)
def test_untrained_compressed_frames_are_decoded_off_the_executor_thread(
    harness, monkeypatch, decode_threads, decoded_on
):
    """A 720p JPEG takes ~5 ms to decode: by default a decode thread does it, not the callback."""
    from togethernet_ros.ros import detector_node

    threads_seen = []

    def recording_decode(message, *args, **kwargs):
        threads_seen.append(threading.current_thread().name)
        return decode(message, *args, **kwargs)

    decode = detector_node.decode_compressed_message
    monkeypatch.setattr(detector_node, "decode_compressed_message", recording_decode)
    _detector, _tester, publishers, recorder = harness(decode_threads=decode_threads)
    frame = _scene(240, 320, seed=5)
    _publish_in_lock_step(
        publishers[CAM_B],
        lambda: jpeg_image(frame, time.time_ns(), "cam_b"),
        recorder,
        "/cam_b/detections",
        3,
    )
    assert threads_seen == [decoded_on] * 3


def test_untrained_compressed_frames_replaced_while_decoding_are_counted_and_none_lost(
    harness, monkeypatch
):
    """A decode slower than the camera: the newest waiting frame wins, the others count as
    dropped, and every received frame is processed, dropped or bad (and each unstamped one
    counted as such, whichever thread decodes it)."""
    from togethernet_ros.ros import detector_node

    decode = detector_node.decode_compressed_message

    def slow_decode(message, *args, **kwargs):
        time.sleep(0.15)
        return decode(message, *args, **kwargs)

    monkeypatch.setattr(detector_node, "decode_compressed_message", slow_decode)
    detector, _tester, publishers, recorder = harness(input_reliability="reliable", input_depth=10)
    for _ in range(6):
        publishers[CAM_B].publish(jpeg_image(_scene(120, 160, seed=9), 0, "cam_b"))
        time.sleep(0.01)
    stats = detector._cameras[CAM_B].stats
    wait_for(
        lambda: stats.received == 6 and stats.processed + stats.dropped + stats.bad_frames == 6,
        60.0,
        "every received compressed frame accounted for",
    )
    assert stats.dropped >= 3, "5 frames behind a 150 ms decode: all but the newest replaced"
    assert stats.processed >= 2 and stats.bad_frames == 0
    assert stats.unstamped == 6
    # Counted when published; recorded when the test's executor gets to it.
    wait_for(
        lambda: len(recorder.get("/cam_b/detections")) == stats.processed,
        60.0,
        "every processed frame's detections",
    )


def test_only_the_camera_subscriptions_carry_qos_event_handlers(harness):
    """rclpy's executor walks every event handler on each wake-up: the output publishers have
    none (their subscribers warn on their side), the camera subscriptions keep rclpy's two."""
    from rclpy.event_handler import EventHandler

    detector, _tester, _publishers, _recorder = harness()
    handlers = [w for w in detector.waitables if isinstance(w, EventHandler)]
    # Per camera subscription rclpy's two warners and the matched event (restarting the
    # frames-lost count); two for rclpy's own /parameter_events publisher; 22 more with the
    # default handlers on the 11 output publishers.
    assert len(detector._camera_subscriptions) == 2
    assert len(handlers) == 8


def test_untrained_frames_replaced_in_the_subscription_queue_count_as_lost_before_the_node(
    harness,
):
    """The executor thread busy while the camera sends 5 frames: the depth-1 subscription keeps
    the newest, and the 4 it replaced show in the publisher's sequence numbers."""
    detector, tester, publishers, recorder = harness()
    frame = _scene(120, 160, seed=8)
    _publish_in_lock_step(
        publishers[CAM_A],
        lambda: _image_message(frame, "cam_a_optical", time.time_ns()),
        recorder,
        "/cam_a/detections",
        1,
    )
    busy, release = threading.Event(), threading.Event()

    def hold_the_executor() -> None:  # the node and this tester share one executor thread
        if busy.is_set():  # once: the timer may fire again before the test cancels it
            return
        busy.set()
        release.wait(30.0)

    timer = tester.create_timer(0.01, hold_the_executor)
    assert busy.wait(30.0), "the executor never ran the blocking timer"
    for _ in range(5):
        publishers[CAM_A].publish(_image_message(frame, "cam_a_optical", time.time_ns()))
    time.sleep(0.3)  # let DDS deliver all five into the subscription's queue
    timer.cancel()
    release.set()
    stats = detector._cameras[CAM_A].stats
    # Each of the 6 frames was either taken or counted lost (on a loaded machine DDS may not
    # have delivered all five before the release, and the node then takes two of them).
    wait_for(
        lambda: stats.received + (stats.lost_before_node or 0) == 6,
        60.0,
        "every frame taken or counted lost",
    )
    assert stats.lost_before_node >= 3, (stats.received, stats.lost_before_node)
    wait_for(
        lambda: (
            _diagnostic_value(recorder, CAM_A, "frames_lost_before_node")
            == str(stats.lost_before_node)
        ),
        60.0,
        "diagnostics with the frames lost before the node",
    )


def test_untrained_frames_sent_while_inactive_or_by_a_new_publisher_are_not_counted_lost(
    harness, ros
):
    """Frames nobody subscribed to were never the node's to lose; a camera publisher that
    (re)connects starts the count afresh (its numbers are a new writer's)."""
    import rclpy
    from rclpy.lifecycle import TransitionCallbackReturn
    from sensor_msgs.msg import Image

    detector, _tester, publishers, recorder = harness()
    frame = _scene(120, 160, seed=10)

    def send(count: int) -> None:
        for _ in range(count):
            before = len(recorder.get("/cam_a/detections"))
            publishers[CAM_A].publish(_image_message(frame, "cam_a_optical", time.time_ns()))
            wait_for(
                lambda before=before: len(recorder.get("/cam_a/detections")) > before,
                60.0,
                "the frame's detections",
            )

    send(2)
    with ros.paused():  # a transition from this thread destroys the camera subscriptions
        assert detector.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    for _ in range(7):
        publishers[CAM_A].publish(_image_message(frame, "cam_a_optical", time.time_ns()))
    with ros.paused():
        assert detector.trigger_activate() == TransitionCallbackReturn.SUCCESS
    wait_for(lambda: publishers[CAM_A].get_subscription_count() >= 1, 60.0, "the resubscription")
    send(1)
    stats = detector._cameras[CAM_A].stats
    assert stats.lost_before_node == 0
    # A second driver process on the topic: its match restarts the count.
    # The number goes in first: in one process the match (and its event on the executor
    # thread) can come before create_publisher returns, and would then be undone by it.
    stats.record_input(sequence_number=1000)  # as if the old driver's frames had gone on
    camera = ros.add_node(rclpy.create_node("restarted_camera", context=ros.context))
    camera.create_publisher(Image, CAM_A, _qos_reliable(5))
    wait_for(
        lambda: stats._sequence_gaps._last is None,
        60.0,
        "the matched event restarting the count",
    )


def test_untrained_an_rclpy_without_message_info_still_runs_without_the_split(harness, monkeypatch):
    """Humble's rclpy calls subscription callbacks with the message alone."""
    from togethernet_ros.ros import detector_node

    monkeypatch.setattr(detector_node, "_rclpy_passes_message_info", lambda: False)
    _detector, _tester, publishers, recorder = harness()
    frame = _scene(120, 160, seed=4)
    _publish_in_lock_step(
        publishers[CAM_A],
        lambda: _image_message(frame, "cam_a_optical", time.time_ns()),
        recorder,
        "/cam_a/detections",
        3,
    )
    wait_for(
        lambda: _diagnostic_value(recorder, CAM_A, "receive_delay_samples") == "3",
        60.0,
        "diagnostics counting the 3 frames",
    )
    for part in ("driver", "transport", "executor"):
        assert _diagnostic_value(recorder, CAM_A, f"{part}_delay_samples") == "0"
    assert _diagnostic_value(recorder, CAM_A, "frames_lost_before_node") == "unknown"


def test_a_lone_frame_is_prepared_while_it_waits_for_the_other_camera(harness):
    detector, _tester, publishers, recorder = harness(max_batch_wait_ms=200.0)
    # Camera B counts as active for 1 s after its frame; on a loaded machine the round trip
    # below may take longer, and camera A's next frame would then not wait for it.
    detector._batcher._camera_timeout_s = 60.0
    frame_a = _scene(480, 640, seed=1)
    first = 1_700_000_000_000_000_000
    publishers[CAM_A].publish(_image_message(frame_a, "cam_a_optical", first))
    publishers[CAM_B].publish(jpeg_image(_scene(240, 320, seed=2), first, "cam_b"))
    wait_for(
        lambda: recorder.get("/cam_a/detections") and recorder.get("/cam_b/detections"),
        60.0,
        "detections of both cameras",
    )
    # Camera B is active now (it sent a frame within the timeout), so camera A's next
    # frame waits up to max_batch_wait_ms for it; the inference thread letterboxes it
    # meanwhile (prepare_frames_ahead), then detects it once the wait runs out.
    publishers[CAM_A].publish(_image_message(frame_a, "cam_a_optical", first + 10**8))
    wait_for(
        lambda: len(recorder.get("/cam_a/detections")) >= 2,
        60.0,
        "detections of camera A's lone frame",
    )
    wait_for(
        lambda: int(_diagnostic_value(recorder, CAM_A, "frames_prepared_ahead") or 0) >= 1,
        60.0,
        "frames_prepared_ahead >= 1 for camera A in /diagnostics",
    )


def test_diagnostics_report_the_camera_rhythm_the_batcher_learned(harness):
    _detector, _tester, publishers, recorder = harness()
    frame = _scene(120, 160, seed=3)
    # 5 Hz: a rhythm needs its arrival jitter (3 × MAD) under half the period, 100 ms here, so
    # a loaded machine's stalls of tens of milliseconds do not leave it unknown.
    period_s = 0.2
    start_ns, start = time.time_ns(), time.monotonic()
    for k in range(8):  # on a schedule that does not drift
        time.sleep(max(0.0, start + k * period_s - time.monotonic()))
        stamp_ns = start_ns + int(k * period_s * 1e9)
        publishers[CAM_A].publish(_image_message(frame, "cam_a_optical", stamp_ns))
    wait_for(
        lambda: _diagnostic_value(recorder, CAM_A, "arrival_period_ms") not in (None, "unknown"),
        30.0,
        "camera A's arrival period in /diagnostics",
    )
    period_ms = float(_diagnostic_value(recorder, CAM_A, "arrival_period_ms"))
    jitter_ms = float(_diagnostic_value(recorder, CAM_A, "arrival_jitter_ms"))
    assert 170.0 < period_ms < 240.0
    assert 1.0 <= jitter_ms < period_ms / 2  # at least the 1 ms floor
    # Camera B sent nothing: no rhythm, said so rather than a made-up number.
    assert _diagnostic_value(recorder, CAM_B, "arrival_period_ms") == "unknown"
    assert _diagnostic_value(recorder, CAM_B, "arrival_jitter_ms") == "unknown"


def test_batch_arrival_forecast_false_batches_by_the_old_rule(harness):
    detector, _tester, publishers, recorder = harness(batch_arrival_forecast=False)
    assert detector._batcher.arrival_rhythm(CAM_A) is None
    frame = _scene(120, 160, seed=4)
    start_ns, start = time.time_ns(), time.monotonic()
    for k in range(6):
        time.sleep(max(0.0, start + k * 0.2 - time.monotonic()))
        publishers[CAM_A].publish(
            _image_message(frame, "cam_a_optical", start_ns + k * 200_000_000)
        )
    wait_for(
        lambda: int(_diagnostic_value(recorder, CAM_A, "frames_processed") or 0) >= 6,
        60.0,
        "camera A's six frames processed",
    )
    assert _diagnostic_value(recorder, CAM_A, "arrival_period_ms") == "unknown"


def test_label_info_is_latched_and_empty_arrays_are_published(ros, harness):
    import rclpy
    from rclpy.parameter import Parameter
    from vision_msgs.msg import LabelInfo

    detector, _tester, publishers, recorder = harness(conf_threshold=1.0)
    late = ros.add_node(rclpy.create_node("late_joiner", context=ros.context))
    labels = []
    # Depth 10: messages republished in quick succession below must not replace each other
    # in the subscription's queue before the callback sees them.
    late.create_subscription(LabelInfo, "/cam_a/label_info", labels.append, _latched_qos(10))
    wait_for(lambda: len(labels) == 1, 60.0, "latched label_info for a late subscriber")
    assert [c.class_name for c in labels[0].class_map] == [
        "person",
        "bicycle",
        "car",
        "motorbike",
        "bus",
    ]
    publishers[CAM_A].publish(_image_message(_scene(120, 160, 3), "cam_a_optical", 42))
    wait_for(lambda: recorder.get("/cam_a/detections"), 30.0, "an (empty) detection array")
    empty = recorder.get("/cam_a/detections")[0]
    assert len(empty.detections) == 0 and _stamp_ns(empty.header) == 42
    # The latched message carries the score threshold: a run-time change republishes it.
    assert labels[0].threshold == pytest.approx(1.0)
    assert detector.set_parameters([Parameter("conf_threshold", value=0.4)])[0].successful
    wait_for(lambda: len(labels) == 2, 60.0, "label_info republished with the new threshold")
    assert labels[1].threshold == pytest.approx(0.4)
    assert detector.set_parameters([Parameter("nms_threshold", value=0.5)])[0].successful
    # Only a score-threshold change republishes it: the next message must be the 0.3 one below
    # (one publisher, reliable and in order), not a copy sent for the NMS change.
    assert detector.set_parameters([Parameter("conf_threshold", value=0.3)])[0].successful
    wait_for(lambda: len(labels) >= 3, 60.0, "label_info republished with threshold 0.3")
    assert [label.threshold for label in labels[1:]] == pytest.approx([0.4, 0.3])


def test_bad_frames_are_counted_and_the_node_keeps_running(harness):
    detector, _tester, publishers, recorder = harness(max_image_pixels=1_000_000)
    good = _scene(120, 160, 4)
    bad_messages = []
    wrong_step = _image_message(good, "cam_a_optical", 1)
    wrong_step.step = 10
    bad_messages.append(wrong_step)
    short_data = _image_message(good, "cam_a_optical", 2)
    short_data.data = good.tobytes()[:1000]
    bad_messages.append(short_data)
    bad_messages.append(
        _image_message(good[:, :, 0].astype(np.float32), "cam_a_optical", 3, "32FC1")
    )
    zero = _image_message(good, "cam_a_optical", 4)
    zero.height = zero.width = zero.step = 0
    zero.data = b""
    bad_messages.append(zero)
    bad_messages.append(_image_message(_scene(1200, 1000, 5), "cam_a_optical", 5))  # too large
    stats_a = detector._cameras[CAM_A].stats
    for count, message in enumerate(bad_messages, start=1):
        # One at a time: the subscription keeps one frame, and a stalled executor would let a
        # second replace the first before it was looked at.
        publishers[CAM_A].publish(message)
        wait_for(lambda count=count: stats_a.bad_frames == count, 60.0, f"bad frame {count}")
    corrupt = jpeg_image(good, 6, "cam_b_optical")
    corrupt.data = bytes(corrupt.data[:40]) + b"\x00" * 30
    publishers[CAM_B].publish(corrupt)
    wait_for(
        lambda: (
            detector._cameras[CAM_A].stats.bad_frames == 5
            and detector._cameras[CAM_B].stats.bad_frames == 1
        ),
        60.0,
        "5 bad frames on cam_a and 1 on cam_b",
    )
    # A JPEG whose header claims 60000x60000: refused from its header by max_image_pixels,
    # before any decoding (the decoder itself would only say it could not decode it).
    huge = jpeg_image(good, 8, "cam_b_optical")
    huge.data = jpeg_claiming_size(60000, 60000)
    publishers[CAM_B].publish(huge)
    wait_for(
        lambda: detector._cameras[CAM_B].stats.bad_frames == 2,
        60.0,
        "the oversized JPEG counted as bad on cam_b",
    )
    assert "60000x60000" in detector._cameras[CAM_B].stats.last_problem
    assert "max_image_pixels=1000000" in detector._cameras[CAM_B].stats.last_problem
    publishers[CAM_A].publish(_image_message(good, "cam_a_optical", 7))
    wait_for(
        lambda: any(_stamp_ns(a.header) == 7 for a in recorder.get("/cam_a/detections")),
        30.0,
        "detections for the good frame after the bad ones",
    )
    wait_for(
        lambda: _diagnostic_value(recorder, CAM_A, "bad_frames") == "5",
        60.0,
        "bad_frames=5 in /diagnostics",
    )


def test_malformed_serialized_frames_are_bad_frames_and_the_node_keeps_running(harness):
    # The node reads camera messages from their CDR bytes (ros/serialized_images.py): bytes no
    # middleware type check stands behind, so a cut or garbled message must drop one frame.
    from rclpy.serialization import serialize_message

    detector, _tester, publishers, recorder = harness()
    frame = _scene(120, 160, 11)
    serialized = serialize_message(_image_message(frame, "cam_a_optical", 1))
    stats = detector._cameras[CAM_A].stats
    malformed = {
        "Invalid sequence length": serialized[:60],  # cut after the pixel count
        "Invalid string length": b"\x00\x01\x00\x00" + b"\xff" * 40,  # frame_id of 4 GB
    }
    for problem, payload in malformed.items():
        # Sent until it arrives: the node's input is best effort (sensor-data QoS), and a
        # first sample can go out before its reader has matched the publisher.
        bad_before = stats.bad_frames
        deadline = time.monotonic() + 60.0
        while stats.bad_frames == bad_before and time.monotonic() < deadline:
            publishers[CAM_A].publish(payload)
            time.sleep(0.5)
        assert stats.bad_frames > bad_before, f"no bad frame counted for {problem}"
        assert "malformed serialized sensor_msgs/msg/Image" in stats.last_problem
        assert problem in stats.last_problem
    assert stats.received == stats.bad_frames  # counted as received, then dropped
    publishers[CAM_A].publish(serialized)
    wait_for(
        lambda: any(_stamp_ns(a.header) == 1 for a in recorder.get("/cam_a/detections")),
        30.0,
        "detections for the well-formed frame",
    )


def test_run_time_parameter_changes_are_validated(harness):
    from rclpy.parameter import Parameter

    detector, *_ = harness()
    rejected = detector.set_parameters([Parameter("conf_threshold", value=1.5)])[0]
    assert not rejected.successful and "conf_threshold" in rejected.reason
    rejected = detector.set_parameters([Parameter("tracking.low_score_threshold", value=0.9)])[0]
    assert not rejected.successful and "must not exceed" in rejected.reason
    accepted = detector.set_parameters(
        [Parameter("conf_threshold", value=0.7), Parameter("classes", value=["car"])]
    )
    assert all(result.successful for result in accepted)
    # The detector keeps down to the tracker's low stage (0.05 here); without tracking, conf.
    assert detector._detector.conf_threshold == pytest.approx(0.05)
    assert detector.set_parameters([Parameter("tracking.enabled", value=False)])[0].successful
    assert detector._detector.conf_threshold == pytest.approx(0.7)
    assert detector._settings.class_filter == frozenset({"car"})
    # A class the model does not have would silently publish nothing: refused, naming it.
    typo = detector.set_parameters([Parameter("classes", value=["car", "pedestrian"])])[0]
    assert not typo.successful and "['pedestrian'], which the model does not have" in typo.reason
    assert detector._settings.class_filter == frozenset({"car"})
    read_only = detector.set_parameters([Parameter("backend", value="onnxruntime")])[0]
    assert not read_only.successful
    # rclpy's own parameters are rclpy's business: switching to /clock at run time works.
    assert detector.set_parameters([Parameter("use_sim_time", value=True)])[0].successful
    assert detector.get_clock().ros_time_is_active


def test_overload_drops_newest_wins_and_deactivate_stops_the_worker(harness, ros):
    detector, _tester, publishers, recorder = harness(input_size=[384, 640], max_batch_size=1)
    frame = _scene(480, 640, 6)
    for index in range(30):
        publishers[CAM_A].publish(_image_message(frame, "cam_a_optical", 1000 + index))
        time.sleep(0.005)
    wait_for(
        lambda: any(_stamp_ns(a.header) == 1029 for a in recorder.get("/cam_a/detections")),
        60.0,
        "the newest frame's detections",
    )
    counters = detector._batcher.counters()[CAM_A]
    published = len(recorder.get("/cam_a/detections"))
    assert counters.dropped > 0, "30 frames at ~200 Hz into a ~5 Hz model must drop some"
    # Best-effort depth-1 input may also lose frames inside DDS; every frame the node did
    # receive was either published or counted as dropped.
    assert counters.dropped + published == counters.received <= 30
    with ros.paused():  # a transition from this thread destroys the camera subscriptions
        detector.trigger_deactivate()
    assert not any(t.name == "togethernet-inference" for t in threading.enumerate())


def _start_node_process(*extra_arguments: str) -> subprocess.Popen:
    node = Path(sys.executable).parent / "detector_node"
    return subprocess.Popen(
        [str(node), "--ros-args", "--params-file", str(PARAMS_FILE), *extra_arguments],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_node_process_with_params_file_publishes_and_exits_cleanly_on_sigint(ros):
    import rclpy
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    # An integer input_size (a square) and an integer for a double parameter are what users
    # type on a command line; rclpy alone would refuse both types with a traceback.
    process = _start_node_process(
        "-p", "weights:=''", "-p", "allow_untrained_weights:=true", "-p", "input_size:=128",
        "-p", "max_batch_wait_ms:=5", "-p", "image_topics:=['/proc_cam/image_raw']",
        "-r", "__node:=proc_detector",
    )  # fmt: skip
    try:
        tester = ros.add_node(rclpy.create_node("process_tester", context=ros.context))
        received = []
        tester.create_subscription(
            Detection2DArray, "/proc_cam/detections", received.append, _qos_reliable()
        )
        publisher = tester.create_publisher(Image, "/proc_cam/image_raw", _qos_reliable(5))
        wait_for(lambda: publisher.get_subscription_count() >= 1, 60.0, "the node process")
        for index in range(3):
            publisher.publish(_image_message(_scene(240, 320, 7), "proc", 5000 + index))
            time.sleep(0.3)
        wait_for(lambda: len(received) >= 1, 30.0, "detections from the node process")
        assert received[0].header.frame_id == "proc"
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
        assert process.returncode == 0, output[-2000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


# Runs the node's console entry point with a model call that never returns and a short stop
# timeout (fault injection): what SIGINT does when the inference thread hangs.
HUNG_NODE_SCRIPT = """
import os, pathlib, sys, time
from togethernet_ros.pipeline.inference_worker import InferenceWorker
from togethernet_ros.ros import detector_node
real_stop = InferenceWorker.stop
InferenceWorker.stop = lambda self, timeout_s=None: real_stop(self, 0.5)
def hung_infer(self, frames):
    pathlib.Path(os.environ["HUNG_MODEL_ENTERED"]).touch()
    time.sleep(3600)
detector_node.DetectorNode._infer = hung_infer
sys.exit(detector_node.main(sys.argv[1:]))
"""


def test_sigint_with_a_hung_inference_thread_still_ends_the_process(ros, tmp_path):
    import rclpy
    from sensor_msgs.msg import Image

    entered = tmp_path / "model_entered"
    process = subprocess.Popen(
        [sys.executable, "-c", HUNG_NODE_SCRIPT, "--ros-args", "-p", "weights:=''",
         "-p", "allow_untrained_weights:=true", "-p", "input_size:=128",
         "-p", "image_topics:=['/hung_cam/image_raw']", "-r", "__node:=hung_detector"],
        env={**os.environ, "HUNG_MODEL_ENTERED": str(entered)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        tester = ros.add_node(rclpy.create_node("hung_tester", context=ros.context))
        publisher = tester.create_publisher(Image, "/hung_cam/image_raw", _qos_reliable(5))
        wait_for(lambda: publisher.get_subscription_count() >= 1, 60.0, "the node process")
        publisher.publish(_image_message(_scene(120, 160, 13), "hung", 1))
        # The batch must be in the model when SIGINT comes (a fixed sleep could be too short on
        # a loaded machine: the worker would then stop normally and exit 0).
        wait_for(entered.exists, 30.0, "the batch to reach the hung model")
        process.send_signal(signal.SIGINT)
        # It used to raise TimeoutError out of main() and then wait forever for the thread.
        output, _ = process.communicate(timeout=30)
        assert process.returncode == 1, output[-2000:]
        assert "did not stop within 0.5 s" in output and "exiting without waiting" in output
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


# The executor's spin meets a context that SIGINT's handler has just shut down, between its
# check of the context and its next wait set: rclpy then raises RCLError, not
# ExternalShutdownException (seen once in a clean-clone run: exit 1 with a traceback).
SHUTDOWN_RACE_SCRIPT = """
import sys
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation
from togethernet_ros.ros import detector_node
def spin_into_a_shut_down_context(self):
    rclpy.shutdown()
    raise rclpy_implementation.RCLError("failed to initialize wait set: the given context is not valid")
SingleThreadedExecutor.spin = spin_into_a_shut_down_context
sys.exit(detector_node.main(sys.argv[1:]))
"""


def test_a_sigint_shutdown_racing_the_executor_still_exits_cleanly():
    completed = subprocess.run(
        [sys.executable, "-c", SHUTDOWN_RACE_SCRIPT, "--ros-args", "-p", "autostart:=false",
         "-r", "__node:=race_detector"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    assert "Traceback" not in completed.stderr


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["-p", "weights:=''"], "parameter 'weights' is empty"),
        (["-p", "weights:=/nonexistent/togethernet.pt"], "/nonexistent/togethernet.pt"),
        (["-p", "input_size:=[300]"], "not a multiple"),
        # rclpy.init used to end in a traceback on it.
        (["--params-file", "/nonexistent/detect.yaml"], "params file not found: /nonexistent"),
    ],
)
def test_node_process_refuses_bad_configuration_with_a_clear_message(arguments, expected):
    process = _start_node_process(*arguments)
    output, _ = process.communicate(timeout=60)
    assert process.returncode != 0
    assert expected in output and "Traceback" not in output, output[-2000:]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("classes:=['person', 'pedestrian']", "'classes' names ['pedestrian'], which the model"),
        ("publish_dehazed:=maybe", "'publish_dehazed' must be true or false, got 'maybe'"),
        # Topic names ROS refuses used to fail activation with no reason given.
        (
            "image_topics:=['/front cam/image_raw']",
            "'image_topics': '/front cam/image_raw' is not a valid ROS topic name: topic name "
            "must not contain characters other than",
        ),
        ("image_topics:=['/cam/image_raw/']", "must not end with a forward slash"),
        # rclpy checks a declared range before the node could: it used to end in a traceback.
        ("conf_threshold:=1.5", "parameter 'conf_threshold' must be from 0.0 to 1.0"),
        ("autostart:=0", "parameter 'autostart' must be true or false, got 0"),  # sat idle
        ("classes:=['all', 'bogus']", "'classes' names ['bogus'], which the model"),
        ("image_topics:=['/cam/debug_image']", "'/cam/debug_image' is an output of the node"),
        ("tracking.match_iou:=0.0", "parameter 'tracking.match_iou' must be in (0, 1]"),
    ],
)
def test_node_process_refuses_bad_values_with_a_message_naming_them(override, message):
    # No params file: rcl keeps a file's type over a -p of another type, and this is about
    # the value reaching the node.
    node = Path(sys.executable).parent / "detector_node"
    process = subprocess.Popen(
        [str(node), "--ros-args", "-p", "weights:=''", "-p", "allow_untrained_weights:=true",
         "-p", "input_size:=[128]", "-p", override, "-r", "__node:=bad_value_detector"],
        env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output, _ = process.communicate(timeout=60)
    assert process.returncode != 0
    assert message in output and "Traceback" not in output, output[-2000:]


def test_node_process_refuses_a_corrupt_checkpoint(tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"this is not a checkpoint" * 10)
    process = _start_node_process("-p", f"weights:={corrupt}")
    output, _ = process.communicate(timeout=60)
    assert process.returncode != 0
    assert "corrupt.pt" in output, output[-2000:]


@pytest.fixture(scope="module")
def vtest_frame():
    """A real frame of OpenCV's vtest.avi (people on a campus path), or skip with the reason."""
    return video_frame(sample_video(), 700)


def test_demo_weights_keep_track_ids_on_people_moving_across_the_image(harness, vtest_frame):
    """Real weights, real footage: the scene slides 6 px per frame; confirmed ids stay put."""
    _detector, _tester, publishers, recorder = harness(
        weights="models/togethernet_vtest_384.pt",
        allow_untrained_weights=False,
        input_size=[384, 512],
        conf_threshold=0.3,
        **{
            "tracking.min_hits": 2,
            "tracking.high_score_threshold": 0.5,
            "tracking.low_score_threshold": 0.1,
        },
    )
    height, width = vtest_frame.shape[:2]
    frames = 8
    for index in range(frames):
        shift = np.float32([[1, 0, 6 * index], [0, 1, 0]])
        moved = cv2.warpAffine(vtest_frame, shift, (width, height), borderValue=(128, 128, 128))
        publishers[CAM_A].publish(
            _image_message(moved, "cam_a_optical", 1_000_000_000 + index * 100_000_000)
        )
        wait_for(
            lambda n=index + 1: len(recorder.get("/cam_a/detections")) >= n,
            60.0,
            f"smoothed detections for frame {index}",
        )
    arrays = recorder.get("/cam_a/detections")
    people = [
        {d.id: d for d in array.detections if d.results[0].hypothesis.class_id == "person"}
        for array in arrays
    ]
    assert len(people[-1]) >= 4, "the demo weights find several people on this frame"
    # Most people confirmed at frame 2 (min_hits 2) are still there, with the same id, at the
    # last frame...
    assert len(people[2]) >= 4, "tracks are confirmed by the second frame"
    stable = set(people[2]) & set(people[-1])
    assert len(stable) >= max(4, 0.75 * len(people[2])), (sorted(people[2]), sorted(people[-1]))
    # ...and its box moved right with the scene (about 6 px per frame).
    for track_id in stable:
        start = people[2][track_id].bbox.center.position.x
        end = people[-1][track_id].bbox.center.position.x
        assert 6 * (frames - 3) * 0.5 < end - start < 6 * (frames - 3) * 1.5, track_id


def test_restoration_runs_only_while_someone_consumes_it(ros):
    """No dehazed/debug subscriber: the model runs without its restoration branch."""
    import rclpy
    from rclpy.lifecycle import TransitionCallbackReturn
    from sensor_msgs.msg import Image

    from togethernet_ros.ros.detector_node import DetectorNode

    detector = DetectorNode(parameter_overrides=_node_parameters(), context=ros.context)
    assert detector.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert detector.trigger_activate() == TransitionCallbackReturn.SUCCESS
    ros.add_node(detector)
    calls: list[bool] = []
    real_detect = detector._detector.detect
    detector._detector.detect = lambda images, restore=False: (
        calls.append(restore) or real_detect(images, restore=restore)
    )
    tester = ros.add_node(rclpy.create_node("restoration_probe", context=ros.context))
    publisher = tester.create_publisher(Image, CAM_A, _qos_reliable(5))
    wait_for(lambda: publisher.get_subscription_count() >= 1, 60.0, "the node's subscription")
    publisher.publish(_image_message(_scene(120, 160, 8), "cam_a_optical", 1))
    wait_for(lambda: len(calls) == 1, 30.0, "one inference without consumers")
    dehazed = []
    tester.create_subscription(Image, "/cam_a/dehazed/image_raw", dehazed.append, _qos_reliable())
    wait_for(
        lambda: detector._cameras[CAM_A].dehazed.get_subscription_count() >= 1,
        60.0,
        "the dehazed subscription",
    )
    publisher.publish(_image_message(_scene(120, 160, 8), "cam_a_optical", 2))
    wait_for(lambda: len(dehazed) == 1, 30.0, "a dehazed image once someone listens")
    assert calls == [False, True]


def test_lifecycle_round_trips_resume_processing(harness, ros):
    """Deactivate/activate and cleanup/configure bring the node back to a working state."""
    from rclpy.lifecycle import TransitionCallbackReturn

    detector, _tester, publishers, recorder = harness()
    frame = _scene(120, 160, 7)

    def publish_until_detected(stamp: int, what: str) -> None:
        publishers[CAM_A].publish(_image_message(frame, "cam_a_optical", stamp))
        wait_for(
            lambda: any(_stamp_ns(a.header) == stamp for a in recorder.get("/cam_a/detections")),
            60.0,
            what,
        )

    def decode_threads() -> int:  # the harness's CAM_B is compressed: decoded on a thread
        return sum(t.name.startswith("togethernet-decode") for t in threading.enumerate())

    publish_until_detected(1, "detections before any transition")
    assert decode_threads() >= 1
    # Transitions from this thread destroy subscriptions: not while the executor builds its
    # wait set (the lifecycle services run them in the executor thread itself).
    with ros.paused():
        assert detector.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert decode_threads() == 0
        assert detector.trigger_activate() == TransitionCallbackReturn.SUCCESS
    publish_until_detected(2, "detections after deactivate -> activate")
    with ros.paused():
        assert detector.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert decode_threads() == 0
        assert detector.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        assert detector._detector is None and not detector._cameras
        assert detector.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert detector.trigger_activate() == TransitionCallbackReturn.SUCCESS
    publish_until_detected(3, "detections after cleanup -> configure -> activate")
    assert sum(t.name == "togethernet-inference" for t in threading.enumerate()) == 1
    assert decode_threads() >= 1
    with ros.paused():
        detector.shutdown_cleanly()  # the SIGINT path
    assert decode_threads() == 0
    assert not any(t.name == "togethernet-inference" for t in threading.enumerate())


def test_an_unexpected_decoding_fault_drops_the_frame_not_the_node(harness, monkeypatch):
    # Fault injection: no known input makes decoding raise anything but ImageDecodeError, but
    # an exception escaping a subscription callback would end the executor's spin.
    detector, _tester, publishers, recorder = harness()
    real_decode = detector._decode

    def decode_failing_once(message, *arguments):
        if _stamp_ns(message.header) == 1:
            raise RuntimeError("injected fault")
        return real_decode(message, *arguments)

    monkeypatch.setattr(detector, "_decode", decode_failing_once)
    frame = _scene(120, 160, 9)
    publishers[CAM_A].publish(_image_message(frame, "cam_a_optical", 1))
    wait_for(lambda: detector._cameras[CAM_A].stats.bad_frames == 1, 60.0, "one bad frame")
    assert "unexpected RuntimeError" in detector._cameras[CAM_A].stats.last_problem
    publishers[CAM_A].publish(_image_message(frame, "cam_a_optical", 2))
    wait_for(
        lambda: any(_stamp_ns(a.header) == 2 for a in recorder.get("/cam_a/detections")),
        30.0,
        "detections for the next frame",
    )


def test_use_sim_time_measures_latency_on_the_replayed_clock(ros, harness):
    """A replayed bag's stamps are from the recording: latency must use /clock, not the wall."""
    import rclpy
    from rosgraph_msgs.msg import Clock

    detector, _tester, publishers, recorder = harness(use_sim_time=True)
    clock_node = ros.add_node(rclpy.create_node("sim_clock", context=ros.context))
    clock_publisher = clock_node.create_publisher(Clock, "/clock", 10)
    recorded_start_ns = 1_600_000_000_000_000_000  # a recording from 2020
    frame = _scene(120, 160, 10)
    # Before any /clock the node cannot measure latency: the frame is still processed.
    publishers[CAM_A].publish(_image_message(frame, "cam_a_optical", recorded_start_ns))
    wait_for(lambda: recorder.get("/cam_a/detections"), 30.0, "detections without /clock")
    stats = detector._cameras[CAM_A].stats
    # The latency is recorded after the detections are published: wait until it would be.
    wait_for(lambda: stats.processed == 1, 60.0, "the frame counted as processed")
    assert len(stats.latency_ms) == 0 and len(stats.receive_delay_ms) == 0
    started = time.monotonic()
    for index in range(1, 40):
        sim_now_ns = recorded_start_ns + int((time.monotonic() - started) * 1e9)
        message = Clock()
        message.clock.sec, message.clock.nanosec = divmod(sim_now_ns, 1_000_000_000)
        clock_publisher.publish(message)
        if index % 5 == 0:
            publishers[CAM_A].publish(_image_message(frame, "cam_a_optical", sim_now_ns))
        time.sleep(0.05)
    wait_for(
        lambda: _diagnostic_value(recorder, CAM_A, "latency_clock") == "ros (use_sim_time)",
        60.0,
        "diagnostics on the simulated clock",
    )
    # Frames sent while /clock ran may still be in the model (a loaded machine): wait for them.
    wait_for(lambda: len(stats.latency_ms) >= 3, 30.0, "latencies of 3 frames on /clock")
    latencies = stats.latency_ms.summary()
    # Against the wall clock these would be ~6 years; on /clock they are the node's own time,
    # give or take the 50 ms /clock period.
    assert -100.0 < latencies.p50 < 5000.0


def test_the_node_shadows_none_of_rclpys_own_attributes(ros):
    """Assigning e.g. self._subscriptions replaced rclpy's list: /clock went unheard."""
    import ast

    from rclpy.lifecycle import LifecycleNode

    bare = LifecycleNode("bare_lifecycle_node", context=ros.context)
    try:
        rclpy_names = set(vars(bare)) | set(dir(LifecycleNode))
    finally:
        bare.destroy_node()
    source = (REPO / "togethernet_ros" / "ros" / "detector_node.py").read_text()
    assigned = {
        node.attr
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute)
        and isinstance(node.ctx, ast.Store)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    }
    assert assigned, "the parse found no assignments to self"
    assert assigned & rclpy_names == set()


def test_unstamped_frames_are_processed_and_counted_without_a_latency(harness):
    """Stamp 0 (drivers that never set it): no 55-year latencies, smoothing by arrival time."""
    # Timed by arrival, the gap between frames is this machine's round trip: on a loaded machine
    # it can pass the default max_gap_s (1 s) and reset the tracks, whatever the node does.
    detector, _tester, publishers, recorder = harness(**{"tracking.max_gap_s": 60.0})
    frame = _scene(120, 160, 11)
    for count in range(1, 4):
        publishers[CAM_A].publish(_image_message(frame, "cam_a_optical", 0))
        wait_for(
            lambda n=count: len(recorder.get("/cam_a/detections")) >= n,
            30.0,
            f"detections for unstamped frame {count}",
        )
    stats = detector._cameras[CAM_A].stats
    # The worker counts a frame after publishing it, so the count can trail the messages.
    wait_for(lambda: stats.processed == 3, 60.0, "3 processed frames")
    assert stats.unstamped == 3
    assert len(stats.latency_ms) == 0 and len(stats.receive_delay_ms) == 0
    # The same picture three times: its tracks keep their ids, timed by arrival.
    smoothed = recorder.get("/cam_a/detections")
    assert smoothed[-1].detections and all(_stamp_ns(a.header) == 0 for a in smoothed)
    assert sorted(d.id for d in smoothed[-1].detections) == sorted(
        d.id for d in smoothed[-2].detections
    )
    wait_for(
        lambda: _diagnostic_value(recorder, CAM_A, "frames_without_stamp") == "3",
        60.0,
        "frames_without_stamp=3 in /diagnostics",
    )


def test_diagnostics_running_during_deactivate_and_cleanup_keep_the_executor_alive(
    harness, ros, monkeypatch
):
    """The timer callback may already run when a transition on another thread tears down."""
    from rclpy.lifecycle import TransitionCallbackReturn

    detector, tester, _publishers, _recorder = harness(diagnostics_period_s=0.05)
    stats = detector._cameras[CAM_A].stats
    real_rates = stats.rates_hz
    inside, left, teardown_starts = threading.Event(), threading.Event(), threading.Event()

    def slow_rates() -> tuple[float, float]:
        inside.set()
        try:
            # Fault injection: the callback still runs when the teardown begins.
            teardown_starts.wait(30.0)
            time.sleep(0.2)
            return real_rates()
        finally:
            left.set()

    monkeypatch.setattr(stats, "rates_hz", slow_rates)
    assert inside.wait(10.0), "the diagnostics timer never ran"
    # The spinner pauses as soon as that callback returns, so the teardown below (from this
    # thread, not the executor's as through the lifecycle services) cannot race the executor
    # building its next wait set; the teardown itself still starts while the callback runs.
    torn_down = threading.Event()

    def hold_the_spinner() -> None:
        with ros.paused():
            torn_down.wait(30.0)

    pauser = threading.Thread(target=hold_the_spinner, name="test-pauser")
    pauser.start()
    wait_for(lambda: ros.spinner._pause_requests == 1, 10.0, "the pause request")
    assert not left.is_set(), "the diagnostics callback ended before the teardown began"
    teardown_starts.set()
    try:
        assert detector.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert detector.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    finally:
        torn_down.set()
        pauser.join(30.0)
    assert left.wait(10.0)
    # It used to raise "dictionary changed size during iteration", which ended the spin. The
    # executor is single-threaded: a timer created now runs only if it still spins after that
    # callback. (A thread-name check could see another test's executor thread.)
    spinning = threading.Event()
    tester.create_timer(0.01, spinning.set)
    assert spinning.wait(10.0), "the executor stopped spinning"


def test_a_parameter_set_while_configure_loads_the_model_is_applied(ros, monkeypatch):
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    from togethernet_ros.ros.detector_node import DetectorNode

    # Without tracking the detector's threshold is conf_threshold itself (else the low stage's).
    parameters = _node_parameters(**{"tracking.enabled": False})
    detector = ros.add_node(DetectorNode(parameter_overrides=parameters, context=ros.context))
    real_create = detector._create_detector
    loading = threading.Event()

    def slow_create(settings):
        loading.set()
        time.sleep(1.0)  # fault injection: a model that takes a while to load
        return real_create(settings)

    monkeypatch.setattr(detector, "_create_detector", slow_create)
    results = []
    configure = threading.Thread(target=lambda: results.append(detector.trigger_configure()))
    configure.start()
    assert loading.wait(10.0)
    assert detector.set_parameters([Parameter("conf_threshold", value=0.9)])[0].successful
    configure.join(60.0)
    assert results == [TransitionCallbackReturn.SUCCESS]
    # Configure used to overwrite it with the value it had read before loading the model.
    assert detector.get_parameter("conf_threshold").value == 0.9
    assert detector._settings["conf_threshold"] == 0.9
    assert detector._detector.conf_threshold == 0.9


def test_concurrent_parameter_changes_are_all_applied(harness, monkeypatch):
    from rclpy.parameter import Parameter

    import togethernet_ros.ros.detector_node as detector_module

    detector, _tester, _publishers, _recorder = harness()
    real_validate = detector_module.validate_settings
    validating = threading.Event()

    def slow_validate(values):
        validating.set()
        time.sleep(0.3)  # fault injection: both changes start from the same settings
        return real_validate(values)

    monkeypatch.setattr(detector_module, "validate_settings", slow_validate)
    first_results = []
    first = threading.Thread(
        target=lambda: first_results.extend(
            detector.set_parameters([Parameter("conf_threshold", value=0.7)])
        )
    )
    first.start()
    # The second change starts while the first is being validated (a fixed sleep could let
    # the first finish, or not yet start, on a loaded machine: then nothing overlaps).
    assert validating.wait(10.0), "the first change never reached validation"
    assert detector.set_parameters([Parameter("tracking.min_hits", value=3)])[0].successful
    first.join(10.0)
    assert not first.is_alive() and [r.successful for r in first_results] == [True]
    assert detector.get_parameter("conf_threshold").value == 0.7
    # The second change used to be built on the settings before the first and undo it.
    assert detector._settings["conf_threshold"] == 0.7
    assert detector._detector.conf_threshold == detector._settings.detector_threshold()
    # Tracks start only from boxes that reach the new publish threshold.
    assert detector._cameras[CAM_A].tracker.config.high_score_threshold == 0.7
    assert detector._settings["tracking.min_hits"] == 3


def test_shutdown_cleanly_from_two_threads_at_once(harness, monkeypatch):
    """SIGINT handling and destroy_node may both free the node at the same time."""
    detector, _tester, _publishers, _recorder = harness()
    real_destroy = detector.destroy_publisher

    def slow_destroy(publisher) -> bool:
        time.sleep(0.05)  # fault injection: the second call arrives mid-teardown
        return real_destroy(publisher)

    monkeypatch.setattr(detector, "destroy_publisher", slow_destroy)
    errors: list[BaseException] = []

    def shut_down() -> None:
        try:
            detector.shutdown_cleanly()
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=shut_down) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30.0)
    assert not any(thread.is_alive() for thread in threads), "shutdown_cleanly hung"
    assert errors == []
    assert detector._detector is None and not detector._cameras
    assert detector.count_publishers("/cam_a/detections") == 0


def test_a_configure_that_raises_midway_leaves_nothing_behind(ros, monkeypatch):
    from rclpy.lifecycle import TransitionCallbackReturn

    from togethernet_ros.ros.detector_node import DetectorNode

    detector = ros.add_node(
        DetectorNode(parameter_overrides=_node_parameters(), context=ros.context)
    )
    real_create = detector.create_publisher
    made = []

    def failing_once(*args, **kwargs):
        made.append(args[1])
        if len(made) == 3:  # fault injection: rcl refuses a publisher of the first camera
            raise RuntimeError("injected: cannot create publisher")
        return real_create(*args, **kwargs)

    monkeypatch.setattr(detector, "create_publisher", failing_once)
    assert detector.trigger_configure() == TransitionCallbackReturn.ERROR
    # It used to go back to unconfigured with the model loaded and two publishers alive...
    assert detector._detector is None
    assert detector.count_publishers("/cam_a/detections") == 0
    # ...so the next configure loaded a second model and doubled the publishers.
    assert detector.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert detector.count_publishers("/cam_a/detections") == 1


def test_an_inference_thread_that_will_not_stop_finalizes_the_node(harness, monkeypatch, ros):
    """Deactivate cannot stop a hung batch: the node must not carry on as if unconfigured."""
    from rclpy.lifecycle import TransitionCallbackReturn

    from togethernet_ros.pipeline.inference_worker import InferenceWorker

    detector, _tester, publishers, _recorder = harness()
    real_stop = InferenceWorker.stop
    # Fault injection: a 0.3 s stop timeout instead of 30 s, and a batch that hangs.
    monkeypatch.setattr(InferenceWorker, "stop", lambda self, timeout_s=None: real_stop(self, 0.3))
    real_detect = detector._detector.detect
    entered, release = threading.Event(), threading.Event()

    def hanging_detect(images, restore=False):
        entered.set()
        release.wait(30.0)
        return real_detect(images, restore=restore)

    monkeypatch.setattr(detector._detector, "detect", hanging_detect)
    publishers[CAM_A].publish(_image_message(_scene(120, 160, 12), "cam_a_optical", 1))
    assert entered.wait(30.0), "no batch reached the model"
    try:
        with ros.paused():  # a transition from this thread destroys the camera subscriptions
            assert detector.trigger_deactivate() == TransitionCallbackReturn.ERROR
        # It used to land in unconfigured with the model and publishers still there, so a
        # configure loaded a second model while the hung thread kept using the first.
        assert detector._state_machine.current_state[1] == "finalized"
        assert detector._detector is not None, "the hung thread still uses the model"
    finally:
        release.set()
    wait_for(
        lambda: not any(t.name == "togethernet-inference" for t in threading.enumerate()),
        30.0,
        "the inference thread to finish its batch",
    )


def test_an_exported_onnx_model_runs_without_its_checkpoint(harness, tmp_path):
    from togethernet_ros.cli import main

    onnx = tmp_path / "demo.onnx"
    export = ["export", "--weights", str(REPO / "models" / "togethernet_vtest_384.pt")]
    export += ["--output", str(onnx), "--input-size", "128x256", "--variant", "detect"]
    assert main([*export, "--no-verify"]) == 0
    # weights '' and no allow_untrained_weights: the export is the model.
    detector, _tester, publishers, recorder = harness(
        backend="onnxruntime",
        onnx_path=str(onnx.with_name("demo.detect.onnx")),
        weights="",
        allow_untrained_weights=False,
    )
    assert detector._detector.backend.startswith("onnxruntime")
    assert not detector._detector.untrained
    publishers[CAM_A].publish(_image_message(_scene(120, 160, 14), "cam_a_optical", 1))
    wait_for(lambda: recorder.get("/cam_a/detections"), 30.0, "detections from the ONNX model")


def test_library_log_records_reach_the_node_log(ros, tmp_path):
    """The one-off ONNX export is logged by the library with `logging`: the node must show it."""
    import rclpy
    from sensor_msgs.msg import Image

    process = _start_node_process(
        "-p", "backend:=onnxruntime", "-p", f"engine_cache_dir:={tmp_path}",
        "-p", "input_size:=128", "-p", "image_topics:=['/log_cam/image_raw']",
        "-r", "__node:=log_detector",
    )  # fmt: skip
    try:
        tester = ros.add_node(rclpy.create_node("log_tester", context=ros.context))
        publisher = tester.create_publisher(Image, "/log_cam/image_raw", _qos_reliable(5))
        wait_for(lambda: publisher.get_subscription_count() >= 1, 90.0, "the active node")
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
        assert process.returncode == 0, output[-2000:]
        # In the ROS log format, under the node's name.
        assert re.search(r"\[INFO\] \[[\d.]+\] \[log_detector\]: exporting .* to ONNX", output), (
            output[-2000:]
        )
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_a_fading_object_keeps_its_track_on_boxes_below_conf_threshold(harness, monkeypatch):
    """Fog: the tracker's low stage gets the boxes scoring under conf_threshold; raw does not."""
    from support.stand_in_detectors import FadingObjectDetector

    from togethernet_ros.ros.detector_node import DetectorNode

    faded_frames = 6  # more than max_misses: a track fed nothing would die
    stand_in = FadingObjectDetector([0.9] * 3 + [0.2] * faded_frames)

    def create(node, settings):
        stand_in.conf_threshold = settings.detector_threshold()
        return stand_in

    monkeypatch.setattr(DetectorNode, "_create_detector", create)
    _detector, _tester, publishers, recorder = harness(
        conf_threshold=0.3,
        **{
            "tracking.min_hits": 2,
            "tracking.max_misses": 2,
            "tracking.high_score_threshold": 0.5,
            "tracking.low_score_threshold": 0.1,
        },
    )
    assert stand_in.conf_threshold == pytest.approx(0.1)
    for index in range(3 + faded_frames):
        publishers[CAM_A].publish(
            _image_message(_scene(96, 128, index), "cam_a", 1_000_000_000 + index * 50_000_000)
        )
        wait_for(
            lambda n=index + 1: len(recorder.get("/cam_a/detections")) >= n,
            60.0,
            f"smoothed detections for frame {index}",
        )
    wait_for(lambda: len(recorder.get("/cam_a/detections_raw")) >= 3 + faded_frames, 60.0, "raw")
    raw = [len(array.detections) for array in recorder.get("/cam_a/detections_raw")]
    smoothed = recorder.get("/cam_a/detections")
    assert raw == [1] * 3 + [0] * faded_frames
    assert [len(array.detections) for array in smoothed] == [0] + [1] * (2 + faded_frames)
    assert {d.id for array in smoothed for d in array.detections} == {"1"}
    assert smoothed[-1].detections[0].results[0].hypothesis.score == pytest.approx(0.2)


def test_a_class_taken_out_of_classes_at_run_time_is_no_longer_published(harness, monkeypatch):
    """`classes` is a run-time parameter: its tracks must not coast on for max_misses frames."""
    from rclpy.parameter import Parameter
    from support.stand_in_detectors import FadingObjectDetector

    from togethernet_ros.ros.detector_node import DetectorNode

    stand_in = FadingObjectDetector([0.9])  # one person in every frame

    def create(node, settings):
        stand_in.conf_threshold = settings.detector_threshold()
        return stand_in

    monkeypatch.setattr(DetectorNode, "_create_detector", create)
    detector, _tester, publishers, recorder = harness(
        conf_threshold=0.3, **{"tracking.min_hits": 1, "tracking.max_misses": 5}
    )

    def publish(index: int) -> None:
        publishers[CAM_A].publish(
            _image_message(_scene(96, 128, index), "cam_a", 1_000_000_000 + index * 50_000_000)
        )
        wait_for(
            lambda: len(recorder.get("/cam_a/detections")) >= index + 1,
            60.0,
            f"smoothed detections for frame {index}",
        )

    publish(0)
    publish(1)
    assert len(recorder.get("/cam_a/detections")[-1].detections) == 1
    assert detector.set_parameters([Parameter("classes", value=["car"])])[0].successful
    publish(2)
    wait_for(lambda: len(recorder.get("/cam_a/detections_raw")) >= 3, 60.0, "raw detections")
    assert len(recorder.get("/cam_a/detections_raw")[-1].detections) == 0
    assert [
        d.results[0].hypothesis.class_id for d in recorder.get("/cam_a/detections")[-1].detections
    ] == []


def test_max_detections_counts_only_the_published_classes_and_changes_at_run_time(
    harness, monkeypatch
):
    """350 cars and one person with classes ['person']: the cars take none of the 300 places."""
    from rclpy.parameter import Parameter
    from support.stand_in_detectors import CrowdDetector

    from togethernet_ros.ros.detector_node import DetectorNode

    stand_in = CrowdDetector(cars=350)

    def create(node, settings):
        stand_in.conf_threshold = settings.detector_threshold()
        return stand_in

    monkeypatch.setattr(DetectorNode, "_create_detector", create)
    detector, _tester, publishers, recorder = harness(
        conf_threshold=0.3, classes=["person"], max_detections=300, **{"tracking.min_hits": 1}
    )

    def raw_classes(index: int) -> list[str]:
        publishers[CAM_A].publish(_image_message(_scene(96, 128, index), "cam_a", index + 1))
        wait_for(
            lambda: len(recorder.get("/cam_a/detections_raw")) >= index + 1,
            60.0,
            f"raw detections for frame {index}",
        )
        raw = recorder.get("/cam_a/detections_raw")[index].detections
        return [d.results[0].hypothesis.class_id for d in raw]

    assert raw_classes(0) == ["person"]
    assert detector.set_parameters([Parameter("classes", value=["all"])])[0].successful
    assert raw_classes(1) == ["car"] * 300  # all classes: the 300 highest scores
    assert detector.set_parameters([Parameter("max_detections", value=20)])[0].successful
    assert raw_classes(2) == ["car"] * 20


def _blob_harness(harness, monkeypatch, **overrides):
    """The harness with `BrightBlockDetector`: each frame's bright rectangle is one person."""
    from support.stand_in_detectors import BrightBlockDetector

    from togethernet_ros.ros.detector_node import DetectorNode

    stand_in = BrightBlockDetector()

    def create(node, settings):
        stand_in.conf_threshold = settings.detector_threshold()
        return stand_in

    monkeypatch.setattr(DetectorNode, "_create_detector", create)
    tracking = {"tracking.min_hits": 1, "tracking.max_misses": 5, **overrides}
    return harness(conf_threshold=0.3, **tracking)


def _publish_and_wait(publishers, recorder, index: int, message) -> list:
    publishers[CAM_A].publish(message)
    wait_for(
        lambda: len(recorder.get("/cam_a/detections")) >= index + 1,
        60.0,
        f"smoothed detections for frame {index}",
    )
    return recorder.get("/cam_a/detections")[index].detections


def _boxes_xyxy(detections) -> list[tuple[float, float, float, float]]:
    boxes = []
    for detection in detections:
        cx, cy = detection.bbox.center.position.x, detection.bbox.center.position.y
        half_w, half_h = detection.bbox.size_x / 2, detection.bbox.size_y / 2
        boxes.append((cx - half_w, cy - half_h, cx + half_w, cy + half_h))
    return boxes


def test_a_camera_that_changes_resolution_publishes_no_boxes_of_the_old_size(harness, monkeypatch):
    """A driver reconfigured from 256x192 to 128x96: the old tracks' pixels mean nothing now.

    They used to coast on for max_misses frames, published in the old size's pixels (outside
    the new image) beside the object's new track.
    """
    from support.stand_in_detectors import frame_with_block

    _detector, _tester, publishers, recorder = _blob_harness(harness, monkeypatch)
    stamp = 1_700_000_000_000_000_000
    for index in range(3):
        frame = frame_with_block(192, 256, (128 + 4 * index, 48, 192 + 4 * index, 144))
        found = _publish_and_wait(
            publishers, recorder, index, _image_message(frame, "cam_a", stamp + index * 50_000_000)
        )
        assert len(found) == 1
    for index in range(3, 6):
        shift = 2 * (index - 3)
        frame = frame_with_block(96, 128, (64 + shift, 24, 96 + shift, 72))
        found = _publish_and_wait(
            publishers, recorder, index, _image_message(frame, "cam_a", stamp + index * 50_000_000)
        )
        boxes = _boxes_xyxy(found)
        assert len(boxes) == 1, f"frame {index}: {boxes}"
        x1, y1, x2, y2 = boxes[0]
        assert 0 <= x1 < x2 <= 128 and 0 <= y1 < y2 <= 96, f"frame {index}: {boxes}"


def test_a_second_publisher_with_another_frame_id_gets_none_of_the_first_ones_tracks(
    harness, monkeypatch
):
    """Two cameras on one topic (or a driver that changed frame_id): tracks never cross over.

    Boxes tracked in one camera's frame used to coast on in the other's outputs, under its header.
    """
    from support.stand_in_detectors import frame_with_block

    _detector, _tester, publishers, recorder = _blob_harness(harness, monkeypatch)
    stamp = 1_700_000_000_000_000_000
    left = frame_with_block(96, 128, (8, 20, 40, 70))
    right = frame_with_block(96, 128, (80, 20, 112, 70))
    for index in range(4):
        frame_id, frame = ("cam_left", left) if index % 2 == 0 else ("cam_right", right)
        found = _publish_and_wait(
            publishers, recorder, index, _image_message(frame, frame_id, stamp + index * 50_000_000)
        )
        boxes = _boxes_xyxy(found)
        assert len(boxes) == 1, f"frame {index} ({frame_id}): {boxes}"
        expected_x = 8 if frame_id == "cam_left" else 80
        assert abs(boxes[0][0] - expected_x) < 1, f"frame {index} ({frame_id}): {boxes}"


def test_a_stray_unstamped_frame_in_a_stamped_stream_keeps_the_tracks(harness, monkeypatch):
    """One frame with stamp 0 amid stamped ones: the object keeps its track and its id.

    It used to be timed by the monotonic clock against stamps on the system clock: the tracker
    saw time jump back decades and forward again, reset twice and gave the object two new ids.
    """
    from support.stand_in_detectors import frame_with_block

    # The stamps are the wall clock at publishing: on a loaded machine a round trip can pass the
    # default max_gap_s (1 s) and reset the tracks, whatever the node does. The fault (decades
    # back, then forward) resets them under any max_gap_s.
    _detector, _tester, publishers, recorder = _blob_harness(
        harness, monkeypatch, **{"tracking.min_hits": 2, "tracking.max_gap_s": 60.0}
    )
    ids = []
    for index in range(6):
        frame = frame_with_block(96, 128, (8 + 2 * index, 20, 40 + 2 * index, 70))
        stamp = 0 if index == 3 else time.time_ns()
        found = _publish_and_wait(
            publishers, recorder, index, _image_message(frame, "cam_a", stamp)
        )
        ids.append([detection.id for detection in found])
    assert ids == [[]] + [["1"]] * 5

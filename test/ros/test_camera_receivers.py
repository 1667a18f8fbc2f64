"""Camera receiver processes (camera_receivers: processes) over real DDS.

The node's plumbing tests run an UNTRAINED model (allow_untrained_weights): they check how
frames reach the node, not detection quality.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from support.detector_nodes import active_detector_node
from support.ros_messages import MessageRecorder, bgr8_image, jpeg_image
from support.wait import wait_for

from togethernet_ros.pipeline.shared_frame_slots import FILE_PREFIX, shared_memory_dir
from togethernet_ros.ros.camera_receivers import CameraReceiver
from togethernet_ros.ros.qos_settings import QosSettings

pytestmark = pytest.mark.ros

CAM_A = "/rx_a/image_raw"
CAM_B = "/rx_b/image_raw"
CAM_C = "/rx_c/image_raw/compressed"


def _receiver_files(file_prefix: str) -> list[Path]:
    """The slot files of the receiver whose files are named ``<file_prefix>_...``."""
    return list(shared_memory_dir().glob(f"{file_prefix}_*"))


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) counts as gone.
    status = Path(f"/proc/{pid}/stat")
    return not status.exists() or status.read_text().split(")")[-1].split()[0] != "Z"


def _bare_receiver(name: str, **callbacks) -> CameraReceiver:
    """A receiver of ``/<name>/image_raw`` (reliable) outside any detector node."""
    return CameraReceiver(
        topic=f"/{name}/image_raw",
        node_name=f"{name}_receiver",
        namespace="/",
        qos=QosSettings(reliability="reliable", depth=5),
        **callbacks,
    )


def test_a_receiver_hands_over_exactly_the_published_bytes_and_leaves_nothing_behind(ros):
    """The bytes reaching the handler are the message's CDR serialization, with the DDS
    message info, and stopping ends the process and removes its shared-memory files."""
    import rclpy
    import rclpy.subscription
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image

    received: list[tuple[bytes, dict | None]] = []
    exits: list[str] = []
    publisher_changes: list[None] = []
    receiver = _bare_receiver(
        "rx_bytes",
        on_message=lambda view, info: received.append((bytes(view), info)),
        on_exit=lambda _receiver, reason: exits.append(reason),
        on_publishers_changed=lambda: publisher_changes.append(None),
    )
    receiver.start()
    try:
        node = ros.add_node(rclpy.create_node("rx_bytes_publisher", context=ros.context))
        publisher = node.create_publisher(Image, "/rx_bytes/image_raw", 5)
        wait_for(lambda: publisher.get_subscription_count() >= 1, 30.0, "the receiver")
        if hasattr(rclpy.subscription.Subscription, "CallbackType"):  # matched events: Iron on
            wait_for(lambda: publisher_changes, 30.0, "the receiver to report the new publisher")
        rng = np.random.default_rng(1)
        messages = [
            bgr8_image(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), 1_000 + i, f"f{i}")
            for i, (h, w) in enumerate([(48, 64), (480, 640), (24, 32)])
        ]
        for index, message in enumerate(messages):
            publisher.publish(message)
            wait_for(lambda n=index + 1: len(received) >= n, 30.0, f"message {index}")
        # Byte for byte but for CDR's alignment padding, which rclpy leaves uninitialised.
        assert [len(data) for data, _ in received] == [len(serialize_message(m)) for m in messages]
        for (data, _), message in zip(received, messages, strict=True):
            copy = deserialize_message(data, Image)
            assert (copy.header.frame_id, copy.header.stamp.nanosec) == (
                message.header.frame_id,
                message.header.stamp.nanosec,
            )
            assert (copy.height, copy.width, copy.encoding, copy.step) == (
                message.height,
                message.width,
                message.encoding,
                message.step,
            )
            assert bytes(copy.data) == bytes(message.data)
        infos = [info for _, info in received]
        if hasattr(rclpy.subscription.Subscription, "CallbackType"):  # message info: Iron on
            numbers = [info["publication_sequence_number"] for info in infos]
            assert numbers == list(range(numbers[0], numbers[0] + 3))
            assert all(info["received_timestamp"] >= info["source_timestamp"] for info in infos)
        pid = receiver.pid
        assert _receiver_files(receiver.file_prefix), "the slots live in shared memory"
    finally:
        receiver.stop()
    assert not _process_exists(pid)
    assert _receiver_files(receiver.file_prefix) == []
    assert exits == [], "a requested stop is no unexpected exit"


@pytest.fixture
def receiving_node(ros):
    """An active DetectorNode receiving two raw cameras in processes and a compressed one in
    its executor, plus a test node publishing to them and recording the outputs."""
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage, Image
    from vision_msgs.msg import Detection2DArray

    values = {
        "image_topics": [CAM_A, CAM_B, CAM_C],
        "weights": "",
        "allow_untrained_weights": True,
        "input_size": [128, 128],
        "conf_threshold": 0.05,
        "max_batch_wait_ms": 30.0,
        "diagnostics_period_s": 0.2,
        "camera_receivers": "processes",
        "publish_dehazed": False,
        # Reliable, so a frame sent as the receiver's reader is still matching is repaired.
        "input_reliability": "reliable",
    }
    detector = active_detector_node(ros, values)
    tester = ros.add_node(rclpy.create_node("receivers_test", context=ros.context))
    recorder = MessageRecorder()
    reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    for name in ("rx_a", "rx_b", "rx_c"):
        topic = f"/{name}/detections"
        tester.create_subscription(Detection2DArray, topic, recorder.callback(topic), reliable)
    from diagnostic_msgs.msg import DiagnosticArray

    tester.create_subscription(DiagnosticArray, "/diagnostics", recorder.callback("diag"), 10)
    publishers = {
        CAM_A: tester.create_publisher(Image, CAM_A, QoSProfile(depth=5)),
        CAM_B: tester.create_publisher(Image, CAM_B, QoSProfile(depth=5)),
        CAM_C: tester.create_publisher(CompressedImage, CAM_C, QoSProfile(depth=5)),
    }
    wait_for(
        lambda: all(p.get_subscription_count() >= 1 for p in publishers.values()),
        60.0,
        "the camera subscriptions (two of them in receiver processes)",
    )
    return detector, publishers, recorder


def _diagnostic(recorder: MessageRecorder, camera: str, key: str) -> str | None:
    for array in reversed(recorder.get("diag")):
        for status in array.status:
            if status.name.endswith(camera):
                return {pair.key: pair.value for pair in status.values}.get(key)
    return None


def _publish_round(publishers, recorder, index: int) -> int:
    """One frame per camera, then wait for the three detection arrays; returns the stamp."""
    rng = np.random.default_rng(index)
    stamp = 1_800_000_000_000_000_000 + index * 50_000_000
    publishers[CAM_A].publish(bgr8_image(rng.integers(0, 256, (240, 320, 3), np.uint8), stamp, "a"))
    publishers[CAM_B].publish(bgr8_image(rng.integers(0, 256, (120, 160, 3), np.uint8), stamp, "b"))
    publishers[CAM_C].publish(jpeg_image(rng.integers(0, 256, (64, 96, 3), np.uint8), stamp, "c"))
    wait_for(
        lambda: all(
            len(recorder.get(f"/{n}/detections")) > index for n in ("rx_a", "rx_b", "rx_c")
        ),
        60.0,
        f"detections of round {index}",
    )
    return stamp


def test_untrained_raw_cameras_received_in_processes_publish_like_the_executor_path(
    receiving_node, ros
):
    from rclpy.lifecycle import TransitionCallbackReturn

    detector, publishers, recorder = receiving_node
    pids = {topic: receiver.pid for topic, receiver in detector._receivers.items()}
    prefixes = [receiver.file_prefix for receiver in detector._receivers.values()]
    assert set(pids) == {CAM_A, CAM_B}, "raw cameras only: the compressed one stays in-process"
    stamps = [_publish_round(publishers, recorder, index) for index in range(4)]
    for name, frame_id, (height, width) in [("rx_a", "a", (240, 320)), ("rx_b", "b", (120, 160))]:
        arrays = recorder.get(f"/{name}/detections")
        assert [a.header.stamp.sec * 10**9 + a.header.stamp.nanosec for a in arrays] == stamps
        assert {a.header.frame_id for a in arrays} == {frame_id}
        for detection in arrays[-1].detections:
            assert 0 <= detection.bbox.center.position.x <= width
            assert 0 <= detection.bbox.center.position.y <= height
    wait_for(
        lambda: (
            _diagnostic(recorder, CAM_A, "frames_processed") == "4"
            and _diagnostic(recorder, CAM_B, "executor_delay_samples") == "4"
        ),
        30.0,
        "diagnostics of the 4 rounds",
    )
    assert _diagnostic(recorder, CAM_A, "receiver") == f"process {pids[CAM_A]}"
    assert _diagnostic(recorder, CAM_C, "receiver") == "executor"
    assert _diagnostic(recorder, CAM_A, "frames_lost_before_node") == "0"
    # Deactivate stops the receivers: no process, no shared-memory file left.
    with ros.paused():
        assert detector.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    assert not any(_process_exists(pid) for pid in pids.values())
    assert not any(_receiver_files(prefix) for prefix in prefixes)


def test_untrained_bad_frames_from_a_receiver_are_counted_and_the_node_keeps_running(
    receiving_node,
):
    from sensor_msgs.msg import Image

    detector, publishers, recorder = receiving_node
    bad = Image()
    bad.height, bad.width, bad.encoding, bad.step = 10, 10, "bgr8", 30
    bad.data = bytes(5)  # 300 bytes declared
    publishers[CAM_A].publish(bad)
    pid = detector._receivers[CAM_A].pid
    wait_for(
        lambda: _diagnostic(recorder, CAM_A, "bad_frames") == "1", 30.0, "the bad frame counted"
    )
    _publish_round(publishers, recorder, 0)
    # Still the same receiver: a bad frame is the node's to reject, not the receiver's end.
    assert detector._receivers[CAM_A].pid == pid and _process_exists(pid)


def test_untrained_a_killed_receiver_falls_back_to_the_executor_and_frames_keep_coming(
    receiving_node,
):
    detector, publishers, recorder = receiving_node
    _publish_round(publishers, recorder, 0)
    pid, prefix = detector._receivers[CAM_A].pid, detector._receivers[CAM_A].file_prefix
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: CAM_A not in detector._receivers, 30.0, "the node to notice the exit")
    wait_for(
        lambda: _diagnostic(recorder, CAM_A, "receiver") == "executor",
        30.0,
        "diagnostics naming the executor",
    )
    assert _receiver_files(prefix) == [], "the killed receiver's slots are removed by the node"
    # The fallback subscription must match the camera before frames reach it (the killed
    # receiver's reader stays matched on the camera's side until its lease ends).
    fallback = detector._camera_subscriptions[-1]
    assert fallback.topic_name == CAM_A
    wait_for(lambda: fallback.get_publisher_count() >= 1, 30.0, "the node's subscription")
    for index in range(1, 3):
        _publish_round(publishers, recorder, index)
    assert CAM_B in detector._receivers, "the other camera's receiver is untouched"


def test_untrained_a_receiver_outlives_sigterm_and_sighup_left_to_the_node(receiving_node):
    """systemd stops a service by signalling its whole control group: the receivers leave the
    stop to the node instead of dying under it (which would look like a crash)."""
    detector, publishers, recorder = receiving_node
    pid = detector._receivers[CAM_A].pid
    os.kill(pid, signal.SIGTERM)
    os.kill(pid, signal.SIGHUP)
    time.sleep(0.5)
    assert _process_exists(pid)
    _publish_round(publishers, recorder, 0)
    assert detector._receivers[CAM_A].pid == pid


def test_untrained_stopping_receivers_while_frames_flow_ends_cleanly(receiving_node, ros):
    """Deactivate while two cameras publish as fast as they can: processes end, no thread of
    a receiver is left, and activate starts fresh ones."""
    from rclpy.lifecycle import TransitionCallbackReturn

    detector, publishers, _recorder = receiving_node
    stop = threading.Event()
    frame = np.zeros((240, 320, 3), np.uint8)

    def flood():
        while not stop.is_set():
            for topic in (CAM_A, CAM_B):
                publishers[topic].publish(bgr8_image(frame, time.time_ns(), "f"))
            time.sleep(0.002)

    flooding = threading.Thread(target=flood)
    flooding.start()
    try:
        time.sleep(1.0)
        old = [receiver.pid for receiver in detector._receivers.values()]
        with ros.paused():
            assert detector.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert all(not _process_exists(pid) for pid in old)
        assert not [t for t in threading.enumerate() if t.name.startswith("receiver /rx_")]
        with ros.paused():
            assert detector.trigger_activate() == TransitionCallbackReturn.SUCCESS
        new = [receiver.pid for receiver in detector._receivers.values()]
        assert len(new) == 2 and not set(new) & set(old)
    finally:
        stop.set()
        flooding.join()


def test_untrained_node_process_with_receivers_ends_them_all_on_ctrl_c(ros):
    """Ctrl+C in a terminal reaches the whole process group: the receivers leave the stop to
    the node, which ends them and exits 0 with nothing left behind."""
    import subprocess
    import sys

    import psutil
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    repo = Path(__file__).resolve().parents[2]
    arguments = [
        "--params-file", str(repo / "config" / "detect.yaml"),
        "-p", "weights:=''", "-p", "allow_untrained_weights:=true",
        "-p", "input_size:=128", "-p", "camera_receivers:=processes",
        "-p", "input_reliability:=reliable", "-p", "gil_switch_interval_ms:=1",
        # Relative topics in a namespace, one of them remapped: the receivers subscribe to the
        # names the node resolved, /grp/cam_a/image_raw and /grp/front/image_raw.
        "-p", "image_topics:=['cam_a/image_raw', 'cam_b/image_raw']",
        "-r", "__node:=group_detector", "-r", "__ns:=/grp",
        "-r", "cam_b/image_raw:=front/image_raw",
        # An SROS2 enclave (security is off here, so it only has to reach the receivers).
        "--enclave", "/togethernet/detector",
    ]  # fmt: skip
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "detector_node"), "--ros-args", *arguments],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        tester = ros.add_node(rclpy.create_node("group_tester", context=ros.context))
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        received: list = []
        # Outputs are named after the parameter's topic (the remap renames the input only).
        tester.create_subscription(
            Detection2DArray, "/grp/cam_b/detections", received.append, reliable
        )
        publisher = tester.create_publisher(Image, "/grp/front/image_raw", reliable)
        wait_for(lambda: publisher.get_subscription_count() >= 1, 60.0, "camera B's receiver")
        frame = np.zeros((96, 128, 3), np.uint8)
        for index in range(3):
            publisher.publish(bgr8_image(frame, 7_000 + index, "front"))
            time.sleep(0.3)
        wait_for(lambda: len(received) >= 1, 30.0, "detections through the receiver")
        receivers = psutil.Process(process.pid).children()
        commands = [receiver.cmdline() for receiver in receivers]
        topics = sorted(command[command.index("--topic") + 1] for command in commands)
        assert topics == ["/grp/cam_a/image_raw", "/grp/front/image_raw"]
        prefixes = [FILE_PREFIX + command[command.index("--prefix") + 1] for command in commands]
        assert all(
            command[command.index("--enclave") + 1] == "/togethernet/detector"
            for command in commands
        )
        os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=60)
        assert process.returncode == 0, output[-3000:]
        assert "GIL switch interval 1 ms" in output
        assert "receiving raw cameras in their own processes" in output
        # Stopped by the node, not by the signal: no exit noticed, no traceback.
        assert "camera receiver process of" not in output and "Traceback" not in output
        assert not any(_process_exists(receiver.pid) for receiver in receivers), output[-3000:]
        assert not any(_receiver_files(prefix) for prefix in prefixes)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()


def test_a_receiver_joins_the_domain_it_is_given_not_the_environments():
    """A node whose context was given its ROS domain in code: the receiver must join that
    domain, not ROS_DOMAIN_ID's, or it would never see a frame."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image

    from togethernet_ros.ros.background_spin import BackgroundSpinner

    domain = (int(os.environ["ROS_DOMAIN_ID"]) + 7) % 100 + 1
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    received: list[int] = []
    receiver = _bare_receiver(
        "rx_domain",
        on_message=lambda view, _info: received.append(len(view)),
        on_exit=lambda _receiver, _reason: None,
        domain_id=context.get_domain_id(),
    )
    executor = SingleThreadedExecutor(context=context)
    spinner = BackgroundSpinner(executor, "domain-test")
    node = rclpy.create_node("rx_domain_publisher", context=context)
    executor.add_node(node)
    spinner.start()
    receiver.start()
    try:
        publisher = node.create_publisher(Image, "/rx_domain/image_raw", 5)
        wait_for(lambda: publisher.get_subscription_count() >= 1, 30.0, "the receiver")
        publisher.publish(bgr8_image(np.zeros((4, 4, 3), np.uint8), 1, "d"))
        wait_for(lambda: received, 30.0, "the frame in the given domain")
    finally:
        receiver.stop()
        spinner.stop()
        executor.remove_node(node)
        node.destroy_node()
        executor.shutdown()
        rclpy.shutdown(context=context)


def test_untrained_receivers_that_cannot_start_leave_the_cameras_to_the_node(ros, monkeypatch):
    """No process can be made (EAGAIN, too many open files): activate still succeeds and the
    node receives every camera itself, saying why."""
    import errno
    import subprocess

    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    def no_processes(*_args, **_kwargs):
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(subprocess, "Popen", no_processes)
    values = {
        "image_topics": [CAM_A, CAM_B],
        "weights": "",
        "allow_untrained_weights": True,
        "input_size": [128, 128],
        "camera_receivers": "processes",
        "input_reliability": "reliable",
        "max_batch_wait_ms": 5.0,
    }
    detector = active_detector_node(ros, values)
    assert detector._receivers == {}
    tester = ros.add_node(rclpy.create_node("no_receivers_test", context=ros.context))
    received: list = []
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    tester.create_subscription(Detection2DArray, "/rx_b/detections", received.append, reliable)
    publisher = tester.create_publisher(Image, CAM_B, reliable)
    wait_for(lambda: publisher.get_subscription_count() >= 1, 30.0, "the node's subscription")
    publisher.publish(bgr8_image(np.zeros((64, 64, 3), np.uint8), 5, "b"))
    wait_for(lambda: received, 30.0, "detections received in the node")

"""The detector node as a robot stack launches it: namespaces, relative and private topic names,
remapping, params files keyed by the node's real name, sim time and run-time parameter sets.

All tests run an UNTRAINED model (allow_untrained_weights) over real DDS: they check names and
plumbing, not detection quality.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support.detector_nodes import active_detector_node, detector_node
from support.ros_messages import noise_frame
from support.wait import wait_for

pytestmark = pytest.mark.ros

UNTRAINED = {"weights": "", "allow_untrained_weights": True, "input_size": [128]}
# A recording from 2020: far from the wall clock, so a stamp on either clock tells which it is.
RECORDED_START_NS = 1_600_000_000_000_000_000


def _reliable(depth: int = 10):
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)


def _latched():
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        depth=1,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )


def _frame(stamp_ns: int, frame_id: str):
    return noise_frame(stamp_ns, frame_id)


def _compressed_frame(stamp_ns: int, frame_id: str):
    import cv2
    from sensor_msgs.msg import CompressedImage

    message = CompressedImage()
    message.header.frame_id = frame_id
    message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    message.format = "jpeg"
    message.data = cv2.imencode(".jpg", np.full((96, 128, 3), 90, np.uint8))[1].tobytes()
    return message


def _stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def _start_detector(ros, namespace: str = "", arguments: tuple[str, ...] = (), **parameters):
    """An in-process DetectorNode, configured and active, spun by the test's executor."""
    # Reliable input: each test sends few frames and waits for every one's outputs.
    values = {
        **UNTRAINED,
        "diagnostics_period_s": 0.2,
        "input_reliability": "reliable",
        "input_depth": 5,
        **parameters,
    }
    return active_detector_node(
        ros,
        values,
        namespace=namespace,
        cli_args=["--ros-args", *arguments] if arguments else None,
    )


def _diagnostic_names(arrays: list) -> set[str]:
    return {status.name for array in list(arrays) for status in array.status}


def _wait_for_diagnostics_named(arrays: list, expected: set[str]) -> None:
    """Wait until /diagnostics has named every camera in `expected`; fail naming what came."""
    try:
        wait_for(lambda: expected <= _diagnostic_names(arrays), 60.0, "diagnostics")
    except AssertionError:
        got = sorted(_diagnostic_names(arrays))
        raise AssertionError(
            f"no diagnostics named {sorted(expected)} in 60 s; got {got}"
        ) from None


def test_untrained_namespaced_node_with_relative_private_and_remapped_cameras(ros):
    """`-r __ns:=/perception -r __node:=fog -r front/image_raw:=/robot/...`: where things go."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray, LabelInfo

    remaps = ("-r", "__node:=fog", "-r", "front/image_raw:=/robot/front_camera/image_raw")
    _start_detector(
        ros,
        namespace="/perception",
        arguments=remaps,
        image_topics=["front/image_raw", "~/input", "rear/image_raw"],
    )
    tester = ros.add_node(rclpy.create_node("names_tester", context=ros.context))
    # Input as subscribed -> outputs: relative names follow the namespace, a private one the
    # node, and remapping the input moves only the input (outputs keep the parameter's name).
    cameras = {
        "/robot/front_camera/image_raw": "/perception/front/detections",
        "/perception/fog/input": "/perception/fog/detections",
        "/perception/rear/image_raw": "/perception/rear/detections",
    }
    received: dict[str, list] = {output: [] for output in cameras.values()}
    for output, messages in received.items():
        tester.create_subscription(Detection2DArray, output, messages.append, _reliable())
    diagnostics: list = []
    tester.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
    publishers = {topic: tester.create_publisher(Image, topic, _reliable(5)) for topic in cameras}
    wait_for(
        lambda: all(p.get_subscription_count() >= 1 for p in publishers.values()),
        60.0,
        "the node's subscriptions on the resolved camera topics",
    )
    for index, (topic, output) in enumerate(cameras.items()):
        stamp = RECORDED_START_NS + index
        publishers[topic].publish(_frame(stamp, f"camera_{index}"))
        wait_for(
            lambda o=output, s=stamp: any(_stamp_ns(m.header) == s for m in received[o]),
            60.0,
            f"detections on {output} for a frame on {topic}",
        )
    # Diagnostics name each camera by the topic really subscribed, not the parameter's text.
    _wait_for_diagnostics_named(diagnostics, {f"fog: {topic}" for topic in cameras})
    # The latched class map reaches a subscriber that joins late, in the node's namespace.
    labels: list = []
    tester.create_subscription(LabelInfo, "/perception/fog/label_info", labels.append, _latched())
    wait_for(lambda: labels, 60.0, "latched label_info at /perception/fog/label_info")
    assert labels[0].class_map[0].class_name == "person"


def test_two_detectors_in_two_namespaces_report_their_cameras_apart(ros):
    """Both given `camera/image_raw`: one status name for both, aggregators merged them."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray

    for namespace in ("/robot1", "/robot2"):
        _start_detector(ros, namespace=namespace, image_topics=["camera/image_raw"])
    tester = ros.add_node(rclpy.create_node("two_robots_tester", context=ros.context))
    diagnostics: list = []
    tester.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
    _wait_for_diagnostics_named(
        diagnostics, {"detector: /robot1/camera/image_raw", "detector: /robot2/camera/image_raw"}
    )


def test_a_camera_remapped_onto_a_compressed_topic_is_subscribed_as_compressed(ros):
    """`-r image:=.../compressed` carries CompressedImage: an Image subscription heard nothing."""
    import rclpy
    from sensor_msgs.msg import CompressedImage
    from vision_msgs.msg import Detection2DArray

    _start_detector(
        ros,
        arguments=("-r", "/remap_cam/image:=/remap_cam/image_raw/compressed"),
        image_topics=["/remap_cam/image"],
    )
    tester = ros.add_node(rclpy.create_node("compressed_remap_tester", context=ros.context))
    received: list = []
    tester.create_subscription(
        Detection2DArray, "/remap_cam/detections", received.append, _reliable()
    )
    publisher = tester.create_publisher(
        CompressedImage, "/remap_cam/image_raw/compressed", _reliable(5)
    )
    wait_for(
        lambda: publisher.get_subscription_count() >= 1,
        60.0,
        "a CompressedImage subscription on /remap_cam/image_raw/compressed",
    )
    publisher.publish(_compressed_frame(7, "remap_cam"))
    wait_for(lambda: received, 60.0, "detections for the compressed frame")
    assert _stamp_ns(received[0].header) == 7


def _run_node_process(*arguments: str) -> subprocess.CompletedProcess:
    node = Path(sys.executable).parent / "detector_node"
    return subprocess.run(
        [str(node), "--ros-args", *arguments],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["-p", "image_topics:=['camera/image_raw', '/camera/image_raw']"],
            "'camera/image_raw' and '/camera/image_raw' are both the topic '/camera/image_raw'",
        ),
        (
            ["-r", "__ns:=/perception", "-r", "__node:=twice",
             "-p", "image_topics:=['~/image', '/perception/twice/image']"],
            "'~/image' and '/perception/twice/image' are both the topic "
            "'/perception/twice/image'",
        ),
        (
            ["-p", "image_topics:=['/cam_a/image_raw', '/cam_b/image_raw']",
             "-r", "/cam_b/image_raw:=/cam_a/image_raw"],
            "'/cam_a/image_raw' and '/cam_b/image_raw' are both the topic '/cam_a/image_raw'",
        ),
        (
            ["-p", "image_topics:=['camera/left', '/camera/right']"],
            "'camera/left' and '/camera/right' would both publish on '/camera/detections'",
        ),
    ],
)  # fmt: skip
def test_one_camera_or_one_output_spelt_two_ways_is_refused(arguments, message):
    """Each frame used to be processed twice and published twice on the same detections."""
    result = _run_node_process(
        "-p", "weights:=''", "-p", "allow_untrained_weights:=true", "-p", "input_size:=[128]",
        *arguments,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout[-2000:]
    assert message in result.stdout and "Traceback" not in result.stdout, result.stdout[-2000:]


def test_parameters_set_before_configure_are_checked_over_the_parameter_service(ros):
    """`ros2 param set` on a node not configured yet (autostart false): a bad value is refused."""
    import rclpy
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient

    detector = detector_node(ros, UNTRAINED, node_name="waiting_detector", namespace="/perception")
    tester = ros.add_node(rclpy.create_node("param_set_tester", context=ros.context))
    client = AsyncParameterClient(tester, "/perception/waiting_detector")
    assert client.wait_for_services(timeout_sec=60.0), "the node's parameter services"

    def set_one(name: str, value) -> object:
        future = client.set_parameters([Parameter(name, value=value)])
        wait_for(future.done, 60.0, f"the answer to setting {name}")
        return future.result().results[0]

    before = detector.get_parameter("conf_threshold").value
    refused = set_one("conf_threshold", "high")
    assert not refused.successful
    assert "parameter 'conf_threshold' must be a finite number, got 'high'" in refused.reason
    assert detector.get_parameter("conf_threshold").value == before
    refused = set_one("publish_dehazed", "maybe")
    assert not refused.successful
    assert "'publish_dehazed' must be true or false, got 'maybe'" in refused.reason
    refused = set_one("classes", 5)
    assert not refused.successful and "'classes' must be a list of strings" in refused.reason
    assert set_one("conf_threshold", 0.42).successful
    from rclpy.lifecycle import TransitionCallbackReturn

    assert detector.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert detector._settings["conf_threshold"] == pytest.approx(0.42)


# Each case in its own namespace: a process of the previous case may linger in discovery.
@pytest.mark.parametrize(
    ("namespace", "key"), [("/robot1", "/robot1/fog_detector"), ("/robot2", "/**")]
)
def test_untrained_params_file_keyed_by_the_real_name_reaches_a_renamed_node_on_sim_time(
    ros, tmp_path, namespace, key
):
    """`detector_node --ros-args -r __ns:=/robot1 -r __node:=fog_detector --params-file x.yaml`
    with `use_sim_time: true` in the file, replaying a 2020 bag with its /clock."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    params_file = tmp_path / "robot1.yaml"
    params_file.write_text(
        f'"{key}":\n'
        "  ros__parameters:\n"
        "    use_sim_time: true\n"
        "    image_topics: ['front/image_raw']\n"
        "    weights: ''\n"
        "    allow_untrained_weights: true\n"
        "    input_size: [128]\n"
        "    diagnostics_period_s: 0.2\n"
    )
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "detector_node"), "--ros-args",
         "-r", f"__ns:={namespace}", "-r", "__node:=fog_detector",
         "--params-file", str(params_file)],
        env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        tester = ros.add_node(rclpy.create_node("params_file_tester", context=ros.context))
        detections: list = []
        tester.create_subscription(
            Detection2DArray, f"{namespace}/front/detections", detections.append, _reliable()
        )
        diagnostics: list = []
        tester.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
        clock = tester.create_publisher(Clock, "/clock", 10)
        ticks = [0]

        def tick() -> None:
            # 50 ms of the recording per tick, whatever the wall clock does.
            ticks[0] += 1
            message = Clock()
            message.clock.sec, message.clock.nanosec = divmod(
                RECORDED_START_NS + ticks[0] * 50_000_000, 1_000_000_000
            )
            clock.publish(message)

        tester.create_timer(0.05, tick)
        camera = tester.create_publisher(Image, f"{namespace}/front/image_raw", _reliable(5))
        wait_for(lambda: camera.get_subscription_count() >= 1, 60.0, "the node process")
        # Again every second until answered: the node may still be warming up its model.
        tester.create_timer(1.0, lambda: camera.publish(_frame(RECORDED_START_NS + 1, "front")))
        wait_for(lambda: detections, 90.0, f"detections on {namespace}/front/detections")
        assert _stamp_ns(detections[0].header) == RECORDED_START_NS + 1
        name = f"fog_detector: {namespace}/front/image_raw"

        def status_of_camera():
            for array in reversed(list(diagnostics)):
                for status in array.status:
                    if status.name == name:
                        return array, {pair.key: pair.value for pair in status.values}
            return None

        _wait_for_diagnostics_named(diagnostics, {name})
        array, values = status_of_camera()
        # The file's use_sim_time reached the node: its diagnostics run on the bag's /clock.
        assert values["latency_clock"] == "ros (use_sim_time)"
        stamp_ns = _stamp_ns(array.header)
        assert RECORDED_START_NS < stamp_ns < RECORDED_START_NS + 3600 * 1_000_000_000
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
        assert process.returncode == 0, output[-2000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_misspelt_parameters_from_the_command_line_and_a_params_file_are_named(tmp_path):
    """rclpy drops values for names the node does not declare: a typo kept the default."""
    params_file = tmp_path / "typo.yaml"
    params_file.write_text(
        "/robot3/fog_detector:\n  ros__parameters:\n    tracking:\n      min_hit: 2\n"
    )
    # weights '' without allow_untrained_weights: configure fails and the process ends at once.
    result = _run_node_process(
        "-r", "__ns:=/robot3", "-r", "__node:=fog_detector", "--params-file", str(params_file),
        "-p", "weights:=''", "-p", "conf_treshold:=0.6",
    )  # fmt: skip
    assert result.returncode == 1, result.stdout[-2000:]
    assert (
        "2 parameter(s) given for this node are not its own and are ignored: "
        "conf_treshold (did you mean conf_threshold?), "
        "tracking.min_hit (did you mean tracking.min_hits?)"
    ) in result.stdout, result.stdout[-2000:]


def test_a_command_line_value_rcl_drops_for_the_params_files_is_named(repo_root):
    """rcl keeps the params file's value when -p gives another kind: it ran silently with it."""
    # weights '' without allow_untrained_weights: configure fails and the process ends at once.
    result = _run_node_process(
        "--params-file", str(repo_root / "config" / "detect.yaml"),
        "-p", "weights:=''", "-p", "publish_dehazed:=maybe", "-p", "max_batch_wait_ms:=5",
    )  # fmt: skip
    assert result.returncode == 1, result.stdout[-2000:]
    assert "-p publish_dehazed:='maybe' did not reach the node, which runs with True" in (
        result.stdout
    ), result.stdout[-2000:]
    assert "max_batch_wait_ms" not in result.stdout  # an integer for a double does arrive

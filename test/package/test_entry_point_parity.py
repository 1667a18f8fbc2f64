"""One frame, one answer: the entry points give the same detections for the same settings.

Users evaluate offline (`bag run`, `predict`, the Python API) and deploy the node; with the same
weights, frames and settings every path must find the same boxes, scores, classes and tracks.
Real weights (the demo checkpoint) on real frames of OpenCV's vtest.avi where it is cached.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.wait import wait_for

from togethernet_ros.bag.bag_writer import BagWriter
from togethernet_ros.bag.detection_messages import DecodedDetections, message_to_detections
from togethernet_ros.bag.image_codec import IMAGE_TYPE, encode_image_message, make_header
from togethernet_ros.bag.vision_msgs_definitions import create_typestore
from togethernet_ros.cli import main
from togethernet_ros.inference.factory import create_detector, default_cache_dir

WEIGHTS = "models/togethernet_vtest_384.pt"
TOPIC = "/cam/image_raw"
START_NS = 1_700_000_000_000_000_000
PERIOD_NS = 100_000_000
# Two sections apply to the node (/detector): `/**` for what a robot's nodes share and the
# node's own; rcl merges them, the later winning. `/other` and `/*/detector` do not apply.
PARAMS = """\
/**:
  ros__parameters:
    device: cpu
    conf_threshold: 0.45
    input_size: [384, 512]
    tracking:
      min_hits: 2
detector:
  ros__parameters:
    image_topics: ["/cam/image_raw"]
    nms_threshold: 0.6
    publish_dehazed: false
    tracking:
      max_misses: 2
/other:
  ros__parameters:
    conf_threshold: 0.9
/*/detector:
  ros__parameters:
    input_size: [256, 256]
"""


def _vtest_frames(count: int, step: int = 3) -> list[np.ndarray]:
    """Every `step`-th frame of the cached vtest.avi from frame 600 (skip when not cached)."""
    video = default_cache_dir() / "vtest.avi"
    if not video.is_file():
        pytest.skip(f"the sample video is not cached at {video} (togethernet demo-data fetches it)")
    capture = cv2.VideoCapture(str(video))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 600)
    frames = []
    for index in range(count * step):
        ok, frame = capture.read()
        assert ok, f"cannot read frame {600 + index} of {video}"
        if index % step == 0:
            frames.append(frame)
    capture.release()
    return frames


def _write_bag(path: Path, frames: list[np.ndarray]) -> Path:
    typestore = create_typestore()
    with BagWriter(path, storage="mcap", typestore=typestore) as writer:
        for index, frame in enumerate(frames):
            stamp = START_NS + index * PERIOD_NS
            message = encode_image_message(
                typestore, frame, make_header(typestore, stamp, "cam"), "bgr8"
            )
            writer.write(TOPIC, IMAGE_TYPE, stamp, message)
    return path


def _bag_detections(path: Path, topic: str, class_names: tuple[str, ...]) -> list:
    from rosbags.highlevel import AnyReader

    with AnyReader([path]) as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        return [
            message_to_detections(reader.deserialize(raw, c.msgtype), class_names)
            for c, _, raw in reader.messages(connections=connections)
        ]


def _assert_same(offline: DecodedDetections, online: DecodedDetections, what: str) -> None:
    assert offline.stamp_ns == online.stamp_ns, what
    assert len(offline) == len(online), f"{what}: {len(offline)} offline, {len(online)} node"
    np.testing.assert_allclose(offline.boxes, online.boxes, atol=1e-3, err_msg=what)
    np.testing.assert_allclose(offline.scores, online.scores, atol=1e-5, err_msg=what)
    assert offline.class_ids.tolist() == online.class_ids.tolist(), what
    assert offline.track_ids.tolist() == online.track_ids.tolist(), what


def _node_outputs(ros, params: Path, frames: list[np.ndarray]) -> tuple[dict, tuple]:
    """What a real detector node configured by ``params`` publishes for ``frames``, one by one.

    Returns the received Detection2DArray messages by output name and the node's class names.
    """
    import rclpy
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    from togethernet_ros.ros.detector_node import DetectorNode

    node = DetectorNode(
        context=ros.context,
        cli_args=["--ros-args", "--params-file", str(params), "-p", f"weights:={WEIGHTS}"],
    )
    ros.add_node(node)
    assert list(node.get_parameter("input_size").value) == [384, 512], "rcl merged /**"
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    class_names = tuple(node._class_names)
    tester = ros.add_node(rclpy.create_node("parity_tester", context=ros.context))
    received: dict[str, list] = {"detections": [], "detections_raw": []}
    lock = threading.Lock()
    reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)

    def keep(name: str):
        def store(message) -> None:
            with lock:
                received[name].append(message)

        return store

    for name in received:
        tester.create_subscription(Detection2DArray, f"/cam/{name}", keep(name), reliable)
    publisher = tester.create_publisher(Image, TOPIC, reliable)
    camera = node._cameras[TOPIC]
    wait_for(
        lambda: (
            publisher.get_subscription_count() >= 1
            and camera.detections.get_subscription_count() >= 1
            and camera.detections_raw.get_subscription_count() >= 1
        ),
        60.0,
        "the node and the test to connect",
    )
    for index, frame in enumerate(frames):
        message = Image()
        message.header.frame_id = "cam"
        stamp = divmod(START_NS + index * PERIOD_NS, 1_000_000_000)
        message.header.stamp.sec, message.header.stamp.nanosec = stamp
        message.height, message.width = frame.shape[:2]
        message.encoding, message.step = "bgr8", frame.shape[1] * 3
        message.data = frame.tobytes()
        publisher.publish(message)
        # One frame at a time: the live node drops a waiting frame when a newer one comes.
        wait_for(
            lambda n=index + 1: all(len(got) >= n for got in received.values()),
            120.0,
            f"the node's outputs for frame {index}",
        )
    return received, class_names


def _assert_bag_run_matches(output: Path, received: dict, class_names: tuple, count: int) -> None:
    for name, online in received.items():
        offline = _bag_detections(output, f"/cam/{name}", class_names)
        assert len(offline) == len(online) == count, name
        for index, (written, message) in enumerate(zip(offline, online, strict=True)):
            decoded = message_to_detections(message, class_names)
            _assert_same(written, decoded, f"{name} of frame {index}")


@pytest.mark.ros
def test_bag_run_and_the_node_give_the_same_detections_and_tracks_from_one_params_file(
    ros, tmp_path
):
    """`bag run --params-file F` writes what `detector_node --params-file F` publishes.

    Was: `bag run` read only the first section naming the node (`detector:`), so the file's
    `/**:` settings (threshold, input size, tracking) configured the node but not `bag run`.
    """
    frames = _vtest_frames(8)
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS)
    bag = _write_bag(tmp_path / "bag", frames)
    output = tmp_path / "out"
    command = ["bag", "run", str(bag), "--output", str(output), "--params-file", str(params)]
    assert main([*command, "--weights", WEIGHTS, "--no-dehazed", "--no-copy-inputs"]) == 0

    received, class_names = _node_outputs(ros, params, frames)
    _assert_bag_run_matches(output, received, class_names, len(frames))
    raw = [message_to_detections(m, class_names) for m in received["detections_raw"]]
    assert min(float(d.scores.min(initial=1.0)) for d in raw) >= 0.45, "the /** threshold"
    assert sum(len(d) for d in raw) > 0, "the demo weights find people on these frames"
    tracked = [message_to_detections(m, class_names) for m in received["detections"]]
    assert len(tracked[0]) == 0 and len(tracked[1]) > 0, "min_hits 2 from the /** section"


@pytest.mark.ros
def test_bag_run_with_tracking_off_writes_what_the_node_publishes_with_tracking_off(ros, tmp_path):
    """`tracking.enabled: false`: `detections` is the unsmoothed detections, no track ids.

    Was: `bag run` dropped `tracking.enabled` and always tracked, so its `detections` held
    smoothed boxes with track ids (none in the first min_hits frames) where the node published
    every detection at once; `bag eval` then lumped a topic without ids into one track.
    """
    frames = _vtest_frames(6)
    params = tmp_path / "params.yaml"
    # In the node's own section, beside its other tracking keys.
    params.write_text(PARAMS.replace("max_misses: 2\n", "max_misses: 2\n      enabled: false\n"))
    bag = _write_bag(tmp_path / "bag", frames)
    output = tmp_path / "out"
    command = ["bag", "run", str(bag), "--output", str(output), "--params-file", str(params)]
    assert main([*command, "--weights", WEIGHTS, "--no-dehazed", "--no-copy-inputs"]) == 0

    received, class_names = _node_outputs(ros, params, frames)
    _assert_bag_run_matches(output, received, class_names, len(frames))
    written = _bag_detections(output, "/cam/detections", class_names)
    raw = _bag_detections(output, "/cam/detections_raw", class_names)
    assert len(written[0]) > 0, "no min_hits wait: frame 0's people are published at once"
    for smoothed, unsmoothed in zip(written, raw, strict=True):
        assert (smoothed.track_ids == -1).all(), "no track ids without a tracker"
        np.testing.assert_array_equal(smoothed.boxes, unsmoothed.boxes)
        np.testing.assert_array_equal(smoothed.scores, unsmoothed.scores)

    metrics = tmp_path / "metrics.json"
    assert main(["bag", "eval", str(output), "--output", str(metrics)]) == 0
    camera = json.loads(metrics.read_text())["cameras"]["/cam"]
    # Same boxes in both topics: the same flicker, chained by IoU, not one track -1.
    assert camera["smoothed"]["consistency"] == camera["raw"]["consistency"], camera


def test_the_python_api_detects_as_predict_does_with_the_same_weights(tmp_path, repo_root):
    """`create_detector(W).detect` and `togethernet predict --weights W`, both at defaults.

    Was: the API ran 640x640 where predict runs the size the checkpoint records (384x384 for
    the demo weights), so the same frame gave other boxes.
    """
    frame = _vtest_frames(1)[0]
    source = tmp_path / "frame.png"
    assert cv2.imwrite(str(source), frame)
    weights = str(repo_root / WEIGHTS)
    output = tmp_path / "pred"
    command = ["predict", "--weights", weights, "--source", str(source), "--output", str(output)]
    assert main([*command, "--device", "cpu", "--no-dehazed", "--no-annotated"]) == 0
    predicted = json.loads((output / "detections.json").read_text())

    detector = create_detector(weights)
    try:
        assert list(detector.input_size) == predicted["input_size"]
        found = detector.detect([frame])[0].detections
    finally:
        detector.close()
    records = predicted["images"][0]["detections"]
    assert len(records) == len(found) > 0
    # detections.json keeps boxes to 0.01 px and scores to 1e-5.
    boxes = np.array([record["box_xyxy"] for record in records])
    np.testing.assert_allclose(boxes, found.boxes, atol=0.006)
    np.testing.assert_allclose([r["score"] for r in records], found.scores, atol=6e-6)
    assert [r["class_id"] for r in records] == found.class_ids.tolist()


def test_the_python_api_runs_an_onnx_file_at_its_exported_size_as_predict_does(tmp_path):
    """An existing ONNX file without an input size: its exported size, in the API and predict.

    Was: the API asked for 640x640 unless told otherwise, and refused a file exported at
    another size ("input size (640, 640) requested but ... was exported for ...").
    """
    onnx = tmp_path / "model.onnx"
    options = {"backend": "onnxruntime", "allow_untrained": True, "conf_threshold": 0.05}
    create_detector(None, input_size=(128, 256), onnx_path=onnx, **options).close()
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (96, 160, 3), dtype=np.uint8)
    cv2.rectangle(frame, (30, 20), (90, 80), (20, 30, 220), -1)
    source = tmp_path / "frame.png"
    assert cv2.imwrite(str(source), frame)
    output = tmp_path / "pred"
    command = ["predict", "--backend", "onnxruntime", "--onnx", str(onnx), "--allow-untrained"]
    command += ["--source", str(source), "--output", str(output), "--conf", "0.05"]
    assert main([*command, "--device", "cpu", "--no-dehazed", "--no-annotated"]) == 0
    predicted = json.loads((output / "detections.json").read_text())

    detector = create_detector(None, onnx_path=onnx, **options)
    try:
        assert detector.input_size == (128, 256) and predicted["input_size"] == [128, 256]
        found = detector.detect([frame])[0].detections
    finally:
        detector.close()
    records = predicted["images"][0]["detections"]
    assert len(records) == len(found)
    boxes = np.array([record["box_xyxy"] for record in records]).reshape(-1, 4)
    np.testing.assert_allclose(boxes, found.boxes, atol=0.006)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", ": expected a mapping of node names to ros__parameters"),
        (
            "/front/detector:\n  ros__parameters:\n    conf_threshold: 0.4\n",
            "has no 'ros__parameters:' section for the node /detector",
        ),
    ],
)
def test_a_params_file_bag_run_cannot_use_is_one_error_line(tmp_path, capsys, text, message):
    """Was: a YAML list ended `bag run` with an AttributeError traceback."""
    bag = _write_bag(tmp_path / "bag", [np.zeros((32, 48, 3), np.uint8)])
    params = tmp_path / "params.yaml"
    params.write_text(text)
    output = tmp_path / "out"
    assert (
        main(["bag", "run", str(bag), "--output", str(output), "--params-file", str(params)]) == 2
    )
    error = capsys.readouterr().err
    assert error.startswith(f"bag run: params file {params}"), error
    assert message in error.splitlines()[0], error
    assert "Traceback" not in error and not output.exists()


def test_bag_run_with_tracking_off_annotates_and_writes_the_unsmoothed_detections(tmp_path):
    """Tracking off: `detections` equals `detections_raw` from frame 0, and the debug image.

    Was: `tracking.enabled: false` was dropped, so frame 0's `detections` was empty (the
    tracker's min_hits wait) and later frames carried smoothed boxes with track ids.
    """
    from rosbags.highlevel import AnyReader

    from togethernet_ros.bag.image_codec import decode_image_message
    from togethernet_ros.vision.detections import Detections
    from togethernet_ros.vision.draw import draw_detections

    frames = _vtest_frames(2)
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS.replace("max_misses: 2\n", "max_misses: 2\n      enabled: false\n"))
    bag = _write_bag(tmp_path / "bag", frames)
    output = tmp_path / "out"
    command = ["bag", "run", str(bag), "--output", str(output), "--params-file", str(params)]
    assert main([*command, "--weights", WEIGHTS, "--no-dehazed", "--annotated"]) == 0

    detector = create_detector(WEIGHTS, device="cpu")
    class_names = tuple(detector.class_names)
    detector.close()
    written = _bag_detections(output, "/cam/detections", class_names)
    raw = _bag_detections(output, "/cam/detections_raw", class_names)
    assert len(written) == len(raw) == len(frames)
    assert len(written[0]) > 0, "the demo weights find people on frame 0, published at once"
    for smoothed, unsmoothed in zip(written, raw, strict=True):
        assert (smoothed.track_ids == -1).all(), smoothed.track_ids
        np.testing.assert_array_equal(smoothed.boxes, unsmoothed.boxes)
        np.testing.assert_array_equal(smoothed.scores, unsmoothed.scores)
    with AnyReader([output]) as reader:
        connections = [c for c in reader.connections if c.topic == "/cam/debug_image"]
        drawn = [
            decode_image_message(reader.deserialize(raw_bytes, c.msgtype))
            for c, _, raw_bytes in reader.messages(connections=connections)
        ]
    assert len(drawn) == len(frames)
    for image, frame, found in zip(drawn, frames, written, strict=True):
        boxes = Detections(found.boxes.astype(np.float32), found.scores, found.class_ids)
        np.testing.assert_array_equal(image, draw_detections(frame, boxes, class_names))


def test_a_tracking_enabled_that_is_not_a_bool_is_one_error_line(tmp_path, capsys):
    """The node takes `tracking.enabled` as a bool; a quoted 'false' must not mean true."""
    bag = _write_bag(tmp_path / "bag", [np.zeros((32, 48, 3), np.uint8)])
    params = tmp_path / "params.yaml"
    params.write_text("detector:\n  ros__parameters:\n    tracking:\n      enabled: 'false'\n")
    output = tmp_path / "out"
    command = ["bag", "run", str(bag), "--output", str(output), "--params-file", str(params)]
    assert main(command) == 2
    error = capsys.readouterr().err
    expected = f"bag run: params file {params}: tracking.enabled must be true or false, got 'false'"
    assert error.strip() == expected, error
    assert not output.exists()


def test_tracking_settings_are_checked_with_tracking_off_as_the_node_checks_them(tmp_path, capsys):
    """The node refuses a bad tracking.* value whether or not it tracks; bag run ran on."""
    bag = _write_bag(tmp_path / "bag", [np.zeros((32, 48, 3), np.uint8)])
    params = tmp_path / "params.yaml"
    params.write_text(
        "detector:\n  ros__parameters:\n    tracking:\n      enabled: false\n      min_hits: 0\n"
    )
    output = tmp_path / "out"
    command = ["bag", "run", str(bag), "--output", str(output), "--params-file", str(params)]
    assert main(command) == 2
    assert "min_hits" in capsys.readouterr().err
    assert not output.exists()

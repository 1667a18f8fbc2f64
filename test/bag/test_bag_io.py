"""Round trips through real rosbag2 files, image codecs and vision_msgs registration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader
from rosbags.rosbag2 import Reader
from rosbags.typesys import get_types_from_msg

from togethernet_ros.bag.bag_reader import BagReader
from togethernet_ros.bag.bag_writer import BagWriter
from togethernet_ros.bag.detection_messages import detections_to_message, message_to_detections
from togethernet_ros.bag.image_codec import (
    ImageDecodeError,
    decode_compressed_message,
    decode_image_message,
    encode_compressed_message,
    encode_image_message,
    make_header,
)
from togethernet_ros.bag.output_topics import (
    camera_namespace,
    check_distinct_outputs,
    output_topics,
)
from togethernet_ros.bag.vision_msgs_definitions import (
    DETECTION2D_ARRAY,
    VISION_MSGS_DEFINITIONS,
    create_typestore,
)

from .bag_samples import START_NS, scene

REPO = Path(__file__).resolve().parents[2]


def _parsed(text: str, name: str) -> dict:
    return {key: fields for key, (_, fields) in get_types_from_msg(text, name).items()}


def test_vision_msgs_definitions_equal_the_tools_msg_files():
    msg_dir = REPO / "tools" / "vision_msgs" / "msg"
    if not msg_dir.is_dir():
        pytest.skip("tools/vision_msgs/msg not present in this checkout")
    files = {f"vision_msgs/msg/{p.stem}": p.read_text() for p in msg_dir.glob("*.msg")}
    assert set(files) == set(VISION_MSGS_DEFINITIONS)
    for name, text in VISION_MSGS_DEFINITIONS.items():
        assert _parsed(text, name) == _parsed(files[name], name), name


def test_detection2d_array_hash_equals_upstream_vision_msgs():
    typestore = create_typestore()
    assert typestore.hash_rihs01(DETECTION2D_ARRAY) == (
        "RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968"
    )


@pytest.mark.parametrize("encoding", ["bgr8", "rgb8", "bgra8", "rgba8", "mono8"])
def test_raw_image_round_trip(encoding):
    typestore = create_typestore()
    bgr = scene(3)
    stored = {
        "bgr8": bgr,
        "rgb8": bgr[:, :, ::-1],
        "bgra8": np.dstack([bgr, np.full(bgr.shape[:2], 255, np.uint8)]),
        "rgba8": np.dstack([bgr[:, :, ::-1], np.zeros(bgr.shape[:2], np.uint8)]),
        "mono8": bgr[:, :, 1],
    }[encoding]
    message = encode_image_message(
        typestore, np.ascontiguousarray(stored), make_header(typestore, 0, "f"), encoding
    )
    raw = typestore.serialize_cdr(message, "sensor_msgs/msg/Image")
    decoded = typestore.deserialize_cdr(raw, "sensor_msgs/msg/Image")
    as_bgr = decode_image_message(decoded, "bgr")
    as_rgb = decode_image_message(decoded, "rgb")
    expected = np.repeat(bgr[:, :, 1:2], 3, axis=2) if encoding == "mono8" else bgr
    np.testing.assert_array_equal(as_bgr, expected)
    np.testing.assert_array_equal(as_rgb, expected[:, :, ::-1])


def test_raw_image_with_row_padding_and_bad_sizes():
    typestore = create_typestore()
    bgr = scene(1, height=5, width=7)
    padded = np.zeros((5, 7 * 3 + 3), np.uint8)
    padded[:, :21] = bgr.reshape(5, 21)
    message = typestore.types["sensor_msgs/msg/Image"](
        header=make_header(typestore, 0, ""),
        height=5,
        width=7,
        encoding="bgr8",
        is_bigendian=0,
        step=24,
        data=padded.reshape(-1),
    )
    np.testing.assert_array_equal(decode_image_message(message), bgr)
    message.data = message.data[:50]
    with pytest.raises(ImageDecodeError, match="needs at least"):
        decode_image_message(message)
    message.encoding = "16UC1"
    with pytest.raises(ImageDecodeError, match="unsupported Image encoding '16UC1'"):
        decode_image_message(message)


@pytest.mark.parametrize("image_format", ["jpeg", "png"])
def test_compressed_round_trip(image_format):
    typestore = create_typestore()
    bgr = scene(2)
    message = encode_compressed_message(typestore, bgr, make_header(typestore, 0, ""), image_format)
    decoded = decode_compressed_message(message, "rgb")
    error = np.abs(decoded[:, :, ::-1].astype(int) - bgr.astype(int)).mean()
    assert error < (3.0 if image_format == "jpeg" else 1e-9)
    whole = message.data
    # Half a JPEG decodes "successfully" in libjpeg (grey rows below the cut): refused as
    # truncated. A PNG cut short fails in the decoder itself.
    message.data = whole[: len(whole) // 2]
    cut = "truncated JPEG" if image_format == "jpeg" else "could not be decoded"
    with pytest.raises(ImageDecodeError, match=cut):
        decode_compressed_message(message)
    message.data = np.zeros(64, np.uint8)
    with pytest.raises(ImageDecodeError, match="could not be decoded"):
        decode_compressed_message(message)


def test_output_topic_names_follow_the_node_contract():
    assert camera_namespace("/cam_side/image_raw/compressed") == "/cam_side"
    assert camera_namespace("/image") == ""
    topics = output_topics("/robot/cam_front/image_raw")
    assert topics.detections == "/robot/cam_front/detections"
    assert topics.dehazed == "/robot/cam_front/dehazed/image_raw"
    assert output_topics("/image").detections_raw == "/detections_raw"
    # Relative inputs keep relative outputs, so both follow the node's namespace.
    assert output_topics("image").detections == "detections"
    assert output_topics("cam/image_raw").debug_image == "cam/debug_image"


def test_cameras_sharing_a_namespace_are_refused():
    check_distinct_outputs(["/front/image_raw", "/rear/image_raw/compressed", "image"])
    with pytest.raises(ValueError, match=r"'/front_camera' and '/rear_camera' .* '/detections'"):
        check_distinct_outputs(["/front_camera", "/rear_camera"])
    with pytest.raises(ValueError, match="would both publish on '/cam/detections'"):
        check_distinct_outputs(["/cam/image_raw", "/cam/image_rect"])


@pytest.mark.parametrize(
    ("topics", "looped", "owner"),
    [
        (["/cam/debug_image"], "/cam/debug_image", "/cam/debug_image"),  # fed back by itself
        (["/cam/detections"], "/cam/detections", "/cam/detections"),  # not even an image type
        (["/a/image_raw", "/a/dehazed/image_raw"], "/a/dehazed/image_raw", "/a/image_raw"),
        # Through image_transport's republisher: the debug image again.
        (["/b/debug_image/compressed"], "/b/debug_image/compressed", "/b/debug_image/compressed"),
    ],
)
def test_a_camera_topic_that_is_an_output_of_the_node_is_refused(topics, looped, owner):
    with pytest.raises(ValueError, match=rf"'{looped}' is an output of the node .*'{owner}'"):
        check_distinct_outputs(topics)
    check_distinct_outputs(["/a/image_raw", "/a/dehazed/image_raw_color"])  # only a similar name


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_read_frames_from_both_storage_formats(camera_bag, storage):
    path = camera_bag(storage=storage, frames=5)
    with BagReader(path) as reader:
        assert reader.storage == storage
        assert reader.image_topics == ["/cam_front/image_raw", "/cam_side/image_raw/compressed"]
        assert reader.image_message_count == 10
        frames = list(reader.frames())
    assert not reader.problems
    assert [f.topic for f in frames[:2]] == reader.image_topics
    front = [f for f in frames if f.topic == "/cam_front/image_raw"]
    side = [f for f in frames if f.topic.endswith("compressed")]
    assert [f.stamp_ns - START_NS for f in front] == [i * 100_000_000 for i in range(5)]
    for index, (a, b) in enumerate(zip(front, side, strict=True)):
        np.testing.assert_array_equal(a.image, scene(index))
        np.testing.assert_array_equal(b.image, scene(index))  # png is lossless
    assert front[0].frame_id == "cam_front"


def test_select_one_topic(camera_bag):
    path = camera_bag(frames=3)
    with BagReader(path, image_topics=["/cam_side/image_raw/compressed"]) as reader:
        frames = list(reader.frames("rgb"))
    assert {f.topic for f in frames} == {"/cam_side/image_raw/compressed"}
    np.testing.assert_array_equal(frames[2].image, scene(2)[:, :, ::-1])


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_written_detections_are_readable_by_rosbags_and_mcap(tmp_path, storage):
    typestore = create_typestore()
    path = tmp_path / "dets"
    boxes = np.array([[10, 20, 50, 80], [0.5, 1.5, 4.5, 9.5]], np.float32)
    with BagWriter(path, storage=storage, typestore=typestore) as writer:
        header = make_header(typestore, START_NS + 5, "cam")
        message = detections_to_message(
            typestore,
            header,
            boxes,
            np.array([0.9, 0.4]),
            np.array([2, 0]),
            ("person", "bicycle", "car"),
            track_ids=np.array([7, 11]),
        )
        writer.write("/cam/detections", DETECTION2D_ARRAY, START_NS, message)
    with Reader(path) as reader:
        [(connection, _timestamp, raw)] = list(reader.messages())
        assert connection.digest.startswith("RIHS01_2142741200")
        decoded = message_to_detections(
            typestore.deserialize_cdr(raw, connection.msgtype), ("person", "bicycle", "car")
        )
    np.testing.assert_allclose(decoded.boxes, boxes)
    assert decoded.class_ids.tolist() == [2, 0]
    assert decoded.track_ids.tolist() == [7, 11]
    np.testing.assert_allclose(decoded.scores, [0.9, 0.4], rtol=1e-6)
    assert decoded.stamp_ns == START_NS + 5
    if storage == "mcap":
        [mcap_file] = path.glob("*.mcap")
        with mcap_file.open("rb") as stream:
            summary = make_reader(stream).get_summary()
        assert [c.topic for c in summary.channels.values()] == ["/cam/detections"]
        assert summary.statistics.message_count == 1


def test_a_jpeg_opencv_raises_on_is_a_decode_error_naming_the_reason():
    from support.oversized_jpeg import jpeg_claiming_size

    typestore = create_typestore()
    header = make_header(typestore, 0, "")
    message = encode_compressed_message(typestore, np.zeros((8, 8, 3), np.uint8), header, "jpeg")
    message.data = np.frombuffer(jpeg_claiming_size(60000, 60000), np.uint8)
    with pytest.raises(ImageDecodeError, match=r"OpenCV refused it.*CV_IO_MAX_IMAGE_PIXELS"):
        decode_compressed_message(message)


def test_ids_and_class_ids_another_tool_wrote_are_read_or_left_unset():
    typestore = create_typestore()
    header = make_header(typestore, START_NS, "cam")
    names = ("person", "bicycle", "car")
    boxes = np.array([[0, 0, 10, 10]] * 5, float)
    message = detections_to_message(typestore, header, boxes, [0.5] * 5, [0] * 5, names)
    written = [("person", "7"), ("2", "-3"), ("²", "²"), ("bus", "--5"), ("1.0", "x")]
    for detection, (class_id, track_id) in zip(message.detections, written, strict=True):
        detection.results[0].hypothesis.class_id = class_id
        detection.id = track_id
    decoded = message_to_detections(message, names)
    assert decoded.class_ids.tolist() == [0, 2, -1, -1, -1]
    assert decoded.track_ids.tolist() == [7, -3, -1, -1, -1]

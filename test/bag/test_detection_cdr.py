"""Detection2DArray CDR encoder against rosbags' serializer (bytes) and rclpy's (fields)."""

from __future__ import annotations

import numpy as np
import pytest

from togethernet_ros.bag.detection_cdr import cdr_string, encode_detection2d_array
from togethernet_ros.bag.detection_messages import class_labels, detections_to_message
from togethernet_ros.bag.image_codec import make_header
from togethernet_ros.bag.vision_msgs_definitions import DETECTION2D_ARRAY, create_typestore

CLASS_NAMES = ("person", "car", "bus", "bicycle", "motorbike")
STAMP_NS = 1_700_000_000_123_456_789


def random_detections(count: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    corners = rng.uniform(0, 1000, (count, 2))
    boxes = np.hstack((corners, corners + rng.uniform(1, 90, (count, 2)))).astype(np.float32)
    scores = rng.uniform(0.3, 1.0, count).astype(np.float32)
    # Class 7 has no name: it travels as "7", as detections_to_message writes it.
    class_ids = rng.choice([0, 1, 2, 3, 4, 7], count)
    return boxes, scores, class_ids


@pytest.mark.parametrize("count", [0, 1, 3, 25])
@pytest.mark.parametrize("frame_id", ["", "c", "cam", "cam_front", "camera_front_left"])
@pytest.mark.parametrize("tracked", [False, True])
def test_bytes_equal_rosbags_serializer(count, frame_id, tracked):
    # String lengths 0..17 put every later field at each possible alignment offset.
    typestore = create_typestore()
    boxes, scores, class_ids = random_detections(count, seed=count)
    track_ids = np.arange(count) * 97 + 3 if tracked else None
    header = make_header(typestore, STAMP_NS, frame_id)
    message = detections_to_message(
        typestore, header, boxes, scores, class_ids, CLASS_NAMES, track_ids
    )
    expected = bytes(typestore.serialize_cdr(message, DETECTION2D_ARRAY))
    encoded = encode_detection2d_array(
        (header.stamp.sec, header.stamp.nanosec),
        frame_id,
        boxes,
        scores,
        class_labels(class_ids, CLASS_NAMES),
        None if track_ids is None else [str(track) for track in track_ids],
    )
    assert encoded == expected


def test_cdr_string_counts_the_terminating_nul():
    assert cdr_string("") == b"\x01\x00\x00\x00\x00"
    assert cdr_string("car") == b"\x04\x00\x00\x00car\x00"


def test_mismatched_lengths_are_refused():
    boxes, scores, _ = random_detections(2, seed=0)
    with pytest.raises(ValueError, match="disagree in length"):
        encode_detection2d_array((0, 0), "cam", boxes, scores, ["car"])
    with pytest.raises(ValueError, match="track ids"):
        encode_detection2d_array((0, 0), "cam", boxes, scores, ["car", "bus"], ["1"])


@pytest.mark.ros
def test_rclpy_reads_the_bytes_back_field_for_field():
    # rclpy's own serializer leaves alignment padding uninitialised, so compare fields.
    serialization = pytest.importorskip("rclpy.serialization")
    from vision_msgs.msg import Detection2DArray

    boxes, scores, class_ids = random_detections(40, seed=5)
    labels = class_labels(class_ids, CLASS_NAMES)
    encoded = encode_detection2d_array(
        (12, 345), "cam_front", boxes, scores, labels, [str(i) for i in range(40)]
    )
    message = serialization.deserialize_message(encoded, Detection2DArray)
    assert (message.header.stamp.sec, message.header.stamp.nanosec) == (12, 345)
    assert message.header.frame_id == "cam_front" and len(message.detections) == 40
    for index, detection in enumerate(message.detections):
        x1, y1, x2, y2 = boxes[index].astype(np.float64)
        assert detection.header.frame_id == "cam_front"
        assert detection.id == str(index)
        assert detection.bbox.center.position.x == (x1 + x2) / 2.0
        assert detection.bbox.center.position.y == (y1 + y2) / 2.0
        assert (detection.bbox.size_x, detection.bbox.size_y) == (x2 - x1, y2 - y1)
        (result,) = detection.results
        assert result.hypothesis.class_id == labels[index]
        assert result.hypothesis.score == float(scores[index])
        assert result.pose.pose.orientation.w == 1.0
    assert len(serialization.serialize_message(message)) == len(encoded)


def test_non_finite_boxes_and_scores_are_left_out():
    # NaN/inf used to be serialized as they were: subscribers got NaN pixel coordinates.
    boxes, scores, class_ids = random_detections(5, seed=4)
    boxes[1, 0] = np.nan
    boxes[3, 2] = np.inf
    scores[4] = np.nan
    labels = class_labels(class_ids, CLASS_NAMES)
    track_ids = ["11", "12", "13", "14", "15"]
    encoded = encode_detection2d_array((1, 2), "cam", boxes, scores, labels, track_ids)
    finite = [0, 2]
    expected = encode_detection2d_array(
        (1, 2),
        "cam",
        boxes[finite],
        scores[finite],
        [labels[i] for i in finite],
        [track_ids[i] for i in finite],
    )
    assert encoded == expected
    untracked = encode_detection2d_array((1, 2), "cam", boxes, scores, labels)
    assert untracked == encode_detection2d_array(
        (1, 2), "cam", boxes[finite], scores[finite], [labels[i] for i in finite]
    )

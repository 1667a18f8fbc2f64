"""`bag eval` truncates boxes to whole pixels only against whole-pixel (VOC XML) ground truth."""

from __future__ import annotations

import json

import numpy as np

from togethernet_ros.bag.bag_writer import BagWriter
from togethernet_ros.bag.detection_messages import detections_to_message
from togethernet_ros.bag.image_codec import IMAGE_TYPE, encode_image_message, make_header
from togethernet_ros.bag.vision_msgs_definitions import DETECTION2D_ARRAY, create_typestore
from togethernet_ros.cli import main

from .bag_samples import START_NS, scene

NAMES = ("person", "car")
# A 4×4 px object at sub-pixel position and a detection exactly on it. Truncated to whole
# pixels the detection becomes [0, 0, 3, 3]: IoU 0.43 with the object, a miss at 0.5.
SMALL_BOX = np.array([[0.9, 0.9, 3.9, 3.9]])


def _bag_with_subpixel_truth(path):
    typestore = create_typestore()
    with BagWriter(path, typestore=typestore) as writer:
        for index in range(3):
            stamp = START_NS + index * 100_000_000
            header = make_header(typestore, stamp, "cam")
            image = encode_image_message(typestore, scene(index), header)
            writer.write("/cam/image_raw", IMAGE_TYPE, stamp, image)
            found = detections_to_message(
                typestore, header, SMALL_BOX, [0.9], [0], NAMES, np.array([1])
            )
            writer.write("/cam/detections", DETECTION2D_ARRAY, stamp, found)
            writer.write("/cam/detections_raw", DETECTION2D_ARRAY, stamp, found)
            truth = detections_to_message(typestore, header, SMALL_BOX, [1.0], [0], NAMES)
            writer.write("/cam/ground_truth", DETECTION2D_ARRAY, stamp, truth)
    return path


def test_ground_truth_from_a_topic_is_scored_without_truncating_detections(tmp_path):
    bag = _bag_with_subpixel_truth(tmp_path / "bag")
    report = tmp_path / "metrics.json"
    argv = ["bag", "eval", str(bag), "--gt-topic", "/cam/ground_truth", "--classes", "person,car"]
    assert main([*argv, "--output", str(report)]) == 0
    raw = json.loads(report.read_text())["cameras"]["/cam"]["raw"]
    assert raw["voc"]["mAP"] == 1.0

"""`bag eval --voc-dir` reads VOC boxes as get_map.py and `togethernet eval` do.

Training's reader clips a box to the image and drops one without width; get_map.py scores the
``<bndbox>`` as written, so `bag eval` gave a lower mAP than `togethernet eval` for the same
boxes. Here a box reaching past the image and a one-pixel-wide (xmin == xmax) object are both
detected exactly: AP 1 as get_map.py scores them, 0 as the clipping reader scored them.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from togethernet_ros.bag.bag_eval import load_voc_ground_truth
from togethernet_ros.bag.bag_writer import BagWriter
from togethernet_ros.bag.detection_messages import detections_to_message
from togethernet_ros.bag.image_codec import IMAGE_TYPE, encode_image_message, make_header
from togethernet_ros.bag.vision_msgs_definitions import DETECTION2D_ARRAY, create_typestore
from togethernet_ros.cli import main
from togethernet_ros.evaluation.voc_ground_truth import read_get_map_boxes
from togethernet_ros.training.data_issues import DataIssues
from togethernet_ros.training.voc_xml import write_voc_xml

from .bag_samples import START_NS, scene

NAMES = ("person", "bicycle", "car", "motorbike", "bus")
WIDTH, HEIGHT = 128, 96
# Frame 0: past the right edge (clipped to x 128, IoU 0.49 with itself); frame 1: no width.
BOXES = [[60.0, 20.0, 200.0, 70.0], [50.0, 10.0, 50.0, 40.0]]
# The node's boxes cover a pixel each way; truncated to whole pixels they equal BOXES.
DETECTED = [[60.0, 20.0, 200.0, 70.0], [50.0, 10.0, 50.5, 40.0]]


def _node_output_bag(path, detected=DETECTED):
    """A camera and the node's raw detections: frame i's one box is ``detected[i]``."""
    typestore = create_typestore()
    with BagWriter(path, typestore=typestore) as writer:
        for index, box in enumerate(detected):
            stamp = START_NS + index * 100_000_000
            header = make_header(typestore, stamp, "cam")
            image = encode_image_message(typestore, scene(index, HEIGHT, WIDTH), header)
            writer.write("/cam/image_raw", IMAGE_TYPE, stamp, image)
            message = detections_to_message(
                typestore, header, np.array([box]), [0.9], [0], NAMES, np.array([-1])
            )
            writer.write("/cam/detections_raw", DETECTION2D_ARRAY, stamp, message)
    return path


def _voc_dir(path):
    for index, box in enumerate(BOXES):
        write_voc_xml(
            path / f"{index:06d}.xml", "", WIDTH, HEIGHT, np.array([box]), np.array([0]), NAMES
        )
    return path


def test_bag_eval_scores_voc_boxes_as_written(tmp_path, capsys):
    bag = _node_output_bag(tmp_path / "bag")
    voc = _voc_dir(tmp_path / "voc")
    report = tmp_path / "metrics.json"
    assert main(["bag", "eval", str(bag), "--voc-dir", str(voc), "--output", str(report)]) == 0
    raw = json.loads(report.read_text())["cameras"]["/cam"]["raw"]
    assert raw["voc"]["num_gt"]["person"] == 2
    assert raw["voc"]["mAP"] == pytest.approx(1.0)
    # Stability needs an object's width: the one without is left out there, not a crash.
    assert raw["stability"]["recall"] == pytest.approx(1.0)
    notes = capsys.readouterr().err
    assert "outside the 128x96 image" in notes and "not clipped" in notes


def test_a_recorded_box_without_area_is_scored_not_a_crash(tmp_path):
    # Another detector's recording may hold one (xmin == xmax); stability used to refuse it.
    bag = _node_output_bag(tmp_path / "bag", detected=BOXES)
    voc = _voc_dir(tmp_path / "voc")
    report = tmp_path / "metrics.json"
    assert main(["bag", "eval", str(bag), "--voc-dir", str(voc), "--output", str(report)]) == 0
    raw = json.loads(report.read_text())["cameras"]["/cam"]["raw"]
    assert raw["voc"]["mAP"] == pytest.approx(1.0)  # as get_map.py: one pixel wide, a hit
    assert raw["stability"]["recall"] == pytest.approx(1.0)  # the box with area


def test_bag_eval_truth_is_what_togethernet_eval_reads(tmp_path):
    voc = _voc_dir(tmp_path / "voc")
    stamps = [START_NS, START_NS + 100_000_000]
    truth, notes = load_voc_ground_truth(voc, "index", stamps, NAMES)
    for index, stamp in enumerate(stamps):
        boxes, labels, difficult = read_get_map_boxes(
            voc / f"{index:06d}.xml", NAMES, WIDTH, HEIGHT, DataIssues()
        )
        np.testing.assert_array_equal(truth[(stamp, 0)].boxes, boxes)
        np.testing.assert_array_equal(truth[(stamp, 0)].class_ids, labels)
        np.testing.assert_array_equal(truth[(stamp, 0)].difficult, difficult)
    np.testing.assert_array_equal(truth[(START_NS, 0)].boxes, [BOXES[0]])
    # Noted once, by eval's reader (the training reader's "box clipped" is not eval's verdict).
    assert len(notes) == 1 and "scored as written" in notes[0]

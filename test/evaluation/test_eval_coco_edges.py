"""COCO AP edge cases against pycocotools itself: nothing detected, crowd-only truth, names."""

import contextlib
import io
import math

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from togethernet_ros.evaluation.coco_map import COCO_STAT_NAMES, evaluate_coco, to_coco_dicts
from togethernet_ros.evaluation.records import ImageDetections, ImageGroundTruth

CLASSES = ("traffic light", "car")


def _pycocotools(truth: dict, detections: dict) -> dict:
    dataset, results = to_coco_dicts(detections, truth, CLASSES)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = dataset
        coco.createIndex()
        evaluator = COCOeval(coco, coco.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {
        name: (math.nan if value < 0 else float(value))
        for name, value in zip(COCO_STAT_NAMES, evaluator.stats, strict=True)
    }


def _same(ours: dict, reference: dict) -> None:
    for name in COCO_STAT_NAMES:
        if math.isnan(reference[name]):
            assert math.isnan(ours[name]), name
        else:
            assert ours[name] == pytest.approx(reference[name], abs=1e-12), name


# One small (20x20) object of each class; a second image with one difficult large car.
TRUTH = {
    "frame 1": ImageGroundTruth([[10, 10, 30, 30], [50, 50, 70, 70]], [0, 1], [], 640, 480),
    "frame 2": ImageGroundTruth([[0, 0, 300, 200]], [1], [True], 640, 480),
}


def test_nothing_detected_scores_zero_only_where_there_is_something_to_find():
    ours = evaluate_coco({}, TRUTH, CLASSES)
    # pycocotools cannot take an empty result list; one detection that matches nothing (a
    # 1x1 box of a class far from every object) is the same as none for every figure.
    stray = {"frame 1": ImageDetections([[600, 400, 601, 401]], [0.01], [0])}
    reference = _pycocotools(TRUTH, stray)
    assert reference["AP"] == 0.0 and math.isnan(reference["AP_large"])
    _same(ours, reference)


def test_nothing_detected_with_only_difficult_objects_is_undefined():
    crowd_only = {"frame 2": TRUTH["frame 2"]}
    ours = evaluate_coco({}, crowd_only, CLASSES)
    assert all(math.isnan(value) for value in ours.values())


def test_class_names_with_spaces_and_image_ids_with_spaces_score_as_pycocotools():
    found = {
        "frame 1": ImageDetections(
            np.array([[10, 10, 30, 31], [52, 50, 70, 70], [200, 200, 220, 220]], float),
            [0.9, 0.8, 0.7],
            [0, 1, 1],
        ),
        "frame 2": ImageDetections([[0, 0, 300, 200]], [0.95], [1]),  # on the difficult car
    }
    ours = evaluate_coco(found, TRUTH, CLASSES)
    # Worked out by hand, not by running the same pycocotools steps again: the traffic light
    # (IoU 400/420 = 0.952) is a hit at all ten IoU thresholds, AP 1; the car (IoU 0.9) at
    # nine of ten, its false positive ranked after it, AP 0.9; the detection on the crowd car
    # is ignored. Both objects are small; there is no medium or large one to score.
    assert ours["AP"] == pytest.approx(0.95) and ours["AP_small"] == pytest.approx(0.95)
    assert ours["AP50"] == pytest.approx(1.0) and ours["AP75"] == pytest.approx(1.0)
    assert math.isnan(ours["AP_medium"]) and math.isnan(ours["AP_large"])
    dataset, results = to_coco_dicts(found, TRUTH, CLASSES)
    assert [c["name"] for c in dataset["categories"]] == ["traffic light", "car"]
    # xywh boxes, 1-based category ids, image ids shared by truth and results.
    assert results[0] == {
        "image_id": 1,
        "category_id": 1,
        "bbox": [10.0, 10.0, 20.0, 21.0],
        "score": 0.9,
    }
    assert {a["iscrowd"] for a in dataset["annotations"] if a["image_id"] == 2} == {1}

"""VOC AP on cases small enough to compute by hand."""

import math

import numpy as np
import pytest

from togethernet_ros.evaluation.records import ImageDetections, ImageGroundTruth
from togethernet_ros.evaluation.voc_map import evaluate_voc, iou_plus_one, voc_ap

CLASSES = ("person", "car")


def _gt(boxes, classes, difficult=None):
    return ImageGroundTruth(np.array(boxes, float), np.array(classes), difficult or [])


def _det(boxes, scores, classes):
    return ImageDetections(np.array(boxes, float), np.array(scores), np.array(classes))


def test_voc_ap_all_point_interpolation():
    # TP, FP, TP, FP with 3 objects: AP = 1/3·1 + 1/3·(2/3) = 5/9 (all-point, not 11-point).
    recall = np.array([1, 1, 2, 2]) / 3
    precision = np.array([1, 1 / 2, 2 / 3, 2 / 4])
    assert voc_ap(recall, precision) == pytest.approx(5 / 9)


def test_iou_uses_plus_one_pixel_convention():
    # 10x10 gt (0..9) vs 10x5 det (0..4 rows): 50 / 100 = 0.5 exactly with +1, 0.444 without.
    assert iou_plus_one(np.array([0, 0, 9, 4.0]), np.array([[0, 0, 9, 9.0]]))[0] == 0.5


def test_evaluate_voc_hand_case_with_duplicate_fp_and_difficult():
    truth = {
        "a": _gt([[0, 0, 9, 9], [20, 20, 29, 29]], [0, 0]),
        "b": _gt([[0, 0, 9, 9], [40, 40, 49, 49]], [0, 0], [False, True]),
    }
    detections = {
        "a": _det([[0, 0, 9, 9], [50, 50, 59, 59], [0, 0, 9, 9]], [0.9, 0.8, 0.6], [0, 0, 0]),
        # The difficult object's detection (score 0.95) is ignored: neither TP nor FP.
        "b": _det([[0, 0, 9, 4], [40, 40, 49, 49]], [0.7, 0.95], [0, 0]),
    }
    result = evaluate_voc(detections, truth, CLASSES)
    assert result["num_gt"] == {"person": 3, "car": 0}
    assert result["ap"]["person"] == pytest.approx(5 / 9)
    # car has no ground truth: AP undefined and not part of the mAP.
    assert result["ap"]["car"] is None
    assert result["mAP"] == pytest.approx(5 / 9)


def test_mean_over_present_classes_and_missing_images():
    truth = {"a": _gt([[0, 0, 9, 9], [0, 0, 19, 19]], [0, 1])}
    detections = {"a": _det([[0, 0, 9, 9]], [0.5], [0]), "unseen": _det([[0, 0, 5, 5]], [0.1], [1])}
    result = evaluate_voc(detections, truth, CLASSES)
    assert result["ap"] == {"person": 1.0, "car": 0.0}
    assert result["mAP"] == 0.5


def test_no_detections_gives_zero_and_no_gt_gives_nan():
    assert evaluate_voc({}, {"a": _gt([[0, 0, 9, 9]], [0])}, CLASSES)["mAP"] == 0.0
    assert math.isnan(evaluate_voc({}, {"a": _gt([], [])}, CLASSES)["mAP"])


def test_unknown_class_id_is_rejected():
    with pytest.raises(ValueError, match="class ids"):
        evaluate_voc({"a": _det([[0, 0, 1, 1]], [1.0], [7])}, {"a": _gt([], [])}, CLASSES)

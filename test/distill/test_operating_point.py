"""precision_recall_at_score: what a fixed score threshold delivers, from the VOC curves."""

from __future__ import annotations

import numpy as np

from togethernet_ros.distill.heldout_report import precision_recall_at_score
from togethernet_ros.evaluation.records import ImageGroundTruth
from togethernet_ros.evaluation.voc_map import evaluate_voc
from togethernet_ros.vision.detections import Detections

NAMES = ("person", "car")


def _metrics() -> dict:
    truth = {
        "a": ImageGroundTruth(
            np.array([[0, 0, 10, 20], [50, 0, 60, 20], [0, 50, 40, 70]], np.float32),
            np.array([0, 0, 1]),
        ),
        "b": ImageGroundTruth(np.array([[0, 0, 10, 20]], np.float32), np.array([0])),
    }
    found = {
        # a: one person hit at 0.9, one at 0.2 (below 0.3); a false car at 0.5, the car missed.
        "a": Detections(
            np.array([[0, 0, 10, 20], [50, 0, 60, 20], [100, 100, 140, 120]], np.float32),
            np.array([0.9, 0.2, 0.5], np.float32),
            np.array([0, 0, 1]),
        ),
        # b: the person hit at 0.4 plus a duplicate at 0.35 (a false positive).
        "b": Detections(
            np.array([[0, 0, 10, 20], [1, 0, 10, 20]], np.float32),
            np.array([0.4, 0.35], np.float32),
            np.array([0, 0]),
        ),
    }
    return evaluate_voc(found, truth, NAMES, return_curves=True)


def test_counts_only_detections_at_or_above_the_score():
    at = precision_recall_at_score(_metrics(), 0.3)
    # Kept: person 0.9 (TP), 0.4 (TP), 0.35 (duplicate, FP), car 0.5 (FP) → 2 TP of 4, 4 GT.
    assert at == {"score": 0.3, "precision": 0.5, "recall": 0.5, "detections": 4}


def test_lower_threshold_adds_the_weak_hit_and_nothing_above_gives_none():
    low = precision_recall_at_score(_metrics(), 0.1)
    assert low["detections"] == 5 and low["precision"] == 0.6 and low["recall"] == 0.75
    none = precision_recall_at_score(_metrics(), 0.95)
    assert none == {"score": 0.95, "precision": None, "recall": 0.0, "detections": 0}

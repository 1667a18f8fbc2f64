"""The node's `classes` filter as plain functions."""

from __future__ import annotations

import numpy as np

from togethernet_ros.vision.class_filter import keep_classes, unknown_classes
from togethernet_ros.vision.detections import Detections

NAMES = ("person", "bicycle", "car")


def _detections(class_ids: list[int]) -> Detections:
    count = len(class_ids)
    offset = np.array([0, 0, 10, 10], dtype=np.float32)
    boxes = np.tile(np.arange(count, dtype=np.float32)[:, None], (1, 4)) + offset
    return Detections(boxes, np.linspace(0.9, 0.5, count), class_ids)


def test_keeps_only_the_named_classes_in_order():
    found = _detections([2, 0, 1, 2, 0])
    kept = keep_classes(found, NAMES, frozenset({"car", "person"}))
    assert kept.class_ids.tolist() == [2, 0, 2, 0]
    np.testing.assert_array_equal(kept.boxes[:, 0], [0, 1, 3, 4])  # the rows themselves
    assert keep_classes(found, NAMES, None) is found
    assert len(keep_classes(found, NAMES, frozenset({"bus"}))) == 0


def test_ids_outside_the_names_are_dropped_not_an_index_error():
    kept = keep_classes(_detections([0, 7, -1]), NAMES, frozenset({"person"}))
    assert kept.class_ids.tolist() == [0]


def test_unknown_names_are_listed_once_the_model_is_known():
    assert unknown_classes(frozenset({"car", "pedestrian", "Car"}), NAMES) == ["Car", "pedestrian"]
    assert unknown_classes(frozenset({"car"}), NAMES) == []
    assert unknown_classes(None, NAMES) == []
    assert unknown_classes(frozenset({"pedestrian"}), ()) == []  # no model yet

"""The detector keeps the tracker's low-score boxes; the raw output is cut back to conf."""

from __future__ import annotations

import numpy as np
import pytest

from togethernet_ros.tracking import Tracker, TrackerConfig
from togethernet_ros.tracking.score_gate import (
    detector_threshold,
    scoring_at_least,
    tracker_config_behind,
)
from togethernet_ros.vision.detections import Detections


def test_the_detector_keeps_down_to_the_lower_of_publish_and_low_stage_thresholds():
    config = TrackerConfig(low_score_threshold=0.1, high_score_threshold=0.5)
    assert detector_threshold(0.3, config) == pytest.approx(0.1)
    # A publish threshold already below the low stage needs nothing lower.
    assert detector_threshold(0.05, config) == pytest.approx(0.05)
    assert detector_threshold(0.3, None) == pytest.approx(0.3)


def test_scoring_at_least_keeps_order_and_the_threshold_itself():
    detections = Detections(
        boxes=np.arange(16, dtype=np.float32).reshape(4, 4),
        # Not in score order: a gate that re-sorted by score would give [1, 0, 3].
        scores=np.array([0.3, 0.9, 0.29, 0.5], dtype=np.float32),
        class_ids=np.array([0, 1, 2, 3]),
    )
    kept = scoring_at_least(detections, np.float32(0.3))
    assert kept.class_ids.tolist() == [0, 1, 3]
    np.testing.assert_array_equal(kept.boxes, detections.boxes[[0, 1, 3]])
    assert scoring_at_least(detections, 0.05) is detections
    assert len(scoring_at_least(Detections.empty(), 0.5)) == 0


def test_tracks_start_only_from_boxes_that_would_be_published():
    config = TrackerConfig(low_score_threshold=0.1, high_score_threshold=0.5, min_hits=1)
    assert tracker_config_behind(0.3, config) is config
    strict = tracker_config_behind(0.7, config)
    assert strict.high_score_threshold == pytest.approx(0.7)
    assert strict.low_score_threshold == pytest.approx(0.1)
    box = Detections(
        boxes=np.array([[10, 10, 60, 90]], dtype=np.float32),
        scores=np.array([0.6], dtype=np.float32),
        class_ids=np.array([0]),
    )
    # 0.6 passes the tracker's own 0.5 but not the publish threshold 0.7: no track from it.
    assert len(Tracker(strict).update(box, 0.0)) == 0
    assert len(Tracker(config).update(box, 0.0)) == 1

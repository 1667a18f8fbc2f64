"""Tracker.last_reset: which reset an update did by its stamp, and the interval that caused it.

The node counts these per camera and warns when gap resets hit consecutive frames (frames of
a camera processed > max_gap_s apart: no track outlives a frame, so with min_hits >= 2 the
smoothed output stays empty); here the tracker's side, plain numpy.
"""

from __future__ import annotations

import numpy as np
import pytest

from togethernet_ros.inference import Detections
from togethernet_ros.tracking import Tracker, TrackerConfig
from togethernet_ros.tracking.tracker import GAP, STAMP_BACK, TrackerReset


def one_person(x: float) -> Detections:
    return Detections(
        boxes=np.float32([[x, 20.0, x + 30.0, 80.0]]),
        scores=np.float32([0.9]),
        class_ids=np.int64([0]),
    )


def test_frames_further_apart_than_max_gap_reset_on_every_frame_and_say_so():
    # 4 cameras at 640x640 on 2 CPU cores: ~1.2 s between one camera's processed frames.
    tracker = Tracker(TrackerConfig(min_hits=2, max_gap_s=1.0))
    published, resets = [], []
    for index in range(4):
        published.append(len(tracker.update(one_person(10.0 + index), 100.0 + 1.2 * index)))
        resets.append(tracker.last_reset)
    assert published == [0, 0, 0, 0]  # min_hits 2 is never reached: the symptom users see
    assert resets[0] is None  # nothing before the first frame
    assert all(reset is not None and reset.reason == GAP for reset in resets[1:])
    assert [reset.interval_s for reset in resets[1:]] == pytest.approx([1.2, 1.2, 1.2])
    assert {reset.max_gap_s for reset in resets[1:]} == {1.0}


def test_a_normal_rate_never_resets_and_publishes_from_min_hits_on():
    tracker = Tracker(TrackerConfig(min_hits=2, max_gap_s=1.0))
    published = []
    for index in range(5):
        published.append(len(tracker.update(one_person(10.0 + index), 100.0 + 0.1 * index)))
        assert tracker.last_reset is None
    assert published == [0, 1, 1, 1, 1]


def test_a_stamp_back_is_told_apart_from_a_gap_and_a_gap_ends_with_the_next_normal_frame():
    tracker = Tracker(TrackerConfig(max_gap_s=1.0))
    tracker.update(one_person(10.0), 50.0)
    tracker.update(one_person(11.0), 40.0)  # a looping bag
    assert tracker.last_reset == TrackerReset(STAMP_BACK, pytest.approx(-10.0), 1.0)
    tracker.update(one_person(12.0), 40.1)
    assert tracker.last_reset is None
    tracker.update(one_person(13.0), 45.0)
    assert tracker.last_reset == TrackerReset(GAP, pytest.approx(4.9), 1.0)
    tracker.reset()  # asked for by the caller: not a reset by stamp
    assert tracker.last_reset is None
    tracker.update(one_person(14.0), 100.0)  # first frame after reset(): no previous stamp
    assert tracker.last_reset is None


def test_a_gap_exactly_max_gap_s_keeps_the_tracks():
    tracker = Tracker(TrackerConfig(min_hits=1, max_gap_s=0.5))
    first = tracker.update(one_person(10.0), 10.0)
    second = tracker.update(one_person(11.0), 10.5)
    assert tracker.last_reset is None
    assert second.track_ids.tolist() == first.track_ids.tolist() == [1]

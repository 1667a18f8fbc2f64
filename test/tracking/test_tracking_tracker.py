"""Tracker behaviour: hysteresis, two-stage association, class consistency, resets, config."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from togethernet_ros.inference import Detections
from togethernet_ros.tracking import TrackedDetections, Tracker, TrackerConfig

DT = 1 / 30


def detections(boxes, scores, class_ids=None) -> Detections:
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    class_ids = np.zeros(len(boxes)) if class_ids is None else class_ids
    return Detections(
        boxes=boxes,
        scores=np.asarray(scores, dtype=np.float32),
        class_ids=np.asarray(class_ids, dtype=np.int64),
    )


def box_at(step: int, x0: float = 100.0, speed: float = 3.0) -> list[float]:
    x = x0 + speed * step
    return [x, 100.0, x + 50.0, 200.0]


def run(tracker: Tracker, frames, start_step: int = 0) -> list[TrackedDetections]:
    return [tracker.update(d, (start_step + i) * DT) for i, d in enumerate(frames)]


def test_track_published_after_min_hits_and_coasts_for_max_misses():
    tracker = Tracker(TrackerConfig(min_hits=3, max_misses=2))
    seen = run(tracker, [detections([box_at(i)], [0.9]) for i in range(3)])
    assert [len(out) for out in seen] == [0, 0, 1]
    track_id = int(seen[2].track_ids[0])
    coasted = run(tracker, [Detections.empty()] * 3, start_step=3)
    assert [len(out) for out in coasted] == [1, 1, 0]
    # While coasting the box keeps moving with the learnt velocity.
    assert coasted[1].boxes[0, 0] > coasted[0].boxes[0, 0] > seen[2].boxes[0, 0]
    assert coasted[0].track_ids.tolist() == [track_id]


def test_track_id_survives_a_miss_and_boxes_follow_motion():
    tracker = Tracker(TrackerConfig(min_hits=2, max_misses=3))
    frames = [detections([box_at(i)], [0.9]) for i in range(20)]
    frames[10] = Detections.empty()
    outs = run(tracker, frames)
    ids = {int(t) for out in outs[1:] for t in out.track_ids}
    assert ids == {1}
    # Within one pixel of the truth once the velocity is learnt, including the coasted frame.
    for step in range(5, 20):
        np.testing.assert_allclose(outs[step].boxes[0], box_at(step), atol=1.0)


def test_low_score_boxes_extend_confirmed_tracks_but_never_start_tracks():
    config = TrackerConfig(high_score_threshold=0.5, low_score_threshold=0.1, max_misses=1)
    tracker = Tracker(config)
    run(tracker, [detections([box_at(i)], [0.9]) for i in range(3)])
    # Fog: the object's score drops to 0.3 for ten frames; far longer than max_misses.
    faded = run(tracker, [detections([box_at(i)], [0.3]) for i in range(3, 13)], start_step=3)
    assert all(out.track_ids.tolist() == [1] for out in faded)
    assert faded[-1].scores[0] == pytest.approx(0.3)
    clutter = Tracker(config)
    outs = run(clutter, [detections([box_at(i, x0=500)], [0.3]) for i in range(10)])
    assert all(len(out) == 0 for out in outs) and clutter.num_tracks == 0
    below_low = run(Tracker(config), [detections([box_at(i)], [0.05]) for i in range(5)])
    assert all(len(out) == 0 for out in below_low)


def test_tracks_keep_their_class():
    tracker = Tracker(TrackerConfig(min_hits=1, max_misses=2))
    first = tracker.update(detections([box_at(0)], [0.9], [2]), 0.0)
    # Same place, other class: the class-2 track coasts, a class-4 track starts.
    second = tracker.update(detections([box_at(1)], [0.9], [4]), DT)
    assert first.class_ids.tolist() == [2]
    assert second.track_ids.tolist() == [1, 2]
    assert second.class_ids.tolist() == [2, 4]


def test_two_crossing_objects_keep_their_ids():
    tracker = Tracker(TrackerConfig(min_hits=1))
    outs = []
    for step in range(40):
        a = box_at(step, x0=0.0, speed=10.0)
        b = box_at(step, x0=400.0, speed=-10.0)
        b[1], b[3] = 130.0, 230.0  # offset vertically so the boxes overlap while crossing
        outs.append(tracker.update(detections([a, b], [0.9, 0.8]), step * DT))
    for out in outs:
        order = np.argsort(out.track_ids)
        assert out.track_ids[order].tolist() == [1, 2]
    # Track 1 always moves right: its x grows every frame, even while the boxes overlap.
    xs = [float(out.boxes[out.track_ids == 1][0, 0]) for out in outs]
    assert np.all(np.diff(xs) > 0)


def test_backward_stamp_and_long_gap_reset_with_fresh_ids():
    tracker = Tracker(TrackerConfig(min_hits=1, max_gap_s=0.5))
    tracker.update(detections([box_at(0)], [0.9]), 10.0)
    assert tracker.update(detections([box_at(1)], [0.9]), 10.0 + DT).track_ids.tolist() == [1]
    looped = tracker.update(detections([box_at(1)], [0.9]), 0.0)  # bag started over
    assert looped.track_ids.tolist() == [2]
    gap = tracker.update(detections([box_at(1)], [0.9]), 0.6)
    assert gap.track_ids.tolist() == [3]
    tracker.reset()
    assert tracker.num_tracks == 0
    assert tracker.update(detections([box_at(1)], [0.9]), 0.0).track_ids.tolist() == [4]


def test_config_can_change_between_frames():
    tracker = Tracker(TrackerConfig(min_hits=5))
    run(tracker, [detections([box_at(i)], [0.9]) for i in range(2)])
    tracker.config = dataclasses.replace(tracker.config, min_hits=3)
    assert len(tracker.update(detections([box_at(2)], [0.9]), 2 * DT)) == 1
    with pytest.raises(TypeError, match="TrackerConfig"):
        tracker.config = {"min_hits": 1}


def test_empty_and_output_types():
    out = Tracker().update(Detections.empty(), 0.0)
    assert len(out) == 0 and out.boxes.shape == (0, 4)
    tracker = Tracker(TrackerConfig(min_hits=1))
    out = tracker.update(detections([box_at(0), box_at(0, x0=400)], [0.9, 0.6], [1, 3]), 0.0)
    assert out.boxes.dtype == np.float32 and out.boxes.shape == (2, 4)
    assert out.scores.dtype == np.float32 and out.class_ids.dtype == np.int64
    assert out.track_ids.dtype == np.int64 and out.track_ids.tolist() == [1, 2]
    assert TrackedDetections.empty().track_ids.shape == (0,)


def malformed(boxes, scores, class_ids) -> Detections:
    """Detections whose arrays were swapped after construction (skips its own checks)."""
    detections = Detections.empty()
    detections.boxes, detections.scores, detections.class_ids = boxes, scores, class_ids
    return detections


def test_bad_input_names_the_problem():
    tracker = Tracker()
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        tracker.update(malformed(np.zeros((2, 3)), np.zeros(2), np.zeros(2)), 0.0)
    with pytest.raises(ValueError, match="one score and class id per box"):
        tracker.update(malformed(np.zeros((2, 4)), np.zeros(3), np.zeros(2)), 0.0)
    with pytest.raises(ValueError, match="stamp must be finite"):
        tracker.update(Detections.empty(), float("nan"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"low_score_threshold": 0.6}, "high_score_threshold must be in"),
        ({"high_score_threshold": 1.5}, "high_score_threshold must be in"),
        ({"low_score_threshold": -0.1}, "low_score_threshold must be in"),
        ({"match_iou": 0.0}, "match_iou must be in"),
        ({"low_score_match_iou": 1.2}, "low_score_match_iou must be in"),
        ({"min_hits": 0}, "min_hits must be >= 1"),
        ({"min_hits": 2.0}, "min_hits must be an integer"),
        ({"max_misses": True}, "max_misses must be an integer"),
        ({"max_misses": -1}, "max_misses must be >= 0"),
        ({"process_noise": 0.0}, "process_noise must be > 0"),
        ({"measurement_noise": float("nan")}, "measurement_noise must be finite"),
        ({"max_gap_s": "1"}, "max_gap_s must be a number"),
    ],
)
def test_config_validation_messages(changes, message):
    with pytest.raises(ValueError, match=message):
        TrackerConfig(**changes)


def test_config_dict_round_trip_and_unknown_keys():
    config = TrackerConfig(min_hits=2, process_noise=0.8)
    assert TrackerConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match=r"unknown TrackerConfig field\(s\) \['min_hit'\]"):
        TrackerConfig.from_dict({"min_hit": 2})


def kalman_state_is_finite(tracker: Tracker) -> bool:
    states = tracker._states
    arrays = (states.position, states.velocity, states.var_position, states.covariance)
    return all(np.isfinite(array).all() for array in (*arrays, states.var_velocity))


def test_non_finite_and_degenerate_detections_are_ignored():
    # A NaN box used to raise ValueError: the frame's real detections were lost with it and
    # an offline bag run stopped; an inf score was published as the track's score; a
    # zero-area box (IoU 0 with everything) started a duplicate track on every frame.
    tracker = Tracker(TrackerConfig(min_hits=1, max_misses=5))
    bad = [
        [np.nan, 100.0, 150.0, 200.0],
        [np.inf, 300.0, 350.0, 400.0],
        [400.0, 100.0, 400.0, 200.0],  # zero width
        [500.0, 200.0, 550.0, 100.0],  # negative height
        [700.0, 100.0, 700.001, 200.0],  # 0.001 px wide: a track clamps it to 1 px (IoU ~0)
        [600.0, 100.0, 650.0, 200.0],  # infinite score below
    ]
    for step in range(4):
        frame = detections([box_at(step), *bad], [0.9, 0.9, 0.9, 0.9, 0.9, 0.9, np.inf])
        out = tracker.update(frame, step * DT)
        assert len(out) == 1 and out.track_ids.tolist() == [1]
        assert np.isfinite(out.boxes).all() and np.isfinite(out.scores).all()
        assert tracker.num_tracks == 1
        assert kalman_state_is_finite(tracker)
    np.testing.assert_allclose(out.boxes[0], box_at(3), atol=1.0)
    coasting = tracker.update(detections(bad, [0.9, 0.9, 0.9, 0.9, 0.9, np.inf]), 4 * DT)
    assert coasting.track_ids.tolist() == [1] and tracker.num_tracks == 1

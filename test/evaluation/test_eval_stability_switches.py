"""ID switches as CLEAR MOT counts them, on sequences worked out by hand."""

import numpy as np
import pytest

from togethernet_ros.evaluation.stability import evaluate_stability

OBJECT = [0.0, 0.0, 100.0, 100.0]


def _run(frames: list[list[tuple[int, list[float]]]], gt=OBJECT, iou_threshold=0.5):
    """``frames``: per frame, the (track id, box) of every prediction; one true object."""
    pred = [np.array([box for _, box in frame], float).reshape(-1, 4) for frame in frames]
    ids = [np.array([track for track, _ in frame], np.int64) for frame in frames]
    truth = [np.array([gt], float)] * len(frames)
    return evaluate_stability(
        truth, pred, [np.array([0])] * len(frames), ids, iou_threshold=iou_threshold
    )


def test_a_duplicate_that_fits_a_little_better_now_and_then_is_no_switch():
    # Track 1 covers the object in every frame (IoU ≥ 0.92); track 2, a duplicate, fits better
    # on odd frames. Re-matching by best IoU alone counted 5 switches in 6 frames.
    frames = [
        [(1, OBJECT if t % 2 == 0 else [4, 4, 104, 104]), (2, [2, 2, 102, 102])] for t in range(6)
    ]
    report = _run(frames)
    assert report.id_switches == 0
    assert report.recall == 1.0 and report.fragment_error == 0.0


def test_a_track_handed_over_to_another_id_is_one_switch():
    frames = [[(1, OBJECT)]] * 3 + [[(2, OBJECT)]] * 3
    assert _run(frames).id_switches == 1


def test_a_track_that_drifts_off_while_another_covers_the_object_is_one_switch():
    # Frame 2: track 1 drifts to IoU 0.33 (below 0.5); track 2 covers the object from then on.
    frames = [
        [(1, OBJECT)],
        [(1, OBJECT), (2, [1, 1, 101, 101])],
        [(1, [50, 0, 150, 100]), (2, [1, 1, 101, 101])],
        [(1, OBJECT), (2, [1, 1, 101, 101])],
    ]
    # Frame 3: track 1 is back, but the object is now track 2's and track 2 still covers it.
    assert _run(frames).id_switches == 1


def test_a_missed_frame_in_between_is_a_fragment_not_a_switch():
    frames = [[(1, OBJECT)], [], [(1, OBJECT)], [(1, OBJECT)]]
    report = _run(frames)
    assert report.id_switches == 0
    assert report.fragment_error == pytest.approx(2 / 3)  # detected → missed → detected
    assert report.recall == pytest.approx(3 / 4)


def test_two_objects_keep_their_tracks_when_the_boxes_cross():
    # Two objects whose true boxes overlap heavily in the middle frame; each track follows
    # its own object and still overlaps the other by more than its own at t=1.
    truth = [
        np.array([[0, 0, 100, 100], [60, 0, 160, 100]], float),
        np.array([[20, 0, 120, 100], [30, 0, 130, 100]], float),
        np.array([[60, 0, 160, 100], [0, 0, 100, 100]], float),
    ]
    pred = [
        np.array([[0, 0, 100, 100], [60, 0, 160, 100]], float),
        np.array([[28, 0, 128, 100], [22, 0, 122, 100]], float),  # each nearer the other
        np.array([[60, 0, 160, 100], [0, 0, 100, 100]], float),
    ]
    ids = [np.array([0, 1])] * 3
    report = evaluate_stability(truth, pred, ids, [np.array([5, 6])] * 3)
    assert report.id_switches == 0

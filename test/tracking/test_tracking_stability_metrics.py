"""Zhang & Wang 2016 stability metrics on hand-built sequences with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from togethernet_ros.evaluation.stability import evaluate_stability


def moving_boxes(num_frames: int, speed: float = 4.0) -> list[np.ndarray]:
    return [
        np.array([[10.0 + speed * t, 20.0, 60.0 + speed * t, 120.0]]) for t in range(num_frames)
    ]


def test_perfect_predictions_score_zero():
    gt = moving_boxes(10)
    report = evaluate_stability(gt, gt, [np.array([7])] * 10, [np.array([3])] * 10)
    assert report.fragment_error == 0.0
    assert report.centre_error == 0.0 and report.scale_ratio_error == 0.0
    assert report.id_switches == 0 and report.recall == 1.0
    assert report.lag_frames == pytest.approx(0.0, abs=1e-12)
    assert report.num_trajectories == 1 and report.stability_error == 0.0


def test_fragments_count_detect_miss_flips():
    gt = moving_boxes(5)
    pred = [gt[0], np.zeros((0, 4)), gt[2], gt[3], np.zeros((0, 4))]
    # detected, missed, detected, detected, missed: 3 flips over 4 transitions
    assert evaluate_stability(gt, pred).fragment_error == pytest.approx(3 / 4)


def test_centre_error_is_std_of_size_normalised_offset():
    gt = moving_boxes(4)  # 50 × 100 boxes
    shifts = [2.0, -2.0, 2.0, -2.0]  # x offsets of ±0.04 box widths → std 0.04
    pred = [g + np.array([s, 0.0, s, 0.0]) for g, s in zip(gt, shifts, strict=True)]
    report = evaluate_stability(gt, pred)
    assert report.centre_error_x == pytest.approx(0.04)
    assert report.centre_error_y == pytest.approx(0.0)
    # a constant offset is bias, not jitter
    biased = [g + np.array([5.0, 0, 5.0, 0]) for g in gt]
    assert evaluate_stability(gt, biased).centre_error == pytest.approx(0.0)


def test_scale_and_ratio_errors():
    gt = [np.array([[0.0, 0.0, 100.0, 100.0]])] * 2
    pred = [np.array([[0.0, 0.0, 100.0, 100.0]]), np.array([[0.0, 0.0, 121.0, 100.0]])]
    report = evaluate_stability(gt, pred)
    # e_s = 1 and 1.1 → std 0.05; e_r = 1 and 1.21 → std 0.105
    assert report.scale_error == pytest.approx(0.05)
    assert report.ratio_error == pytest.approx(0.105)
    assert report.scale_ratio_error == pytest.approx(0.155)


def test_id_switches_and_lag():
    gt = moving_boxes(6, speed=5.0)
    lagging = [g - np.array([5.0, 0, 5.0, 0]) for g in gt]  # one frame behind
    ids = [np.array([1]), np.array([1]), np.array([2]), np.array([2]), np.array([1]), np.array([1])]
    report = evaluate_stability(gt, lagging, pred_ids=ids)
    assert report.id_switches == 2
    assert report.lag_frames == pytest.approx(1.0)
    assert evaluate_stability(gt, lagging).id_switches is None


def test_trajectories_linked_by_iou_without_gt_ids():
    a = moving_boxes(6)
    b = [box + np.array([300.0, 0, 300.0, 0]) for box in moving_boxes(6)]
    gt = [np.concatenate([x, y]) for x, y in zip(a, b, strict=True)]
    pred = [gt[t] if t != 2 else a[t] for t in range(6)]  # b missed once
    report = evaluate_stability(gt, pred)
    assert report.num_trajectories == 2
    assert report.fragment_error == pytest.approx((0 + 2 / 5) / 2)
    assert report.recall == pytest.approx(11 / 12)


def test_nothing_matched_gives_nan_jitter():
    gt = moving_boxes(3)
    report = evaluate_stability(gt, [np.zeros((0, 4))] * 3)
    assert report.fragment_error == 0.0 and report.recall == 0.0
    assert math.isnan(report.centre_error) and math.isnan(report.lag_frames)


def test_bad_input_is_named():
    gt = moving_boxes(2)
    with pytest.raises(ValueError, match="one prediction list per frame"):
        evaluate_stability(gt, gt[:1])
    with pytest.raises(ValueError, match=r"pred_boxes\[1\] must have shape"):
        evaluate_stability(gt, [gt[0], np.zeros((1, 3))])
    with pytest.raises(ValueError, match=r"gt_ids\[0\] has 2 ids for 1 boxes"):
        evaluate_stability(gt, gt, gt_ids=[np.array([1, 2]), np.array([1])])
    with pytest.raises(ValueError, match=r"x2 <= x1"):
        evaluate_stability([np.array([[5.0, 0, 1, 1]])], [np.zeros((0, 4))])

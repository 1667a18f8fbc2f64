"""Hungarian solver and IoU gating against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from togethernet_ros.tracking.assignment import match_by_iou, solve_assignment
from togethernet_ros.tracking.box_geometry import cxcywh_to_xyxy, pairwise_iou, xyxy_to_cxcywh


def _brute_force_total(cost: np.ndarray) -> float:
    if cost.shape[0] > cost.shape[1]:
        cost = cost.T
    n, m = cost.shape
    return min(
        sum(cost[r, c] for r, c in enumerate(cols)) for cols in itertools.permutations(range(m), n)
    )


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (3, 2), (5, 6), (6, 6), (7, 4)])
def test_solve_assignment_is_optimal(shape):
    rng = np.random.default_rng(sum(shape))
    for trial in range(20):
        # Integer costs give many ties, where a sloppy solver goes wrong.
        cost = rng.integers(0, 5, shape).astype(float) if trial % 2 else rng.random(shape)
        rows, cols = solve_assignment(cost)
        assert len(rows) == min(shape)
        assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
        assert np.all(np.diff(rows) > 0)
        assert cost[rows, cols].sum() == pytest.approx(_brute_force_total(cost))


def test_solve_assignment_large_square_beats_greedy():
    rng = np.random.default_rng(3)
    cost = rng.random((40, 40))
    rows, cols = solve_assignment(cost)
    greedy_total, taken = 0.0, set()
    for r in range(40):
        c = min((c for c in range(40) if c not in taken), key=lambda c: cost[r, c])
        taken.add(c)
        greedy_total += cost[r, c]
    assert sorted(cols.tolist()) == list(range(40))
    assert cost[rows, cols].sum() < greedy_total


def test_solve_assignment_rejects_bad_matrices():
    with pytest.raises(ValueError, match="2-D"):
        solve_assignment(np.zeros(3))
    with pytest.raises(ValueError, match="NaN or infinite"):
        solve_assignment(np.array([[0.0, np.nan]]))
    rows, cols = solve_assignment(np.zeros((0, 3)))
    assert len(rows) == len(cols) == 0


def test_match_by_iou_prefers_global_optimum_over_greedy():
    # Greedy would take (0, 0) at 0.9 and leave row 1 with nothing above the gate.
    iou = np.array([[0.9, 0.8], [0.6, 0.1]])
    matches = match_by_iou(iou, 0.3)
    assert matches.pairs.tolist() == [[0, 1], [1, 0]]
    assert len(matches.unmatched_rows) == 0 and len(matches.unmatched_cols) == 0


def test_match_by_iou_respects_gate_and_reports_leftovers():
    iou = np.array([[0.25, 0.0, 0.0], [0.0, 0.7, 0.0], [0.0, 0.6, 0.0]])
    matches = match_by_iou(iou, 0.3)
    assert matches.pairs.tolist() == [[1, 1]]
    assert matches.unmatched_rows.tolist() == [0, 2]
    assert matches.unmatched_cols.tolist() == [0, 2]
    empty = match_by_iou(np.zeros((0, 4)), 0.3)
    assert empty.pairs.shape == (0, 2) and empty.unmatched_cols.tolist() == [0, 1, 2, 3]


def test_match_by_iou_equals_brute_force_on_random_clusters():
    rng = np.random.default_rng(7)
    for _ in range(50):
        iou = rng.random((5, 6)) * (rng.random((5, 6)) < 0.4)
        pairs = match_by_iou(iou, 0.3).pairs
        assert np.all(iou[pairs[:, 0], pairs[:, 1]] >= 0.3)
        best = (0, 0.0)
        for cols in itertools.permutations(range(6), 5):
            chosen = [iou[r, c] for r, c in enumerate(cols) if iou[r, c] >= 0.3]
            best = max(best, (len(chosen), sum(chosen)))
        got = (len(pairs), iou[pairs[:, 0], pairs[:, 1]].sum())
        assert got[0] == best[0] and got[1] == pytest.approx(best[1])


def test_box_conversions_and_iou():
    boxes = np.array([[0.0, 0.0, 10.0, 20.0], [5.0, 10.0, 15.0, 30.0]])
    centre = xyxy_to_cxcywh(boxes)
    assert centre.tolist() == [[5.0, 10.0, 10.0, 20.0], [10.0, 20.0, 10.0, 20.0]]
    np.testing.assert_allclose(cxcywh_to_xyxy(centre), boxes)
    iou = pairwise_iou(boxes, np.concatenate([boxes, [[100, 100, 100, 100]]]))
    # overlap 5 × 10 = 50; union 200 + 200 − 50 = 350; the zero-area box gives 0, not NaN
    np.testing.assert_allclose(iou, [[1.0, 50 / 350, 0.0], [50 / 350, 1.0, 0.0]])

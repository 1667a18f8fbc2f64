"""The assignment solver against brute force and a textbook Hungarian, on every code path.

``solve_assignment`` has two path-search implementations (Python lists for small matrices, numpy
with a Jonker-Volgenant warm start for larger ones); both must give the optimal total, also with
many tied costs and on the gated IoU costs ``match_by_iou`` builds.
"""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from togethernet_ros.tracking.assignment import match_by_iou, solve_assignment


def _hungarian_total(cost: np.ndarray) -> float:
    """Minimum total by the O(n³) Hungarian method with potentials (e-maxx form), rows ≤ cols."""
    if cost.shape[0] > cost.shape[1]:
        cost = cost.T
    n, m = cost.shape
    u, v = np.zeros(n + 1), np.zeros(m + 1)
    owner = np.zeros(m + 1, dtype=np.int64)
    way = np.zeros(m + 1, dtype=np.int64)
    for row in range(1, n + 1):
        owner[0] = row
        col = 0
        slack = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[col] = True
            i = owner[col]
            best, best_col = np.inf, 0
            for j in range(1, m + 1):
                if not used[j]:
                    reduced = cost[i - 1, j - 1] - u[i] - v[j]
                    if reduced < slack[j]:
                        slack[j], way[j] = reduced, col
                    if slack[j] < best:
                        best, best_col = slack[j], j
            for j in range(m + 1):
                if used[j]:
                    u[owner[j]] += best
                    v[j] -= best
                else:
                    slack[j] -= best
            col = best_col
            if owner[col] == 0:
                break
        while col:
            previous = way[col]
            owner[col] = owner[previous]
            col = previous
    return float(sum(cost[owner[j] - 1, j - 1] for j in range(1, m + 1) if owner[j]))


def _brute_force_total(cost: np.ndarray) -> float:
    if cost.shape[0] > cost.shape[1]:
        cost = cost.T
    n, m = cost.shape
    return min(
        sum(cost[r, c] for r, c in enumerate(cols)) for cols in itertools.permutations(range(m), n)
    )


def _check(cost: np.ndarray, expected_total: float) -> None:
    rows, cols = solve_assignment(cost)
    assert len(rows) == min(cost.shape)
    assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
    assert np.all(np.diff(rows) > 0)
    assert cost[rows, cols].sum() == pytest.approx(expected_total, rel=1e-12, abs=1e-9)


def _random_cost(rng: np.random.Generator, shape: tuple[int, int], kind: str) -> np.ndarray:
    if kind == "ties":
        return rng.integers(0, 3, shape).astype(float)
    if kind == "gated":  # what match_by_iou builds: 1 − IoU or one big "infeasible" cost
        iou = rng.random(shape) * (rng.random(shape) < 0.15)
        return np.where(iou >= 0.3, 1.0 - iou, float(min(shape) + 1))
    return rng.random(shape) * 100.0


@pytest.mark.parametrize("kind", ["uniform", "ties", "gated"])
def test_small_matrices_match_brute_force(kind):
    rng = np.random.default_rng(11)
    for _ in range(60):
        n, m = int(rng.integers(1, 7)), int(rng.integers(1, 7))
        cost = _random_cost(rng, (n, m), kind)
        _check(cost, _brute_force_total(cost))


@pytest.mark.parametrize("kind", ["uniform", "ties", "gated"])
@pytest.mark.parametrize("shape", [(20, 30), (30, 20), (40, 40), (45, 70), (70, 45), (90, 90)])
def test_larger_matrices_match_the_hungarian_method(kind, shape):
    # (20, 30) and (30, 20) take the plain-Python search, the others the numpy one.
    rng = np.random.default_rng(sum(shape) + len(kind))
    cost = _random_cost(rng, shape, kind)
    _check(cost, _hungarian_total(cost))


def test_warm_start_leaves_the_numpy_search_something_to_do():
    # A matrix where every row's cheapest column is column 0: the warm start can place one row
    # only, so the path searches (and their potentials) decide the rest.
    rng = np.random.default_rng(4)
    cost = rng.random((40, 40)) + 1.0
    cost[:, 0] = 0.0
    _check(cost, _hungarian_total(cost))


def test_many_tied_costs_are_solved_quickly():
    # 300 × 300 costs of 0, 1 or 2: the former solver settled tied columns one Python step at a
    # time and took ~0.46 s of CPU here; settling a tie run in one step takes ~7 ms.
    cost = np.random.default_rng(5).integers(0, 2, (300, 300)).astype(float)
    started = time.thread_time()
    rows, cols = solve_assignment(cost)
    elapsed = time.thread_time() - started
    assert rows.tolist() == list(range(300)) and sorted(cols.tolist()) == list(range(300))
    assert elapsed < 0.1, f"300×300 tied assignment took {elapsed:.3f} s of CPU"


def test_dense_gated_iou_matches_hungarian_on_the_same_costs():
    # A crowd: 120 tracks × 100 detections, every box overlapping many others. match_by_iou
    # must maximise the gated pair count, then the summed IoU, like one Hungarian solve of
    # the same penalised cost matrix.
    rng = np.random.default_rng(8)
    iou = rng.random((120, 100)) * (rng.random((120, 100)) < 0.3)
    gate = 0.25
    matches = match_by_iou(iou, gate)
    got = iou[matches.pairs[:, 0], matches.pairs[:, 1]]
    assert np.all(got >= gate)
    big = float(min(iou.shape) + 1)
    reference = _hungarian_total(np.where(iou >= gate, 1.0 - iou, big))
    unmatched = min(iou.shape) - len(got)
    assert unmatched * big + (len(got) - got.sum()) == pytest.approx(reference, abs=1e-9)
    assert len(matches.unmatched_rows) == 120 - len(got)
    assert len(matches.unmatched_cols) == 100 - len(got)

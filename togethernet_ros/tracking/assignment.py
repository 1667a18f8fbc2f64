"""Optimal one-to-one assignment (Jonker-Volgenant shortest augmenting paths) and IoU gating.

Own implementation so the tracker needs no SciPy. The solver keeps the Python loop short:

- a warm start (each row's cheapest column, then Jonker & Volgenant's augmenting row reduction)
  assigns most rows without any path search;
- each remaining row runs one Dijkstra search whose steps are whole-row numpy operations, and
  columns that tie at the current distance (integer costs, the gate's single "infeasible" cost)
  are settled together in one step instead of one Python iteration each;
- small matrices (a tracker frame's crowded part, typically under 10 × 10) run the same search
  on Python lists, where numpy's per-call overhead would dominate.

``match_by_iou`` takes the pairs that only see each other directly and runs the solver once on
the remaining, crowded part of the gated IoU graph.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# Up to this many cost entries a search step over Python lists beats numpy's per-call overhead
# (a tracker frame's crowded part is typically well below it).
_PLAIN_PYTHON_MAX_ENTRIES = 1024
# Warm-start budget, in row reductions per row: it ends price wars between rows that want the
# same column (each step may move a price by a tiny amount); the path search finishes the rest.
_ROW_REDUCTION_STEPS_PER_ROW = 4
# Columns tied at the current search distance are settled in one batch from this many on; fewer
# are cheaper one at a time.
_TIE_BATCH_MIN = 8


class IouMatches(NamedTuple):
    """Result of ``match_by_iou``: matched (row, col) pairs and the rows/cols left over."""

    pairs: np.ndarray  # (K, 2) int64, sorted by row
    unmatched_rows: np.ndarray  # (R,) int64
    unmatched_cols: np.ndarray  # (C,) int64


def solve_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost assignment for a rectangular cost matrix (same contract as SciPy's).

    Every row is assigned when rows ≤ cols (otherwise every column). Returns ``(rows, cols)``
    int64 arrays sorted by row. Raises ValueError for a non-2-D or non-finite cost matrix.
    """
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2:
        raise ValueError(f"assignment cost matrix must be 2-D, got shape {cost.shape}")
    if not np.all(np.isfinite(cost)):
        raise ValueError("assignment cost matrix contains NaN or infinite entries")
    transposed = cost.shape[0] > cost.shape[1]
    if transposed:
        cost = cost.T
    n, m = cost.shape
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy()
    if n * m <= _PLAIN_PYTHON_MAX_ENTRIES:
        row_ids, col_ids = _small_shortest_augmenting_paths(cost)
    else:
        # Row-contiguous, so each search step reads one row of memory.
        row_ids, col_ids = _shortest_augmenting_paths(np.ascontiguousarray(cost))
    if transposed:
        row_ids, col_ids = col_ids, row_ids
    order = np.argsort(row_ids, kind="stable")
    return row_ids[order], col_ids[order]


def match_by_iou(iou: np.ndarray, min_iou: float) -> IouMatches:
    """Match rows to columns maximising total IoU among pairs with IoU ≥ ``min_iou``.

    The number of gated pairs is maximised first and then their summed IoU, which is what a
    gated Hungarian matcher (e.g. ByteTrack's ``linear_assignment``) does.
    """
    iou = np.asarray(iou, dtype=np.float64)
    num_rows, num_cols = iou.shape
    if num_rows == 0 or num_cols == 0:
        return IouMatches(
            pairs=np.zeros((0, 2), dtype=np.int64),
            unmatched_rows=np.arange(num_rows, dtype=np.int64),
            unmatched_cols=np.arange(num_cols, dtype=np.int64),
        )
    feasible = iou >= min_iou
    row_degree = feasible.sum(axis=1)
    col_degree = feasible.sum(axis=0)
    # Pairs that only see each other need no solver: a row with one gated column that has no
    # other gated row. (argmax finds that one column; this runs for every camera frame.)
    only_col = feasible.argmax(axis=1)
    exclusive_row = (row_degree == 1) & (col_degree[only_col] == 1)
    matched_rows = np.nonzero(exclusive_row)[0]
    matched_cols = only_col[matched_rows]
    exclusive_col = np.zeros(num_cols, dtype=bool)
    exclusive_col[matched_cols] = True
    crowded_rows = np.nonzero((row_degree > 0) & ~exclusive_row)[0]
    if len(crowded_rows):
        crowded_cols = np.nonzero((col_degree > 0) & ~exclusive_col)[0]
        sub_iou = iou[np.ix_(crowded_rows, crowded_cols)]
        sub_feasible = sub_iou >= min_iou
        # A gated pair costs < 1, so an infeasible pick costing more than a feasible pick for
        # every row makes the solver maximise the number of gated pairs first; those infeasible
        # picks are dropped below. Independent clusters need no separate solves: their rows
        # reach each other's columns only at that cost, after every gated path.
        infeasible_cost = float(min(sub_iou.shape) + 1)
        cost = np.where(sub_feasible, 1.0 - sub_iou, infeasible_cost)
        sel_rows, sel_cols = solve_assignment(cost)
        keep = sub_feasible[sel_rows, sel_cols]
        matched_rows = np.concatenate([matched_rows, crowded_rows[sel_rows[keep]]])
        matched_cols = np.concatenate([matched_cols, crowded_cols[sel_cols[keep]]])
        order = np.argsort(matched_rows, kind="stable")
        matched_rows, matched_cols = matched_rows[order], matched_cols[order]

    row_free = np.ones(num_rows, dtype=bool)
    row_free[matched_rows] = False
    col_free = np.ones(num_cols, dtype=bool)
    col_free[matched_cols] = False
    return IouMatches(
        pairs=np.stack([matched_rows, matched_cols], axis=1).astype(np.int64, copy=False),
        unmatched_rows=np.nonzero(row_free)[0].astype(np.int64, copy=False),
        unmatched_cols=np.nonzero(col_free)[0].astype(np.int64, copy=False),
    )


def _small_shortest_augmenting_paths(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``_shortest_augmenting_paths`` on Python lists, for small matrices (rows ≤ cols).

    Same method without the warm start's row reduction: rows take their cheapest free column,
    the others each run one Dijkstra search over the reduced costs.
    """
    n, m = cost.shape
    table = cost.tolist()
    u = [min(row) for row in table]
    v = [0.0] * m
    row_of_col = [-1] * m
    col_of_row = [-1] * n
    for row in range(n):
        col = table[row].index(u[row])
        if row_of_col[col] < 0:
            row_of_col[col] = row
            col_of_row[row] = col
    infinity = float("inf")
    for start in range(n):
        if col_of_row[start] >= 0:
            continue
        distance = [infinity] * m
        came_from = [0] * m
        done = [False] * m
        settled: list[int] = []
        row = start
        reached = 0.0
        while True:
            costs = table[row]
            offset = reached - u[row]
            nearest = infinity
            col = -1
            for j in range(m):
                if done[j]:
                    continue
                through_row = costs[j] - v[j] + offset
                if through_row < distance[j]:
                    distance[j] = through_row
                    came_from[j] = row
                # The nearest open column; among equals a free one ends the search sooner.
                if distance[j] < nearest or (distance[j] == nearest and row_of_col[j] < 0):
                    nearest = distance[j]
                    col = j
            reached = nearest
            if row_of_col[col] < 0:
                break
            done[col] = True
            settled.append(col)
            row = row_of_col[col]
        u[start] += reached
        for j in settled:
            shift = reached - distance[j]
            u[row_of_col[j]] += shift
            v[j] -= shift
        while True:
            row = came_from[col]
            row_of_col[col] = row
            col_of_row[row], col = col, col_of_row[row]
            if row == start:
                break
    return np.arange(n, dtype=np.int64), np.asarray(col_of_row, dtype=np.int64)


class _DualState(NamedTuple):
    """Partial assignment with dual potentials: cost[i, j] − u[i] − v[j] ≥ 0 everywhere, = 0 on
    assigned pairs, v ≤ 0 and v = 0 on unassigned columns (optimality for rows ≤ cols)."""

    u: np.ndarray  # (n,) row potentials
    v: np.ndarray  # (m,) column potentials
    col_of_row: np.ndarray  # (n,) int64, −1 = free
    row_of_col: np.ndarray  # (m,) int64, −1 = free


def _warm_start(cost: np.ndarray) -> _DualState:
    """Assign most rows cheaply: cheapest columns first, then augmenting row reduction.

    Needs rows ≤ cols and at least two columns (the reduction compares a row's two cheapest).
    """
    n, m = cost.shape
    u = cost.min(axis=1)
    v = np.zeros(m)
    col_of_row = np.full(n, -1, dtype=np.int64)
    row_of_col = np.full(m, -1, dtype=np.int64)
    # Every row's cheapest column is tight (v = 0); where rows share one, the first row takes it.
    cols, first_rows = np.unique(cost.argmin(axis=1), return_index=True)
    col_of_row[first_rows] = cols
    row_of_col[cols] = first_rows
    # Augmenting row reduction (Jonker & Volgenant 1987): a free row takes its cheapest column,
    # whose price rises to the row's second-cheapest reduced cost, and evicts the owner.
    free = np.flatnonzero(col_of_row < 0).tolist()
    budget = _ROW_REDUCTION_STEPS_PER_ROW * n
    reduced = np.empty(m)
    for _ in range(2):
        next_free: list[int] = []
        k = 0
        while k < len(free) and budget > 0:
            budget -= 1
            row = free[k]
            k += 1
            np.subtract(cost[row], v, out=reduced)
            best = int(reduced.argmin())
            best_value = float(reduced[best])
            reduced[best] = np.inf
            second = int(reduced.argmin())
            second_value = float(reduced[second])
            owner = int(row_of_col[best])
            if best_value < second_value:
                v[best] -= second_value - best_value
            elif owner >= 0:
                best = second  # a tie: take the other column, maybe a free one
                owner = int(row_of_col[best])
            if owner >= 0:
                col_of_row[owner] = -1
                if best_value < second_value:
                    k -= 1  # the evicted row goes next, against the raised price
                    free[k] = owner
                else:
                    next_free.append(owner)
            row_of_col[best] = row
            col_of_row[row] = best
            u[row] = cost[row, best] - v[best]
        free = next_free + free[k:]
    return _DualState(u, v, col_of_row, row_of_col)


def _shortest_augmenting_paths(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Optimal assignment of every row (rows ≤ cols) by Dijkstra searches on reduced costs."""
    n, m = cost.shape
    u, v, col_of_row, row_of_col = _warm_start(cost)
    came_from = np.empty(m, dtype=np.int64)  # row through which each column was reached
    settled_distance = np.empty(m)
    distance = np.empty(m)  # tentative distance of unsettled columns; inf once settled
    # v with settled columns at −inf, so that a scan gives them +inf and never reopens them.
    scan_v = np.empty(m)
    candidate = np.empty(m)
    shorter = np.empty(m, dtype=bool)
    all_cols = np.arange(m)
    for start in np.flatnonzero(col_of_row < 0).tolist():
        distance.fill(np.inf)
        scan_v[:] = v
        settled: list[int] = []
        scan_rows: np.ndarray | None = None  # a batch of rows to scan, or None: just `row`
        row = start
        reached = 0.0
        previous = np.nan
        while True:
            if scan_rows is None:
                np.subtract(cost[row], scan_v, out=candidate)
                candidate += reached - u[row]
                np.less(candidate, distance, out=shorter)
                np.copyto(distance, candidate, where=shorter)
                came_from[shorter] = row
            else:
                block = cost[scan_rows] - scan_v
                block += (reached - u[scan_rows])[:, None]
                best_row = block.argmin(axis=0)
                through_batch = block[best_row, all_cols]
                np.less(through_batch, distance, out=shorter)
                np.copyto(distance, through_batch, where=shorter)
                came_from[shorter] = scan_rows[best_row[shorter]]
            col = int(distance.argmin())
            reached = float(distance[col])
            if row_of_col[col] < 0:
                sink = col
                break
            ties = None
            if reached == previous:  # a run of equal distances: settle them together
                ties = np.flatnonzero(distance == reached)
                free_ties = ties[row_of_col[ties] < 0]
                if len(free_ties):
                    sink = int(free_ties[0])
                    break
                if len(ties) < _TIE_BATCH_MIN:
                    ties = None
            if ties is None:
                settled_distance[col] = reached
                distance[col] = np.inf
                scan_v[col] = -np.inf
                settled.append(col)
                scan_rows = None
                row = int(row_of_col[col])
            else:
                settled_distance[ties] = reached
                distance[ties] = np.inf
                scan_v[ties] = -np.inf
                settled.extend(ties.tolist())
                scan_rows = row_of_col[ties]
            previous = reached
        # Potentials that keep every reduced cost ≥ 0 and make the new path tight.
        u[start] += reached
        if settled:
            settled_cols = np.asarray(settled, dtype=np.int64)
            shift = reached - settled_distance[settled_cols]
            u[row_of_col[settled_cols]] += shift
            v[settled_cols] -= shift
        col = sink
        while True:
            row = int(came_from[col])
            row_of_col[col] = row
            col_of_row[row], col = col, int(col_of_row[row])
            if row == start:
                break
    return np.arange(n, dtype=np.int64), col_of_row

"""Optimal one-to-one assignment (Hungarian / shortest augmenting path) and IoU gating.

Own implementation so the tracker needs no SciPy. ``match_by_iou`` splits the gated IoU graph into
independent pieces first: in a typical frame almost every track overlaps exactly one detection, so
those pairs are taken directly and the O(n³) solver only runs on the few clusters of crowded boxes.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np

# Below this many candidate permutations brute force in plain Python beats the numpy solver's
# per-step call overhead.
_BRUTE_FORCE_MAX_PERMUTATIONS = 24


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
    if _permutation_count(n, m) <= _BRUTE_FORCE_MAX_PERMUTATIONS:
        row_ids, col_ids = _brute_force(cost)
    else:
        row_ids, col_ids = _shortest_augmenting_path(cost)
    if transposed:
        row_ids, col_ids = col_ids, row_ids
    order = np.argsort(row_ids, kind="stable")
    return row_ids[order], col_ids[order]


def match_by_iou(iou: np.ndarray, min_iou: float) -> IouMatches:
    """Match rows to columns maximising total IoU among pairs with IoU ≥ ``min_iou``.

    Within each cluster the number of gated pairs is maximised first and then their summed IoU,
    which is what a gated Hungarian matcher (e.g. ByteTrack's ``linear_assignment``) does.
    """
    iou = np.asarray(iou, dtype=np.float64)
    num_rows, num_cols = iou.shape
    feasible = iou >= min_iou
    row_degree = feasible.sum(axis=1)
    col_degree = feasible.sum(axis=0)
    # Pairs that only see each other need no solver.
    exclusive = feasible & (row_degree[:, None] == 1) & (col_degree[None, :] == 1)
    direct_rows, direct_cols = np.nonzero(exclusive)
    pair_rows = [direct_rows]
    pair_cols = [direct_cols]

    crowded = feasible & ~exclusive
    edge_rows, edge_cols = np.nonzero(crowded)
    for rows, cols in _connected_clusters(edge_rows, edge_cols):
        sub_iou = iou[np.ix_(rows, cols)]
        sub_feasible = feasible[np.ix_(rows, cols)]
        # An infeasible pair costs more than every feasible pair together, so the solver first
        # maximises the count of feasible pairs; those infeasible picks are dropped below.
        cost = np.where(sub_feasible, 1.0 - sub_iou, float(len(rows) + len(cols) + 1))
        sel_rows, sel_cols = solve_assignment(cost)
        keep = sub_feasible[sel_rows, sel_cols]
        pair_rows.append(rows[sel_rows[keep]])
        pair_cols.append(cols[sel_cols[keep]])

    matched_rows = np.concatenate(pair_rows).astype(np.int64)
    matched_cols = np.concatenate(pair_cols).astype(np.int64)
    order = np.argsort(matched_rows, kind="stable")
    pairs = np.stack([matched_rows[order], matched_cols[order]], axis=1)
    row_free = np.ones(num_rows, dtype=bool)
    row_free[matched_rows] = False
    col_free = np.ones(num_cols, dtype=bool)
    col_free[matched_cols] = False
    return IouMatches(
        pairs=pairs,
        unmatched_rows=np.flatnonzero(row_free).astype(np.int64),
        unmatched_cols=np.flatnonzero(col_free).astype(np.int64),
    )


def _permutation_count(n: int, m: int) -> int:
    count = 1
    for k in range(m - n + 1, m + 1):
        count *= k
    return count


def _brute_force(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n, m = cost.shape
    table = cost.tolist()
    best_total = float("inf")
    best_cols: tuple[int, ...] = ()
    for cols in itertools.permutations(range(m), n):
        total = sum(table[r][c] for r, c in enumerate(cols))
        if total < best_total:
            best_total = total
            best_cols = cols
    return np.arange(n, dtype=np.int64), np.asarray(best_cols, dtype=np.int64)


def _shortest_augmenting_path(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hungarian algorithm with potentials, O(n²·m); rows ≤ cols. Column 0 / row 0 are dummies."""
    n, m = cost.shape
    padded = np.zeros((n + 1, m + 1), dtype=np.float64)
    padded[1:, 1:] = cost
    row_potential = np.zeros(n + 1)
    col_potential = np.zeros(m + 1)
    col_owner = np.zeros(m + 1, dtype=np.int64)  # row assigned to each column, 0 = none
    came_from = np.zeros(m + 1, dtype=np.int64)
    for row in range(1, n + 1):
        col_owner[0] = row
        current_col = 0
        min_slack = np.full(m + 1, np.inf)
        visited = np.zeros(m + 1, dtype=bool)
        while True:
            visited[current_col] = True
            owner = col_owner[current_col]
            open_cols = ~visited
            reduced = padded[owner] - row_potential[owner] - col_potential
            improves = open_cols & (reduced < min_slack)
            min_slack[improves] = reduced[improves]
            came_from[improves] = current_col
            candidates = np.where(open_cols, min_slack, np.inf)
            next_col = int(np.argmin(candidates))
            delta = candidates[next_col]
            row_potential[col_owner[visited]] += delta
            col_potential[visited] -= delta
            min_slack[open_cols] -= delta
            current_col = next_col
            if col_owner[current_col] == 0:
                break
        while current_col:
            previous = came_from[current_col]
            col_owner[current_col] = col_owner[previous]
            current_col = previous
    cols = np.flatnonzero(col_owner[1:])
    rows = col_owner[1:][cols] - 1
    return rows.astype(np.int64), cols.astype(np.int64)


def _connected_clusters(
    edge_rows: np.ndarray, edge_cols: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Connected components of a bipartite edge list, as (row indices, col indices) pairs."""
    if len(edge_rows) == 0:
        return []
    parent: dict[tuple[int, int], tuple[int, int]] = {}

    def find(node: tuple[int, int]) -> tuple[int, int]:
        root = node
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[node] != root:  # path compression keeps later finds O(1)
            parent[node], node = root, parent[node]
        return root

    for r, c in zip(edge_rows.tolist(), edge_cols.tolist(), strict=True):
        root_r, root_c = find((0, r)), find((1, c))
        if root_r != root_c:
            parent[root_c] = root_r
    members: dict[tuple[int, int], tuple[list[int], list[int]]] = {}
    for node in list(parent):
        side, index = node
        members.setdefault(find(node), ([], []))[side].append(index)
    return [
        (np.asarray(sorted(rows), dtype=np.int64), np.asarray(sorted(cols), dtype=np.int64))
        for rows, cols in members.values()
    ]

"""Per-class (grouped) greedy non-maximum suppression.

Uses torchvision's `batched_nms` when torchvision imports; otherwise an own implementation that
gives the same result: greedy in descending-score order, a box is dropped when its IoU with a
kept box of the same group is > threshold. The own version is vectorised instead of looping box
by box: it finds every overlapping pair first (all pairs for small inputs, a sweep along x for
large ones) and then resolves the greedy order by fixed-point iteration over those pairs, which
needs as many passes as the longest suppression chain (usually 2-4), not one per box.

Pairs scale with the square of a cluster: 8400 anchors on one frame-filling object (a low
`conf_threshold`, a degenerate model) made 35 M pairs, 7-15 s and 2 GB for one frame. Above
`_SWEEP_MAX_PAIRS` candidate pairs the classic loop runs instead, one kept box at a time against
the boxes still left: each kept box removes its whole cluster at once, so its work scales with
(kept boxes x boxes left), and its memory with the box count.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

try:  # torchvision is optional; its C++/CUDA kernel is used when present.
    from torchvision.ops import batched_nms as _torchvision_batched_nms
except Exception:  # pragma: no cover - depends on the environment (no torchvision here)
    _torchvision_batched_nms = None

# Above this many boxes the all-pairs IoU matrix gets large; switch to the sweep.
_DENSE_LIMIT = 1024
# Candidate pairs evaluated per sweep chunk (bounds memory when many boxes share an x range).
_SWEEP_CHUNK_PAIRS = 4_000_000
# Above this many candidate pairs the box-by-box loop is faster and needs no pair lists (~100 MB
# of pairs and ~0.4 s here; the loop takes ~20 ms for one 8400-box cluster, <1 s at worst).
_SWEEP_MAX_PAIRS = 1_000_000


def torchvision_available() -> bool:
    """True if torchvision's NMS kernel is used."""
    return _torchvision_batched_nms is not None


def batched_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    class_ids: torch.Tensor,
    iou_threshold: float,
    use_torchvision: bool | None = None,
) -> torch.Tensor:
    """Indices of the boxes kept by per-class NMS, sorted by descending score.

    boxes: (N, 4) xyxy; scores: (N,); class_ids: (N,) integer group of each box (boxes of
    different groups never suppress each other). `use_torchvision` None = when available.
    """
    boxes, scores, class_ids = (torch.as_tensor(t) for t in (boxes, scores, class_ids))
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {tuple(boxes.shape)}")
    if not len(boxes) == len(scores) == len(class_ids):
        raise ValueError(
            f"boxes, scores and class_ids disagree in length: "
            f"{len(boxes)}, {len(scores)}, {len(class_ids)}"
        )
    if use_torchvision is None:
        use_torchvision = torchvision_available()
    if use_torchvision:
        if _torchvision_batched_nms is None:
            raise RuntimeError("use_torchvision=True but torchvision is not importable")
        return _torchvision_batched_nms(boxes, scores, class_ids, float(iou_threshold))
    return greedy_batched_nms(boxes, scores, class_ids, float(iou_threshold))


def greedy_batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, class_ids: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """Own per-class greedy NMS (see module docstring); same contract as `batched_nms`."""
    count = len(scores)
    if count == 0:
        return torch.zeros(0, dtype=torch.int64, device=boxes.device)
    order = torch.argsort(scores, descending=True, stable=True)
    ranked_boxes = boxes[order].float()
    ranked_groups = class_ids[order]
    if count <= _DENSE_LIMIT:
        pairs = _overlapping_pairs_dense(ranked_boxes, ranked_groups, iou_threshold)
    else:
        pairs = _overlapping_pairs_sweep(ranked_boxes, ranked_groups, iou_threshold)
    if pairs is None:
        keep = _greedy_box_by_box(ranked_boxes, ranked_groups, iou_threshold)
    else:
        keep = _resolve_greedy(count, *pairs)
    return order[keep]


def _pair_iou(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    # Same formula as torchvision (no +1 pixel convention).
    top_left = torch.maximum(first[..., :2], second[..., :2])
    bottom_right = torch.minimum(first[..., 2:], second[..., 2:])
    overlap = (bottom_right - top_left).clamp_(min=0).prod(dim=-1)
    area_first = (first[..., 2] - first[..., 0]) * (first[..., 3] - first[..., 1])
    area_second = (second[..., 2] - second[..., 0]) * (second[..., 3] - second[..., 1])
    return overlap / (area_first + area_second - overlap)


def _overlapping_pairs_dense(
    boxes: torch.Tensor, groups: torch.Tensor, threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """All (i, j), i < j in score rank, same group, IoU > threshold."""
    iou = _pair_iou(boxes[:, None, :], boxes[None, :, :])
    overlapping = (iou > threshold) & (groups[:, None] == groups[None, :])
    overlapping.triu_(diagonal=1)
    pairs = overlapping.nonzero()
    return pairs[:, 0], pairs[:, 1]


def _overlapping_pairs_sweep(
    boxes: torch.Tensor, groups: torch.Tensor, threshold: float
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Like the dense version, but only tests pairs of one group whose x ranges overlap.

    None when there are more than `_SWEEP_MAX_PAIRS` such candidate pairs (see module docstring).

    Boxes are ordered by (group, x1) through exact integer keys. Shifting x by group times the
    span of all boxes instead would let one absurd but finite box (x2 = 1e30 from a corrupt
    checkpoint) round every shifted x1 of the other groups to one value, so nothing there would
    be suppressed. A box with a non-finite coordinate is left out of the sweep: its IoU is NaN or
    0, so it never suppresses nor is suppressed, while a NaN in the sort would make every box
    after it a candidate (quadratic work: 4 s instead of 0.14 s for 8400 boxes).
    """
    finite = torch.isfinite(boxes).all(dim=1)
    if not bool(finite.all()):
        # Indices keep their rank order, so suppressor < suppressed still holds after mapping.
        kept = finite.nonzero().squeeze(1)
        pairs = _overlapping_pairs_sweep(boxes[kept], groups[kept], threshold)
        if pairs is None:
            return None
        return kept[pairs[0]], kept[pairs[1]]
    count = len(boxes)
    if count == 0:
        empty = torch.zeros(0, dtype=torch.int64, device=boxes.device)
        return empty, empty
    positions = torch.arange(count, device=boxes.device)
    by_start = torch.argsort(boxes[:, 0])
    sorted_starts = boxes[by_start, 0]
    start_rank = torch.empty_like(by_start)
    start_rank[by_start] = positions
    # How many boxes start before each box ends: box j is a candidate of box i (same group,
    # later in (group, x1) order) iff start_rank[j] < end_rank[i].
    end_rank = torch.searchsorted(sorted_starts, boxes[:, 2].contiguous(), side="left")
    group_rank = torch.unique(groups, return_inverse=True)[1]
    keys = group_rank * (count + 1) + start_rank
    by_key = torch.argsort(keys)
    last = torch.searchsorted(keys[by_key], (group_rank * (count + 1) + end_rank)[by_key])
    counts = (last - positions - 1).clamp(min=0)
    suppressors, suppressed = [], []
    cumulative = torch.cumsum(counts, 0)
    if int(cumulative[-1]) > _SWEEP_MAX_PAIRS:
        return None
    chunk_starts = [0]
    if int(cumulative[-1]) > _SWEEP_CHUNK_PAIRS:
        bounds = torch.arange(_SWEEP_CHUNK_PAIRS, int(cumulative[-1]), _SWEEP_CHUNK_PAIRS)
        chunk_starts += torch.searchsorted(cumulative.cpu(), bounds).add(1).tolist()
    chunk_starts.append(len(boxes))
    for begin, end in itertools.pairwise(chunk_starts):
        if begin >= end:
            continue
        chunk_counts = counts[begin:end]
        first = torch.repeat_interleave(positions[begin:end], chunk_counts)
        if len(first) == 0:
            continue
        # Offset of each candidate within its box's run: 1, 2, ... counts[p].
        run_starts = torch.cumsum(chunk_counts, 0) - chunk_counts
        within = torch.arange(len(first), device=boxes.device) - torch.repeat_interleave(
            run_starts, chunk_counts
        )
        second = first + 1 + within
        i, j = by_key[first], by_key[second]
        hit = (_pair_iou(boxes[i], boxes[j]) > threshold) & (groups[i] == groups[j])
        i, j = i[hit], j[hit]
        suppressors.append(torch.minimum(i, j))
        suppressed.append(torch.maximum(i, j))
    if not suppressors:
        empty = torch.zeros(0, dtype=torch.int64, device=boxes.device)
        return empty, empty
    return torch.cat(suppressors), torch.cat(suppressed)


def _greedy_box_by_box(boxes: torch.Tensor, groups: torch.Tensor, threshold: float) -> torch.Tensor:
    """Boolean keep mask of greedy NMS over boxes in score-rank order, one kept box at a time.

    Runs in numpy on the host (a loop of tiny device ops would synchronise per box) with the
    float32 arithmetic of `_pair_iou`, so it keeps exactly the boxes the pair paths keep.
    """
    ranked = boxes.detach().cpu().numpy().astype(np.float32, copy=False)
    areas = (ranked[:, 2] - ranked[:, 0]) * (ranked[:, 3] - ranked[:, 1])
    left = np.concatenate((ranked, areas[:, None]), axis=1)  # rows still undecided
    left_groups = groups.detach().cpu().numpy()
    left_rows = np.arange(len(ranked))
    keep = np.zeros(len(ranked), dtype=bool)
    limit = np.float32(threshold)  # torch compares a float32 tensor with the float32 value too
    while len(left_rows):
        # The best undecided box is never suppressed: every box that could have been is gone.
        keep[left_rows[0]] = True
        head, head_group = left[0], left_groups[0]
        left, left_groups, left_rows = left[1:], left_groups[1:], left_rows[1:]
        width = np.minimum(left[:, 2], head[2]) - np.maximum(left[:, 0], head[0])
        height = np.minimum(left[:, 3], head[3]) - np.maximum(left[:, 1], head[1])
        overlap = np.maximum(width, 0.0) * np.maximum(height, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = overlap / ((head[4] + left[:, 4]) - overlap)
        survives = ~((iou > limit) & (left_groups == head_group))
        if not survives.all():
            left, left_groups, left_rows = (
                left[survives],
                left_groups[survives],
                left_rows[survives],
            )
    return torch.from_numpy(keep).to(boxes.device)


def _resolve_greedy(count: int, suppressor: torch.Tensor, suppressed: torch.Tensor) -> torch.Tensor:
    """Boolean keep mask of greedy NMS given the overlapping pairs in score-rank indices.

    Greedy keeps box j iff no kept box i < j overlaps it. Iterating that rule from "keep all"
    fixes boxes in order of their suppression-chain depth, so it converges to exactly the
    greedy answer in (longest chain + 1) passes.
    """
    keep = torch.ones(count, dtype=torch.bool, device=suppressor.device)
    if len(suppressor) == 0:
        return keep
    for _ in range(count):
        next_keep = torch.ones_like(keep)
        next_keep[suppressed[keep[suppressor]]] = False
        if torch.equal(next_keep, keep):
            break
        keep = next_keep
    return keep

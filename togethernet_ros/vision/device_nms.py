"""Greedy per-class NMS of each image's packed best anchors, as fixed-shape tensor work.

Thresholding and NMS are data-dependent (how many boxes pass, which suppress which), so on a
GPU they ran on the host after one copy of the K best anchors (`select_top_on_host`): at the
tracker's low threshold (0.1) a busy 720p frame brings ~250 candidates, and the host's dense
NMS then took ~0.3 ms per image, ~1.3 ms per batch of four. Here the same decision is made with
fixed shapes only, so it can run inside the model's CUDA graph and the host just reads a mask:

- every pair (i, j) of the K anchors gets "i suppresses j": both pass the score threshold and
  have finite boxes, same class, IoU > threshold, and i ranks first (higher score; equal scores
  rank by anchor index, the order the host's stable sort gives);
- greedy NMS keeps j iff no *kept* i suppresses it. Iterating that rule from "keep every
  candidate" fixes the boxes in order of their suppression-chain depth, so after a chain's
  length + 1 passes nothing changes and the result is exactly greedy's (a fixed point of the
  rule is unique: each box's fate follows from the boxes ranked before it).

The passes are a fixed number; an image whose mask still changed in the last pass (a chain
longer than the passes allow) is reported as not settled and the host runs NMS for it. On
real frames chains are short (vtest at 384x640: at most 4 passes at conf 0.1).

The IoU is computed in float32 with the same operations, in the same order, as the host's
`_greedy_nms`, so both keep exactly the same boxes (IEEE arithmetic; compared on real frames
and random boxes in the tests).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

# Enough for the chains of real frames with room to spare (see module docstring); each pass
# is a few small kernels inside the graph.
DEVICE_NMS_PASSES = 8
# The work and memory grow with the square of the packed anchors per image (N x K x K pairs):
# 512 costs ~17 MB per temporary at batch 16, 8400 (every anchor at 640x640) ~4.5 GB.
MAX_DEVICE_NMS_CANDIDATES = 2048


class DeviceSuppression(NamedTuple):
    """NMS decided on the device for the packed anchors of `ScoredAnchors.top`."""

    kept: torch.Tensor  # (N, K) bool: the anchor survives thresholding and NMS
    settled: torch.Tensor  # (N,) bool: False where the passes did not reach greedy's answer
    conf_threshold: float | None = None  # the thresholds it was decided with (set by the caller)
    nms_threshold: float | None = None


def suppress_packed_anchors(
    top: torch.Tensor, thresholds: torch.Tensor, passes: int = DEVICE_NMS_PASSES
) -> DeviceSuppression:
    """Greedy per-class NMS of packed anchors (N, K, 7) rows [x1, y1, x2, y2, score, class,
    anchor index]; `thresholds` is a float32 tensor [conf, nms] on the same device (a tensor,
    so a captured graph picks up new values without being captured again).
    """
    if top.ndim != 3 or top.shape[-1] != 7:
        raise ValueError(f"top must have shape N x K x 7, got {tuple(top.shape)}")
    if passes < 2:
        raise ValueError(f"passes must be >= 2 (one to decide, one to confirm), got {passes}")
    conf_threshold, nms_threshold = thresholds[0], thresholds[1]
    boxes, scores, class_ids, anchor_index = top[..., :4], top[..., 4], top[..., 5], top[..., 6]
    candidate = (scores >= conf_threshold) & torch.isfinite(boxes).all(dim=-1)
    # Columns (N, K, 1) against their transposes (N, 1, K): element [i, j] pairs box i with j.
    x1, y1, x2, y2 = (column.unsqueeze(-1) for column in boxes.unbind(-1))
    areas = (x2 - x1) * (y2 - y1)
    overlap = (torch.minimum(x2, x2.mT) - torch.maximum(x1, x1.mT)).clamp_(min=0.0)
    overlap *= (torch.minimum(y2, y2.mT) - torch.maximum(y1, y1.mT)).clamp_(min=0.0)
    union = areas + areas.mT
    union -= overlap
    iou = overlap.div_(union)  # 0 / 0 (two empty boxes) is NaN, which suppresses nothing
    score, anchor = scores.unsqueeze(-1), anchor_index.unsqueeze(-1)
    ranks_first = (score > score.mT) | ((score == score.mT) & (anchor < anchor.mT))
    suppresses = iou > nms_threshold
    suppresses &= ranks_first
    suppresses &= class_ids.unsqueeze(-1) == class_ids.unsqueeze(-2)
    # Only kept boxes suppress, and kept boxes are candidates: a box below the threshold or
    # without a finite box never suppresses, with no mask of its own needed.
    kept = candidate
    previous = kept
    for _ in range(passes):
        previous = kept
        kept = candidate & ~(previous.unsqueeze(-1) & suppresses).any(dim=1)
    return DeviceSuppression(kept, (kept == previous).all(dim=1))

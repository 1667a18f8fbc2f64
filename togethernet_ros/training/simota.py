"""SimOTA label assignment (YOLOX), as TogetherNet trains with it.

Candidates are anchors whose centre lies inside a ground-truth box or within 2.5 strides of its
centre. Cost = classification BCE + 3·(−log IoU) + 1e5·(not inside both box and centre
region). Each object takes its ``dynamic_k`` cheapest candidates, k = ⌊Σ top-10 IoUs⌋ (≥ 1);
an anchor claimed by several objects keeps the cheapest. Equal costs go to the lower index.

:func:`simota_assign_batched` does the same for a whole batch without host synchronisation;
:func:`simota_assign` (one image) is the readable reference it is tested against.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Assignment:
    """Result for one image: which anchors are positive and what they learn."""

    foreground: torch.Tensor  # (A,) bool
    matched_gt: torch.Tensor  # (num_fg,) index into the image's objects
    matched_iou: torch.Tensor  # (num_fg,) IoU of each positive's prediction with its object


def box_iou_cxcywh(boxes_a: torch.Tensor, boxes_b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU (… × n × m) of centre-size boxes (…, n, 4) and (…, m, 4)."""
    a_tl, a_br = (
        boxes_a[..., :, None, :2] - boxes_a[..., :, None, 2:] / 2,
        boxes_a[..., :, None, :2] + boxes_a[..., :, None, 2:] / 2,
    )
    b_tl, b_br = (
        boxes_b[..., None, :, :2] - boxes_b[..., None, :, 2:] / 2,
        boxes_b[..., None, :, :2] + boxes_b[..., None, :, 2:] / 2,
    )
    extent = (torch.minimum(a_br, b_br) - torch.maximum(a_tl, b_tl)).clamp(min=0)
    inter = extent.prod(-1)
    area_a = boxes_a[..., 2:].prod(-1)[..., :, None]
    area_b = boxes_b[..., 2:].prod(-1)[..., None, :]
    return inter / (area_a + area_b - inter + 1e-16)


@torch.no_grad()
def simota_assign(
    gt_boxes: torch.Tensor,
    gt_classes: torch.Tensor,
    pred_boxes: torch.Tensor,
    obj_logits: torch.Tensor,
    cls_logits: torch.Tensor,
    anchor_centres: torch.Tensor,
    anchor_strides: torch.Tensor,
    center_radius: float = 2.5,
    topk: int = 10,
    iou_weight: float = 3.0,
) -> Assignment:
    """Assign anchors of one image to its objects.

    ``gt_boxes`` (n, 4) and ``pred_boxes`` (A, 4) are cxcywh input pixels; ``obj_logits`` (A,),
    ``cls_logits`` (A, C); ``anchor_centres`` (A, 2) cell centres in pixels; ``anchor_strides`` (A,).
    """
    num_anchors = pred_boxes.shape[0]
    device = pred_boxes.device
    if gt_boxes.shape[0] == 0:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return Assignment(
            torch.zeros(num_anchors, dtype=torch.bool, device=device), empty, empty.float()
        )
    centres = anchor_centres[None]  # (1, A, 2)
    gt_centre = gt_boxes[:, None, :2]
    half = gt_boxes[:, None, 2:] / 2
    in_box = ((centres - (gt_centre - half)) > 0).all(-1) & (
        ((gt_centre + half) - centres) > 0
    ).all(-1)
    radius = (center_radius * anchor_strides)[None, :, None]
    in_centre = ((centres - (gt_centre - radius)) > 0).all(-1) & (
        ((gt_centre + radius) - centres) > 0
    ).all(-1)
    candidate = in_box.any(0) | in_centre.any(0)  # (A,)
    in_both = (in_box & in_centre)[:, candidate]  # (n, m)
    num_candidates = int(candidate.sum())
    if num_candidates == 0:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return Assignment(
            torch.zeros(num_anchors, dtype=torch.bool, device=device), empty, empty.float()
        )

    pair_iou = box_iou_cxcywh(gt_boxes, pred_boxes[candidate])  # (n, m)
    iou_cost = -torch.log(pair_iou + 1e-8)
    # BCE(sqrt(p_cls·p_obj), one-hot) summed over classes, without materialising n×m×C:
    # Σ_c −log(1−p_c) over all classes, then swap the target class's term.
    probs = (
        torch.sigmoid(cls_logits[candidate]) * torch.sigmoid(obj_logits[candidate])[:, None]
    ).sqrt()
    log_p = torch.log(probs).clamp(min=-100)
    log_not_p = torch.log1p(-probs).clamp(min=-100)
    target_class = gt_classes.long()
    cls_cost = -log_not_p.sum(-1)[None, :] - log_p[:, target_class].T + log_not_p[:, target_class].T
    cost = cls_cost + iou_weight * iou_cost + 100000.0 * (~in_both).float()

    k_iou = min(topk, num_candidates)
    dynamic_k = torch.topk(pair_iou, k_iou, dim=1).values.sum(1).int().clamp(min=1)  # (n,)
    # Stable: among exactly equal costs the lower anchor index wins. A plain argsort leaves that
    # order to the sort algorithm (it varies with the candidate count and the device), which
    # the batched assignment could not reproduce.
    order = cost.argsort(dim=1, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(num_candidates, device=device).expand_as(order))
    matching = ranks < dynamic_k[:, None]  # (n, m)
    contested = matching.sum(0) > 1
    if contested.any():
        cheapest = cost[:, contested].argmin(0)
        matching[:, contested] = False
        matching[cheapest, contested.nonzero().squeeze(1)] = True
    positive = matching.any(0)  # (m,)
    matched_gt = matching[:, positive].float().argmax(0)
    matched_iou = (matching.float() * pair_iou).sum(0)[positive]
    foreground = torch.zeros(num_anchors, dtype=torch.bool, device=device)
    foreground[candidate.nonzero().squeeze(1)[positive]] = True
    return Assignment(foreground, matched_gt, matched_iou)


@dataclass
class BatchedAssignment:
    """Result for a batch; ``matched_gt`` and ``matched_iou`` are meaningful where ``foreground``."""

    foreground: torch.Tensor  # (B, A) bool
    matched_gt: torch.Tensor  # (B, A) index into the image's objects
    matched_iou: torch.Tensor  # (B, A) IoU of each anchor's prediction with its object


@torch.no_grad()
def simota_assign_batched(
    gt_boxes: torch.Tensor,
    gt_classes: torch.Tensor,
    gt_valid: torch.Tensor,
    pred_boxes: torch.Tensor,
    obj_logits: torch.Tensor,
    cls_logits: torch.Tensor,
    anchor_centres: torch.Tensor,
    anchor_strides: torch.Tensor,
    center_radius: float = 2.5,
    topk: int = 10,
    iou_weight: float = 3.0,
) -> BatchedAssignment:
    """:func:`simota_assign` for every image at once, with no host synchronisation.

    Objects are padded to a common count: ``gt_boxes`` (B, N, 4), ``gt_classes`` (B, N) and
    ``gt_valid`` (B, N) bool, valid objects first in each row. ``pred_boxes`` (B, A, 4),
    ``obj_logits`` (B, A), ``cls_logits`` (B, A, C); anchors as in :func:`simota_assign`.
    Gives the same assignment as :func:`simota_assign` per image (for finite predictions).
    """
    batch, num_anchors = pred_boxes.shape[:2]
    device = pred_boxes.device
    if gt_boxes.shape[1] == 0:
        return BatchedAssignment(
            torch.zeros(batch, num_anchors, dtype=torch.bool, device=device),
            torch.zeros(batch, num_anchors, dtype=torch.long, device=device),
            torch.zeros(batch, num_anchors, device=device),
        )
    valid = gt_valid[:, :, None]  # (B, N, 1)
    centres = anchor_centres[None, None]  # (1, 1, A, 2)
    gt_centre = gt_boxes[:, :, None, :2]
    half = gt_boxes[:, :, None, 2:] / 2
    in_box = ((centres - (gt_centre - half)) > 0).all(-1) & (
        ((gt_centre + half) - centres) > 0
    ).all(-1)
    radius = (center_radius * anchor_strides)[None, None, :, None]
    in_centre = ((centres - (gt_centre - radius)) > 0).all(-1) & (
        ((gt_centre + radius) - centres) > 0
    ).all(-1)
    in_box &= valid
    in_centre &= valid
    candidate = in_box.any(1) | in_centre.any(1)  # (B, A)
    in_both = in_box & in_centre  # (B, N, A)
    # Pairs outside the per-image problem (padding objects, non-candidate anchors) must never
    # be chosen: +inf cost sorts them after every real pair, and zero IoU adds nothing to top-k.
    real_pair = valid & candidate[:, None, :]

    pair_iou = box_iou_cxcywh(gt_boxes, pred_boxes).masked_fill(~real_pair, 0.0)  # (B, N, A)
    iou_cost = -torch.log(pair_iou + 1e-8)
    # Same class cost as simota_assign, the target class's terms gathered per object.
    probs = (torch.sigmoid(cls_logits) * torch.sigmoid(obj_logits)[..., None]).sqrt()
    log_p = torch.log(probs).clamp(min=-100).transpose(1, 2)  # (B, C, A)
    log_not_p = torch.log1p(-probs).clamp(min=-100)
    class_index = gt_classes.long()[:, :, None].expand(-1, -1, num_anchors)
    cls_cost = (
        -log_not_p.sum(-1)[:, None, :]
        - log_p.gather(1, class_index)
        + log_not_p.transpose(1, 2).gather(1, class_index)
    )
    cost = cls_cost + iou_weight * iou_cost + 100000.0 * (~in_both).float()
    cost = cost.masked_fill(~real_pair, float("inf"))

    dynamic_k = _dynamic_k(pair_iou, candidate.sum(1), topk) * real_pair.any(2)  # (B, N)
    matching = _cheapest(cost, dynamic_k, min(topk, num_anchors))  # (B, N, A)

    num_claims = matching.sum(1)  # (B, A)
    # A contested anchor goes to the object of lowest cost (first one on ties, as argmin does).
    lowest_cost_gt = cost.argmin(1)
    only_claim_gt = matching.to(torch.uint8).argmax(1)
    matched_gt = torch.where(num_claims > 1, lowest_cost_gt, only_claim_gt)
    matched_iou = pair_iou.gather(1, matched_gt[:, None]).squeeze(1)
    return BatchedAssignment(num_claims > 0, matched_gt, matched_iou)


def _dynamic_k(pair_iou: torch.Tensor, num_candidates: torch.Tensor, topk: int) -> torch.Tensor:
    """k = ⌊Σ top-min(topk, m) IoUs⌋ (≥ 1) per object, m = its image's candidate count.

    Summing exactly min(topk, m) values (not topk values padded with zeros) keeps the float sum
    identical to the per-image reference; selecting among the prefix sums avoids a host sync.
    """
    most = min(topk, pair_iou.shape[-1])
    best = torch.topk(pair_iou, most, dim=-1).values  # (B, N, most), descending
    prefix_sums = torch.stack([best[..., :count].sum(-1) for count in range(1, most + 1)], -1)
    count_index = (num_candidates.clamp(min=1, max=most) - 1)[:, None, None]
    count_index = count_index.expand(-1, best.shape[1], 1)
    return prefix_sums.gather(-1, count_index).squeeze(-1).int().clamp(min=1)


def _cheapest(cost: torch.Tensor, count: torch.Tensor, most: int) -> torch.Tensor:
    """Mask of the ``count`` (≤ ``most``) lowest costs along the last axis, ties by lower index.

    Equals ``rank < count`` under a stable sort (the order :func:`simota_assign` uses; dropping
    non-candidates keeps the index order) with a top-k and a cumulative count, not a full sort.
    """
    lowest = torch.topk(cost, most, dim=-1, largest=False).values  # ascending
    threshold = lowest.gather(-1, (count - 1).clamp(min=0)[..., None])  # count-th lowest cost
    below = cost < threshold
    tied = cost == threshold
    slots_for_ties = (count - below.sum(-1))[..., None]
    chosen = below | (tied & (tied.cumsum(-1) <= slots_for_ties))
    return chosen & (count > 0)[..., None]

"""SimOTA label assignment (YOLOX), as TogetherNet trains with it.

Candidates are anchors whose centre lies inside a ground-truth box or within 2.5 strides of its
centre. Cost = classification BCE + 3·(−log IoU) + 1e5·(not inside both box and centre
region). Each object takes its ``dynamic_k`` cheapest candidates, k = ⌊Σ top-10 IoUs⌋ (≥ 1);
an anchor claimed by several objects keeps the cheapest.
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
    """Pairwise IoU (len(a) × len(b)) of centre-size boxes."""
    a_tl, a_br = (
        boxes_a[:, None, :2] - boxes_a[:, None, 2:] / 2,
        boxes_a[:, None, :2] + boxes_a[:, None, 2:] / 2,
    )
    b_tl, b_br = (
        boxes_b[None, :, :2] - boxes_b[None, :, 2:] / 2,
        boxes_b[None, :, :2] + boxes_b[None, :, 2:] / 2,
    )
    extent = (torch.minimum(a_br, b_br) - torch.maximum(a_tl, b_tl)).clamp(min=0)
    inter = extent.prod(-1)
    area_a = boxes_a[:, 2:].prod(-1)[:, None]
    area_b = boxes_b[:, 2:].prod(-1)[None, :]
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
    order = cost.argsort(dim=1)
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

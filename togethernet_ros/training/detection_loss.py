"""TogetherNet's training objective: SimOTA detection loss + restoration MSE.

L_det = (5·Σ(1 − IoU²) + Σ focal-style objectness + Σ BCE(cls, one-hot × IoU)) / num_fg, with
objectness weighted 0.75·(1−p)² on positives and 0.25·p² on negatives (upstream's focal term);
total = 0.2·L_det + 0.8·MSE(dehazed, clean normalised).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence

from togethernet_ros.training.simota import simota_assign_batched


@dataclass(frozen=True)
class LossConfig:
    """Weights of the objective (defaults = published)."""

    detection_weight: float = 0.2
    restoration_weight: float = 0.8
    iou_weight: float = 5.0
    obj_positive_alpha: float = 0.75
    obj_negative_alpha: float = 0.25
    obj_gamma: float = 2.0
    center_radius: float = 2.5
    topk: int = 10
    assign_iou_cost: float = 3.0

    def __post_init__(self) -> None:
        # Checked when the config is read: topk=0 used to crash in the first training step,
        # after the data had been loaded, and a negative weight, exponent or radius trained
        # without a word on another objective (a negative IoU weight rewards bad boxes).
        weights = (
            "detection_weight",
            "restoration_weight",
            "iou_weight",
            "obj_positive_alpha",
            "obj_negative_alpha",
            "obj_gamma",
            "assign_iou_cost",
        )
        for name in weights:
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"loss.{name} must be a finite number >= 0, got {value}")
        if not (math.isfinite(self.center_radius) and self.center_radius > 0):
            raise ValueError(
                f"loss.center_radius must be a finite number of strides > 0, "
                f"got {self.center_radius}"
            )
        if self.topk < 1:
            raise ValueError(f"loss.topk must be >= 1, got {self.topk}")
        if self.detection_weight == 0 and self.restoration_weight == 0:
            raise ValueError(
                "loss.detection_weight and loss.restoration_weight are both 0: nothing would train"
            )


@dataclass
class LossTerms:
    """The total loss (for backward) and its parts (detached, for logging)."""

    total: torch.Tensor
    detection: torch.Tensor
    restoration: torch.Tensor
    iou: torch.Tensor
    obj: torch.Tensor
    cls: torch.Tensor
    num_fg: float

    def as_floats(self) -> dict[str, float]:
        """Scalar values keyed by name (loss, det, rest, iou, obj, cls, fg)."""
        return {
            "loss": float(self.total.detach()),
            "det": float(self.detection),
            "rest": float(self.restoration),
            "iou": float(self.iou),
            "obj": float(self.obj),
            "cls": float(self.cls),
            "fg": self.num_fg,
        }


def _flatten_maps(
    maps: Sequence[torch.Tensor], strides: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Raw maps → (B, A, 5+C) float32 with decoded boxes, plus anchor centres and strides."""
    outputs, centres, anchor_strides = [], [], []
    for output, stride in zip(maps, strides, strict=True):
        height, width = output.shape[-2:]
        flat = output.float().flatten(2).permute(0, 2, 1)  # (B, hw, 5+C)
        rows, cols = torch.meshgrid(
            torch.arange(height, device=output.device),
            torch.arange(width, device=output.device),
            indexing="ij",
        )
        grid = torch.stack((cols, rows), -1).reshape(1, -1, 2).float()
        boxes = torch.cat(
            [(flat[..., :2] + grid) * stride, torch.exp(flat[..., 2:4]) * stride], dim=-1
        )
        outputs.append(torch.cat([boxes, flat[..., 4:]], dim=-1))
        centres.append((grid[0] + 0.5) * stride)
        anchor_strides.append(torch.full((height * width,), float(stride), device=output.device))
    return torch.cat(outputs, 1), torch.cat(centres), torch.cat(anchor_strides)


def detection_loss(
    maps: Sequence[torch.Tensor],
    targets: Sequence[torch.Tensor],
    strides: Sequence[int],
    num_classes: int,
    config: LossConfig = LossConfig(),
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """L_det and its sums; ``targets`` per image (n, 5) ``[class, cx, cy, w, h]`` input pixels.

    Returns (L_det, Σ IoU term, Σ obj term, Σ cls term, num_fg).
    """
    outputs, centres, anchor_strides = _flatten_maps(maps, strides)
    boxes, obj_logits, cls_logits = outputs[..., :4], outputs[..., 4], outputs[..., 5:]
    padded, valid = _pad_targets(targets, outputs.device)
    assignment = simota_assign_batched(
        padded[..., 1:5],
        padded[..., 0].long(),
        valid,
        boxes.detach(),
        obj_logits.detach(),
        cls_logits.detach(),
        centres,
        anchor_strides,
        config.center_radius,
        config.topk,
        config.assign_iou_cost,
    )
    fg = assignment.foreground  # (B, A)
    # The one host sync of the loss: positives in (image, anchor) order, as boxes[fg] takes them.
    fg_image, fg_anchor = fg.nonzero(as_tuple=True)
    matched_gt = assignment.matched_gt[fg_image, fg_anchor]
    matched_target = padded[fg_image, matched_gt]  # (num_fg, 5)
    box_targets = matched_target[:, 1:5]
    # Comparison instead of F.one_hot, which validates class ids with a host sync on GPU.
    one_hot = (
        matched_target[:, 0].long()[:, None] == torch.arange(num_classes, device=fg.device)
    ).float()
    cls_targets = one_hot * assignment.matched_iou[fg_image, fg_anchor][:, None]
    num_fg = max(float(fg_image.numel()), 1.0)

    fg_boxes = boxes[fg]
    iou = box_iou_cxcywh_pairs(fg_boxes, box_targets)
    # A positive whose size overflowed exp() (a diverging regressor, fp16/bf16 maps) has IoU 0,
    # so a finite loss, but a NaN gradient that would poison every weight unnoticed. 0·Σboxes
    # leaves finite losses (and gradients) bit-identical and turns that case into a NaN loss,
    # which the trainer's per-step loss check stops on before backward: no extra host sync.
    loss_iou = (1.0 - iou**2).sum() + 0.0 * fg_boxes.sum()
    # Focal-style objectness via log-sigmoid: log p and log(1−p) without overflow under AMP.
    p = torch.sigmoid(obj_logits)
    positive = fg.float()
    loss_obj = -(
        positive
        * config.obj_positive_alpha
        * (1 - p) ** config.obj_gamma
        * F.logsigmoid(obj_logits)
        + (1 - positive)
        * config.obj_negative_alpha
        * p**config.obj_gamma
        * F.logsigmoid(-obj_logits)
    ).sum()
    loss_cls = F.binary_cross_entropy_with_logits(cls_logits[fg], cls_targets, reduction="sum")
    total = (config.iou_weight * loss_iou + loss_obj + loss_cls) / num_fg
    return (
        total,
        loss_iou.detach() / num_fg,
        loss_obj.detach() / num_fg,
        loss_cls.detach() / num_fg,
        num_fg,
    )


def _pad_targets(
    targets: Sequence[torch.Tensor], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image (n_i, 5) targets → (B, N, 5) float zero-padded to the largest n, and (B, N) mask."""
    counts = torch.tensor([len(target) for target in targets])
    # Padded where the targets live (host, from the loader) and moved once, not once per image.
    padded = pad_sequence([target.detach().float() for target in targets], batch_first=True)
    valid = torch.arange(padded.shape[1])[None, :] < counts[:, None]
    return padded.to(device, non_blocking=True), valid.to(device, non_blocking=True)


def box_iou_cxcywh_pairs(boxes_a: torch.Tensor, boxes_b: torch.Tensor) -> torch.Tensor:
    """Element-wise IoU of matching rows of two (N, 4) centre-size box tensors."""
    tl = torch.maximum(boxes_a[:, :2] - boxes_a[:, 2:] / 2, boxes_b[:, :2] - boxes_b[:, 2:] / 2)
    br = torch.minimum(boxes_a[:, :2] + boxes_a[:, 2:] / 2, boxes_b[:, :2] + boxes_b[:, 2:] / 2)
    inter = (br - tl).clamp(min=0).prod(-1)
    union = boxes_a[:, 2:].prod(-1) + boxes_b[:, 2:].prod(-1) - inter
    return inter / (union + 1e-16)


def together_loss(
    maps: Sequence[torch.Tensor],
    dehazed: torch.Tensor,
    clean_normalised: torch.Tensor,
    targets: Sequence[torch.Tensor],
    strides: Sequence[int],
    num_classes: int,
    config: LossConfig = LossConfig(),
) -> LossTerms:
    """The full published objective: 0.2·L_det + 0.8·MSE(dehazed, clean)."""
    det, iou, obj, cls, num_fg = detection_loss(maps, targets, strides, num_classes, config)
    restoration = F.mse_loss(dehazed.float(), clean_normalised.float())
    total = config.detection_weight * det + config.restoration_weight * restoration
    return LossTerms(total, det.detach(), restoration.detach(), iou, obj, cls, num_fg)

"""Batched SimOTA and the batched detection loss against the per-image reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from togethernet_ros.training.detection_loss import (
    LossConfig,
    _flatten_maps,
    box_iou_cxcywh_pairs,
    detection_loss,
)
from togethernet_ros.training.simota import simota_assign, simota_assign_batched

STRIDES = (8, 16, 32)


def _random_targets(count: int, size: int, num_classes: int, generator) -> torch.Tensor:
    wh = torch.rand(count, 2, generator=generator) * (size / 2 - 2) + 2
    cxcy = wh / 2 + torch.rand(count, 2, generator=generator) * (size - wh)
    classes = torch.randint(0, num_classes, (count, 1), generator=generator).float()
    return torch.cat([classes, cxcy, wh], 1)


def _random_maps(batch: int, sizes, num_classes: int, generator, scale: float = 0.7):
    return [
        torch.randn(batch, 5 + num_classes, height, width, generator=generator) * scale
        for height, width in sizes
    ]


def _cases():
    """(name, maps, targets, num_classes) covering the shapes SimOTA meets in training."""
    generator = torch.Generator().manual_seed(3)
    size = 128
    grid = [(size // s, size // s) for s in STRIDES]
    yield (
        "mixed counts incl. empty",
        _random_maps(6, grid, 5, generator),
        [_random_targets(n, size, 5, generator) for n in (0, 1, 4, 0, 12, 3)],
        5,
    )
    yield (
        "many targets",
        _random_maps(3, grid, 20, generator),
        [_random_targets(n, size, 20, generator) for n in (60, 45, 7)],
        20,
    )
    yield (
        "all empty",
        _random_maps(2, grid, 5, generator),
        [torch.zeros(0, 5), torch.zeros(0, 5)],
        5,
    )
    # Identical zero predictions and stacked/duplicate boxes: many exactly tied costs and
    # anchors claimed by several objects, where tie-breaking decides the outcome.
    box = torch.tensor([[1.0, 64.0, 64.0, 40.0, 40.0]])
    shifted = torch.tensor([[2.0, 68.0, 64.0, 40.0, 40.0], [0.0, 64.0, 64.0, 20.0, 60.0]])
    yield (
        "contested ties",
        [torch.zeros(3, 10, height, width) for height, width in grid],
        [torch.cat([box, box, shifted]), torch.cat([box] * 5), shifted],
        5,
    )
    # Fewer anchors (6) than top-k (10), and objects partly outside the image.
    tiny = [(2, 2), (1, 1), (1, 1)]
    yield (
        "tiny input",
        _random_maps(4, tiny, 3, generator),
        [
            torch.tensor([[0.0, 8.0, 8.0, 10.0, 10.0]]),
            torch.tensor([[1.0, 2.0, 3.0, 30.0, 4.0], [2.0, 15.0, 15.0, 3.0, 3.0]]),
            torch.zeros(0, 5),
            torch.tensor([[2.0, 100.0, 100.0, 5.0, 5.0]]),
        ],
        3,
    )


CASES = list(_cases())


def _reference_loss(maps, targets, strides, num_classes):
    """The former per-image detection loss, kept verbatim in substance as the oracle."""
    config = LossConfig()
    outputs, centres, anchor_strides = _flatten_maps(maps, strides)
    boxes, obj_logits, cls_logits = outputs[..., :4], outputs[..., 4], outputs[..., 5:]
    fg_masks, box_targets, cls_targets = [], [], []
    for index in range(outputs.shape[0]):
        target = targets[index].float()
        assignment = simota_assign(
            target[:, 1:5],
            target[:, 0].long(),
            boxes[index].detach(),
            obj_logits[index].detach(),
            cls_logits[index].detach(),
            centres,
            anchor_strides,
            config.center_radius,
            config.topk,
            config.assign_iou_cost,
        )
        fg_masks.append(assignment.foreground)
        box_targets.append(target[assignment.matched_gt, 1:5])
        one_hot = F.one_hot(target[assignment.matched_gt, 0].long(), num_classes).float()
        cls_targets.append(one_hot * assignment.matched_iou[:, None])
    fg = torch.stack(fg_masks)
    num_fg = max(float(fg.sum()), 1.0)
    loss_iou = (1.0 - box_iou_cxcywh_pairs(boxes[fg], torch.cat(box_targets)) ** 2).sum()
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
    loss_cls = F.binary_cross_entropy_with_logits(
        cls_logits[fg], torch.cat(cls_targets), reduction="sum"
    )
    total = (config.iou_weight * loss_iou + loss_obj + loss_cls) / num_fg
    return total, loss_iou / num_fg, loss_obj / num_fg, loss_cls / num_fg, num_fg


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_batched_assignment_equals_per_image(case):
    _, maps, targets, _ = case
    outputs, centres, anchor_strides = _flatten_maps(maps, STRIDES)
    padded = torch.nn.utils.rnn.pad_sequence(targets, batch_first=True)
    valid = torch.arange(padded.shape[1])[None] < torch.tensor([len(t) for t in targets])[:, None]
    batched = simota_assign_batched(
        padded[..., 1:5],
        padded[..., 0].long(),
        valid,
        outputs[..., :4],
        outputs[..., 4],
        outputs[..., 5:],
        centres,
        anchor_strides,
    )
    total_fg = 0
    for index, target in enumerate(targets):
        reference = simota_assign(
            target[:, 1:5],
            target[:, 0].long(),
            outputs[index, :, :4],
            outputs[index, :, 4],
            outputs[index, :, 5:],
            centres,
            anchor_strides,
        )
        foreground = batched.foreground[index]
        assert torch.equal(foreground, reference.foreground)
        assert torch.equal(batched.matched_gt[index][foreground], reference.matched_gt)
        assert torch.equal(batched.matched_iou[index][foreground], reference.matched_iou)
        total_fg += int(foreground.sum())
    if len(targets[0]) or len(targets[1]):
        assert total_fg > 0  # the case exercises real matches


def test_contested_case_really_has_ties_and_contests():
    _, maps, targets, _ = CASES[3]
    outputs, centres, anchor_strides = _flatten_maps(maps, STRIDES)
    target = targets[1]  # five identical boxes: every anchor they pick is claimed five times
    reference = simota_assign(
        target[:, 1:5],
        target[:, 0].long(),
        outputs[1, :, :4],
        outputs[1, :, 4],
        outputs[1, :, 5:],
        centres,
        anchor_strides,
    )
    assert reference.foreground.any()
    assert torch.all(reference.matched_gt == 0)  # argmin over equal costs: first object


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_batched_loss_equals_per_image_loss(case):
    _, maps, targets, num_classes = case
    new = detection_loss(maps, targets, STRIDES, num_classes)
    old = _reference_loss(maps, targets, STRIDES, num_classes)
    assert new[4] == old[4]
    for new_term, old_term in zip(new[:4], old[:4], strict=True):
        torch.testing.assert_close(new_term, old_term.detach(), rtol=1e-5, atol=0.0)


def test_batched_loss_gradient_equals_per_image():
    _, maps, targets, num_classes = CASES[0]
    grads = []
    for loss_fn in (detection_loss, _reference_loss):
        leaves = [m.clone().requires_grad_(True) for m in maps]
        loss_fn(leaves, targets, STRIDES, num_classes)[0].backward()
        grads.append([leaf.grad for leaf in leaves])
    for new_grad, old_grad in zip(*grads, strict=True):
        torch.testing.assert_close(new_grad, old_grad, rtol=1e-5, atol=1e-8)

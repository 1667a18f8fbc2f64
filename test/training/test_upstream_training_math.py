"""The detection objective and SimOTA against the published YOLOX/TogetherNet code, by hand.

Each case is small enough to work out on paper; the expected numbers are written as literals
or as closed forms of ln 2 and ln 3 with the working in comments. Upstream (bubbliiiing's
yolox-pytorch, which TogetherNet trains with): an anchor is a candidate when its cell centre
lies strictly inside a ground-truth box or strictly within 2.5 strides of its centre; cost =
BCE(sqrt(σ(cls)·σ(obj)), one-hot) + 3·(−log IoU) + 1e5·(not in box and centre region);
k = max(1, ⌊Σ top-min(10, m) IoUs⌋); a contested anchor goes to the object it costs least;
L_det = (5·Σ(1 − IoU²) + Σ focal obj + Σ BCE(cls, one-hot·IoU)) / max(num_fg, 1).
"""

from __future__ import annotations

import math

import pytest
import torch

from togethernet_ros.training.detection_loss import detection_loss, together_loss
from togethernet_ros.training.simota import simota_assign, simota_assign_batched

LN2, LN3 = math.log(2.0), math.log(3.0)

# ---------------------------------------------------------------------------------------------
# The loss on a 2x2 stride-8 map (input 16x16), two images: image 0 has no object, image 1
# has one object of class 1 at (cx, cy, w, h) = (8, 8, 16, 16), i.e. the whole input.
#
# Anchors in row-major order: a0 (4, 4), a1 (12, 4), a2 (4, 12), a3 (12, 12); every one lies
# inside the box and within 2.5 strides (20 px) of its centre. Every prediction is centred on
# (8, 8) (tx = 1 − col, ty = 1 − row) with size exp(t)·8:
#   a0 16x16 -> IoU 1      a1 8x16 -> IoU 0.5      a2 16x6 -> IoU 0.375      a3 4x16 -> IoU 0.25
# k = ⌊1 + 0.5 + 0.375 + 0.25⌋ = 2. Class and objectness logits are the same for every anchor,
# so the class cost is a constant and the IoU cost orders them: a0 (0) < a1 (3 ln 2) < a2 < a3.
# Positives: a0 (IoU 1) and a1 (IoU 0.5); num_fg = 2.
#
# Objectness logit 0 everywhere (p = 0.5): a positive costs 0.75·(1 − p)²·ln 2 = 0.1875 ln 2, a
# negative 0.25·p²·ln 2 = 0.0625 ln 2. Image 1: 2 positives + 2 negatives = 0.5 ln 2; image 0:
# 4 negatives = 0.25 ln 2. Σ obj = 0.75 ln 2.
# IoU term: (1 − 1²) + (1 − 0.5²) = 0.75, weighted 5 -> 3.75.
# Class logits (0, ln 3), so σ = (0.5, 0.75) and softplus(ln 3) = ln 4. Targets one-hot × IoU:
#   a0 (0, 1):   BCE(0, 0) + BCE(ln 3, 1)   = ln 2 + (ln 4 − ln 3)
#   a1 (0, 0.5): BCE(0, 0) + BCE(ln 3, 0.5) = ln 2 + (ln 4 − 0.5 ln 3)
#   Σ cls = 6 ln 2 − 1.5 ln 3
# L_det = (3.75 + 0.75 ln 2 + 6 ln 2 − 1.5 ln 3) / 2 = 3.390413...

TX = [[1.0, 0.0], [1.0, 0.0]]
TY = [[1.0, 1.0], [0.0, 0.0]]
TW = [[LN2, 0.0], [LN2, math.log(0.5)]]
TH = [[LN2, LN2], [math.log(0.75), LN2]]


def _hand_maps() -> list[torch.Tensor]:
    image = torch.tensor(
        [TX, TY, TW, TH, [[0.0, 0.0]] * 2, [[0.0, 0.0]] * 2, [[LN3, LN3]] * 2]
    )  # (5 + 2 classes, 2, 2)
    return [torch.stack([image, image])]


def _hand_targets() -> list[torch.Tensor]:
    return [torch.zeros(0, 5), torch.tensor([[1.0, 8.0, 8.0, 16.0, 16.0]])]


def test_loss_terms_by_hand():
    total, iou, obj, cls, num_fg = detection_loss(_hand_maps(), _hand_targets(), (8,), 2)
    assert num_fg == 2.0
    torch.testing.assert_close(iou, torch.tensor(0.75 / 2))  # Σ(1 − IoU²) / num_fg
    torch.testing.assert_close(obj, torch.tensor(0.75 * LN2 / 2))
    torch.testing.assert_close(cls, torch.tensor((6 * LN2 - 1.5 * LN3) / 2))
    expected = (3.75 + 0.75 * LN2 + 6 * LN2 - 1.5 * LN3) / 2
    torch.testing.assert_close(total, torch.tensor(expected))
    assert abs(expected - 3.390413) < 1e-6


def test_loss_without_any_object_is_negatives_over_one():
    """num_fg = max(0, 1): the 8 negatives of two empty images, 8·0.0625 ln 2, divided by 1."""
    total, iou, obj, cls, num_fg = detection_loss(
        _hand_maps(), [torch.zeros(0, 5), torch.zeros(0, 5)], (8,), 2
    )
    assert num_fg == 1.0
    torch.testing.assert_close(total, torch.tensor(0.5 * LN2))
    assert float(iou) == 0.0 and float(cls) == 0.0
    torch.testing.assert_close(obj, torch.tensor(0.5 * LN2))


def test_object_order_within_batch_does_not_matter():
    """Padding: the object image first instead of second gives the same sums."""
    maps = _hand_maps()
    first = detection_loss(maps, _hand_targets()[::-1], (8,), 2)
    second = detection_loss(maps, _hand_targets(), (8,), 2)
    torch.testing.assert_close(first[0], second[0])


def test_half_precision_maps_give_the_float32_loss():
    """AMP forward: fp16 maps are decoded and assigned in float32, so the same positives."""
    total, *_, num_fg = detection_loss([_hand_maps()[0].half()], _hand_targets(), (8,), 2)
    assert total.dtype == torch.float32 and num_fg == 2.0
    torch.testing.assert_close(
        total, torch.tensor((3.75 + 0.75 * LN2 + 6 * LN2 - 1.5 * LN3) / 2), rtol=2e-3, atol=0.0
    )


def test_together_loss_weights_detection_and_restoration():
    """0.2·L_det + 0.8·MSE(dehazed, clean): MSE of 0 against 0.5 everywhere is 0.25."""
    dehazed, clean = torch.zeros(2, 3, 16, 16), torch.full((2, 3, 16, 16), 0.5)
    terms = together_loss(_hand_maps(), dehazed, clean, _hand_targets(), (8,), 2)
    detection = (3.75 + 0.75 * LN2 + 6 * LN2 - 1.5 * LN3) / 2
    torch.testing.assert_close(terms.restoration, torch.tensor(0.25))
    torch.testing.assert_close(terms.total, torch.tensor(0.2 * detection + 0.8 * 0.25))


# ---------------------------------------------------------------------------------------------
# SimOTA regions and matching on one row of stride-8 anchors, centres x = 4, 12, 20, ... and
# y = 4. Every prediction equals the object's box (IoU 1), so k = min(10, m) for m candidates
# and an object takes every candidate: the positives show the candidate region exactly.


def _row_case(width: int, boxes: list[list[float]], classes: list[int], cls_logits=(-3.0, 3.0)):
    centres = torch.tensor([[4.0 + 8.0 * i, 4.0] for i in range(width)])
    gt_boxes = torch.tensor(boxes)
    pred = gt_boxes[0].expand(width, 4).clone()
    return (
        gt_boxes,
        torch.tensor(classes),
        pred,
        torch.full((width,), 20.0),
        torch.tensor([list(cls_logits)] * width),
        centres,
        torch.full((width,), 8.0),
    )


def _both_assignments(case):
    """(foreground indices, matched objects) from simota_assign and from the batched version."""
    gt_boxes, gt_classes, pred, obj, cls, centres, strides = case
    single = simota_assign(gt_boxes, gt_classes, pred, obj, cls, centres, strides)
    batched = simota_assign_batched(
        gt_boxes[None],
        gt_classes[None],
        torch.ones(1, len(gt_boxes), dtype=torch.bool),
        pred[None],
        obj[None],
        cls[None],
        centres,
        strides,
    )
    fg = single.foreground.nonzero().squeeze(1).tolist()
    assert batched.foreground[0].nonzero().squeeze(1).tolist() == fg
    assert batched.matched_gt[0, batched.foreground[0]].tolist() == single.matched_gt.tolist()
    return fg, single.matched_gt.tolist()


def test_in_box_is_strict_and_candidates_are_box_or_centre_region():
    """Box x in (4, 60): the anchors AT x = 4 and x = 60 are outside (upstream: deltas > 0).

    Centre region x in (12, 52) gives anchors 2..5; the box adds 1 (x = 12) and 6 (x = 52): the
    union, 6 candidates, all taken (k = 6).
    """
    fg, matched = _both_assignments(_row_case(8, [[32.0, 4.0, 56.0, 8.0]], [1]))
    assert fg == [1, 2, 3, 4, 5, 6]
    assert matched == [0] * 6


def test_centre_region_is_strict_at_two_and_a_half_strides():
    """Box x in (24, 40) holds anchors 3, 4; the centre region (32 ± 20) = (12, 52) adds 2 and
    5; the anchors AT x = 12 and x = 52, exactly 2.5 strides away, are outside."""
    fg, _ = _both_assignments(_row_case(8, [[32.0, 4.0, 16.0, 8.0]], [1]))
    assert fg == [2, 3, 4, 5]


@pytest.mark.parametrize(("classes", "winner"), [([0, 1], 1), ([1, 0], 0)])
def test_contested_anchor_goes_to_the_object_it_costs_least(classes, winner):
    """Two objects on the same box, classes 0 and 1; every anchor is confident in class 1.

    Both objects take all 4 candidates (anchors 2..5); each anchor goes to the class-1 object,
    whose class cost is 0.27 against 5.25, whichever index it has. The other object ends with
    no positive: upstream does not hand it another anchor.
    """
    box = [32.0, 4.0, 16.0, 8.0]
    fg, matched = _both_assignments(_row_case(8, [box, box], classes))
    assert fg == [2, 3, 4, 5]
    assert matched == [winner] * 4


def test_dynamic_k_sums_only_the_ten_best_ious():
    """Box x in (12, 116) holds anchors 2..13: 12 candidates of IoU 1, but k = Σ top-10 = 10.

    The four anchors also in the centre region (x = 52..76, anchors 6..9) are the cheapest.
    """
    fg, _ = _both_assignments(_row_case(16, [[64.0, 4.0, 104.0, 8.0]], [1]))
    assert len(fg) == 10
    assert set(range(6, 10)) <= set(fg) <= set(range(2, 14))


def test_dynamic_k_is_at_least_one():
    """Predictions 4x4 inside the 104x8 box: IoU 16/832 each, Σ top-10 = 0.19, so k = 1."""
    case = list(_row_case(16, [[64.0, 4.0, 104.0, 8.0]], [1]))
    case[2] = torch.tensor([[64.0, 4.0, 4.0, 4.0]]).expand(16, 4).clone()
    fg, _ = _both_assignments(case)
    assert len(fg) == 1 and fg[0] in range(6, 10)

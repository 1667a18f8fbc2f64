"""Hand-computed checks of the helpers that test_simota_batched.py's oracle is built from.

That oracle reuses `_flatten_maps`, `box_iou_cxcywh_pairs` and `simota_assign` from the code
under test, so here each of them meets expectations worked out by hand and written as literals.
"""

from __future__ import annotations

import math

import torch

from togethernet_ros.training.detection_loss import _flatten_maps, box_iou_cxcywh_pairs
from togethernet_ros.training.simota import box_iou_cxcywh, simota_assign

LN2, LN3 = math.log(2.0), math.log(3.0)

# ---------------------------------------------------------------------------------------------
# IoU of centre-size (cx, cy, w, h) boxes


def test_box_iou_cxcywh_pairs_by_hand():
    boxes_a = torch.tensor(
        [
            [0.0, 0.0, 10.0, 10.0],  # x in [-5, 5]
            [3.0, 4.0, 6.0, 8.0],
            [0.0, 0.0, 10.0, 10.0],
            [0.0, 0.0, 10.0, 10.0],
            [0.0, 0.0, 10.0, 10.0],
            [0.0, 0.0, 4.0, 4.0],  # [-2, 2] x [-2, 2]
        ]
    )
    boxes_b = torch.tensor(
        [
            [5.0, 0.0, 10.0, 10.0],  # x in [0, 10]: overlap 5 x 10 = 50, union 150
            [3.0, 4.0, 6.0, 8.0],  # identical
            [20.0, 0.0, 10.0, 10.0],  # disjoint
            [10.0, 0.0, 10.0, 10.0],  # touching edges only: zero overlap
            [1.0, 1.0, 4.0, 5.0],  # inside: 20 / 100
            [2.0, 2.0, 4.0, 4.0],  # [0, 4] x [0, 4]: overlap 2 x 2 = 4, union 16 + 16 - 4 = 28
        ]
    )
    expected = torch.tensor([50 / 150, 1.0, 0.0, 0.0, 20 / 100, 4 / 28])
    iou = box_iou_cxcywh_pairs(boxes_a, boxes_b)
    assert iou.shape == (6,)  # element-wise over matching rows, not a 6 x 6 table
    torch.testing.assert_close(iou, expected)
    torch.testing.assert_close(box_iou_cxcywh_pairs(boxes_b, boxes_a), expected)  # symmetric


def test_box_iou_cxcywh_table_by_hand():
    """The pairwise (n x m) IoU that simota_assign uses, on 2 x 3 boxes."""
    boxes_a = torch.tensor([[0.0, 0.0, 10.0, 10.0], [100.0, 100.0, 2.0, 2.0]])
    boxes_b = torch.tensor(
        [[5.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0], [100.0, 100.0, 4.0, 1.0]]
    )
    # Row 2: [99, 101]^2 against [98, 102] x [99.5, 100.5]: overlap 2 x 1 = 2, union 4 + 4 - 2.
    expected = torch.tensor([[1 / 3, 1.0, 0.0], [0.0, 0.0, 2 / 6]])
    table = box_iou_cxcywh(boxes_a, boxes_b)
    assert table.shape == (2, 3)
    torch.testing.assert_close(table, expected)


# ---------------------------------------------------------------------------------------------
# _flatten_maps: YOLOX decoding, cx = (tx + col) * stride, cy = (ty + row) * stride,
# w = exp(tw) * stride, h = exp(th) * stride; anchors in row-major order, level after level;
# anchor centres (col + 0.5, row + 0.5) * stride; objectness and class logits passed through.


def _tiny_maps() -> list[torch.Tensor]:
    """Image 0 of a 2-image batch: a 2x3 stride-8 map and a 1x2 stride-16 map, 1 class."""
    stride8 = torch.tensor(
        [
            [[0.5, 0.25, 0.0], [0.75, -0.5, 1.0]],  # tx
            [[0.5, 0.0, 0.25], [0.0, 0.5, -0.25]],  # ty
            [[0.0, LN2, 0.0], [0.0, 0.0, -LN2]],  # tw
            [[0.0, 0.0, LN2], [2 * LN2, 0.0, 0.0]],  # th
            [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]],  # objectness logit
            [[-1.0, -2.0, -3.0], [-4.0, -5.0, -6.0]],  # class logit
        ]
    )
    stride16 = torch.tensor(
        [[[0.5, 0.0]], [[0.25, 1.0]], [[LN3, 0.0]], [[0.0, -2 * LN2]], [[7.0, 8.0]], [[-7.0, -8.0]]]
    )
    maps = []
    for image0 in (stride8, stride16):
        image1 = image0.clone()
        image1[0] += 0.5  # image 1: tx + 0.5 (cx + stride / 2) ...
        image1[4:] *= 10.0  # ... and ten times the logits
        maps.append(torch.stack([image0, image1]))
    return maps


def test_flatten_maps_by_hand():
    outputs, centres, strides = _flatten_maps(_tiny_maps(), (8, 16))
    # Rows: anchors (row, col) = (0,0) (0,1) (0,2) (1,0) (1,1) (1,2) at stride 8, then (0,0)
    # (0,1) at stride 16. E.g. stride-8 (1,1): cx = (-0.5 + 1) * 8 = 4, cy = (0.5 + 1) * 8 = 12;
    # stride-16 (0,0): cx = 0.5 * 16 = 8, cy = 0.25 * 16 = 4, w = 3 * 16 = 48, h = 1 * 16 = 16.
    expected_image0 = torch.tensor(
        [
            # cx,   cy,   w,    h,   obj,  cls
            [4.0, 4.0, 8.0, 8.0, 1.0, -1.0],
            [10.0, 0.0, 16.0, 8.0, 2.0, -2.0],
            [16.0, 2.0, 8.0, 16.0, 3.0, -3.0],
            [6.0, 8.0, 8.0, 32.0, 4.0, -4.0],
            [4.0, 12.0, 8.0, 8.0, 5.0, -5.0],
            [24.0, 6.0, 4.0, 8.0, 6.0, -6.0],
            [8.0, 4.0, 48.0, 16.0, 7.0, -7.0],
            [16.0, 16.0, 16.0, 4.0, 8.0, -8.0],
        ]
    )
    expected_image1 = expected_image0.clone()
    expected_image1[:6, 0] += 4.0  # 0.5 * stride 8
    expected_image1[6:, 0] += 8.0  # 0.5 * stride 16
    expected_image1[:, 4:] *= 10.0
    assert outputs.shape == (2, 8, 6) and outputs.dtype == torch.float32
    torch.testing.assert_close(outputs[0], expected_image0)
    torch.testing.assert_close(outputs[1], expected_image1)
    expected_centres = torch.tensor(
        [
            [4.0, 4.0],  # stride 8
            [12.0, 4.0],
            [20.0, 4.0],
            [4.0, 12.0],
            [12.0, 12.0],
            [20.0, 12.0],
            [8.0, 8.0],  # stride 16
            [24.0, 8.0],
        ]
    )
    torch.testing.assert_close(centres, expected_centres)
    torch.testing.assert_close(strides, torch.tensor([8.0] * 6 + [16.0] * 2))


def test_flatten_maps_gives_float32_for_half_maps():
    outputs, _, _ = _flatten_maps([m.half() for m in _tiny_maps()], (8, 16))
    assert outputs.dtype == torch.float32
    torch.testing.assert_close(
        outputs[0, 6, :4], torch.tensor([8.0, 4.0, 48.0, 16.0]), rtol=2e-3, atol=0.0
    )


# ---------------------------------------------------------------------------------------------
# simota_assign on one object (plus a variant with a second, far-away object)
#
# Object A: class 1, (cx, cy, w, h) = (50, 50, 60, 20), so its box is x in (20, 80), y in
# (40, 60); all anchors have stride 8, so its centre region (radius 2.5 * 8 = 20) is x, y in
# (30, 70). Every prediction is centred on (50, 50) with height 20, so IoU = w * 20 / 1200.
#
#   anchor  centre     in box  in centre  pred w  IoU    class logits (c0, c1)
#   a0      (50, 50)   yes     yes        60      1      (-3, 3)
#   a1      (60, 50)   yes     yes        30      1/2    ( 3,-3)  confident in the WRONG class
#   a2      (75, 50)   yes     no         60      1      (-3, 3)  candidate, +1e5 cost
#   a3      (50, 65)   no      yes        6|15    .1|.25 (-3, 3)  candidate, +1e5 cost
#   a4      (100, 100) no      no         60      (1)    (-3, 3)  not a candidate at all
#   a5      (40, 45)   yes     yes        20      1/3    (-3, 3)
#
# dynamic k = floor(sum of the top-min(10, 5 candidates) IoUs), over a0 a1 a2 a3 a5 only:
#   a3 w = 6:  1 + 1/2 + 1 + 0.1 + 1/3 = 2.93  -> k = 2
#   a3 w = 15: 1 + 1/2 + 1 + 0.25 + 1/3 = 3.08 -> k = 3
# (Were the non-candidate a4 counted, the first sum would be 3.93 and k = 3.)
#
# Objectness logits are 20 (sigmoid = 1 in float32), so each class probability is
# q = sqrt(sigmoid(logit)): q(3) = 0.97600, q(-3) = 0.21777. The class cost is the BCE against
# one-hot(class 1): -log q(c1) - log(1 - q(c0)).
#   right anchors, logits (-3, 3): -log 0.97600 - log(1 - 0.21777) = 0.0243 + 0.2456 = 0.2699
#   a1, logits (3, -3):            -log 0.21777 - log(1 - 0.97600) = 1.5243 + 3.7297 = 5.2540
# cost = class cost + 3 * -log(IoU) (+ 1e5 outside box AND centre region):
#   a0 0.2699 + 0          = 0.270
#   a5 0.2699 + 3 ln 3     = 3.566
#   a1 5.2540 + 3 ln 2     = 7.333
#   a2 0.2699 + 0   + 1e5,  a3 0.2699 + 3 ln 10 (or 3 ln 4) + 1e5
# k = 2 takes a0 and a5 (a1 loses on its class; a2 loses on its region despite IoU 1).
# k = 3 takes a0, a5 and a1. (With class 0 as the target instead, a1 would cost 2.35 and a5
# 8.55, so k = 2 would take a0 and a1: the test sees the class cost and its target class.)

ANCHOR_CENTRES = torch.tensor(
    [[50.0, 50.0], [60.0, 50.0], [75.0, 50.0], [50.0, 65.0], [100.0, 100.0], [40.0, 45.0]]
)
RIGHT, WRONG = [-3.0, 3.0], [3.0, -3.0]


def _single_object_case(a3_width: float):
    gt_boxes = torch.tensor([[50.0, 50.0, 60.0, 20.0]])
    gt_classes = torch.tensor([1])
    widths = [60.0, 30.0, 60.0, a3_width, 60.0, 20.0]
    pred_boxes = torch.tensor([[50.0, 50.0, width, 20.0] for width in widths])
    obj_logits = torch.full((6,), 20.0)
    cls_logits = torch.tensor([RIGHT, WRONG, RIGHT, RIGHT, RIGHT, RIGHT])
    return gt_boxes, gt_classes, pred_boxes, obj_logits, cls_logits


def _assign(gt_boxes, gt_classes, pred_boxes, obj_logits, cls_logits, centres):
    return simota_assign(
        gt_boxes,
        gt_classes,
        pred_boxes,
        obj_logits,
        cls_logits,
        centres,
        torch.full((len(centres),), 8.0),
        center_radius=2.5,
        topk=10,
        iou_weight=3.0,
    )


def test_simota_single_object_dynamic_k_2_by_hand():
    assignment = _assign(*_single_object_case(a3_width=6.0), ANCHOR_CENTRES)
    assert assignment.foreground.tolist() == [True, False, False, False, False, True]
    assert assignment.matched_gt.tolist() == [0, 0]
    torch.testing.assert_close(assignment.matched_iou, torch.tensor([1.0, 1 / 3]))


def test_simota_single_object_dynamic_k_3_by_hand():
    assignment = _assign(*_single_object_case(a3_width=15.0), ANCHOR_CENTRES)
    assert assignment.foreground.tolist() == [True, True, False, False, False, True]
    assert assignment.matched_gt.tolist() == [0, 0, 0]
    torch.testing.assert_close(assignment.matched_iou, torch.tensor([1.0, 0.5, 1 / 3]))


def test_simota_second_far_object_gets_its_own_anchor_by_hand():
    """Object B: class 0, (150, 50, 20, 20), with anchor a6 at (150, 50) predicting it exactly.

    A's and B's regions do not overlap (B's centre region is x in (130, 170)). a6 becomes a
    sixth candidate whose prediction has IoU 0 with A, so A still gets k = 2 and a0, a5. For B
    the IoUs are 0 everywhere but a6 (IoU 1): k = 1, and a6 (in B's box and centre, logits
    (3, -3) = confident in class 0, cost 0.27) is far cheaper than any anchor outside B's
    regions (3 * -log(1e-8) + 1e5). So a6 goes to object index 1.
    """
    gt_boxes, gt_classes, pred_boxes, obj_logits, cls_logits = _single_object_case(6.0)
    assignment = _assign(
        torch.cat([gt_boxes, torch.tensor([[150.0, 50.0, 20.0, 20.0]])]),
        torch.cat([gt_classes, torch.tensor([0])]),
        torch.cat([pred_boxes, torch.tensor([[150.0, 50.0, 20.0, 20.0]])]),
        torch.cat([obj_logits, torch.tensor([20.0])]),
        torch.cat([cls_logits, torch.tensor([WRONG])]),
        torch.cat([ANCHOR_CENTRES, torch.tensor([[150.0, 50.0]])]),
    )
    assert assignment.foreground.tolist() == [True, False, False, False, False, True, True]
    assert assignment.matched_gt.tolist() == [0, 0, 1]
    torch.testing.assert_close(assignment.matched_iou, torch.tensor([1.0, 1 / 3, 1.0]))

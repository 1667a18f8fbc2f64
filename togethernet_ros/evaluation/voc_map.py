"""VOC AP@IoU as in upstream get_map.py: all-point interpolation, +1-pixel IoU, difficult ignored.

mAP is the mean over classes that have at least one non-difficult ground-truth object (a class
without any is left out of the mean, as get_map.py does). Like get_map.py, which scores the
detection-results files it wrote with ``int(left)`` etc., detection boxes can be truncated to
whole pixels (``eval`` and ``bag eval`` do by default). Equal scores are ranked in get_map.py's
file order (image ids sorted as ``<id>.txt``, then the image's own order), so the mAP never
depends on the order images come in.
get_map.py also cuts scores to 6 characters (4 decimals); that only reorders detections whose
scores differ by less than 1e-4 and is not reproduced. Boxes are scored as given: `eval` gives
them as get_map.py has them, detections unclipped and VOC ground truth as written in the XML
(see `DetectorBase.clip_boxes` and voc_ground_truth).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from togethernet_ros.evaluation.records import ImageDetections, ImageGroundTruth


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """All-point interpolated AP (VOC2010+): area under the monotone precision envelope."""
    recall = np.concatenate(([0.0], np.asarray(recall, np.float64), [1.0]))
    precision = np.concatenate(([0.0], np.asarray(precision, np.float64), [0.0]))
    # Envelope: precision at recall r is the best precision at any recall >= r.
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.where(recall[1:] != recall[:-1])[0]
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def iou_plus_one(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box against many with the VOC "+1 pixel" width/height convention.

    0 where the boxes do not overlap by a positive +1 width and height: get_map.py leaves such
    a pair out. Ground truth is scored as written, so an inverted box (xmax < xmin) can be
    here: its +1 area can be 0 or negative, and the plain ratio would be NaN, which ranks
    first in an argmax and would hide a real match.
    """
    iw = np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]) + 1.0
    ih = np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]) + 1.0
    overlapping = (iw > 0.0) & (ih > 0.0)
    inter = np.where(overlapping, iw * ih, 0.0)
    area = (box[2] - box[0] + 1.0) * (box[3] - box[1] + 1.0)
    areas = (boxes[:, 2] - boxes[:, 0] + 1.0) * (boxes[:, 3] - boxes[:, 1] + 1.0)
    # Where both overlap positively, each +1 side is at least the overlap's, so the union is
    # positive; elsewhere the ratio is not used.
    union = np.where(overlapping, area + areas - inter, 1.0)
    return inter / union


@dataclass
class ClassCurve:
    """Precision/recall of one class plus the counts behind them."""

    recall: np.ndarray
    precision: np.ndarray
    scores: np.ndarray
    num_gt: int
    ap: float


def _file_order(image_id: str) -> str:
    # get_map.py reads one detection-results file per image in sorted path order, then
    # stable-sorts by score: ties go to the image whose "<id>.txt" sorts first.
    return f"{image_id}.txt"


def class_curve(
    detections: Mapping[str, ImageDetections],
    ground_truth: Mapping[str, ImageGroundTruth],
    class_id: int,
    iou_threshold: float,
) -> ClassCurve:
    """Match one class's detections (best score first, ties in file order) to its ground truth."""
    gt_boxes, gt_difficult, gt_used = {}, {}, {}
    num_gt = 0
    for image_id, truth in ground_truth.items():
        mask = truth.class_ids == class_id
        gt_boxes[image_id] = truth.boxes[mask]
        gt_difficult[image_id] = truth.difficult[mask]
        gt_used[image_id] = np.zeros(int(mask.sum()), bool)
        num_gt += int((~truth.difficult[mask]).sum())
    image_ids, scores, boxes = [], [], []
    for image_id in sorted(detections, key=_file_order):
        found = detections[image_id]
        mask = found.class_ids == class_id
        image_ids += [image_id] * int(mask.sum())
        scores.append(found.scores[mask])
        boxes.append(found.boxes[mask])
    scores = np.concatenate(scores) if scores else np.zeros(0)
    boxes = np.concatenate(boxes) if boxes else np.zeros((0, 4))
    order = np.argsort(-scores, kind="stable")
    tp = np.zeros(len(order))
    fp = np.zeros(len(order))
    for rank, index in enumerate(order):
        image_id = image_ids[index]
        candidates = gt_boxes.get(image_id, np.zeros((0, 4)))
        if len(candidates) == 0:
            fp[rank] = 1
            continue
        overlaps = iou_plus_one(boxes[index], candidates)
        best = int(np.argmax(overlaps))
        if overlaps[best] >= iou_threshold:
            if gt_difficult[image_id][best]:
                continue  # matched a difficult object: neither TP nor FP
            if not gt_used[image_id][best]:
                tp[rank] = 1
                gt_used[image_id][best] = True
            else:
                fp[rank] = 1
        else:
            fp[rank] = 1
    tp_cum, fp_cum = np.cumsum(tp), np.cumsum(fp)
    recall = tp_cum / max(num_gt, 1)
    precision = tp_cum / np.maximum(tp_cum + fp_cum, np.finfo(np.float64).eps)
    ap = voc_ap(recall, precision) if num_gt > 0 else float("nan")
    return ClassCurve(recall, precision, scores[order], num_gt, ap)


def evaluate_voc(
    detections_by_image: Mapping[str, object],
    ground_truth_by_image: Mapping[str, ImageGroundTruth],
    class_names: Sequence[str],
    iou_threshold: float = 0.5,
    return_curves: bool = False,
    whole_pixel_boxes: bool = False,
) -> dict:
    """Per-class AP and mAP with the published VOC protocol.

    ``detections_by_image`` maps image id → anything with ``boxes``/``scores``/``class_ids``;
    images missing there simply have no detections. Detections on images without ground truth
    count as false positives. Returns ``{"mAP", "ap": {class: AP}, "num_gt": {...},
    "iou_threshold", "whole_pixel_boxes"}`` (+ ``"curves"`` with :class:`ClassCurve` when
    ``return_curves``).
    AP of a class without ground truth is None and excluded from the mAP.
    ``whole_pixel_boxes``: truncate detection boxes toward zero as get_map.py does. That is
    only faithful against whole-pixel ground truth (VOC XML), which is what ``eval`` and
    ``bag eval`` pass it for; against sub-pixel ground truth (YOLO labels, a teacher's
    pseudo-labels) truncation shifts every box up-left by up to a pixel, so the default scores
    boxes as given.
    """
    detections = {
        key: ImageDetections.from_any(value) for key, value in detections_by_image.items()
    }
    if whole_pixel_boxes:
        detections = {
            key: ImageDetections(np.trunc(found.boxes), found.scores, found.class_ids)
            for key, found in detections.items()
        }
    unknown = {int(c) for found in detections.values() for c in found.class_ids} - set(
        range(len(class_names))
    )
    if unknown:
        raise ValueError(
            f"detections use class ids {sorted(unknown)} outside {len(class_names)} classes"
        )
    curves = {
        name: class_curve(detections, ground_truth_by_image, class_id, iou_threshold)
        for class_id, name in enumerate(class_names)
    }
    present = [curve.ap for curve in curves.values() if curve.num_gt > 0]
    result = {
        "mAP": float(np.mean(present)) if present else float("nan"),
        "ap": {name: (None if curve.num_gt == 0 else curve.ap) for name, curve in curves.items()},
        "num_gt": {name: curve.num_gt for name, curve in curves.items()},
        "iou_threshold": iou_threshold,
        "whole_pixel_boxes": whole_pixel_boxes,
    }
    if return_curves:
        result["curves"] = curves
    return result

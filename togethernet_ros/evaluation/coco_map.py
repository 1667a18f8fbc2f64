"""COCO-style AP (IoU 0.50:0.95), AP50, AP75 through pycocotools.

Boxes are converted xyxy → xywh with w = x2 − x1 (COCO's continuous convention). VOC
"difficult" objects become ``iscrowd=1`` so that pycocotools ignores detections on them, the
closest COCO analogue of VOC's "neither TP nor FP".
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence

import numpy as np

from togethernet_ros.evaluation.records import ImageDetections, ImageGroundTruth

COCO_STAT_NAMES = (
    "AP",
    "AP50",
    "AP75",
    "AP_small",
    "AP_medium",
    "AP_large",
    "AR1",
    "AR10",
    "AR100",
    "AR_small",
    "AR_medium",
    "AR_large",
)


def to_coco_dicts(
    detections_by_image: Mapping[str, object],
    ground_truth_by_image: Mapping[str, ImageGroundTruth],
    class_names: Sequence[str],
) -> tuple[dict, list[dict]]:
    """Build a COCO ground-truth dataset dict and a results list (image ids numbered 1..N)."""
    numbers = {image_id: index + 1 for index, image_id in enumerate(sorted(ground_truth_by_image))}
    images, annotations = [], []
    for image_id, truth in ground_truth_by_image.items():
        images.append(
            {
                "id": numbers[image_id],
                "file_name": image_id,
                "width": int(truth.width),
                "height": int(truth.height),
            }
        )
        for box, class_id, difficult in zip(
            truth.boxes, truth.class_ids, truth.difficult, strict=True
        ):
            x1, y1, x2, y2 = (float(v) for v in box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": numbers[image_id],
                    "category_id": int(class_id) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": int(bool(difficult)),
                }
            )
    dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": name} for i, name in enumerate(class_names)],
    }
    results = []
    for image_id, found in detections_by_image.items():
        if image_id not in numbers:
            raise ValueError(f"detections for image '{image_id}' which has no ground truth entry")
        found = ImageDetections.from_any(found)
        for box, score, class_id in zip(found.boxes, found.scores, found.class_ids, strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            results.append(
                {
                    "image_id": numbers[image_id],
                    "category_id": int(class_id) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(score),
                }
            )
    return dataset, results


# COCOeval's area ranges ("all", small, medium, large); an object counts where lo <= area <= hi.
_AREA_RANGES = {
    "all": (0.0, 1e10),
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e10),
}
_STAT_AREAS = (
    ("all",) * 3 + ("small", "medium", "large") + ("all",) * 3 + ("small", "medium", "large")
)


def _nothing_detected(annotations: list[dict]) -> dict:
    """COCO stats without a single detection: 0, or NaN where no object is scored (crowd only)."""
    scored = [a["area"] for a in annotations if not a["iscrowd"]]
    stats = {}
    for name, area in zip(COCO_STAT_NAMES, _STAT_AREAS, strict=True):
        low, high = _AREA_RANGES[area]
        stats[name] = 0.0 if any(low <= value <= high for value in scored) else float("nan")
    return stats


def evaluate_coco(
    detections_by_image: Mapping[str, object],
    ground_truth_by_image: Mapping[str, ImageGroundTruth],
    class_names: Sequence[str],
) -> dict:
    """COCO stats (``AP``, ``AP50``, ``AP75``, ... as floats) computed by pycocotools' COCOeval.

    A metric with no ground truth to score (no objects at all, none of a size) is NaN.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dataset, results = to_coco_dicts(detections_by_image, ground_truth_by_image, class_names)
    if not dataset["annotations"]:
        return {name: float("nan") for name in COCO_STAT_NAMES}
    if not results:
        # pycocotools cannot load an empty result list (IndexError in loadRes). Nothing found
        # scores 0 where there is something to find, and stays undefined where there is not.
        return _nothing_detected(dataset["annotations"])
    # pycocotools prints progress; keep our output clean.
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = dataset
        truth.createIndex()
        predicted = truth.loadRes(results)
        evaluator = COCOeval(truth, predicted, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = np.asarray(evaluator.stats, np.float64)
    # pycocotools writes -1 for a metric without ground truth to score (e.g. AP_small with
    # no small objects); -1 averaged or compared as a number is wrong, so it becomes NaN.
    stats[stats < 0] = np.nan
    return {name: float(value) for name, value in zip(COCO_STAT_NAMES, stats, strict=True)}

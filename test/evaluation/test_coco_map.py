"""Our COCO conversion gives exactly the numbers pycocotools computes from JSON files."""

import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from togethernet_ros.evaluation.coco_map import evaluate_coco
from togethernet_ros.evaluation.records import ImageDetections, ImageGroundTruth

CLASSES = ("person", "bicycle", "car")


def _random_case(seed: int):
    rng = np.random.default_rng(seed)
    truth, detections = {}, {}
    for index in range(12):
        count = int(rng.integers(1, 6))
        xy = rng.uniform(0, 300, (count, 2))
        wh = rng.uniform(8, 120, (count, 2))
        boxes = np.concatenate([xy, xy + wh], 1)
        classes = rng.integers(0, 3, count)
        truth[f"img{index:03d}"] = ImageGroundTruth(boxes, classes, width=440, height=440)
        # Detections: jittered copies (some wrong class), plus clutter.
        jitter = boxes + rng.normal(0, 6, boxes.shape)
        det_classes = np.where(rng.uniform(size=count) < 0.8, classes, (classes + 1) % 3)
        clutter_xy = rng.uniform(0, 300, (3, 2))
        clutter = np.concatenate([clutter_xy, clutter_xy + 40], 1)
        detections[f"img{index:03d}"] = ImageDetections(
            np.concatenate([jitter, clutter]),
            rng.uniform(0.05, 1.0, count + 3),
            np.concatenate([det_classes, rng.integers(0, 3, 3)]),
        )
    return truth, detections


def _pycocotools_from_files(tmp_path, truth, detections):
    numbers = {image_id: i + 1 for i, image_id in enumerate(sorted(truth))}
    gt = {"images": [], "annotations": [], "categories": []}
    gt["categories"] = [{"id": i + 1, "name": n} for i, n in enumerate(CLASSES)]
    for image_id, entry in truth.items():
        gt["images"].append({"id": numbers[image_id], "width": 440, "height": 440})
        for box, c in zip(entry.boxes, entry.class_ids, strict=True):
            w, h = box[2] - box[0], box[3] - box[1]
            gt["annotations"].append(
                {
                    "id": len(gt["annotations"]) + 1,
                    "image_id": numbers[image_id],
                    "category_id": int(c) + 1,
                    "bbox": [box[0], box[1], w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    results = [
        {
            "image_id": numbers[image_id],
            "category_id": int(c) + 1,
            "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
            "score": float(s),
        }
        for image_id, entry in detections.items()
        for b, s, c in zip(entry.boxes, entry.scores, entry.class_ids, strict=True)
    ]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(results))
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(tmp_path / "gt.json"))
        evaluator = COCOeval(coco, coco.loadRes(str(tmp_path / "dt.json")), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_pycocotools_on_files_exactly(tmp_path, seed):
    truth, detections = _random_case(seed)
    ours = evaluate_coco(detections, truth, CLASSES)
    reference = _pycocotools_from_files(tmp_path, truth, detections)
    assert 0.05 < ours["AP"] < 0.95  # a non-trivial case
    assert [ours["AP"], ours["AP50"], ours["AP75"]] == list(reference[:3])


def test_perfect_detections_score_one_and_difficult_is_ignored():
    truth = {
        "a": ImageGroundTruth(
            [[10, 10, 60, 90], [100, 100, 140, 150]], [0, 2], [False, True], 200, 200
        )
    }
    perfect = {"a": ImageDetections([[10, 10, 60, 90]], [0.9], [0])}
    assert evaluate_coco(perfect, truth, CLASSES)["AP"] == pytest.approx(1.0)
    # A detection on the difficult (crowd) object is not a false positive.
    with_difficult = {
        "a": ImageDetections([[10, 10, 60, 90], [100, 100, 140, 150]], [0.9, 0.95], [0, 2])
    }
    assert evaluate_coco(with_difficult, truth, CLASSES)["AP"] == pytest.approx(1.0)

"""VOC mAP against an independent re-implementation of the published get_map.py protocol.

The reference below follows get_map.py step by step through the files it works on: one
ground-truth and one detection-results text file per image (detection lines written as
``yolo.get_map_txt`` writes them: the score's first 6 characters, ``int()`` of every box edge),
read back in sorted path order, ranked by a stable sort on score, matched with the +1-pixel IoU
to the best-overlapping object of the class (difficult ones neither TP nor FP), all-point AP,
mean over the classes with a non-difficult object.
"""

import glob
import math
from pathlib import Path

import numpy as np
import pytest

from togethernet_ros.evaluation.records import ImageDetections, ImageGroundTruth
from togethernet_ros.evaluation.voc_map import evaluate_voc

NAMES = ("person", "bicycle", "car", "motorbike", "bus")


def _write_get_map_files(folder: Path, detections: dict, truth: dict) -> None:
    (folder / "ground-truth").mkdir()
    (folder / "detection-results").mkdir()
    for image_id, gt in truth.items():
        lines = []
        for box, label, difficult in zip(gt.boxes, gt.class_ids, gt.difficult, strict=True):
            edges = " ".join(str(int(v)) for v in box)
            lines.append(f"{NAMES[label]} {edges}" + (" difficult" if difficult else ""))
        (folder / "ground-truth" / f"{image_id}.txt").write_text("\n".join(lines))
    for image_id, found in detections.items():
        lines = []
        for box, score, label in zip(found.boxes, found.scores, found.class_ids, strict=True):
            edges = " ".join(str(int(v)) for v in box)
            lines.append(f"{NAMES[label]} {str(np.float32(score))[:6]} {edges}")
        (folder / "detection-results" / f"{image_id}.txt").write_text("\n".join(lines))


def _iou_get_map(a: list[float], b: list[float]) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0]) + 1
    height = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if width <= 0 or height <= 0:
        return -1.0
    union = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return width * height / (union - width * height)


def _reference_map(folder: Path, threshold: float = 0.5) -> tuple[float, dict[str, float]]:
    truth, counts = {}, {}
    for path in map(Path, sorted(glob.glob(str(folder / "ground-truth" / "*.txt")))):
        objects = []
        for line in path.read_text().splitlines():
            parts = line.split()
            difficult = parts[-1] == "difficult"
            objects.append(
                {
                    "name": parts[0],
                    "box": [float(v) for v in parts[1:5]],
                    "difficult": difficult,
                    "used": False,
                }
            )
            if not difficult:
                counts[parts[0]] = counts.get(parts[0], 0) + 1
        truth[path.stem] = objects
    aps = {}
    for name in sorted(counts):
        ranked = []
        # get_map.py: glob, list.sort() of the path strings.
        for path in map(Path, sorted(glob.glob(str(folder / "detection-results" / "*.txt")))):
            for line in path.read_text().splitlines():
                parts = line.split()
                if parts[0] == name:
                    ranked.append((float(parts[1]), path.stem, [float(v) for v in parts[2:6]]))
        ranked.sort(key=lambda entry: entry[0], reverse=True)  # stable, as list.sort is
        tp, fp = [], []
        for _, image_id, box in ranked:
            best, match = -1.0, None
            for obj in truth[image_id]:
                if obj["name"] == name:
                    overlap = _iou_get_map(box, obj["box"])
                    if overlap > best:
                        best, match = overlap, obj
            hit = miss = 0
            if best >= threshold:
                if not match["difficult"]:
                    if match["used"]:
                        miss = 1
                    else:
                        hit, match["used"] = 1, True
            else:
                miss = 1
            tp.append(hit)
            fp.append(miss)
        tp_sum, fp_sum = np.cumsum(tp), np.cumsum(fp)
        recall = [0.0, *(tp_sum / max(counts[name], 1)).tolist(), 1.0]
        precision = [0.0, *(tp_sum / np.maximum(tp_sum + fp_sum, 1)).tolist(), 0.0]
        for i in range(len(precision) - 2, -1, -1):
            precision[i] = max(precision[i], precision[i + 1])
        aps[name] = sum(
            (recall[i] - recall[i - 1]) * precision[i]
            for i in range(1, len(recall))
            if recall[i] != recall[i - 1]
        )
    return sum(aps.values()) / len(aps), aps


def _random_case(seed: int) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    truth, detections = {}, {}
    # Ids whose sorted order differs from the order they are given in, and from "<id>.txt"
    # order ("a-b.txt" < "a.txt" though "a" < "a-b").
    ids = ["a", "a-b", "b_10", "b_9", "img 2", "img10", "img2", "z"]
    rng.shuffle(ids)
    for image_id in ids:
        count = int(rng.integers(0, 6))  # some images hold no object at all
        corner = rng.integers(0, 300, (count, 2))
        size = rng.integers(4, 80, (count, 2))
        boxes = np.concatenate([corner, corner + size], axis=1).astype(float)
        labels = rng.choice([0, 2, 4], count)  # bicycle and motorbike: no ground truth
        truth[image_id] = ImageGroundTruth(boxes, labels, rng.random(count) < 0.15, 400, 400)
        if rng.random() < 0.15:
            continue  # an image without detections
        # Hits with sub-pixel noise (float boxes), duplicates of them, and false positives.
        hits = boxes + rng.normal(0, 2.0, boxes.shape)
        duplicates = hits[: int(rng.integers(0, count + 1))] + rng.normal(0, 1.0, (1, 4))
        wrong = int(rng.integers(0, 5))
        corner = rng.uniform(0, 300, (wrong, 2))
        stray = np.concatenate([corner, corner + rng.uniform(4, 80, (wrong, 2))], axis=1)
        found = np.concatenate([hits, duplicates, stray])
        classes = np.concatenate(
            [labels, labels[: len(duplicates)], rng.choice([0, 1, 2, 4], wrong)]
        ).astype(int)
        # Scores on a coarse grid: many ties, within and across images, and get_map.py's
        # 6-character cut leaves them unchanged.
        scores = rng.integers(1, 12, len(found)) / 16
        detections[image_id] = ImageDetections(found, scores, classes)
    return detections, truth


@pytest.mark.parametrize("seed", range(12))
def test_map_equals_get_map_on_the_files_it_would_write(tmp_path, seed):
    detections, truth = _random_case(seed)
    _write_get_map_files(tmp_path, detections, truth)
    expected_map, expected_ap = _reference_map(tmp_path)
    result = evaluate_voc(detections, truth, NAMES, whole_pixel_boxes=True)
    assert result["mAP"] == pytest.approx(expected_map, abs=1e-12)
    for name in NAMES:
        if name in expected_ap:
            assert result["ap"][name] == pytest.approx(expected_ap[name], abs=1e-12), name
        else:
            assert result["ap"][name] is None, name  # no object: left out of the mean


def test_the_order_images_come_in_does_not_change_the_map():
    # Two detections with one score, on two images with one object each: one hits, one misses.
    # get_map.py ranks the tie in file order ("a.txt" first): FP then TP, AP = 1/2 · 1/2.
    truth = {
        "a": ImageGroundTruth([[0, 0, 9, 9]], [0]),
        "b": ImageGroundTruth([[0, 0, 9, 9]], [0]),
    }
    miss = ImageDetections([[50, 50, 59, 59]], [0.5], [0])
    hit = ImageDetections([[0, 0, 9, 9]], [0.5], [0])
    assert evaluate_voc({"a": miss, "b": hit}, truth, NAMES)["mAP"] == 0.25
    assert evaluate_voc({"b": hit, "a": miss}, truth, NAMES)["mAP"] == 0.25


def test_detection_boxes_are_truncated_to_whole_pixels_as_get_map_writes_them():
    truth = {"a": ImageGroundTruth([[0, 0, 9, 9]], [0])}
    # Exact: (9.9 · 5.9) / 100 = 0.584, a hit. As get_map.py writes it, [0, 0, 8, 4]:
    # (9 · 5) / 100 = 0.45, a miss.
    found = {"a": ImageDetections([[0, 0, 8.9, 4.9]], [0.9], [0])}
    result = evaluate_voc(found, truth, NAMES, whole_pixel_boxes=True)
    assert result["ap"]["person"] == 0.0
    assert result["whole_pixel_boxes"] is True
    assert evaluate_voc(found, truth, NAMES, whole_pixel_boxes=False)["ap"]["person"] == 1.0
    # int() truncates toward zero, also below zero: -0.7 → 0, so [-0.7, ...] still hits.
    edge = {"a": ImageDetections([[-0.7, 0, 9.2, 9.5]], [0.9], [0])}
    assert evaluate_voc(edge, truth, NAMES, whole_pixel_boxes=True)["ap"]["person"] == 1.0


def test_only_difficult_objects_leave_the_class_out_of_the_mean():
    truth = {"a": ImageGroundTruth([[0, 0, 9, 9], [20, 20, 29, 29]], [0, 2], [False, True])}
    found = {"a": ImageDetections([[0, 0, 9, 9], [20, 20, 29, 29]], [0.9, 0.8], [0, 2])}
    result = evaluate_voc(found, truth, NAMES)
    assert result["num_gt"]["car"] == 0 and result["ap"]["car"] is None
    assert result["mAP"] == 1.0
    assert math.isnan(evaluate_voc({}, {"a": ImageGroundTruth([], [])}, NAMES)["mAP"])

"""`togethernet eval` scores boxes as get_map.py does: truncated to whole pixels, unless asked."""

import json

import cv2
import numpy as np

from togethernet_ros.cli import main
from togethernet_ros.evaluation.dataset_truth import record_ground_truth
from togethernet_ros.evaluation.detection_files import save_detections
from togethernet_ros.evaluation.records import ImageDetections
from togethernet_ros.evaluation.voc_map import iou_plus_one
from togethernet_ros.training.paired_dataset import VocFogDataset
from togethernet_ros.training.synthetic_scenes import SyntheticFogDataset, write_voc_fog_dataset

CLASSES = ("person", "bicycle", "car")


def _just_over_half(truth: np.ndarray) -> np.ndarray:
    """A box inside ``truth`` ending in .99 that overlaps it (get_map.py's +1 IoU) by ≥ 0.5 as
    given and by < 0.5 once int() drops the .99."""
    for rows in range(int(truth[3] - truth[1])):
        box = truth + np.array([0, 0, -0.01, rows + 0.99 - (truth[3] - truth[1])])
        exact = iou_plus_one(box, truth[None])[0]
        if exact >= 0.5 > iou_plus_one(np.trunc(box), truth[None])[0]:
            return box
    raise AssertionError(f"no such box for {truth}")


def test_eval_truncates_detection_boxes_unless_exact_boxes(tmp_path, capsys):
    scenes = SyntheticFogDataset(4, 96, 128, num_classes=3, seed=2)
    root = write_voc_fog_dataset(tmp_path / "voc", scenes, CLASSES, image_set="test")
    truth = record_ground_truth(VocFogDataset(root, "test", CLASSES))
    detections = {}
    for image_id, gt in truth.items():
        boxes = np.array([_just_over_half(box) for box in gt.boxes])
        detections[image_id] = ImageDetections(boxes, np.full(len(boxes), 0.9), gt.class_ids)
    path = tmp_path / "dets.json"
    save_detections(path, detections, CLASSES)
    command = ["eval", "--voc-root", str(root), "--detections", str(path), "--no-plots"]
    assert main([*command, "--out-dir", str(tmp_path / "a")]) == 0
    assert main([*command, "--out-dir", str(tmp_path / "b"), "--exact-boxes"]) == 0
    capsys.readouterr()
    truncated = json.loads((tmp_path / "a" / "metrics.json").read_text())
    exact = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert sum(truncated["voc"]["num_gt"].values()) > 4
    assert truncated["voc"]["mAP"] == 0.0 and truncated["voc"]["whole_pixel_boxes"] is True
    assert exact["voc"]["mAP"] == 1.0 and exact["voc"]["whole_pixel_boxes"] is False
    # COCO (continuous boxes, no +1) is the same either way.
    assert exact["coco"]["AP"] is not None and truncated["coco"]["AP"] == exact["coco"]["AP"]


def test_yolo_labels_are_sub_pixel_so_their_detections_are_not_truncated(tmp_path, capsys):
    # A 2x2 px object at a sub-pixel place (YOLO's normalised coordinates) detected exactly:
    # truncated to [10, 10, 12, 12] it would overlap the object by IoU 0.4 and miss.
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    width, height = 100, 80
    cv2.imwrite(str(images / "a.png"), np.full((height, width, 3), 128, np.uint8))
    box = np.array([10.9, 10.9, 12.9, 12.9])
    centre_x, centre_y = (box[0] + box[2]) / 2 / width, (box[1] + box[3]) / 2 / height
    size_x, size_y = (box[2] - box[0]) / width, (box[3] - box[1]) / height
    (labels / "a.txt").write_text(f"2 {centre_x} {centre_y} {size_x} {size_y}\n")
    path = tmp_path / "dets.json"
    save_detections(path, {"a": ImageDetections(box[None], [0.9], [2])}, CLASSES)
    command = ["eval", "--yolo-images", str(images), "--yolo-labels", str(labels)]
    command += ["--classes", ",".join(CLASSES), "--detections", str(path), "--no-plots"]
    assert main([*command, "--out-dir", str(tmp_path / "out"), "--no-coco"]) == 0
    capsys.readouterr()
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["voc"]["whole_pixel_boxes"] is False
    assert metrics["voc"]["ap"]["car"] == 1.0

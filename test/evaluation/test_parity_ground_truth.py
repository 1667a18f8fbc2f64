"""`togethernet eval` reads VOC ground truth as get_map.py does: boxes as written in the XML.

get_map.py copies each ``<bndbox>`` into its ground-truth file and scores ``float()`` of it
with the "+1 pixel" IoU: nothing is clipped to the image and nothing is dropped for having no
area. The training reader clips and drops such boxes (as upstream's training loader does), and
eval used to score that clipped set. Each case below is worked by hand on one 100x80 image.
"""

import json

import cv2
import numpy as np
import pytest

from togethernet_ros.cli import main
from togethernet_ros.evaluation.detection_files import save_detections
from togethernet_ros.evaluation.records import ImageDetections
from togethernet_ros.training.paired_dataset import VocFogDataset
from togethernet_ros.training.voc_xml import write_voc_xml

CLASSES = ("person", "car", "bus")


def _voc_root(tmp_path, boxes, labels, difficult=None):
    """A VOC dataset of one 100x80 image "a" (no foggy folder) with the given objects."""
    root = tmp_path / "voc"
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / folder).mkdir(parents=True)
    cv2.imwrite(str(root / "JPEGImages" / "a.png"), np.zeros((80, 100, 3), np.uint8))
    write_voc_xml(
        root / "Annotations" / "a.xml", "a.png", 100, 80, boxes, labels, CLASSES, difficult
    )
    (root / "ImageSets" / "Main" / "test.txt").write_text("a\n")
    return root


def _eval_command(tmp_path, root, boxes, scores, labels, *extra):
    detections = tmp_path / "dets.json"
    save_detections(detections, {"a": ImageDetections(boxes, scores, labels)}, CLASSES)
    command = ["eval", "--voc-root", str(root), "--hazy-dir", "", "--no-plots"]
    return [*command, "--detections", str(detections), "--out-dir", str(tmp_path / "out"), *extra]


def _evaluate(tmp_path, root, boxes, scores, labels, *extra):
    assert main(_eval_command(tmp_path, root, boxes, scores, labels, *extra)) == 0
    return json.loads((tmp_path / "out" / "metrics.json").read_text())


def test_a_zero_width_box_is_a_one_pixel_object_that_counts(tmp_path, capsys, caplog):
    # Car A [10, 10, 40, 40] is found exactly; car B [60, 20, 60, 50] (xmin == xmax: one pixel
    # wide under the +1 convention) is not found. get_map.py: 2 cars, recall 1/2 at precision
    # 1, AP 0.5. Dropping B as "no area" left 1 car, all found: AP 1.0.
    root = _voc_root(tmp_path, [[10, 10, 40, 40], [60, 20, 60, 50]], [1, 1])
    metrics = _evaluate(tmp_path, root, [[10, 10, 40, 40]], [0.9], [1], "--no-coco")
    assert metrics["voc"]["num_gt"]["car"] == 2
    assert metrics["voc"]["ap"]["car"] == pytest.approx(0.5)
    # A valid VOC box: nothing to report.
    assert "degenerate" not in caplog.text and "box dropped" not in caplog.text
    # Training still sees what upstream's training loader sees: B dropped.
    assert VocFogDataset(root, "test", CLASSES, hazy_dir=None)[0].boxes.tolist() == [
        [10, 10, 40, 40]
    ]
    capsys.readouterr()


def test_a_one_pixel_object_is_found_by_a_one_pixel_box(tmp_path, capsys):
    # The same thin car found by a box of its own column: +1 IoU 1.0, AP 1.0 for both cars.
    root = _voc_root(tmp_path, [[10, 10, 40, 40], [60, 20, 60, 50]], [1, 1])
    found = [[10, 10, 40, 40], [60, 20, 60, 50]]
    metrics = _evaluate(tmp_path, root, found, [0.9, 0.8], [1, 1])
    assert metrics["voc"]["ap"]["car"] == pytest.approx(1.0)
    # COCO takes the zero-area object too without failing (w = 0: no IoU with anything).
    assert metrics["coco"]["AP50"] == pytest.approx(0.5, abs=0.02)
    capsys.readouterr()


def test_a_box_past_the_image_edge_is_matched_as_drawn(tmp_path, capsys, caplog):
    # Person drawn [80, 10, 120, 50] on a 100-wide image; detection [80, 10, 140, 50].
    # As written (get_map.py): inter 41 x 41 = 1681, union 61 x 41 = 2501, IoU 0.672: a hit,
    # AP 1.0. Clipped to [80, 10, 100, 50]: inter 21 x 41 = 861, union 2501, IoU 0.344: a
    # miss, AP 0.0.
    root = _voc_root(tmp_path, [[80, 10, 120, 50]], [0])
    metrics = _evaluate(tmp_path, root, [[80, 10, 140, 50]], [0.9], [0], "--no-coco")
    assert metrics["voc"]["ap"]["person"] == pytest.approx(1.0)
    assert "outside the 100x80 image (scored as written" in caplog.text
    assert "box clipped" not in caplog.text
    assert VocFogDataset(root, "test", CLASSES, hazy_dir=None)[0].boxes.tolist() == [
        [80, 10, 100, 50]
    ]
    capsys.readouterr()


def test_an_inverted_box_counts_as_an_object_nothing_matches(tmp_path, capsys, caplog):
    # Bus A [10, 10, 30, 30] found; bus B [40, 10, 30, 50] (xmax < xmin) is still an object
    # for get_map.py, one no box overlaps by a positive +1 width: AP 0.5, not 1.0. The
    # detection that overlaps both must still match A (B's IoU is no NaN that wins argmax).
    root = _voc_root(tmp_path, [[40, 10, 30, 50], [10, 10, 30, 30]], [2, 2])
    metrics = _evaluate(tmp_path, root, [[10, 10, 30, 30]], [0.9], [2])
    assert metrics["voc"]["num_gt"]["bus"] == 2
    assert metrics["voc"]["ap"]["bus"] == pytest.approx(0.5)
    assert "inverted box [40.0, 10.0, 30.0, 50.0]" in caplog.text
    capsys.readouterr()


def test_strict_mode_stops_at_a_box_past_the_edge_but_not_at_a_thin_one(tmp_path, capsys):
    thin = _voc_root(tmp_path / "thin", [[60, 20, 60, 50]], [1])
    assert _evaluate(tmp_path / "thin", thin, [[60, 20, 60, 50]], [0.9], [1], "--strict")
    past = _voc_root(tmp_path / "past", [[80, 10, 120, 50]], [0])
    capsys.readouterr()
    command = _eval_command(tmp_path / "past", past, [[80, 10, 120, 50]], [0.9], [0], "--strict")
    assert main(command) != 0
    error = capsys.readouterr().err
    assert "outside the 100x80 image" in error and "strict data mode" in error


def test_difficult_is_read_as_get_map_reads_it(tmp_path, capsys):
    # difficult 1: neither TP nor FP and not counted; the found car makes AP 1.0 (a miss on the
    # difficult one costs nothing). A thin difficult object is still an object to ignore.
    root = _voc_root(tmp_path, [[10, 10, 40, 40], [60, 20, 60, 50]], [1, 1], [0, 1])
    found = [[10, 10, 40, 40], [60, 20, 60, 50]]
    metrics = _evaluate(tmp_path, root, found, [0.5, 0.9], [1, 1], "--no-coco")
    assert metrics["voc"]["num_gt"]["car"] == 1
    # The 0.9 box on the difficult object is ignored: with it read as a false positive, AP 0.5.
    assert metrics["voc"]["ap"]["car"] == pytest.approx(1.0)
    capsys.readouterr()


def test_an_inverted_object_whose_plus_one_area_cancels_a_box_does_not_hide_a_match():
    # Inverted car [20, 0, 9, 9]: +1 area (-10) x 10 = -100, against the detection's 10 x 10 =
    # 100: no overlap, and a union of 0, so the plain ratio is 0/0 = NaN, which argmax picks
    # over the real match [0, 0, 9, 9] (IoU 1). get_map.py skips the pair: 1 of 2 cars found,
    # AP 0.5 (it was 0.0: the hit read as a false positive).
    from togethernet_ros.evaluation.records import ImageGroundTruth
    from togethernet_ros.evaluation.voc_map import evaluate_voc, iou_plus_one

    truth = {"a": ImageGroundTruth([[20, 0, 9, 9], [0, 0, 9, 9]], [1, 1])}
    found = {"a": ImageDetections([[0, 0, 9, 9]], [0.9], [1])}
    assert iou_plus_one(np.array([0, 0, 9, 9.0]), truth["a"].boxes).tolist() == [0.0, 1.0]
    assert evaluate_voc(found, truth, CLASSES)["ap"]["car"] == pytest.approx(0.5)

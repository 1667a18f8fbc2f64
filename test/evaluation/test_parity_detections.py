"""`togethernet eval` scores detection boxes unclipped, as get_map.py writes them.

Upstream's ``get_map_txt`` writes ``non_max_suppression``'s boxes as they come back from
``yolo_correct_boxes``: nothing clips them (only ``detect_image``, which draws, does). Our
detectors clip for the node and `predict`; eval used to score those clipped boxes.
"""

import json

import cv2
import numpy as np
import pytest

from togethernet_ros.cli import main
from togethernet_ros.evaluation.records import ImageDetections, ImageGroundTruth
from togethernet_ros.evaluation.voc_map import evaluate_voc
from togethernet_ros.training.voc_xml import write_voc_xml

NAMES = ("person", "bicycle", "car", "motorbike", "bus")  # the untrained model's classes


def test_clipping_a_box_at_the_border_changes_the_score():
    # Car drawn [60, 10, 99, 50] on a 100-wide image; the detector's box reaches x 130.
    # Unclipped (get_map.py): inter 30 x 41 = 1230, union 40 x 41 + 61 x 41 - 1230 = 2911,
    # IoU 0.423: a miss, AP 0. Clipped to x 100: union 1640 + 31 x 41 - 1230 = 1681,
    # IoU 0.732: a hit, AP 1.
    truth = {"a": ImageGroundTruth([[60, 10, 99, 50]], [2], width=100, height=80)}
    unclipped = {"a": ImageDetections([[70, 10, 130, 50]], [0.9], [2])}
    clipped = {"a": ImageDetections([[70, 10, 100, 50]], [0.9], [2])}
    assert evaluate_voc(unclipped, truth, NAMES)["ap"]["car"] == 0.0
    assert evaluate_voc(clipped, truth, NAMES)["ap"]["car"] == 1.0


@pytest.fixture(scope="module")
def untrained_detector():
    from togethernet_ros.inference import create_detector

    detector = create_detector(
        "",
        allow_untrained=True,
        input_size=128,
        conf_threshold=0.001,
        nms_threshold=0.65,
        color_order="rgb",
        max_batch_size=2,
        max_detections=None,  # as eval builds it: mAP over every detection
    )
    yield detector
    detector.close()


def _wide_images():
    # 40x160 into 128x128: 32 rows of picture between 48 rows of padding above and below, where
    # an untrained model puts boxes too.
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (40, 160, 3), dtype=np.uint8) for _ in range(3)]


def test_eval_detections_are_the_detectors_own_before_clipping(untrained_detector):
    images = _wide_images()
    untrained_detector.clip_boxes = False
    try:
        unclipped = [result.detections for result in untrained_detector.detect(images)]
    finally:
        untrained_detector.clip_boxes = True
    clipped = [result.detections for result in untrained_detector.detect(images)]
    outside = 0
    for image, raw, published in zip(images, unclipped, clipped, strict=True):
        height, width = image.shape[:2]
        bounds = np.array([width, height, width, height], np.float32)
        outside += int(((raw.boxes < 0) | (raw.boxes > bounds)).any(axis=1).sum())
        # detect() (node, predict) is unchanged: the clip of these, less boxes under a pixel.
        expected = np.clip(raw.boxes, 0, bounds)
        keep = ((expected[:, 2:] - expected[:, :2]) >= 1.0).all(axis=1)
        np.testing.assert_array_equal(published.boxes, expected[keep])
        np.testing.assert_array_equal(published.scores, raw.scores[keep])
        np.testing.assert_array_equal(published.class_ids, raw.class_ids[keep])
        assert ((published.boxes >= 0) & (published.boxes <= bounds)).all()
    assert outside > 0


def test_eval_with_weights_scores_and_saves_unclipped_boxes(tmp_path, capsys):
    root = tmp_path / "voc"
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / folder).mkdir(parents=True)
    for index, image in enumerate(_wide_images()):
        cv2.imwrite(str(root / "JPEGImages" / f"{index}.png"), image)
        xml = root / "Annotations" / f"{index}.xml"
        write_voc_xml(xml, f"{index}.png", 160, 40, [[10, 5, 60, 35]], [0], NAMES)
    (root / "ImageSets" / "Main" / "test.txt").write_text("0\n1\n2\n")
    saved = tmp_path / "dets.json"
    command = ["eval", "--voc-root", str(root), "--hazy-dir", "", "--weights", ""]
    command += ["--allow-untrained", "--input-size", "128", "--device", "cpu", "--no-plots"]
    command += ["--no-coco", "--save-detections", str(saved), "--out-dir", str(tmp_path / "out")]
    assert main(command) == 0
    images = json.loads(saved.read_text())["images"]
    boxes = np.concatenate([np.reshape(entry["boxes"], (-1, 4)) for entry in images.values()])
    assert (boxes[:, [0, 1]] < 0).any() or (boxes[:, [2, 3]] > [160, 40]).any()
    # Scored as saved: rescoring the saved (unclipped) boxes gives the run's own mAP.
    rescore = ["eval", "--voc-root", str(root), "--hazy-dir", "", "--detections", str(saved)]
    rescore += ["--no-plots", "--no-coco", "--out-dir", str(tmp_path / "again")]
    assert main(rescore) == 0
    run_map = json.loads((tmp_path / "out" / "metrics.json").read_text())["voc"]["mAP"]
    assert json.loads((tmp_path / "again" / "metrics.json").read_text())["voc"]["mAP"] == run_map
    capsys.readouterr()

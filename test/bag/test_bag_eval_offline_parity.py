"""`bag eval` gives the numbers of `togethernet eval` on the same frames and ground truth.

A small VOC set (coloured blocks of three classes, a distractor the detector takes for a car, an
image without objects, difficult objects too small to detect) is scored by `togethernet eval`,
and the same frames, put in a rosbag as a raw and a PNG-compressed camera, go through
`bag run` and `bag eval` with the same deterministic detector and the same Annotations folder.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from support.stand_in_detectors import VOC_CLASSES, StandInResult, _StandInDetector

from togethernet_ros.bag.bag_writer import BagWriter
from togethernet_ros.bag.image_codec import (
    COMPRESSED_IMAGE_TYPE,
    IMAGE_TYPE,
    encode_compressed_message,
    encode_image_message,
    make_header,
)
from togethernet_ros.bag.vision_msgs_definitions import create_typestore
from togethernet_ros.cli import main
from togethernet_ros.training.voc_xml import write_voc_xml
from togethernet_ros.vision.detections import Detections

from .bag_samples import START_NS

COLOURS = {0: (0, 0, 250), 2: (0, 250, 0), 4: (250, 0, 0)}  # BGR: person, car, bus
DISTRACTOR = (0, 250, 250)  # taken for a car
FRAMES = 8
CAMERAS = {"/cam/image_raw": IMAGE_TYPE, "/cam2/image_raw/compressed": COMPRESSED_IMAGE_TYPE}


class ColourBlockDetector(_StandInDetector):
    """Each block of a class colour is that class, scored by its area (small blocks low)."""

    backend = "colour-blocks"
    supports_restoration = False

    def __init__(self, color_order: str = "bgr", conf_threshold: float = 0.5) -> None:
        super().__init__(conf_threshold=conf_threshold)
        self.color_order = color_order

    def detect(self, images, restore: bool = False) -> list[StandInResult]:
        results = []
        for image in images:
            bgr = image if self.color_order == "bgr" else image[:, :, ::-1]
            boxes, scores, classes = [], [], []
            for class_id, colour in [*COLOURS.items(), (2, DISTRACTOR)]:
                mask = np.all(np.abs(bgr.astype(int) - colour) < 30, axis=2).astype(np.uint8)
                count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
                for x, y, w, h, area in stats[1:count]:
                    if area < 20:
                        continue
                    score = 0.8 if colour == DISTRACTOR else min(0.1 + area / 1500.0, 0.95)
                    boxes.append((x, y, x + w, y + h))
                    scores.append(score)
                    classes.append(class_id)
            keep = np.asarray(scores, np.float32) >= self.conf_threshold
            results.append(
                StandInResult(
                    Detections(
                        np.float32(boxes).reshape(-1, 4)[keep],
                        np.float32(scores)[keep],
                        np.int64(classes)[keep],
                    ),
                    None,
                )
            )
        return results


def _dataset(root):
    """VOC layout (plain images, no FOG folder) plus a bag of the same frames; returns both."""
    rng = np.random.default_rng(3)
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / "voc" / folder).mkdir(parents=True)
    frames = []
    for index in range(FRAMES):
        image = np.full((96, 128, 3), 60, np.uint8)
        boxes, labels, difficult = [], [], []
        for k in range(0 if index == 5 else index % 3 + 1):
            class_id = (0, 2, 4)[(index + k) % 3]
            w, h = int(rng.integers(8, 40)), int(rng.integers(8, 40))
            x, y = int(rng.integers(0, 128 - w)), int(rng.integers(0, 96 - h))
            image[y : y + h, x : x + w] = COLOURS[class_id]
            # VOC pixels are 1-based and inclusive.
            boxes.append((x + 1, y + 1, x + w, y + h))
            labels.append(class_id)
            difficult.append(False)
        if index in (2, 6):  # 16 pixels: too small to detect, labelled difficult
            image[80:84, 120:124] = COLOURS[0]
            boxes.append((121, 81, 124, 84))
            labels.append(0)
            difficult.append(True)
        if index in (3, 5):
            image[5:25, 100:120] = DISTRACTOR
        frames.append(image)
        name = f"{index:06d}"
        cv2.imwrite(str(root / "voc" / "JPEGImages" / f"{name}.png"), image)
        write_voc_xml(
            root / "voc" / "Annotations" / f"{name}.xml",
            f"{name}.png",
            128,
            96,
            np.array(boxes).reshape(-1, 4),
            np.array(labels),
            VOC_CLASSES,
            np.array(difficult, bool),
        )
    (root / "voc" / "ImageSets" / "Main" / "test.txt").write_text(
        "".join(f"{i:06d}\n" for i in range(FRAMES))
    )
    typestore = create_typestore()
    with BagWriter(root / "bag", typestore=typestore) as writer:
        for index, image in enumerate(frames):
            stamp = START_NS + index * 100_000_000
            for topic, msgtype in CAMERAS.items():
                header = make_header(typestore, stamp, topic.split("/")[1])
                if msgtype == IMAGE_TYPE:
                    message = encode_image_message(typestore, image, header)
                else:
                    message = encode_compressed_message(typestore, image, header, "png")
                writer.write(topic, msgtype, stamp, message)
    return root / "voc", root / "bag"


@pytest.fixture
def detector(monkeypatch):
    """`togethernet eval --weights` and `bag run` both get the colour-block detector."""
    import togethernet_ros.inference as inference
    from togethernet_ros.bag import bag_command

    def for_eval(weights, **options):
        return ColourBlockDetector(options["color_order"], options["conf_threshold"])

    def for_bag_run(settings):
        return ColourBlockDetector("bgr", settings["conf_threshold"])

    monkeypatch.setattr(inference, "create_detector", for_eval)
    monkeypatch.setattr(bag_command, "create_detector_from_settings", for_bag_run)


def _offline(voc, out, *options):
    command = ["eval", "--voc-root", str(voc), "--hazy-dir", "", "--weights", "w.pt"]
    command += ["--out-dir", str(out), "--no-plots", "--no-coco", *options]
    assert main(command) == 0
    return json.loads((out / "metrics.json").read_text())["voc"]


def _bag(bag, voc, out, *options):
    run = ["bag", "run", str(bag), "--output", str(out), "--no-dehazed", *options]
    assert main(run) == 0
    results = {}
    for camera in ("/cam", "/cam2"):
        report = out.parent / f"{out.name}{camera.replace('/', '_')}.json"
        command = ["bag", "eval", str(out), "--voc-dir", str(voc / "Annotations")]
        assert main([*command, "--voc-camera", camera, "--output", str(report)]) == 0
        results[camera] = json.loads(report.read_text())["cameras"][camera]
    return results


def test_bag_eval_of_detections_raw_equals_offline_eval_at_the_same_thresholds(
    detector, tmp_path, capsys
):
    voc, bag = _dataset(tmp_path)
    offline = _offline(voc, tmp_path / "eval", "--conf", "0.3", "--nms", "0.45")
    assert 0.3 < offline["mAP"] < 1.0  # a distractor outranks true cars; small objects missed
    assert offline["num_gt"] == {"person": 4, "bicycle": 0, "car": 4, "motorbike": 0, "bus": 4}
    replayed = _bag(bag, voc, tmp_path / "out", "--conf-threshold", "0.3")
    for camera, result in replayed.items():
        raw = result["raw"]
        assert raw["frames"] == FRAMES, camera  # the frame without objects is a frame too
        assert raw["voc"]["num_gt"] == offline["num_gt"], camera  # difficult ones left out
        assert raw["voc"]["ap"] == pytest.approx(offline["ap"]), camera
        assert raw["voc"]["mAP"] == pytest.approx(offline["mAP"], abs=1e-12), camera
        assert raw["frames_without_detections_message"] == 0
        # The smoothed topic is the tracker's: its boxes need min_hits frames of one object, so
        # on independent images it is not the detector's accuracy.
        assert result["smoothed"]["voc"]["mAP"] < raw["voc"]["mAP"]
    capsys.readouterr()


def test_default_thresholds_differ_and_that_is_the_whole_difference(detector, tmp_path):
    # `togethernet eval` keeps boxes down to 0.001 (get_map.py), the node publishes from its
    # conf_threshold (0.3): small, low-scoring objects only count offline.
    voc, bag = _dataset(tmp_path)
    offline = _offline(voc, tmp_path / "eval")
    replayed = _bag(bag, voc, tmp_path / "out")
    assert replayed["/cam"]["raw"]["voc"]["mAP"] < offline["mAP"] - 0.05
    at_node_threshold = _offline(voc, tmp_path / "eval_03", "--conf", "0.3", "--nms", "0.45")
    assert replayed["/cam"]["raw"]["voc"]["mAP"] == pytest.approx(at_node_threshold["mAP"])

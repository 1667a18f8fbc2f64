"""Geometric and numerical edge cases of the vision code: huge clusters, strips, off-image boxes."""

from __future__ import annotations

import subprocess
import sys
import warnings

import cv2
import numpy as np
import pytest
import torch

from togethernet_ros.vision import nms
from togethernet_ros.vision.detections import Detections
from togethernet_ros.vision.draw import class_color, draw_detections
from togethernet_ros.vision.letterbox import LetterboxInfo
from togethernet_ros.vision.nms import greedy_batched_nms
from togethernet_ros.vision.postprocess import postprocess

NAMES = ("person", "bicycle", "car", "motorbike", "bus")

# Peak memory of one NMS call on 8400 boxes of one cluster, in a fresh interpreter.
_CLUSTER_NMS_SCRIPT = """
import resource, torch
from togethernet_ros.vision.nms import greedy_batched_nms
generator = torch.Generator().manual_seed(0)
count = 8400
boxes = torch.tensor([[100.0, 100.0, 400.0, 400.0]]).repeat(count, 1)
boxes += torch.rand(count, 4, generator=generator) * 20
scores = torch.rand(count, generator=generator)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
kept = greedy_batched_nms(boxes, scores, torch.zeros(count, dtype=torch.int64), 0.45)
grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(int(kept[0]) == int(scores.argmax()), len(kept), round(grown_mb))
"""


def test_nms_of_one_8400_box_cluster_needs_little_memory():
    # Every anchor on one frame-filling object (a low conf_threshold, a degenerate model) made
    # 35 M overlapping pairs: 2 GB and 7-15 s for one frame.
    result = subprocess.run(
        [sys.executable, "-c", _CLUSTER_NMS_SCRIPT],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    best_kept, kept, grown_mb = result.stdout.split()
    assert best_kept == "True" and kept == "1"
    assert int(grown_mb) < 300, f"NMS of one cluster grew the process by {grown_mb} MB"


def textbook_nms(boxes: np.ndarray, scores: np.ndarray, groups: np.ndarray, threshold: float):
    """Per-group greedy NMS one pair at a time, in float32 like the library."""
    order = np.argsort(-scores, kind="stable")
    suppressed = np.zeros(len(boxes), dtype=bool)
    keep = []
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for rank, i in enumerate(order):
            if suppressed[i]:
                continue
            keep.append(i)
            for j in order[rank + 1 :]:
                if suppressed[j] or groups[j] != groups[i]:
                    continue
                width = max(
                    np.float32(0), min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0])
                )
                height = max(
                    np.float32(0), min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1])
                )
                overlap = width * height
                area_i = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
                area_j = (boxes[j, 2] - boxes[j, 0]) * (boxes[j, 3] - boxes[j, 1])
                if overlap / (area_i + area_j - overlap) > np.float32(threshold):
                    suppressed[j] = True
    return np.array(keep, dtype=np.int64)


@pytest.mark.parametrize("threshold", [0.3, 0.65])
def test_box_by_box_path_equals_the_textbook_nms(monkeypatch, threshold):
    rng = np.random.default_rng(3)
    count = 300
    centres = rng.uniform(0, 150, (count, 2))
    sizes = rng.uniform(5, 60, (count, 2))
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1).astype(np.float32)
    boxes[5] = boxes[6]  # identical boxes
    boxes[7, 2] = boxes[7, 0]  # zero width
    boxes[8, 0], boxes[9, 3], boxes[10, 2] = np.nan, np.inf, 1e30
    scores = rng.random(count).astype(np.float32)
    groups = rng.integers(0, 3, count)
    # Force the large-input path onto these boxes and past its pair budget.
    monkeypatch.setattr(nms, "_DENSE_LIMIT", 0)
    monkeypatch.setattr(nms, "_SWEEP_MAX_PAIRS", 0)
    kept = greedy_batched_nms(*(torch.from_numpy(a) for a in (boxes, scores, groups)), threshold)
    np.testing.assert_array_equal(kept.numpy(), textbook_nms(boxes, scores, groups, threshold))
    assert 0 < len(kept) < count


def test_a_one_row_strip_keeps_its_detection():
    # 2000 x 1 pixels into 640: upstream's rounded resized height is 0 (the letterbox used one
    # row), its gain infinite, so the box came back NaN and was dropped without a word.
    info = LetterboxInfo.compute((1, 2000), (640, 640))
    top, _ = info.offset
    decoded = torch.zeros(1, 1, 6)
    decoded[0, 0, :4] = torch.tensor([320.0, top + 0.5, 200.0, 1.0])  # cx, cy, w, h on the row
    decoded[0, 0, 4:] = 0.9
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        (found,) = postprocess(decoded, [info], 0.5, 0.45)
    assert len(found) == 1
    np.testing.assert_allclose(found.boxes[0], [687.5, 0.0, 1312.5, 1.0], atol=1e-3)


def _label_pixels(image: np.ndarray, class_id: int, rows: slice, cols: slice) -> float:
    """Share of the pixels in a window that have the class colour (a label's background)."""
    window = image[rows, cols].astype(int)
    return float((np.abs(window - np.array(class_color(class_id))).sum(axis=2) == 0).mean())


@pytest.mark.parametrize(
    "box",
    [(60.0, -40.0, 220.0, 150.0), (-260.0, 60.0, 40.0, 160.0)],
    ids=["above-the-image", "left-of-the-image"],
)
def test_the_label_of_a_box_reaching_outside_the_image_stays_visible(box):
    # Tracked (predicted) boxes are not clipped: a label placed at a corner above or left of
    # the image was drawn off the image, so the debug image showed no class, id or score.
    image = np.zeros((240, 320, 3), dtype=np.uint8)
    detections = Detections(np.float32([box]), np.float32([0.9]), np.int64([2]))
    drawn = draw_detections(image, detections, NAMES, track_ids=np.int64([7]))
    (text_w, text_h), baseline = cv2.getTextSize("car #7 0.90", cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
    visible_left, visible_top = max(int(box[0]), 0), max(int(box[1]), 0)
    label_top = visible_top if box[1] < text_h + baseline else int(box[1]) - text_h - baseline
    rows = slice(label_top, label_top + text_h + baseline)
    cols = slice(visible_left + 2, visible_left + text_w)  # clear of the box's own edge
    assert _label_pixels(drawn, 2, rows, cols) > 0.4, "the label is not in the image"


def test_boxes_wholly_outside_a_tiny_image_draw_nothing():
    image = np.full((2, 3, 3), 50, dtype=np.uint8)
    outside = [[10.0, 10.0, 20.0, 20.0], [-20.0, -20.0, -10.0, -10.0], [np.nan, 0.0, 1.0, 1.0]]
    detections = Detections(np.float32(outside), np.float32([0.9] * 3), np.int64([0, 1, 4]))
    np.testing.assert_array_equal(draw_detections(image, detections, NAMES), image)
    inside = Detections(np.float32([[0.0, 0.0, 3.0, 2.0]]), np.float32([0.9]), np.int64([0]))
    assert draw_detections(image, inside, NAMES).shape == (2, 3, 3)

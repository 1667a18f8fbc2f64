"""Stand-in Detectors for pipeline, node and tool tests: deterministic, fast, no weights.

Each implements what the node, the offline pipeline and the commands call on a Detector
(``detect``, thresholds, ``class_names``, ``prepare_ahead``, ``warm_up``, ``close``) and honours
``conf_threshold`` the way the real detectors do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from togethernet_ros.vision.detections import Detections

VOC_CLASSES = ("person", "bicycle", "car", "motorbike", "bus")


class StandInResult(NamedTuple):
    """Mirrors inference.ImageResult."""

    detections: Detections
    dehazed: np.ndarray | None


class _StandInDetector:
    input_size = (128, 128)
    color_order = "bgr"
    runs_on_gpu = False

    def __init__(
        self,
        class_names: Sequence[str] = VOC_CLASSES,
        conf_threshold: float = 0.5,
        nms_threshold: float = 0.45,
    ) -> None:
        self.class_names = tuple(class_names)
        self.conf_threshold = conf_threshold
        self.nms_threshold = nms_threshold

    def prepare_ahead(self, key: Any, image: np.ndarray) -> bool:
        return False

    def warm_up(self) -> float:
        return 0.0

    def close(self) -> None:
        pass


def _one_box(box: Sequence[float], score: float, threshold: float) -> Detections:
    if score < threshold:
        return Detections.empty()
    return Detections(np.float32([box]), np.float32([score]), np.int64([0]))


class FadingObjectDetector(_StandInDetector):
    """Frame k (counted over every image it is given) shows one person scoring ``scores[k]``,
    as an object fading in thickening fog.

    The box moves right by 4 px a frame, like ``bag_samples.scene``; past the script's end the
    last score repeats.
    """

    backend = "scripted"
    supports_restoration = False

    def __init__(self, scores: Sequence[float], **thresholds: float) -> None:
        super().__init__(**thresholds)
        self.scores = list(scores)
        self.frames = 0

    def detect(self, images: Sequence[np.ndarray], restore: bool = False) -> list[StandInResult]:
        results = []
        for _ in images:
            score = self.scores[min(self.frames, len(self.scores) - 1)]
            x = 8.0 + 4.0 * self.frames
            self.frames += 1
            box = _one_box([x, 20.0, x + 32.0, 70.0], score, self.conf_threshold)
            results.append(StandInResult(box, None))
        return results


class BrightBlockDetector(_StandInDetector):
    """Class 0 (score 0.9) at the bounding box of the pixels brighter than 200 in every channel.

    The box is in the pixels it was given, so a reader that turns an image (EXIF orientation), a
    camera that changes resolution or a second camera on one topic shows its object where it
    really is. ``seen_shapes`` records what it was given; with ``restore`` the "dehazed" image
    is a copy of the input.
    """

    backend = "bright-block"
    supports_restoration = True

    def __init__(self, class_names: Sequence[str] = VOC_CLASSES, color_order: str = "bgr") -> None:
        super().__init__(class_names)
        self.color_order = color_order
        self.seen_shapes: list[tuple[int, ...]] = []

    def detect(self, images: Sequence[np.ndarray], restore: bool = False) -> list[StandInResult]:
        results = []
        for image in images:
            self.seen_shapes.append(image.shape)
            rows, cols = np.nonzero((image > 200).all(axis=2))
            found = Detections.empty()
            if rows.size:
                box = [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
                found = _one_box(box, 0.9, self.conf_threshold)
            results.append(StandInResult(found, image.copy() if restore else None))
        return results


def frame_with_block(height: int, width: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """A dark ``height`` x ``width`` BGR frame with a bright ``box`` (x1, y1, x2, y2)."""
    image = np.full((height, width, 3), 40, dtype=np.uint8)
    x1, y1, x2, y2 = box
    image[y1:y2, x1:x2] = 250
    return image


class CrowdDetector(_StandInDetector):
    """Every frame: ``cars`` cars scoring 0.9 in a grid of separate boxes, then one person
    scoring 0.5 (rows sorted by descending score, as the real detectors return them)."""

    backend = "scripted"
    supports_restoration = False

    def __init__(self, cars: int, **thresholds: float) -> None:
        super().__init__(**thresholds)
        self.cars = cars

    def detect(self, images: Sequence[np.ndarray], restore: bool = False) -> list[StandInResult]:
        index = np.arange(self.cars)
        x, y = (index % 20) * 6.0, (index // 20) * 6.0
        car_boxes = np.stack([x, y, x + 5.0, y + 5.0], axis=1)
        boxes = np.vstack([car_boxes, [[40.0, 30.0, 80.0, 90.0]]]).astype(np.float32)
        scores = np.float32([0.9] * self.cars + [0.5])
        class_ids = np.int64([VOC_CLASSES.index("car")] * self.cars + [0])
        found = Detections(boxes, scores, class_ids)
        found = found.select(found.scores >= self.conf_threshold)
        return [StandInResult(found, None) for _ in images]

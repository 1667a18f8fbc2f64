"""A small real detector for pipeline tests: finds bright saturated blobs with OpenCV.

It is deterministic and fast, so the bag tests check plumbing, batching and numbers without
depending on model weights; the model itself is covered by the inference tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from togethernet_ros.vision.detections import Detections


@dataclass
class BlobResult:
    """Mirrors inference.ImageResult."""

    detections: Detections
    dehazed: np.ndarray | None


class BlobDetector:
    """Detects regions whose red channel exceeds 200 as class 0 ("person")."""

    class_names = ("person", "bicycle", "car", "motorbike", "bus")
    input_size = (128, 128)
    backend = "opencv-blob"
    color_order = "bgr"
    conf_threshold = 0.5
    nms_threshold = 0.3

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []

    def detect(self, images, restore: bool = False) -> list[BlobResult]:
        self.batch_sizes.append(len(images))
        results = []
        for image in images:
            mask = (image[:, :, 2] > 200).astype(np.uint8)
            count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
            boxes = [(x, y, x + w, y + h) for x, y, w, h, area in stats[1:count] if area >= 20]
            detections = Detections(
                np.array(boxes, np.float32).reshape(-1, 4),
                np.full(len(boxes), 0.9, np.float32),
                np.zeros(len(boxes), np.int64),
            )
            dehazed = (255 - image) if restore else None
            results.append(BlobResult(detections, dehazed))
        return results

    def close(self) -> None:
        pass

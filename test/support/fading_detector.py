"""A stand-in Detector whose one object fades (its score follows a script), as in thickening fog.

It honours ``conf_threshold`` the way the real detectors do, so a caller that set the threshold
too high loses the faded boxes exactly as it would with the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from togethernet_ros.vision.detections import Detections


class FadingResult(NamedTuple):
    """Mirrors inference.ImageResult."""

    detections: Detections
    dehazed: np.ndarray | None


class FadingObjectDetector:
    """Frame k (counted over every image it is given) shows one person scoring ``scores[k]``.

    The box moves right by 4 px a frame, like ``bag_samples.scene``; past the script's end the
    last score repeats.
    """

    class_names = ("person", "bicycle", "car", "motorbike", "bus")
    input_size = (128, 128)
    backend = "scripted"
    color_order = "bgr"
    supports_restoration = False
    runs_on_gpu = False

    def __init__(
        self, scores: Sequence[float], conf_threshold: float = 0.5, nms_threshold: float = 0.45
    ) -> None:
        self.scores = list(scores)
        self.conf_threshold = conf_threshold
        self.nms_threshold = nms_threshold
        self.frames = 0

    def detect(self, images: Sequence[np.ndarray], restore: bool = False) -> list[FadingResult]:
        results = []
        for _ in images:
            score = self.scores[min(self.frames, len(self.scores) - 1)]
            x = 8.0 + 4.0 * self.frames
            self.frames += 1
            detections = Detections(
                boxes=np.array([[x, 20.0, x + 32.0, 70.0]], dtype=np.float32),
                scores=np.array([score], dtype=np.float32),
                class_ids=np.array([0]),
            )
            if score < self.conf_threshold:
                detections = Detections.empty()
            results.append(FadingResult(detections, None))
        return results

    def prepare_ahead(self, key: Any, image: np.ndarray) -> bool:
        return False

    def warm_up(self) -> float:
        return 0.0

    def close(self) -> None:
        pass

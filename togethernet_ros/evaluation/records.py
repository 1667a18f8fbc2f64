"""Per-image detections and ground truth as the evaluators consume them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, DTypeLike


def _array(values: ArrayLike, dtype: DTypeLike, shape: tuple[int, ...]) -> np.ndarray:
    return np.asarray(values, dtype=dtype).reshape(shape)


@dataclass
class ImageDetections:
    """Detections of one image: xyxy boxes in source pixels, scores, class ids."""

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray

    def __post_init__(self) -> None:
        self.boxes = _array(self.boxes, np.float64, (-1, 4))
        self.scores = _array(self.scores, np.float64, (-1,))
        self.class_ids = _array(self.class_ids, np.int64, (-1,))
        if not len(self.boxes) == len(self.scores) == len(self.class_ids):
            raise ValueError(
                f"ImageDetections: {len(self.boxes)} boxes, {len(self.scores)} scores, "
                f"{len(self.class_ids)} class ids — lengths must match"
            )

    @staticmethod
    def from_any(detections: Any) -> ImageDetections:
        """Accept anything with ``boxes``, ``scores``, ``class_ids`` (e.g. inference Detections)."""
        if isinstance(detections, ImageDetections):
            return detections
        return ImageDetections(detections.boxes, detections.scores, detections.class_ids)


@dataclass
class ImageGroundTruth:
    """Ground truth of one image: xyxy boxes, class ids and VOC difficult flags."""

    boxes: np.ndarray
    class_ids: np.ndarray
    difficult: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    width: int = 0
    height: int = 0

    def __post_init__(self) -> None:
        self.boxes = _array(self.boxes, np.float64, (-1, 4))
        self.class_ids = _array(self.class_ids, np.int64, (-1,))
        if len(self.difficult) == 0 and len(self.class_ids) > 0:
            self.difficult = np.zeros(len(self.class_ids), bool)
        self.difficult = _array(self.difficult, bool, (-1,))
        if not len(self.boxes) == len(self.class_ids) == len(self.difficult):
            raise ValueError("ImageGroundTruth: boxes, class_ids and difficult lengths differ")

"""The real `detector_node`, with its model replaced by a stand-in that takes a GPU's time.

For measuring what the node and DDS add to a GPU detector's latency on a machine without a GPU:
everything the node does (subscriptions reading CDR bytes, decoding, the batcher, the inference
thread, trackers, publishing, diagnostics) runs as shipped; only `detect()` is a sleep of
``base + per_frame × batch`` ms (the GIL released, as while torch waits for CUDA), returning ten
boxes per image that drift a little from frame to frame, so the trackers and the publishers do
their usual work. Started by `bench_node.py --emulate-gpu BASE:PER_FRAME` with the node's
`--ros-args`; the cost shape comes in the environment:

    EMULATED_GPU_MS="2.2:0.8"      # ms per batch and per frame (H100: ~3 ms for 1, ~5.5 for 4)
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from togethernet_ros.inference.result import ImageResult
from togethernet_ros.vision.detections import Detections

BOXES_PER_IMAGE = 10


class EmulatedGpuDetector:
    """What the node calls on a Detector, timed like a GPU model and without one."""

    runs_on_gpu = True
    supports_restoration = False
    backend = "emulated-gpu"
    color_order = "bgr"

    def __init__(
        self,
        base_ms: float,
        per_frame_ms: float,
        class_names: Sequence[str],
        conf_threshold: float,
        nms_threshold: float,
    ) -> None:
        self.base_ms, self.per_frame_ms = base_ms, per_frame_ms
        self.class_names = tuple(class_names)
        self.conf_threshold, self.nms_threshold = conf_threshold, nms_threshold
        self._rng = np.random.default_rng(0)
        self._frames = 0

    def detect(self, images: Sequence[np.ndarray], restore: bool = False) -> list[ImageResult]:
        """Sleep the GPU's time for this batch, then ten boxes per image."""
        time.sleep((self.base_ms + self.per_frame_ms * len(images)) / 1e3)
        return [self._boxes(image.shape[:2]) for image in images]

    def prepare_ahead(self, key: object, image: np.ndarray) -> bool:
        return False

    def warm_up(self) -> float:
        return 0.0

    def close(self) -> None:
        pass

    def _boxes(self, size: tuple[int, int]) -> ImageResult:
        height, width = size
        self._frames += 1
        # Ten objects on a grid, moving one pixel per frame, with a pixel of noise.
        index = np.arange(BOXES_PER_IMAGE)
        x1 = (index % 5) * width / 5 + self._frames % 50 + self._rng.normal(0, 1, BOXES_PER_IMAGE)
        y1 = (index // 5) * height / 2 + 20 + self._rng.normal(0, 1, BOXES_PER_IMAGE)
        boxes = np.stack([x1, y1, x1 + width / 8, y1 + height / 4], axis=1)
        scores = np.linspace(0.9, 0.35, BOXES_PER_IMAGE)
        class_ids = index % min(2, len(self.class_names))
        return ImageResult(Detections(boxes, scores, class_ids), None)


def main() -> int:
    """Run `detector_node`'s main() with the emulated detector."""
    from togethernet_ros.model.config import DEFAULT_CLASS_NAMES
    from togethernet_ros.ros import detector_node

    base_ms, _, per_frame_ms = os.environ.get("EMULATED_GPU_MS", "2.2:0.8").partition(":")

    def create_detector(self: detector_node.DetectorNode, settings: object) -> EmulatedGpuDetector:
        return EmulatedGpuDetector(
            float(base_ms),
            float(per_frame_ms),
            DEFAULT_CLASS_NAMES,
            settings.detector_threshold(),  # type: ignore[attr-defined]
            settings["nms_threshold"],  # type: ignore[index]
        )

    detector_node.DetectorNode._create_detector = create_detector  # type: ignore[method-assign]
    return detector_node.main()


if __name__ == "__main__":
    sys.exit(main())

"""The one interface every inference backend implements."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from togethernet_ros.inference.result import ImageResult

# Most detections kept per image by default (the highest scores, after NMS): a poorly trained
# model or a low threshold can leave thousands of boxes, and ~4,000 in one frame cost the
# tracker 2-4 s. Tracks and published arrays rarely need more than a few dozen.
DEFAULT_MAX_DETECTIONS = 300


@runtime_checkable
class Detector(Protocol):
    """Batch of images in, per-image detections (+ optional dehazed images) out.

    Images are HxWx3 uint8 in the detector's `color_order`, of any sizes. `backend` names what
    actually runs, e.g. "torch-cuda-fp16" or "onnxruntime-CPUExecutionProvider".
    """

    class_names: tuple[str, ...]
    input_size: tuple[int, int]
    backend: str
    color_order: str
    conf_threshold: float
    nms_threshold: float
    max_detections: int | None  # most boxes per image, the best scores; None = no cap

    def detect(self, images: Sequence[np.ndarray], restore: bool = False) -> list[ImageResult]:
        """Detect objects in a batch; with `restore` also return dehazed images."""
        ...

    def prepare_ahead(self, key: Hashable, image: np.ndarray) -> bool:
        """Pre-process a frame that waits for its batch (keyed by camera); False if unsupported."""
        ...

    @property
    def runs_on_gpu(self) -> bool:
        """Whether the model runs on a GPU (batch waits and warm-up depend on it)."""
        ...

    @property
    def supports_restoration(self) -> bool:
        """Whether `detect(..., restore=True)` can return dehazed images."""
        ...

    def warm_up(self, restore_modes: Sequence[bool] | None = None) -> float:
        """Run every batch size once (per restore mode) before real frames; seconds taken."""
        ...

    def close(self) -> None:
        """Free the model and any GPU memory it holds."""
        ...

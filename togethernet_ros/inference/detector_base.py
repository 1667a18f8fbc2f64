"""Shared detect() pipeline: pre-process -> backend forward -> decode + NMS -> dehazed images."""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Sequence

import numpy as np
import torch

from togethernet_ros.inference.detector import DEFAULT_MAX_DETECTIONS
from togethernet_ros.inference.result import ImageResult
from togethernet_ros.vision.decode import decode_outputs
from togethernet_ros.vision.dehazed import dehazed_to_images
from togethernet_ros.vision.letterbox import LetterboxInfo, validate_image
from togethernet_ros.vision.postprocess import (
    ScoredAnchors,
    check_max_detections,
    check_thresholds,
    postprocess_scored,
    score_anchors,
)
from togethernet_ros.vision.preprocess import check_color_order, preprocess_batch

STRIDES = (8, 16, 32)
# Best anchors per image copied to the host for thresholding and NMS (see `select_top_on_host`);
# typical frames have tens to a few hundred anchors above a useful threshold.
HOST_CANDIDATES = 512


class DetectorBase:
    """Implements `Detector.detect`; backends supply `_forward` (and may override `close`).

    A backend that keeps pre-processing or decoding on its own device overrides `_prepare` and
    `_infer` instead (see `TorchDetector`); thresholding, NMS and the dehazed images are shared.

    At most `max_detections` boxes per image are returned, the highest-scoring across classes
    (None: no cap, as `togethernet eval` needs for mAP over every detection).

    Batches larger than `max_batch_size` are split. `last_timings` holds host-side seconds of
    the last call split into preprocess / forward / postprocess (on CUDA, asynchronous work is
    attributed to whichever step waits for it).
    """

    def __init__(
        self,
        class_names: Sequence[str],
        input_size: tuple[int, int],
        backend: str,
        conf_threshold: float,
        nms_threshold: float,
        color_order: str,
        preprocess_device: torch.device | str = "cpu",
        max_batch_size: int = 16,
        max_detections: int | None = DEFAULT_MAX_DETECTIONS,
    ) -> None:
        check_thresholds(conf_threshold, nms_threshold)
        self._max_detections = check_max_detections(max_detections)
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self.class_names = tuple(class_names)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.backend = backend
        self.color_order = check_color_order(color_order)
        self._conf_threshold = float(conf_threshold)
        self._nms_threshold = float(nms_threshold)
        self.preprocess_device = torch.device(preprocess_device)
        self.max_batch_size = int(max_batch_size)
        self.last_timings: dict[str, float] = {}
        # Backends keep per-detector device buffers (canvas, CUDA graphs, IO bindings): one
        # detect() at a time.
        self._detect_lock = threading.Lock()
        # True when the weights are random (set by whoever loaded them); reported in outputs.
        self.untrained = False
        # Boxes clipped to the image (the node, predict). `eval` turns it off: the published
        # get_map.py scores boxes as decoded, and clipping moves a border box's IoU.
        self.clip_boxes = True
        # Boxes mapped back through the letterbox as applied (the node, predict); `eval` maps
        # them as get_map.py does, whose rounding is off by up to a few pixels for unusual
        # frame sizes (see vision.postprocess.unletterbox_boxes).
        self.upstream_box_rounding = False

    @property
    def conf_threshold(self) -> float:
        """Minimum obj x cls score of a detection (settable at run time)."""
        return self._conf_threshold

    @conf_threshold.setter
    def conf_threshold(self, value: float) -> None:
        check_thresholds(value, self._nms_threshold)
        self._conf_threshold = float(value)

    @property
    def nms_threshold(self) -> float:
        """IoU above which a lower-scored box of the same class is suppressed (settable)."""
        return self._nms_threshold

    @nms_threshold.setter
    def nms_threshold(self, value: float) -> None:
        check_thresholds(self._conf_threshold, value)
        self._nms_threshold = float(value)

    @property
    def max_detections(self) -> int | None:
        """Most detections per image, the highest-scoring (None: no cap; settable at run time)."""
        return self._max_detections

    @max_detections.setter
    def max_detections(self, value: int | None) -> None:
        # One attribute store: a detect() running meanwhile reads the old or the new cap whole.
        self._max_detections = check_max_detections(value)

    def _forward(
        self, batch: torch.Tensor, restore: bool
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """Normalised N x 3 x H x W float32 batch -> (raw head maps, dehazed or None)."""
        raise NotImplementedError

    def _prepare(self, images: Sequence[np.ndarray]) -> tuple[object, list[LetterboxInfo]]:
        """Letterbox and normalise a batch; returns what `_infer` takes, and the geometry."""
        return preprocess_batch(
            images, self.input_size, self.color_order, device=self.preprocess_device
        )

    def _infer(self, prepared: object, restore: bool) -> tuple[ScoredAnchors, torch.Tensor | None]:
        """Prepared batch -> every anchor scored, and the raw restoration output or None."""
        maps, dehazed = self._forward(prepared, restore)  # type: ignore[arg-type]
        decoded = decode_outputs(maps, STRIDES, self.input_size)
        return score_anchors(decoded, top_k=HOST_CANDIDATES), dehazed

    def detect(self, images: Sequence[np.ndarray], restore: bool = False) -> list[ImageResult]:
        """Detect objects in a batch of HxWx3 uint8 images (see `Detector`)."""
        if isinstance(images, np.ndarray) and images.ndim == 3:
            raise ValueError("detect() takes a sequence of images; wrap a single image in a list")
        # Checked here, before batches are split, so an error names the caller's index (not
        # the index within a batch) and no batch is run for a call that is going to fail.
        for index, image in enumerate(images):
            validate_image(image, name=f"images[{index}]")
        with self._detect_lock:
            results: list[ImageResult] = []
            timings = {"preprocess": 0.0, "forward": 0.0, "postprocess": 0.0}
            for start in range(0, len(images), self.max_batch_size):
                chunk = images[start : start + self.max_batch_size]
                results.extend(self._detect_batch(chunk, bool(restore), timings))
            self.last_timings = timings
            return results

    def _detect_batch(
        self, images: Sequence[np.ndarray], restore: bool, timings: dict[str, float]
    ) -> list[ImageResult]:
        started = time.perf_counter()
        prepared, infos = self._prepare(images)
        preprocessed = time.perf_counter()
        scored, dehazed = self._infer(prepared, restore)
        forwarded = time.perf_counter()
        detections = postprocess_scored(
            scored,
            infos,
            self._conf_threshold,
            self._nms_threshold,
            clip=self.clip_boxes,
            max_detections=self._max_detections,
            upstream_rounding=self.upstream_box_rounding,
        )
        if restore:
            if dehazed is None:
                raise RuntimeError(f"{self.backend} returned no dehazed output for restore=True")
            dehazed_images: list[np.ndarray | None] = dehazed_to_images(
                dehazed, infos, self.color_order
            )
        else:
            dehazed_images = [None] * len(infos)
        finished = time.perf_counter()
        timings["preprocess"] += preprocessed - started
        timings["forward"] += forwarded - preprocessed
        timings["postprocess"] += finished - forwarded
        return [
            ImageResult(found, image)
            for found, image in zip(detections, dehazed_images, strict=True)
        ]

    def prepare_ahead(self, key: Hashable, image: np.ndarray) -> bool:
        """Pre-process a frame that waits for its batch; True if this backend did it.

        A later `detect` that gets this very array skips its pre-processing. `key` names the
        source (a camera; one prepared frame is kept per key). This base letterboxes on the
        host inside `detect` and prepares nothing (False); `TorchDetector` does it on its
        device. Errors (an invalid image) raise here as they would in `detect`.
        """
        return False

    @property
    def runs_on_gpu(self) -> bool:
        """Whether the model runs on a GPU (where warming up pays; see `warm_up`)."""
        return self.preprocess_device.type == "cuda"

    @property
    def supports_restoration(self) -> bool:
        """Whether `detect(..., restore=True)` can return dehazed images."""
        return True

    def warm_up(self, restore_modes: Sequence[bool] | None = None) -> float:
        """Run every batch size up to `max_batch_size` once on blank frames; returns seconds.

        On a GPU the first batch of each size pays for CUDA graph capture, cuDNN autotuning or
        a TensorRT/cuDNN algorithm search (1-2 s each); doing it up front keeps those stalls
        out of the first live frames. By default both modes that this detector supports.
        """
        if restore_modes is None:
            restore_modes = (False, True) if self.supports_restoration else (False,)
        started = time.perf_counter()
        height, width = self.input_size
        blank = np.full((height, width, 3), 128, dtype=np.uint8)
        for restore in restore_modes:
            for batch_size in range(1, self.max_batch_size + 1):
                self.detect([blank] * batch_size, restore=restore)
        return time.perf_counter() - started

    def close(self) -> None:
        """Release backend resources (idempotent)."""

    def __enter__(self) -> DetectorBase:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

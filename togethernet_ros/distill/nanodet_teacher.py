"""The clear-weather teacher: NanoDet-m-416 (COCO-80) run with ONNX Runtime.

Pre-processing as NanoDet's: BGR, resize to 416×416, per-channel mean/std. The network outputs,
per stride 8/16/32, sigmoided class scores [B, h·w, 80] and box distributions [B, h·w, 44]:
for each side (left, top, right, bottom) 11 bin logits whose softmax expectation times the
stride is the distance from the cell centre. Boxes go back to source pixels, then per-class NMS.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import torch

from togethernet_ros.distill.coco_classes import COCO_CLASS_NAMES
from togethernet_ros.vision.detections import Detections
from togethernet_ros.vision.nms import batched_nms

INPUT_SIZE = 416
STRIDES = (8, 16, 32)
BINS = 11  # reg_max 10 → distances 0..10 strides
MEAN_BGR = np.array([103.53, 116.28, 123.675], dtype=np.float32)
STD_BGR = np.array([57.375, 57.12, 58.395], dtype=np.float32)


def _softmax(logits: np.ndarray, axis: int) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def decode_level(
    scores: np.ndarray, distributions: np.ndarray, stride: int, grid: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """One image, one level → (boxes xyxy in network pixels (N, 4), class scores (N, 80))."""
    height, width = grid
    if scores.shape[0] != height * width or distributions.shape != (height * width, 4 * BINS):
        raise ValueError(
            f"stride {stride}: expected {height * width} cells with {4 * BINS} distribution "
            f"values, got scores {scores.shape} and distributions {distributions.shape}"
        )
    probabilities = _softmax(distributions.reshape(-1, 4, BINS), axis=2)
    distances = probabilities @ np.arange(BINS, dtype=np.float32) * stride
    rows, cols = np.divmod(np.arange(height * width), width)
    centres = np.stack([(cols + 0.5) * stride, (rows + 0.5) * stride], axis=1).astype(np.float32)
    boxes = np.concatenate([centres - distances[:, :2], centres + distances[:, 2:]], axis=1)
    return boxes, scores


class NanoDetTeacher:
    """COCO detector; ``detect`` returns :class:`Detections` with COCO class ids."""

    class_names = COCO_CLASS_NAMES

    def __init__(
        self,
        onnx_path: str | Path,
        conf_threshold: float = 0.35,
        nms_threshold: float = 0.6,
        max_detections: int = 100,
        threads: int | None = None,
    ):
        if Path(onnx_path).is_dir():
            raise ValueError(f"teacher {onnx_path} is a folder, not an ONNX file")
        if not Path(onnx_path).is_file():
            raise FileNotFoundError(f"teacher ONNX file {onnx_path} does not exist")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(
                str(onnx_path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # ONNX Runtime's load errors share no base class but Exception
            raise ValueError(f"teacher {onnx_path} is not a loadable ONNX model: {error}") from None
        inputs = self.session.get_inputs()
        # Checked here, not at the first batch: a wrong model would otherwise fail mid-run.
        if len(inputs) != 1 or list(inputs[0].shape)[1:] != [3, INPUT_SIZE, INPUT_SIZE]:
            shapes = [input_.shape for input_ in inputs]
            raise ValueError(
                f"teacher {onnx_path} is not NanoDet-m-416: inputs {shapes}, expected one "
                f"[batch, 3, {INPUT_SIZE}, {INPUT_SIZE}]"
            )
        self.input_name = inputs[0].name
        self.conf_threshold = conf_threshold
        self.nms_threshold = nms_threshold
        self.max_detections = max_detections
        self.onnx_path = Path(onnx_path)

    def preprocess(self, images_bgr: Sequence[np.ndarray]) -> np.ndarray:
        """B×3×416×416 float32 network input."""
        batch = np.empty((len(images_bgr), 3, INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
        for index, image in enumerate(images_bgr):
            if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3):
                raise ValueError(
                    f"teacher input {index}: expected a uint8 H×W×3 BGR image, got "
                    f"{getattr(image, 'dtype', type(image))} {getattr(image, 'shape', '')}"
                )
            resized = cv2.resize(image, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
            batch[index] = ((resized.astype(np.float32) - MEAN_BGR) / STD_BGR).transpose(2, 0, 1)
        return batch

    def _outputs_by_stride(self, outputs: list[np.ndarray]) -> dict[int, tuple[np.ndarray, ...]]:
        levels: dict[int, dict[int, np.ndarray]] = {}
        for output in outputs:
            cells, channels = output.shape[1], output.shape[2]
            stride = INPUT_SIZE // round(np.sqrt(cells))
            levels.setdefault(stride, {})[channels] = output
        try:
            return {s: (levels[s][len(COCO_CLASS_NAMES)], levels[s][4 * BINS]) for s in STRIDES}
        except KeyError as error:
            shapes = [tuple(o.shape) for o in outputs]
            raise ValueError(f"teacher outputs {shapes} are not NanoDet's") from error

    def detect(self, images_bgr: Sequence[np.ndarray], batch_size: int = 4) -> list[Detections]:
        """Detections (source pixels, COCO ids, score ≥ conf_threshold) for each BGR image."""
        results = []
        for start in range(0, len(images_bgr), batch_size):
            chunk = list(images_bgr[start : start + batch_size])
            outputs = self.session.run(None, {self.input_name: self.preprocess(chunk)})
            levels = self._outputs_by_stride(outputs)
            for index, image in enumerate(chunk):
                results.append(self._postprocess(levels, index, image.shape[:2]))
        return results

    def _postprocess(
        self,
        levels: dict[int, tuple[np.ndarray, ...]],
        index: int,
        source_size: tuple[int, int],
    ) -> Detections:
        boxes, scores = [], []
        for stride, (level_scores, distributions) in levels.items():
            grid = (INPUT_SIZE // stride, INPUT_SIZE // stride)
            level_boxes, level_class_scores = decode_level(
                level_scores[index], distributions[index], stride, grid
            )
            boxes.append(level_boxes)
            scores.append(level_class_scores)
        boxes_all, scores_all = np.concatenate(boxes), np.concatenate(scores)
        # Every (box, class) pair above the threshold is a candidate, as in NanoDet.
        cell, class_id = np.nonzero(scores_all >= self.conf_threshold)
        if len(cell) == 0:
            return Detections.empty()
        height, width = source_size
        scale = np.array([width / INPUT_SIZE, height / INPUT_SIZE] * 2, dtype=np.float32)
        candidate_boxes = boxes_all[cell] * scale
        candidate_boxes[:, 0::2] = candidate_boxes[:, 0::2].clip(0, width)
        candidate_boxes[:, 1::2] = candidate_boxes[:, 1::2].clip(0, height)
        candidate_scores = scores_all[cell, class_id]
        keep = batched_nms(
            torch.from_numpy(candidate_boxes),
            torch.from_numpy(candidate_scores),
            torch.from_numpy(class_id.astype(np.int64)),
            self.nms_threshold,
        ).numpy()[: self.max_detections]
        return Detections(candidate_boxes[keep], candidate_scores[keep], class_id[keep])

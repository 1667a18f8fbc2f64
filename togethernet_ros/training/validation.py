"""Validation mAP of an in-memory model on a dataset of (hazy, clean, boxes, labels[, difficult])."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from togethernet_ros.evaluation.records import ImageGroundTruth
from togethernet_ros.evaluation.voc_map import evaluate_voc
from togethernet_ros.vision.decode import decode_outputs
from togethernet_ros.vision.postprocess import postprocess
from togethernet_ros.vision.preprocess import preprocess_batch


@torch.no_grad()
def predict_dataset(
    model: nn.Module,
    dataset: Dataset,
    input_size: tuple[int, int],
    device: torch.device,
    conf_threshold: float = 0.001,
    nms_threshold: float = 0.65,
    batch_size: int = 8,
) -> tuple[dict[str, object], dict[str, ImageGroundTruth]]:
    """Detections and ground truth per image, with the inference pre/post-processing."""
    was_training = model.training
    model.eval()
    detections, truth = {}, {}
    try:
        for start in range(0, len(dataset), batch_size):
            samples = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
            images = [sample[0] for sample in samples]
            batch, infos = preprocess_batch(images, input_size, color_order="rgb", device=device)
            output = model(batch.contiguous(), restore=False)
            decoded = decode_outputs(output.maps, model.strides, input_size)
            found = postprocess(decoded, infos, conf_threshold, nms_threshold)
            for offset, (sample, result) in enumerate(zip(samples, found, strict=True)):
                key = str(sample[5]) if len(sample) > 5 else str(start + offset)
                if key in detections:
                    # Several foggy versions of one image share its id; each is its own
                    # evaluated image (as in `togethernet eval`), not a replacement.
                    key = f"{key}#{start + offset}"
                difficult = sample[4] if len(sample) > 4 else np.zeros(len(sample[3]), bool)
                detections[key] = result
                height, width = sample[0].shape[:2]
                truth[key] = ImageGroundTruth(sample[2], sample[3], difficult, width, height)
    finally:
        model.train(was_training)
    return detections, truth


def validation_map(
    model: nn.Module,
    dataset: Dataset,
    class_names: Sequence[str],
    input_size: tuple[int, int],
    device: torch.device,
    conf_threshold: float = 0.001,
    nms_threshold: float = 0.65,
    iou_threshold: float = 0.5,
    batch_size: int = 8,
) -> dict:
    """VOC AP@``iou_threshold`` per class and mAP (see :func:`evaluate_voc`)."""
    detections, truth = predict_dataset(
        model, dataset, input_size, device, conf_threshold, nms_threshold, batch_size
    )
    return evaluate_voc(detections, truth, class_names, iou_threshold)

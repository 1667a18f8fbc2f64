"""Validation mAP of an in-memory model, scored as `togethernet eval` scores the same weights.

A dataset read from files (VOC or YOLO, `RecordDataset`) is evaluated image file by image file,
as eval does: keyed by the foggy image's stem, an unreadable image left out with its ground
truth, VOC ground truth read from the XML as written (not clipped; see
evaluation/dataset_truth.py) and detection boxes truncated to whole pixels against it. Any
other dataset of samples (hazy, clean, boxes, labels[, difficult[, id]]) is scored sample by
sample against the boxes it gives. Detections are mapped back to the image as get_map.py maps
them and not clipped to it, as eval keeps them.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from togethernet_ros.evaluation.dataset_truth import scored_ground_truth, truncates_detection_boxes
from togethernet_ros.evaluation.records import ImageGroundTruth
from togethernet_ros.evaluation.voc_map import evaluate_voc
from togethernet_ros.training.data_issues import DataIssues
from togethernet_ros.training.paired_dataset import RecordDataset, read_rgb
from togethernet_ros.vision.decode import decode_outputs
from togethernet_ros.vision.postprocess import postprocess
from togethernet_ros.vision.preprocess import preprocess_batch

LOGGER = logging.getLogger("togethernet_ros")


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
    """Detections and ground truth per evaluated image (see the module docstring)."""
    was_training = model.training
    model.eval()
    detections: dict[str, object] = {}
    truth: dict[str, ImageGroundTruth] = {}
    images = _record_images(dataset) if isinstance(dataset, RecordDataset) else _samples(dataset)
    try:
        while batch := list(itertools.islice(images, batch_size)):
            pixels = [image for _, image, _ in batch]
            tensor, infos = preprocess_batch(pixels, input_size, color_order="rgb", device=device)
            output = model(tensor.contiguous(), restore=False)
            decoded = decode_outputs(output.maps, model.strides, input_size)
            found = postprocess(
                decoded, infos, conf_threshold, nms_threshold, clip=False, upstream_rounding=True
            )
            for (key, _, image_truth), result in zip(batch, found, strict=True):
                detections[key] = result
                truth[key] = image_truth
    finally:
        model.train(was_training)
    return detections, truth


def _record_images(dataset: RecordDataset) -> Iterator[tuple[str, np.ndarray, ImageGroundTruth]]:
    """(foggy image stem, RGB image, ground truth as eval reads it) of each readable record."""
    # A log of its own: the dataset's reader reported its data once, and eval reports what
    # reading VOC boxes as written finds; here it would repeat at every validation.
    truth = scored_ground_truth(dataset, DataIssues(strict=False))
    unreadable = 0
    for record in dataset.records:
        image = read_rgb(record.hazy_path)
        if image is None:
            unreadable += 1  # left out with its ground truth, as eval does
            continue
        yield record.hazy_path.stem, image, truth[record.hazy_path.stem]
    if unreadable:
        LOGGER.warning("validation: %d unreadable images left out", unreadable)


def _samples(dataset: Dataset) -> Iterator[tuple[str, np.ndarray, ImageGroundTruth]]:
    """(sample id, RGB image, the sample's boxes) of every sample of a generic dataset."""
    seen: set[str] = set()
    for index in range(len(dataset)):  # type: ignore[arg-type]
        sample = dataset[index]
        key = str(sample[5]) if len(sample) > 5 else str(index)
        if key in seen:
            # Several foggy versions of one image share its id; each is its own evaluated
            # image (as in `togethernet eval`), not a replacement.
            key = f"{key}#{index}"
        seen.add(key)
        difficult = sample[4] if len(sample) > 4 else np.zeros(len(sample[3]), bool)
        height, width = sample[0].shape[:2]
        yield key, sample[0], ImageGroundTruth(sample[2], sample[3], difficult, width, height)


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
    """VOC AP@``iou_threshold`` per class and mAP (see :func:`evaluate_voc`), as eval scores."""
    detections, truth = predict_dataset(
        model, dataset, input_size, device, conf_threshold, nms_threshold, batch_size
    )
    whole_pixels = isinstance(dataset, RecordDataset) and truncates_detection_boxes(dataset)
    return evaluate_voc(
        detections, truth, class_names, iou_threshold, whole_pixel_boxes=whole_pixels
    )

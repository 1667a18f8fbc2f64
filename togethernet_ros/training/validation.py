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
# Recorded with best_map in checkpoints: a best_map scored by other rules (version 1: truth
# clipped, detections clipped, exact box mapping, no whole-pixel truncation) is not comparable.
SCORING_VERSION = 2


@torch.no_grad()
def predict_dataset(
    model: nn.Module,
    dataset: Dataset,
    input_size: tuple[int, int],
    device: torch.device,
    conf_threshold: float = 0.001,
    nms_threshold: float = 0.65,
    batch_size: int = 8,
    shard: tuple[int, int] = (0, 1),
) -> tuple[dict[str, object], dict[str, ImageGroundTruth]]:
    """Detections and ground truth per evaluated image (see the module docstring).

    ``shard`` (index, count): only every count-th image from the index-th, so that several
    processes share the work; their results merge into the whole dataset's (keys are unique
    across shards).
    """
    index, count = shard
    if not 0 <= index < count:
        raise ValueError(f"shard must be (index, count) with 0 <= index < count, got {shard}")
    was_training = model.training
    model.eval()
    detections: dict[str, object] = {}
    truth: dict[str, ImageGroundTruth] = {}
    images = (
        _record_images(dataset, index, count)
        if isinstance(dataset, RecordDataset)
        else _samples(dataset, index, count)
    )
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


def _record_images(
    dataset: RecordDataset, index: int, count: int
) -> Iterator[tuple[str, np.ndarray, ImageGroundTruth]]:
    """(foggy image stem, RGB image, ground truth as eval reads it) of each readable record
    of the shard."""
    records = dataset.records[index::count]
    # A log of its own: the dataset's reader reported its data once, and eval reports what
    # reading VOC boxes as written finds; here it would repeat at every validation.
    truth = scored_ground_truth(dataset, DataIssues(strict=False), records)
    unreadable = 0
    for record in records:
        image = read_rgb(record.hazy_path)
        if image is None:
            unreadable += 1  # left out with its ground truth, as eval does
            continue
        yield record.hazy_path.stem, image, truth[record.hazy_path.stem]
    if unreadable:
        LOGGER.warning("validation: %d unreadable images left out", unreadable)


def _samples(
    dataset: Dataset, first: int, step: int
) -> Iterator[tuple[str, np.ndarray, ImageGroundTruth]]:
    """(key, RGB image, the sample's boxes) of the shard's samples of a generic dataset."""
    for index in range(first, len(dataset), step):  # type: ignore[arg-type]
        sample = dataset[index]
        # Several foggy versions of one image share its id; each is its own evaluated image
        # (as in `togethernet eval`): the position makes the key unique in every shard.
        key = f"{sample[5]}#{index}" if len(sample) > 5 else str(index)
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
    return score_predictions(detections, truth, dataset, class_names, iou_threshold)


def score_predictions(
    detections: dict[str, object],
    truth: dict[str, ImageGroundTruth],
    dataset: Dataset,
    class_names: Sequence[str],
    iou_threshold: float = 0.5,
) -> dict:
    """VOC AP of `predict_dataset`'s results (of every shard, merged) on ``dataset``."""
    whole_pixels = isinstance(dataset, RecordDataset) and truncates_detection_boxes(dataset)
    return evaluate_voc(
        detections, truth, class_names, iou_threshold, whole_pixel_boxes=whole_pixels
    )
